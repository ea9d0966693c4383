"""Batches of x87 snippets run on the host CPU and in emu, compared slot by slot.

Each *slot* of the data page is one experiment: its control word, two 80-bit operands A and B,
a 16-byte area M for memory results, 8 bytes for RFLAGS, and the 108-byte FNSAVE image taken
after the instruction (FCW, FSW with TOP and the condition codes, the full tag word, ST(0)-ST(7)).
FNSAVE also reinitialises the unit for the next slot.  The image's instruction and data pointers
(bytes 12-27), which emu does not model, are masked before comparing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tests.semantics.harness import DATA, Case, run_emu
from tests.semantics.host import run_host

SLOT = 176
A, B, M, CW, FLAGS, SAVE = 0, 16, 32, 48, 56, 64
SAVE_SIZE = 108
POINTERS = slice(12, 28)
MASK64 = (1 << 64) - 1
C1 = 0x200
PER_CASE = 40

CLEAR = "\n".join(["fninit"] + ["fldz"] * 8 + ["fninit"])
"""Every physical register zero and empty: the host's registers keep what earlier snippets left."""


@dataclass(frozen=True)
class Slot:
    body: str                 # assembly; {A} {B} {M} {FLAGS} are the operands' memory references
    a: int = 0
    b: int = 0
    cw: int = 0x037F
    m: int = 0                # initial contents of M (a memory source operand)
    load: str = "ab"          # which of A, B to push first (B then A: A is ST(0))


def _asm(i: int, slot: Slot) -> str:
    base = i * SLOT
    refs = {"A": f"[rsi + {base + A}]", "B": f"[rsi + {base + B}]", "M": f"[rsi + {base + M}]",
            "FLAGS": f"[rsi + {base + FLAGS}]"}
    lines = [f"fldcw word ptr [rsi + {base + CW}]"]
    if "b" in slot.load:
        lines.append(f"fld tbyte ptr {refs['B']}")
    if "a" in slot.load:
        lines.append(f"fld tbyte ptr {refs['A']}")
    lines += slot.body.format(**refs).splitlines()
    lines.append(f"fnsave [rsi + {base + SAVE}]")
    return "\n".join(lines)


def _data(slots: list[Slot]) -> bytes:
    out = bytearray()
    for s in slots:
        blob = bytearray(SLOT)
        blob[A:A + 10] = s.a.to_bytes(10, "little")
        blob[B:B + 10] = s.b.to_bytes(10, "little")
        blob[M:M + 16] = s.m.to_bytes(16, "little")
        blob[CW:CW + 2] = s.cw.to_bytes(2, "little")
        out += blob
    return bytes(out)


def _masked(data: bytes, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        blob = bytearray(data[i * SLOT:(i + 1) * SLOT])
        blob[SAVE + POINTERS.start:SAVE + POINTERS.stop] = bytes(POINTERS.stop - POINTERS.start)
        out.append(bytes(blob))
    return out


def describe(blob: bytes) -> str:
    fcw, fsw, ftw = struct.unpack_from("<HxxHxxH", blob, SAVE)
    regs = [int.from_bytes(blob[SAVE + 28 + 10 * k:SAVE + 38 + 10 * k], "little") for k in range(2)]
    m = int.from_bytes(blob[M:M + 16], "little")
    flags = int.from_bytes(blob[FLAGS:FLAGS + 8], "little")
    return (f"fcw={fcw:04x} fsw={fsw:04x} ftw={ftw:04x} st0={regs[0]:020x} st1={regs[1]:020x} "
            f"m={m:032x} rflags={flags & 0x8d5:#x}")


def _near(x: bytes, y: bytes) -> bool:
    """The images agree but for registers one unit in the last place apart (and C1, their rounding direction)."""
    if x[:SAVE + 28] != y[:SAVE + 28]:
        fsw_x, fsw_y = (struct.unpack_from("<H", b, SAVE + 4)[0] for b in (x, y))
        if fsw_x ^ fsw_y != C1 or x[:SAVE + 4] != y[:SAVE + 4] or x[SAVE + 6:SAVE + 28] != y[SAVE + 6:SAVE + 28]:
            return False
    for k in range(8):
        a, b = (int.from_bytes(blob[SAVE + 28 + 10 * k:SAVE + 38 + 10 * k], "little") for blob in (x, y))
        if a != b and (a >> 64 != b >> 64 or abs((a & MASK64) - (b & MASK64)) > 1):
            return False
    return True


MODES = ((False, "off"), (True, "off"), (True, "eager"))
"""Stepped, as translated blocks, and through the LLVM JIT."""


def run_slots(slots: list[Slot], modes: tuple[tuple[bool, str], ...] = MODES,
              within_ulp: bool = False) -> list[str]:
    """Differences between the host and emu (in each of ``modes``), one line per slot;
    ``within_ulp``: register results one unit in the last place apart (same exponent) agree."""
    problems = []
    for start in range(0, len(slots), PER_CASE):
        chunk = slots[start:start + PER_CASE]
        asm = "\n".join([f"mov rsi, {DATA}", CLEAR] + [_asm(i, s) for i, s in enumerate(chunk)])
        case = Case(asm=asm, data=_data(chunk))
        host = run_host(case)
        assert not host.faulted, "the host faulted"
        theirs = _masked(host.data, len(chunk))
        for blocks, jit in modes:
            emu = run_emu(case, blocks, jit)
            assert not emu.faulted, f"emu faulted ({blocks=}, {jit=})"
            ours = _masked(emu.data, len(chunk))
            for i, (x, y) in enumerate(zip(ours, theirs, strict=True)):
                if x != y and not (within_ulp and _near(x, y)):
                    s = chunk[i]
                    problems.append(f"[{'block' if blocks else 'step'}/jit {jit}] `{s.body}` cw={s.cw:04x} "
                                    f"a={s.a:020x} b={s.b:020x} m={s.m:x}\n    emu:  {describe(x)}\n"
                                    f"    host: {describe(y)}")
    return problems
