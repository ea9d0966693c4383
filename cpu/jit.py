"""The JIT: hot blocks compiled by llvmlite to native code, chained natively.

Blocks start in the Python tier (``cpu.interp``).  A block that has run
:data:`HOT` times is lowered again from the same semantics through
:class:`cpu.backends.llvm.LlvmOps`, batched with other hot blocks into one
LLVM module and compiled by MCJIT; ``--jit=eager`` compiles every block when
it is first translated (the tests use it to hold the tiers to each other).

A native block is entered from the run loop through ``@emu_dispatch``, a
native loop that calls one block after another, looking each next RIP up in
a dispatch table, and returns to Python only for a block with no native
code, a fault, an event, a store into translated code, a stop request, or
the instruction budget.  Each block adds its instructions to
``CpuState.icount`` as it leaves, so the virtual clock, ``rdtsc`` and
``--stats`` see the very counts the Python tier gives.

Memory: the native code looks up the TLB of the current privilege inline.
:class:`cpu.engine.NativeTlb` mirrors one ``cpu.memory.TlbDict`` into a direct-mapped
pair of arrays (tag, addend) at a stable address; the dictionaries report
every change to their mirror, so the arrays never hold an entry the
dictionaries dropped.  The host buffer behind an entry is exported (pinned)
for as long as the entry is in the arrays, so even a stale pointer could
never name freed host memory.  Misses, page straddles, MMIO and watched
pages take the interpreter's slow path through a callback.

System mode: one dispatch table per TLB set (privilege level), emptied of a
page's blocks when that page leaves the fetch TLB, so native chaining only
ever follows a mapping the Python tier checked.

What the design leaves out, and why, is in docs/jit.md.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import hashlib
import logging
import marshal
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cpu.backends.llvm_abi import (
    EXIT_CODE_WRITE,
    EXIT_EVENT,
    EXIT_FAULT,
    EXIT_NEXT,
    MASK64,
    REQUEST_NOW,
    REQUEST_WINDOW,
    STATUS_CODE_WRITE,
    STATUS_FAULT,
    STATUS_OK,
    JitContext,
    LoweringError,
    NativeBlock,
)
from cpu.decoder import Insn
from cpu.engine import BLOCK_DECLARES, DispatchTable, Engine, Loaded, NativeTlb
from cpu.exceptions import TRAPS, CodeWritten, GuestFault, Vector
from cpu.interp import WINDOW, Exit, ExitKind, unimplemented
from cpu.memory import FETCH, PAGE_SHIFT, PRESENCE_SIZE, READ, WRITE
from cpu.semantics import CALLS, HELPERS
from cpu.storedblock import StoredInsns, insn_bounds

if TYPE_CHECKING:
    from cpu.interp import Block, Interpreter

log = logging.getLogger("emu.jit")

MODES = ("off", "on", "eager")
HOT = 50
"""Executions after which a block is compiled (docs/jit.md: measured against compile cost)."""
BATCH = 64
"""Hot blocks compiled together in one module (one module costs ~1 ms more than one more function)."""
CUT = 16
MIN_BATCH = 16
"""A batch also ends, once it holds ``MIN_BATCH`` blocks, after a block whose address hashes to 0 modulo ``CUT``:
boundaries set by content, not by count alone, so that a run in which a few blocks become hot in another
order (a guest that reads the time or its pid: CPython) forms the same batches again after the difference, and
finds them in the code cache (measured: `python3 -c pass`, second run, 42 of 230 modules found with batches
cut by count only)."""
BACKGROUND = os.environ.get("EMU_JIT_THREAD", "1") != "0"
"""Compile on a thread of its own (``EMU_JIT_THREAD=0``: in the run loop, for measurements)."""
_WINDOW_ONLY = {WINDOW}
"""The run loop's stops when all it waits for is an interrupt window (see ``Jit.enter``)."""
INSTALL_AFTER = 50_000
"""Guest instructions after which the run loop waits for a batch the compile thread has not built yet.  The
Python tier runs a hot loop 100 times slower than native code, and the thread, which needs the GIL between
LLVM's steps, goes slower while the run loop holds it: sha256 (1 MiB, code cache warm) took 1.05-1.21 s
installing only what was built, 0.40-0.42 s waiting after 50,000 instructions (measured before on sha256 with the
caches off: a wait after 1 M -> 1.18 s, 200 k -> 0.91 s, 50 k -> 0.87 s)."""
PATIENCE = 4
"""A block waiting in the pending batch that has run this many times the threshold has the batch compiled
without waiting for more blocks.  Only a pending block counts: a block whose batch is compiling runs in the
Python tier until it is installed, for longer or shorter as the compile thread is slower or faster, and
letting it cut the pending batch made the batches, and so their keys in the code cache, depend on timing."""
_SLOW = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)


# -- the JIT proper ---------------------------------------------------------------------------------

@dataclass
class Job:
    """One module to compile: its blocks, their IR, and once built, their addresses (or why not)."""

    engine: Engine
    lowered: list[tuple[Block | None, NativeBlock]]
    """Its blocks with their native descriptions (no Block for a module loaded for its placements)."""
    rips: list[int]
    ir: str
    seconds: float
    cached: int = 0
    addresses: list[int] = field(default_factory=list)
    error: str | None = None
    key: bytes = b""
    """Its key in the code cache's native objects."""
    meta: bytes = b""
    due: int = 0
    """The guest instruction count after which the run loop waits for it to be built."""
    site_base: int = 0
    """The number of its first exit site in the engine (written into its sites global when installed)."""
    sites_address: int = 0
    """Where its ``@s<key>`` global is: the site base, then the address of each of its functions in the order
    of ``lowered`` (one read for all of them: each lookup by name was a call that let go of the GIL, and
    the compile thread then waited for the run loop to give it back)."""
    obj: bytes | None = None
    """Its object code, read from the code cache by the run loop (the compile thread read it itself before,
    through LLVM's object cache callback: 0.8 ms a module in a warm boot, against 40 us here, nearly all of it
    waiting for the GIL)."""
    ready: bool = False
    """Its code is already in the engine (the same blocks were compiled before): nothing to build."""
    built: threading.Event = field(default_factory=threading.Event)
    waiting: list[Block] = field(default_factory=list)
    """Blocks translated since it was queued that an earlier run placed in this module: they go native when
    it is installed."""


@dataclass
class Stats:
    compiled: int = 0
    failed: int = 0
    modules: int = 0
    compile_seconds: float = 0.0
    native_entries: int = 0
    renewals: int = 0
    cached_modules: int = 0
    native_insns: int = 0
    """Instructions retired by native blocks that left normally (a faulting block's are the Python side's)."""
    placed: int = 0
    """Blocks that went native at their translation, their module found through the code cache's
    placements (an earlier run compiled them)."""
    failures: dict[str, str] = field(default_factory=dict)


class Jit:
    """Compiles an Interpreter's hot blocks and runs them natively (see the module docstring)."""

    def __init__(self, interp: Interpreter, mode: str = "on", strict: bool = False) -> None:
        """``strict``: a block the LLVM backend cannot lower, or LLVM cannot compile, raises (for tests)
        instead of staying in the Python tier with one log line."""
        if mode not in MODES:
            raise ValueError(f"--jit takes one of {', '.join(MODES)}, not {mode!r}")
        self.interp = interp
        self.mode = mode
        self.strict = strict
        self.hot = 1 if mode == "eager" else HOT
        self.engine = Engine.shared(interp.code_cache)
        Engine.users.add(self)
        self.compiled: list[Block] = []
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.inflight: collections.deque[Job] = collections.deque()
        """Jobs handed to the compile thread, in order, each installed by the run loop between two blocks once
        the thread has built it, or once the guest has run ``INSTALL_AFTER`` more instructions (then waiting for
        it).  Which blocks become hot, and so every batch, depends on the guest's instructions only, not on when
        a batch is installed."""
        self.worker: threading.Thread | None = None
        self.ctx = JitContext()
        self.ctx_address = ctypes.addressof(self.ctx)
        self.state_address = ctypes.addressof(interp.state)
        self.helper_names = sorted(HELPERS)
        self.helper_ids = {name: i for i, name in enumerate(self.helper_names)}
        self.call_names = sorted(CALLS)
        self.call_ids = {name: i for i, name in enumerate(self.call_names)}
        self.pending: list[Block] = []
        self.loading: dict[bytes, Job] = {}
        """Modules being loaded for their placements, by key."""
        self.awaiting: set[Block] = set()
        """The blocks waiting for those modules (they do not join a batch meanwhile)."""
        self.stats = Stats()
        self._key_of: tuple[str, str] | None = None
        self._key_start = hashlib.sha256()
        """The hash every key starts from: of ``_key_of``, the engine's fingerprint and the CPU level."""
        self.fault: GuestFault | None = None
        self.error: BaseException | None = None
        self._callbacks = (_SLOW(self._slow_load), _SLOW(self._slow_store), _SLOW(self._py_helper),
                           _SLOW(self._py_call))
        for name, cb in zip(("slow_load", "slow_store", "py_helper", "py_call"), self._callbacks, strict=True):
            setattr(self.ctx, name, ctypes.cast(cb, ctypes.c_void_p).value)
        presence = getattr(interp.mem, "presence", None)
        if presence is None:            # user mode: no INVLPG runs (CPL 3 faults first); counts that say "held"
            self._held = (ctypes.c_uint32 * (2 * PRESENCE_SIZE))()
            ctypes.memset(self._held, 1, ctypes.sizeof(self._held))
            self.ctx.present = self.ctx.large = ctypes.addressof(self._held)
        else:
            self.ctx.present, self.ctx.large = ctypes.addressof(presence.pages), ctypes.addressof(presence.large)
        self.mirrors: list[tuple[NativeTlb, NativeTlb, DispatchTable]] = []
        for tlb in interp.mem.tlb_sets:
            mirror = (NativeTlb(), NativeTlb(), DispatchTable())
            for access in (READ, WRITE, FETCH):
                tlb[access].attach(mirror[access])
            self.mirrors.append(mirror)
        self.select()

    # -- the current privilege's arrays ----------------------------------------------------
    def select(self) -> None:
        """Point the context at the TLB set the memory uses now (called when the privilege changes)."""
        index = next(i for i, t in enumerate(self.interp.mem.tlb_sets) if t is self.interp.mem.tlb)
        reads, writes, table = self.mirrors[index]
        self.table = table
        ctx = self.ctx
        ctx.rtag, ctx.radd = ctypes.addressof(reads.tag), ctypes.addressof(reads.add)
        ctx.wtag, ctx.wadd = ctypes.addressof(writes.tag), ctypes.addressof(writes.add)
        ctx.table_rip = ctypes.addressof(table.slots)
        ctx.table_fn = ctx.table_rip + 8       # each function follows its RIP

    # -- compiling -------------------------------------------------------------------------------
    def translated(self, block: Block) -> None:
        """The interpreter made ``block``: in eager mode, compile it now; otherwise, when an earlier run placed
        it in a native module (``CodeCache.placement``), it runs natively from then on, that module loaded
        on the compile thread (the Python tier runs it meanwhile).  A block's native code is a function of
        the block alone (docs/jit.md), so any module that holds it will do."""
        if self.mode == "eager":
            self.compile([block])
            return
        cache = self.interp.code_cache
        module = None if cache is None else cache.placement(block.rip, lambda: self._key([block]))
        if module is None:
            return
        loaded = self.engine.loaded.get(module)
        if loaded is not None:
            self._attach(block, loaded)
            return
        job = self.loading.get(module)
        if job is None:
            found = cache.native(module)
            if found is None:
                return
            engine = self._current_engine()
            base = len(engine.sites)
            natives = self._natives(found[1])
            job = Job(engine, [(None, n) for n in natives.values()], list(natives), "", 0.0, key=module,
                      site_base=base, obj=found[0])
            self.loading[module] = job
            self._submit(job)
        if self.loading.get(module) is job:
            job.waiting.append(block)
            self.awaiting.add(block)
        elif module in self.engine.loaded:            # built and installed already (no compile thread)
            self._attach(block, self.engine.loaded[module])

    def _attach(self, block: Block, loaded: Loaded) -> None:
        """Run ``block`` natively with its function in ``loaded``, if it is still the block at its address."""
        entry = loaded.natives.get(block.rip)
        if entry is None or block.native is not None or self.interp.blocks.get(block.rip) is not block:
            return
        native, address = entry
        if native.insns is None:        # loaded for its placements, before this block was translated
            native.insns = block.translation.insns
        block.native, block.native_block = address, native
        self.compiled.append(block)
        self.stats.placed += 1
        self._publish(block)

    def _publish(self, block: Block) -> None:
        """Put a block that just went native into the dispatch table of each privilege whose fetch TLB maps its
        page as the block was checked under (else the run loop puts it in when it first enters it)."""
        if block.phys2 is not None or block.entry is None:
            return
        vpn = block.rip >> PAGE_SHIFT
        for tlb, (_, _, table) in zip(self.interp.mem.tlb_sets, self.mirrors, strict=True):
            if tlb[FETCH].get(vpn) is block.entry:
                table.insert(block.rip, block.native, block.entry)

    def ran(self, block: Block) -> None:
        """``block`` just reached the hot threshold in the Python tier."""
        if block.native is not None or block.count != len(block.translation.insns) \
                or self.interp.blocks.get(block.rip) is not block or block in self.awaiting:
            return
        self.pending.append(block)
        if len(self.pending) >= BATCH or self.mode == "eager" or \
                (len(self.pending) >= MIN_BATCH and (block.rip * 0x9E3779B97F4A7C15 >> 32) % CUT == 0):
            self.flush_pending()

    def flush_pending(self) -> None:
        blocks, self.pending = self.pending, []
        live = {b.rip: b for b in blocks if b.native is None and self.interp.blocks.get(b.rip) is b}
        if live:
            self.compile(list(live.values()))

    def compile(self, blocks: Sequence[Block]) -> None:
        """Lower ``blocks`` here and compile them as one module: at once in eager mode (and for tests), else on
        the compile thread, their native code installed by the run loop between two blocks."""
        job = self._prepare(blocks)
        if job is None:
            return
        if job.ready:
            self._install(job)
            return
        self._submit(job)

    def _submit(self, job: Job) -> None:
        """Build ``job`` here in eager mode (or without the thread), and a module the code cache holds while
        the compile thread is idle (loading it costs the run loop ~0.3 ms; on the thread, its blocks ran in
        the Python tier until the run loop let the thread have the GIL: a warm boot took 1.70 s with every
        load on the thread, 1.50 s with every load here); else queue it for the compile thread."""
        if self.mode == "eager" or not BACKGROUND or (job.obj is not None and not self.jobs.unfinished_tasks):
            while self.inflight:        # built already (the thread is idle): installed in order, before it
                self._install(self.inflight.popleft())
            self._build(job)
            self._install(job)
            return
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name="emu-jit", daemon=True)
            self.worker.start()
            atexit.register(self.stop)
        job.due = self.interp.state.icount + INSTALL_AFTER
        self.inflight.append(job)
        self.jobs.put(job)

    def _current_engine(self) -> Engine:
        """The engine new modules go to (a fresh one when it is full)."""
        if self.engine.full or self.engine is not Engine._shared:
            self.jobs.join()        # nothing may still be compiling into the engine that goes
            self.engine = Engine.renew() if self.engine.full else Engine.shared(self.interp.code_cache)
            self.stats.renewals += 1
        return self.engine

    def _prepare(self, blocks: Sequence[Block]) -> Job | None:
        start = time.perf_counter()
        engine = self._current_engine()
        key = self._key(blocks)
        loaded = engine.loaded.get(key)
        if loaded is not None:          # its names and sites global are in this engine already: never again
            present = [b for b in blocks if b.rip in loaded.natives]
            lowered = [(b, loaded.natives[b.rip][0]) for b in present]
            return Job(engine, lowered, [b.rip for b in present], "", time.perf_counter() - start, key=key,
                       ready=True, addresses=[loaded.natives[b.rip][1] for b in present]) if present else None
        prefix = key[:8].hex()
        base = len(engine.sites)
        cache = self.interp.code_cache
        found = None if cache is None else cache.native(key)
        if found is not None:
            natives = self._natives(found[1])
            by_rip = {block.rip: block for block in blocks}
            for rip, native in natives.items():
                native.insns = by_rip[rip].translation.insns
            return Job(engine, [(by_rip[rip], n) for rip, n in natives.items()], list(natives), "",
                       time.perf_counter() - start, key=key, site_base=base, obj=found[0]) if natives else None
        lowered = []
        in_module = 0
        for i, block in enumerate(blocks):
            native = self._lower(block, f"b{prefix}_{i}_{block.rip:x}", in_module, f"@s{prefix}")
            if native is not None:
                lowered.append((block, native))
                in_module += len(native.sites)
        if not lowered:
            return None
        for _, native in lowered:
            engine.sites.add(native)
        declares = sorted(set().union(*(n.declares for _, n in lowered)))
        functions = ", ".join(f"i64 ptrtoint (ptr @{native.name} to i64)" for _, native in lowered)
        ir = (BLOCK_DECLARES + "\n".join(declares) + f"\n@s{prefix} = global [{len(lowered) + 1} x i64] "
              f"[i64 0, {functions}]\n" + "\n".join(n.ir for _, n in lowered))
        meta = marshal.dumps([(block.rip, native.name, native.event,
                               [tuple(site) for site in native.sites])
                              for block, native in lowered])
        return Job(engine, lowered, [block.rip for block, _ in lowered], ir, time.perf_counter() - start, key=key,
                   meta=meta, site_base=base)

    def _key(self, blocks: Sequence[Block]) -> bytes:
        """What the module of ``blocks`` is a function of (with the translator, which names the cache file):
        their addresses and bytes, the LLVM target, the CPU level.  Not what was compiled before it: its
        function names and its sites global are named after this key, and its exit sites are numbered from a
        base written at installation, so a batch of the same blocks finds its code in any run."""
        context = (self.engine.fingerprint, self.interp.level.name)
        if self._key_of != context:     # the fingerprint is ~1 KB: hashed once, not once a block
            self._key_of, self._key_start = context, hashlib.sha256(f"{context[0]}\n{context[1]}".encode())
        digest = self._key_start.copy()
        for block in blocks:
            insns = block.translation.insns
            code = insns.code if isinstance(insns, StoredInsns) else b"".join(insn.raw for insn in insns)
            digest.update(f"\n{block.rip:x}:{block.count}:".encode())
            digest.update(code)
        return digest.digest()

    def _natives(self, meta: bytes) -> dict[int, NativeBlock]:
        """The blocks of a module found in the cache, by address, as lowering them would have described them
        (their instructions filled in by whoever has the blocks); their exit sites are numbered on from the
        engine's, in the module's order."""
        natives = {}
        for rip, name, event, sites in marshal.loads(meta):
            native = NativeBlock(name, "", None, event, sites)
            self.engine.sites.add(native)
            natives[rip] = native
        return natives

    def _build(self, job: Job) -> None:
        """LLVM's part (it releases the GIL): parse, generate or load the object code, resolve the addresses."""
        start = time.perf_counter()
        try:
            hits = job.engine.hits
            job.engine.add(job.ir, self.interp.code_cache, job.key, job.meta, job.obj)
            job.cached = job.engine.hits - hits
            job.sites_address = job.engine.engine.get_global_value_address(f"s{job.key.hex()[:16]}")
            if not job.sites_address:
                raise LoweringError("the code cache no longer holds this module's object code")
            job.addresses = list((ctypes.c_uint64 * len(job.lowered)).from_address(job.sites_address + 8))
        except Exception as err:    # an LLVM failure: the blocks stay in the Python tier
            if self.strict:
                raise
            job.error = str(err).splitlines()[0] if str(err) else type(err).__name__
        job.seconds += time.perf_counter() - start

    def _install(self, job: Job) -> None:
        """Give the job's blocks, and the blocks waiting for its module, their native code, unless they (or the
        engine) went meanwhile; note where a module compiled here holds each block (``CodeCache.place``)."""
        stats = self.stats
        stats.compile_seconds += job.seconds
        if self.loading.get(job.key) is job:
            del self.loading[job.key]
        self.awaiting.difference_update(job.waiting)
        if job.error is not None:
            stats.failed += len(job.lowered)
            log.warning("emu: LLVM could not compile %d blocks (%s); they stay in the Python tier",
                        len(job.lowered), job.error)
            return
        if job.engine is not self.engine:
            return
        if job.ready:
            loaded = self.engine.loaded[job.key]
        else:
            stats.modules += 1
            stats.cached_modules += job.cached
            ctypes.c_uint64.from_address(job.sites_address).value = job.site_base
            loaded = self.engine.loaded[job.key] = Loaded(
                {rip: (native, address)
                 for rip, (_, native), address in zip(job.rips, job.lowered, job.addresses, strict=True)})
            cache = self.interp.code_cache
            if cache is not None and not job.cached and self.mode == "on":     # an eager module holds one block
                for block, _ in job.lowered:
                    if block is not None:
                        cache.place(block.rip, self._key([block]), job.key)
        blocks = self.interp.blocks
        for (block, native), address in zip(job.lowered, job.addresses, strict=True):
            if block is not None and blocks.get(block.rip) is block and block.native is None:
                block.native = address
                block.native_block = native
                self.compiled.append(block)
                stats.compiled += 1
                self._publish(block)
        for block in job.waiting:
            self._attach(block, loaded)

    def install_ready(self, icount: int) -> None:
        """Install, in order, the jobs the compile thread has built and those due at guest instruction
        ``icount``, waiting for these (the run loop calls this between blocks)."""
        inflight = self.inflight
        while inflight and (inflight[0].built.is_set() or inflight[0].due <= icount):
            job = inflight.popleft()
            job.built.wait()
            self._install(job)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                self._build(job)
            finally:
                if job is not None:
                    job.built.set()
                self.jobs.task_done()

    def stop(self) -> None:
        """End the compile thread (at exit: LLVM must not be working while Python shuts down)."""
        if self.worker is not None and self.worker.is_alive():
            self.jobs.put(None)
            self.worker.join(timeout=10)
        self.worker = None

    def _lower(self, block: Block, name: str, site_base: int, sites: str) -> NativeBlock | None:
        from cpu.backends.llvm import LlvmOps  # here: a run whose native code all comes from the cache never lowers

        insns: list[Insn] = list(block.translation.insns)
        ops = LlvmOps(name, self.helper_ids, self.call_ids, site_base, sites)
        try:
            for insn in insns:
                ops.begin(insn)
                semantic, why = self.interp.level.semantic(insn.mnemonic)
                if semantic is None:
                    ops.fault(Vector.UD, detail=unimplemented(insn, why))
                else:
                    semantic(ops, insn, *insn.operands)
                ops.end()
            native = ops.finish(insns)
        except Exception as err:        # noqa: BLE001 - any lowering failure keeps the block in the Python tier
            if self.strict:
                raise LoweringError(f"lowering the block at {block.rip:#x}: {type(err).__name__}: {err}") from err
            self.stats.failed += 1
            key = insns[0].mnemonic if insns else "?"
            if key not in self.stats.failures:
                self.stats.failures[key] = f"{type(err).__name__}: {err}"
                log.warning("emu: the JIT cannot lower the block at %#x (%s: %s); it stays in the Python tier",
                            block.rip, type(err).__name__, err)
            return None
        return native

    # -- running -----------------------------------------------------------------------------------
    def enter(self, block: Block, limit: int) -> int:
        """Run natively from ``block`` (at ``state.rip``) until something needs Python; the exit code."""
        ctx = self.ctx
        if block.entry is not None and not self.table.holds(block.rip, block.native):
            spills = block.phys2 is not None        # checked on both pages just now (Interpreter._still_maps)
            self.table.insert(block.rip, block.native, None if spills else block.entry, spills)
        ctx.exit = EXIT_NEXT
        ctx.limit = limit
        stops = self.interp._stops
        # an interrupt waiting for IF: native code runs on through blocks that leave IF clear (before, each
        # returned to the run loop: 9.5 k of a warm boot's 69 k returns to Python)
        ctx.request = 0 if not stops else REQUEST_WINDOW if stops == _WINDOW_ONLY else REQUEST_NOW
        self.stats.native_entries += 1
        state = self.interp.state
        before = state.icount
        code = self.engine.dispatch(self.state_address, self.ctx_address, block.native)
        self.stats.native_insns += state.icount - before
        return code

    def run(self, limit: int | None) -> Exit:
        """The run loop with the native tier: ``Interpreter.run`` with the same contract."""
        interp, state, mem = self.interp, self.interp.state, self.interp.mem
        system = interp.system
        if system:
            mem.switch_privilege(state.cpl)
        rip = state.rip
        start = state.icount
        native_limit = MASK64 if limit is None else start + limit - interp.max_block
        blocks = interp.blocks
        stops = interp._stops
        first = True
        hot = self.hot
        patience = PATIENCE * hot
        inflight = self.inflight
        try:
            while True:
                if stops and not first:
                    stop = interp._stop(rip)
                    if stop is not None:
                        state.rip = rip
                        return stop
                first = False
                if limit is not None and limit - (state.icount - start) < interp.max_block:
                    if state.icount - start >= limit:
                        state.rip = rip
                        return Exit(ExitKind.LIMIT)
                    block = interp._block_within(rip, limit - (state.icount - start))
                else:
                    block = blocks.get(rip)
                    if block is None or (system and block.entry is not mem.tlb[FETCH].get(rip >> PAGE_SHIFT)):
                        block = interp._block_at(rip, single=False)
                    if block.native is not None:
                        state.rip = rip
                        code = self.enter(block, native_limit)
                        rip = state.rip
                        if code == EXIT_NEXT:
                            continue
                        if code == EXIT_CODE_WRITE:
                            interp.code_written = False
                            continue
                        if code == EXIT_EVENT:
                            native, site = self.engine.sites[self.ctx.site]
                            return interp._event(native.event, state.icount)
                        return self._fault_exit()
                try:
                    rip = block.fn()
                except CodeWritten as cut:
                    state.icount += interp._rollback(block, cut)
                    interp.code_written = False
                    rip = state.rip
                    continue
                except GuestFault as fault:
                    state.icount += interp._rollback(block, fault)
                    return Exit(ExitKind.FAULT, fault, message=fault.describe())
                state.icount += block.count
                if block.event is not None:
                    state.rip = rip
                    return interp._event(block.event, state.icount)
                block.hits += 1
                if block.hits == hot:
                    self.ran(block)
                elif block.hits == patience and block in self.pending:
                    self.flush_pending()
                if inflight and (inflight[0].due <= state.icount or inflight[0].built.is_set()):
                    self.install_ready(state.icount)
        except GuestFault as fault:      # the block at ``rip`` could not be fetched or decoded
            state.rip = rip
            return Exit(ExitKind.FAULT, fault, message=fault.describe())

    def _fault_exit(self) -> Exit:
        """After EXIT_FAULT: RIP and icount where the SDM wants them (as ``Interpreter._rollback``)."""
        native, site = self.engine.sites[self.ctx.site]
        state = self.interp.state
        if site.vector is not None:
            fault = GuestFault(site.vector, site.error_code, None, site.detail)
        elif self.error is not None:
            error, self.error = self.error, None
            raise error
        else:
            fault, self.fault = self.fault, None
        address, after = insn_bounds(native.insns, site.insn)
        if fault.vector in TRAPS:
            state.rip, retired = after, site.insn + 1
        else:
            state.rip, retired = address, site.insn
        state.icount += retired
        return Exit(ExitKind.FAULT, fault, message=fault.describe())

    def forget(self, block: Block) -> None:
        """``block`` was invalidated: no table may lead to it any more."""
        for _, _, table in self.mirrors:
            table.remove(block.rip)

    def drop_native(self) -> None:
        """Forget all native code (the engine that holds it is about to go): blocks run in Python again."""
        for block in self.compiled:
            block.native = None
            block.native_block = None
            block.hits = 0
        self.compiled.clear()
        self.pending.clear()
        self.loading.clear()
        self.awaiting.clear()
        self.forget_all()

    def request(self) -> None:
        self.ctx.request = REQUEST_NOW

    def forget_all(self) -> None:
        for _, _, table in self.mirrors:
            table.forget()

    # -- callbacks from native code (no exception crosses them) ---------------------------------
    def _failed(self, err: BaseException) -> int:
        if isinstance(err, GuestFault):
            self.fault = err
        else:
            self.error = err
        return STATUS_FAULT

    def _refill(self, address: int, access: int) -> None:
        vpn = address >> PAGE_SHIFT
        tlb = self.interp.mem.tlb[access]
        entry = tlb.get(vpn)
        if entry is not None:
            tlb.mirror_set(vpn, entry)

    def _slow_load(self, _ctx: int, address: int, size: int) -> int:
        try:
            value = self.interp.mem._slow_load(address, size)
            self._refill(address, READ)
        except BaseException as err:  # noqa: BLE001 - reported through the status, re-raised by the run loop
            return self._failed(err)
        val = self.ctx.val
        for i in range(max(1, size // 64)):
            val[i] = (value >> (64 * i)) & MASK64
        return STATUS_OK

    def _slow_store(self, _ctx: int, address: int, size: int) -> int:
        val = self.ctx.val
        value = sum(val[i] << (64 * i) for i in range(max(1, size // 64)))
        self.interp.code_written = False
        try:
            self.interp.mem._slow_store(address, size, value)
            self._refill(address, WRITE)
        except BaseException as err:  # noqa: BLE001
            return self._failed(err)
        if self.interp.code_written:
            self.ctx.exit = EXIT_CODE_WRITE
            return STATUS_CODE_WRITE
        return STATUS_OK

    def _py_helper(self, _ctx: int, index: int, count: int) -> int:
        args = self.ctx.args
        values = [args[4 * i] | (args[4 * i + 1] << 64) | (args[4 * i + 2] << 128) | (args[4 * i + 3] << 192)
                  for i in range(count)]
        try:
            result = HELPERS[self.helper_names[index]](*values)
        except BaseException as err:  # noqa: BLE001
            return self._failed(err)
        val = self.ctx.val
        for i in range(4):
            val[i] = (result >> (64 * i)) & MASK64
        return STATUS_OK

    def _py_call(self, _ctx: int, index: int, count: int) -> int:
        args = self.ctx.args
        try:
            result = CALLS[self.call_names[index]](self.interp, *(args[i] for i in range(count)))
        except BaseException as err:  # noqa: BLE001
            return self._failed(err)
        self.ctx.val[0] = (result or 0) & MASK64
        return STATUS_OK

    def summary(self) -> str:
        s = self.stats
        return (f"JIT {self.mode}: {s.compiled} blocks compiled in {s.modules} modules "
                f"({s.cached_modules} from the code cache), {s.placed} native from their first run, "
                f"{s.compile_seconds * 1000:.0f} ms compiling, "
                f"{s.failed} left in the Python tier; {s.native_insns} instructions in "
                f"{self.ctx.blocks} native block runs")


__all__ = ["EXIT_CODE_WRITE", "EXIT_EVENT", "EXIT_FAULT", "EXIT_NEXT", "HOT", "Jit", "MODES", "TRAPS"]
