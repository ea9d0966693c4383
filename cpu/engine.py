"""The native code's home: MCJIT engines, the runtime module, and the arrays native code reads.

:class:`Engine` holds every native module of the process in MCJIT engines of
:data:`SEGMENT` modules each, with the runtime module (``@emu_dispatch``, the
native loop that calls block after block; ``@emu_cc_flags``; 128-bit division)
in each, and loads object code from the persistent code cache through LLVM's
object cache.  :class:`NativeTlb` and :class:`DispatchTable` are the
direct-mapped arrays generated code reads: a TLB's translations and the next
block's function by guest address.  ``cpu.jit`` decides what is compiled and
when; docs/jit.md says why the engine is built this way and what it costs.
"""

from __future__ import annotations

import bisect
import ctypes
import hashlib
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cpu.backends.llvm_abi import (
    IF_BIT,
    MASK64,
    REQUEST_WINDOW,
    STATUS_OK,
    TABLE_BITS,
    TABLE_SIZE,
    TLB_SIZE,
    JitContext,
    NativeBlock,
    Site,
    state_field,
    table_set,
)
from cpu.backends.llvm_flags import cc_flags
from cpu.backends.llvm_ir import Builder, Val
from cpu.flags import CcOp
from cpu.memory import PAGE_SHIFT, PAGE_SIZE, RAM_BUFFERS, TlbEntry

if TYPE_CHECKING:
    from cpu.codecache import CodeCache

INVALID = MASK64


class User(Protocol):
    """What uses an engine's code (``cpu.jit.Jit``): it must forget that code before the engine goes."""

    def drop_native(self) -> None: ...

_DISPATCH = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class NativeTlb:
    """A direct-mapped native copy of one TLB dictionary: ``tag[vpn % N] == vpn`` and host = addend + address."""

    def __init__(self) -> None:
        self.tag = (ctypes.c_uint64 * TLB_SIZE)()
        ctypes.memset(self.tag, 0xFF, ctypes.sizeof(self.tag))
        self.add = (ctypes.c_uint64 * TLB_SIZE)()
        self.pins: list[object] = [None] * TLB_SIZE

    def set(self, vpn: int, entry: TlbEntry) -> None:
        buf, offset = entry
        if type(buf) not in RAM_BUFFERS:
            return
        pin = (ctypes.c_char * len(buf)).from_buffer(buf)
        slot = vpn & (TLB_SIZE - 1)
        self.pins[slot] = pin
        self.add[slot] = (ctypes.addressof(pin) + offset - (vpn << PAGE_SHIFT)) & MASK64
        self.tag[slot] = vpn

    def drop(self, vpn: int) -> None:
        slot = vpn & (TLB_SIZE - 1)
        if self.tag[slot] == vpn:
            self.tag[slot] = INVALID
            self.pins[slot] = None

    def clear(self) -> None:
        ctypes.memset(self.tag, 0xFF, ctypes.sizeof(self.tag))
        self.pins = [None] * TLB_SIZE


class DispatchTable:
    """Guest RIP -> native block function, for one privilege level; knows which pages its entries sit in.
    Two-way: a RIP may be in either slot of its set (:func:`cpu.backends.llvm_abi.table_set`).

    It mirrors the fetch TLB of its privilege: a page leaving the TLB takes its blocks out of the table, so
    native chaining only follows a mapping the Python tier checked.  A block put in with the TLB entry it
    was checked under comes back by itself when that very entry (``Mmu.fill`` makes one per RAM page) is
    filled again, instead of after a return to the run loop (measured: 38 k of a warm boot's 108 k returns
    to Python were for a native block the table had lost to a TLB flush)."""

    def __init__(self) -> None:
        self.slots = (ctypes.c_uint64 * (2 * TABLE_SIZE))()
        """(RIP, function) pairs side by side, so that a lookup reads one cache line."""
        self._clear_rips()
        self.keys: dict[int, int] = {}
        """slot -> RIP held there (the Python view of ``rip``)."""
        self.pages: dict[int, set[int]] = {}
        """virtual page -> the slots whose RIP lies in it (or whose block spills into it)."""
        self.known: dict[int, dict[int, tuple[int, TlbEntry]]] = {}
        """virtual page -> RIP -> (function, the fetch TLB entry its block is right under)."""

    def insert(self, rip: int, fn: int, entry: TlbEntry | None = None, spills: bool = False) -> None:
        """Put ``fn`` in for ``rip``; ``entry``: the TLB entry of its page the block was checked under (it comes
        back with it); ``spills``: the block ends in the next page (it goes when either page goes)."""
        vpn = rip >> PAGE_SHIFT
        self._put(rip, fn, (vpn, vpn + 1) if spills else (vpn,))
        if entry is not None and not spills:
            self.known.setdefault(vpn, {})[rip] = (fn, entry)

    def _put(self, rip: int, fn: int, vpns: tuple[int, ...]) -> None:
        """Into the slot that holds ``rip``, else a free one of its set, else the first: the block there
        moves to the second, whose block leaves (two blocks that alternate both stay; with one slot a RIP,
        such pairs were 7 k of a warm boot's 69 k returns to Python)."""
        first = table_set(rip)
        held = self.keys.get(first), self.keys.get(first + 1)
        if rip in held:
            slot = first + held.index(rip)
            self.remove_slot(slot)
        elif held[0] is None or held[1] is None:
            slot = first if held[0] is None else first + 1
        else:
            self.remove_slot(first + 1)
            self._move(first, first + 1)
            slot = first
        self.keys[slot] = rip
        for vpn in vpns:
            self.pages.setdefault(vpn, set()).add(slot)
        self.slots[2 * slot + 1] = fn
        self.slots[2 * slot] = rip

    def _move(self, source: int, target: int) -> None:
        """The entry of slot ``source`` into the free slot ``target``."""
        rip = self.keys.pop(source)
        self.keys[target] = rip
        self.slots[2 * target + 1] = self.slots[2 * source + 1]
        self.slots[2 * target] = rip
        self.slots[2 * source] = INVALID
        for vpn in (rip >> PAGE_SHIFT, (rip >> PAGE_SHIFT) + 1):
            slots = self.pages.get(vpn)
            if slots is not None and source in slots:
                slots.discard(source)
                slots.add(target)

    def _slot_of(self, rip: int) -> int | None:
        first = table_set(rip)
        if self.keys.get(first) == rip:
            return first
        if self.keys.get(first + 1) == rip:
            return first + 1
        return None

    def holds(self, rip: int, fn: int) -> bool:
        slot = self._slot_of(rip)
        return slot is not None and self.slots[2 * slot + 1] == fn

    def remove(self, rip: int) -> None:
        """The block at ``rip`` is gone: out of the table, and not to come back."""
        self.known.get(rip >> PAGE_SHIFT, {}).pop(rip, None)
        slot = self._slot_of(rip)
        if slot is not None:
            self.remove_slot(slot)

    def remove_slot(self, slot: int) -> None:
        rip = self.keys.pop(slot, None)
        if rip is not None:
            self.slots[2 * slot] = INVALID
            for vpn in (rip >> PAGE_SHIFT, (rip >> PAGE_SHIFT) + 1):
                self.pages.get(vpn, set()).discard(slot)

    # the fetch TLB's mirror
    def set(self, vpn: int, entry: TlbEntry) -> None:
        for rip, (fn, known) in self.known.get(vpn, {}).items():
            if known is entry and self._slot_of(rip) is None:
                self._put(rip, fn, (vpn,))

    def drop(self, vpn: int) -> None:
        for slot in self.pages.pop(vpn, ()):
            if self.keys.pop(slot, None) is not None:
                self.slots[2 * slot] = INVALID

    def clear(self) -> None:
        self.keys.clear()
        self.pages.clear()
        self._clear_rips()

    def _clear_rips(self) -> None:
        ctypes.memset(self.slots, 0xFF, ctypes.sizeof(self.slots))      # every RIP INVALID (functions too)

    def forget(self) -> None:
        """No block's code may be reached any more (all were dropped)."""
        self.clear()
        self.known.clear()


# -- the runtime module: functions every block module may call -------------------------------

def _runtime_ir() -> str:
    """``@emu_udiv128``/``@emu_urem128`` (a restoring division loop), ``@emu_cc_flags``, the slow paths of loads
    and stores (``_straddle_ir``) and ``@emu_dispatch``."""
    parts = [_DECLARES]
    for name, which in (("emu_udiv128", "%q"), ("emu_urem128", "%r")):
        parts.append(f"""
define i128 @{name}(i128 %a, i128 %b) {{
entry:
  %small = icmp ult i128 %a, 18446744073709551616
  %smallb = icmp ult i128 %b, 18446744073709551616
  %both = and i1 %small, %smallb
  br i1 %both, label %fast, label %loop
fast:
  %a64 = trunc i128 %a to i64
  %b64 = trunc i128 %b to i64
  %fq = udiv i64 %a64, %b64
  %fr = urem i64 %a64, %b64
  %fqw = zext i64 %fq to i128
  %frw = zext i64 %fr to i128
  ret i128 {"%fqw" if which == "%q" else "%frw"}
loop:
  %i = phi i32 [ 127, %entry ], [ %i2, %loop ]
  %q0 = phi i128 [ 0, %entry ], [ %q2, %loop ]
  %r0 = phi i128 [ 0, %entry ], [ %r2, %loop ]
  %iw = zext i32 %i to i128
  %bit = lshr i128 %a, %iw
  %bit1 = and i128 %bit, 1
  %rs = shl i128 %r0, 1
  %r1 = or i128 %rs, %bit1
  %ge = icmp uge i128 %r1, %b
  %rsub = sub i128 %r1, %b
  %r2 = select i1 %ge, i128 %rsub, i128 %r1
  %qbit = shl i128 1, %iw
  %qset = or i128 %q0, %qbit
  %q2 = select i1 %ge, i128 %qset, i128 %q0
  %i2 = sub i32 %i, 1
  %more = icmp sge i32 %i2, 0
  br i1 %more, label %loop, label %done
done:
  %q = phi i128 [ %q2, %loop ]
  %r = phi i128 [ %r2, %loop ]
  ret i128 {which}
}}""")
    b = Builder()
    op, size, a, x, r, c = (Val(f"%{n}", 64) for n in ("op", "size", "a", "b", "r", "c"))
    cases = []
    for member in CcOp:
        label = f"%case{int(member)}"
        cases.append(f"i64 {int(member)}, label {label}")
        b.label(label)
        result = cc_flags(b, int(member), size, a, x, r, c)
        b.emit(f"ret i64 {b.at(result, 64)}")
    switch = f"  switch i64 %op, label %case0 [ {' '.join(cases)} ]"
    parts.append("define i64 @emu_cc_flags(i64 %op, i64 %size, i64 %a, i64 %b, i64 %r, i64 %c) {\nentry:\n"
                 + switch + "\n" + "\n".join(b.lines) + "\n}")
    parts.extend(_straddle_ir(kind) for kind in ("load", "store"))
    ctx = {name: getattr(JitContext, name).offset for name in ("exit", "limit", "request", "table_rip", "table_fn",
                                                                  "blocks")}
    rip_at, icount_at, rflags_at = state_field("rip")[0], state_field("icount")[0], state_field("rflags")[0]
    parts.append(f"""
define i64 @emu_dispatch(ptr %s, ptr %x, ptr %first) {{
entry:
  %exitp = getelementptr i8, ptr %x, i64 {ctx['exit']}
  %limitp = getelementptr i8, ptr %x, i64 {ctx['limit']}
  %requestp = getelementptr i8, ptr %x, i64 {ctx['request']}
  %blocksp = getelementptr i8, ptr %x, i64 {ctx['blocks']}
  %ripsp = getelementptr i8, ptr %x, i64 {ctx['table_rip']}
  %fnsp = getelementptr i8, ptr %x, i64 {ctx['table_fn']}
  %rips = load ptr, ptr %ripsp
  %fns = load ptr, ptr %fnsp
  %ripp = getelementptr i8, ptr %s, i64 {rip_at}
  %icountp = getelementptr i8, ptr %s, i64 {icount_at}
  %rflagsp = getelementptr i8, ptr %s, i64 {rflags_at}
  br label %run
run:
  %fn = phi ptr [ %first, %entry ], [ %next, %found ]
  %rip = call i64 %fn(ptr %s, ptr %x)
  %n = load i64, ptr %blocksp
  %n1 = add i64 %n, 1
  store i64 %n1, ptr %blocksp
  %exit = load i64, ptr %exitp
  %normal = icmp eq i64 %exit, 0
  br i1 %normal, label %budget, label %leave
budget:
  %icount = load i64, ptr %icountp
  %limit = load i64, ptr %limitp
  %over = icmp uge i64 %icount, %limit
  br i1 %over, label %leave, label %poll
poll:
  %request = load volatile i64, ptr %requestp
  %asked = icmp ne i64 %request, 0
  br i1 %asked, label %requested, label %lookup
requested:
  %window = icmp eq i64 %request, {REQUEST_WINDOW}
  br i1 %window, label %interruptible, label %leave
interruptible:
  %rflags = load i64, ptr %rflagsp
  %if = and i64 %rflags, {IF_BIT}
  %enabled = icmp ne i64 %if, 0
  br i1 %enabled, label %leave, label %lookup
lookup:
  %h = lshr i64 %rip, {TABLE_BITS}
  %hx = xor i64 %rip, %h
  %slot = and i64 %hx, {TABLE_SIZE - 2}
  %pair = shl i64 %slot, 1
  %keyp = getelementptr i64, ptr %rips, i64 %pair
  %key = load i64, ptr %keyp
  %hit = icmp eq i64 %key, %rip
  br i1 %hit, label %found, label %second
second:
  %pair2 = add i64 %pair, 2
  %keyp2 = getelementptr i64, ptr %rips, i64 %pair2
  %key2 = load i64, ptr %keyp2
  %hit2 = icmp eq i64 %key2, %rip
  br i1 %hit2, label %found, label %leave
found:
  %at = phi i64 [ %pair, %lookup ], [ %pair2, %second ]
  %nextp = getelementptr i64, ptr %fns, i64 %at
  %nexti = load i64, ptr %nextp
  %next = inttoptr i64 %nexti to ptr
  br label %run
leave:
  store i64 %rip, ptr %ripp
  ret i64 %exit
}}""")
    return "\n".join(parts)


class SiteTable:
    """Exit sites by number, each block's numbered on from the last: one entry a block, not one a site (a warm
    boot loads ~6,700 blocks with their sites from the code cache), each site made a :class:`Site` when it is
    looked up, after an exit (a module from the cache keeps its sites as the tuples it stored)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.blocks: list[NativeBlock] = []
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, native: NativeBlock) -> None:
        """Number ``native``'s sites on from the last."""
        self.starts.append(self.count)
        self.blocks.append(native)
        self.count += len(native.sites)

    def __getitem__(self, number: int) -> tuple[NativeBlock, Site]:
        if not 0 <= number < self.count:
            raise IndexError(f"no exit site {number}")
        at = bisect.bisect_right(self.starts, number) - 1
        native = self.blocks[at]
        site = native.sites[number - self.starts[at]]
        return native, site if isinstance(site, Site) else Site._make(site)


def _straddle_ir(kind: str) -> str:
    """``@emu_slow_load``/``@emu_slow_store (ptr %x, i64 %a, i64 %size) -> status``: a block's slow path.  An
    access of up to 8 bytes that runs from one page into the next, both pages in the native TLB of its kind, is
    done here a byte at a time (each byte at its own page's host address); anything else calls the
    interpreter's slow path.  A warm boot of the default guest makes ~7,000 such accesses (64-bit loads and
    stores across a page boundary), each a call into Python before.  The value comes and goes in
    ``JitContext.val[0]``, as with the callback."""
    tags, adds = ("rtag", "radd") if kind == "load" else ("wtag", "wadd")
    at = {name: getattr(JitContext, name).offset for name in (tags, adds, f"slow_{kind}", "val")}
    if kind == "load":
        phi = "\n  %v = phi i64 [ 0, %copy ], [ %v1, %loop ]"
        loop = """  %byte = load i8, ptr %p
  %wide = zext i8 %byte to i64
  %placed = shl i64 %wide, %shift
  %v1 = or i64 %v, %placed"""
        done = "  store i64 %v1, ptr %valp"
    else:
        phi = ""
        loop = """  %moved = lshr i64 %value, %shift
  %byte = trunc i64 %moved to i8
  store i8 %byte, ptr %p"""
        done = ""
    return f"""
define i64 @emu_slow_{kind}(ptr %x, i64 %a, i64 %size) {{
entry:
  %bytes = lshr i64 %size, 3
  %small = icmp ule i64 %size, 64
  %off = and i64 %a, {PAGE_SIZE - 1}
  %end = add i64 %off, %bytes
  %straddles = icmp ugt i64 %end, {PAGE_SIZE}
  %try = and i1 %small, %straddles
  br i1 %try, label %pages, label %python
pages:
  %tagsp = getelementptr i8, ptr %x, i64 {at[tags]}
  %tags = load ptr, ptr %tagsp
  %vpn1 = lshr i64 %a, {PAGE_SHIFT}
  %slot1 = and i64 %vpn1, {TLB_SIZE - 1}
  %tag1p = getelementptr i64, ptr %tags, i64 %slot1
  %tag1 = load i64, ptr %tag1p
  %past = add i64 %a, %bytes
  %last = sub i64 %past, 1
  %vpn2 = lshr i64 %last, {PAGE_SHIFT}
  %slot2 = and i64 %vpn2, {TLB_SIZE - 1}
  %tag2p = getelementptr i64, ptr %tags, i64 %slot2
  %tag2 = load i64, ptr %tag2p
  %hit1 = icmp eq i64 %tag1, %vpn1
  %hit2 = icmp eq i64 %tag2, %vpn2
  %both = and i1 %hit1, %hit2
  br i1 %both, label %copy, label %python
copy:
  %addsp = getelementptr i8, ptr %x, i64 {at[adds]}
  %adds = load ptr, ptr %addsp
  %add1p = getelementptr i64, ptr %adds, i64 %slot1
  %add1 = load i64, ptr %add1p
  %add2p = getelementptr i64, ptr %adds, i64 %slot2
  %add2 = load i64, ptr %add2p
  %first = sub i64 {PAGE_SIZE}, %off
  %valp = getelementptr i8, ptr %x, i64 {at['val']}
  %value = load i64, ptr %valp
  br label %loop
loop:
  %i = phi i64 [ 0, %copy ], [ %i1, %loop ]{phi}
  %inpage1 = icmp ult i64 %i, %first
  %addend = select i1 %inpage1, i64 %add1, i64 %add2
  %guest = add i64 %a, %i
  %host = add i64 %addend, %guest
  %p = inttoptr i64 %host to ptr
  %shift = shl i64 %i, 3
{loop}
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %bytes
  br i1 %more, label %loop, label %done
done:
{done}
  ret i64 {STATUS_OK}
python:
  %fnp = getelementptr i8, ptr %x, i64 {at[f'slow_{kind}']}
  %fn = load ptr, ptr %fnp
  %status = call i64 %fn(ptr %x, i64 %a, i64 %size)
  ret i64 %status
}}"""


_DECLARES = "\n".join(
    f"declare i{w} @llvm.{name}.i{w}(i{w}{extra})"
    for name, extra in (("ctpop", ""), ("cttz", ", i1"), ("ctlz", ", i1"))
    for w in (64, 128, 256))
BLOCK_DECLARES = _DECLARES + """
declare i128 @emu_udiv128(i128, i128)
declare i128 @emu_urem128(i128, i128)
declare i64 @emu_cc_flags(i64, i64, i64, i64, i64, i64)
declare i64 @emu_slow_load(ptr, i64, i64)
declare i64 @emu_slow_store(ptr, i64, i64)
"""


SEGMENT = 256
"""Modules in one MCJIT engine (see :class:`Engine`)."""
MAX_MODULES = 14000
"""Modules one engine holds before all native code is dropped and compiled afresh.  Each MCJIT module maps its
own sections (measured: 2 mappings a module), and Linux allows a process 65,530 (vm.max_map_count): the
~35,000 one-block modules of an eager boot crashed LLVM ("Unable to allocate section memory") before this."""


@dataclass
class Loaded:
    """A module installed in an engine: its blocks' descriptions and addresses by guest address."""

    natives: dict[int, tuple[NativeBlock, int]]


class Engine:
    """The process's native code: MCJIT engines of at most :data:`SEGMENT` modules each, every one with its own
    copy of the runtime module.  (MCJIT's ``finalizeObject`` costs time linear in the modules an engine holds:
    measured 0.67 ms a module with 1,000 in the engine, 2.8 ms with 4,000, 10 ms a module over an eager boot's
    60,000; with segments of 256 it stays near the first figure.)

    When it is full (:data:`MAX_MODULES`), :meth:`renew` replaces it and every live user (``cpu.jit.Jit``) drops its
    native code, as QEMU flushes its translation buffer; this happens only between blocks, when no native
    code is running.

    The persistent code cache (``cpu.codecache``) keeps the object code of every module, keyed by a hash
    of its IR text, the LLVM version, the target triple, the host CPU and its features, and the
    optimisation level: LLVM's object cache hands the object back instead of generating code again.  The
    objects are relocatable: the state, the context, the TLB arrays and the callbacks are reached through
    the two pointer arguments, the runtime functions by symbol, so nothing of this process is baked in.
    """

    _shared: Engine | None = None
    users: weakref.WeakSet[User] = weakref.WeakSet()

    def __init__(self, opt: int = 0, cache: CodeCache | None = None) -> None:
        """``opt``: LLVM's code generation level, and above 0 its pass pipeline at that level (docs/jit.md);
        ``cache``: where the runtime module's object code is kept between runs (generating it took 13 ms of
        every run's start, a fifteenth of sha256's whole run)."""
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.llvm = llvm
        self.opt = opt
        target = llvm.Target.from_default_triple()
        self.machine = target.create_target_machine(opt=opt, codemodel="jitdefault")
        self.engines: list[object] = []
        tuning = llvm.create_pipeline_tuning_options(speed_level=max(opt, 1))
        self.passes = llvm.create_pass_builder(self.machine, tuning)
        self.modules: list[object] = []
        self.sites = SiteTable()
        """Every exit site of the native code in this engine, by number: a module's are numbered from the base
        written into its ``@s<key>`` global when it is installed."""
        self.loaded: dict[bytes, Loaded] = {}
        """The modules in this engine by key: a batch of the same blocks again (code rewritten with the same
        bytes, a program run again) uses the code already there."""
        self.fingerprint = "\n".join((".".join(map(str, llvm.llvm_version_info)), llvm.get_default_triple(),
                                      llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(), str(opt)))
        self.cache: CodeCache | None = None
        """Where :meth:`add` looks for and keeps object code (set by the Jit that compiles)."""
        self.meta = b""
        self.obj: bytes | None = None
        """The object code :meth:`add` was given for the module it is adding (read by the caller already)."""
        self.hits = 0
        self.runtime = _runtime_ir()
        self.runtime_cache = cache
        self.in_segment = 0
        self._segment()
        self.dispatch = _DISPATCH(self.engine.get_function_address("emu_dispatch"))

    def _segment(self) -> None:
        """Start a new MCJIT engine (its runtime module included); the old ones keep their code."""
        machine = self.llvm.Target.from_default_triple().create_target_machine(opt=self.opt, codemodel="jitdefault")
        self.engine = self.llvm.create_mcjit_compiler(self.llvm.parse_assembly(""), machine)  # owns ``machine``
        self.engine.set_object_cache(self._compiled, self._cached)
        self.engines.append(self.engine)
        self.in_segment = 0
        self.add(self.runtime, self.runtime_cache)

    @classmethod
    def shared(cls, cache: CodeCache | None = None) -> Engine:
        """The process's engine, made on first use (``cache``: see ``__init__``)."""
        if cls._shared is None:
            cls._shared = cls(int(os.environ.get("EMU_JIT_OPT", "0")), cache)
        return cls._shared

    @property
    def full(self) -> bool:
        return len(self.modules) >= MAX_MODULES

    @classmethod
    def renew(cls) -> Engine:
        """A fresh engine; every Jit forgets its native code first (the old engine's memory is freed)."""
        old = cls._shared
        for jit in list(cls.users):
            jit.drop_native()
        cls._shared = None
        fresh = cls.shared(None if old is None else old.runtime_cache)
        if old is not None:
            old.modules.clear()
            for engine in old.engines:
                engine.close()
        return fresh

    def _cached(self, module: object) -> bytes | None:
        if not _is_key(module.name):     # the empty module an MCJIT engine starts with
            return None
        if self.obj is not None:
            self.hits += 1
            return self.obj
        if self.cache is None:
            return None
        found = self.cache.native(bytes.fromhex(module.name))
        if found is None:
            return None
        self.hits += 1
        return found[0]

    def _compiled(self, module: object, obj: bytes) -> None:
        if self.cache is not None and _is_key(module.name):
            self.cache.store_native(bytes.fromhex(module.name), bytes(obj), self.meta)

    def add(self, ir: str, cache: CodeCache | None = None, key: bytes | None = None, meta: bytes = b"",
            obj: bytes | None = None) -> None:
        """Compile ``ir`` (or load the object code ``obj``, else the one ``cache`` keeps under ``key``, by
        default a hash of ``ir``; with an empty ``ir`` one of them must hold it) into the current segment.
        ``meta`` is kept with the object code."""
        if self.in_segment >= SEGMENT:
            self._segment()
        self.in_segment += 1
        self.cache = cache
        self.meta = meta
        self.obj = obj
        module = self.llvm.parse_assembly(ir)
        module.name = (key or hashlib.sha256(f"{self.fingerprint}\n{ir}".encode()).digest()).hex()
        module.verify()
        if self.opt:
            self.passes.getModulePassManager().run(module, self.passes)
        self.engine.add_module(module)
        self.engine.finalize_object()
        self.modules.append(module)


def _is_key(name: str) -> bool:
    """Is a module's name a key (``Engine.add`` names each module by one, 64 hex digits)?"""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


__all__ = ["BLOCK_DECLARES", "MAX_MODULES", "SEGMENT", "DispatchTable", "Engine", "Loaded", "NativeTlb",
           "SiteTable"]
