"""The interpreter: the reference backend, and the one that always works.

It runs guest code block by block.  A block (straight-line code up to a
control transfer, a system event, a page boundary or a size limit) is decoded
once, turned into a Python function by running each instruction's semantics
through :class:`cpu.backends.python.PyOps`, and cached by its start address.  The run
loop is then: look up the block at RIP, call it, count its instructions.

``run`` returns an :class:`Exit` whenever the host has work to do: a system
call or other event, a guest fault (with the CPU rolled back to the faulting
instruction, as the SDM Vol. 3A 6.5 requires of faults), or the instruction
limit.  Single stepping uses one-instruction blocks, cached separately.

System mode (a :class:`cpu.mmu.Mmu`, ``Memory.system``) runs a second loop
that differs in three ways, so that user mode's loop stays as lean as it was:

* a block is keyed by its virtual address but belongs to the physical pages
  it was translated from; it runs only while the fetch TLB maps its first
  page to the very entry it was checked against (one identity test), and is
  otherwise checked again by physical address and, when another address
  space maps other code there, swapped for (or translated as) a variant;
* ``state.icount`` is current at every block boundary (the clock reads it);
* ``request_exit()`` (the interrupt controller raising INTR, a debugger's
  Ctrl-C) and ``request_interrupt_window()`` end the run at the next block
  boundary, through the set the breakpoint test already reads.

Code is tracked by ``Memory.page_id``: virtual pages in user mode, physical
pages under the MMU.  Instructions that change what a translation assumes
(privilege, paging, descriptor tables, interrupt state) end their block.

With a :class:`cpu.codecache.CodeCache` (``emu run`` and ``emu boot`` pass
one; an Interpreter built directly has none), ``translate`` first asks it for
a block translated by an earlier run from the same bytes at the same address;
everything after that (pages, validation, invalidation) is the same for both.

The design note docs/interpreter.md says why blocks are compiled to Python
rather than interpreted micro-op by micro-op.
"""

from __future__ import annotations

import builtins
import random
import time
from dataclasses import dataclass
from enum import Enum
from types import CodeType, FunctionType, TracebackType
from typing import TYPE_CHECKING, Protocol

from cpu import flags
from cpu.backends.python import PyOps, Translation, field_store
from cpu.cpuid import CpuLevel, level
from cpu.decoder import Decoder, Insn, safe_fetch
from cpu.exceptions import TRAPS, CodeWritten, GuestFault, Vector, accepts_interrupt
from cpu.memory import FETCH, PAGE_SHIFT, PAGE_SIZE, RAM_BUFFERS, Memory, TlbEntry
from cpu.ops import Ops
from cpu.physical import Bus
from cpu.semantics import CALLS, HELPERS, load_all
from cpu.state import CpuState
from cpu.storedblock import insn_bounds

if TYPE_CHECKING:
    from cpu.codecache import CodeCache

MAX_BLOCK = 64

REQUEST, WINDOW = -1, -2
"""Members of the run loop's stop set besides breakpoint addresses (never a RIP)."""
SHADOW_EVENTS = frozenset({"sti", "mov-ss"})
"""Events after which maskable interrupts wait one more instruction (SDM Vol. 3A, 6.8.3)."""
_STRADDLES = ()
"""``Block.entry`` of a block whose last instruction spills into the next page: never the TLB's entry."""


class NativeTier(Protocol):
    """What the run loop asks of a native tier (``cpu.jit.Jit``, attached as ``Interpreter.jit``)."""

    def run(self, limit: int | None) -> Exit: """``Interpreter.run`` with native blocks."""
    def translated(self, block: Block) -> None: """A new block (compiled at once in eager mode)."""
    def forget(self, block: Block) -> None: """``block`` was invalidated."""
    def forget_all(self) -> None: ...
    def select(self) -> None: """The privilege level (and so the TLB set) changed."""
    def request(self) -> None: """Stop at the next block boundary (safe from another thread)."""


class ExitKind(Enum):
    SYSCALL = "syscall"   # the guest executed SYSCALL; RIP is past it
    FAULT = "fault"       # an exception: Exit.fault says which; RIP is the faulting instruction
    LIMIT = "limit"       # the instruction limit was reached
    BREAKPOINT = "breakpoint"  # RIP reached an address in Interpreter.breakpoints (not yet executed)
    HALT = "halt"         # HLT
    EVENT = "event"       # another instruction that needs the machine (Exit.event names it)


@dataclass
class Exit:
    kind: ExitKind
    fault: GuestFault | None = None
    event: str = ""
    message: str = ""


class Block:
    """A translated block: a Python function and what the run loop needs to know of it.

    ``phys``/``phys2``: the offsets (physical addresses under the MMU) of the
    pages it was translated from, ``phys2`` None unless it spills into a
    second page; ``entry``: the fetch-TLB entry it was last checked against.
    """

    __slots__ = ("fn", "count", "event", "translation", "rip", "phys", "phys2", "entry", "hits", "native",
                 "native_block")

    def __init__(self, fn, count: int, event: str | None, translation: Translation, rip: int,  # noqa: ANN001
                 first: TlbEntry, second: TlbEntry | None) -> None:
        self.fn = fn
        self.count = count
        self.event = event
        self.translation = translation
        self.rip = rip
        self.phys = first[1]
        self.phys2 = None if second is None else second[1]
        self.entry = first if second is None else _STRADDLES
        self.hits = 0
        self.native: int | None = None
        """The address of the block's native code (``cpu.jit``), once compiled."""
        self.native_block = None


_EVENT_KINDS = {"syscall": ExitKind.SYSCALL, "hlt": ExitKind.HALT}


class Interpreter:
    """Runs guest code on a CpuState and a Memory."""

    def __init__(self, state: CpuState, memory: Memory, *, max_block: int = MAX_BLOCK,
                 code_cache: CodeCache | None = None, cpu: CpuLevel | None = None,
                 entropy_seed: int | None = None) -> None:
        """``code_cache``: where to look for blocks translated by earlier runs, and keep new ones
        (``cpu.codecache``); None (the default) translates everything here.  ``cpu``: the CPU level
        (``cpu.cpuid``; default ``max``): what CPUID says, and which instructions raise #UD.
        ``entropy_seed``: the seed of RDRAND and RDSEED (default: from the host's random source)."""
        self.state = state
        self.level = cpu if cpu is not None else level()
        self.entropy = random.Random(entropy_seed)
        self.mem = memory
        self.max_block = max_block
        self.decoder = Decoder()
        load_all()                      # the registry: HELPERS and CALLS are bound into generated code below
        self.blocks: dict[int, Block] = {}
        self.single: dict[int, Block] = {}
        self.variants: dict[tuple[int, int], Block] = {}
        """System mode: blocks displaced from ``blocks`` by another address space's code, by (RIP, phys)."""
        self.page_blocks: dict[int, set[Block]] = {}
        self.fetch = safe_fetch(lambda a, n: memory.read(a, n, FETCH))
        self.env: dict[str, object] = {
            "__builtins__": builtins.__dict__, "s": state, "cpu": self, "GuestFault": GuestFault,
            "CodeWritten": CodeWritten,
            "compute": flags.compute, "condition": flags.condition,
            **{f"H_{name}": fn for name, fn in HELPERS.items()},
            **{f"C_{name}": fn for name, fn in CALLS.items()},
        }
        self._bind_memory()
        memory.on_code_write = self.invalidate
        memory.on_rebind = self._bind_memory
        self.system = memory.system
        self.io: Bus | None = None
        """Port I/O (IN, OUT, INS, OUTS): port numbers as addresses (the machine's ``devices.bus.Bus``, or
        a wrapper); None in user mode, where CPL 3 faults before reaching it."""
        self.code_cache = code_cache
        self.translated = 0
        """Instructions translated here (not counting blocks that came from the code cache)."""
        self.blocks_translated = 0
        self.translate_seconds = 0.0
        """Host time spent translating those blocks (decoding, lowering, ``compile()``): the cold path's cost."""
        self.blocks_cached = 0
        """Blocks taken from the code cache instead of translated."""
        self.breakpoints: frozenset[int] = frozenset()
        self._stops: set[int] = set()
        """What the run loop checks between blocks: breakpoints, and REQUEST or WINDOW when asked for."""
        self.code_written = False
        """Set when translations were dropped because their code was written; a block tests it after a store."""
        self.jit: NativeTier | None = None
        """The native tier (``cpu.jit``), attached by whoever turns it on."""

    def _bind_memory(self) -> None:
        """Point generated code at the memory's current accessors (they change with the privilege level)."""
        self.env.update({f"ld{n}": fn for n, fn in self.mem.loads.items()})
        self.env.update({f"st{n}": fn for n, fn in self.mem.stores.items()})
        jit = getattr(self, "jit", None)    # None while __init__ binds the first time
        if jit is not None:
            jit.select()

    def set_breakpoints(self, addresses: set[int] | frozenset[int]) -> None:
        """Stop before executing any of ``addresses``; blocks are cut so each one starts a block."""
        if frozenset(addresses) != self.breakpoints:
            self._stops.difference_update(self.breakpoints)
            self.breakpoints = frozenset(addresses)
            self._stops.update(self.breakpoints)
            self.flush()

    def request_exit(self) -> None:
        """Make ``run`` return after the block it is running, with EVENT "request" (safe from another thread)."""
        self._stops.add(REQUEST)
        if self.jit is not None:
            self.jit.request()

    def request_interrupt_window(self) -> None:
        """Make ``run`` return with EVENT "window" at the first block boundary where
        :func:`cpu.exceptions.accepts_interrupt` holds (for an interrupt that waits on IF or a shadow)."""
        self._stops.add(WINDOW)

    @property
    def icount(self) -> int:
        return self.state.icount

    def translation_summary(self) -> str:
        """``N blocks translated, M from the code cache``, and why the cache is off when it is."""
        text = f"{self.blocks_translated} blocks translated"
        if self.blocks_translated:
            text += f" ({self.translate_seconds / self.blocks_translated * 1e3:.3f} ms each)"
        text += f", {self.blocks_cached} from the code cache"
        if self.code_cache is None:
            return text + " (code cache off)"
        if self.code_cache.error is not None:
            return text + f" (code cache off: {self.code_cache.error})"
        return text

    # -- translation ------------------------------------------------------------
    def decode(self, address: int) -> Insn:
        return self.decoder.decode(self.fetch, address)

    def translate(self, rip: int, max_insns: int) -> Block:
        """The block at ``rip``, from the code cache or translated; a fault here means its first instruction faulted."""
        cache = self.code_cache
        hit = None if cache is None else cache.lookup(rip, max_insns, self.fetch, self.decoder, self.level.name,
                                                      self.breakpoints, self._code_page)
        if hit is not None:
            self.blocks_cached += 1
            code, translation, end = hit
        else:
            started = time.perf_counter()
            insns, translation, complete = self._translate(rip, max_insns)
            code = _compile_block(translation.source, rip)
            self.translate_seconds += time.perf_counter() - started
            self.blocks_translated += 1
            self.translated += len(insns)
            end = insns[-1].next
            if cache is not None and complete:
                cache.store(rip, max_insns, self.level.name, insns, translation, code)
        first_vpn, last_vpn = rip >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        pages = [(first_vpn, self.mem.entry(rip, FETCH))]
        if last_vpn != first_vpn:
            pages.append((last_vpn, self.mem.entry(last_vpn << PAGE_SHIFT, FETCH)))
        block = Block(FunctionType(code, self.env), len(translation.insns), translation.event, translation, rip,
                      pages[0][1], pages[1][1] if len(pages) > 1 else None)
        for vpn, entry in pages:
            page = self.mem.page_id(vpn, entry)
            self.page_blocks.setdefault(page, set()).add(block)
            self.mem.mark_code(page)
        return block

    def _code_page(self, address: int) -> bytes | None:
        """The bytes of the page at ``address`` as instruction fetch reads them now, if that page is RAM (the
        code cache's filter: a device's page is read no further than translation reads it)."""
        buf, base = self.mem.entry(address, FETCH)
        return bytes(buf[base:base + PAGE_SIZE]) if type(buf) in RAM_BUFFERS else None

    def _translate(self, rip: int, max_insns: int) -> tuple[list[Insn], Translation, bool]:
        """Decode and lower the block at ``rip``; also say whether it is complete, i.e. a function of its own
        bytes, address and ``max_insns`` only (not cut at a breakpoint or before an instruction that faulted)."""
        ops = PyOps()
        insns: list[Insn] = []
        address = rip
        complete = True
        decoded = self.decoder.decode_run(self.fetch, rip, max_insns)
        while True:
            if insns and address in self.breakpoints:
                complete = False
                break
            try:
                insn = next(decoded)
            except GuestFault:
                if not insns:
                    raise
                complete = False
                break
            insns.append(insn)
            ops.begin(insn)
            self.lower(ops, insn)
            ops.end()
            if ops.ended or len(insns) >= max_insns or (insn.next - 1) >> PAGE_SHIFT != rip >> PAGE_SHIFT:
                break
            address = insn.next
        return insns, ops.finish(insns), complete

    def lower(self, ops: Ops, insn: Insn) -> None:
        """Run ``insn``'s semantics through ``ops`` (any backend); #UD for what has none on this CPU level."""
        semantic, why = self.level.semantic(insn.mnemonic)
        if semantic is None:
            ops.fault(Vector.UD, detail=unimplemented(insn, why))
            return
        try:
            semantic(ops, insn, *insn.operands)
        except (KeyError, ValueError, TypeError, IndexError) as err:
            # An operand form the semantic does not handle (e.g. a register capstone names that it
            # cannot use): the guest gets #UD naming it; guest bytes never raise out of the CPU.
            ops.fault(Vector.UD, detail=f"{unimplemented(insn)} ({type(err).__name__}: {err})")

    def invalidate(self, page: int) -> None:
        """Page ``page`` (a ``Memory.page_id``) was written or unmapped: forget the blocks translated from it."""
        jit = self.jit
        self.code_written = True
        for block in self.page_blocks.pop(page, ()):
            if jit is not None:
                jit.forget(block)
            for cache in (self.blocks, self.single):
                if cache.get(block.rip) is block:
                    del cache[block.rip]
            if self.variants.get((block.rip, block.phys)) is block:
                del self.variants[block.rip, block.phys]

    def flush(self) -> None:
        if self.jit is not None:
            self.jit.forget_all()
        self.blocks.clear()
        self.single.clear()
        self.variants.clear()
        self.page_blocks.clear()

    # -- execution ---------------------------------------------------------------
    def run(self, limit: int | None = None) -> Exit:
        """Run until an event, a fault, a breakpoint, a request, or ``limit`` more instructions have retired.

        A breakpoint at the starting RIP does not stop the run: that is how a
        debugger continues from one; at least one block runs before a request
        is honoured.
        """
        if self.jit is not None:
            return self.jit.run(limit)
        if self.system:
            return self._run_system(limit)
        state = self.state
        rip = state.rip
        start = state.icount
        blocks = self.blocks
        get = blocks.get
        stops = self._stops
        first = True
        block: Block | None             # an annotation only: no code in the loop
        try:
            while True:
                if stops and not first:
                    stop = self._stop(rip)
                    if stop is not None:
                        state.rip = rip
                        return stop
                first = False
                if limit is not None and limit - (state.icount - start) < self.max_block:
                    if state.icount - start >= limit:
                        state.rip = rip
                        return Exit(ExitKind.LIMIT)
                    block = self._block_within(rip, limit - (state.icount - start))
                else:
                    block = get(rip)
                    if block is None:
                        block = self._block_at(rip, single=False)
                try:
                    rip = block.fn()
                except CodeWritten as cut:
                    state.icount += self._rollback(block, cut)
                    self.code_written = False
                    rip = state.rip
                    continue
                except GuestFault as fault:
                    state.icount += self._rollback(block, fault)
                    return Exit(ExitKind.FAULT, fault, message=fault.describe())
                state.icount += block.count     # current per block: RDTSC and the clocks read it mid-run
                if block.event is not None:
                    state.rip = rip
                    return self._event(block.event, state.icount)
        except GuestFault as fault:      # the block at ``rip`` could not be fetched or decoded
            state.rip = rip
            return Exit(ExitKind.FAULT, fault, message=fault.describe())

    def _run_system(self, limit: int | None) -> Exit:
        """``run`` under an MMU: blocks checked against the fetch TLB, icount kept current per block."""
        # Kept apart from run()'s loop on purpose (measured 2026-12-02, interleaved A/B, medians of 10 runs of
        # a 3 M instruction register loop): one loop for both modes, testing `system` per block for the fetch-TLB
        # check and the icount update, ran user mode 2.6% slower (3.9% under an instruction limit) and system
        # mode 2.5% slower without a limit.  (User mode has since kept icount current per block too, so that
        # RDTSC advances between system calls; the fetch-TLB check is what remains apart.)
        state, mem = self.state, self.mem
        mem.switch_privilege(state.cpl)
        rip = state.rip
        start = state.icount
        blocks = self.blocks
        get = blocks.get
        stops = self._stops
        first = True
        block: Block | None             # an annotation only: no code in the loop
        try:
            while True:
                if stops and not first:
                    stop = self._stop(rip)
                    if stop is not None:
                        state.rip = rip
                        return stop
                first = False
                if limit is not None and limit - (state.icount - start) < self.max_block:
                    if state.icount - start >= limit:
                        state.rip = rip
                        return Exit(ExitKind.LIMIT)
                    block = self._block_within(rip, limit - (state.icount - start))
                else:
                    block = get(rip)
                    if block is None or block.entry is not mem.tlb[FETCH].get(rip >> PAGE_SHIFT):
                        block = self._block_at(rip, single=False)
                try:
                    rip = block.fn()
                except CodeWritten as cut:
                    state.icount += self._rollback(block, cut)
                    self.code_written = False
                    rip = state.rip
                    continue
                except GuestFault as fault:
                    state.icount += self._rollback(block, fault)
                    return Exit(ExitKind.FAULT, fault, message=fault.describe())
                state.icount += block.count
                if block.event is not None:
                    state.rip = rip
                    return self._event(block.event, state.icount)
        except GuestFault as fault:      # the block at ``rip`` could not be fetched or decoded
            state.rip = rip
            return Exit(ExitKind.FAULT, fault, message=fault.describe())

    def _stop(self, rip: int) -> Exit | None:
        """A breakpoint at ``rip``, or a pending request, ends the run here."""
        stops = self._stops
        if rip in stops:
            return Exit(ExitKind.BREAKPOINT)
        if REQUEST in stops:
            stops.discard(REQUEST)
            return Exit(ExitKind.EVENT, event="request")
        if WINDOW in stops and accepts_interrupt(self.state):
            stops.discard(WINDOW)
            return Exit(ExitKind.EVENT, event="window")
        return None

    def _event(self, event: str, retired: int) -> Exit:
        """The exit for a block that ended in ``event``, ``retired`` instructions into the CPU's life."""
        if event in SHADOW_EVENTS:
            self.state.shadow_until = retired + 1
        return Exit(_EVENT_KINDS.get(event, ExitKind.EVENT), event=event)

    def step(self) -> Exit:
        return self.run(limit=1)

    def _block_within(self, rip: int, room: int) -> Block:
        """The block to run at ``rip`` when at most ``room`` (fewer than ``max_block``) instructions may retire
        before a limit: the block already known there when it fits, else a one-instruction block (measured:
        before, user mode's 4 M-instruction slices had sha256 translate 149 one-instruction blocks)."""
        block = self.blocks.get(rip)
        if (block is None or block.count > room
                or (self.system and block.entry is not self.mem.tlb[FETCH].get(rip >> PAGE_SHIFT))):
            block = self._block_at(rip, single=True)
        return block

    def _block_at(self, rip: int, single: bool) -> Block:
        """The cached block at ``rip`` (checked against the current mapping in system mode), or a new one."""
        cache = self.single if single else self.blocks
        block = cache.get(rip)
        if self.system:
            entry = self.mem.entry(rip, FETCH)
            if block is not None and not self._still_maps(block, entry):
                block = None
                if not single:          # another address space's code here: keep it for when it comes back
                    self.variants[rip, cache[rip].phys] = cache[rip]
                    block = self.variants.pop((rip, entry[1]), None)
                    if block is not None and not self._still_maps(block, entry):
                        block = None
                    if block is not None:
                        cache[rip] = block
        if block is None:
            block = self.translate(rip, 1 if single else self.max_block)
            cache[rip] = block
            if self.jit is not None and not single:
                self.jit.translated(block)
        return block

    def _still_maps(self, block: Block, entry: TlbEntry) -> bool:
        """Does the current mapping still lead from the block's RIP to the bytes it was translated from?"""
        if entry[1] != block.phys:
            return False
        if block.phys2 is not None:
            return self.mem.entry(((block.rip >> PAGE_SHIFT) + 1) << PAGE_SHIFT, FETCH)[1] == block.phys2
        block.entry = entry
        return True

    def _rollback(self, block: Block, fault: GuestFault | CodeWritten) -> int:
        """Write back the guest state the block held at the faulting instruction; return insns retired."""
        frame_line = _block_line(fault.__traceback__, block.fn.__code__)
        tr = block.translation
        snap = tr.snapshot_at(frame_line[1]) if frame_line else tr.snapshots[0]
        local = frame_line[0] if frame_line else {}
        state = self.state
        for name, var in snap.dirty:
            value = var if isinstance(var, int) else local.get(var)
            if value is not None:
                for line in field_store(name, repr(value)):
                    exec(line, {"s": state})  # noqa: S102 - our own field-store text
        if snap.cc is not None:
            values = [v if isinstance(v, int) else local.get(v, 0) for v in snap.cc]
            (state.cc_op, state.cc_size, state.cc_a, state.cc_b, state.cc_r, state.cc_c) = values
        address, after = insn_bounds(tr.insns, snap.index)
        if fault.vector in TRAPS:       # the instruction completed; RIP points past it
            state.rip = after
            return snap.index + 1
        state.rip = address
        return snap.index


def _compile_block(source: str, rip: int) -> CodeType:
    """The code of the function ``block`` that ``source`` defines."""
    module = compile(source, f"<block {rip:#x}>", "exec", dont_inherit=True)
    return next(c for c in module.co_consts if isinstance(c, CodeType))


def _block_line(tb: TracebackType | None, code: object) -> tuple[dict, int] | None:
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return tb.tb_frame.f_locals, tb.tb_lineno
        tb = tb.tb_next
    return None


def unimplemented(insn: Insn, why: str = "") -> str:
    """The #UD detail of an instruction the translator cannot run: it has no semantics, or ``why``
    (the CPU level lacks its feature); then the instruction, its bytes and its address."""
    where = f"`{insn.text}` (bytes {insn.raw.hex(' ')}) at {insn.address:#x}"
    return f"{why}: {where}" if why else f"no semantics for {where}"


__all__ = ["Exit", "ExitKind", "Interpreter"]
