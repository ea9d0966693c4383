"""One emulated Linux process: load a static x86-64 program, run it, return its exit status.

The run loop hands the CPU to the interpreter until the guest needs the host:
a SYSCALL goes to the kernel (``emu.user.syscalls``); a CPU exception ends the
process with the signal Linux would send for it (arch/x86/kernel/traps.c, as
signal(7) lists them: #PF and #GP are SIGSEGV, #UD SIGILL, #DE SIGFPE, #BP
SIGTRAP), and the exit status is then 128 + the signal, as a shell reports it.

``deterministic=True`` makes a run reproducible: the clocks count one
nanosecond per retired instruction from a fixed date, getrandom(2) and RDRAND
draw from ``seed``, and the host name is ``emu``.  AT_RANDOM always comes from ``seed``.

Not modelled: signal handlers, threads, fork and exec, core dumps.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from cpu.cpuid import CpuLevel, level
from cpu.exceptions import GuestFault, Vector
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from emu.user.elf import ElfError, read_elf
from emu.user.fdtable import FdTable
from emu.user.linux import ProcessExit, Signal, signal_name
from emu.user.loader import load_program
from emu.user.syscalls import Kernel

if TYPE_CHECKING:
    from cpu.interp import Exit, Interpreter

DETERMINISTIC_EPOCH_NS = 1_704_067_200 * 1_000_000_000
"""2024-01-01 00:00:00 UTC: the wall clock at the start of a deterministic run."""

FAULT_SIGNALS = {
    Vector.DE: Signal.SIGFPE, Vector.DB: Signal.SIGTRAP, Vector.BP: Signal.SIGTRAP, Vector.UD: Signal.SIGILL,
    Vector.NP: Signal.SIGBUS, Vector.SS: Signal.SIGBUS, Vector.AC: Signal.SIGBUS, Vector.MC: Signal.SIGBUS,
    Vector.MF: Signal.SIGFPE, Vector.XM: Signal.SIGFPE,
}
"""The signal for each exception that is not SIGSEGV (#GP, #PF, #OF, #BR, #TS, ...)."""


class Process:
    """A loaded program with its address space, registers, descriptors and kernel."""

    def __init__(self, path: str, argv: Sequence[str], env: Mapping[str, str], *, seed: int = 0,
                 deterministic: bool = False, stdin: int = 0, stdout: int = 1, stderr: int = 2,
                 cpu: CpuLevel | None = None, trace: TextIO | None = None, log: TextIO | None = None,
                 code_cache: bool = True, jit: str = "off") -> None:
        """Load ``path`` (raises :class:`ElfError` when it cannot run); ``argv[0]`` is the program's name
        for itself.  ``stdin``/``stdout``/``stderr`` are the host descriptors behind guest fds 0-2.
        ``code_cache``: reuse blocks translated by earlier runs (``cpu.codecache``; also off with
        ``EMU_CODE_CACHE=0``).  ``jit``: "off", "on" or "eager" (``cpu.jit``).
        ``cpu``: the CPU level (``cpu.cpuid``, default ``max``).
        """
        self.cpu = cpu if cpu is not None else level()
        self.entropy_seed = seed if deterministic else None
        """RDRAND's seed: ``seed`` in a reproducible run, else None (the host's random source)."""
        self.code_cache = code_cache
        self.jit = jit
        self.image = read_elf(path)
        self.memory = AddressSpace()
        self.state = CpuState()
        self.program = load_program(self.memory, self.state, self.image, argv,
                                    [f"{name}={value}" for name, value in env.items()], seed=seed, cpu=self.cpu)
        self.interp: Interpreter | None = None
        self.kernel = Kernel(
            self.state, self.memory, exe=path, fds=FdTable(stdin, stdout, stderr),
            clock=self._virtual_ns if deterministic else None,
            epoch_ns=DETERMINISTIC_EPOCH_NS if deterministic else None,
            random_seed=seed if deterministic else None, hostname="emu" if deterministic else None,
            log=log, trace=trace)

    def _virtual_ns(self) -> int:
        """Deterministic time: one nanosecond per instruction retired (counted in the CPU state by every backend)."""
        return self.state.icount

    def run(self, max_instructions: int | None = None) -> int:
        """Run to the end; return the exit status (128 + signal when killed).

        ``max_instructions`` bounds the run: reaching it ends the program as
        SIGXCPU would (a CPU time limit).  An instruction that needs a machine
        (HLT, port I/O) faults as it would at CPL 3.
        """
        # The CPU is imported only here, so that checking and loading a program never needs it.
        from cpu.interp import ExitKind, Interpreter

        cache = None
        if self.code_cache:
            from cpu.codecache import CodeCache

            cache = CodeCache.open()
        self.interp = interp = Interpreter(self.state, self.memory, code_cache=cache, cpu=self.cpu,
                                           entropy_seed=self.entropy_seed)
        if self.jit != "off":
            from cpu.jit import Jit  # only here, so that llvmlite is loaded only when the JIT is on

            interp.jit = Jit(interp, self.jit)
        try:
            while True:
                budget = None if max_instructions is None else max_instructions - interp.icount
                if budget is not None and budget <= 0:
                    return self._killed(Signal.SIGXCPU, f"after {max_instructions} instructions (the limit)")
                stop = interp.run(budget)
                if stop.kind == ExitKind.SYSCALL:
                    try:
                        self.kernel.handle()
                    except ProcessExit as e:
                        if e.signal is None:
                            return e.exit_code
                        return self._killed(e.signal, "")
                elif stop.kind in (ExitKind.FAULT, ExitKind.HALT, ExitKind.EVENT):
                    return self._killed(*self.signal_of(stop))
        finally:
            self.kernel.close()
            if cache is not None:
                cache.flush()

    def signal_of(self, stop: Exit) -> tuple[int, str]:
        """The signal a CPU exit sends the process, and a one-line reason naming the fault and RIP."""
        from cpu.interp import ExitKind

        if stop.kind == ExitKind.HALT:
            fault = GuestFault(Vector.GP, 0, detail="hlt is privileged")
        elif stop.kind == ExitKind.EVENT:
            fault = GuestFault(Vector.UD, detail=f"{stop.event} is not available in user mode")
        else:
            fault = stop.fault
        text = fault.describe()
        if stop.message and stop.message not in text:
            text += f" ({stop.message})"
        rip = f"{self.state.rip:#x}"
        if not text.endswith(f"at {rip}"):
            text += f" at rip {rip}"
        return FAULT_SIGNALS.get(fault.vector, Signal.SIGSEGV), text

    def _killed(self, sig: int, why: str) -> int:
        if sig != Signal.SIGPIPE:          # shells stay quiet about a broken pipe too
            self.kernel.say(f"program terminated by {signal_name(sig)}" + (f": {why}" if why else ""))
        return 128 + sig


def run_program(argv: Sequence[str], env: Mapping[str, str] | None = None, *, seed: int = 0,
                deterministic: bool = False, trace: TextIO | None = None,
                max_instructions: int | None = None, stats: bool = False, code_cache: bool = True,
                jit: str = "off", cpu: CpuLevel | None = None) -> int:
    """Run ``argv[0]`` with ``argv`` (the CLI's ``emu run``); return its exit status, or 2 when it cannot run.

    ``env`` defaults to the emulator's environment; ``stats`` prints the
    instructions retired, the time taken and the rate on stderr at exit, and
    how many blocks were translated or came from the code cache.
    """
    if not argv:
        print("emu: error: no program given", file=sys.stderr)
        return 2
    try:
        process = Process(argv[0], argv, os.environ if env is None else env, seed=seed,
                          deterministic=deterministic, trace=trace, code_cache=code_cache, jit=jit, cpu=cpu)
    except ElfError as e:
        print(f"emu: error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    status = process.run(max_instructions)
    if stats:
        seconds = time.perf_counter() - start
        count = process.state.icount
        print(f"emu: {count} instructions retired in {seconds:.2f} s ({count / seconds / 1e6:.2f} MIPS)",
              file=sys.stderr)
        if process.interp is not None:
            print(f"emu: {process.interp.translation_summary()}", file=sys.stderr)
            if process.interp.jit is not None:
                print(f"emu: {process.interp.jit.summary()}", file=sys.stderr)
    return status

