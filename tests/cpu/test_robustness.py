"""Random bytes executed as code never escape the CPU as a Python exception.

Each run must end in a guest fault (#UD, #GP, #PF, #DE, ...), an event, or
the instruction limit: the guest can never crash the host emulator.
"""

from __future__ import annotations

import random

import pytest

from cpu.interp import ExitKind, Interpreter
from cpu.state import CpuState
from emu.user.address_space import AddressSpace

CODE, DATA = 0x40_0000, 0x60_0000


def _run_random_code(seed: int) -> ExitKind:
    rng = random.Random(seed)
    mem = AddressSpace()
    mem.map(CODE, 0x1000, 5, rng.randbytes(0x1000))
    mem.map(DATA, 0x4000, 3, rng.randbytes(0x4000))
    state = CpuState()
    state.reset_user()
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9"):
        setattr(state, name, DATA + rng.randrange(0x4000) if rng.random() < 0.7 else rng.getrandbits(64))
    state.rsp = DATA + 0x2000
    state.rip = CODE + rng.randrange(0x800)
    cpu = Interpreter(state, mem)
    kind = ExitKind.EVENT
    for _ in range(20):
        exit_ = cpu.run(limit=200)
        kind = exit_.kind
        if kind in (ExitKind.FAULT, ExitKind.LIMIT):
            break
    return kind


@pytest.mark.parametrize("block", range(8))
def test_random_byte_streams_end_in_a_guest_fault_or_a_normal_stop(block: int) -> None:
    kinds = [_run_random_code(block * 1000 + i) for i in range(60)]
    assert set(kinds) <= {ExitKind.FAULT, ExitKind.LIMIT, ExitKind.SYSCALL, ExitKind.HALT, ExitKind.EVENT}
    assert ExitKind.FAULT in kinds


@pytest.mark.fuzz
def test_random_byte_streams_fuzz(request: pytest.FixtureRequest) -> None:
    base = int(request.config.getoption("--fuzz-seed") or 0)
    for i in range(3000):
        _run_random_code(base * 100_000 + i)
