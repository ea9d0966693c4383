"""SSE/SSE2 floating point against unicorn (``cpu/semantics/sse_float.py``): arithmetic, MIN/MAX,
SQRT, CMPxx, (U)COMISx and the conversions, in every form, over special values (+-0, +-inf,
QNaN, SNaN, denormals, the extremes, 1.0, -1.5, 2**31, 2**63, ties) and random numbers,
under all four MXCSR rounding modes and DAZ.

unicorn (QEMU 5 TCG) departs from the SDM in four places, so those inputs are
left out of the comparison and checked against the SDM in emu alone:

* two NaN operands: QEMU returns the NaN with the larger significand (the
  x87 rule); SDM Vol. 1, table 4-7, for SSE: "Return the first source
  operand (converted to a QNaN if it is an SNaN)";
* MXCSR.FTZ: QEMU 5 applies it to the x87 state, not to SSE;
* MXCSR.DAZ for MINxx/MAXxx: QEMU returns the unflushed denormal; SDM Vol. 1,
  10.2.3.4: the processor converts "denormal source operands to a zero with
  the sign of the original operand before performing any computations";
* the MXCSR exception flags: QEMU 5 never sets them (STMXCSR reads none).

A slow test (``pytest -m slow``) closes that gap with the host CPU as the
oracle: a C program runs every instruction over special values under nine
MXCSR settings, natively and under emu, and compares results and MXCSR.
"""

from __future__ import annotations

import platform
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.semantics.harness import DATA, Case, check, run_emu
from tests.semantics.host import check_host, needs_host
from tests.semantics.operands import Setup

CASES = 8
"""Random cases per instruction form in the default run (the fuzz run takes ten times as many)."""

SPECIAL = {
    64: (0, 1 << 63, 0x7FF0 << 48, 0xFFF0 << 48,                            # +-0, +-inf
         0x7FF8 << 48, 0xFFF8 << 48, 0x7FF8_0000_0000_0123,                    # QNaNs
         0x7FF0_0000_0000_0001, 0xFFF4_0000_0000_0000,                         # SNaNs
         1, 0x000F_FFFF_FFFF_FFFF, 0x800F_FFFF_FFFF_FFFF,                      # denormals
         0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0xFFEF_FFFF_FFFF_FFFF,  # min normal, +-max
         0x3FF0_0000_0000_0000, 0xBFF8_0000_0000_0000, 0x3FE0_0000_0000_0000,  # 1.0, -1.5, 0.5
         0x4004_0000_0000_0000, 0xC00C_0000_0000_0000,                         # 2.5, -3.5 (ties)
         0x43E0_0000_0000_0000, 0xC3E0_0000_0000_0000, 0x43F0_0000_0000_0000,  # 2**63, -2**63, 2**64
         0x41E0_0000_0000_0000, 0xC1E0_0000_0000_0000, 0xC1E0_0000_0020_0000,  # 2**31, -2**31, -2**31-1
         0x4340_0000_0000_0001),                                               # 2**53 + 2
    32: (0, 1 << 31, 0x7F80_0000, 0xFF80_0000,
         0x7FC0_0000, 0xFFC0_0000, 0x7FC0_0123,
         0x7F80_0001, 0xFFA0_0000,
         1, 0x007F_FFFF, 0x807F_FFFF,
         0x0080_0000, 0x7F7F_FFFF, 0xFF7F_FFFF,
         0x3F80_0000, 0xBFC0_0000, 0x3F00_0000,
         0x4020_0000, 0xC060_0000,
         0x5F00_0000, 0xDF00_0000, 0x5F80_0000,
         0x4F00_0000, 0xCF00_0000, 0xCF00_0001,
         0x4B80_0001),
}
HOST = {64: struct.Struct("<d"), 32: struct.Struct("<f")}
MXCSR_DEFAULT = 0x1F80
IE, DE, ZE, OE, UE, PE = 1, 2, 4, 8, 16, 32
DAZ, FTZ = 0x40, 0x8000


def number(rng: random.Random, width: int) -> int:
    """One lane: a special value, a moderate random number (so lanes interact and round), or random bits."""
    k = rng.random()
    if k < 0.45:
        return rng.choice(SPECIAL[width])
    if k < 0.85:
        x = rng.uniform(-1, 1) * 2.0 ** rng.randint(-20, 20)
        return int.from_bytes(HOST[width].pack(x), "little")
    return rng.getrandbits(width)


def vector(rng: random.Random, width: int) -> int:
    return sum(number(rng, width) << (width * i) for i in range(128 // width))


def is_nan(v: int, width: int) -> bool:
    exp_mask = ((1 << (width - 1)) - 1) ^ ((1 << (52 if width == 64 else 23)) - 1)
    return (v & ((1 << (width - 1)) - 1)) > exp_mask


def lanes(v: int, width: int) -> list[int]:
    return [(v >> (width * i)) & ((1 << width) - 1) for i in range(128 // width)]


def one_nan_per_lane(a: int, b: int, width: int, rng: random.Random) -> int:
    """``b`` with every lane that is a NaN where ``a``'s is also a NaN replaced by a number.

    The two-NaN result is SDM table 4-7's "first source operand"; unicorn returns the larger
    significand (test_two_nan_operands_return_the_first_source_quieted checks emu alone)."""
    out = []
    for x, y in zip(lanes(a, width), lanes(b, width), strict=True):
        while is_nan(x, width) and is_nan(y, width):
            y = number(rng, width)
        out.append(y)
    return sum(y << (width * i) for i, y in enumerate(out))


def mxcsr(rng: random.Random, daz: bool = True) -> int:
    """Any rounding mode, DAZ sometimes, never FTZ (unicorn ignores it for SSE); PE already set half
    the time, which is what a running program has and what emu's fast path needs."""
    return (MXCSR_DEFAULT | (rng.randrange(4) << 13) | (DAZ if daz and rng.random() < 0.2 else 0)
            | (PE if rng.random() < 0.5 else 0))


WIDTH = {"ss": 32, "ps": 32, "sd": 64, "pd": 64}
PTR = {"ss": 32, "sd": 64, "ps": 128, "pd": 128}


def float_case(rng: random.Random, asm: str, regs_xmm: dict[int, int], control: int, s: Setup | None = None) -> Case:
    """``asm`` run under MXCSR = ``control``, loaded from the data page first (not read back: unicorn
    sets no exception flags)."""
    s = s or Setup(rng, data_bytes=0x200)
    s.mem(0x1F0, 32, control)
    return s.case(f"ldmxcsr dword ptr [rsi + 0x1f0]; {asm}",
                  xmm={i: vector(rng, 64) for i in range(16)} | regs_xmm)


# -- arithmetic -------------------------------------------------------------------------------------------
ARITH = [op + shape for op in ("add", "sub", "mul", "div", "sqrt", "min", "max") for shape in ("ss", "sd", "ps", "pd")]


def arith_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    shape = mnemonic[-2:]
    width = WIDTH[shape]
    for _ in range(count):
        s = Setup(rng, data_bytes=0x200)
        a, b = vector(rng, width), vector(rng, width)
        if not mnemonic.startswith(("sqrt", "min", "max")):
            b = one_nan_per_lane(a, b, width, rng)
        control = mxcsr(rng, daz=not mnemonic.startswith(("min", "max")))
        src = "xmm1" if form == "xmm" else s.mem(0x40, PTR[shape], b)
        yield float_case(rng, f"{mnemonic} xmm0, {src}", {0: a, 1: b}, control, s)


ARITH_FORMS = [(m, f) for m in ARITH for f in ("xmm", "mem")]


@pytest.mark.parametrize(("mnemonic", "form"), ARITH_FORMS)
def test_arithmetic_matches_unicorn(rng, mnemonic, form):
    for case in arith_cases(mnemonic, form, rng, CASES):
        check(case)


def ordinary(rng: random.Random, width: int, exponent: int) -> int:
    """A lane with this biased exponent and a random or short significand (so results are exact or not)."""
    fraction = 23 if width == 32 else 52
    significand = rng.getrandbits(fraction) if rng.random() < 0.6 else rng.getrandbits(3) << (fraction - 3)
    return (rng.getrandbits(1) << (width - 1)) | (exponent << fraction) | significand


def window_lane(rng: random.Random, width: int) -> int:
    """Mostly numbers well inside the exponent range; some at the edges of the JIT's native window
    (cpu.backends.llvm_float: biased 50..252 for single, 108..2018 for double) and beyond."""
    edges = (49, 50, 51, 251, 252, 253, 1, 254) if width == 32 else (107, 108, 109, 2017, 2018, 2019, 1, 2046)
    bias = 127 if width == 32 else 1023
    exponent = rng.choice(edges) if rng.random() < 0.3 else bias + rng.randint(-30, 30)
    return ordinary(rng, width, exponent)


@needs_host
@pytest.mark.parametrize("mnemonic", [m for m in ARITH if not m.startswith(("min", "max"))])
def test_ordinary_arithmetic_and_its_precision_flag_match_this_cpu(rng, mnemonic):
    """The JIT computes these natively when the operands and result lie well inside the exponent range and
    MXCSR rounds to nearest, deciding PE exactly; the host CPU checks the result and MXCSR's flags (stored
    to memory) in every tier, across that window's edges and under another rounding mode too."""
    width = WIDTH[mnemonic[-2:]]
    for _ in range(24):
        s = Setup(rng, data_bytes=0x200)
        a, b = (sum(window_lane(rng, width) << (width * i) for i in range(128 // width)) for _ in range(2))
        if mnemonic.startswith("sqrt"):
            b &= sum(((1 << (width - 1)) - 1) << (width * i) for i in range(128 // width))
        control = MXCSR_DEFAULT | (rng.choice((0, 0, 0, 1, 2, 3)) << 13) | (PE if rng.random() < 0.3 else 0)
        s.mem(0x1F0, 32, control)
        check_host(s.case(f"ldmxcsr dword ptr [rsi + 0x1f0]; {mnemonic} xmm0, xmm1; stmxcsr dword ptr [rsi + 0x1f4]",
                          xmm={0: a, 1: b}))


UNMASKED_FORMS = [(f"{op}{shape} xmm0, xmm1", WIDTH[shape]) for op in ("add", "sub", "mul", "div", "sqrt", "min", "max")
                  for shape in ("ss", "sd", "ps", "pd")] + [
    ("cvtsd2ss xmm0, xmm1", 64), ("cvtpd2ps xmm0, xmm1", 64), ("cvtss2sd xmm0, xmm1", 32),
    ("cvtps2dq xmm0, xmm1", 32), ("cvttpd2dq xmm0, xmm1", 64), ("cvtsd2si rax, xmm1", 64),
    ("cvttss2si eax, xmm1", 32), ("comiss xmm0, xmm1", 32), ("ucomisd xmm0, xmm1", 64), ("cmpltps xmm0, xmm1", 32),
    ("cmpunordpd xmm0, xmm1", 64), ("haddps xmm0, xmm1", 32), ("addsubpd xmm0, xmm1", 64),
    ("roundps xmm0, xmm1, 4", 32), ("roundsd xmm0, xmm1, 9", 64), ("dpps xmm0, xmm1, 0xf3", 32),
    ("vdivps xmm0, xmm1, xmm0", 32), ("vfmadd231pd xmm0, xmm1, xmm0", 64), ("vcvtps2ph xmm0, xmm1, 0", 32)]


@needs_host
@pytest.mark.parametrize(("asm", "width"), UNMASKED_FORMS, ids=[asm.split()[0] for asm, _ in UNMASKED_FORMS])
def test_unmasked_exceptions_fault_as_on_this_cpu(rng, asm, width):
    """With some MXCSR exceptions unmasked: the same #XM (SIGFPE) or none as this CPU, and at the fault the same
    MXCSR flags and unchanged XMM registers (the host oracle reads them from the signal frame); without a fault
    the same result and MXCSR.  Lanes mix special values with numbers inside the JIT's native window, whose
    precision flag the native code decides."""
    for _ in range(16):
        s = Setup(rng, data_bytes=0x200)
        a, b = (sum((number(rng, width) if rng.random() < 0.5 else window_lane(rng, width)) << (width * i)
                    for i in range(128 // width)) for _ in range(2))
        unmasked = rng.choice((IE, DE, ZE, OE, UE, PE, OE | UE, PE | UE, IE | ZE | DE, rng.getrandbits(6)))
        control = (MXCSR_DEFAULT & ~(unmasked << 7)) | (rng.choice((0, 0, 1, 2, 3)) << 13) \
            | (rng.choice((0, DAZ, FTZ)) if rng.random() < 0.2 else 0) | (PE if rng.random() < 0.3 else 0)
        s.mem(0x1F0, 32, control)
        check_host(s.case(f"ldmxcsr dword ptr [rsi + 0x1f0]; {asm}; stmxcsr dword ptr [rsi + 0x1f4]",
                          xmm={0: a, 1: b}))


# -- comparisons ------------------------------------------------------------------------------------------
def compare_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    shape = mnemonic[3:5] if mnemonic.startswith("cmp") else mnemonic[-2:]
    width = WIDTH[shape]
    for _ in range(count):
        s = Setup(rng, data_bytes=0x200)
        a = vector(rng, width)
        b = a if rng.random() < 0.2 else vector(rng, width)
        src = "xmm1" if form.startswith("xmm") else s.mem(0x40, PTR[shape], b)
        imm = f", {form.split()[-1]}" if mnemonic.startswith("cmp") else ""
        yield float_case(rng, f"{mnemonic} xmm0, {src}{imm}", {0: a, 1: b}, mxcsr(rng), s)


COMPARE_FORMS = [(f"cmp{shape}", f"{form} {p}") for shape in ("ss", "sd", "ps", "pd")
                 for form in ("xmm", "mem") for p in range(8)]
COMPARE_FORMS += [(m, form) for m in ("comiss", "comisd", "ucomiss", "ucomisd") for form in ("xmm", "mem")]


@pytest.mark.parametrize(("mnemonic", "form"), COMPARE_FORMS)
def test_comparisons_match_unicorn(rng, mnemonic, form):
    for case in compare_cases(mnemonic, form, rng, CASES):
        check(case)


def test_comis_flags_feed_the_next_instructions(rng):
    """The flags (U)COMISD writes are read by SETcc in the same translated block."""
    asm = "ucomisd xmm0, xmm1; seta al; setp bl; setb cl; sete dl; comisd xmm1, xmm0; setae r8b; setnp r9b"
    for _ in range(4 * CASES):
        a = number(rng, 64)
        check(Setup(rng).case(asm, xmm={0: a, 1: a if rng.random() < 0.2 else number(rng, 64)}))


# -- conversions ------------------------------------------------------------------------------------------
INTS = (0, 1, -1, 2**31 - 1, -2**31, 2**31, 2**32 - 1, 2**53 + 1, 2**24 + 1, 2**63 - 1, -2**63,
        2**63 + 2**39 + 1 - 2**64, 2**62 + 2**38, 0x8000_0001)


def integer(rng: random.Random) -> int:
    if rng.random() < 0.5:
        return rng.choice(INTS) & (2**64 - 1)
    n = rng.getrandbits(rng.choice((8, 16, 24, 25, 31, 32, 53, 54, 60, 64)))
    return n if rng.random() < 0.7 else -n & (2**64 - 1)


CONVERSIONS = {
    # mnemonic: forms (destination, source) as assembler text; "M32"/"M64"/"M128" are memory operands
    "cvtsi2sd": ("xmm0, ebx", "xmm0, rbx", "xmm0, M32", "xmm0, M64"),
    "cvtsi2ss": ("xmm0, ebx", "xmm0, rbx", "xmm0, M32", "xmm0, M64"),
    "cvtsd2si": ("ebx, xmm1", "rbx, xmm1", "ebx, M64", "rbx, M64"),
    "cvttsd2si": ("ebx, xmm1", "rbx, xmm1", "ebx, M64", "rbx, M64"),
    "cvtss2si": ("ebx, xmm1", "rbx, xmm1", "ebx, M32", "rbx, M32"),
    "cvttss2si": ("ebx, xmm1", "rbx, xmm1", "ebx, M32", "rbx, M32"),
    "cvtsd2ss": ("xmm0, xmm1", "xmm0, M64"),
    "cvtss2sd": ("xmm0, xmm1", "xmm0, M32"),
    "cvtdq2pd": ("xmm0, xmm1", "xmm0, M64"),
    "cvtdq2ps": ("xmm0, xmm1", "xmm0, M128"),
    "cvtps2dq": ("xmm0, xmm1", "xmm0, M128"),
    "cvttps2dq": ("xmm0, xmm1", "xmm0, M128"),
    "cvtpd2dq": ("xmm0, xmm1", "xmm0, M128"),
    "cvttpd2dq": ("xmm0, xmm1", "xmm0, M128"),
    "cvtps2pd": ("xmm0, xmm1", "xmm0, M64"),
    "cvtpd2ps": ("xmm0, xmm1", "xmm0, M128"),
}


def source_width(mnemonic: str) -> int:
    """Lane width of a conversion's source: integers are 32-bit lanes, floats per their letter."""
    src = mnemonic.removeprefix("cvtt").removeprefix("cvt").split("2")[0]
    return {"si": 64, "dq": 32, "sd": 64, "pd": 64, "ss": 32, "ps": 32}[src]


def conversion_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    for _ in range(count):
        s = Setup(rng, data_bytes=0x200)
        width = source_width(mnemonic)
        if mnemonic.startswith("cvtdq"):
            b = sum((integer(rng) & 0xFFFF_FFFF) << (32 * i) for i in range(4))
        else:
            b = vector(rng, width)
        n = integer(rng)
        s.set("rbx", n)
        asm = form
        for size in (32, 64, 128):
            if f"M{size}" in form:
                value = n if mnemonic.startswith("cvtsi") else b
                asm = form.replace(f"M{size}", s.mem(0x40, size, value & ((1 << size) - 1)))
        yield float_case(rng, f"{mnemonic} {asm}", {0: vector(rng, 64), 1: b}, mxcsr(rng), s)


CONVERSION_FORMS = [(m, f) for m, forms in CONVERSIONS.items() for f in forms]


@pytest.mark.parametrize(("mnemonic", "form"), CONVERSION_FORMS)
def test_conversions_match_unicorn(rng, mnemonic, form):
    for case in conversion_cases(mnemonic, form, rng, CASES):
        check(case)


# -- the SDM where unicorn differs, and the exception flags (emu alone) -------------------------------------
def emu(asm: str, xmm: dict[int, int], control: int = MXCSR_DEFAULT) -> tuple[int, int]:
    """Run ``asm`` in emu under MXCSR = ``control``: (XMM0, MXCSR afterwards)."""
    case = Case(f"ldmxcsr dword ptr [rsi]; {asm}; stmxcsr dword ptr [rsi + 4]", regs={"rsi": DATA},
                xmm=xmm, data=struct.pack("<I", control))
    out = run_emu(case)
    assert not out.faulted, asm
    return out.xmm[0], struct.unpack_from("<I", out.data, 4)[0]


QNAN, SNAN = 0x7FF8_0000_0000_0001, 0x7FF0_0000_0000_0002
QNAN_BIG, SNAN_BIG = 0xFFF8_0000_0000_0005, 0xFFF4_0000_0000_0000


@pytest.mark.parametrize(("first", "second", "result"), [
    (QNAN, QNAN_BIG, QNAN),                      # two QNaNs: the first, although its significand is smaller
    (SNAN, QNAN_BIG, SNAN | 1 << 51),            # SNaN and QNaN: the first, quieted
    (QNAN, SNAN_BIG, QNAN),
    (SNAN, SNAN_BIG, SNAN | 1 << 51),            # two SNaNs: the first, quieted
])
@pytest.mark.parametrize("op", ["addsd", "subsd", "mulsd", "divsd", "addpd", "mulpd"])
def test_two_nan_operands_return_the_first_source_quieted(op, first, second, result):
    """SDM Vol. 1, table 4-7 (SSE column): "Return the first source operand"; unicorn uses the x87 rule."""
    value, flags = emu(f"{op} xmm0, xmm1", {0: first | first << 64, 1: second | second << 64})
    assert value & (2**64 - 1) == result
    assert bool(flags & 1) == (not first & 1 << 51 or not second & 1 << 51)     # IE for any SNaN


ONE, TWO, THREE = 0x3FF0_0000_0000_0000, 0x4000_0000_0000_0000, 0x4008_0000_0000_0000
MIN_NORMAL, MIN_DENORMAL, MAX = 0x0010_0000_0000_0000, 1, 0x7FEF_FFFF_FFFF_FFFF


@pytest.mark.parametrize(("asm", "a", "b", "result", "flags"), [
    ("addsd xmm0, xmm1", ONE, TWO, THREE, 0),
    ("divsd xmm0, xmm1", ONE, THREE, 0x3FD5_5555_5555_5555, PE),
    ("divsd xmm0, xmm1", ONE, 0, 0x7FF0 << 48, ZE),
    ("divsd xmm0, xmm1", 0, 0, 0xFFF8 << 48, IE),                  # the default "QNaN floating-point indefinite"
    ("subsd xmm0, xmm1", 0x7FF0 << 48, 0x7FF0 << 48, 0xFFF8 << 48, IE),
    ("sqrtsd xmm0, xmm1", ONE, 0xBFF0 << 48, 0xFFF8 << 48, IE),
    ("mulsd xmm0, xmm1", MAX, TWO, 0x7FF0 << 48, OE | PE),
    ("mulsd xmm0, xmm1", MIN_NORMAL, 0x3FE0 << 48, 0x0008 << 48, 0),   # exact denormal result: no UE when masked
    ("mulsd xmm0, xmm1", MIN_NORMAL, 0x3FD5_5555_5555_5555, 0x0005_5555_5555_5555, UE | PE),
    ("addsd xmm0, xmm1", MIN_DENORMAL, ONE, ONE, DE | PE),
    ("addsd xmm0, xmm1", QNAN, ONE, QNAN, 0),
    ("addsd xmm0, xmm1", SNAN, ONE, SNAN | 1 << 51, IE),
    ("maxsd xmm0, xmm1", QNAN, ONE, ONE, IE),                      # MAXSD: invalid even for a QNaN
    ("cvttsd2si rax, xmm1", 0, 0x7FF8 << 48, None, IE),
    ("cvtsd2si rax, xmm1", 0, 0x4004 << 48, None, PE),             # 2.5 rounds to 2: inexact
    ("cvtsi2sd xmm0, rax", 0, 0, 0, 0),
    ("ucomisd xmm0, xmm1", QNAN, ONE, None, 0),                    # a quiet compare: a QNaN is not invalid
    ("comisd xmm0, xmm1", QNAN, ONE, None, IE),
    ("cmpsd xmm0, xmm1, 1", QNAN, ONE, 0, IE),                     # CMPLTSD signals on a QNaN
    ("cmpsd xmm0, xmm1, 0", QNAN, ONE, 0, 0),                      # CMPEQSD does not
])
def test_exception_flags_follow_the_sdm(asm, a, b, result, flags):
    """SDM Vol. 1, 11.5.2: the flags an instruction sets in MXCSR (all exceptions masked)."""
    value, mxcsr = emu(asm, {0: a, 1: b})
    assert mxcsr & 0x3F == flags, asm
    if result is not None:
        assert value & (2**64 - 1) == result, asm


def test_exception_flags_are_sticky_and_ldmxcsr_clears_them():
    _, mxcsr = emu("divsd xmm0, xmm2; addsd xmm0, xmm1", {0: ONE, 1: ONE, 2: 0})
    assert mxcsr & 0x3F == ZE
    _, mxcsr = emu("addsd xmm0, xmm1", {0: ONE, 1: ONE}, control=MXCSR_DEFAULT | ZE)
    assert mxcsr & 0x3F == ZE


def test_flush_to_zero_returns_a_signed_zero_for_a_tiny_result():
    """SDM Vol. 1, 10.2.3.3: with FTZ and underflow masked, "the processor ... returns a zero result with the
    sign of the true result" and sets PE and UE.  unicorn (QEMU 5) does not apply FTZ to SSE."""
    value, mxcsr = emu("mulsd xmm0, xmm1", {0: MIN_NORMAL | 1 << 63, 1: 0x3FE0 << 48}, MXCSR_DEFAULT | FTZ)
    assert (value & (2**64 - 1), mxcsr & 0x3F) == (1 << 63, UE | PE)
    value, _ = emu("cvtsd2ss xmm0, xmm1", {0: 0, 1: MIN_NORMAL}, MXCSR_DEFAULT | FTZ)
    assert value == 0


def test_denormals_are_zero_applies_to_min_and_max():
    """SDM Vol. 1, 10.2.3.4: DAZ converts "denormal source operands to a zero with the sign of the original
    operand before performing any computations"; MINSD then returns the (zero) second operand."""
    value, mxcsr = emu("minsd xmm0, xmm1", {0: ONE, 1: MIN_DENORMAL | 1 << 63}, MXCSR_DEFAULT | DAZ)
    assert (value, mxcsr & DE) == (1 << 63, 0)


@pytest.mark.parametrize(("rc", "result"), [(0, 2), (1, 2), (2, 3), (3, 2)])
def test_cvtsd2si_rounds_per_mxcsr(rc, result):
    """2.5 -> nearest-even 2, down 2, up 3, toward zero 2 (CVTTSD2SI always truncates)."""
    case = Case("ldmxcsr dword ptr [rsi]; cvtsd2si rax, xmm0; cvttsd2si rbx, xmm1", regs={"rsi": DATA},
                xmm={0: 0x4004 << 48, 1: 0xC004 << 48}, data=struct.pack("<I", MXCSR_DEFAULT | rc << 13))
    out = run_emu(case)
    assert (out.regs["rax"], out.regs["rbx"]) == (result, 2**64 - 2)
    check(case)


# -- the real CPU as the oracle ------------------------------------------------------------------------------
HARDWARE_PROGRAM = r"""
/* Each SSE floating-point instruction over special values and MXCSR settings, run on this CPU:
   one FNV-1a hash per instruction of every result and the MXCSR (exception flags) after it. */
#include <stdint.h>
#include <stdio.h>
#include <emmintrin.h>

static const uint64_t D[] = {0, 1ULL << 63, 0x7FF0ULL << 48, 0xFFF0ULL << 48, 0x7FF8ULL << 48, 0xFFF8ULL << 48,
    0x7FF8000000000123, 0x7FF0000000000001, 0xFFF4000000000000, 1, 0x000FFFFFFFFFFFFF, 0x800FFFFFFFFFFFFF,
    0x0010000000000000, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0xBFF8000000000000,
    0x3FE0000000000000, 0x4004000000000000, 0xC00C000000000000, 0x43E0000000000000, 0xC3E0000000000000,
    0x43F0000000000000, 0x41E0000000000000, 0xC1E0000000000000, 0xC1E0000000200000, 0x4340000000000001,
    0x3FD5555555555555, 0x0008000000000000, 0x3CA0000000000000, 0x0010000000000001, 0x4008000000000000};
static const uint32_t F[] = {0, 1u << 31, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FC00123, 0x7F800001,
    0xFFA00000, 1, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBFC00000, 0x3F000000,
    0x40200000, 0xC0600000, 0x5F000000, 0xDF000000, 0x5F800000, 0x4F000000, 0xCF000000, 0xCF000001, 0x4B800001,
    0x3EAAAAAB, 0x00400000, 0x33800000, 0x00800001, 0x40400000};
/* round to nearest, down, up, toward zero; DAZ; FTZ; DAZ+FTZ; PE already set (nearest, down) */
static const unsigned MX[] = {0x1f80, 0x3f80, 0x5f80, 0x7f80, 0x1fc0, 0x9f80, 0x9fc0, 0x1fa0, 0x3fa0};
#define N(a) (int)(sizeof a / sizeof a[0])
#define VALUES 48                      /* the special values, then random bit patterns */

static uint64_t state = 88172645463325252ULL, hash;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
static uint64_t dval(int i) { return i < N(D) ? D[i] : next(); }
static uint64_t fval(int i) { return i < N(F) ? F[i] : (uint32_t)next(); }
static uint64_t pair(int single, int i, int j) { return single ? fval(i) | fval(j) << 32 : dval(i); }
static void mix(uint64_t v) { hash = (hash ^ v) * 0x100000001b3ULL; }
static void mix_xmm(__m128i x) { mix(_mm_cvtsi128_si64(x)); mix(_mm_cvtsi128_si64(_mm_unpackhi_epi64(x, x))); }
static void report(const char *name) {
    printf("%-12s %016llx\n", name, (unsigned long long)hash);
    hash = 0xcbf29ce484222325ULL;
}

/* xmm0 = a (upper half fixed), xmm1 = b: OP xmm0, xmm1 (IMM: an immediate operand first) */
#define XMM(NAME, OP, SINGLE, STEP) static void NAME(void) { \
    for (int i = 0; i < VALUES; i++) for (int j = 0; j < VALUES; j++) for (int m = 0; m < N(MX); m += STEP) { \
        uint64_t a = pair(SINGLE, i, j), b = pair(SINGLE, j, i); unsigned mx = MX[m], out; \
        __m128i x = _mm_set_epi64x(0x1234567890abcdefLL, a), y = _mm_set_epi64x(b ^ 0x5555, b); \
        __asm__ volatile("ldmxcsr %2\n\t" OP " %1, %0\n\tstmxcsr %3" : "+x"(x) : "x"(y), "m"(mx), "m"(out)); \
        mix_xmm(x); mix(out); } \
    report(#NAME); }
#define COMI(NAME, SINGLE) static void NAME(void) { \
    for (int i = 0; i < VALUES; i++) for (int j = 0; j < VALUES; j++) { \
        __m128i x = _mm_set_epi64x(0, SINGLE ? fval(i) : dval(i)), y = _mm_set_epi64x(0, SINGLE ? fval(j) : dval(j)); \
        unsigned mx = 0x1f80, out; uint64_t flags; \
        __asm__ volatile("ldmxcsr %1\n\t" #NAME " %2, %3\n\tpushfq\n\tpopq %0\n\tstmxcsr %4" \
                         : "=r"(flags) : "m"(mx), "x"(y), "x"(x), "m"(out)); \
        mix(flags & 0x8d5); mix(out); } \
    report(#NAME); }
#define TO_INT(NAME, OP, SINGLE) static void NAME(void) { \
    for (int i = 0; i < 4 * VALUES; i++) for (int m = 0; m < N(MX); m++) { \
        uint64_t r = 0x1111111111111111ULL; unsigned mx = MX[m], out; \
        __m128i y = _mm_set_epi64x(0, SINGLE ? fval(i) : dval(i)); \
        __asm__ volatile("ldmxcsr %2\n\t" OP "\n\tstmxcsr %3" : "+r"(r) : "x"(y), "m"(mx), "m"(out)); \
        mix(r); mix(out); } \
    report(#NAME); }
#define FROM_INT(NAME, OP) static void NAME(void) { \
    for (int i = 0; i < 4 * VALUES; i++) for (int m = 0; m < N(MX); m++) { \
        uint64_t n = i < 10 ? (1ULL << (60 - 3 * i)) + i \
                   : i < 20 ? -((1ULL << (63 - 2 * i)) + 3 * i) : next() >> (i % 40); \
        unsigned mx = MX[m], out; __m128i x = _mm_set_epi64x(0x1234567890abcdefLL, 0x1111111111111111LL); \
        __asm__ volatile("ldmxcsr %2\n\t" OP "\n\tstmxcsr %3" : "+x"(x) : "r"(n), "m"(mx), "m"(out)); \
        mix_xmm(x); mix(out); } \
    report(#NAME); }

XMM(addsd, "addsd", 0, 1) XMM(subsd, "subsd", 0, 1) XMM(mulsd, "mulsd", 0, 1) XMM(divsd, "divsd", 0, 1)
XMM(sqrtsd, "sqrtsd", 0, 1) XMM(minsd, "minsd", 0, 1) XMM(maxsd, "maxsd", 0, 1)
XMM(addss, "addss", 1, 1) XMM(subss, "subss", 1, 1) XMM(mulss, "mulss", 1, 1) XMM(divss, "divss", 1, 1)
XMM(sqrtss, "sqrtss", 1, 1) XMM(minss, "minss", 1, 1) XMM(maxss, "maxss", 1, 1)
XMM(addpd, "addpd", 0, 1) XMM(mulpd, "mulpd", 0, 1) XMM(divpd, "divpd", 0, 1) XMM(sqrtpd, "sqrtpd", 0, 1)
XMM(minpd, "minpd", 0, 1) XMM(maxpd, "maxpd", 0, 1)
XMM(addps, "addps", 1, 1) XMM(subps, "subps", 1, 1) XMM(mulps, "mulps", 1, 1) XMM(divps, "divps", 1, 1)
XMM(sqrtps, "sqrtps", 1, 1) XMM(minps, "minps", 1, 1) XMM(maxps, "maxps", 1, 1)
XMM(cvtsd2ss, "cvtsd2ss", 0, 1) XMM(cvtss2sd, "cvtss2sd", 1, 1) XMM(cvtpd2ps, "cvtpd2ps", 0, 1)
XMM(cvtps2pd, "cvtps2pd", 1, 1) XMM(cvtdq2ps, "cvtdq2ps", 1, 1) XMM(cvtdq2pd, "cvtdq2pd", 1, 1)
XMM(cvtps2dq, "cvtps2dq", 1, 1) XMM(cvttps2dq, "cvttps2dq", 1, 1) XMM(cvtpd2dq, "cvtpd2dq", 0, 1)
XMM(cvttpd2dq, "cvttpd2dq", 0, 1)
XMM(cmpeqsd, "cmpsd $0,", 0, 4) XMM(cmpltsd, "cmpsd $1,", 0, 4) XMM(cmplesd, "cmpsd $2,", 0, 4)
XMM(cmpunordsd, "cmpsd $3,", 0, 4) XMM(cmpneqsd, "cmpsd $4,", 0, 4) XMM(cmpnltsd, "cmpsd $5,", 0, 4)
XMM(cmpnlesd, "cmpsd $6,", 0, 4) XMM(cmpordsd, "cmpsd $7,", 0, 4)
XMM(cmpltps, "cmpps $1,", 1, 4) XMM(cmpneqps, "cmpps $4,", 1, 4) XMM(cmpnless, "cmpss $6,", 1, 4)
XMM(cmpnltpd, "cmppd $5,", 0, 4)
COMI(ucomisd, 0) COMI(comisd, 0) COMI(ucomiss, 1) COMI(comiss, 1)
TO_INT(cvtsd2si_64, "cvtsd2si %1, %q0", 0) TO_INT(cvttsd2si_64, "cvttsd2si %1, %q0", 0)
TO_INT(cvtss2si_64, "cvtss2si %1, %q0", 1) TO_INT(cvttss2si_64, "cvttss2si %1, %q0", 1)
TO_INT(cvtsd2si_32, "cvtsd2si %1, %k0", 0) TO_INT(cvttsd2si_32, "cvttsd2si %1, %k0", 0)
TO_INT(cvtss2si_32, "cvtss2si %1, %k0", 1) TO_INT(cvttss2si_32, "cvttss2si %1, %k0", 1)
FROM_INT(cvtsi2sd_64, "cvtsi2sdq %q1, %0") FROM_INT(cvtsi2ss_64, "cvtsi2ssq %q1, %0")
FROM_INT(cvtsi2sd_32, "cvtsi2sdl %k1, %0") FROM_INT(cvtsi2ss_32, "cvtsi2ssl %k1, %0")

int main(void) {
    static void (*const tests[])(void) = {addsd, subsd, mulsd, divsd, sqrtsd, minsd, maxsd,
        addss, subss, mulss, divss, sqrtss, minss, maxss, addpd, mulpd, divpd, sqrtpd, minpd, maxpd,
        addps, subps, mulps, divps, sqrtps, minps, maxps, cvtsd2ss, cvtss2sd, cvtpd2ps, cvtps2pd, cvtdq2ps,
        cvtdq2pd, cvtps2dq, cvttps2dq, cvtpd2dq, cvttpd2dq, cmpeqsd, cmpltsd, cmplesd, cmpunordsd, cmpneqsd,
        cmpnltsd, cmpnlesd, cmpordsd, cmpltps, cmpneqps, cmpnless, cmpnltpd, ucomisd, comisd, ucomiss, comiss,
        cvtsd2si_64, cvttsd2si_64, cvtss2si_64, cvttss2si_64, cvtsd2si_32, cvttsd2si_32, cvtss2si_32,
        cvttss2si_32, cvtsi2sd_64, cvtsi2ss_64, cvtsi2sd_32, cvtsi2ss_32};
    hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < N(tests); i++) tests[i]();
    return 0;
}
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("gcc"),
                    reason="needs an x86-64 host with gcc and a static libc")
def test_every_float_instruction_matches_this_cpu_including_mxcsr_flags(tmp_path: Path):
    """Where unicorn falls short (NaN pairs, FTZ, DAZ with MIN/MAX, the exception flags), the host CPU
    is the oracle: a C program runs each instruction over special values under nine MXCSR settings
    and prints one hash per instruction of every result and MXCSR; natively and under emu they must
    be the same.  About 30 s of emulation."""
    source, binary = tmp_path / "sse_float.c", tmp_path / "sse_float"
    source.write_text(HARDWARE_PROGRAM)
    built = subprocess.run(["gcc", "-O1", "-static", "-o", str(binary), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, f"cannot build a static program (run ./scripts/setup): {built.stderr[:200]}"
    native = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    emulated = subprocess.run([sys.executable, "-m", "emu", "run", str(binary)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2], check=True).stdout
    on_cpu = dict(line.split() for line in native.splitlines())
    on_emu = dict(line.split() for line in emulated.splitlines())
    mismatched = [f"{name}: cpu {h} emu {on_emu.get(name)}" for name, h in on_cpu.items() if on_emu.get(name) != h]
    assert len(on_cpu) == 65 and not mismatched, "\n".join(mismatched)


# -- the fuzz run ------------------------------------------------------------------------------------------
@pytest.mark.fuzz
def test_fuzz_sse_float(rng):
    n = 10 * CASES
    for mnemonic, form in ARITH_FORMS:
        for case in arith_cases(mnemonic, form, rng, n):
            check(case)
    for mnemonic, form in COMPARE_FORMS:
        for case in compare_cases(mnemonic, form, rng, n):
            check(case)
    for mnemonic, form in CONVERSION_FORMS:
        for case in conversion_cases(mnemonic, form, rng, n):
            check(case)
