"""Instruction decoding: capstone's x86-64 disassembler into our own immutable records.

Capstone (``CS_MODE_64`` with operand details) does the byte-level work of the
SDM Vol. 2 ch. 2 (instruction format: prefixes, REX, ModRM, SIB, displacement,
immediate).  We normalise what it reports into :class:`Insn` and
:class:`Operand` records that the semantics read: registers are named by the
64-bit (or 128-bit) register they live in, with a size and a high-byte flag;
immediates are masked to the operand size; memory operands carry segment,
base, index, scale, displacement and access size.  Each guest instruction is
decoded once: callers cache the records (the interpreter caches whole blocks).

Bytes capstone cannot decode become :class:`cpu.exceptions.UndefinedOpcode`, except
VPCMPESTRI and VPCMPESTRM with VEX.W = 1 (64-bit lengths in RAX and RDX, SDM Vol. 2B), which
capstone 5 rejects: they are decoded with W cleared and keep their own bytes, which the
semantics read W from (:func:`_vex_w1_string_compare`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from cpu.exceptions import GuestFault, UndefinedOpcode

if TYPE_CHECKING:
    from cpu.disassembly import Disassembler, RawInsn

OPERAND_REG, OPERAND_IMM = 1, 2
"""Capstone's ``X86_OP_REG`` and ``X86_OP_IMM``, checked against the binding when the first instruction is decoded
(``Decoder._dis``): capstone is imported only then, as importing it costs ~45 ms."""

MAX_INSN_LEN = 15
PAGE_SIZE = 4096
RUN_CHUNK = 256
"""Bytes :meth:`Decoder.decode_run` fetches at a time (a block is 20 to 100 bytes; it stops at a page's end)."""


class Kind(Enum):
    REG = "reg"
    IMM = "imm"
    MEM = "mem"


@dataclass(frozen=True, slots=True)
class Operand:
    """One explicit operand.  ``size`` is in bits."""

    kind: Kind
    size: int
    reg: str = ""          # containing register: "rax", "r8", "xmm3", "fs", "rip"
    high: bool = False     # AH/CH/DH/BH: bits 15..8 of reg
    imm: int = 0           # immediate, masked to ``size`` bits
    seg: str = ""          # "fs" or "gs" when the segment base applies (64-bit mode)
    base: str = ""         # base register, "rip" for RIP-relative
    index: str = ""
    scale: int = 1
    disp: int = 0          # signed displacement
    asize: int = 64        # address size: 32 under a 0x67 prefix

    def __str__(self) -> str:
        if self.kind is Kind.IMM:
            return hex(self.imm)
        if self.kind is Kind.REG:
            return reg_name(self.reg, self.size, self.high)
        parts = [p for p in (self.base, f"{self.index}*{self.scale}" if self.index else "") if p]
        if self.disp or not parts:
            parts.append(hex(self.disp) if self.disp >= 0 else f"-{-self.disp:#x}")
        seg = f"{self.seg}:" if self.seg else ""
        return f"{seg}[{' + '.join(parts).replace('+ -', '- ')}]"


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction."""

    address: int
    length: int
    raw: bytes
    mnemonic: str          # capstone's base name, no prefixes: "add", "stosq", "cmovne"
    text: str              # full disassembly for people: "rep stosq qword ptr [rdi], rax"
    operands: tuple[Operand, ...]
    rep: bool = False      # F3 prefix (REP / REPE)
    repne: bool = False    # F2 prefix
    lock: bool = False     # F0 prefix
    opsize: int = 0        # the instruction's own operand size in bits, when it has no operands
    relative: bool = False  # a relative branch: its one operand is the absolute target address

    @property
    def next(self) -> int:
        return self.address + self.length

    def __str__(self) -> str:
        return self.text


# -- register names ----------------------------------------------------------
_GPR = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi")
_REG_TABLE: dict[str, tuple[str, int, bool]] = {}
for _n in _GPR:
    _b = _n[1:]                                   # "ax", "cx", ..., "sp", "di"
    _REG_TABLE[_n] = (_n, 64, False)
    _REG_TABLE["e" + _b] = (_n, 32, False)
    _REG_TABLE[_b] = (_n, 16, False)
for _n, _lo in zip(_GPR, ("al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"), strict=True):
    _REG_TABLE[_lo] = (_n, 8, False)
for _n, _hi in zip(_GPR[:4], ("ah", "ch", "dh", "bh"), strict=True):
    _REG_TABLE[_hi] = (_n, 8, True)
for _i in range(8, 16):
    _REG_TABLE[f"r{_i}"] = (f"r{_i}", 64, False)
    _REG_TABLE[f"r{_i}d"] = (f"r{_i}", 32, False)
    _REG_TABLE[f"r{_i}w"] = (f"r{_i}", 16, False)
    _REG_TABLE[f"r{_i}b"] = (f"r{_i}", 8, False)
for _i in range(16):
    _REG_TABLE[f"xmm{_i}"] = (f"xmm{_i}", 128, False)
    _REG_TABLE[f"ymm{_i}"] = (f"ymm{_i}", 256, False)
for _s in ("es", "cs", "ss", "ds", "fs", "gs"):
    _REG_TABLE[_s] = (_s, 16, False)
for _i in (0, 2, 3, 4, 8):
    _REG_TABLE[f"cr{_i}"] = (f"cr{_i}", 64, False)
# DR4 and DR5 are DR6 and DR7 while CR4.DE = 0, which is always true here (DE is not advertised).
for _alias, _i in (("dr4", 6), ("dr5", 7), *((f"dr{_n}", _n) for _n in (0, 1, 2, 3, 6, 7))):
    _REG_TABLE[_alias] = (f"dr{_i}", 64, False)
_REG_TABLE["rip"] = ("rip", 64, False)
for _i in range(8):
    _REG_TABLE[f"st({_i})"] = (f"st{_i}", 80, False)     # x87 ST(i), relative to TOP
    _REG_TABLE[f"mm{_i}"] = (f"mm{_i}", 64, False)       # MMX: the low 64 bits of physical R_i

_NAME_OF: dict[tuple[str, int, bool], str] = {v: k for k, v in _REG_TABLE.items()}


def reg_name(reg: str, size: int, high: bool = False) -> str:
    """The assembler name of ``size`` bits of ``reg`` ("rax", 32 -> "eax")."""
    return _NAME_OF.get((reg, size, high), reg)


def parse_reg(name: str) -> tuple[str, int, bool]:
    """Assembler register name -> (containing register, size in bits, high byte)."""
    return _REG_TABLE[name]


_PREFIX_REP, _PREFIX_REPNE, _PREFIX_LOCK = 0xF3, 0xF2, 0xF0

_MEMORY_SIZE = {"comisd": 64}
"""Memory operand sizes capstone 5 misreports (it gives COMISD's m64 as 128 bits)."""

_SSE_PREDICATES = ("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord")
_SSE_COMPARE = re.compile(rf"cmp({'|'.join(_SSE_PREDICATES)})(ss|sd|ps|pd)")
"""CMPSS/CMPSD/CMPPS/CMPPD pseudo-op spelling: predicate (SDM Vol. 2A, CMPPS table 3-7), then shape."""
_VEX_COMPARE = re.compile(r"vcmp\w*(ss|sd|ps|pd)")
"""VCMPPS and the others: capstone names all 32 predicates as pseudo-ops (``vcmpneq_usps``) under one id."""
_VEX_ESCAPES = (0xC4, 0xC5)
_SIMD_PREFIXES = frozenset({0x66, 0xF2, 0xF3, 0xF0})
"""Prefixes that make a following VEX prefix #UD (SDM Vol. 2A, 2.3.2); capstone accepts 66, F2 and F3 there."""


class Decoder:
    """Decodes x86-64 instructions from a fetch function; one capstone handle, reused.

    Capstone's decoding is read directly (``cpu.disassembly``: a few us an instruction, where the
    binding's ``CsInsn`` took about 20); making emu's records of it costs more, and the same
    instruction bytes recur all over a program (``mov rdi, rbx``, ``ret``, ``jmp $+0x12``).  So
    records are kept by their bytes and reused at any address (:meth:`_moved`): only a relative
    branch's target, which capstone reports as an absolute address, depends on where it is.
    """

    MEMO_SIZE = 1 << 16
    """Records kept by their bytes; the memo starts afresh when it is full."""

    def __init__(self) -> None:
        self._disassembler: Disassembler | None = None
        self.decoded = 0
        self._memo: dict[bytes, Insn] = {}
        self._names: dict[int, str] = {}
        """capstone instruction id -> its base name (``insn_name()`` is slow)."""
        self._regs: dict[int, str] = {0: ""}
        """capstone register id -> its name."""

    @property
    def _dis(self) -> Disassembler:
        """Capstone's handle, opened when the first instruction is decoded (a run whose blocks all come from
        the code cache needs none)."""
        if self._disassembler is None:
            from cpu import disassembly

            if (disassembly.OPERAND_REG, disassembly.OPERAND_IMM) != (OPERAND_REG, OPERAND_IMM):
                raise ImportError("this capstone numbers its operand types otherwise than cpu.decoder says")
            self._disassembler = disassembly.Disassembler()
        return self._disassembler

    def decode(self, fetch: Callable[[int, int], bytes], address: int) -> Insn:
        """Decode the instruction at ``address``; ``fetch(addr, n)`` returns up to ``n`` bytes.  An instruction
        whose bytes run into a page that faults is that page's fault (#PF with CR2 at its first byte, SDM Vol. 3A
        6.15 "Page-Fault Exception"), not #UD: the CPU fetches the whole instruction before it runs."""
        code = fetch(address, MAX_INSN_LEN)
        try:
            return self.decode_bytes(code, address)
        except UndefinedOpcode:
            if isinstance(code, Truncated):
                raise code.fault from None
            raise

    def decode_run(self, fetch: Callable[[int, int], bytes], address: int, count: int) -> Iterator[Insn]:
        """Up to ``count`` instructions from ``address`` on, decoded as they are asked for (a block's).

        The same instructions as calls of :meth:`decode`, and ``fetch`` reads no page that those calls
        would not: where an instruction's whole fetch window (15 bytes) lies in the page of ``address``,
        its bytes come from fetching a chunk of that page at once; near the page's end each instruction is
        fetched as :meth:`decode` does.
        """
        page_end = (address | (PAGE_SIZE - 1)) + 1
        while count > 0 and address + MAX_INSN_LEN <= page_end:
            base = address
            code = fetch(base, min(RUN_CHUNK, page_end - base))
            limit = base + len(code) - MAX_INSN_LEN       # start of the last window inside the chunk
            while count > 0 and address <= limit:
                offset = address - base
                raw = self._dis.decode(code[offset:offset + MAX_INSN_LEN], address)
                if raw is None:
                    break
                insn = self._record(raw)
                yield insn
                address = insn.next
                count -= 1
            if address <= limit:
                break                       # bytes capstone cannot decode: decode() says so below
        while count > 0:
            insn = self.decode(fetch, address)
            yield insn
            address = insn.next
            count -= 1

    def decode_bytes(self, code: bytes, address: int) -> Insn:
        raw = self._dis.decode(code, address)
        if raw is not None:
            return self._record(raw)
        cleared = _vex_w1_string_compare(code)
        raw = None if cleared is None else self._dis.decode(cleared, address)
        if raw is not None:                 # not remembered: the memo holds records by their own bytes
            self.decoded += 1
            insn, _ = self._convert(raw)
            return replace(insn, raw=code[:insn.length])
        shown = code[:MAX_INSN_LEN].hex(" ")
        raise UndefinedOpcode(f"cannot decode bytes {shown} at {address:#x}")

    def _record(self, raw: RawInsn) -> Insn:
        """The record of ``raw``: the memo's for the same bytes, moved to its address, or a new one, remembered
        by its bytes (unless it is a relative branch :meth:`_moved` could not redo)."""
        known = self._memo.get(raw.raw)
        if known is not None:
            return self._moved(known, raw.address)
        self.decoded += 1
        insn, relative = self._convert(raw)
        if relative and not _plain_branch(insn):
            return insn
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._memo[insn.raw] = insn
        return insn

    def _moved(self, insn: Insn, address: int) -> Insn:
        """The memo's record of the same bytes, at ``address``: a relative branch's target moves with it."""
        self.decoded += 1
        operands, text = insn.operands, insn.text
        if insn.relative:
            target = Operand(Kind.IMM, 64, imm=(operands[0].imm + address - insn.address) & _MASK64)
            operands = (target,)
            text = _branch_text(insn, target.imm)
        return Insn(address, insn.length, insn.raw, insn.mnemonic, text, operands,
                    insn.rep, insn.repne, insn.lock, insn.opsize, insn.relative)

    def _name(self, ident: int) -> str:
        name = self._names.get(ident)
        if name is None:
            name = self._names[ident] = self._dis.name(ident)
        return name

    def _reg(self, reg: int) -> str:
        name = self._regs.get(reg)
        if name is None:
            name = self._regs[reg] = self._dis.reg_name(reg)
        return name

    def _convert(self, ci: RawInsn) -> tuple[Insn, bool]:
        """The record of ``ci``, and whether it depends on its address (a relative branch)."""
        name = self._name(ci.id)
        relative = False
        operands = []
        for op in ci.operands:
            operands.append(self._operand(ci, op, name))
            if op[0] == OPERAND_IMM and ci.relative:
                relative = True
        prefix = ci.prefix
        mnemonic_text = ci.mnemonic
        text = f"{mnemonic_text} {ci.op_str}".strip()
        mnemonic = name
        if (compare := _SSE_COMPARE.fullmatch(mnemonic_text)) is not None:
            # capstone 5 prints CMPPS..CMPSD with imm8 0-7 as pseudo-ops ("cmpltsd"), drops the imm8
            # and reports a wrong instruction id (cmpordss -> "cmpxchg16b"): restore both
            mnemonic = "cmp" + compare[2]
            operands.append(Operand(Kind.IMM, 8, imm=_SSE_PREDICATES.index(compare[1])))
        elif name == "fadd" and mnemonic_text == "faddp":
            mnemonic = "faddp"          # capstone 5 gives FADDP (DE C0+i) FADD's instruction id
        elif name == "vcmp" and (compare := _VEX_COMPARE.fullmatch(mnemonic_text)) is not None:
            mnemonic = "vcmp" + compare[1]         # the predicate is the last byte, imm8
            operands.append(Operand(Kind.IMM, 8, imm=ci.raw[-1]))
        elif name in ("jmp", "call") and _is_far_indirect(ci.raw):
            mnemonic = "l" + name       # capstone names FF /3 and FF /5 without REX.W as near (m16:32 far)
        if _prefixed_vex(ci.raw):
            raise UndefinedOpcode(f"a 66, F2, F3 or F0 prefix before VEX in `{text}` at {ci.address:#x}")
        insn = Insn(
            address=ci.address, length=ci.size, raw=ci.raw, mnemonic=mnemonic, text=text,
            operands=tuple(operands), rep=prefix[0] == _PREFIX_REP, repne=prefix[0] == _PREFIX_REPNE,
            lock=prefix[0] == _PREFIX_LOCK or prefix[1] == _PREFIX_LOCK,
            opsize=_implicit_size(name), relative=relative,
        )
        return insn, relative

    def _operand(self, ci: RawInsn, op: tuple[int, ...], name: str) -> Operand:
        kind, size_bytes, reg, imm, segment, base_reg, index_reg, scale, disp = op
        size = size_bytes * 8
        if kind == OPERAND_REG:
            reg_name = self._reg(reg)
            if reg_name not in _REG_TABLE:
                raise UndefinedOpcode(f"register {reg_name} in `{ci.mnemonic} {ci.op_str}` at {ci.address:#x}")
            container, rsize, high = _REG_TABLE[reg_name]
            return Operand(Kind.REG, rsize, reg=container, high=high)
        if kind == OPERAND_IMM:
            bits = size or 64
            return Operand(Kind.IMM, bits, imm=imm & ((1 << bits) - 1))
        seg = self._reg(segment)
        base = self._reg(base_reg)
        index = self._reg(index_reg)
        asize = 64
        if base in ("eip",):
            raise UndefinedOpcode(f"32-bit RIP-relative addressing in `{ci.mnemonic} {ci.op_str}` at {ci.address:#x}")
        if index in ("riz", "eiz"):              # SIB byte with no index register
            index = ""
        vsib = index.startswith(("xmm", "ymm"))             # VSIB (gathers): a vector of indices, read by the semantics
        for reg_name in (base, "" if vsib else index):
            if reg_name and reg_name != "rip":
                if reg_name not in _REG_TABLE or _REG_TABLE[reg_name][1] not in (32, 64):
                    raise UndefinedOpcode(f"address register {reg_name} in `{ci.mnemonic} {ci.op_str}` "
                                          f"at {ci.address:#x}")
                asize = min(asize, _REG_TABLE[reg_name][1])
        if base and base != "rip":
            base = _REG_TABLE[base][0]
        if index and not vsib:
            index = _REG_TABLE[index][0]
        if not base and not index and ci.prefix[3] == 0x67:
            asize = 32
        size = _MEMORY_SIZE.get(name, size)
        return Operand(Kind.MEM, size, seg=seg if seg in ("fs", "gs") else "", base=base, index=index,
                       scale=scale, disp=disp, asize=asize)


_MASK64 = (1 << 64) - 1


def _plain_branch(insn: Insn) -> bool:
    """A relative branch as :meth:`Decoder._moved` expects it: one 64-bit target, printed the usual way."""
    return (len(insn.operands) == 1 and insn.operands[0] == Operand(Kind.IMM, 64, imm=insn.operands[0].imm)
            and insn.text == _branch_text(insn))


def _branch_text(insn: Insn, target: int | None = None) -> str:
    """How capstone prints a relative branch (with its prefixes) to ``target`` (default: its own):
    decimal below 10, else hex."""
    if target is None:
        target = insn.operands[0].imm
    head = insn.text.rsplit(" ", 1)[0]
    return f"{head} {target if 0 <= target < 10 else hex(target)}"


def _vex_w1_string_compare(code: bytes) -> bytes | None:
    """``code`` with VEX.W cleared when it starts with a three-byte VEX, map 0F3A, W = 1 and opcode 60 or 61
    (VPCMPESTRM, VPCMPESTRI), which capstone 5 does not decode; else None."""
    if len(code) > 3 and code[0] == 0xC4 and code[1] & 0x1F == 3 and code[2] & 0x80 and code[3] in (0x60, 0x61):
        return code[:2] + bytes([code[2] & 0x7F]) + code[3:]
    return None


def _prefixed_vex(raw: bytes) -> bool:
    """A VEX instruction with a 66, F2, F3 or LOCK prefix before its VEX prefix."""
    i = 0
    while i < len(raw) and raw[i] in _LEGACY_PREFIXES:
        i += 1
    return 0 < i < len(raw) and raw[i] in _VEX_ESCAPES and any(p in _SIMD_PREFIXES for p in raw[:i])


_LEGACY_PREFIXES = frozenset({0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67})


def _prefix_run(raw: bytes) -> int:
    """How many legacy prefix and REX bytes an instruction starts with."""
    end = 0
    while end < len(raw) and (raw[end] in _LEGACY_PREFIXES or 0x40 <= raw[end] <= 0x4F):
        end += 1
    return end


def legacy_prefixes(raw: bytes) -> bytes:
    """The legacy prefix bytes an instruction starts with (SDM Vol. 2A, 2.1.1), in order."""
    return bytes(b for b in raw[:_prefix_run(raw)] if b in _LEGACY_PREFIXES)


def operand_size_16(raw: bytes) -> bool:
    """Does a 0x66 prefix select the 16-bit operand size, i.e. is there one and no REX.W (SDM Vol. 2A, 2.2.1.2)?"""
    end = _prefix_run(raw)
    return 0x66 in raw[:end] and not (end and 0x48 <= raw[end - 1] <= 0x4F)


def _is_far_indirect(raw: bytes) -> bool:
    """FF /3 (CALL m16:xx) or FF /5 (JMP m16:xx): far transfers through memory (SDM Vol. 2A, CALL/JMP)."""
    i = _prefix_run(raw)
    return i + 1 < len(raw) and raw[i] == 0xFF and ((raw[i + 1] >> 3) & 7) in (3, 5) and raw[i + 1] >> 6 != 3


_IMPLICIT = {"b": 8, "w": 16, "d": 32, "q": 64}


def _implicit_size(name: str) -> int:
    """Operand size of instructions with no explicit operands (cwde, stosq, pushfq, iretq...), by capstone name."""
    if name in ("cbw", "cwd", "popf", "pushf"):
        return 16
    if name in ("cwde", "cdq", "popfd", "pushfd", "iretd"):
        return 32
    if name in ("cdqe", "cqo", "popfq", "pushfq", "iretq", "retfq", "sysretq"):
        return 64
    return _IMPLICIT.get(name[-1], 0) if name[:4] in ("stos", "lods", "movs", "cmps", "scas") else 0


class Truncated(bytes):
    """The bytes a fetch got before a page that faults, and that page's fault."""

    fault: GuestFault


def safe_fetch(read: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
    """A fetch that returns what it can: up to the first page that faults (a :class:`Truncated` then)."""
    def fetch(address: int, length: int) -> bytes:
        try:
            return read(address, length)
        except GuestFault as fault:
            end = (address | 0xFFF) + 1
            if end - address >= length:
                raise
            part = Truncated(read(address, end - address))
            part.fault = fault
            return part
    return fetch
