"""Host-differential tests of float state a handler or an image sees.

Unmasked x87 exceptions: #MF becomes SIGFPE whose si_code follows the unmasked status-word flags, as for #XM.

Unmasked SIMD floating-point exceptions: #XM becomes SIGFPE
whose si_code follows the unmasked MXCSR flags (Linux's fpu__exception_code), si_addr is the faulting
instruction, the signal frame's MXCSR holds the flags the SDM says are set (Vol. 1, 11.5.1: only the
pre-computation ones when one of those is unmasked) and the destination is unchanged; a handler that
siglongjmps out, and one that masks the exceptions in the frame and returns (the instruction runs again).

SSE, SSE2, SSE3, SSE4.1, AVX, FMA and F16C forms, packed and scalar, a memory destination (VCVTPS2PH
m64); in the Python tier and with every block native (``EMU_JIT=eager``), whose fast SSE arithmetic
(``cpu.backends.llvm_float``) must leave the unmasked cases to the exact helpers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_programs import host_cpu_flags

PROGRAMS = Path(__file__).resolve().parent / "programs"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@pytest.mark.parametrize("tier", ["off", "eager"])
def test_unmasked_simd_exceptions_raise_sigfpe_as_natively(tier: str, build_static, same_as_native) -> None:
    missing = {"avx", "fma", "f16c", "sse4_1"} - host_cpu_flags()
    if missing:
        pytest.skip(f"the host CPU lacks {', '.join(sorted(missing))}, so the program cannot run natively")
    program = build_static(PROGRAMS / "simd_exceptions.c", "O1", ("-mavx",))
    same_as_native([str(program)], env={**ENV, "EMU_JIT": tier})


@pytest.mark.parametrize("tier", ["off", "eager"])
def test_x87_last_instruction_pointers_are_stored_as_natively(tier: str, build_static, same_as_native) -> None:
    """FIP of every non-control x87 instruction; FOP and FDP of the last one with an unmasked exception (the
    host's FDP_EXCPTN_ONLY behaviour); FCS and FDS zero; in FNSTENV's two layouts, FXSAVE, FXSAVE64, XSAVE64."""
    if "xsave" not in host_cpu_flags():
        pytest.skip("the host CPU lacks XSAVE, so the program cannot run natively")
    program = build_static(PROGRAMS / "x87_pointers.c", "O1")
    same_as_native([str(program)], env={**ENV, "EMU_JIT": tier})


@pytest.mark.parametrize("tier", ["off", "eager"])
def test_unmasked_x87_exceptions_raise_sigfpe_with_the_si_code_of_the_flag(tier: str, build_static,
                                                                            same_as_native) -> None:
    program = build_static(PROGRAMS / "x87_exceptions.c", "O1")
    same_as_native([str(program)], env={**ENV, "EMU_JIT": tier})
