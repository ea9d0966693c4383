"""String instructions: MOVS, STOS, LODS, CMPS, SCAS in byte, word, dword and quadword forms,
with and without the REP/REPE/REPNE prefixes (Intel SDM Vol. 2B, each mnemonic's page;
Vol. 1, 7.3.9 "String Operations"; Vol. 2A, 4.3 "REP/REPE/REPZ/REPNE/REPNZ").

One element, no prefix: written with plain ``ops``.  The source is DS:RSI
(a FS/GS segment override applies to it), the destination ES:RDI (never
overridden); both step by the element size, down when RFLAGS.DF is set.
CMPS compares [RSI] with [RDI] and SCAS the accumulator with [RDI], each
setting the flags of ``first - second`` like CMP.

With a prefix the instruction loops on RCX, so it is a ``@call`` that runs
the whole loop on the CPU state.  REP MOVS, STOS and LODS work in whole
page-bounded chunks (up or down); a chunk never spans a page boundary, and
RCX, RSI and RDI are stored after each chunk, so a #PF part-way leaves them
exactly as the SDM says an interrupted REP leaves them (the run loop puts RIP
back on the instruction, and the remaining count restarts it).  A copy whose
destination runs into source not yet read is cut into chunks no longer than
the distance between the pointers, which gives the element-by-element
result (``rep movsb`` with RDI = RSI + 1 replicates a byte).  REPE/REPNE
CMPS and SCAS go element by element.  REP with RCX = 0 does nothing, and
changes no flags.

Not modelled: the 0x67 address-size prefix (RCX/RSI/RDI are always 64-bit),
interrupt windows inside a long REP (it retires as one instruction).

Capstone spells the SSE scalar-double move and compare ``movsd`` and
``cmpsd`` too; those forms (an XMM operand) are handed to ``cpu.semantics.sse``.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.flags import CcOp, Flag
from cpu.memory import PAGE_MASK, PAGE_SIZE
from cpu.semantics import call, semantics, sse

MASK64 = (1 << 64) - 1
_DF_BIT = Flag.DF.bit_length() - 1


def _source_segment(insn) -> str:
    """The FS/GS override of the DS:RSI operand, or "" (ES:RDI cannot be overridden)."""
    for o in insn.operands:
        if o.kind is Kind.MEM and o.base == "rsi":
            return o.seg
    return ""


_SEGMENTS = ("", "fs", "gs")
"""Calls take the source segment as an index into this tuple: 0 is DS (base 0 in 64-bit mode)."""


def _acc(size: int) -> Operand:
    return Operand(Kind.REG, size, reg="rax")


def _has_xmm(operands) -> bool:
    return any(o.kind is Kind.REG and o.reg.startswith("xmm") for o in operands)


def _repeated(insn) -> bool:
    return insn.rep or insn.repne


# -- one element: plain ops ------------------------------------------------------------------

def _step(ops, size: int):
    """+size/8 or -size/8 (as a 64-bit value) depending on DF."""
    n = size // 8
    return ops.select(ops.flag(Flag.DF), (-n) & MASK64, n)


def _source(ops, insn):
    rsi = ops.reg("rsi")
    seg = _source_segment(insn)
    return rsi, (ops.add(rsi, ops.reg(f"{seg}_base"), 64) if seg else rsi)


def _movs_one(ops, insn, size):
    rsi, src = _source(ops, insn)
    rdi = ops.reg("rdi")
    value = ops.load(src, size)
    step = _step(ops, size)
    ops.store(rdi, size, value)
    ops.set_reg("rsi", ops.add(rsi, step, 64))
    ops.set_reg("rdi", ops.add(rdi, step, 64))


def _stos_one(ops, insn, size):
    rdi = ops.reg("rdi")
    value = ops.read(_acc(size))
    step = _step(ops, size)
    ops.store(rdi, size, value)
    ops.set_reg("rdi", ops.add(rdi, step, 64))


def _lods_one(ops, insn, size):
    rsi, src = _source(ops, insn)
    value = ops.load(src, size)
    step = _step(ops, size)
    ops.write(_acc(size), value)
    ops.set_reg("rsi", ops.add(rsi, step, 64))


def _cmps_one(ops, insn, size):
    rsi, src = _source(ops, insn)
    rdi = ops.reg("rdi")
    a, b = ops.load(src, size), ops.load(rdi, size)
    step = _step(ops, size)
    ops.set_reg("rsi", ops.add(rsi, step, 64))
    ops.set_reg("rdi", ops.add(rdi, step, 64))
    ops.set_flags(CcOp.SUB, size, a, b, ops.sub(a, b, size))


def _scas_one(ops, insn, size):
    rdi = ops.reg("rdi")
    a, b = ops.read(_acc(size)), ops.load(rdi, size)
    step = _step(ops, size)
    ops.set_reg("rdi", ops.add(rdi, step, 64))
    ops.set_flags(CcOp.SUB, size, a, b, ops.sub(a, b, size))


# -- the REP loops: calls on the whole state ---------------------------------------------------

def _direction(s, size: int) -> int:
    return -(size // 8) if (s.rflags >> _DF_BIT) & 1 else size // 8


def _seg_base(s, seg: int) -> int:
    return getattr(s, f"{_SEGMENTS[seg]}_base") if seg else 0


def _elements_in_page(address: int, n: int, up: bool) -> int:
    """Whole ``n``-byte elements from ``address`` to the edge of its page, walking up or down.

    0 when the element at ``address`` itself straddles two pages.
    """
    offset = address & PAGE_MASK
    if up:
        return (PAGE_SIZE - offset) // n
    return offset // n + 1 if offset + n <= PAGE_SIZE else 0


@call
def rep_movs(cpu, size: int, seg: int) -> None:
    s, mem = cpu.state, cpu.mem
    n = size // 8
    up = _direction(s, size) > 0
    base = _seg_base(s, seg)
    load, store = mem.loads[size], mem.stores[size]
    while s.rcx:
        src, dst = (s.rsi + base) & MASK64, s.rdi
        count = min(s.rcx, _elements_in_page(src, n, up), _elements_in_page(dst, n, up))
        ahead = (dst - src if up else src - dst) & MASK64
        if 0 < ahead < count * n:           # the destination runs into source not yet read: stay element-exact
            count = ahead // n
        if count:
            span = (count - 1) * n
            low_src, low_dst = (src, dst) if up else (src - span, dst - span)
            mem.write(low_dst, mem.read(low_src, count * n))
        else:                               # an element straddling a page, or overlap closer than one element
            store(dst, load(src))
            count = 1
        delta = count * n if up else -count * n
        s.rsi = (s.rsi + delta) & MASK64
        s.rdi = (dst + delta) & MASK64
        s.rcx -= count


@call
def rep_stos(cpu, size: int) -> None:
    s, mem = cpu.state, cpu.mem
    n = size // 8
    up = _direction(s, size) > 0
    value = s.rax & ((1 << size) - 1)
    pattern = value.to_bytes(n, "little")
    store = mem.stores[size]
    while s.rcx:
        dst = s.rdi
        count = min(s.rcx, _elements_in_page(dst, n, up))
        if count:
            mem.write(dst if up else dst - (count - 1) * n, pattern * count)
        else:
            store(dst, value)
            count = 1
        s.rdi = (dst + (count * n if up else -count * n)) & MASK64
        s.rcx -= count


@call
def rep_lods(cpu, size: int, seg: int) -> None:
    """Only the last element stays in the accumulator, but every one is read (and may fault)."""
    s, mem = cpu.state, cpu.mem
    n = size // 8
    up = _direction(s, size) > 0
    base = _seg_base(s, seg)
    load = mem.loads[size]
    mask = (1 << size) - 1
    while s.rcx:
        src = (s.rsi + base) & MASK64
        count = min(s.rcx, _elements_in_page(src, n, up))
        if count:
            data = mem.read(src if up else src - (count - 1) * n, count * n)
            value = int.from_bytes(data[-n:] if up else data[:n], "little")
        else:
            value = load(src)
            count = 1
        s.rax = value if size == 32 else (s.rax & ~mask & MASK64) | value
        s.rsi = (s.rsi + (count * n if up else -count * n)) & MASK64
        s.rcx -= count


def _set_sub_flags(s, size: int, a: int, b: int) -> None:
    s.cc_op, s.cc_size, s.cc_a, s.cc_b = CcOp.SUB, size, a, b
    s.cc_r, s.cc_c = (a - b) & ((1 << size) - 1), 0


@call
def rep_cmps(cpu, size: int, seg: int, until_equal: int) -> None:
    """REPE (until_equal=0) stops on the first difference, REPNE (1) on the first match."""
    s = cpu.state
    load = cpu.mem.loads[size]
    step = _direction(s, size)
    base = _seg_base(s, seg)
    while s.rcx:
        a, b = load((s.rsi + base) & MASK64), load(s.rdi)
        s.rsi = (s.rsi + step) & MASK64
        s.rdi = (s.rdi + step) & MASK64
        s.rcx -= 1
        _set_sub_flags(s, size, a, b)
        if (a == b) == bool(until_equal):
            break


@call
def rep_scas(cpu, size: int, until_equal: int) -> None:
    s = cpu.state
    load = cpu.mem.loads[size]
    step = _direction(s, size)
    a = s.rax & ((1 << size) - 1)
    if size == 8:
        _scan_bytes(cpu, a, step > 0, until_equal)
        return
    while s.rcx:
        b = load(s.rdi)
        s.rdi = (s.rdi + step) & MASK64
        s.rcx -= 1
        _set_sub_flags(s, size, a, b)
        if (a == b) == bool(until_equal):
            break


def _scan_bytes(cpu, a: int, up: bool, until_equal: int) -> None:
    """REPNE/REPE SCASB a page at a time (strlen, memchr): find the stopping byte with bytes methods.

    Leaves RCX, RDI and the flags as the element-by-element loop would,
    page by page, so a #PF on a later page finds the earlier pages done.
    """
    s, mem = cpu.state, cpu.mem
    needle = bytes([a])
    while s.rcx:
        rdi = s.rdi
        count = min(s.rcx, _elements_in_page(rdi, 1, up))
        data = mem.read(rdi if up else rdi - count + 1, count)
        if not up:
            data = data[::-1]                       # walking order
        if until_equal:
            stop = data.find(needle)
        else:
            stop = len(data) - len(data.lstrip(needle))
            stop = stop if stop < len(data) else -1
        done = count if stop < 0 else stop + 1
        s.rdi = (rdi + (done if up else -done)) & MASK64
        s.rcx -= done
        _set_sub_flags(s, 8, a, data[done - 1])
        if stop >= 0:
            return


# -- registration ---------------------------------------------------------------------------

@semantics("movsb", "movsw", "movsd", "movsq")
def movs(ops, insn, *operands):
    if _has_xmm(operands):
        sse.movsd_xmm(ops, insn, *operands)
        return
    size = insn.opsize
    if _repeated(insn):
        ops.call("rep_movs", size, _SEGMENTS.index(_source_segment(insn)))
    else:
        _movs_one(ops, insn, size)


@semantics("stosb", "stosw", "stosd", "stosq")
def stos(ops, insn, *operands):
    size = insn.opsize
    if _repeated(insn):
        ops.call("rep_stos", size)
    else:
        _stos_one(ops, insn, size)


@semantics("lodsb", "lodsw", "lodsd", "lodsq")
def lods(ops, insn, *operands):
    size = insn.opsize
    if _repeated(insn):
        ops.call("rep_lods", size, _SEGMENTS.index(_source_segment(insn)))
    else:
        _lods_one(ops, insn, size)


@semantics("cmpsb", "cmpsw", "cmpsd", "cmpsq")
def cmps(ops, insn, *operands):
    if _has_xmm(operands):
        sse.cmpsd_xmm(ops, insn, *operands)
        return
    size = insn.opsize
    if _repeated(insn):
        ops.call("rep_cmps", size, _SEGMENTS.index(_source_segment(insn)), int(insn.repne))
    else:
        _cmps_one(ops, insn, size)


@semantics("scasb", "scasw", "scasd", "scasq")
def scas(ops, insn, *operands):
    size = insn.opsize
    if _repeated(insn):
        ops.call("rep_scas", size, int(insn.repne))
    else:
        _scas_one(ops, insn, size)
