"""The REPL's breakpoint and watchpoint commands: ``break``, ``tbreak``, ``watch``, ``rwatch``, ``awatch``,
``delete``, ``disable``, ``enable`` (gdb manual, "Breakpoints" and "Watchpoints").

A mixin of :class:`emu.debug.repl.Debugger`: the points themselves belong to
the target (:mod:`emu.debug.target`), shared with the GDB stub; these commands
parse locations and conditions and name what they set.  On a full-system
machine a breakpoint may name a kernel address that is not mapped yet.
"""

from __future__ import annotations

import re

from cpu.exceptions import GuestFault
from emu.debug.expr import parse
from emu.debug.views import DebugError


class BreakpointCommands:
    """Setting, listing and removing the target's breakpoints and watchpoints.  The debugger that mixes them
    in provides ``target``, ``state``, ``views``, ``conditions``, ``say``, ``_address`` and
    ``_address_and_count``."""

    def do_break(self, arg: str, temporary: bool = False) -> None:
        """break [ADDR|SYMBOL] [if COND] (b): stop before the instruction at ADDR (default: RIP).

        ADDR is an expression; a symbol stands for its address and `*ADDR` is
        accepted as in gdb.  With `if COND` the program stops there only when
        COND is non-zero, e.g. `break add if $rdi == 3`.
        """
        m = re.fullmatch(r"(.*?)(?:^|\s+)if(?:\s+(.*))?", arg)
        location, condition = (m[1], (m[2] or "").strip()) if m else (arg, None)
        if condition == "":
            raise DebugError("Argument required (boolean expression).")
        if condition:
            self.conditions[condition] = parse(condition)
        location = location.strip().removeprefix("*").strip()
        address = self._address(location) if location else self.state.rip
        try:
            bp = self.target.add_breakpoint(address, temporary=temporary, condition=condition or None)
        except GuestFault:
            raise DebugError(f"Cannot insert breakpoint at {address:#x}: no memory is mapped there.") from None
        kind = "Temporary breakpoint" if temporary else "Breakpoint"
        self.say(f"{kind} {bp.number} at {address:#x}{self.views.symbolize(address, plus_zero=True)}")

    def do_tbreak(self, arg: str) -> None:
        """tbreak [ADDR|SYMBOL] [if COND]: a breakpoint deleted when first hit."""
        self.do_break(arg, temporary=True)

    def _watch(self, arg: str, kind: str, title: str) -> None:
        if not arg:
            raise DebugError("Argument required (address [length]).")
        address, length = self._address_and_count(arg, 8)
        try:
            wp = self.target.add_watchpoint(address, length, kind)
        except ValueError as e:
            raise DebugError(str(e)) from None
        except GuestFault:
            raise DebugError(f"Cannot watch {address:#x}: no memory is mapped there.") from None
        self.say(f"{title} {wp.number}: {address:#x}{self.views.symbolize(address)} ({length} bytes)")

    def do_watch(self, arg: str) -> None:
        """watch ADDR [LEN]: stop right after an instruction writes any of LEN bytes (default 8) at ADDR.

        A symbol stands for its address: `watch counter` watches the variable.
        The stop shows the old and new bytes and the instruction after the store.
        """
        self._watch(arg, "write", "Hardware watchpoint")

    def do_rwatch(self, arg: str) -> None:
        """rwatch ADDR [LEN]: stop right after an instruction reads memory at ADDR."""
        self._watch(arg, "read", "Hardware read watchpoint")

    def do_awatch(self, arg: str) -> None:
        """awatch ADDR [LEN]: stop right after an instruction reads or writes memory at ADDR."""
        self._watch(arg, "access", "Hardware access (read/write) watchpoint")

    def _numbers(self, arg: str) -> list[int]:
        numbers = []
        for word in arg.split():
            if not word.isdigit():
                raise DebugError(f'"{word}" is not a breakpoint number.')
            numbers.append(int(word))
        return numbers or sorted([*self.target.breakpoints, *self.target.watchpoints])

    def do_delete(self, arg: str) -> None:
        """delete [N...] (d): delete breakpoints or watchpoints N..., or all of them."""
        for n in self._numbers(arg):
            try:
                self.target.delete(n)
            except KeyError:
                raise DebugError(f"No breakpoint number {n}.") from None

    def do_disable(self, arg: str) -> None:
        """disable [N...]: keep breakpoints or watchpoints N... (or all) but do not stop at them."""
        self._enable(arg, False)

    def do_enable(self, arg: str) -> None:
        """enable [N...]: stop at breakpoints or watchpoints N... (or all) again."""
        self._enable(arg, True)

    def _enable(self, arg: str, enabled: bool) -> None:
        for n in self._numbers(arg):
            try:
                self.target.enable(n, enabled)
            except KeyError:
                raise DebugError(f"No breakpoint number {n}.") from None
