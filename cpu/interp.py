"""The interpreter: the reference backend, and the one that always works.

It runs guest code block by block.  A block (straight-line code up to a
control transfer, a system event, a page boundary or a size limit) is decoded
once, turned into a Python function by running each instruction's semantics
through :class:`cpu.pycode.PyOps`, and cached by its start address.  The run
loop is then: look up the block at RIP, call it, count its instructions.

``run`` returns an :class:`Exit` whenever the host has work to do: a system
call or other event, a guest fault (with the CPU rolled back to the faulting
instruction, as the SDM Vol. 3A 6.5 requires of faults), or the instruction
limit.  Single stepping uses one-instruction blocks, cached separately.

The design note docs/interpreter.md says why blocks are compiled to Python
rather than interpreted micro-op by micro-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import TracebackType

from cpu import flags
from cpu.decoder import Decoder, Insn, safe_fetch
from cpu.exceptions import GuestFault, UndefinedOpcode, Vector
from cpu.memory import FETCH, PAGE_SHIFT, Memory
from cpu.pycode import PyOps, Translation, field_store
from cpu.semantics import CALLS, HELPERS, load_all
from cpu.state import CpuState

MAX_BLOCK = 64

TRAPS = frozenset({Vector.BP, Vector.OF})
"""Exceptions reported after their instruction (SDM Vol. 3A, 6.5: INT3 and INTO are traps)."""


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
    """A translated block: a Python function and what the run loop needs to know of it."""

    __slots__ = ("fn", "count", "event", "translation")

    def __init__(self, fn, count: int, event: str | None, translation: Translation) -> None:  # noqa: ANN001
        self.fn = fn
        self.count = count
        self.event = event
        self.translation = translation


_EVENT_KINDS = {"syscall": ExitKind.SYSCALL, "hlt": ExitKind.HALT}


class Interpreter:
    """Runs guest code on a CpuState and a Memory."""

    def __init__(self, state: CpuState, memory: Memory, *, max_block: int = MAX_BLOCK) -> None:
        self.state = state
        self.mem = memory
        self.max_block = max_block
        self.decoder = Decoder()
        self.semantics = load_all()
        self.blocks: dict[int, Block] = {}
        self.single: dict[int, Block] = {}
        self.page_blocks: dict[int, set[int]] = {}
        self.fetch = safe_fetch(lambda a, n: memory.read(a, n, FETCH))
        self.env: dict[str, object] = {
            "s": state, "cpu": self, "GuestFault": GuestFault,
            "compute": flags.compute, "condition": flags.condition,
            **{f"ld{n}": fn for n, fn in memory.loads.items()},
            **{f"st{n}": fn for n, fn in memory.stores.items()},
            **{f"H_{name}": fn for name, fn in HELPERS.items()},
            **{f"C_{name}": fn for name, fn in CALLS.items()},
        }
        memory.on_code_write = self.invalidate
        self.translated = 0
        self.breakpoints: frozenset[int] = frozenset()

    def set_breakpoints(self, addresses: set[int] | frozenset[int]) -> None:
        """Stop before executing any of ``addresses``; blocks are cut so each one starts a block."""
        if frozenset(addresses) != self.breakpoints:
            self.breakpoints = frozenset(addresses)
            self.flush()

    @property
    def icount(self) -> int:
        return self.state.icount

    # -- translation ------------------------------------------------------------
    def decode(self, address: int) -> Insn:
        return self.decoder.decode(self.fetch, address)

    def translate(self, rip: int, max_insns: int) -> Block:
        """Decode and compile the block at ``rip``; a fault here means its first instruction faulted."""
        ops = PyOps()
        insns: list[Insn] = []
        address = rip
        while True:
            if insns and address in self.breakpoints:
                break
            try:
                insn = self.decode(address)
            except GuestFault:
                if not insns:
                    raise
                break
            insns.append(insn)
            ops.begin(insn)
            self._lower(ops, insn)
            ops.end()
            if ops.ended or len(insns) >= max_insns or (insn.next - 1) >> PAGE_SHIFT != rip >> PAGE_SHIFT:
                break
            address = insn.next
        translation = ops.finish(insns)
        namespace: dict[str, object] = {}
        exec(compile(translation.source, f"<block {rip:#x}>", "exec"), self.env, namespace)  # noqa: S102
        self.translated += len(insns)
        for vpn in {rip >> PAGE_SHIFT, (insns[-1].next - 1) >> PAGE_SHIFT}:
            self.page_blocks.setdefault(vpn, set()).add(rip)
            self.mem.mark_code(vpn)
        return Block(namespace["block"], len(insns), translation.event, translation)

    def _lower(self, ops: PyOps, insn: Insn) -> None:
        semantic = self.semantics.get(insn.mnemonic)
        if semantic is None:
            ops.fault(Vector.UD, detail=unimplemented(insn))
            return
        try:
            semantic(ops, insn, *insn.operands)
        except (NotImplementedError, KeyError, ValueError, TypeError, IndexError) as err:
            ops.fault(Vector.UD, detail=f"{unimplemented(insn)} ({type(err).__name__}: {err})")

    def invalidate(self, vpn: int) -> None:
        """Page ``vpn`` was written or unmapped: forget the blocks translated from it."""
        for rip in self.page_blocks.pop(vpn, ()):
            self.blocks.pop(rip, None)
            self.single.pop(rip, None)

    def flush(self) -> None:
        self.blocks.clear()
        self.single.clear()
        self.page_blocks.clear()

    # -- execution ---------------------------------------------------------------
    def run(self, limit: int | None = None) -> Exit:
        """Run until an event, a fault, a breakpoint, or ``limit`` more instructions have retired.

        A breakpoint at the starting RIP does not stop the run: that is how a
        debugger continues from one.
        """
        state = self.state
        rip = state.rip
        count = 0
        blocks = self.blocks
        get = blocks.get
        breakpoints = self.breakpoints
        first = True
        try:
            while True:
                if breakpoints and rip in breakpoints and not first:
                    state.rip = rip
                    return Exit(ExitKind.BREAKPOINT)
                first = False
                if limit is not None and limit - count < self.max_block:
                    if count >= limit:
                        state.rip = rip
                        return Exit(ExitKind.LIMIT)
                    block = self._block_at(rip, single=True)
                else:
                    block = get(rip)
                    if block is None:
                        block = self._block_at(rip, single=False)
                try:
                    rip = block.fn()
                except GuestFault as fault:
                    count += self._rollback(block, fault)
                    return Exit(ExitKind.FAULT, fault, message=fault.describe())
                count += block.count
                if block.event is not None:
                    state.rip = rip
                    return Exit(_EVENT_KINDS.get(block.event, ExitKind.EVENT), event=block.event)
        except GuestFault as fault:      # the block at ``rip`` could not be fetched or decoded
            state.rip = rip
            return Exit(ExitKind.FAULT, fault, message=fault.describe())
        finally:
            state.icount += count

    def step(self) -> Exit:
        return self.run(limit=1)

    def _block_at(self, rip: int, single: bool) -> Block:
        cache = self.single if single else self.blocks
        block = cache.get(rip)
        if block is None:
            block = self.translate(rip, 1 if single else self.max_block)
            cache[rip] = block
        return block

    def _rollback(self, block: Block, fault: GuestFault) -> int:
        """Write back the guest state the block held at the faulting instruction; return insns retired."""
        frame_line = _block_line(fault.__traceback__, block.fn.__code__)
        tr = block.translation
        snap = tr.snapshot_at(frame_line[1]) if frame_line else tr.snapshots[0]
        local = frame_line[0] if frame_line else {}
        state = self.state
        for name in snap.dirty:
            if name in local:
                for line in field_store(name, repr(local[name])):
                    exec(line, {"s": state})  # noqa: S102 - our own field-store text
        if snap.cc is not None:
            values = [v if isinstance(v, int) else local.get(v, 0) for v in snap.cc]
            (state.cc_op, state.cc_size, state.cc_a, state.cc_b, state.cc_r, state.cc_c) = values
        insn = tr.insns[snap.index]
        if fault.vector in TRAPS:       # the instruction completed; RIP points past it
            state.rip = insn.next
            return snap.index + 1
        state.rip = insn.address
        return snap.index


def _block_line(tb: TracebackType | None, code: object) -> tuple[dict, int] | None:
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return tb.tb_frame.f_locals, tb.tb_lineno
        tb = tb.tb_next
    return None


def unimplemented(insn: Insn) -> str:
    return f"no semantics for `{insn.text}` (bytes {insn.raw.hex(' ')}) at {insn.address:#x}"


__all__ = ["Exit", "ExitKind", "Interpreter", "UndefinedOpcode"]
