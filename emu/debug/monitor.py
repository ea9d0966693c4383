"""The REPL's machine commands, QEMU-monitor style: ``xp``, ``pagewalk``, ``serial`` and ``info tlb``,
``info mem``, ``info pic``, ``info devices``, ``info clock``.

They are a mixin of :class:`emu.debug.repl.Debugger` and need a full-system
target (``emu debug --boot``, :mod:`emu.debug.machine_target`); on a user-mode
process each says so in one line, except ``info clock``, which shows the
process's instruction count.  The text comes from :mod:`emu.debug.machine_views`
and the devices' own ``info()``.

``serial TEXT`` is the guest's keyboard while the terminal belongs to the
REPL: TEXT goes into the UART's receive FIFO as if typed on the serial line
(``\\n`` and the other C escapes are understood), and the guest reads it when
it runs again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cpu.memory import FETCH, READ, WRITE
from cpu.mmu import Mmu
from emu.debug.machine_views import clock_lines, device_lines, mem_lines, tlb_lines
from emu.debug.symbols import SymbolTable
from emu.debug.views import DebugError, Views

if TYPE_CHECKING:
    from emu.machine.pc import Machine

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "e": b"\x1b", "a": b"\a", "b": b"\b", "0": b"\0", "\\": b"\\",
            '"': b'"', "'": b"'"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.S)
_ACCESSES = {"read": READ, "write": WRITE, "fetch": FETCH}

MACHINE_TOPICS = {"tlb": "the MMU's cached translations (full system)",
                  "mem": "the page tables: mapped virtual ranges and their rights (full system)",
                  "pic": "the 8259 PICs: IRR, ISR, IMR and vector base (full system)",
                  "devices": "the I/O port and MMIO maps, with each device's state (full system)",
                  "pci": "the PCI functions: IDs, class, IRQ and pin, BARs as the firmware placed them "
                         "(the pc machine)"}


def unescape(text: str) -> bytes:
    """C escapes (``\\n``, ``\\t``, ``\\e``, ``\\x03``...) in ``text`` as bytes; UTF-8 for the rest."""
    out, pos = bytearray(), 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode()
        code = m[1]
        out += bytes([int(code[1:], 16)]) if code[0] == "x" and len(code) == 3 else _ESCAPES.get(code, code.encode())
        pos = m.end()
    return bytes(out + text[pos:].encode())


class MachineCommands:
    """Commands that look at (or type into) a full-system machine.  The debugger that mixes them in provides
    ``target``, ``state``, ``deterministic``, ``phys_views``, ``say``, ``_address`` and ``_examine``."""

    def _machine(self, what: str) -> Machine:
        machine = getattr(self.target.backend, "machine", None)
        if machine is None:
            raise DebugError(f"{what} needs a full-system machine (emu debug --boot); "
                               "a user-mode process has no physical memory, page tables or devices to show")
        return machine

    def _lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.say(line)

    def do_xp(self, arg: str) -> None:
        """xp/NFU PADDR: examine physical memory (RAM, or a device's MMIO registers) as x does virtual memory.

        The same formats and units as x; PADDR is an expression.  Full system
        only (emu debug --boot).  Example: xp/4xg 0x7000 (the boot_params the
        loader wrote), xp/2i 0x100200.
        """
        machine = self._machine("xp")
        if self.phys_views is None:
            self.phys_views = Views(machine.phys.read, SymbolTable([]), self.state)
        self._examine("xp", arg, self.phys_views)

    def do_pagewalk(self, arg: str) -> None:
        """pagewalk VADDR [read|write|fetch]: walk the page tables from CR3 for VADDR, as the MMU does.

        Shows each level's entry (PML4E, PDPTE, PDE, PTE): its physical
        address, value and flags, then the physical address reached and the
        page size, or the #PF the access would raise and why.  The access
        defaults to read, at the current CPL.  No accessed or dirty flag is
        set and the TLB is left alone.  Full system only.
        """
        machine = self._machine("pagewalk")
        words = arg.split()
        access = READ
        if words and words[-1] in _ACCESSES:
            access = _ACCESSES[words.pop()]
        address = self._address(" ".join(words), "virtual address")
        mmu: Mmu = machine.mmu
        self.say(mmu.walk(address, access, self.state.cpl, dry=True).describe())

    def do_serial(self, arg: str) -> None:
        r"""serial TEXT: type TEXT into the guest's serial console (the UART's receive FIFO).

        C escapes work: serial ls /\n types `ls /` and Enter; \x03 is Ctrl-C,
        \t a tab.  Surrounding double quotes are removed, so trailing blanks can
        be typed: serial "echo hi \n".  The guest reads the characters when it
        runs again (continue).  Full system only (emu debug --boot, where the
        terminal belongs to the debugger).
        """
        machine = self._machine("serial")
        text = arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == '"' else arg
        data = unescape(text)
        if not data:
            raise DebugError('Argument required (the text to type, e.g. serial "ls /\\n").')
        machine.uart.feed(data)
        self.say(f"Typed {len(data)} byte{'s' if len(data) != 1 else ''} into the UART.")

    def _info_tlb(self, arg: str) -> None:
        self._lines(tlb_lines(self._machine("info tlb")))

    def _info_mem(self, arg: str) -> None:
        self._lines(mem_lines(self._machine("info mem")))

    def _info_pic(self, arg: str) -> None:
        self._lines(self._machine("info pic").pic.info().splitlines())

    def _info_devices(self, arg: str) -> None:
        self._lines(device_lines(self._machine("info devices")))

    def _info_pci(self, arg: str) -> None:
        pci = self._machine("info pci").pci
        if pci is None:
            raise DebugError("This machine has no PCI bus (boot with --machine pc).")
        self._lines(pci.info().splitlines())

    def _info_clock(self, arg: str) -> None:
        machine = getattr(self.target.backend, "machine", None)
        if machine is not None:
            self._lines(clock_lines(machine))
            return
        count = self.state.icount
        self.say(f"Instructions retired: {count}")
        if self.deterministic:
            self.say(f"Virtual time: {count} ns (deterministic: 1 instruction = 1 ns)")
        else:
            self.say("Virtual time: not used; the program reads host clocks (start with --deterministic "
                     "for 1 ns per instruction)")
