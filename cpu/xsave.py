"""The XSAVE-managed state components, the layout of the XSAVE area, and CPUID leaf 0DH.

Intel SDM Vol. 1, ch. 13 (managing state using the XSAVE feature set):
13.2 (enumeration: CPUID leaf 0DH), 13.3 (XCR0), 13.4 (the XSAVE area: the
legacy region, the XSAVE header, the extended region), 13.4.3 (the
compacted format), 13.6 (XINUSE, the processor's tracking of components in
their initial configuration); and Vol. 2B, CPUID, table 3-8 (leaf 0DH).

Three components: 0, x87 and 1, SSE (both in the legacy region, the FXSAVE
image of ``cpu.semantics.sse``), and 2, AVX (YMM_Hi128: bits 255:128 of
YMM0-15, 256 bytes, at offset 576 in the standard format; also 576 in the
compacted format, being the first extended component).  Not supported:
MPX, AVX-512, PKRU and the supervisor components (so XSAVES/XRSTORS, IA32_XSS
and the XINUSE bit of XGETBV with ECX = 1 for them are not offered).
"""

from __future__ import annotations

from cpu.state import XCR0_AVX, XCR0_SSE, XCR0_X87, CpuState

LEGACY_SIZE = 512
HEADER, HEADER_SIZE = 512, 64
"""The XSAVE header: XSTATE_BV (bytes 7:0), XCOMP_BV (bytes 15:8), then reserved."""
AVX_OFFSET, AVX_SIZE = 576, 256
XCR0_SUPPORTED = XCR0_X87 | XCR0_SSE | XCR0_AVX
COMPACTED = 1 << 63
"""XCOMP_BV bit 63: the area is in the compacted format."""

XGETBV_XINUSE = 1 << 2
"""CPUID.(EAX=0DH, ECX=1):EAX bit 2: XGETBV with ECX = 1 is supported."""


def area_size(components: int) -> int:
    """Bytes of a standard-format area holding ``components`` (an XCR0-style mask)."""
    return AVX_OFFSET + (AVX_SIZE if components & XCR0_AVX else 0)



    """Bytes of a compacted-format area holding ``components``: the AVX component follows the header."""
    return area_size(components)


def leaf(subleaf: int, xcr0: int = XCR0_SUPPORTED, supported: int = XCR0_SUPPORTED) -> tuple[int, int, int, int]:
    """CPUID leaf 0DH, sub-leaf ``subleaf``: EAX, EBX, ECX, EDX.

    ``xcr0``: the components enabled now (sub-leaf 0 EBX and sub-leaf 1 EBX depend on it); ``supported``:
    the components the CPU offers (a CPU level without AVX passes x87 | SSE).
    """
    if subleaf == 0:
        return supported, area_size(xcr0 & supported), area_size(supported), 0
    if subleaf == 1:            # XSAVEOPT and XSAVEC (bits 0 and 1) are the CPU level's to report
        return XGETBV_XINUSE, area_size(xcr0 & supported), 0, 0
    if subleaf == 2 and supported & XCR0_AVX:
        return AVX_SIZE, AVX_OFFSET, 0, 0
    return 0, 0, 0, 0


def in_use(s: CpuState) -> int:
    """XINUSE: the components not in their initial configuration (SDM Vol. 1, 13.6)."""
    x87 = (s.fcw != 0x037F or s.fsw or s.ftw or s.fip or s.fdp or s.fop
           or any(getattr(s, f"mm{i}") or getattr(s, f"fpr{i}_exp") for i in range(8)))
    sse = any(s.xmm(i) for i in range(16)) or s.mxcsr != 0x1F80
    avx = any(s.ymm(i) >> 128 for i in range(16))
    return (XCR0_X87 if x87 else 0) | (XCR0_SSE if sse else 0) | (XCR0_AVX if avx else 0)
