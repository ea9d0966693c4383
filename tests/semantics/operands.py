"""Building differential cases: registers and memory operands holding chosen values.

A :class:`Setup` starts from random register contents and a random data
page, then places the values a case is about where its snippet reads them:
``s.reg("ah", 0x80)`` puts 0x80 in bits 15..8 of RAX and leaves the other bits
random (so a partial write that clobbers them shows), ``s.mem(0x40, 32, v)``
stores ``v`` in the data page and returns the operand text ``dword ptr [rsi +
0x40]`` (RSI points at the data page).
"""

from __future__ import annotations

import random

from cpu.decoder import parse_reg, reg_name
from cpu.state import GPR64
from tests.semantics.harness import BOUNDARY, DATA, Case, values

SIZES = (8, 16, 32, 64)
PTR = {8: "byte", 16: "word", 32: "dword", 64: "qword", 128: "xmmword"}
MASK64 = (1 << 64) - 1
DATA_BASE = "rsi"
"""Memory operands address the data page through this register."""


def name(reg64: str, size: int, high: bool = False) -> str:
    """The assembler name of ``size`` bits of ``reg64``: name("r9", 8) == "r9b"."""
    return reg_name(reg64, size, high)


class Setup:
    """Registers and data memory for one case."""

    def __init__(self, rng: random.Random, data_bytes: int = 0x100) -> None:
        self.rng = rng
        self.regs = {r: rng.getrandbits(64) for r in GPR64 if r not in ("rsp", DATA_BASE)}
        self.regs[DATA_BASE] = DATA
        self.data = bytearray(rng.randbytes(data_bytes))

    def reg(self, asm: str, value: int) -> str:
        """Put ``value`` in register ``asm`` ("eax", "ah", "r9w"); other bits stay random."""
        reg64, size, high = parse_reg(asm)
        shift = 8 if high else 0
        mask = ((1 << size) - 1) << shift
        self.regs[reg64] = (self.regs.get(reg64, 0) & ~mask & MASK64) | ((value << shift) & mask)
        return asm

    def set(self, reg64: str, value: int) -> None:
        self.regs[reg64] = value & MASK64

    def mem(self, offset: int, size: int, value: int, base: str = DATA_BASE) -> str:
        """Store ``value`` at DATA + ``offset``; return the operand text addressing it via ``base``."""
        n = size // 8
        if len(self.data) < offset + n:
            self.data.extend(self.rng.randbytes(offset + n - len(self.data)))
        self.data[offset:offset + n] = (value & ((1 << size) - 1)).to_bytes(n, "little")
        return f"{PTR[size]} ptr [{base} + {offset:#x}]"

    def case(self, asm: str, rflags: int = 0x202, undefined: int = 0, **extra) -> Case:
        return Case(asm, dict(self.regs), rflags=rflags, data=bytes(self.data), undefined=undefined, **extra)


def pairs(size: int, rng: random.Random, extra: int) -> list[tuple[int, int]]:
    """Every pair of boundary values of ``size`` bits, then ``extra`` random pairs."""
    b = BOUNDARY[size]
    out = [(x, y) for x in b for y in b]
    out += [(rng.getrandbits(size), rng.getrandbits(size)) for _ in range(extra)]
    return out


def some_pairs(size: int, rng: random.Random, count: int) -> list[tuple[int, int]]:
    """``count`` pairs: boundary values against shuffled boundary values, then random ones."""
    a = values(size, rng, count)
    b = values(size, rng, count)
    rng.shuffle(b)
    return list(zip(a, b, strict=True))


def signed_imm(value: int, size: int) -> int:
    """A ``size``-bit value as the signed number an assembler immediate spells."""
    return value - (1 << size) if value >> (size - 1) else value
