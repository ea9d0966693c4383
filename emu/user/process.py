"""One emulated Linux process: load an x86-64 program (and its dynamic linker), run it, return its exit status.

The run loop hands the CPU to the interpreter until the guest needs the host:
a SYSCALL goes to the kernel (``emu.user.syscalls``); a CPU exception becomes
the signal Linux would send for it (arch/x86/kernel/traps.c, as signal(7)
lists them: #PF and #GP are SIGSEGV, #UD SIGILL, #DE SIGFPE, #BP SIGTRAP),
which runs the guest's handler or ends the process (``emu.user.signals``);
the exit status is then 128 + the signal, as a shell reports it, and the
``emu run`` command dies of the same signal (as qemu-x86_64 does), so that a
parent sees WIFSIGNALED.  Signals that arrive from outside stop the
interpreter at the next block and are delivered there.

The process is the emulator's host process: fork(2) forks the emulator, and
execve(2) replaces it with a fresh ``emu run`` of the new program with the
same options (:meth:`Process.exec`, ``emu.user.forkexec``).

``deterministic=True`` makes a run reproducible: the clocks count one
nanosecond per retired instruction from a fixed date, getrandom(2) and RDRAND
draw from ``seed``, and the host name is ``emu``.  AT_RANDOM always comes from ``seed``.

Guest threads run one at a time between the process's system calls (``emu.user.threads``): the loop
switches when the running thread parks, yields, ends or has run its quantum.

Not modelled: core dumps.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from cpu.cpuid import CpuLevel, level
from cpu.exceptions import GuestFault, Vector
from cpu.state import CpuState
from emu.user import vsyscall
from emu.user.address_space import AddressSpace, MemoryExhausted
from emu.user.elf import ARCH_STATUS, ElfError, ElfImage, read_elf
from emu.user.fdtable import FdTable
from emu.user.linux import SIG_IGN, Errno, ProcessExit, Signal, SyscallError, signal_name
from emu.user.loader import load_program
from emu.user.proclimit import ProcessLimit
from emu.user.sharedmem import SHARED_SLICE
from emu.user.signals import FAULT_SIGNALS, HostSignals, deliver, inherited, synchronous
from emu.user.sigstate import SignalState
from emu.user.syscalls import Kernel
from emu.user.sysroot import Sysroot

if TYPE_CHECKING:
    from cpu.codecache import CodeCache
    from cpu.interp import Exit, Interpreter

SLICE = 1 << 22
"""Instructions at most between two returns of the interpreter to this loop: native (JIT) code runs without
Python, so a host signal's handler runs, and the signal is delivered, within one slice (~10-40 ms)."""
DETERMINISTIC_EPOCH_NS = 1_704_067_200 * 1_000_000_000
"""2024-01-01 00:00:00 UTC: the wall clock at the start of a deterministic run."""



class Process:
    """A loaded program with its address space, registers, descriptors and kernel."""

    def __init__(self, path: str, argv: Sequence[str], env: Mapping[str, str], *, seed: int = 0,
                 deterministic: bool = False, stdin: int = 0, stdout: int = 1, stderr: int = 2,
                 cpu: CpuLevel | None = None, trace: TextIO | None = None, log: TextIO | None = None,
                 code_cache: bool = True, jit: str = "off", sysroot: Sysroot | None = None,
                 randomize: bool = False, fds: FdTable | None = None, signals: SignalState | None = None,
                 exec_options: Sequence[str] = (), max_memory: int | None = None,
                 process_limit: ProcessLimit | None = None) -> None:
        """Load ``path`` (raises :class:`ElfError` when it cannot run); ``argv[0]`` is the program's name
        for itself.  ``stdin``/``stdout``/``stderr`` are the host descriptors behind guest fds 0-2, unless
        ``fds`` gives the whole table.  ``code_cache``: reuse blocks translated by earlier runs
        (``cpu.codecache``; also off with ``EMU_CODE_CACHE=0``).  ``jit``: "off", "on" or "eager"
        (``cpu.jit``).  ``cpu``: the CPU level (``cpu.cpuid``, default ``max``).  ``sysroot`` is where the
        dynamic linker and other absolute paths are looked up first; ``randomize`` places a PIE, the break
        and the mmap area at random, as Linux does.  ``signals``: the ignored signals and mask it starts
        with; ``exec_options``: the ``emu run`` options an execve(2) passes on to the emulator that runs the
        next program.  ``max_memory``: the cap on the guest's memory (``emu.user.address_space``);
        ``process_limit``: the cap on processes forks count against (``emu.user.proclimit``; None: no cap).
        """
        self.cpu = cpu if cpu is not None else level()
        self.entropy_seed = seed if deterministic else None
        """RDRAND's seed: ``seed`` in a reproducible run, else None (the host's random source)."""
        self.code_cache = code_cache
        self.jit = jit
        self.sysroot = sysroot if sysroot is not None else Sysroot()
        self.image = read_elf(path)
        interpreter = self._interpreter(self.image) if self.image.interpreter is not None else None
        self.memory = AddressSpace(max_memory)
        self.process_limit = process_limit
        self.state = CpuState()
        self.program = load_program(self.memory, self.state, self.image, argv,
                                    [f"{name}={value}" for name, value in env.items()], seed=seed, cpu=self.cpu,
                                    interpreter=interpreter, aslr=random.Random() if randomize else None)
        self.interp: Interpreter | None = None
        self.cache: CodeCache | None = None
        self.host_signals: HostSignals
        self.killed_by: int | None = None
        """The signal that ended the process, if one did."""
        self.exec_options = list(exec_options)
        self.kernel = Kernel(
            self.state, self.memory, exe=path, fds=fds if fds is not None else FdTable(stdin, stdout, stderr),
            sysroot=self.sysroot, auxv=self.program.auxv, signals=signals,
            clock=self._virtual_ns if deterministic else None,
            epoch_ns=DETERMINISTIC_EPOCH_NS if deterministic else None,
            random_seed=seed if deterministic else None, hostname="emu" if deterministic else None,
            log=log, trace=trace)

    def _interpreter(self, image: ElfImage) -> ElfImage:
        """The dynamic linker ``image`` names, from the sysroot when it is there."""
        assert image.interpreter is not None
        name = self.sysroot.map(image.interpreter)
        try:
            linker = read_elf(os.fsdecode(name))
        except ElfError as e:
            raise ElfError(f"{image.path} needs the dynamic linker {os.fsdecode(image.interpreter)}: {e}",
                           ARCH_STATUS) from None
        if linker.interpreter is not None:
            raise ElfError(f"{image.path} needs the dynamic linker {os.fsdecode(image.interpreter)}, "
                           f"which names a dynamic linker of its own", ARCH_STATUS)
        return linker

    def _virtual_ns(self) -> int:
        """Deterministic time: one nanosecond per instruction retired (counted in the CPU state by every backend)."""
        return self.state.icount

    def run(self, max_instructions: int | None = None) -> int:
        """Run to the end; return the exit status (128 + signal when killed; :attr:`killed_by` says which).

        ``max_instructions`` bounds the run: reaching it ends the program as
        SIGXCPU would (a CPU time limit).  An instruction that needs a machine
        (HLT, port I/O) faults as it would at CPL 3.  Signals are delivered
        between blocks and after each system call (``emu.user.signals``).
        """
        # The CPU is imported only here, so that checking and loading a program never needs it.
        from cpu.interp import ExitKind, Interpreter

        if self.code_cache:
            from cpu.codecache import CodeCache

            self.cache = CodeCache.open()
        self.interp = interp = Interpreter(self.state, self.memory, code_cache=self.cache, cpu=self.cpu,
                                           entropy_seed=self.entropy_seed)
        if self.jit != "off":
            from cpu.jit import Jit  # only here, so that llvmlite is loaded only when the JIT is on

            interp.jit = Jit(interp, self.jit)
        self.host_signals = HostSignals(self.kernel, interp.request_exit)
        self.host_signals.install()
        self.kernel.host = self
        threads = self.kernel.threads
        try:
            while True:
                try:
                    threads.settle()
                    deliver(self.kernel)
                except ProcessExit as e:
                    return self._ended(e)
                budget = None if max_instructions is None else max_instructions - interp.icount
                if budget is not None and budget <= 0:
                    return self._killed(Signal.SIGXCPU, f"after {max_instructions} instructions (the limit)")
                self.memory.shared_lock.release()     # between instructions (emu.user.sharedmem)
                limit = min(x for x in (SLICE, budget, threads.limit(),
                                        SHARED_SLICE if self.memory.shares else None) if x is not None)
                before = interp.icount
                try:
                    stop = interp.run(limit)
                    threads.account(interp.icount - before)
                    if stop.kind == ExitKind.SYSCALL:
                        self.kernel.handle()
                except ProcessExit as e:
                    return self._ended(e)
                except MemoryExhausted as e:
                    return self._killed(Signal.SIGKILL, str(e))
                if stop.kind == ExitKind.SYSCALL or (stop.kind == ExitKind.EVENT and stop.event == "request"):
                    continue        # a host signal that arrived is delivered at the top of the loop
                if stop.kind in (ExitKind.FAULT, ExitKind.HALT, ExitKind.EVENT):
                    fault, why = self.fault_of(stop)
                    fault = vsyscall.emulate(self.kernel, fault)
                    if fault is None:
                        continue
                    try:
                        dies = synchronous(self.kernel, fault)
                    except ProcessExit as e:
                        return self._killed(e.signal or Signal.SIGSEGV, why)
                    if dies is not None:
                        return self._killed(dies[0], why)
        finally:
            self.kernel.close()
            if self.cache is not None:
                self.cache.flush()

    def fault_of(self, stop: Exit) -> tuple[GuestFault, str]:
        """The CPU exception behind a CPU exit, and a one-line reason naming it and RIP."""
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
        return fault, text

    def signal_of(self, stop: Exit) -> tuple[int, str]:
        """The signal a CPU exit sends the process, and a one-line reason naming the fault and RIP."""
        fault, text = self.fault_of(stop)
        return FAULT_SIGNALS.get(fault.vector, (Signal.SIGSEGV, 0))[0], text

    def _ended(self, end: ProcessExit) -> int:
        """exit(2), or a signal's default action (quietly, as the kernel does)."""
        if end.signal is not None:
            self.killed_by = end.signal
        return end.exit_code

    def _killed(self, sig: int, why: str) -> int:
        if sig != Signal.SIGPIPE:          # shells stay quiet about a broken pipe too
            self.kernel.say(f"program terminated by {signal_name(sig)}" + (f": {why}" if why else ""))
        self.killed_by = sig
        return 128 + sig

    # -- what fork and execve need of the emulator (emu.user.forkexec.Host) --------------------------
    def before_fork(self) -> None:
        """A token of the process cap for the child (EAGAIN without one); nothing may be compiling when the
        emulator forks: the child has no compile thread."""
        if self.process_limit is not None and not self.process_limit.take():
            raise SyscallError(Errno.EAGAIN)
        if self.interp is not None and self.interp.jit is not None:
            self.interp.jit.jobs.join()

    def after_fork_child(self) -> None:
        """The child gets a wake-up pipe of its own and keeps no code cache (the parent's database
        connection must not be used by two processes)."""
        self.host_signals.renew_after_fork()
        if self.cache is not None:
            self.cache.abandon()
        self.cache = None
        if self.interp is not None:
            self.interp.code_cache = None
            if self.interp.jit is not None:
                self.interp.jit.worker = None
                self.interp.jit.engine.cache = None

    def exec(self, program: bytes, argv: list[bytes], env: list[bytes]) -> None:
        """Replace the emulator by a fresh one running ``program`` (execve(2)); returns only on failure."""
        k = self.kernel
        if self.interp is not None and self.interp.jit is not None:
            self.interp.jit.stop()
        if self.cache is not None:
            self.cache.flush()
        ignored = sum(1 << (sig - 1) for sig in range(1, 65) if k.signals.action(sig).sa_handler == SIG_IGN)
        options = list(self.exec_options)
        if self.process_limit is not None:
            above = max([2, *k.fds.files, *(f.host for f in k.fds.files.values())])
            options.append(f"--process-slots={self.process_limit.for_exec(above)}")
        command = [os.fsencode(sys.executable), b"-m", b"emu", b"run", *(os.fsencode(o) for o in options),
                   b"--signal-state=%x:%x" % (ignored, k.signals.blocked),
                   b"--argv0=" + (argv[0] if argv else program), b"--clear-env",
                   *(b"--env=" + e for e in env if b"=" in e), b"--", program, *argv[1:]]
        self.host_signals.for_exec()
        os.fchdir(k.cwd_fd)
        k.fds.for_exec()
        try:
            os.execv(command[0], command)
        except OSError as e:
            k.say(f"cannot start {sys.executable} for execve: {e.strerror}")
            if self.process_limit is not None:
                self.process_limit.release()
            os._exit(127)


def run_program(argv: Sequence[str], env: Mapping[str, str] | None = None, *, seed: int = 0,
                deterministic: bool = False, trace: TextIO | None = None,
                max_instructions: int | None = None, stats: bool = False, code_cache: bool = True,
                jit: str = "off", cpu: CpuLevel | None = None, sysroot: str | None = None,
                argv0: str | None = None, signal_state: tuple[int, int] | None = None,
                die_by_signal: bool = False, aslr: bool = False, inherit_fds: bool = False,
                max_memory: int | None = None, process_limit: ProcessLimit | None = None) -> int:
    """Run ``argv[0]`` with ``argv`` (the CLI's ``emu run``); return its exit status, or when it cannot run
    the status :class:`ElfError` gives.

    ``env`` defaults to the emulator's environment; ``stats`` prints the
    instructions retired, the time taken and the rate on stderr at exit, and
    how many blocks were translated or came from the code cache.  ``sysroot``
    (default ``EMU_LD_PREFIX``, else ``/``) is the directory of ``-L``.  With
    ``aslr`` (not with ``deterministic``), a position-independent program, the
    break and the mmap area are placed at random, as Linux does; without it
    they are where Linux puts them with randomisation off (as qemu-x86_64
    does), so that the code cache, keyed by address, finds the blocks again.
    ``argv0`` replaces the program's own name for itself.  The guest starts
    with the ignored signals and signal mask of this process (``signal_state``
    gives them instead, as an execve passes them on), and with its descriptors
    0-2, or with ``inherit_fds`` all it was started with (the CLI: what an
    execve passed on).
    ``die_by_signal``: when a signal ends the program, the emulator dies of
    that signal too (as the CLI does, so that a parent sees WIFSIGNALED).
    ``max_memory`` caps the guest's memory (bytes; default ``address_space.default_max_memory()``), and
    ``process_limit`` the processes of the run (``emu.user.proclimit``).
    """
    if not argv:
        print("emu: error: no program given", file=sys.stderr)
        return 2
    root = Sysroot(sysroot if sysroot is not None else os.environ.get("EMU_LD_PREFIX"))
    if not root.usable():
        print(f"emu: warning: the sysroot {os.fsdecode(root.prefix)} is not a readable directory; "
              f"using the host's paths", file=sys.stderr)
        root = Sysroot()
    ignored, blocked = signal_state if signal_state is not None else inherited()
    aslr = aslr and not deterministic
    options = [f"--seed={seed}", f"--jit={jit}", *(["--deterministic"] if deterministic else []),
               *([f"--cpu={cpu.name}"] if cpu is not None else []),
               *(["--aslr"] if aslr else []),
               *(["--no-code-cache"] if not code_cache else []),
               *([f"--max-memory={max_memory}"] if max_memory is not None else []),
               *([f"-L{os.fsdecode(root.prefix)}"] if root.prefix else [])]
    try:
        process = Process(argv[0], [argv0 if argv0 is not None else argv[0], *argv[1:]],
                          os.environ if env is None else env, seed=seed, deterministic=deterministic, trace=trace,
                          code_cache=code_cache, jit=jit, cpu=cpu, sysroot=root, randomize=aslr,
                          fds=FdTable.inherited() if inherit_fds else None, signals=SignalState(ignored, blocked),
                          exec_options=options, max_memory=max_memory, process_limit=process_limit)
    except ElfError as e:
        print(f"emu: error: {e}", file=sys.stderr)
        return e.status
    except (MemoryExhausted, SyscallError) as e:
        print(f"emu: error: {argv[0]} does not fit in the guest's memory: {e or 'ENOMEM'}", file=sys.stderr)
        return 1
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
    if die_by_signal and process.killed_by is not None:
        if process_limit is not None:
            process_limit.release()
        die_of(process.killed_by)
    return status


def die_of(sig: int) -> None:
    """End the emulator by ``sig`` (with no core file of the emulator), as the guest was ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    if sig != signal.SIGKILL:                   # SIGKILL has no handler to reset and cannot be blocked
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)
