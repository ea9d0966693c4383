"""Instruction decoding: capstone's x86-64 disassembler into our own immutable records.

Capstone (``CS_MODE_64`` with operand details) does the byte-level work of the
SDM Vol. 2 ch. 2 (instruction format: prefixes, REX, ModRM, SIB, displacement,
immediate).  We normalise what it reports into :class:`Insn` and
:class:`Operand` records that the semantics read: registers are named by the
64-bit (or 128-bit) register they live in, with a size and a high-byte flag;
immediates are masked to the operand size; memory operands carry segment,
base, index, scale, displacement and access size.  Each guest instruction is
decoded once: callers cache the records (the interpreter caches whole blocks).

Bytes capstone cannot decode become :class:`cpu.exceptions.UndefinedOpcode`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import capstone
from capstone import x86_const as X

from cpu.exceptions import GuestFault, UndefinedOpcode

MAX_INSN_LEN = 15


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
for _s in ("es", "cs", "ss", "ds", "fs", "gs"):
    _REG_TABLE[_s] = (_s, 16, False)
for _i in (0, 2, 3, 4, 8):
    _REG_TABLE[f"cr{_i}"] = (f"cr{_i}", 64, False)
# DR4 and DR5 are DR6 and DR7 while CR4.DE = 0, which is always true here (DE is not advertised).
for _alias, _i in (("dr4", 6), ("dr5", 7), *((f"dr{_n}", _n) for _n in (0, 1, 2, 3, 6, 7))):
    _REG_TABLE[_alias] = (f"dr{_i}", 64, False)
_REG_TABLE["rip"] = ("rip", 64, False)

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


class Decoder:
    """Decodes x86-64 instructions from a fetch function; one capstone handle, reused."""

    def __init__(self) -> None:
        self._cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._cs.detail = True
        self.decoded = 0

    def decode(self, fetch: Callable[[int, int], bytes], address: int) -> Insn:
        """Decode the instruction at ``address``; ``fetch(addr, n)`` returns up to ``n`` bytes."""
        code = fetch(address, MAX_INSN_LEN)
        return self.decode_bytes(code, address)

    def decode_bytes(self, code: bytes, address: int) -> Insn:
        for ci in self._cs.disasm(code, address, 1):
            self.decoded += 1
            return self._convert(ci)
        shown = code[:MAX_INSN_LEN].hex(" ")
        raise UndefinedOpcode(f"cannot decode bytes {shown} at {address:#x}")

    def _convert(self, ci: capstone.CsInsn) -> Insn:
        operands = []
        for op in ci.operands:
            operands.append(self._operand(ci, op))
        prefix = ci.prefix
        text = f"{ci.mnemonic} {ci.op_str}".strip()
        mnemonic = ci.insn_name()
        if (compare := _SSE_COMPARE.fullmatch(ci.mnemonic)) is not None:
            # capstone 5 prints CMPPS..CMPSD with imm8 0-7 as pseudo-ops ("cmpltsd"), drops the imm8
            # and reports a wrong instruction id (cmpordss -> "cmpxchg16b"): restore both
            mnemonic = "cmp" + compare[2]
            operands.append(Operand(Kind.IMM, 8, imm=_SSE_PREDICATES.index(compare[1])))
        return Insn(
            address=ci.address, length=ci.size, raw=bytes(ci.bytes), mnemonic=mnemonic, text=text,
            operands=tuple(operands), rep=prefix[0] == _PREFIX_REP, repne=prefix[0] == _PREFIX_REPNE,
            lock=prefix[0] == _PREFIX_LOCK or prefix[1] == _PREFIX_LOCK,
            opsize=_implicit_size(ci),
        )

    @staticmethod
    def _operand(ci: capstone.CsInsn, op: capstone.x86.X86Op) -> Operand:
        size = op.size * 8
        if op.type == X.X86_OP_REG:
            name = ci.reg_name(op.reg)
            if name not in _REG_TABLE:
                raise UndefinedOpcode(f"register {name} in `{ci.mnemonic} {ci.op_str}` at {ci.address:#x}")
            reg, rsize, high = _REG_TABLE[name]
            return Operand(Kind.REG, rsize, reg=reg, high=high)
        if op.type == X.X86_OP_IMM:
            bits = size or 64
            return Operand(Kind.IMM, bits, imm=op.imm & ((1 << bits) - 1))
        mem = op.mem
        seg = ci.reg_name(mem.segment) if mem.segment else ""
        base = ci.reg_name(mem.base) if mem.base else ""
        index = ci.reg_name(mem.index) if mem.index else ""
        asize = 64
        if base in ("eip",):
            raise UndefinedOpcode(f"32-bit RIP-relative addressing in `{ci.mnemonic} {ci.op_str}` at {ci.address:#x}")
        if index in ("riz", "eiz"):              # SIB byte with no index register
            index = ""
        for name in (base, index):
            if name and name != "rip":
                if name not in _REG_TABLE or _REG_TABLE[name][1] not in (32, 64):
                    raise UndefinedOpcode(f"address register {name} in `{ci.mnemonic} {ci.op_str}` "
                                          f"at {ci.address:#x}")
                asize = min(asize, _REG_TABLE[name][1])
        if base and base != "rip":
            base = _REG_TABLE[base][0]
        if index:
            index = _REG_TABLE[index][0]
        if not base and not index and ci.prefix[3] == 0x67:
            asize = 32
        size = _MEMORY_SIZE.get(ci.insn_name(), size)
        return Operand(Kind.MEM, size, seg=seg if seg in ("fs", "gs") else "", base=base, index=index,
                       scale=mem.scale, disp=mem.disp, asize=asize)


_IMPLICIT = {"b": 8, "w": 16, "d": 32, "q": 64}


def _implicit_size(ci: capstone.CsInsn) -> int:
    """Operand size of instructions with no explicit operands (cwde, stosq, pushfq, iretq...)."""
    name = ci.insn_name()
    if name in ("cbw", "cwd", "popf", "pushf"):
        return 16
    if name in ("cwde", "cdq", "popfd", "pushfd", "iretd"):
        return 32
    if name in ("cdqe", "cqo", "popfq", "pushfq", "iretq", "retfq", "sysretq"):
        return 64
    return _IMPLICIT.get(name[-1], 0) if name[:4] in ("stos", "lods", "movs", "cmps", "scas") else 0


def safe_fetch(read: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
    """A fetch that returns what it can: up to the first page that faults."""
    def fetch(address: int, length: int) -> bytes:
        try:
            return read(address, length)
        except GuestFault:
            end = (address | 0xFFF) + 1
            return read(address, end - address)
    return fetch
