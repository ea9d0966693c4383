"""Driving the REPL in-process: commands in through a StringIO, the printed text out."""

from __future__ import annotations

import io
from dataclasses import dataclass

from emu.debug.repl import Debugger
from emu.debug.symbols import elf_symbols
from emu.debug.target import ProcessBackend, Target
from emu.user.process import Process


@dataclass
class Session:
    debugger: Debugger
    output: str

    @property
    def rip(self) -> int:
        return self.debugger.state.rip


def run_session(program: str, commands: str, *args: str) -> Session:
    """Load ``program`` deterministically, run ``commands`` (one per line) in the REPL until their end."""
    process = Process(program, [program, *args], {}, deterministic=True)
    symbols = elf_symbols(program, process.image.data, process.image.bias)
    out = io.StringIO()
    debugger = Debugger(Target(ProcessBackend(process)), symbols, stdin=io.StringIO(commands), stdout=out,
                        deterministic=True)
    debugger.start(program)
    debugger.cmdloop()
    assert "internal error" not in out.getvalue(), out.getvalue()
    return Session(debugger, out.getvalue())


def outputs(session: Session) -> list[str]:
    """The output of each command: the text between prompts."""
    return session.output.split("(emu) ")[1:]
