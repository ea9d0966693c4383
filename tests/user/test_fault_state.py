"""The guest state a fault leaves in the middle of a block, as a SIGSEGV handler sees it in its ucontext:
tests/user/programs/fault_state.c against the same binary run natively.

The Python tier keeps registers in single-assignment locals and the flags in a cc record known at
translation time, and a fault rolls the state back from the faulting instruction's snapshot
(``cpu/backends/python.py``, docs/interpreter.md "Precise faults").  Each case writes registers from
constants, other registers and sums, sets the flags with a result nothing else keeps, then loads or stores
through an unmapped address, and overwrites all of it after the fault: only a correct snapshot shows the
handler what the CPU held at the faulting instruction.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parent / "programs" / "fault_state.c"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@pytest.mark.parametrize("tier", ["off", "eager"])
def test_a_fault_mid_block_leaves_the_state_of_the_faulting_instruction(tier: str, build_static,
                                                                        same_as_native) -> None:
    same_as_native([str(build_static(PROGRAM, "O1"))], env={**ENV, "EMU_JIT": tier})
