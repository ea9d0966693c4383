"""The LLVM backend of ``ops``: semantics in, LLVM IR text for one block out.

The JIT (``cpu.jit``) runs the same semantic functions as the interpreter
through :class:`LlvmOps`, which writes each call out as LLVM IR (the
language reference's instruction set, LLVM 15+ opaque pointers) instead of
Python source.  One guest block becomes one function::

    i64 @b_401000(ptr %s, ptr %x)     ; %s: the CpuState, %x: the JitContext

returning the next RIP.  Guest registers are loaded from ``CpuState`` into
SSA values on first use and stored back once, at the block's exits; the
status flags stay a cc record known at translation time (``cpu.flags``), so
flags nobody reads are never computed.

Values have explicit widths here (the vocabulary's results are Python-style
non-negative integers): every value is an ``i64``, ``i128`` or ``i256``
(``Val``), and narrower sizes are masks, as in the Python backend.  A shift
by the width or more gives what Python gives (0, or the sign for ``sar``),
never LLVM's poison.  128-bit division is a loop in the runtime module
(:data:`RUNTIME_IR`), so no compiler-rt symbol is needed on any host.

Every exit says why through the context: ``x.exit`` (0 next block, 1 fault
at a site, 2 a store hit a code page, 3 an event), ``x.site`` (a fault
site's number, which names the block, the instruction and the fault).  A
fault site stores the registers the block changed as they were when the
faulting instruction began (register writes take effect at an
instruction's end), so state is exact at the instruction boundary.

Memory goes through an inline software-TLB lookup: the tag and addend
arrays of the current privilege's read and write TLBs (``cpu.memory``
mirrors every change of its dictionaries into them); otherwise through the
runtime's ``@emu_slow_load``/``@emu_slow_store``, which do an access of up to
8 bytes across two pages the TLB holds and call the interpreter's slow path
(a callback) for the rest: a miss, a wider straddle, MMIO, a watched page.
Helpers without native code and the state-touching calls go through
callbacks too; exceptions never cross them, a status comes back.

Not done natively yet: SSE integer and float helpers (they call Python).
"""

from __future__ import annotations

from cpu.backends import lazyflags
from cpu.backends.llvm_abi import (
    EXIT_CODE_WRITE,
    EXIT_EVENT,
    EXIT_FAULT,
    EXIT_NEXT,
    MASK64,
    STATUS_FAULT,
    TLB_SIZE,
    LoweringError,
    NativeBlock,
    Site,
    ctx_offset,
    state_field,
)
from cpu.backends.llvm_flags import cc_flags, condition_of
from cpu.backends.llvm_float import NATIVE as FLOAT_NATIVE
from cpu.backends.llvm_float import FloatLanes
from cpu.backends.llvm_ir import Builder, V, Val, literal, wide, width_of
from cpu.backends.llvm_vector import VectorLanes
from cpu.decoder import Insn, Kind, Operand
from cpu.flags import ARITH, CcOp, Flag
from cpu.memory import PRESENCE_SIZE

NATIVE_HELPERS = frozenset({"parity", "popcount", "bit_scan_forward", "bit_scan_reverse", "sdiv", "srem"})
NATIVE_REPS = frozenset({"rep_stos", "rep_movs"})
"""The ``CALLS`` with a native fast path (:meth:`LlvmOps._native_rep`) before the call."""


def _is_xmm(name: str) -> bool:
    """A whole XMM register or YMM upper half (two CpuState fields), as opposed to one of its u64 halves."""
    return name.startswith(("xmm", "ymmh")) and not name.endswith(("_lo", "_hi"))


# -- the block builder ---------------------------------------------------------------------

class LlvmOps:
    """Builds the IR of one block function (see the module docstring)."""

    def __init__(self, name: str, helper_ids: dict[str, int], call_ids: dict[str, int], site_base: int,
                 sites: str = "@sites") -> None:
        """``site_base``: the number of the block's first exit site within its module; ``sites``: the module's
        global that holds the module's first site number in the process (written when the module is installed,
        so that the code does not depend on what was compiled before it and can be kept in the code cache)."""
        self.name = name
        self.site_base = site_base
        self.sites_global = sites
        self.b = Builder()
        self.helper_ids = helper_ids
        self.call_ids = call_ids
        self.cur: dict[str, Val] = {}
        self.pending: dict[str, V] = {}
        self.dirty: set[str] = set()
        self.cc: tuple | None = None
        self.cc_changed = False
        self.begin_state: tuple[dict[str, Val], set[str], tuple | None, bool] = ({}, set(), None, False)
        self.target: V | None = None
        self.ended = False
        self.event_name: str | None = None
        self.insn: Insn | None = None
        self.index = -1
        self.sites: list[Site] = []
        self.stored = False
        self.used_helpers: set[str] = set()
        self.tlb: dict[str, str] = {}
        self.declares: set[str] = set()
        self.vector = VectorLanes(self.b, self.declares)
        self.floats = FloatLanes(self.b, self.declares)

    # -- structure ----------------------------------------------------------------------
    def begin(self, insn: Insn) -> None:
        self.insn = insn
        self.index += 1
        self.b.lines.append(f"  ; {insn.address:#x}: {insn.text}")
        self.stored = False
        self.begin_state = (dict(self.cur), set(self.dirty), self.cc, self.cc_changed)

    def end(self) -> None:
        for name, value in self.pending.items():
            self.cur[name] = self._as_field(name, value)
            self.dirty.add(name)
        self.pending.clear()
        if self.stored and not self.ended:
            # A store that reached translated code: stop after this instruction (self-modifying code).
            hit = self.b.icmp("ne", self._ctx_load("exit", 64), 0, 64)
            stop, go = self.b.fresh("smc"), self.b.fresh("go")
            self.b.emit(f"br i1 {hit}, label {stop}, label {go}")
            self.b.label(stop)
            self._store_state(self.cur, self.dirty, self.cc, self.cc_changed)
            self._add_icount(self.index + 1)
            self._ctx_store("exit", EXIT_CODE_WRITE)
            self.b.emit(f"ret i64 {literal(self.insn.next, 64)}")
            self.b.label(go)

    def finish(self, insns: list[Insn]) -> NativeBlock:
        self.end()
        self._store_state(self.cur, self.dirty, self.cc, self.cc_changed)
        target = self.target if self.target is not None else insns[-1].next
        self._add_icount(len(insns))
        if self.event_name is not None:
            self.sites.append(Site(len(insns) - 1, event=self.event_name))
            self._store_site()
        self._ctx_store("exit", EXIT_EVENT if self.event_name is not None else EXIT_NEXT)
        self.b.emit(f"ret i64 {self.b.at(target, 64)}")
        body = "\n".join(self.b.lines)
        ir = f"define i64 @{self.name}(ptr %s, ptr %x) {{\nentry:\n{body}\n}}\n"
        return NativeBlock(self.name, ir, insns, self.event_name, self.sites, self.used_helpers, self.declares)

    # -- state and context memory ------------------------------------------------------
    def _ptr(self, base: str, offset: int) -> str:
        return self.b.value(f"getelementptr i8, ptr {base}, i64 {offset}", 0).name

    def _load_field(self, name: str) -> Val:
        if _is_xmm(name):
            lo, hi = self._load_field(f"{name}_lo"), self._load_field(f"{name}_hi")
            return self.b.binop("or", self.b.binop("shl", hi, 64, 128), lo, 128)
        offset, width = state_field(name)
        raw = self.b.value(f"load i{width}, ptr {self._ptr('%s', offset)}", width)
        if width == 64:
            return Val(raw.name, 64)
        return self.b.value(f"zext i{width} {raw.name} to i64", 64)

    def _store_field(self, name: str, value: V) -> None:
        if _is_xmm(name):
            self._store_field(f"{name}_lo", self.b.mask(value, 64) if isinstance(value, Val) else value & MASK64)
            self._store_field(f"{name}_hi", self._trunc_to(self.b.shift("lshr", value, 64, 128), 64)
                              if isinstance(value, Val) else (value >> 64) & MASK64)
            return
        offset, width = state_field(name)
        self.b.emit(f"store i{width} {self.b.at(value, width)}, ptr {self._ptr('%s', offset)}")

    def _trunc_to(self, v: V, width: int) -> V:
        return Val(self.b.at(v, width), width) if isinstance(v, Val) else v & ((1 << width) - 1)

    def _ctx_load(self, name: str, width: int) -> Val:
        kind = "ptr" if width == 0 else f"i{width}"
        return self.b.value(f"load {kind}, ptr {self._ptr('%x', ctx_offset(name))}", width)

    def _store_site(self) -> None:
        """``x.site`` = the number of the exit site just appended: the module's base plus its place in the module."""
        base = self.b.value(f"load i64, ptr {self.sites_global}", 64)
        self._ctx_store("site", self.b.binop("add", base, self.site_base + len(self.sites) - 1, 64))

    def _ctx_store(self, name: str, value: V, index: int = 0) -> None:
        offset = ctx_offset(name) + 8 * index
        self.b.emit(f"store i64 {self.b.at(value, 64)}, ptr {self._ptr('%x', offset)}")

    def _as_field(self, name: str, value: V) -> Val:
        """A register's new value held at its field's width (so a later exit stores exactly that)."""
        width = 128 if _is_xmm(name) else 64
        if isinstance(value, int):
            return self.b.value(f"add i{width} 0, {literal(value, width)}", width)
        if value.width != width:
            return Val(self.b.at(value, width), width)
        return value

    def _store_state(self, cur: dict[str, Val], dirty: set[str], cc: tuple | None, cc_changed: bool) -> None:
        for name in sorted(dirty):
            self._store_field(name, cur[name])
        if cc is not None and cc_changed:
            for field_name, v in zip(("cc_op", "cc_size", "cc_a", "cc_b", "cc_r", "cc_c"), cc, strict=True):
                self._store_field(field_name, self._trunc_to(v, 64) if isinstance(v, Val) else v & MASK64)

    def _add_icount(self, n: int) -> None:
        if n:
            count = self._load_field("icount")
            self._store_field("icount", self.b.binop("add", count, n, 64))

    def _exit_at_site(self, cond: str | None, site: Site, store: bool = True,
                      commit: dict[str, V] | None = None) -> None:
        """Leave through ``site`` (when the ``i1`` ``cond`` holds, or always), state as the instruction began
        but for the fields in ``commit``."""
        self.sites.append(site)
        out = self.b.fresh("out")
        go = self.b.fresh("go")
        if cond is not None:
            self.b.emit(f"br i1 {cond}, label {out}, label {go}")
        else:
            self.b.emit(f"br label {out}")
        self.b.label(out)
        if store:
            cur, dirty, cc, changed = self.begin_state
            self._store_state(cur, dirty, cc, changed)
        for name, value in (commit or {}).items():
            self._store_field(name, value)
        self._ctx_store("exit", EXIT_FAULT)
        self._store_site()
        self.b.emit(f"ret i64 {literal(self.insn.address, 64)}")
        self.b.label(go)

    # -- Ops: state fields ---------------------------------------------------------------
    def reg(self, name: str) -> V:
        if name in self.pending:
            return self.pending[name]
        if name not in self.cur:
            self.cur[name] = self._load_field(name)
        return self.cur[name]

    def set_reg(self, name: str, value: V) -> None:
        self.pending[name] = value

    def const(self, value: int) -> V:
        return value

    # -- Ops: operands -----------------------------------------------------------------
    def read(self, opnd: Operand) -> V:
        if opnd.kind is Kind.IMM:
            return opnd.imm
        if opnd.kind is Kind.MEM:
            return self.load(self.address(opnd), opnd.size)
        full = self.reg(opnd.reg)
        if opnd.high:
            return self.and_(self.shr(full, 8), 0xFF)
        if opnd.size >= 64 or opnd.reg in ("es", "cs", "ss", "ds", "fs", "gs"):
            return full
        return self.trunc(full, opnd.size)

    def write(self, opnd: Operand, value: V) -> None:
        if opnd.kind is Kind.MEM:
            self.store(self.address(opnd), opnd.size, value)
            return
        name, size = opnd.reg, opnd.size
        if size == 32 or size >= 64:
            self.set_reg(name, value)
            return
        old = self.reg(name)
        if opnd.high:
            self.set_reg(name, self.or_(self.and_(old, ~0xFF00 & MASK64), self.shl(value, 8, 64)))
        else:
            self.set_reg(name, self.or_(self.and_(old, ~((1 << size) - 1) & MASK64), value))

    def ea(self, opnd: Operand) -> V:
        if opnd.base == "rip":
            return (self.insn.next + opnd.disp) & MASK64
        total: V = opnd.disp & MASK64
        if opnd.base:
            total = self.add(self.reg(opnd.base), total, 64)
        if opnd.index:
            total = self.add(total, self.mul(self.reg(opnd.index), opnd.scale, 64), 64)
        return self.trunc(total, opnd.asize)

    def address(self, opnd: Operand) -> V:
        ea = self.ea(opnd)
        if opnd.seg:
            return self.add(ea, self.reg(f"{opnd.seg}_base"), 64)
        return ea

    def _tlb(self, kind: str) -> tuple[str, str]:
        if kind not in self.tlb:
            self.tlb[kind] = (self._ctx_load(f"{kind}tag", 0).name, self._ctx_load(f"{kind}add", 0).name)
        return self.tlb[kind]

    def _lookup(self, kind: str, address: V, size: int) -> tuple[str, str, str]:
        """The inline TLB test: (hit i1, host pointer on a hit, label of the slow path)."""
        b = self.b
        tags, adds = self._tlb(kind)
        a = b.at(address, 64)
        vpn = b.binop("lshr", Val(a, 64), 12, 64)
        slot = b.binop("and", vpn, TLB_SIZE - 1, 64)
        tag = b.value(f"load i64, ptr {b.value(f'getelementptr i64, ptr {tags}, i64 {slot}', 0)}", 64)
        offset = b.binop("and", Val(a, 64), 0xFFF, 64)
        fits = b.icmp("ule", offset, 4096 - size // 8, 64)
        same = b.icmp("eq", tag, vpn, 64)
        hit = b.value(f"and i1 {same}, {fits}", 1).name
        fast, slow = b.fresh("fast"), b.fresh("slow")
        b.emit(f"br i1 {hit}, label {fast}, label {slow}")
        b.label(fast)
        add = b.value(f"load i64, ptr {b.value(f'getelementptr i64, ptr {adds}, i64 {slot}', 0)}", 64)
        host = b.value(f"add i64 {add}, {a}", 64)
        pointer = b.value(f"inttoptr i64 {host} to ptr", 0).name
        return a, pointer, slow

    def load(self, address: V, size: int) -> V:
        b = self.b
        width = wide(size)
        a, pointer, slow = self._lookup("r", address, size)
        fast_value = b.value(f"load i{size}, ptr {pointer}, align 1", size)
        fast = b.at(fast_value, width) if size != width else fast_value.name
        fast_from, done = b.current, b.fresh("loaded")
        b.emit(f"br label {done}")
        b.label(slow)
        status = self.b.value(f"call i64 @emu_slow_load(ptr %x, i64 {a}, i64 {size})", 64)
        self._exit_at_site(b.icmp("ne", status, 0, 64), Site(self.index))
        limbs = [self._ctx_load_index("val", i) for i in range(max(1, size // 64))]
        slow_value = self.b.mask(limbs[0], size) if size <= 64 else self._join(limbs, width)
        slow_at, slow_from = b.at(slow_value, width), b.current
        b.emit(f"br label {done}")
        b.label(done)
        return b.value(f"phi i{width} [ {fast}, {fast_from} ], [ {slow_at}, {slow_from} ]", width)

    def _ctx_load_index(self, name: str, index: int) -> Val:
        return self.b.value(f"load i64, ptr {self._ptr('%x', ctx_offset(name) + 8 * index)}", 64)

    def _join(self, limbs: list[Val], width: int) -> V:
        total: V = 0
        for i, limb in enumerate(limbs):
            total = self.b.binop("or", total, self.b.binop("shl", limb, 64 * i, width), width)
        return total

    def _callback(self, name: str, args: str) -> Val:
        fn = self._ctx_load(name, 0).name
        return self.b.value(f"call i64 {fn}(ptr %x, {args})", 64)

    def store(self, address: V, size: int, value: V) -> None:
        b = self.b
        a, pointer, slow = self._lookup("w", address, size)
        b.emit(f"store i{size} {b.at(value, size)}, ptr {pointer}, align 1")
        done = b.fresh("stored")
        b.emit(f"br label {done}")
        b.label(slow)
        for i in range(max(1, size // 64)):
            limb = self.b.shift("lshr", value, 64 * i, max(width_of(value), 64)) if i else value
            self._ctx_store("val", self._trunc_to(limb, 64) if isinstance(limb, Val) else limb & MASK64, i)
        status = self.b.value(f"call i64 @emu_slow_store(ptr %x, i64 {a}, i64 {size})", 64)
        self._exit_at_site(b.icmp("eq", status, STATUS_FAULT, 64), Site(self.index))
        b.emit(f"br label {done}")
        b.label(done)
        self.stored = True

    # -- Ops: arithmetic -----------------------------------------------------------------
    def _fold(self, a: V, b: V) -> bool:
        return isinstance(a, int) and isinstance(b, int)

    def add(self, a: V, b: V, size: int) -> V:
        if self._fold(a, b):
            return (a + b) & ((1 << size) - 1)
        return self.b.mask(self.b.binop("add", a, b, wide(size)), size)

    def sub(self, a: V, b: V, size: int) -> V:
        if self._fold(a, b):
            return (a - b) & ((1 << size) - 1)
        return self.b.mask(self.b.binop("sub", a, b, wide(size)), size)

    def mul(self, a: V, b: V, size: int) -> V:
        if self._fold(a, b):
            return (a * b) & ((1 << size) - 1)
        return self.b.mask(self.b.binop("mul", a, b, wide(size)), size)

    def udiv(self, a: V, b: V) -> V:
        if self._fold(a, b):
            return a // b
        return self._divide(a, b, "quotient")

    def urem(self, a: V, b: V) -> V:
        if self._fold(a, b):
            return a % b
        return self._divide(a, b, "remainder")

    def _divide(self, a: V, b: V, which: str) -> V:
        width = max(width_of(a), width_of(b))
        if width == 64:
            return self.b.binop("udiv" if which == "quotient" else "urem", a, b, 64)
        if width > 128:
            raise LoweringError("division wider than 128 bits")
        fn = "@emu_udiv128" if which == "quotient" else "@emu_urem128"
        return self.b.value(f"call i128 {fn}(i128 {self.b.at(a, 128)}, i128 {self.b.at(b, 128)})", 128)

    def sdiv(self, a: V, b: V, size: int) -> V:
        return self.helper("sdiv", a, b, size)

    def srem(self, a: V, b: V, size: int) -> V:
        return self.helper("srem", a, b, size)

    def _logic(self, op: str, a: V, b: V, fold: int) -> V:
        if self._fold(a, b):
            return fold
        return self.b.binop(op, a, b, max(width_of(a), width_of(b)))

    def and_(self, a: V, b: V) -> V:
        if isinstance(a, int) and isinstance(b, int):
            return a & b
        return self._logic("and", a, b, 0)

    def or_(self, a: V, b: V) -> V:
        if isinstance(a, int) and isinstance(b, int):
            return a | b
        return self._logic("or", a, b, 0)

    def xor(self, a: V, b: V) -> V:
        if isinstance(a, int) and isinstance(b, int):
            return a ^ b
        return self._logic("xor", a, b, 0)

    def not_(self, a: V, size: int) -> V:
        if isinstance(a, int):
            return a ^ ((1 << size) - 1)
        return self.b.binop("xor", a, (1 << size) - 1, max(wide(size), a.width))

    def neg(self, a: V, size: int) -> V:
        if isinstance(a, int):
            return -a & ((1 << size) - 1)
        return self.b.mask(self.b.binop("sub", 0, a, wide(size)), size)

    def shl(self, a: V, n: V, size: int) -> V:
        if self._fold(a, n):
            return (a << n) & ((1 << size) - 1)
        width = max(wide(size), width_of(a))
        return self.b.mask(self.b.shift("shl", a, n, width), size)

    def shr(self, a: V, n: V) -> V:
        if self._fold(a, n):
            return a >> n
        if isinstance(a, int) and a == 0:
            return 0
        return self.b.shift("lshr", a, n, width_of(a))

    def sar(self, a: V, n: V, size: int) -> V:
        if self._fold(a, n):
            top = 1 << (size - 1)
            return (((a ^ top) - top) >> n) & ((1 << size) - 1)
        b = self.b
        width = max(wide(size), width_of(a), width_of(n))
        spare = width - size
        signed = b.binop("ashr", b.binop("shl", a, spare, width), spare, width) if spare else Val(b.at(a, width), width)
        if isinstance(n, int):
            shifted = b.binop("ashr", signed, min(n, width - 1), width)
        else:
            big = b.icmp("uge", n, width - 1, max(width, n.width))
            shifted = b.binop("ashr", signed, b.select(big, width - 1, n), width)
        return b.mask(shifted, size)

    def sext(self, a: V, from_size: int, to_size: int) -> V:
        if isinstance(a, int):
            top = 1 << (from_size - 1)
            return ((a ^ top) - top) & ((1 << to_size) - 1)
        b = self.b
        width = wide(to_size)
        narrow = b.at(a, from_size)
        extended = b.value(f"sext i{from_size} {narrow} to i{width}", width) if from_size < width else \
            Val(b.at(a, width), width)
        return b.mask(extended, to_size)

    def trunc(self, a: V, size: int) -> V:
        if isinstance(a, int):
            return a & ((1 << size) - 1)
        if size >= a.width:
            return a
        return self.b.mask(a, size)

    def _compare(self, pred: str, a: V, b: V, fold: bool) -> V:
        if self._fold(a, b):
            return int(fold)
        return self.b.bool64(self.b.icmp(pred, a, b))

    def eq(self, a: V, b: V) -> V:
        return self._compare("eq", a, b, isinstance(a, int) and a == b)

    def ne(self, a: V, b: V) -> V:
        return self._compare("ne", a, b, isinstance(a, int) and a != b)

    def ult(self, a: V, b: V) -> V:
        return self._compare("ult", a, b, isinstance(a, int) and isinstance(b, int) and a < b)

    def slt(self, a: V, b: V, size: int) -> V:
        if self._fold(a, b):
            top = 1 << (size - 1)
            return int((a ^ top) < (b ^ top))
        x, y = self.b.at(a, size), self.b.at(b, size)
        return self.b.bool64(self.b.value(f"icmp slt i{size} {x}, {y}", 1).name)

    def select(self, cond: V, a: V, b: V) -> V:
        if isinstance(cond, int):
            return a if cond else b
        if isinstance(a, int) and isinstance(b, int) and a == b:
            return a
        return self.b.select(self.b.truth(cond), a, b)

    def helper(self, name: str, *args: V) -> V:
        native = getattr(self, f"_helper_{name}", None)
        if native is not None:
            return native(*args)
        vector = self.vector.lower(name, args)
        if vector is not None:
            return vector
        if name in FLOAT_NATIVE:
            return self._float_helper(name, *args)
        return self._python_helper(name, *args)

    def _float_helper(self, name: str, a: V, x: V, mxcsr: V) -> V:
        """An SSE float helper natively where that is exact (``cpu.backends.llvm_float``), else in Python."""
        b = self.b
        ok, fast = self.floats.arith(name, a, x, mxcsr)
        fast_from, slow, done = b.current, b.fresh("float_slow"), b.fresh("float_done")
        b.emit(f"br i1 {ok}, label {done}, label {slow}")
        b.label(slow)
        slow_value = b.at(self._python_helper(name, a, x, mxcsr), 256)
        slow_from = b.current
        b.emit(f"br label {done}")
        b.label(done)
        return b.value(f"phi i256 [ {fast.name}, {fast_from} ], [ {slow_value}, {slow_from} ]", 256)

    def _python_helper(self, name: str, *args: V) -> V:
        if name not in self.helper_ids:
            raise LoweringError(f"no helper {name!r}")
        if len(args) * 4 > 32:
            raise LoweringError(f"helper {name!r} takes too many arguments")
        self.used_helpers.add(name)
        for i, arg in enumerate(args):
            for limb in range(4):
                part = arg >> (64 * limb) & MASK64 if isinstance(arg, int) else \
                    self._trunc_to(self.b.shift("lshr", arg, 64 * limb, 256), 64) if limb else self._trunc_to(arg, 64)
                self._ctx_store("args", part, 4 * i + limb)
        status = self._callback("py_helper", f"i64 {self.helper_ids[name]}, i64 {len(args)}")
        self._exit_at_site(self.b.icmp("ne", status, 0, 64), Site(self.index))
        limbs = [self._ctx_load_index("val", i) for i in range(4)]
        return self._join(limbs, 256)

    def _helper_parity(self, value: V) -> V:
        low = self.b.binop("and", value, 0xFF, 64)
        return self.b.binop("xor", self.b.binop("and", self.b.intrinsic("ctpop", low, 64), 1, 64), 1, 64)

    def _helper_popcount(self, value: V) -> V:
        width = width_of(value)
        return self.b.intrinsic("ctpop", value, width)

    def _helper_bit_scan_forward(self, value: V) -> V:
        width = width_of(value)
        return self.select(value, self.b.intrinsic("cttz", value, width, ", i1 false"), 0)

    def _helper_bit_scan_reverse(self, value: V) -> V:
        width = width_of(value)
        lz = self.b.intrinsic("ctlz", value, width, ", i1 false")
        return self.select(value, self.b.binop("sub", width - 1, lz, width), 0)

    def _signed_divide(self, a: V, b: V, size: int, which: str) -> V:
        if not isinstance(size, int):
            raise LoweringError("signed division by a variable size")
        width = wide(size)
        x, y = self.b.at(a, size), self.b.at(b, size)
        if size <= 64:
            xs = self.b.value(f"sext i{size} {x} to i64", 64) if size < 64 else Val(x, 64)
            ys = self.b.value(f"sext i{size} {y} to i64", 64) if size < 64 else Val(y, 64)
            # the semantics rule out 0 and the one overflowing quotient before using the result
            zero_or_overflow = self.b.icmp("eq", ys, 0, 64)
            ys = self.b.select(zero_or_overflow, 1, ys)
            minus_one = self.b.icmp("eq", ys, MASK64, 64)
            ys = self.b.select(minus_one, 1, ys)
            raw = self.b.binop("sdiv" if which == "q" else "srem", xs, ys, 64)
            negated = self.b.binop("sub", 0, xs, 64) if which == "q" else 0
            return self.b.mask(self.b.select(minus_one, negated, raw), size)
        sign_x = self.b.icmp("slt", Val(x, size), 0, width)
        sign_y = self.b.icmp("slt", Val(y, size), 0, width)
        ax = self.b.select(sign_x, self.b.binop("sub", 0, Val(x, width), width), Val(x, width))
        ay = self.b.select(sign_y, self.b.binop("sub", 0, Val(y, width), width), Val(y, width))
        if which == "q":
            q = self._divide(ax, ay, "quotient")
            flip = self.b.value(f"xor i1 {sign_x}, {sign_y}", 1).name
            return self.b.mask(self.b.select(flip, self.b.binop("sub", 0, q, width), q), size)
        r = self._divide(ax, ay, "remainder")
        return self.b.mask(self.b.select(sign_x, self.b.binop("sub", 0, r, width), r), size)

    def _helper_sdiv(self, a: V, b: V, size: int) -> V:
        return self._signed_divide(a, b, size, "q")

    def _helper_srem(self, a: V, b: V, size: int) -> V:
        return self._signed_divide(a, b, size, "r")

    # -- Ops: flags -----------------------------------------------------------------------
    def _state_cc(self) -> tuple:
        return tuple(self.reg(f"cc_{f}") for f in ("op", "size", "a", "b", "r", "c"))

    def set_flags(self, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        self.cc = (int(op), size, a, b, r, c)
        self.cc_changed = True

    def set_flags_if(self, cond: V, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        if isinstance(cond, int):
            if cond:
                self.set_flags(op, size, a, b, r, c)
            return
        old = self.cc if self.cc is not None else self._state_cc()
        new = (int(op), size, a, b, r, c)
        self.cc = tuple(self.select(cond, n, o) if n != o else n for n, o in zip(new, old, strict=True))
        self.cc_changed = True

    def arith_flags(self) -> V:
        op, size, a, b, r, c = self.cc if self.cc is not None else self._state_cc()
        a, b, r, c = (self._trunc_to(v, 64) if isinstance(v, Val) else v for v in (a, b, r, c))
        if isinstance(op, int):
            if op == CcOp.FLAGS and isinstance(a, int):
                return a & ARITH
            return cc_flags(self.b, op, size, a, b, r, c)
        args = ", ".join(f"i64 {self.b.at(v, 64)}" for v in (op, size, a, b, r, c))
        return self.b.value(f"call i64 @emu_cc_flags({args})", 64)

    def flag(self, bit: int) -> V:
        bit = int(bit)
        if not bit & ARITH:
            rf = self.reg("rflags")
            return self.and_(self.shr(rf, bit.bit_length() - 1), 1)
        fast = lazyflags.fast_flag(self, bit, self.cc)
        if fast is not None:
            return fast
        f = self.arith_flags()
        return self.and_(self.shr(f, bit.bit_length() - 1), 1)

    def cond(self, cc: str) -> V:
        fast = lazyflags.fast_cond(self, cc, self.cc)
        if fast is not None:
            return fast
        return condition_of(self.b, cc, self.arith_flags())

    def rflags(self) -> V:
        rf, f = self.reg("rflags"), self.arith_flags()
        return self.or_(self.or_(self.and_(rf, ~ARITH & MASK64), f), 2)

    def set_rflags(self, value: V, writable: int) -> None:
        old = self.rflags()
        new = self.or_(self.and_(old, ~writable & MASK64), self.and_(value, writable))
        self.set_reg("rflags", self.or_(self.and_(new, ~ARITH & MASK64), 2))
        self.set_flags(CcOp.FLAGS, 64, self.and_(new, ARITH), 0, 0, 0)

    # -- Ops: control -----------------------------------------------------------------------
    def jump(self, target: V) -> None:
        self.target = target
        self.ended = True

    def fault(self, vector: int, error_code: int | None = None, detail: str = "") -> None:
        self._exit_at_site(None, Site(self.index, int(vector), error_code, detail))
        self.b.emit("unreachable")
        self.b.label(self.b.fresh("dead"))
        self.ended = True

    def fault_if(self, cond: V, vector: int, error_code: int | None = None,
                 commit: dict[str, V] | None = None) -> None:
        if isinstance(cond, int) and not cond:
            return
        truth = None if isinstance(cond, int) else self.b.truth(cond)
        self._exit_at_site(truth, Site(self.index, int(vector), error_code), commit=commit)
        if truth is None:
            self.b.emit("unreachable")
            self.b.label(self.b.fresh("dead"))
            self.ended = True

    def event(self, name: str) -> None:
        self.event_name = name
        self.ended = True

    def call(self, name: str, *args: V) -> V:
        if name not in self.call_ids:
            raise LoweringError(f"no call {name!r}")
        self.end()
        self._store_state(self.cur, self.dirty, self.cc, self.cc_changed)
        self.dirty.clear()
        self.cur.clear()
        self.cc = None
        self.cc_changed = False
        self.tlb.clear()
        self.begin_state = ({}, set(), None, False)
        if name == "invlpg":
            done: str | None = self._native_invlpg(args[0])
        elif name in NATIVE_REPS and all(isinstance(a, int) for a in args):
            done = self._native_rep(name, *args)
        else:
            done = None
        for i, arg in enumerate(args):
            self._ctx_store("args", self._trunc_to(arg, 64) if isinstance(arg, Val) else arg & MASK64, i)
        status = self._callback("py_call", f"i64 {self.call_ids[name]}, i64 {len(args)}")
        self._exit_at_site(self.b.icmp("ne", status, 0, 64), Site(self.index), store=False)
        if done is None:
            return self._ctx_load_index("val", 0)
        self.b.emit(f"br label {done}")
        self.b.label(done)
        return 0

    def _native_invlpg(self, address: V) -> str:
        """INVLPG of a page that no TLB holds, in no cached large page (``cpu.memory.TlbPresence``: all three
        counts zero), changes nothing: skip the call.  Returns the label after the call, which the caller
        emits for the other pages."""
        b = self.b
        call, done = b.fresh("invlpg_call"), b.fresh("invlpg_done")
        vpn = b.binop("lshr", address, 12, 64)
        counts = []
        for array, index in (("present", b.binop("and", vpn, PRESENCE_SIZE - 1, 64)),
                             ("large", b.binop("and", b.binop("lshr", vpn, 9, 64), PRESENCE_SIZE - 1, 64)),
                             ("large", b.binop("add", b.binop("and", b.binop("lshr", vpn, 18, 64),
                                                              PRESENCE_SIZE - 1, 64), PRESENCE_SIZE, 64))):
            base = self._ctx_load(array, 0)
            at = b.value(f"getelementptr i32, ptr {base.name}, i64 {b.at(index, 64)}", 0)
            counts.append(b.value(f"load i32, ptr {at.name}", 32))
        held = b.binop("or", b.binop("or", counts[0], counts[1], 32), counts[2], 32)
        b.emit(f"br i1 {b.icmp('eq', held, 0, 32)}, label {done}, label {call}")
        b.label(call)
        return done

    def _native_rep(self, name: str, size: int, seg: int = 0) -> str | None:
        """REP STOS and REP MOVS natively, a page at a time, while the TLB maps the pages and the copy is one
        ``memset``/``memmove`` can do: counting up (DF = 0), no segment override, a STOS pattern of one repeated
        byte (memset's; what memset and clear_page store), a MOVS whose destination does not run into source it
        has yet to read.  Anything else, and whatever remains, goes to the Python call (``cpu.semantics.string``),
        which continues from the state left in CpuState.  Returns the label where both paths meet, after the
        caller has emitted the call; None when this form is never native.
        """
        if seg:
            return None
        b, n = self.b, size // 8
        head, body, slow, done = b.fresh("rep"), b.fresh("rep_body"), b.fresh("rep_slow"), b.fresh("rep_done")
        b.emit(f"br label {head}")
        b.label(head)
        self.tlb.clear()                    # the table pointers are loaded in this loop, which dominates its uses
        count = self._load_field("rcx")
        b.emit(f"br i1 {b.icmp('eq', count, 0, 64)}, label {done}, label {body}")
        b.label(body)
        down = b.truth(b.binop("and", self._load_field("rflags"), int(Flag.DF), 64))
        def room(address: Val) -> V:
            """Whole elements from ``address`` to the end of its page."""
            return b.binop("lshr", b.binop("sub", 4096, b.binop("and", address, 0xFFF, 64), 64), n.bit_length() - 1, 64)

        rdi = self._load_field("rdi")
        fits = room(rdi)
        if name == "rep_movs":
            rsi = self._load_field("rsi")
            source_fits = room(rsi)
            fits = b.select(b.icmp("ult", source_fits, fits, 64), source_fits, fits)
        chunk = b.select(b.icmp("ult", count, fits, 64), count, fits)
        nbytes = b.binop("shl", chunk, n.bit_length() - 1, 64)
        refuse = b.value(f"or i1 {down}, {b.icmp('eq', chunk, 0, 64)}", 1).name
        if name == "rep_stos":
            value = b.mask(self._load_field("rax"), size)
            byte = b.binop("and", value, 0xFF, 64)
            uniform = b.icmp("eq", value, b.binop("mul", byte, int.from_bytes(b"\1" * n, "little"), 64), 64)
            refuse = b.value(f"or i1 {refuse}, {b.value(f'xor i1 {uniform}, 1', 1).name}", 1).name
        else:
            ahead = b.binop("sub", rdi, rsi, 64)
            overlap = b.value(f"and i1 {b.icmp('ne', ahead, 0, 64)}, {b.icmp('ult', ahead, nbytes, 64)}", 1).name
            refuse = b.value(f"or i1 {refuse}, {overlap}", 1).name
        go = b.fresh("rep_go")
        b.emit(f"br i1 {refuse}, label {slow}, label {go}")
        b.label(go)
        _, target, missed = self._lookup("w", rdi, size)
        if name == "rep_stos":
            self.declares.add("declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)")
            b.emit(f"call void @llvm.memset.p0.i64(ptr {target}, i8 {b.at(byte, 8)}, i64 {nbytes.name}, i1 false)")
        else:
            _, source, missed_source = self._lookup("r", rsi, size)
            self.declares.add("declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)")
            b.emit(f"call void @llvm.memmove.p0.p0.i64(ptr {target}, ptr {source}, i64 {nbytes.name}, i1 false)")
            self._store_field("rsi", b.binop("add", rsi, nbytes, 64))
        self._store_field("rdi", b.binop("add", rdi, nbytes, 64))
        self._store_field("rcx", b.binop("sub", count, chunk, 64))
        b.emit(f"br label {head}")
        self.tlb.clear()                    # loaded after the loop's test: they do not dominate what follows
        for label in (missed, *([missed_source] if name == "rep_movs" else [])):
            b.label(label)
            b.emit(f"br label {slow}")
        b.label(slow)
        return done


def block_ir(insns: list[Insn]) -> str:
    """The LLVM IR the JIT makes of ``insns`` as one block (``emu explain --ir``, the debugger's ``explain --ir``).

    The same lowering as ``cpu.jit`` uses, without compiling: a block that cannot be lowered says why.
    """
    from cpu.cpuid import level
    from cpu.interp import unimplemented
    from cpu.semantics import CALLS, HELPERS

    cpu = level()
    ops = LlvmOps(f"b_{insns[0].address:x}", {n: i for i, n in enumerate(sorted(HELPERS))},
                  {n: i for i, n in enumerate(sorted(CALLS))}, 0)
    try:
        for insn in insns:
            ops.begin(insn)
            semantic, why = cpu.semantic(insn.mnemonic)
            if semantic is None:
                ops.fault(6, detail=unimplemented(insn, why))
            else:
                semantic(ops, insn, *insn.operands)
            ops.end()
            if ops.ended:
                insns = insns[: insns.index(insn) + 1]
                break
        native = ops.finish(insns)
    except Exception as err:  # noqa: BLE001 - shown to the user: this block stays in the Python tier
        return f"; the LLVM backend cannot lower this block ({type(err).__name__}: {err}); it runs in Python"
    def why(site: Site) -> str:
        if site.event:
            return f"event {site.event}"
        return f"#{site.vector}" if site.vector is not None else "a fault in a slow-path access or a call"

    sites = "\n".join(f"; exit site {i}: instruction {s.insn}, {why(s)}" for i, s in enumerate(native.sites))
    return "\n".join(part for part in (sites, *sorted(native.declares), native.ir.rstrip()) if part)
