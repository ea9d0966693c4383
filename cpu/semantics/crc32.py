"""SSE4.2 CRC32: accumulate a CRC-32C (Castagnoli) over 1, 2, 4 or 8 bytes.

Intel SDM Vol. 2A, CRC32.  The polynomial is 0x11EDC6F41, used bit-reflected
(0x82F63B78) as the instruction does: the running CRC is the destination's
low 32 bits, the source's bytes are taken lowest first, and the 32-bit
result is zero-extended into the destination (a 64-bit destination
included).  No initial or final inversion: software does that.
"""

from __future__ import annotations

from cpu.semantics import helper, semantics

POLY_REFLECTED = 0x82F63B78


def _table() -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY_REFLECTED if crc & 1 else 0)
        out.append(crc)
    return tuple(out)


TABLE = _table()


@helper
def crc32c(crc: int, data: int, size: int) -> int:
    """The CRC-32C register ``crc`` after the ``size``-bit ``data``, lowest byte first."""
    crc &= 0xFFFF_FFFF
    for i in range(size // 8):
        crc = TABLE[(crc ^ (data >> (8 * i))) & 0xFF] ^ (crc >> 8)
    return crc


@semantics("crc32", feature="sse4_2")
def crc32(ops, insn, dst, src):
    """CRC32 r32, r/m8 (r/m16, r/m32) and CRC32 r64, r/m8 (r/m64)."""
    crc, data = ops.read(dst), ops.read(src)
    ops.write(dst, ops.helper("crc32c", crc, data, src.size))
