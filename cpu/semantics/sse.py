"""SSE/SSE2 data movement and 128-bit integer arithmetic, MXCSR access, FXSAVE/FXRSTOR.

Intel SDM Vol. 1 ch. 10-11 (SSE, SSE2), the instruction pages of Vol. 2, and
Vol. 1, 10.5.1 (the FXSAVE image).  An XMM register is one 128-bit value; a
*lane* is an 8/16/32/64-bit slice of it, lane 0 in the low bits.  Lane
arithmetic is done by small pure helpers (``cpu.semantics.HELPERS``) named
after their instruction, so ``paddb`` lowers to one call ``paddb(a, b)``.

Floating-point arithmetic, comparisons and conversions are in
``sse_float``; the MMX-register forms of the integer instructions run these
semantics through ``mmx``.  MOVSD and CMPSD share their mnemonic with string instructions:
the string module owns those mnemonics and calls :func:`movsd_xmm` and
:func:`cmpsd_xmm` when an operand is an XMM register.

The FXSAVE image holds the x87 registers as ST(0)..ST(7) (relative to TOP) and the abridged
tag byte by physical register, as ``cpu.semantics.fpu`` keeps them.

The image's x87 last-instruction pointers FIP, FDP and FOP are those ``cpu.semantics.fpu``
records: 64-bit offsets in FXSAVE64's layout, 32-bit ones (FCS and FDS zero) in FXSAVE's.

Not modelled: non-temporal hints (MOVNTDQ, MOVNTI, MOVNTPS are plain
stores), MASKMOVDQU.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable

from cpu.decoder import Kind
from cpu.exceptions import GuestFault, Vector
from cpu.semantics import call, helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.fpu import Fpu
from cpu.semantics.xmm import MASK32, MASK64, MASK128, MXCSR_MASK, join, lanes, repeat

# -- lane-wise integer arithmetic ----------------------------------------------------
WRAP, SIGNED_SATURATE, UNSIGNED_SATURATE = "wrap", "signed saturation", "unsigned saturation"

LANE_OPS: dict[str, tuple[int, bool, Callable[[int, int], int], str]] = {
    # mnemonic: (lane width, lanes read as signed, lane function, how a result fits its lane)
    "paddb": (8, False, operator.add, WRAP),
    "paddw": (16, False, operator.add, WRAP),
    "paddd": (32, False, operator.add, WRAP),
    "paddq": (64, False, operator.add, WRAP),
    "psubb": (8, False, operator.sub, WRAP),
    "psubw": (16, False, operator.sub, WRAP),
    "psubd": (32, False, operator.sub, WRAP),
    "psubq": (64, False, operator.sub, WRAP),
    "paddsb": (8, True, operator.add, SIGNED_SATURATE),
    "paddsw": (16, True, operator.add, SIGNED_SATURATE),
    "psubsb": (8, True, operator.sub, SIGNED_SATURATE),
    "psubsw": (16, True, operator.sub, SIGNED_SATURATE),
    "paddusb": (8, False, operator.add, UNSIGNED_SATURATE),
    "paddusw": (16, False, operator.add, UNSIGNED_SATURATE),
    "psubusb": (8, False, operator.sub, UNSIGNED_SATURATE),
    "psubusw": (16, False, operator.sub, UNSIGNED_SATURATE),
    "pcmpgtb": (8, True, lambda x, y: -(x > y), WRAP),
    "pcmpgtw": (16, True, lambda x, y: -(x > y), WRAP),
    "pcmpgtd": (32, True, lambda x, y: -(x > y), WRAP),
    "pminub": (8, False, min, WRAP),
    "pmaxub": (8, False, max, WRAP),
    "pminsw": (16, True, min, WRAP),
    "pmaxsw": (16, True, max, WRAP),
    "pavgb": (8, False, lambda x, y: (x + y + 1) >> 1, WRAP),
    "pavgw": (16, False, lambda x, y: (x + y + 1) >> 1, WRAP),
    "pmullw": (16, False, operator.mul, WRAP),
    "pmulhw": (16, True, lambda x, y: (x * y) >> 16, WRAP),
    "pmulhuw": (16, False, lambda x, y: (x * y) >> 16, WRAP),
    "pmuludq": (64, False, lambda x, y: (x & MASK32) * (y & MASK32), WRAP),
}


def lane_helper(name: str, width: int, signed: bool, fn: Callable[[int, int], int], fit: str) -> None:
    """Register helper ``name(a, b)``: ``fn`` on each pair of ``width``-bit lanes, the result fitted by ``fit``."""
    mask = (1 << width) - 1
    lo, hi = (-(1 << (width - 1)), mask >> 1) if fit == SIGNED_SATURATE else (0, mask)
    saturate = fit != WRAP

    def h(a: int, b: int) -> int:
        out = map(fn, lanes(a, width, signed), lanes(b, width, signed))
        if saturate:
            return join([min(max(r, lo), hi) & mask for r in out], width)
        return join([r & mask for r in out], width)

    h.__name__ = name
    h.__doc__ = f"{name.upper()}: {width}-bit lanes, {'signed' if signed else 'unsigned'}, {fit}."
    helper(h)


for _name, _spec in LANE_OPS.items():
    lane_helper(_name, *_spec)


def _equal_lanes(width: int) -> Callable[[int, int], int]:
    """PCMPEQx without a loop: a lane of a ^ b is zero exactly when no bit of it is set."""
    low = repeat((1 << (width - 1)) - 1, width)     # every bit of a lane but its top one
    top = repeat(1 << (width - 1), width)
    fill = (1 << width) - 1

    def pcmpeq(a: int, b: int) -> int:
        x = a ^ b
        nonzero = ((x & low) + low) | x             # a lane's top bit: set iff the lane is nonzero
        return ((~nonzero & top) >> (width - 1)) * fill
    return pcmpeq


for _name, _width in (("pcmpeqb", 8), ("pcmpeqw", 16), ("pcmpeqd", 32)):
    _fn = _equal_lanes(_width)
    _fn.__name__ = _name
    helper(_fn)


@helper
def pmaddwd(a: int, b: int) -> int:
    """Signed 16x16 products, adjacent pairs summed into 32-bit lanes (0x8000 pairs wrap)."""
    p = [x * y for x, y in zip(lanes(a, 16, True), lanes(b, 16, True), strict=True)]
    return join([(p[i] + p[i + 1]) & MASK32 for i in range(0, 8, 2)], 32)


@helper
def psadbw(a: int, b: int) -> int:
    """Sum of absolute byte differences of each 64-bit half, in that half's low 16 bits."""
    d = [abs(x - y) for x, y in zip(lanes(a, 8), lanes(b, 8), strict=True)]
    return sum(d[:8]) | (sum(d[8:]) << 64)


@X.lane_form(*LANE_OPS, "pcmpeqb", "pcmpeqw", "pcmpeqd", "pmaddwd", "psadbw")
def lanewise(ops, name, insn, a, b):
    """PADDB xmm1, xmm2/m128 and the others: helper(a, b), the helper named after the mnemonic."""
    return ops.helper(name, a, b)


# -- logical ---------------------------------------------------------------------------
LOGIC = {"pand": "and", "andps": "and", "andpd": "and", "pandn": "andn", "andnps": "andn", "andnpd": "andn",
          "por": "or", "orps": "or", "orpd": "or", "pxor": "xor", "xorps": "xor", "xorpd": "xor"}


@X.lane_form(*LOGIC)
def logical(ops, name, insn, a, b):
    """Bitwise operations on all 128 bits; ANDN complements the first source."""
    match LOGIC[name]:
        case "and":
            return ops.and_(a, b)
        case "andn":
            return ops.and_(ops.not_(a, 128), b)
        case "or":
            return ops.or_(a, b)
        case _:
            return ops.xor(a, b)


# -- shifts ------------------------------------------------------------------------------
def _shift_helper(name: str, kind: str) -> None:
    def shift(a: int, count: int, width: int) -> int:
        if kind == "sra":
            n = min(count, width - 1)
            return join([r & ((1 << width) - 1) for r in (x >> n for x in lanes(a, width, True))], width)
        if count >= width:
            return 0
        keep = repeat(((1 << width) - 1) << count & ((1 << width) - 1), width)
        if kind == "sll":
            return (a << count) & keep
        return (a >> count) & (keep >> count)
    shift.__name__ = name
    shift.__doc__ = f"{name.upper()}: every lane shifted by ``count``; a count >= the lane width " + (
        "fills each lane with its sign." if kind == "sra" else "clears it.")
    helper(shift)


for _kind in ("sll", "srl", "sra"):
    _shift_helper("p" + _kind, _kind)

SHIFTS = {f"p{kind}{s}": (f"p{kind}", w) for kind in ("sll", "srl") for s, w in (("w", 16), ("d", 32), ("q", 64))}
SHIFTS.update({"psraw": ("psra", 16), "psrad": ("psra", 32)})


@X.lane_form(*SHIFTS, kind=X.SHIFT)
def shift(ops, name, insn, a, count):
    """PSLLW xmm, imm8 / xmm, xmm/m128: every lane by the same count (the source's low 64 bits)."""
    helper_name, width = SHIFTS[name]
    return ops.helper(helper_name, a, count, width)


@X.lane_form("pslldq", "psrldq", kind=X.SHIFT)
def shift_bytes(ops, name, insn, a, count):
    """Whole-register byte shift by an imm8; counts above 15 clear the register."""
    n = 8 * min(count, 16)
    return ops.shl(a, n, 128) if name == "pslldq" else ops.shr(a, n)


# -- shuffles, unpacks, packs -------------------------------------------------------------
@helper
def pshufd(a: int, order: int) -> int:
    d = lanes(a, 32)
    return join([d[(order >> 2 * i) & 3] for i in range(4)], 32)


@helper
def pshuflw(a: int, order: int) -> int:
    w = lanes(a, 16)
    return join([w[(order >> 2 * i) & 3] for i in range(4)] + list(w[4:]), 16)


@helper
def pshufhw(a: int, order: int) -> int:
    w = lanes(a, 16)
    return join(list(w[:4]) + [w[4 + ((order >> 2 * i) & 3)] for i in range(4)], 16)


@helper
def shufps(a: int, b: int, order: int) -> int:
    x, y = lanes(a, 32), lanes(b, 32)
    return join([x[order & 3], x[(order >> 2) & 3], y[(order >> 4) & 3], y[(order >> 6) & 3]], 32)


@helper
def shufpd(a: int, b: int, order: int) -> int:
    return ((a >> 64 * (order & 1)) & MASK64) | (((b >> 64 * ((order >> 1) & 1)) & MASK64) << 64)


@X.lane_form("pshufd", "pshuflw", "pshufhw", kind=X.UNARY)
def shuffle(ops, name, insn, a, b):
    """PSHUFD xmm1, xmm2/m128, imm8: lanes of the source chosen by the imm8."""
    return ops.helper(name, b, insn.operands[-1].imm)


@X.lane_form("shufps", "shufpd")
def shuffle2(ops, name, insn, a, b):
    return ops.helper(name, a, b, insn.operands[-1].imm)


@helper
def unpack_low(a: int, b: int, width: int) -> int:
    """Interleave the low halves: a0, b0, a1, b1, ..."""
    x, y, n = lanes(a, width), lanes(b, width), 64 // width
    return join([v for pair in zip(x[:n], y[:n], strict=True) for v in pair], width)


@helper
def unpack_high(a: int, b: int, width: int) -> int:
    """Interleave the high halves."""
    x, y, n = lanes(a, width), lanes(b, width), 64 // width
    return join([v for pair in zip(x[n:], y[n:], strict=True) for v in pair], width)


UNPACKS = {f"punpck{h}{s}": (f"unpack_{half}", w) for h, half in (("l", "low"), ("h", "high"))
            for s, w in (("bw", 8), ("wd", 16), ("dq", 32), ("qdq", 64))}
UNPACKS.update({f"unpck{h}{s}": (f"unpack_{half}", w) for h, half in (("l", "low"), ("h", "high"))
                 for s, w in (("ps", 32), ("pd", 64))})


@X.lane_form(*UNPACKS)
def unpack(ops, name, insn, a, b):
    helper_name, width = UNPACKS[name]
    return ops.helper(helper_name, a, b, width)


def pack_helper(name: str, width: int, signed_result: bool) -> None:
    """Register helper ``name(a, b)``: signed ``width``-bit lanes of a then b, saturated to half width."""
    half = width // 2
    lo, hi = (-(1 << (half - 1)), (1 << (half - 1)) - 1) if signed_result else (0, (1 << half) - 1)
    mask = (1 << half) - 1

    def pack(a: int, b: int) -> int:
        both = lanes(a, width, True) + lanes(b, width, True)
        return join([min(max(v, lo), hi) & mask for v in both], half)
    pack.__name__ = name
    pack.__doc__ = f"{name.upper()}: signed {width}-bit lanes of a, then of b, saturated to {half} bits."
    helper(pack)


for _name, _width, _signed in (("packsswb", 16, True), ("packuswb", 16, False), ("packssdw", 32, True)):
    pack_helper(_name, _width, _signed)


@X.lane_form("packsswb", "packuswb", "packssdw")
def pack(ops, name, insn, a, b):
    return ops.helper(name, a, b)


@helper
def movmsk(a: int, width: int) -> int:
    """The top bit of every ``width``-bit lane, lane i in bit i."""
    return int(format(a, "0128b")[::width], 2)


@semantics("pmovmskb", "movmskps", "movmskpd")
def move_mask(ops, insn, dst, src):
    width = {"pmovmskb": 8, "movmskps": 32, "movmskpd": 64}[insn.mnemonic]
    ops.write(dst, ops.helper("movmsk", ops.read(src), width))


@semantics("pextrw")
def pextrw(ops, insn, dst, src, index):
    """PEXTRW r32, xmm/mm, imm8: the word imm8 modulo the register's word count."""
    ops.write(dst, ops.and_(ops.shr(ops.read(src), 16 * (index.imm & (src.size // 16 - 1))), 0xFFFF))


@semantics("pinsrw")
def pinsrw(ops, insn, dst, src, index):
    shift = 16 * (index.imm & (dst.size // 16 - 1))
    a, word = ops.read(dst), ops.trunc(ops.read(src), 16)
    ops.write(dst, ops.or_(ops.and_(a, ((1 << dst.size) - 1) ^ (0xFFFF << shift)), ops.shl(word, shift, dst.size)))


# -- moves -------------------------------------------------------------------------------------
@semantics("movdqa", "movdqu", "movaps", "movups", "movapd", "movupd", "movntdq", "movntps", "movntpd")
def move128(ops, insn, dst, src):
    """Whole-register moves; the aligned forms fault on a misaligned memory operand."""
    X.write(ops, insn, dst, X.read(ops, insn, src))


@semantics("movnti")
def movnti(ops, insn, dst, src):
    ops.write(dst, ops.read(src))


@semantics("movd", "movq")
def movd_movq(ops, insn, dst, src):
    """The low 32/64 bits between XMM, GPR and memory; an XMM destination is zero-extended."""
    size = 32 if insn.mnemonic == "movd" else 64
    ops.write(dst, ops.trunc(ops.read(src), size))


def move_scalar(ops, dst, src, size: int) -> None:
    """MOVSS/MOVSD: xmm, xmm merges the low lane; a load zeroes the rest; a store writes the lane."""
    value = ops.trunc(ops.read(src), size)
    if dst.kind is Kind.REG and src.kind is Kind.REG:
        value = ops.or_(ops.and_(ops.read(dst), MASK128 ^ ((1 << size) - 1)), value)
    ops.write(dst, value)


@semantics("movss")
def movss(ops, insn, dst, src):
    move_scalar(ops, dst, src, 32)


def movsd_xmm(ops, insn, dst, src):
    """MOVSD xmm1, xmm2 / xmm1, m64 / m64, xmm1 (the string module owns the mnemonic)."""
    move_scalar(ops, dst, src, 64)


def cmpsd_xmm(ops, insn, dst, src, imm):
    """CMPSD xmm1, xmm2/m64, imm8 (the string module owns the mnemonic)."""
    X.legacy(ops, insn, dst, src, imm)


@semantics("movhps", "movhpd", "movlps", "movlpd")
def move_half(ops, insn, dst, src):
    """Load one 64-bit half of an XMM register from m64, or store it."""
    high = insn.mnemonic.startswith("movh")
    if dst.kind is Kind.MEM:
        v = ops.read(src)
        ops.write(dst, ops.shr(v, 64) if high else ops.trunc(v, 64))
        return
    a, m = ops.read(dst), ops.read(src)
    if high:
        ops.write(dst, ops.or_(ops.trunc(a, 64), ops.shl(m, 64, 128)))
    else:
        ops.write(dst, ops.or_(ops.and_(a, MASK128 ^ MASK64), m))


@semantics("movhlps")
def movhlps(ops, insn, dst, src):
    a, b = ops.read(dst), ops.read(src)
    ops.write(dst, ops.or_(ops.and_(a, MASK128 ^ MASK64), ops.shr(b, 64)))


@semantics("movlhps")
def movlhps(ops, insn, dst, src):
    a, b = ops.read(dst), ops.read(src)
    ops.write(dst, ops.or_(ops.trunc(a, 64), ops.shl(ops.trunc(b, 64), 64, 128)))


# -- MXCSR and the FXSAVE image -----------------------------------------------------------------
@semantics("ldmxcsr")
def ldmxcsr(ops, insn, src):
    """#GP(0) when a reserved bit (outside MXCSR_MASK) is set."""
    value = ops.read(src)
    ops.fault_if(ops.ne(ops.and_(value, MASK32 ^ MXCSR_MASK), 0), Vector.GP, 0)
    ops.set_reg("mxcsr", value)


@semantics("stmxcsr")
def stmxcsr(ops, insn, dst):
    ops.write(dst, ops.reg("mxcsr"))


# The FXSAVE image (SDM Vol. 1, table 10-2, the 64-bit layout):
#   0 FCW, 2 FSW, 4 abridged FTW, 5 reserved, 6 FOP, 8 FIP (8 bytes), 16 FDP (8 bytes),
#   24 MXCSR, 28 MXCSR_MASK, 32 ST0..ST7 (10 bytes in each 16), 160 XMM0..XMM15, 416-511 reserved/available
FX_MXCSR, FX_ST0, FX_XMM0 = 24, 32, 160
FX_SIZE = 512


def save_legacy(cpu, image: bytearray, x87: bool, mxcsr: bool, xmm: bool, wide: bool = True) -> None:
    """Write parts of the FXSAVE image (also XSAVE's legacy region): the x87 fields and registers (ST(0)..ST(7),
    relative to TOP), MXCSR and MXCSR_MASK, the XMM registers.  ``wide``: the REX.W layout, 64-bit FIP and FDP;
    else 32-bit offsets with FCS and FDS (stored as zero, ``cpu.semantics.fpu``) above them."""
    s = cpu.state
    if x87:
        mask = MASK64 if wide else MASK32
        struct.pack_into("<HHBxHQQ", image, 0, s.fcw, s.fsw, s.ftw & 0xFF, s.fop, s.fip & mask, s.fdp & mask)
        fpu = Fpu(cpu)
        for i in range(8):                                   # each register's 6 reserved bytes written as 0
            image[FX_ST0 + 16 * i:FX_ST0 + 16 * i + 16] = fpu.get(i).to_bytes(10, "little") + bytes(6)
    if mxcsr:
        struct.pack_into("<II", image, FX_MXCSR, s.mxcsr, MXCSR_MASK)
    if xmm:
        image[FX_XMM0:FX_XMM0 + 256] = b"".join(s.xmm(i).to_bytes(16, "little") for i in range(16))


def image_mxcsr(image: bytes) -> int:
    """The MXCSR of an FXSAVE image; #GP(0) when it sets reserved bits (then nothing may be loaded)."""
    mxcsr = struct.unpack_from("<I", image, FX_MXCSR)[0]
    if mxcsr & ~MXCSR_MASK:
        raise GuestFault(Vector.GP, 0, detail=f"reserved MXCSR bits in {mxcsr:#x}")
    return mxcsr


def load_legacy(cpu, image: bytes, x87: bool, mxcsr: bool, xmm: bool) -> None:
    """Load parts of an FXSAVE image (the caller has checked its MXCSR with :func:`image_mxcsr`)."""
    s = cpu.state
    if x87:
        s.fcw, s.fsw, s.ftw, s.fop, s.fip, s.fdp = struct.unpack_from("<HHBxHQQ", image)
        s.fop &= 0x7FF
        Fpu(cpu).load_registers(b"".join(image[FX_ST0 + 16 * i:FX_ST0 + 16 * i + 10] for i in range(8)))
    if mxcsr:
        s.mxcsr = image_mxcsr(image)
    if xmm:
        for i in range(16):
            s.set_xmm(i, int.from_bytes(image[FX_XMM0 + 16 * i:FX_XMM0 + 16 * i + 16], "little"))


@call
def fxsave(cpu, address: int, wide: int = 1) -> None:
    """Write the x87/SSE state image (``wide``: FXSAVE64's); bytes 416-511 are left untouched."""
    image = bytearray(cpu.mem.read(address, FX_SIZE))      # one write below: a fault leaves memory as it was
    save_legacy(cpu, image, True, True, True, bool(wide))
    cpu.mem.write(address, image)


@call
def fxrstor(cpu, address: int) -> None:
    """Load the image written by FXSAVE; #GP(0) (and no change) when its MXCSR sets reserved bits."""
    image = cpu.mem.read(address, FX_XMM0 + 16 * 16)
    image_mxcsr(image)
    load_legacy(cpu, image, True, True, True)


def _fx_address(ops, opnd):
    address = ops.address(opnd)
    ops.fault_if(ops.ne(ops.and_(address, 15), 0), Vector.GP, 0)
    return address


@semantics("fxsave", "fxsave64")
def fxsave_insn(ops, insn, dst):
    """FXSAVE m512byte: 16-byte aligned, else #GP(0)."""
    ops.call("fxsave", _fx_address(ops, dst), int(insn.mnemonic == "fxsave64"))


@semantics("fxrstor", "fxrstor64")
def fxrstor_insn(ops, insn, src):
    ops.call("fxrstor", _fx_address(ops, src))
