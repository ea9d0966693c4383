"""Instruction tracing for the debugger (``trace on [FILE]``): every executed instruction, one line each.

A line names the instruction and what it changed::

    0x401629: push rbp    rsp=0x7fffffffe3e0 [0x7fffffffe3e0]=0x4a06f0
    0x40162d: sub rsp, 0x20    rsp=0x7fffffffe3c0 rflags=0x206

It is written by :meth:`Tracer.before`, which the target calls before each
instruction (``Target.on_instruction``): it snapshots the registers and the
bytes of the instruction's memory operands, and writes the line of the
previous instruction by comparing those with the state now.  The debugger
flushes the last line when the guest stops.  Decoded instructions are kept,
keyed by address and bytes, so rewritten code is decoded again.  Registers are listed when their
value changed, memory operands when their bytes changed (a store of the value
already there shows nothing); a faulting instruction is marked ``(faulted)``.
"""

from __future__ import annotations

from typing import TextIO

from cpu.decoder import MAX_INSN_LEN, Insn
from cpu.exceptions import GuestFault
from emu.debug.target import Target
from emu.debug.views import Registers, Views, changes


class Tracer:
    """Writes trace lines to ``out``; ``close`` closes ``out`` unless it is the debugger's own stream."""

    def __init__(self, target: Target, views: Views, out: TextIO, *, owns_out: bool) -> None:
        self.target = target
        self.views = views
        self.regs = Registers(target.state)
        self.out = out
        self.owns_out = owns_out
        self.decoded: dict[tuple[int, bytes], Insn] = {}
        self.pending: tuple[int, str, dict[str, int], list[tuple[int, bytes]]] | None = None

    def before(self) -> None:
        """Called before each instruction: finish the previous line, remember the state now."""
        self.flush()
        rip = self.target.state.rip
        stores = []
        try:
            code = self.views.fetch(rip, MAX_INSN_LEN)
            insn = self.decoded.get((rip, code))
            if insn is None:
                insn = self.decoded[rip, code] = self.views.insn_at(rip)
            text = insn.text
            for address, size in self.views.stored(insn):
                try:
                    stores.append((address, self.target.read_memory(address, size)))
                except GuestFault:
                    continue
        except GuestFault:
            text = "(cannot fetch)"
        self.pending = (rip, text, self.regs.snapshot(), stores)

    def flush(self) -> None:
        """Write the line of the instruction that last ran, if not written yet."""
        if self.pending is None:
            return
        rip, text, before, stores = self.pending
        self.pending = None
        effects = changes(before, self.regs.snapshot(), arrow=False)
        if self.target.state.rip == rip and self.target.pending_signal is not None:
            effects.append("(faulted)")
        for address, old in stores:
            new = self.target.read_memory(address, len(old))
            if new != old:
                effects.append(f"[{address:#x}]={int.from_bytes(new, 'little'):#x}")
        self.out.write(f"{rip:#x}: {text}" + (f"    {' '.join(effects)}" if effects else "") + "\n")

    def close(self) -> None:
        self.flush()
        if self.owns_out:
            self.out.close()
