"""``emu debug``: a REPL with gdb's words over one stoppable guest (:class:`emu.debug.target.Target`).

The commands and their output follow the gdb manual ("Continuing and
Stepping", "Breakpoints", "Watchpoints", "Examining Memory", "Registers",
"Backtraces", "Command Files"); on a full-system machine the QEMU monitor's
views join them (``xp``, ``info tlb``, ``info mem``, ``info pic``, ``pagewalk``:
``emu.debug.monitor``).  It is a :class:`cmd.Cmd`: stdin and stdout are injected,
so tests drive it with strings, and a tty gets line editing and history from
``readline``.  A command may be shortened to any unique prefix (``disas``,
``cont``); an empty line repeats the last stepping or ``x`` command.

Every stop prints why (``Stop.describe()``), the instruction at RIP, and the
registers that changed since the previous stop.  ``trace on`` prints every
executed instruction with its effects, one line each, so two runs can be
compared with ``diff``.

Error handling is gdb's: a command that fails prints one line and the session
goes on; in a script (``-x FILE``, ``source FILE``) the first failing command
ends the script, and ``--batch`` then exits with status 1.

Not modelled: source lines and DWARF types, restarting the program, signals
passed to handlers, ``display``, ``step``/``next`` by source line.
"""

from __future__ import annotations

import cmd
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cpu.backends.symbolic import explain
from cpu.exceptions import GuestFault, PFError, Vector
from emu.debug.breakpoints import BreakpointCommands
from emu.debug.expr import MASK64, ExprError, Node, Value, evaluate, parse
from emu.debug.monitor import MACHINE_TOPICS, MachineCommands
from emu.debug.symbols import SymbolTable
from emu.debug.target import Stop, StopKind, Target
from emu.debug.trace import Tracer
from emu.debug.views import (
    SYSTEM_REGISTERS,
    USER_REGISTERS,
    DebugError,
    Registers,
    Views,
    changes,
    eflags_text,
    format_value,
    parse_x_spec,
)

ALIASES = {"si": "stepi", "ni": "nexti", "c": "continue", "cont": "continue", "fg": "continue", "b": "break",
           "br": "break", "d": "delete", "i": "info", "p": "print", "inspect": "print", "q": "quit",
           "exit": "quit", "bt": "backtrace", "where": "backtrace", "disas": "disassemble", "u": "until",
           "advance": "until", "fin": "finish", "h": "help"}
"""gdb's abbreviations; any other unique prefix of a command works too."""

INFO_TOPICS = {"breakpoints": "breakpoints and watchpoints", "watchpoints": "watchpoints only",
               "registers": "registers (all, or those named)", "symbol": "the symbol at an address",
               "clock": "instructions retired and virtual time (full system: the timers too)",
               "jit": "the native tier: its mode, blocks per tier, compile time", **MACHINE_TOPICS}
_INFO_ALIASES = {"b": "breakpoints", "r": "registers", "s": "symbol"}

REPEATABLE = ("stepi", "nexti", "continue", "run", "finish")
"""Commands an empty line repeats (``x`` repeats too, continuing from where it stopped)."""

MAX_SCRIPT_DEPTH = 16
_CHANGES_WIDTH = 100


class Debugger(BreakpointCommands, MachineCommands, cmd.Cmd):
    """The REPL.  Implements :class:`emu.debug.expr.Environment` for the expressions its commands evaluate."""

    prompt = "(emu) "

    def __init__(self, target: Target, symbols: SymbolTable, *, stdin: TextIO | None = None,
                 stdout: TextIO | None = None, interactive: bool = False, deterministic: bool = False) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        self.use_rawinput = interactive
        self.target = target
        self.state = target.state
        self.symbols = symbols
        self.deterministic = deterministic
        self.regs = Registers(target.state, system=target.system)
        self.views = Views(target.read_memory, symbols, target.state)
        self.phys_views: Views | None = None
        """``xp``'s views of physical memory (full system), made on first use."""
        self.history: list[Value] = []
        self.conditions: dict[str, Node] = {}
        target.condition = self._condition
        self.snapshot = self.regs.snapshot()
        self.failed = False
        self.repeat: str | None = None
        self.x_format, self.x_unit = "x", "w"
        self.x_next: dict[str, int] = {}
        """Where ``x`` (and ``xp``) go on without an address: after what they showed last."""
        self.depth = 0
        self.tracer: Tracer | None = None

    # -- the loop ---------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def start(self, program: str) -> None:
        """Announce the loaded program and where it stands."""
        self.say(f"{program}: stopped at the entry point {self.state.rip:#x}, before the first instruction. "
                 f'Type "help" for commands.')
        self._where()

    def cmdloop(self, intro: str | None = None) -> None:
        while True:
            try:
                super().cmdloop(intro)
                return
            except KeyboardInterrupt:          # Ctrl-C at the prompt: a fresh prompt, as gdb's "Quit"
                self.say("Quit")
                intro = None

    def emptyline(self) -> bool:
        return self.onecmd(self.repeat) if self.repeat else False

    def onecmd(self, line: str) -> bool:
        line = line.strip()
        if line == "EOF":
            return self.do_quit("")
        if not line:
            return self.emptyline()
        if line.startswith("#"):
            return False
        self.failed = False
        try:
            m = re.match(r"([A-Za-z][\w-]*|\S)(.*)", line)
            command = self._resolve(m[1], self._commands(), ALIASES, "command")
            self.repeat = line if command in REPEATABLE else None
            return bool(getattr(self, f"do_{command}")(m[2].strip()))
        except (DebugError, ExprError) as e:
            self._error(str(e))
        except GuestFault as fault:
            self._error(memory_error(fault))
        except OSError as e:
            self._error(f"{e.filename}: {e.strerror}" if e.filename else str(e))
        except Exception as e:  # noqa: BLE001 - the session survives a bug in one command
            self._error(f"internal error in emu (a bug; please report it): {type(e).__name__}: {e}")
        return False

    def _error(self, text: str) -> None:
        self.failed = True
        self.say(text)

    def _commands(self) -> list[str]:
        return [name[3:] for name in self.get_names() if name.startswith("do_") and name != "do_EOF"]

    @staticmethod
    def _resolve(word: str, names: list[str], aliases: dict[str, str], what: str) -> str:
        if word in aliases:
            return aliases[word]
        if word in names:
            return word
        matches = sorted(n for n in names if n.startswith(word))
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise DebugError(f'Ambiguous {what} "{word}": {", ".join(matches)}.')
        if what == "command":
            raise DebugError(f'Undefined command: "{word}".  Try "help".')
        raise DebugError(f'Undefined {what}: "{word}".  Try "help {what.split()[0]}".')

    def run_script(self, path: str) -> bool:
        """Run a command file; True when it quit.  The first failing command ends it (``self.failed``)."""
        if self.depth >= MAX_SCRIPT_DEPTH:
            raise DebugError(f"source: scripts nested more than {MAX_SCRIPT_DEPTH} deep")
        lines = Path(path).read_text().splitlines()
        self.depth += 1
        try:
            for line in lines:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if self.onecmd(line):
                    return True
                if self.failed:
                    return False
        finally:
            self.depth -= 1
        return False

    # -- Environment, for expressions ----------------------------------------------------
    def register(self, name: str) -> Value | None:
        if name == "" or name.isdigit():
            index = len(self.history) if name == "" else int(name)
            if not 1 <= index <= len(self.history):
                raise ExprError("History is empty." if not self.history else f"History has not yet reached ${index}.")
            return self.history[index - 1]
        return self.regs.read(name)

    def set_register(self, name: str, value: int) -> None:
        if name == "" or name.isdigit():
            raise ExprError(f"${name} is a value in the history, not a register")
        self.regs.write(name, value)

    def symbol(self, name: str) -> int | None:
        s = self.symbols.lookup(name)
        return None if s is None else s.address

    def read(self, address: int, length: int) -> bytes:
        return self.target.read_memory(address, length)

    def write(self, address: int, data: bytes) -> None:
        self.target.write_memory(address, data)

    def _value(self, text: str) -> Value:
        return evaluate(text, self)

    def _address(self, text: str, what: str = "address") -> int:
        if not text:
            raise DebugError(f"Argument required ({what}).")
        return self._value(text).value & MASK64

    def _count(self, text: str, default: int = 1) -> int:
        n = self._value(text).value if text else default
        if n < 0:
            raise DebugError(f"a count cannot be negative ({n})")
        return n

    def _address_and_count(self, arg: str, default_count: int) -> tuple[int, int]:
        """``ADDR [N]``: the whole text as one expression, else its last word as the count."""
        try:
            tree = parse(arg)
        except ExprError:
            m = re.fullmatch(r"(.*\S)\s+(\S+)", arg)
            if m is None:
                raise
            return self._address(m[1]), self._count(m[2])
        return evaluate(tree, self).value & MASK64, default_count

    def _condition(self, text: str) -> int:
        """Target's callback for a breakpoint condition; an error in it stops the program, as in gdb."""
        try:
            tree = self.conditions.get(text)
            if tree is None:
                tree = self.conditions[text] = parse(text)
            return int(bool(evaluate(tree, self)))
        except (ExprError, GuestFault) as e:
            self.say(f"Error in testing condition {text!r}: {memory_error(e) if isinstance(e, GuestFault) else e}")
            return 1

    # -- running and stopping ----------------------------------------------------------
    def _resume(self, action: Callable[[], Stop]) -> Stop:
        """Run the guest (Ctrl-C interrupts it), then report the stop."""
        if self.target.exited is not None:
            raise DebugError("The program is not being run.")
        self.stdout.flush()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: self.target.interrupt()) if main else None
        try:
            stop = action()
        finally:
            if main:
                signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
            if self.tracer is not None:
                self.tracer.flush()
        self._report(stop)
        return stop

    def _report(self, stop: Stop) -> None:
        if stop.kind is StopKind.BREAKPOINT and stop.breakpoint.temporary:
            self.say(f"Temporary breakpoint {stop.breakpoint.number}, {stop.rip:#x}")
        else:
            self.say(stop.describe())
        if stop.kind is not StopKind.EXITED:
            self._where()

    def _where(self) -> None:
        try:
            self.say(self.views.insn_line(self.state.rip)[0])
        except GuestFault as fault:
            self.say(f"=> {self.state.rip:#x}:\t{memory_error(fault)}")
        after = self.regs.snapshot()
        line = ""
        for item in changes(self.snapshot, after):
            if line and len(line) + len(item) > _CHANGES_WIDTH:
                self.say(line)
                line = ""
            line = f"{line}  {item}" if line else item
        if line:
            self.say(line)
        self.snapshot = after

    # -- stepping and continuing -----------------------------------------------------------
    def do_stepi(self, arg: str) -> None:
        """stepi [N] (si): execute N instructions (default 1), into calls; a SYSCALL counts as one."""
        n = self._count(arg)
        self._resume(lambda: self.target.step(n))

    def do_nexti(self, arg: str) -> None:
        """nexti [N] (ni): like stepi, but a CALL runs until it returns (or another stop) and counts as one."""
        n = self._count(arg)

        def next_n() -> Stop:
            stop = Stop(StopKind.STEP, self.state.rip)
            for _ in range(n):
                try:
                    insn = self.views.insn_at(self.state.rip)
                except GuestFault:
                    insn = None
                if insn is not None and insn.mnemonic == "call":
                    rsp = self.state.rsp
                    stop = self.target.run_until(insn.next, lambda rsp=rsp: self.state.rsp >= rsp)
                else:
                    stop = self.target.step(1)
                if stop.kind is not StopKind.STEP:
                    break
            return stop
        self._resume(next_n)

    def do_continue(self, arg: str) -> None:
        """continue (c): run until a breakpoint, watchpoint, fault or exit; Ctrl-C interrupts."""
        if arg:
            raise DebugError("continue takes no argument here (to ignore a breakpoint, disable it)")
        self._resume(self.target.cont)

    def do_run(self, arg: str) -> None:
        """run [N]: run N more instructions, stopping early at breakpoints; without N, continue.

        The program is loaded and stopped at its entry point when the session
        starts; emu cannot restart it (start a new session instead).
        """
        if not arg:
            self._resume(self.target.cont)
            return
        n = self._count(arg)
        self._resume(lambda: self.target.cont(limit=n))

    def do_until(self, arg: str) -> None:
        """until ADDR (u, advance): continue until RIP reaches ADDR (or another stop)."""
        address = self._address(arg)
        self._resume(lambda: self.target.run_until(address))

    def do_finish(self, arg: str) -> None:
        """finish: run until the current function returns to its caller; shows the caller's next instruction.

        The return address is found by frame pointers (see backtrace); at the
        function's first instruction it is the word at [rsp].
        """
        if self.target.exited is not None:
            raise DebugError("The program is not being run.")
        caller = self.views.caller_frame()
        if caller is None:
            raise DebugError('"finish" not meaningful in the outermost frame (no symbol at RIP).')
        ret = caller[0]
        if not self.views.is_code(ret):
            raise DebugError(f'"finish": the return address found, {ret:#x}, is not code '
                             "(the outermost frame, or code without frame pointers)")
        self.say(f"Run till exit from {self.views.frame_line(0, self.state.rip)}")
        rsp = self.state.rsp
        self._resume(lambda: self.target.run_until(ret, lambda: self.state.rsp > rsp))

    def do_kill(self, arg: str) -> None:
        """kill: end the program now, as SIGKILL would (it cannot be restarted)."""
        if self.target.exited is not None:
            raise DebugError("The program is not being run.")
        self.say(self.target.kill().describe())

    # -- looking at the machine -------------------------------------------------------------------
    def do_x(self, arg: str) -> None:
        """x/NFU ADDR: examine memory: N units (default 1) in format F of size U, from ADDR.

        Formats: x hex, d signed, u unsigned, o octal, t binary, c char, a address,
        s C string, i instructions.  Units: b byte, h 2, w 4, g 8 bytes.  F and U
        default to the last ones used (first x and w); without ADDR, x goes on
        where the last x ended, and an empty line does that too.
        Examples: x/4xg $sp   x/2dw counter   x/s greeting   x/3i $pc
        """
        self._examine("x", arg, self.views)

    def _examine(self, command: str, arg: str, views: Views) -> None:
        """``x`` or ``xp`` (``views`` reads virtual or physical memory): they share formats and units."""
        spec, rest = "", arg
        if arg.startswith("/"):
            spec, _, rest = arg[1:].partition(" ")
        count, fmt, unit = parse_x_spec(spec)
        fmt = fmt or self.x_format
        unit = unit or ("b" if fmt == "c" else "g" if fmt == "a" else self.x_unit)
        count = 1 if count is None else count
        if rest.strip():
            address = self._address(rest.strip())
        elif command in self.x_next:
            address = self.x_next[command]
        else:
            raise DebugError("Argument required (starting display address).")
        self.x_format = fmt
        if fmt not in "si":
            self.x_unit = unit
        self.repeat = f"{command}/{count}{fmt}{'' if fmt in 'si' else unit}"
        lines = views.examine(address, count, fmt, unit)
        while True:
            try:
                self.say(next(lines))
            except StopIteration as done:
                self.x_next[command] = done.value
                return

    def do_print(self, arg: str) -> None:
        """print[/F] EXPR (p): evaluate EXPR and show it as $N = value; F is one of x d u o t c a.

        Registers: $rax rax $eax $al $ah $r8d $rip $pc $sp $fp $eflags $fs_base ...
        Symbols stand for their addresses; *ADDR loads 8 bytes, *(int *)ADDR 4.
        Operators as in C: + - * / % & | ^ << >> ~ ! == != < <= > >= && || and =.
        $1, $2 ... are earlier results, $ the last one.
        """
        fmt = None
        if arg.startswith("/"):
            spec, _, arg = arg[1:].partition(" ")
            count, fmt, unit = parse_x_spec(spec)
            if count is not None or unit is not None or fmt in ("s", "i"):
                raise DebugError(f"Format letters for print are x d u o t c a, not /{spec}")
        tree = parse(arg.strip() or "$")
        v = evaluate(tree, self)
        self.history.append(v)
        if fmt is None and tree.op in ("reg", "name") and tree.name in ("eflags", "rflags", "ps"):
            text = eflags_text(v.unsigned)
        else:
            text = format_value(v, fmt, self.views.symbolize)
        self.say(f"${len(self.history)} = {text}")

    def do_set(self, arg: str) -> None:
        """set EXPR = VALUE: write a register or memory: set $rax = 5, set *ADDR = 1 (8 bytes).

        set *(int *)ADDR = 1 and set *(char *)ADDR = 'A' write 4 and 1 bytes.
        $eax, $ax, $al, $ah write only their bits (the rest of rax is kept);
        set $eflags = 0x246 sets the flags.  `set var EXPR` is the same.
        """
        arg = re.sub(r"^var(iable)?\s+", "", arg)
        tree = parse(arg) if arg else None
        if tree is None or tree.op != "assign":
            raise DebugError("set needs an assignment, e.g. set $rax = 5 or set *(int *)0x4c6f10 = 1")
        evaluate(tree, self)

    def do_info(self, arg: str) -> None:
        """info TOPIC (i): registers [REG...] (i r), breakpoints (i b), watchpoints, symbol ADDR, clock, jit;
        on a full-system machine also tlb, mem, pic, devices, pci.  `info` alone lists the topics there are."""
        word, _, rest = arg.partition(" ")
        if not word:
            for name, what in INFO_TOPICS.items():
                if self.target.system or name not in MACHINE_TOPICS:
                    self.say(f"info {name:<12} -- {what}")
            return
        topic = self._resolve(word, list(INFO_TOPICS), _INFO_ALIASES, "info command")
        getattr(self, f"_info_{topic}")(rest.strip())

    def _info_registers(self, arg: str) -> None:
        everything = (*USER_REGISTERS, *SYSTEM_REGISTERS) if self.target.system else USER_REGISTERS
        for name in [n.removeprefix("$") for n in arg.split()] or everything:
            if self.target.system and name in ("gdtr", "idtr", "tr"):
                self.say(self.views.table_register_line(name))
                continue
            v = self.regs.read(name)
            if v is None:
                raise DebugError(f"Invalid register `{name}'")
            self.say(self.views.register_line(name, v))

    def _info_breakpoints(self, arg: str, watch_only: bool = False) -> None:
        points = [*([] if watch_only else self.target.breakpoints.values()), *self.target.watchpoints.values()]
        if not points:
            self.say("No watchpoints." if watch_only else "No breakpoints or watchpoints.")
        for line in self.views.breakpoint_table(points):
            self.say(line)

    def _info_watchpoints(self, arg: str) -> None:
        self._info_breakpoints(arg, watch_only=True)

    def _info_symbol(self, arg: str) -> None:
        address = self._address(arg)
        s = self.symbols.at(address)
        if s is None:
            self.say(f"No symbol matches {arg}.")
            return
        off = address - s.address
        where = f" in section {s.section}" if s.section else ""
        self.say(f"{s.name}{f' + {off}' if off else ''}{where}")

    def do_disassemble(self, arg: str) -> None:
        """disassemble [ADDR [N]] (disas): N instructions (default 10) from ADDR (default RIP); => marks RIP."""
        address, count = self._address_and_count(arg, 10) if arg else (self.state.rip, 10)
        for line in self.views.disassemble(address, count):
            self.say(line)

    def do_explain(self, arg: str) -> None:
        """explain [--ir] [ADDR]: the micro-ops of the instruction at ADDR (default RIP), as the interpreter runs
        them; with --ir, the LLVM IR the JIT makes of the whole block that starts at ADDR."""
        ir = arg.split()[:1] == ["--ir"]
        arg = arg.removeprefix("--ir").strip()
        address = self._address(arg) if arg else self.state.rip
        if not ir:
            self.say(explain(self.views.insn_at(address)))
            return
        from cpu.backends.llvm import block_ir  # here: llvmlite's side of emu is loaded only when asked for

        insns = []
        for _ in range(self.target.interp.max_block):
            insn = self.views.insn_at(address)
            insns.append(insn)
            if insn.mnemonic.startswith(("j", "call", "ret", "syscall", "hlt", "int", "iret", "loop")):
                break
            address = insn.next
        self.say(block_ir(insns))

    def _info_jit(self, arg: str) -> None:
        interp = self.target.interp
        jit = interp.jit
        if jit is None:
            self.say(f"JIT off: {len(interp.blocks)} blocks in the Python tier (emu boot/run --jit=on to compile)")
            return
        native = sum(1 for b in interp.blocks.values() if b.native is not None)
        self.say(f"JIT {jit.mode}: {native} of {len(interp.blocks)} blocks native, "
                 f"{len(interp.blocks) - native} in the Python tier")
        self.say(jit.summary())

    def do_backtrace(self, arg: str) -> None:
        """backtrace [N] (bt, where): the call stack by frame pointers: #0 the current function, #1 its caller...

        The walk ends at a zero rbp, an unreadable frame, an address outside
        every symbol, or 64 frames; code built without frame pointers
        (-fomit-frame-pointer, most of libc) breaks the chain.
        """
        limit = self._count(arg, 64) if arg else 64
        for number, pc in enumerate(self.views.frames(limit)):
            self.say(self.views.frame_line(number, pc))

    # -- tracing ------------------------------------------------------------------------------------
    def do_trace(self, arg: str) -> None:
        """trace on [FILE] | trace off: print each executed instruction and its effects (to FILE or here).

        One line per instruction: `0x401000: add rax, rbx    rax=0x5 rflags=0x202`,
        naming the registers it changed and the memory operands whose bytes
        changed ([0x4c6f10]=0x1).  Tracing runs one instruction at a time.
        Two traces of the same program with --deterministic can be compared with diff.
        """
        word, _, path = arg.partition(" ")
        path = path.strip()
        if word == "on":
            self._trace_close()
            out = open(path, "w") if path else self.stdout  # noqa: SIM115 - closed by trace off or quit
            self.tracer = Tracer(self.target, self.views, out, owns_out=bool(path))
            self.target.on_instruction = self.tracer.before
            self.say(f"Tracing to {path}." if path else "Tracing on.")
        elif word == "off" and not path:
            self._trace_close()
            self.say("Tracing off.")
        else:
            raise DebugError("Usage: trace on [FILE] | trace off")

    def _trace_close(self) -> None:
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
        self.target.on_instruction = None

    # -- session --------------------------------------------------------------------------------------
    def do_source(self, arg: str) -> bool:
        """source FILE: run the commands in FILE; the first command that fails ends it.

        `emu debug -x FILE` does the same at start; with --batch emu then exits:
        status 1 if a command failed, else 0 (as gdb -batch; the program's own
        exit status is shown by its stop, not returned).
        """
        if not arg:
            raise DebugError("source needs a file name")
        return self.run_script(arg)

    def do_quit(self, arg: str) -> bool:
        """quit (q): end the session (the program is killed if it is still running)."""
        self._trace_close()
        self.target.kill()
        return True

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: list the commands, or describe one."""
        if arg:
            command = self._resolve(arg.split()[0], self._commands(), ALIASES, "command")
            doc = getattr(self, f"do_{command}").__doc__
            names = [a for a, c in ALIASES.items() if c == command]
            self.say(_dedent(doc) + (f"\nAliases: {', '.join(names)}" if names else ""))
            return
        self.say("Commands (any unique prefix works; an empty line repeats si, ni, c, run, finish and x):")
        for name in self._commands():
            first = _dedent(getattr(self, f"do_{name}").__doc__).splitlines()[0]
            self.say(f"  {first}")
        self.say('Type "help COMMAND" for details.')


def _dedent(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return "\n".join([lines[0], *(line.strip() for line in lines[1:])]) if lines else ""


def memory_error(fault: GuestFault) -> str:
    """gdb's wording for a debugger access that faulted."""
    if fault.vector == Vector.PF and fault.address is not None:
        if fault.error_code is not None and fault.error_code & PFError.W and fault.error_code & PFError.P:
            return f"Cannot write memory at address {fault.address:#x} (the page is read-only)"
        return f"Cannot access memory at address {fault.address:#x}"
    return fault.describe()
