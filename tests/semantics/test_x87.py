"""The x87 FPU against the host CPU (``cpu/semantics/x87.py``, ``x87_arith.py``, ``transcendental.py``).

Every test runs batches of experiments natively and in emu (stepped, as blocks and through the
LLVM JIT) and compares, byte for byte, the FNSAVE image after each one (control word, status word
with TOP, condition codes and exception flags, full tag word, the eight registers), the memory
result and RFLAGS (``tests/semantics/x87_batch.py``).  Operands are boundary values (zeros,
denormals, pseudo-denormals, unnormals, pseudo-NaNs and pseudo-infinities, infinities, QNaN,
SNaN, the indefinite, the extremes, values that round at 24, 53 and 64 bits) and random ones,
under every precision and rounding control and with exceptions masked and unmasked.

The transcendental instructions are compared within one unit in the last place (the processor
does not round them correctly in every case); everything else is bit-exact.
"""

from __future__ import annotations

import random

import pytest

from tests.semantics.harness import DATA, Case
from tests.semantics.host import check_host, needs_host
from tests.semantics.x87_batch import CLEAR, Slot, run_slots

pytestmark = needs_host


def f80(sign: int, exponent: int, significand: int) -> int:
    return sign << 79 | exponent << 64 | significand


ONE = 1 << 63
BOUNDARY = [
    f80(0, 0, 0), f80(1, 0, 0),                                         # +-0
    f80(0, 0x7FFF, ONE), f80(1, 0x7FFF, ONE),                           # +-inf
    f80(0, 0x7FFF, 0xC000_0000_0000_0000), f80(1, 0x7FFF, 0xC000_0000_0000_0123),   # QNaN, indefinite-like
    f80(0, 0x7FFF, ONE | 1), f80(1, 0x7FFF, 0xA000_0000_0000_0000),     # SNaNs
    f80(0, 0, 1), f80(1, 0, ONE - 1),                                   # smallest and largest denormal
    f80(0, 0, ONE | 1),                                                 # pseudo-denormal
    f80(0, 1, 0x4000_0000_0000_0000), f80(0, 0x3FFF, 0x4000_0000_0000_0000),  # unnormals
    f80(0, 0x7FFF, 0x4000_0000_0000_0000), f80(0, 0x7FFF, 0),           # pseudo-NaN, pseudo-infinity
    f80(0, 1, ONE), f80(1, 0x7FFE, (1 << 64) - 1),                      # smallest normal, -largest
    f80(0, 0x3FFF, ONE), f80(1, 0x3FFF, 0xC000_0000_0000_0000),         # 1.0, -1.5
    f80(0, 0x3FFF, ONE | 1 << 39), f80(0, 0x3FFF, ONE | 1 << 10), f80(0, 0x3FFF, ONE | 1),  # 24/53/64-bit ties
    f80(0, 0x403E, (1 << 64) - 1), f80(0, 0x4000, 0xC90F_DAA2_2168_C235),  # 2**64 - 1, pi
]
MEMORY = [0, 1 << 63, 0x7FF0 << 48, 0x7FF4 << 48, 0x7F80_0001, 1, 0x3FF0 << 48, 0x8000, 0x7FFF, 0x8000_0000,
          0x0000_0001_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x3F80_0000, 0x0000_0000_0080_0000]
CONTROL_WORDS = [0x037F, 0x007F, 0x027F, 0x077F, 0x0B7F, 0x0F7F, 0x047F, 0x0360, 0x0340]
"""Default; PC 24 and 53; RC down, up, zero; PC 24 with RC down; all but PE unmasked; all unmasked."""


def operand(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.4:
        return rng.choice(BOUNDARY)
    if k < 0.8:
        return f80(rng.getrandbits(1), 0x3FFF + rng.randint(-70, 70), ONE | rng.getrandbits(63))
    if k < 0.9:
        return f80(rng.getrandbits(1), rng.choice([1, 2, 0x7FFE, 0x7FFD, 0x3F80, 0x43FF, 0x3C00]),
                   ONE | rng.getrandbits(63))
    return rng.getrandbits(80)


def slots(bodies: list[str], per_body: int, seed: int) -> list[Slot]:
    rng = random.Random(seed)
    out = []
    for body in bodies:
        for _ in range(per_body):
            m = rng.getrandbits(64) if rng.random() < 0.5 else rng.choice(MEMORY)
            out.append(Slot(body, operand(rng), operand(rng), rng.choice(CONTROL_WORDS), m=m))
    return out


def agree(bodies: list[str], per_body: int = 24, seed: int = 1, within_ulp: bool = False) -> None:
    problems = run_slots(slots(bodies, per_body, seed), within_ulp=within_ulp)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:8])


FLAGS = "\npushfq\npop rax\nmov qword ptr {FLAGS}, rax"
OPERATIONS = ("add", "sub", "subr", "mul", "div", "divr")


def test_arithmetic_register_forms_round_and_signal_like_the_host() -> None:
    agree([f"f{op} st(0), st(1)" for op in OPERATIONS] + [f"f{op} st(1), st(0)" for op in OPERATIONS]
          + [f"f{op}p st(1), st(0)" for op in OPERATIONS])


def test_arithmetic_memory_forms_convert_their_operand_exactly() -> None:
    agree([f"f{op} dword ptr {{M}}" for op in OPERATIONS] + [f"f{op} qword ptr {{M}}" for op in OPERATIONS]
          + [f"fi{op} word ptr {{M}}" for op in OPERATIONS] + [f"fi{op} dword ptr {{M}}" for op in OPERATIONS],
          per_body=16, seed=2)


def test_square_root_round_to_integer_sign_and_magnitude() -> None:
    agree(["fsqrt", "frndint", "fchs", "fabs"], per_body=40, seed=3)


def test_comparisons_set_condition_codes_or_eflags() -> None:
    agree(["fcom st(1)", "fcomp st(1)", "fcompp", "fucom st(1)", "fucomp st(1)", "fucompp",
           "fcom dword ptr {M}", "fcomp qword ptr {M}", "ficom word ptr {M}", "ficomp dword ptr {M}",
           "fcomi st(0), st(1)" + FLAGS, "fcomip st(0), st(1)" + FLAGS, "fucomi st(0), st(1)" + FLAGS,
           "fucomip st(0), st(1)" + FLAGS, "ftst", "fxam", "ffree st(0)\nfxam"], per_body=16, seed=4)


def test_loads_convert_floats_integers_and_bcd_and_constants_follow_rc() -> None:
    agree(["fld dword ptr {M}", "fld qword ptr {M}", "fild word ptr {M}", "fild dword ptr {M}",
           "fild qword ptr {M}", "fbld tbyte ptr {M}", "fld st(1)", "fld1", "fldz", "fldpi", "fldl2t", "fldl2e",
           "fldlg2", "fldln2"], per_body=16, seed=5)


def test_stores_round_to_the_destination_format() -> None:
    agree(["fst dword ptr {M}", "fstp qword ptr {M}", "fstp tbyte ptr {M}", "fist word ptr {M}",
           "fistp dword ptr {M}", "fistp qword ptr {M}", "fisttp word ptr {M}", "fisttp dword ptr {M}",
           "fisttp qword ptr {M}", "fbstp tbyte ptr {M}", "fst st(3)", "fstp st(1)"], per_body=20, seed=6)


def test_stack_overflow_and_underflow_take_the_masked_or_unmasked_response() -> None:
    """The stack fault is the last instruction of each experiment: an unmasked one makes the next
    waiting instruction raise #MF."""
    push6 = "\n".join(["fld st(0)"] * 6)             # with A and B: full; the next push overflows
    push7 = push6 + "\nfld st(0)"
    agree([push7, "fld1\n" * 6 + "fild word ptr {M}", "fincstp\nfincstp\nfadd st(0), st(3)",
           "ffree st(0)\nfst dword ptr {M}", "ffree st(0)\nfstp qword ptr {M}", "ffree st(1)\nfxch st(1)",
           "ffree st(0)\nfistp word ptr {M}", "ffree st(0)\nfcom st(1)", "ffree st(0)\nfchs",
           "ffree st(1)\nfaddp st(1), st(0)", "ffree st(0)\nfcmove st(0), st(1)", "ffree st(0)\nfst st(1)",
           "ffree st(0)\nfbstp tbyte ptr {M}", "ffree st(0)\nfcomi st(0), st(1)" + FLAGS,
           "ffree st(0)\nfsqrt", "ffree st(1)\nfscale", push6 + "\nfxtract", push6 + "\nfsincos"],
          per_body=6, seed=7)


def test_exchange_conditional_move_free_and_top() -> None:
    agree(["fxch st(1)", "fxch st(0)", "fcmovb st(0), st(1)", "fcmove st(0), st(1)", "fcmovbe st(0), st(1)",
           "fcmovu st(0), st(1)", "fcmovnb st(0), st(1)", "fcmovne st(0), st(1)", "fcmovnbe st(0), st(1)",
           "fcmovnu st(0), st(1)", "ffree st(1)", "fincstp", "fdecstp", "fnop"], per_body=8, seed=8)


def test_scale_extract_and_partial_remainders() -> None:
    agree(["fscale", "fxtract", "fprem", "fprem1"], per_body=60, seed=9)


def test_transcendentals_are_within_one_ulp_of_the_host() -> None:
    agree(["fsin", "fcos", "fsincos", "fptan", "fpatan", "f2xm1", "fyl2x", "fyl2xp1"], per_body=30, seed=10,
          within_ulp=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 26))
def test_many_random_operands(seed: int) -> None:
    agree([f"f{op} st(0), st(1)" for op in OPERATIONS] + ["fsqrt", "frndint", "fprem", "fprem1", "fscale",
          "fst dword ptr {M}", "fst qword ptr {M}", "fistp qword ptr {M}", "fbstp tbyte ptr {M}", "fucom st(1)"],
          per_body=40, seed=seed)


# -- environments and state images ---------------------------------------------------------------------
LOAD3 = f"""mov rsi, {DATA}
{CLEAR}
fldpi
fld1
fldz
fdecstp
"""


def test_fnstenv_and_fldenv_in_both_operand_sizes() -> None:
    asm = (LOAD3 + "fldcw word ptr [rsi + 0x300]\nfld1\nfdiv st(0), st(3)\n"
           + "fnstenv [rsi]\n"
           + "\ndata16 fnstenv [rsi + 0x40]\n"
           + "\nfninit\nfldenv [rsi]\nfnstsw word ptr [rsi + 0x80]\nfnstcw word ptr [rsi + 0x82]"
           + "\ndata16 fldenv [rsi + 0x40]\nfnstsw word ptr [rsi + 0x84]")
    check_host(Case(asm=asm, data=bytes(0x300) + (0x0B7F).to_bytes(2, "little")))


@pytest.mark.parametrize("save", ["fnstenv [rsi + 0x40]", "data16 fnstenv [rsi + 0x40]", "fxsave [rsi + 0x40]",
                                  "fxsave64 [rsi + 0x40]", "fnsave [rsi + 0x40]"])
def test_the_last_instruction_pointers_follow_the_host(save: str) -> None:
    """FIP of the last non-control instruction (FFREE, FNOP included; FNSTSW, FNCLEX, FLDCW not), FOP and FDP
    of the last unmasked exception's (a memory operand, then a register operand), as this CPU stores them."""
    asm = (f"mov rsi, {DATA}\n{CLEAR}\nfldcw word ptr [rsi + 0x300]\nfld1\nfdiv dword ptr [rsi + 0x310]\n"
           "fnstsw ax\nfnclex\nfld1\nfldz\nfdivp st(1), st(0)\nfnclex\nfld qword ptr [rsi + 0x320]\nffree st(5)\nfnop\n"
           "fnstsw ax\nfnclex\nfldcw word ptr [rsi + 0x300]\n" + save)
    check_host(Case(asm=asm, data=bytes(0x300) + (0x037B).to_bytes(2, "little") + bytes(0x10 - 2) + bytes(0x20)))


def test_fnsave_and_frstor_carry_the_stack_and_reinitialise() -> None:
    asm = (LOAD3 + "fnsave [rsi]\n"
           + "\nfnstcw word ptr [rsi + 0x100]\nfnstsw word ptr [rsi + 0x102]"
           + "\nfrstor [rsi]\nfstp tbyte ptr [rsi + 0x110]\nfstp tbyte ptr [rsi + 0x120]\nfnstsw word ptr [rsi + 0x130]"
           + "\ndata16 fnsave [rsi + 0x200]\n")
    check_host(Case(asm=asm))


def test_fxsave_and_fxrstor_carry_the_real_stack_and_the_abridged_tags() -> None:
    asm = (LOAD3 + "fxsave [rsi]\n"
           + "\nfninit\nfxrstor [rsi]\nfstp tbyte ptr [rsi + 0x210]\nfstp tbyte ptr [rsi + 0x220]"
           + "\nfnstsw word ptr [rsi + 0x230]\nfnstenv [rsi + 0x240]\n")
    check_host(Case(asm=asm))


# -- unmasked exceptions: #MF at the next waiting instruction (SIGFPE for a Linux process) --------------
UNMASK_ZE = f"mov rsi, {DATA}\nfldcw word ptr [rsi]\nfld1\nfldz\nfdivp st(1), st(0)\nfnstsw ax\n"


@pytest.mark.parametrize("next_insn", ["fwait", "fld1", "fadd st(0), st(0)", "fnstsw word ptr [rsi + 8]"])
def test_an_unmasked_exception_faults_at_the_next_waiting_instruction(next_insn: str) -> None:
    """FNSTSW does not wait: it stores ES and B; FWAIT and the arithmetic raise #MF."""
    check_host(Case(asm=UNMASK_ZE + next_insn + "\nmov rbx, 1", data=(0x037B).to_bytes(2, "little")))


def test_fnclex_clears_a_pending_exception() -> None:
    check_host(Case(asm=UNMASK_ZE + "fnclex\nfwait\nfnstsw word ptr [rsi + 8]", data=(0x037B).to_bytes(2, "little")))
