"""AES-NI: one AES round forward or backward, InvMixColumns, and the key-expansion assist.

Intel SDM Vol. 2A pages AESENC, AESENCLAST, AESDEC, AESDECLAST, AESIMC and
AESKEYGENASSIST; the transformations are FIPS 197's (5.1 and 5.3):
ShiftRows, SubBytes, MixColumns and their inverses on the 4x4 byte state,
which an XMM register holds column by column (byte ``r + 4c`` is row r,
column c; byte 0 the lowest).  The S-box is computed at import from its
definition (the inverse in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, from the powers of
the generator 3, then the affine map), not tabulated by hand.

Each helper is a function of the state and round key (``aesenc(state,
key)``) so the VEX forms can reuse it per 128-bit lane.
"""

from __future__ import annotations

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import MASK32


def _gf_mul(a: int, b: int) -> int:
    """Product in GF(2^8) modulo the AES polynomial 0x11B."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = (a << 1) ^ (0x11B if a & 0x80 else 0)
        b >>= 1
    return out


def _sbox() -> tuple[tuple[int, ...], tuple[int, ...]]:
    powers = [1] * 255                              # 3 generates GF(2^8)*: inverse(3^k) = 3^(255-k)
    for k in range(1, 255):
        powers[k] = _gf_mul(powers[k - 1], 3)
    inverses = [0] * 256
    for k, x in enumerate(powers):
        inverses[x] = powers[-k % 255]
    forward = [0] * 256
    for x, inverse in enumerate(inverses):
        s = inverse
        for shift in (1, 2, 3, 4):                  # b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^ 0x63
            s ^= ((inverse << shift) | (inverse >> (8 - shift))) & 0xFF
        forward[x] = s ^ 0x63
    backward = [0] * 256
    for x, s in enumerate(forward):
        backward[s] = x
    return tuple(forward), tuple(backward)


SBOX, INV_SBOX = _sbox()
SHIFT_ROWS = tuple(r + 4 * ((c + r) % 4) for c in range(4) for r in range(4))
"""Byte ``r + 4c`` of ShiftRows' result comes from byte SHIFT_ROWS[r + 4c] of its input."""
INV_SHIFT_ROWS = tuple(r + 4 * ((c - r) % 4) for c in range(4) for r in range(4))
MIX = (2, 3, 1, 1)
INV_MIX = (14, 11, 13, 9)


def _state(v: int) -> bytes:
    return v.to_bytes(16, "little")


def _value(state) -> int:
    return int.from_bytes(bytes(state), "little")


def _mix(state: bytes, row: tuple[int, ...]) -> list[int]:
    """MixColumns (row 2 3 1 1) or InvMixColumns (14 11 13 9): each column times the circulant matrix."""
    out = []
    for c in range(4):
        column = state[4 * c:4 * c + 4]
        for r in range(4):
            acc = 0
            for k in range(4):
                acc ^= _gf_mul(row[(k - r) % 4], column[k])
            out.append(acc)
    return out


def _forward(state: int, mix: bool) -> bytes:
    s = _state(state)
    out = bytes(SBOX[s[i]] for i in SHIFT_ROWS)
    return bytes(_mix(out, MIX)) if mix else out


def _backward(state: int, mix: bool) -> bytes:
    s = _state(state)
    out = bytes(INV_SBOX[s[i]] for i in INV_SHIFT_ROWS)
    return bytes(_mix(out, INV_MIX)) if mix else out


@helper
def aesenc(state: int, key: int) -> int:
    """One encryption round: ShiftRows, SubBytes, MixColumns, AddRoundKey."""
    return _value(_forward(state, True)) ^ key


@helper
def aesenclast(state: int, key: int) -> int:
    """The last encryption round: no MixColumns."""
    return _value(_forward(state, False)) ^ key


@helper
def aesdec(state: int, key: int) -> int:
    """One decryption round (the equivalent inverse cipher): InvShiftRows, InvSubBytes, InvMixColumns,
    AddRoundKey."""
    return _value(_backward(state, True)) ^ key


@helper
def aesdeclast(state: int, key: int) -> int:
    """The last decryption round: no InvMixColumns."""
    return _value(_backward(state, False)) ^ key


@helper
def aesimc(key: int) -> int:
    """InvMixColumns of a round key (for the equivalent inverse cipher's key schedule)."""
    return _value(_mix(_state(key), INV_MIX))


def _sub_word(w: int) -> int:
    return int.from_bytes(bytes(SBOX[b] for b in w.to_bytes(4, "little")), "little")


@helper
def aeskeygenassist(src: int, rcon: int) -> int:
    """SubWord and RotWord(SubWord) XOR RCON of dwords 1 and 3: X1' | (rot(X1') ^ rcon) << 32 | ..."""
    out = 0
    for i, word in enumerate((src >> 32 & MASK32, src >> 96 & MASK32)):
        sub = _sub_word(word)
        rot = ((sub >> 8) | (sub << 24)) & MASK32
        out |= (sub | (rot ^ rcon) << 32) << (64 * i)
    return out


@semantics("aesenc", "aesenclast", "aesdec", "aesdeclast", feature="aes")
def round_insn(ops, insn, dst, src):
    """AESENC xmm1, xmm2/m128: xmm1 = round(xmm1) with round key xmm2/m128."""
    state, key = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper(insn.mnemonic, state, key))


@semantics("aesimc", feature="aes")
def aesimc_insn(ops, insn, dst, src):
    """AESIMC xmm1, xmm2/m128."""
    ops.write(dst, ops.helper("aesimc", X.read(ops, insn, src)))


@semantics("aeskeygenassist", feature="aes")
def aeskeygenassist_insn(ops, insn, dst, src, rcon):
    """AESKEYGENASSIST xmm1, xmm2/m128, imm8."""
    ops.write(dst, ops.helper("aeskeygenassist", X.read(ops, insn, src), rcon.imm))
