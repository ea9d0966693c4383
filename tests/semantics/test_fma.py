"""FMA3 and F16C (``cpu/semantics/fma.py``, ``f16c.py``) against the host CPU.

Every form (132/213/231, packed and scalar, 128 and 256 bits, register and
memory) over special values and random numbers under random MXCSR rounding,
DAZ and FTZ, results and MXCSR compared bit for bit; cases built to need the
single rounding (products whose low bits cancel against the addend, exact
zeros, ties, overflow and underflow).  Stepped, as blocks and through the JIT.
"""

from __future__ import annotations

import random
import struct

import pytest

from cpu.semantics.fma import FMA
from tests.semantics.host import check_host, needs_host
from tests.semantics.test_avx import MEMORY, case, floats, mxcsr
from tests.semantics.test_sse_float import SPECIAL

pytestmark = needs_host

CASES = 4
PTR = {"ss": "dword", "sd": "qword"}


def cancelling(rng: random.Random, width: int, bits: int = 256) -> tuple[int, int, int]:
    """x, y, z with z close to -(x * y) rounded: the exact sum needs the product's low bits."""
    code = "<f" if width == 32 else "<d"
    out: list[list[int]] = [[], [], []]
    for _ in range(bits // width):
        x, y = rng.uniform(-2, 2) * 2.0 ** rng.randint(-30, 30), rng.uniform(-2, 2)
        z = -(x * y) * (1 + rng.choice((0, 2.0 ** -20, -(2.0 ** -23), 2.0 ** -40)))
        for k, v in enumerate((x, y, z)):
            out[k].append(int.from_bytes(struct.pack(code, v), "little") if abs(v) < 1e38 or width == 64 else 0)
    return tuple(sum(v << (width * i) for i, v in enumerate(lane)) for lane in out)


@pytest.mark.parametrize("mnemonic", FMA)
def test_fused_multiply_add_matches_the_host(rng, mnemonic):
    shape = mnemonic[-2:]
    width = 32 if shape in ("ps", "ss") else 64
    forms = (("xmm", "xmm2"), ("xmm", f"{PTR[shape]} ptr [rsi + {MEMORY:#x}]")) if shape[0] == "s" else \
        (("ymm", "ymm2"), ("ymm", f"ymmword ptr [rsi + {MEMORY:#x}]"), ("xmm", "xmm2"),
         ("xmm", f"xmmword ptr [rsi + {MEMORY:#x}]"))
    for v, third in forms:
        for k in range(CASES):
            values = list(cancelling(rng, width)) if k % 2 else [floats(rng, width) for _ in range(3)]
            sources = [values[0], values[1], values[2], 0]
            check_host(case(rng, f"{mnemonic} {v}0, {v}1, {third}", [sources[0], sources[1], sources[2], 0],
                            mxcsr(rng), memory=values[2]))


@pytest.mark.parametrize("width", [32, 64])
def test_fused_multiply_add_over_every_pair_of_special_values(rng, width):
    """Each special value as a multiplicand against the others, with special and random addends."""
    special = SPECIAL[width]
    name = "vfmadd231ps" if width == 32 else "vfmadd231pd"
    lanes = 256 // width
    for start in range(0, len(special) ** 2, lanes):
        pairs = [divmod(n % len(special) ** 2, len(special)) for n in range(start, start + lanes)]
        x = sum(special[i] << (width * j) for j, (i, _) in enumerate(pairs))
        y = sum(special[k] << (width * j) for j, (_, k) in enumerate(pairs))
        z = sum(rng.choice(special) << (width * j) for j in range(lanes))
        check_host(case(rng, f"{name} ymm0, ymm1, ymm2", [z, x, y, 0], mxcsr(rng)))


# -- F16C ------------------------------------------------------------------------------------------------------
HALF_SPECIAL = (0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7E01, 0x7C01, 0xFD00, 0x0001, 0x03FF, 0x83FF, 0x0400,
                0x7BFF, 0xFBFF, 0x3C00, 0xBE00, 0x3555)
"""+-0, +-inf, QNaNs, SNaNs, denormals, the smallest normal, +-max, 1, -1.5, 1/3."""
SINGLE_FOR_HALF = (0x477FE000, 0x477FF000, 0x477FEFFF, 0x47800000, 0xC77FF000, 0x387FC000, 0x38800000,
                   0x33800000, 0x33000000, 0x33000001, 0x337FFFFF, 0x3F801000, 0x3F803000, 0x3F802000)
"""Around the binary16 limits and ties: 65504, the overflow threshold, below it, 65536, the smallest
normal and denormal and half of it, ties between neighbours."""


def halves(rng: random.Random) -> int:
    return sum((rng.choice(HALF_SPECIAL) if rng.random() < 0.5 else rng.getrandbits(16)) << (16 * i)
               for i in range(16))


def singles(rng: random.Random) -> int:
    def lane() -> int:
        k = rng.random()
        if k < 0.3:
            return rng.choice(SINGLE_FOR_HALF) | (rng.getrandbits(1) << 31)
        if k < 0.6:
            return rng.choice(SPECIAL[32])
        return int.from_bytes(struct.pack("<f", rng.uniform(-1, 1) * 2.0 ** rng.randint(-26, 17)), "little")
    return sum(lane() << (32 * i) for i in range(8))


@pytest.mark.parametrize("asm", ["vcvtph2ps ymm0, xmm1", "vcvtph2ps xmm0, xmm1",
                                 f"vcvtph2ps ymm0, xmmword ptr [rsi + {MEMORY:#x}]",
                                 f"vcvtph2ps xmm0, qword ptr [rsi + {MEMORY:#x}]"])
def test_half_to_single_matches_the_host(rng, asm):
    for _ in range(2 * CASES):
        v = halves(rng)
        check_host(case(rng, asm, [0, v, 0, 0], mxcsr(rng), memory=v))


@pytest.mark.parametrize("imm", [0, 1, 2, 3, 4, 7])
@pytest.mark.parametrize("form", ["xmm0, ymm1", "xmm0, xmm1", f"xmmword ptr [rsi + {MEMORY:#x}], ymm1",
                                  f"qword ptr [rsi + {MEMORY:#x}], xmm1"])
def test_single_to_half_matches_the_host(rng, form, imm):
    for _ in range(CASES):
        check_host(case(rng, f"vcvtps2ph {form}, {imm}", [0, singles(rng), 0, 0], mxcsr(rng)))
