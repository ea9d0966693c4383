"""The XSAVE feature set: XSAVE, XSAVEOPT, XSAVEC, XRSTOR, XGETBV and XSETBV.

Intel SDM Vol. 1, 13.7-13.11 (the operation of XSAVE, XRSTOR, XSAVEOPT and
XSAVEC; the standard and compacted formats) and the instruction pages of
Vol. 2C.  The area's layout and XINUSE are in ``cpu.xsave``; the legacy
region is written and read by the same routines as FXSAVE's image
(``cpu.semantics.sse``).  RFBM, the components an instruction touches, is
XCR0 AND EDX:EAX.

* XSAVE writes every RFBM component and, for those, XSTATE_BV[i] = XINUSE[i]
  (other header bytes untouched); MXCSR goes with SSE or AVX.
* XSAVEOPT skips the components in their initial configuration (and writes
  XSTATE_BV[i] = 0 for them); the "modified" optimisation is not used (every
  other component is always written, which the SDM allows).
* XSAVEC writes the compacted format: XCOMP_BV = RFBM | bit 63, XSTATE_BV =
  XINUSE AND RFBM, only the components in use; MXCSR belongs to SSE there
  (XINUSE[1] counts an MXCSR other than 1F80H as SSE in use).
* XRSTOR reads either format: a component whose XSTATE_BV bit is set is
  loaded, one whose bit is clear is initialised, one outside RFBM is left
  alone; MXCSR is loaded with SSE or AVX from a standard area, with SSE
  from a compacted one (and set to 1F80H when SSE is initialised); #GP(0) for
  a malformed header or reserved MXCSR bits, before any change.  The area must be 64-byte aligned (#GP(0)).
* XGETBV (ECX = 0: XCR0; 1: XINUSE AND XCR0) and the XSAVE instructions #UD
  while CR4.OSXSAVE = 0; XSETBV is CPL 0 only and #GP(0) for an XCR0 that is
  not a supported, consistent set (x87 always, AVX only with SSE).

The x87 FIP, FDP and FOP fields are stored in FXSAVE64's layout (64-bit offsets) by every
form, XSAVE without REX.W too.

Not modelled: XSAVES/XRSTORS and the supervisor components.
"""

from __future__ import annotations

import struct

from cpu.exceptions import GuestFault, Vector
from cpu.semantics import call, semantics
from cpu.semantics.fpu import Fpu
from cpu.semantics.sse import load_legacy, save_legacy
from cpu.state import CR4_OSXSAVE, XCR0_AVX, XCR0_SSE, XCR0_X87
from cpu.xsave import AVX_OFFSET, AVX_SIZE, COMPACTED, HEADER, XCR0_SUPPORTED, area_size, in_use

MASK32 = (1 << 32) - 1
XSAVE, XSAVEOPT, XSAVEC = 0, 1, 2


def _rfbm(s) -> int:
    return s.xcr0 & ((s.rdx & MASK32) << 32 | (s.rax & MASK32))


def _save_avx(s, image: bytearray) -> None:
    image[AVX_OFFSET:AVX_OFFSET + AVX_SIZE] = b"".join((s.ymm(i) >> 128).to_bytes(16, "little") for i in range(16))


@call
def xsave_area(cpu, address: int, form: int) -> None:
    """XSAVE, XSAVEOPT or XSAVEC (``form``) to the area at ``address``: one write, so a fault changes nothing."""
    s = cpu.state
    rfbm, used = _rfbm(s), in_use(s)
    saved = rfbm if form == XSAVE else rfbm & used
    image = bytearray(cpu.mem.read(address, area_size(saved | XCR0_X87)))
    mxcsr = saved & XCR0_SSE if form == XSAVEC else rfbm & (XCR0_SSE | XCR0_AVX)
    save_legacy(cpu, image, bool(saved & XCR0_X87), bool(mxcsr), bool(saved & XCR0_SSE))
    if saved & XCR0_AVX:
        _save_avx(s, image)
    old = struct.unpack_from("<Q", image, HEADER)[0]
    if form == XSAVEC:
        struct.pack_into("<QQ", image, HEADER, used & rfbm, COMPACTED | rfbm)
    else:
        struct.pack_into("<Q", image, HEADER, (old & ~rfbm) | (used & rfbm))
    cpu.mem.write(address, image)


def _header_fault(detail: str) -> GuestFault:
    return GuestFault(Vector.GP, 0, detail=f"xrstor: {detail}")


@call
def xrstor_area(cpu, address: int) -> None:
    """XRSTOR from the area at ``address`` (standard or compacted format, as its XCOMP_BV says)."""
    s = cpu.state
    rfbm = _rfbm(s)
    header = cpu.mem.read(address + HEADER, 64)
    xstate_bv, xcomp_bv = struct.unpack_from("<QQ", header)
    if xcomp_bv & COMPACTED:
        if xcomp_bv & ~COMPACTED & ~s.xcr0 or xstate_bv & ~xcomp_bv or any(header[16:]):
            raise _header_fault(f"bad compacted header (XSTATE_BV {xstate_bv:#x}, XCOMP_BV {xcomp_bv:#x})")
    elif xstate_bv & ~s.xcr0 or any(header[8:24]):
        raise _header_fault(f"bad header (XSTATE_BV {xstate_bv:#x} with XCR0 {s.xcr0:#x}, or bytes 8-23 set)")
    image = cpu.mem.read(address, area_size(rfbm & xstate_bv | XCR0_X87))
    loaded, initial = rfbm & xstate_bv, rfbm & ~xstate_bv
    # MXCSR goes with SSE or AVX in the standard format, with SSE alone (loaded or initialised) in the compacted
    mxcsr = loaded & XCR0_SSE if xcomp_bv & COMPACTED else rfbm & (XCR0_SSE | XCR0_AVX)
    load_legacy(cpu, image, False, bool(mxcsr), False)      # first: it may #GP
    load_legacy(cpu, image, bool(loaded & XCR0_X87), False, bool(loaded & XCR0_SSE))
    if xcomp_bv & COMPACTED and initial & XCR0_SSE:
        s.mxcsr = 0x1F80
    if initial & XCR0_X87:
        fpu = Fpu(cpu)
        fpu.reset()
        fpu.load_registers(bytes(80))
    for i in range(16):
        if initial & XCR0_SSE:
            s.set_xmm(i, 0)
        if loaded & XCR0_AVX:
            high = image[AVX_OFFSET + 16 * i:AVX_OFFSET + 16 * i + 16]
            s.set_ymm(i, s.xmm(i) | int.from_bytes(high, "little") << 128)
        elif initial & XCR0_AVX:
            s.set_ymm(i, s.xmm(i))


def _enabled(ops) -> None:
    """#UD while CR4.OSXSAVE = 0."""
    ops.fault_if(ops.eq(ops.and_(ops.reg("cr4"), CR4_OSXSAVE), 0), Vector.UD)


def _area(ops, opnd):
    """The area's address: #GP(0) unless 64-byte aligned."""
    address = ops.address(opnd)
    ops.fault_if(ops.ne(ops.and_(address, 63), 0), Vector.GP, 0)
    return address


_FORMS = {"xsave": XSAVE, "xsave64": XSAVE, "xsaveopt": XSAVEOPT, "xsaveopt64": XSAVEOPT,
          "xsavec": XSAVEC, "xsavec64": XSAVEC}


@semantics("xsave", "xsave64", feature="xsave")
@semantics("xsaveopt", "xsaveopt64", feature="xsaveopt")
@semantics("xsavec", "xsavec64", feature="xsavec")
def xsave(ops, insn, dst):
    """XSAVE mem: the RFBM components (EDX:EAX AND XCR0) to a 64-byte aligned area."""
    _enabled(ops)
    ops.call("xsave_area", _area(ops, dst), _FORMS[insn.mnemonic])


@semantics("xrstor", "xrstor64", feature="xsave")
def xrstor(ops, insn, src):
    _enabled(ops)
    ops.call("xrstor_area", _area(ops, src))


@call
def xgetbv_ecx(cpu) -> None:
    """XGETBV: EDX:EAX = XCR0 (ECX = 0) or XINUSE AND XCR0 (ECX = 1); #GP(0) for another ECX."""
    s = cpu.state
    which = s.rcx & MASK32
    if which > 1:
        raise GuestFault(Vector.GP, 0, detail=f"xgetbv: no XCR {which:#x}")
    value = s.xcr0 if which == 0 else in_use(s) & s.xcr0
    s.rax, s.rdx = value & MASK32, value >> 32


@semantics("xgetbv", feature="xsave")
def xgetbv(ops, insn):
    _enabled(ops)
    ops.call("xgetbv_ecx")


@semantics("xsetbv", feature="xsave")
def xsetbv(ops, insn):
    """XSETBV: XCR0 = EDX:EAX at CPL 0 (ECX = 0), if x87 is set, nothing unsupported, and AVX only with SSE."""
    _enabled(ops)
    value = ops.or_(ops.trunc(ops.reg("rax"), 32), ops.shl(ops.trunc(ops.reg("rdx"), 32), 32, 64))
    avx_without_sse = ops.eq(ops.and_(value, XCR0_AVX | XCR0_SSE), XCR0_AVX)
    bad = ops.or_(ops.or_(ops.ne(ops.reg("cpl"), 0), ops.ne(ops.trunc(ops.reg("rcx"), 32), 0)),
                  ops.or_(ops.ne(ops.and_(value, ~XCR0_SUPPORTED & (2**64 - 1)), 0),
                          ops.or_(ops.eq(ops.and_(value, XCR0_X87), 0), avx_without_sse)))
    ops.fault_if(bad, Vector.GP, 0)
    ops.set_reg("xcr0", value)
