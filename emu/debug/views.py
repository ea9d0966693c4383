"""What the debugger shows: registers, memory (``x/NFU``), disassembly, stack frames.

The formats follow gdb's manual ("Examining Memory", "Registers", "Output
Formats", "Backtraces"): ``info registers`` prints name, hex and natural value
in columns and decodes EFLAGS as ``[ PF ZF IF ]``; ``x`` labels each line
with its address and ``<symbol+offset>``; a disassembly line marks the
current instruction with ``=>`` and names the target of a branch or of a
RIP-relative operand (``# 0x4c6f10 <counter>``).

Frames are found by frame pointers (the SysV psABI 3.2.2 frame: the return
address at [rbp+8], the caller's rbp at [rbp]), with a look at the function's
prologue so that the first instructions of a function, before ``push rbp;
mov rbp, rsp`` has run, and its ``ret`` find the return address on the stack
instead.  Code compiled without frame pointers is not followed (no DWARF CFI).

On a full-system machine ``info registers`` goes on with the system
registers, as QEMU's monitor shows them: kernel_gs_base, CR0, CR2, CR3, CR4,
CR8 and EFER (their set bits named, SDM Vol. 3A, 2.5 and 2.2.1), the CPL, and
GDTR, IDTR and TR with their bases and limits.  They are read-only here.

Not shown here: x87 and SSE registers in ``info registers`` (the trace shows
XMM changes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from cpu.decoder import Decoder, Insn, Kind, parse_reg, safe_fetch
from cpu.exceptions import GuestFault
from cpu.flags import read_rflags, write_rflags
from cpu.state import GPR64, SEGMENTS, CpuState
from emu.debug.expr import MASK64, ExprError, Value
from emu.debug.symbols import SymbolTable
from emu.debug.target import Breakpoint, Watchpoint

GDB_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
"""General registers in the order ``info registers`` lists them (gdb's amd64 numbering)."""

USER_REGISTERS = (*GDB_GPRS, "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base")
"""What ``info registers`` shows for a user-mode process."""

CONTROL_BITS = {
    "cr0": ((0, "PE"), (1, "MP"), (2, "EM"), (3, "TS"), (4, "ET"), (5, "NE"), (16, "WP"), (18, "AM"), (29, "NW"),
            (30, "CD"), (31, "PG")),
    "cr4": ((0, "VME"), (1, "PVI"), (2, "TSD"), (3, "DE"), (4, "PSE"), (5, "PAE"), (6, "MCE"), (7, "PGE"),
            (8, "PCE"), (9, "OSFXSR"), (10, "OSXMMEXCPT"), (11, "UMIP"), (12, "LA57"), (13, "VMXE"), (14, "SMXE"),
            (16, "FSGSBASE"), (17, "PCIDE"), (18, "OSXSAVE"), (20, "SMEP"), (21, "SMAP"), (22, "PKE")),
    "efer": ((0, "SCE"), (8, "LME"), (10, "LMA"), (11, "NXE"), (12, "SVME"), (14, "FFXSR")),
}
"""The named bits of CR0 and CR4 (SDM Vol. 3A, 2.5, figure 2-7) and of the EFER MSR (2.2.1, table 2-1)."""

SYSTEM_REGISTERS = ("kernel_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer", "cpl", "gdtr", "idtr", "tr")
"""What ``info registers`` adds on a full-system machine."""
_SYSTEM_VALUES = ("kernel_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer", "cpl", "gdtr_base", "gdtr_limit",
                  "idtr_base", "idtr_limit", "tr", "tss_base")
"""System registers an expression may read (``p $cr3``) on a machine."""
_SYSTEM_ADDRESSES = frozenset({"kernel_gs_base", "cr2", "cr3", "gdtr_base", "idtr_base", "tss_base"})
"""Those that hold addresses: shown in hex."""

_ALIASES = {"pc": "rip", "sp": "rsp", "fp": "rbp", "ps": "eflags", "rflags": "eflags"}
_POINTERS = {"rip", "rsp", "rbp"}

_EFLAGS_BITS = ((0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"), (10, "DF"),
                (11, "OF"), (14, "NT"), (16, "RF"), (17, "VM"), (18, "AC"), (19, "VIF"), (20, "VIP"), (21, "ID"))

UNITS = {"b": 1, "h": 2, "w": 4, "g": 8}
FORMATS = "xduotcasi"
_PER_LINE = {1: 8, 2: 8, 4: 4, 8: 2}
STRING_LIMIT = 200
"""Characters ``x/s`` shows of one string before "..." (gdb's ``print elements``)."""

_WATCH_TYPES = {"write": "hw watchpoint", "read": "read watchpoint", "access": "acc watchpoint"}
_BRANCHES = re.compile(r"j\w+|call|loop\w*")


class DebugError(Exception):
    """A command cannot be carried out; the message (gdb's words where gdb has some) is shown to the user."""


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def eflags_text(value: int) -> str:
    """The set flags of an EFLAGS value, low bit first, as gdb prints them: ``[ PF ZF IF ]``."""
    names = [name for bit, name in _EFLAGS_BITS if value >> bit & 1]
    if iopl := value >> 12 & 3:
        names.append(f"IOPL={iopl}")
    return "[ " + " ".join(names) + (" ]" if names else "]")


def bits_text(value: int, bits: tuple[tuple[int, str], ...]) -> str:
    """The set bits of a control register by name, as ``eflags_text`` shows flags: ``[ PE ET PG ]``."""
    names = [name for bit, name in bits if value >> bit & 1]
    return "[ " + " ".join(names) + (" ]" if names else "]")


class Registers:
    """Registers by their assembler names (``rax``, ``eax``, ``al``, ``ah``, ``r8d``, ``rip``, ``eflags``...);
    with ``system``, also a machine's (``cr0``, ``cr3``, ``efer``, ``cpl``, ``gdtr_base``...), read-only."""

    def __init__(self, state: CpuState, *, system: bool = False) -> None:
        self.state = state
        self.system = system

    def read(self, name: str) -> Value | None:
        """The register's value (signed like gdb's for general registers), or None for an unknown name."""
        name = _ALIASES.get(name, name)
        state = self.state
        if self.system and name in _SYSTEM_VALUES:
            return Value(getattr(state, name), 8, address=name in _SYSTEM_ADDRESSES)
        if name == "rip":
            return Value(state.rip, 8, address=True)
        if name == "eflags":
            return Value(read_rflags(state), 4)
        if name in ("fs_base", "gs_base"):
            return Value(getattr(state, name), 8)
        try:
            reg, bits, high = parse_reg(name)
        except KeyError:
            return None
        if reg in GPR64:
            raw = getattr(state, reg) >> (8 if high else 0) & ((1 << bits) - 1)
            if name in _POINTERS:
                return Value(raw, 8, address=True)
            return Value(_signed(raw, bits), bits // 8)
        if reg in SEGMENTS:
            return Value(getattr(state, reg), 2)
        if reg.startswith("xmm"):
            return Value(state.xmm(int(reg[3:])), 16)
        if reg.startswith("ymm"):
            return Value(state.ymm(int(reg[3:])), 32)
        return None          # control registers: only on a full-system machine

    def write(self, name: str, value: int) -> None:
        """Set a register; a sub-register keeps the other bits of its register (as gdb writes $eax)."""
        name = _ALIASES.get(name, name)
        state = self.state
        if name == "rip":
            state.rip = value & MASK64
        elif name == "eflags":
            write_rflags(state, value & 0xFFFF_FFFF)
        elif name in ("fs_base", "gs_base"):
            setattr(state, name, value & MASK64)
        elif self.system and name in _SYSTEM_VALUES:
            raise ExprError(f"${name} is read-only in the debugger (a system register changes the machine's mode)")
        elif self.read(name) is None:
            raise ExprError(f"no register named ${name}")
        else:
            reg, bits, high = parse_reg(name)
            if reg.startswith("xmm"):
                state.set_xmm(int(reg[3:]), value & ((1 << 128) - 1))
                return
            if reg.startswith("ymm"):
                state.set_ymm(int(reg[3:]), value & ((1 << 256) - 1))
                return
            shift = 8 if high else 0
            mask = ((1 << bits) - 1) << shift
            setattr(state, reg, (getattr(state, reg) & ~mask) | ((value << shift) & mask))

    def snapshot(self) -> dict[str, int]:
        """Raw values of the registers whose changes stops and the trace report (not RIP: the instruction line
        shows it): general registers, eflags, selectors, fs/gs bases, XMM0-15.  Read directly from the state,
        as the trace takes one snapshot per instruction.
        """
        state = self.state
        values = {name: getattr(state, name) for name in GDB_GPRS}
        values["eflags"] = read_rflags(state)
        for name in (*SEGMENTS, "fs_base", "gs_base"):
            values[name] = getattr(state, name)
        for i in range(16):
            values[f"xmm{i}"] = getattr(state, f"xmm{i}_lo") | getattr(state, f"xmm{i}_hi") << 64
        return values


def changes(before: dict[str, int], after: dict[str, int], arrow: bool = True) -> list[str]:
    """``rax: 0x0 -> 0x5`` (or ``rax=0x5`` without ``arrow``) for each register that differs."""
    if arrow:
        return [f"{n}: {before[n]:#x} -> {after[n]:#x}" for n in after if before.get(n) != after[n]]
    return [f"{'rflags' if n == 'eflags' else n}={after[n]:#x}" for n in after if before.get(n) != after[n]]


def format_value(v: Value, fmt: str | None, symbolize: Callable[[int], str]) -> str:
    """One value in a gdb output format (``x d u o t c a``; None: natural)."""
    bits = 8 * v.size
    raw = v.unsigned
    match fmt:
        case None:
            return f"{raw:#x}{symbolize(raw)}" if v.address else str(v.value)
        case "x":
            return hex(raw)
        case "d":
            return str(_signed(raw, bits))
        case "u":
            return str(raw)
        case "o":
            return f"0{raw:o}" if raw else "0"
        case "t":
            return f"{raw:b}"
        case "c":
            byte = raw & 0xFF
            return f"{_signed(byte, 8)} '{escape(bytes([byte]), quote=chr(39))}'"
        case "a":
            return f"{raw:#x}{symbolize(raw)}"
    raise ExprError(f"Undefined output format \"{fmt}\".")


def escape(data: bytes, quote: str = '"') -> str:
    """C-style text for bytes, as gdb prints strings: \\n, \\t, \\" and octal for the rest."""
    out = []
    named = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\033", 92: "\\\\"}
    for b in data:
        if b in named:
            out.append(named[b])
        elif chr(b) == quote:
            out.append("\\" + quote)
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def parse_x_spec(spec: str) -> tuple[int | None, str | None, str | None]:
    """``4xg`` -> (4, "x", "g"); any part may be missing."""
    m = re.fullmatch(r"(\d*)([a-z]*)", spec)
    if m is None:
        raise ExprError(f"Invalid number \"{spec}\".")
    count = int(m[1]) if m[1] else None
    fmt = unit = None
    for letter in m[2]:
        if letter in UNITS and unit is None:
            unit = letter
        elif letter in FORMATS and fmt is None:
            fmt = letter
        else:
            raise ExprError(f"Invalid format letter \"{letter}\" in /{spec} (formats: {FORMATS}; units: bhwg)")
    return count, fmt, unit


class Views:
    """Text views of a stopped guest's memory and code, with symbols."""

    def __init__(self, read: Callable[[int, int], bytes], symbols: SymbolTable, state: CpuState) -> None:
        self.read = read
        self.symbols = symbols
        self.state = state
        self.decoder = Decoder()
        self.fetch = safe_fetch(read)

    # -- names --------------------------------------------------------------------
    def symbolize(self, address: int, *, plus_zero: bool = False) -> str:
        """`` <name+off>`` for an address inside a symbol, else the empty string."""
        name = self.symbols.describe(address, plus_zero=plus_zero)
        return f" <{name}>" if name else ""

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.read(address & MASK64, 8), "little")

    # -- code -----------------------------------------------------------------------
    def insn_at(self, address: int) -> Insn:
        """The instruction at ``address``; GuestFault when its first byte is unmapped or it does not decode."""
        self.read(address, 1)
        return self.decoder.decode(self.fetch, address)

    def insn_line(self, address: int, *, mark: bool = True) -> tuple[str, int]:
        """``=> 0x401000 <main+0>:\\tpush rbp`` and the next instruction's address."""
        marker = "=> " if mark and address == self.state.rip else "   " if mark else ""
        where = f"{marker}{address:#x}{self.symbolize(address, plus_zero=True)}:\t"
        self.read(address, 1)
        try:
            insn = self.decoder.decode(self.fetch, address)
        except GuestFault:
            return where + f"(bad)  {self.fetch(address, 1).hex()}", address + 1
        return where + insn.text + self.annotation(insn), insn.next

    def annotation(self, insn: Insn) -> str:
        """The symbol of a branch target or a RIP-relative operand's address."""
        for op in insn.operands:
            if op.kind is Kind.IMM and _BRANCHES.fullmatch(insn.mnemonic):
                return self.symbolize(op.imm, plus_zero=True)
            if op.kind is Kind.MEM and op.base == "rip" and not op.index:
                target = (insn.next + op.disp) & MASK64
                return f"\t# {target:#x}{self.symbolize(target)}"
        return ""

    def stored(self, insn: Insn) -> list[tuple[int, int]]:
        """Address and size of the memory an instruction may write: its memory operands, a push's stack slot."""
        state = self.state
        places = []
        for op in insn.operands:
            if op.kind is not Kind.MEM:
                continue
            base = insn.next if op.base == "rip" else getattr(state, op.base) if op.base else 0
            address = base + (getattr(state, op.index) * op.scale if op.index else 0) + op.disp
            address &= MASK64 if op.asize == 64 else 0xFFFF_FFFF
            if op.seg:
                address = (address + getattr(state, f"{op.seg}_base")) & MASK64
            places.append((address, min(op.size // 8 or 8, 64)))
        if insn.mnemonic in ("push", "pushfq", "call"):
            places.append(((state.rsp - 8) & MASK64, 8))
        return places

    def disassemble(self, address: int, count: int) -> Iterator[str]:
        for _ in range(count):
            line, address = self.insn_line(address)
            yield line

    # -- memory ---------------------------------------------------------------------
    def examine(self, address: int, count: int, fmt: str, unit: str) -> Iterator[str]:
        """The lines of ``x/{count}{fmt}{unit} address``; GuestFault after the readable ones.

        The generator's return value (``StopIteration.value``) is the address after the last item.
        """
        if fmt == "i":
            for _ in range(count):
                line, address = self.insn_line(address)
                yield line
            return address
        if fmt == "s":
            for _ in range(count):
                data = self._cstring(address)
                more = "..." if len(data) > STRING_LIMIT else ""
                yield f"{address:#x}{self.symbolize(address)}:\t\"{escape(data[:STRING_LIMIT])}\"{more}"
                address += len(data) + 1
            return address
        size = UNITS[unit]
        per_line = _PER_LINE[size]
        while count > 0:
            items = []
            line_start = address
            for _ in range(min(count, per_line)):
                try:
                    data = self.read(address, size)
                except GuestFault:
                    if items:
                        yield f"{line_start:#x}{self.symbolize(line_start)}:\t" + "\t".join(items)
                    raise
                items.append(self._item(int.from_bytes(data, "little"), size, fmt))
                address += size
                count -= 1
            yield f"{line_start:#x}{self.symbolize(line_start)}:\t" + "\t".join(items)
        return address

    def _item(self, raw: int, size: int, fmt: str) -> str:
        if fmt == "x":
            return f"0x{raw:0{2 * size}x}"
        if fmt == "t":
            return f"{raw:0{8 * size}b}"
        return format_value(Value(raw, size, address=fmt == "a"), None if fmt == "a" else fmt, self.symbolize)

    def _cstring(self, address: int) -> bytes:
        out = bytearray()
        while len(out) <= STRING_LIMIT:
            chunk = self.fetch(address, 64)   # faults only when ``address`` itself is unreadable
            end = chunk.find(0)
            if end >= 0:
                return bytes(out + chunk[:end])
            out += chunk
            address += len(chunk)
        return bytes(out)

    # -- registers ------------------------------------------------------------------
    def register_line(self, name: str, v: Value) -> str:
        raw = v.unsigned
        if name in ("eflags", "rflags", "ps"):
            natural = eflags_text(raw)
        elif name in CONTROL_BITS:
            natural = bits_text(raw, CONTROL_BITS[name])
        elif v.address:
            natural = f"{raw:#x}{self.symbolize(raw, plus_zero=True) if name in ('rip', 'pc') else ''}"
        else:
            natural = str(v.value)
        return f"{name:<15}{raw:<#19x}{natural}"

    def table_register_line(self, name: str) -> str:
        """``gdtr``/``idtr`` with base and limit, ``tr`` with the selector and the TSS base it loaded."""
        s = self.state
        if name == "tr":
            return f"{name:<15}{s.tr:<#19x}base={s.tss_base:#x}"
        return f"{name:<15}{getattr(s, f'{name}_base'):<#19x}limit={getattr(s, f'{name}_limit'):#x}"

    def breakpoint_table(self, points: list[Breakpoint | Watchpoint]) -> Iterator[str]:
        """``info breakpoints``: number, type, disposition, enabled, address, what; then conditions and hits."""
        if not points:
            return
        yield f"{'Num':<8}{'Type':<16}{'Disp':<5}{'Enb':<4}{'Address':<19}What"
        for p in sorted(points, key=lambda p: p.number):
            enabled = "y" if p.enabled else "n"
            if isinstance(p, Watchpoint):
                what = f"{p.address:#x}{self.symbolize(p.address)} ({p.length} bytes)"
                yield f"{p.number:<8}{_WATCH_TYPES[p.kind]:<16}{'keep':<5}{enabled:<4}{'':<19}{what}"
            else:
                disp = "del" if p.temporary else "keep"
                where = self.symbolize(p.address, plus_zero=True).strip()
                yield f"{p.number:<8}{'breakpoint':<16}{disp:<5}{enabled:<4}{p.address:<#19x}{where}"
                if p.condition:
                    yield f"\tstop only if {p.condition}"
            if p.hits:
                yield f"\tbreakpoint already hit {p.hits} time{'s' if p.hits > 1 else ''}"

    # -- frames ---------------------------------------------------------------------
    def caller_frame(self) -> tuple[int, int] | None:
        """Where the current function returns to, and the caller's rbp; None outside any known function.

        At the function's first instruction (or its ``ret``) the return address
        is at [rsp]; right after ``push rbp`` at [rsp+8]; once ``mov rbp, rsp``
        has run, at [rbp+8] with the caller's rbp at [rbp].
        """
        state = self.state
        rip, rsp, rbp = state.rip, state.rsp, state.rbp
        symbol = self.symbols.at(rip)
        if symbol is None:
            return None
        here = self.insn_at(rip)
        if rip == symbol.address or here.mnemonic == "ret":
            return self.read_u64(rsp), rbp
        first = self.insn_at(symbol.address)
        if first.mnemonic == "endbr64":
            if rip == first.next:
                return self.read_u64(rsp), rbp
            first = self.insn_at(first.next)
        if first.text == "push rbp" and rip == first.next:
            return self.read_u64(rsp + 8), rbp
        return self.read_u64(rbp + 8), self.read_u64(rbp)

    def frames(self, limit: int = 64) -> list[int]:
        """Return addresses up the stack, the current RIP first: frame #0, #1, ...

        The walk stops at a zero rbp (``_start`` clears it), an unreadable
        frame, a frame below the previous one (a corrupt chain), a return
        address that is not code (:meth:`is_code`), or ``limit`` frames.
        """
        pcs = [self.state.rip]
        try:
            caller = self.caller_frame()
        except GuestFault:
            return pcs
        if caller is None:
            return pcs
        pc, rbp = caller
        while len(pcs) < limit and self.is_code(pc):
            pcs.append(pc)
            if rbp == 0:
                break
            try:
                pc, next_rbp = self.read_u64(rbp + 8), self.read_u64(rbp)
            except GuestFault:
                break
            if next_rbp and next_rbp <= rbp:
                break
            rbp = next_rbp
        return pcs

    def is_code(self, address: int) -> bool:
        """Could ``address`` be a return address: readable, and inside a symbol (when there are symbols)?"""
        try:
            self.read(address, 1)
        except GuestFault:
            return False
        return not len(self.symbols) or self.symbols.at(address) is not None

    def frame_line(self, number: int, pc: int) -> str:
        symbol = self.symbols.at(pc)
        return f"#{number:<3}{pc:#018x} in {symbol.name if symbol else '??'} ()"
