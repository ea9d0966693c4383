"""The ``emu`` command line: one argparse subcommand per job.

    emu run PROGRAM [ARGS...]     run an x86-64 Linux program (user mode, like qemu-x86_64)
    emu explain 'INSTRUCTION'     show an instruction's semantics as micro-ops
    emu debug PROGRAM [ARGS...]   run a program under the gdb-like debugger (emu.debug.repl)
    emu debug --boot [OPTIONS]    the same debugger on the full-system machine, from the kernel's entry
    emu boot [OPTIONS]            boot a Linux guest on the emulated PC (--gdb PORT: for gdb, as qemu -s)

Errors a user can act on are one line on stderr and exit status 2; a
traceback is always a bug in emu.

Each command imports the subsystems it uses when it runs: what ``emu run``
needs imports in about 90 ms, everything (the debugger, the machine, the GDB
stub, keystone) in about 175 ms, and the tests start ``emu run`` hundreds of
times.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from emu.user.proclimit import DEFAULT_MAX_PROCESSES

if TYPE_CHECKING:
    from cpu.cpuid import CpuLevel
    from emu.debug.repl import Debugger
    from emu.machine.debian_guest import DebianImage
    from emu.machine.guest import GuestImage
    from emu.machine.pc import Machine, MachineStop
    from emu.user.proclimit import ProcessLimit


JIT_MODES = ("off", "on", "eager")


def _cpu_level(args: argparse.Namespace) -> CpuLevel | None:
    """The CPU level the command runs: --cpu, else EMU_CPU, else max; None (and a message) when bad."""
    from cpu.cpuid import UnknownLevel, level

    name = args.cpu or os.environ.get("EMU_CPU") or "max"
    try:
        return level(name)
    except UnknownLevel as err:
        source = "--cpu" if args.cpu else "EMU_CPU"
        print(f"emu: error: {str(err).replace('--cpu', source, 1)}", file=sys.stderr)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    from emu.user.process import run_program

    env = None
    if args.env or args.unset_env or args.clear_env:
        env = {} if args.clear_env else dict(os.environ)
        for item in args.unset_env:
            env.pop(item, None)
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"emu: error: --env expects NAME=VALUE, got {item!r}", file=sys.stderr)
                return 2
            env[key] = value
    cpu = _cpu_level(args)
    if cpu is None:
        return 2
    if args.gdb is not None:
        from emu.gdb.stub import serve_program

        return serve_program([args.program, *args.args], env, args.gdb, seed=args.seed,
                             deterministic=args.deterministic, cpu=cpu)
    jit = _jit_mode(args, "on")
    if jit is None:
        return 2
    limit = _process_limit(args)
    if limit is None:
        return 2
    signal_state = None
    if args.signal_state is not None:
        ignored, _, blocked = args.signal_state.partition(":")
        signal_state = int(ignored, 16), int(blocked or "0", 16)
    return run_program([args.program, *args.args], env, seed=args.seed, deterministic=args.deterministic,
                       stats=args.stats, code_cache=not args.no_code_cache, jit=jit, cpu=cpu, sysroot=args.sysroot,
                       argv0=args.argv0, signal_state=signal_state, die_by_signal=True, aslr=args.aslr,
                       inherit_fds=True, max_memory=args.max_memory, process_limit=limit)


def _guest_memory(text: str) -> int:
    """--max-memory: a memory size (``_size``) of at least 1M."""
    value = _size(text)
    if value < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text} is too small for a program's memory: give at least 1M")
    return value


def _process_limit(args: argparse.Namespace) -> ProcessLimit | None:
    """The run's process cap: adopted from the emulator that exec'd this one, or a new one."""
    from emu.user.proclimit import ProcessLimit

    try:
        if args.process_slots is not None:
            return ProcessLimit.adopt(args.process_slots)
        return ProcessLimit.start(args.max_processes)
    except (ValueError, OSError) as e:
        print(f"emu: error: cannot set up the process limit: {e}", file=sys.stderr)
        return None


def _jit_mode(args: argparse.Namespace, default: str) -> str | None:
    """The tier the command runs with: --jit, else EMU_JIT, else ``default``; None (and a message) when bad."""
    mode = args.jit or os.environ.get("EMU_JIT") or default
    if mode not in JIT_MODES:
        source = "--jit" if args.jit else "EMU_JIT"
        print(f"emu: error: {source} takes one of {', '.join(JIT_MODES)}, not {mode!r}", file=sys.stderr)
        return None
    return mode


def _cmd_binfmt(args: argparse.Namespace) -> int:
    from emu.user import binfmt

    sysroot = args.sysroot if args.sysroot is not None else os.environ.get("EMU_LD_PREFIX") or None
    if sysroot is not None:
        sysroot = os.path.abspath(sysroot)
    interpreter = os.path.abspath(args.interpreter or binfmt.DEFAULT_INTERPRETER)
    if args.script:
        print(binfmt.interpreter_script(sysroot), end="")
        return 0
    if args.install:
        try:
            binfmt.install(interpreter, sysroot, force=args.force, binfmt_dir=args.binfmt_dir or binfmt.BINFMT_DIR)
        except binfmt.BinfmtError as e:
            print(f"emu: error: {e}", file=sys.stderr)
            return 1
        print(f"registered {binfmt.NAME}: x86-64 ELF files now run through {interpreter}")
        return 0
    print(binfmt.register_line(interpreter))
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from cpu.backends.symbolic import explain
    from cpu.decoder import Decoder
    from cpu.exceptions import GuestFault

    if args.bytes:
        try:
            code = bytes.fromhex(" ".join(args.instruction))
        except ValueError:
            print("emu: error: --bytes expects hex bytes, e.g. `emu explain --bytes 48 01 d8`", file=sys.stderr)
            return 2
    else:
        code = _assemble("; ".join(args.instruction), args.address)
        if code is None:
            return 2
    decoder = Decoder()
    address, end = args.address, args.address + len(code)
    insns = []
    while address < end:
        try:
            insn = decoder.decode_bytes(code[address - args.address:], address)
        except GuestFault as fault:
            print(f"emu: error: {fault.detail}", file=sys.stderr)
            return 2
        insns.append(insn)
        address = insn.next
    if args.ir:
        from cpu.backends.llvm import block_ir

        print(block_ir(insns))
        return 0
    for insn in insns:
        print(explain(insn))
    return 0


def _assemble(text: str, address: int) -> bytes | None:
    import keystone

    try:
        encoding, _ = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(text, address)
    except keystone.KsError as err:
        print(f"emu: error: cannot assemble {text!r}: {err}", file=sys.stderr)
        return None
    if not encoding:
        print(f"emu: error: {text!r} assembles to nothing", file=sys.stderr)
        return None
    return bytes(encoding)


def _cmd_debug(args: argparse.Namespace) -> int:
    from emu.debug.repl import Debugger
    from emu.debug.symbols import SymbolError, elf_symbols, load_symbols
    from emu.debug.target import ProcessBackend, Target
    from emu.user.elf import ElfError
    from emu.user.process import Process

    if args.boot:
        return _debug_machine(args)
    if args.program is None:
        print("emu: error: emu debug needs a PROGRAM, or --boot for the full-system machine", file=sys.stderr)
        return 2
    jit = _jit_mode(args, "off")
    cpu = _cpu_level(args)
    if jit is None or cpu is None:
        return 2
    try:
        process = Process(args.program, [args.program, *args.args], os.environ, seed=args.seed,
                          deterministic=args.deterministic, jit=jit, cpu=cpu)
        symbols = elf_symbols(args.program, process.image.data, process.image.bias)
        for path in args.symbols:
            symbols = symbols.merge(load_symbols(path))
    except (ElfError, SymbolError) as e:
        print(f"emu: error: {e}", file=sys.stderr)
        return 2
    debugger = Debugger(Target(ProcessBackend(process)), symbols, stdin=sys.stdin, stdout=sys.stdout,
                        interactive=sys.stdin.isatty(), deterministic=args.deterministic)
    debugger.start(args.program)
    return _repl(debugger, args)


def _repl(debugger: Debugger, args: argparse.Namespace) -> int:
    """Run the -x scripts, then the prompt (or, with --batch, quit); the status gdb -batch would give."""
    for script in args.command_file:
        if debugger.onecmd(f"source {script}"):
            return 1 if debugger.failed else 0
        if debugger.failed:
            break
    if not args.batch:
        debugger.cmdloop()
        return 0
    failed = debugger.failed
    debugger.do_quit("")
    return 1 if failed else 0


def _debug_machine(args: argparse.Namespace) -> int:
    """``emu debug --boot``: the REPL over the machine, stopped at the kernel's first instruction.

    The guest's serial output goes to stdout (or --serial FILE); its input is
    the REPL's ``serial`` command, since the terminal belongs to the REPL.
    """
    from emu.debug.machine_target import MachineBackend
    from emu.debug.repl import Debugger
    from emu.debug.symbols import SymbolError, SymbolTable, load_symbols
    from emu.debug.target import Target

    try:
        serial = open(args.serial, "wb") if args.serial else None  # noqa: SIM115 - closed at the end of the session
    except OSError as err:
        print(f"emu: error: cannot write the serial output to {args.serial}: {err.strerror}", file=sys.stderr)
        return 2

    def output(data: bytes) -> None:
        out = serial if serial is not None else sys.stdout.buffer
        if serial is None:
            sys.stdout.flush()                      # the REPL's text first, then the guest's bytes
        out.write(data)
        out.flush()

    made = _make_machine(args, output)
    if made is None:
        return 2
    machine, guest = made
    try:
        symbols = load_symbols(str(guest.system_map)) if guest is not None else SymbolTable([])
        for path in args.symbols:
            symbols = symbols.merge(load_symbols(path))
    except SymbolError as e:
        print(f"emu: error: {e}", file=sys.stderr)
        return 2
    debugger = Debugger(Target(MachineBackend(machine)), symbols, stdin=sys.stdin, stdout=sys.stdout,
                        interactive=sys.stdin.isatty(), deterministic=True)
    debugger.start(machine.config.kernel)
    try:
        return _repl(debugger, args)
    finally:
        if serial is not None:
            serial.close()


def _make_machine(args: argparse.Namespace,
                  output: Callable[[bytes], None]) -> tuple[Machine, GuestImage | DebianImage | None] | None:
    """The machine the --kernel/--initrd/--disk/... options describe (the default guest without --kernel),
    and the default guest's files when it is the one; None after printing why it cannot be made."""
    from devices.virtio_blk import DiskError
    from emu.machine.pc import DEFAULT_APPEND, DEFAULT_MEMORY, Disk, Machine, MachineConfig, default_memory
    from firmware.linux import BootError
    from firmware.pci import FirmwareError

    kernel, initrd, snapshot = args.kernel, args.initrd, args.snapshot
    guest: GuestImage | DebianImage | None = None
    disks = [Disk.parse(text) for text in args.disk]
    machine, append = args.machine or "microvm", args.append
    if kernel is None:
        from emu.machine.guest import GuestBuildError, default_guest

        def progress(line: str) -> None:
            print(f"emu: {line}", file=sys.stderr, flush=True)

        try:
            if args.guest == "debian":
                from emu.machine.debian_guest import debian_guest

                guest = debian_guest(progress)
                machine = args.machine or "pc"      # the stock kernel has virtio-pci, not virtio-mmio on the cmdline
                append = f"{guest.append} {append}"
            else:
                guest = default_guest(progress=progress)
        except GuestBuildError as err:
            print(f"emu: error: building the {args.guest} guest failed: {err}", file=sys.stderr)
            return None
        assert guest is not None
        kernel = str(guest.kernel)
        initrd = initrd or str(guest.initrd)
        if not disks:
            disks, snapshot = [Disk(str(guest.disk))], True     # the cached image stays pristine
    jit = _jit_mode(args, "on" if args.command == "boot" else "off")
    cpu = _cpu_level(args)
    if jit is None or cpu is None:
        return None
    memory = args.memory
    if memory is None:
        memory = default_memory(_file_size(initrd))
        if memory != DEFAULT_MEMORY:
            print(f"emu: {memory >> 20} MiB of RAM for the {_file_size(initrd) >> 20} MiB initrd (--memory sets it)",
                  file=sys.stderr)
    config = MachineConfig(kernel=kernel, initrd=initrd, disks=disks, memory=memory, snapshot=snapshot,
                           rtc_base=args.rtc_base, append=f"{DEFAULT_APPEND} {append}".strip(),
                           code_cache=not args.no_code_cache, jit=jit, cpu=cpu.name, machine=machine)
    try:
        return Machine(config, output), guest
    except (BootError, DiskError, FirmwareError, ValueError) as err:
        print(f"emu: error: {err}", file=sys.stderr)
        return None


def _file_size(path: str | None) -> int:
    """The size of ``path``, 0 when there is none or it cannot be read (loading it says why)."""
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _boot_gdb(args: argparse.Namespace, machine: Machine, interactive: bool) -> MachineStop | None:
    """``emu boot --gdb``: serve gdb over the machine (the console still types into the guest);
    the machine's stop, or None when the stub could not listen."""
    from emu.debug.machine_target import MachineBackend
    from emu.debug.target import Target
    from emu.gdb.stub import serve_machine
    from emu.machine.console import TerminalConsole

    with contextlib.ExitStack() as stack:
        backend = MachineBackend(machine)
        if interactive:
            console = stack.enter_context(TerminalConsole(machine.uart.feed))
            backend = MachineBackend(machine, poll=lambda: console.poll() or console.quit,
                                     idle=_flushing(console.idle))
        serve_machine(Target(backend), args.gdb, wait=args.wait)
    return machine.stop


def _flushing(idle: Callable[[int], None]) -> Callable[[int], None]:
    """``idle``, after writing out the console output kept since the last newline (a prompt)."""
    def flushed(ns: int) -> None:
        sys.stdout.buffer.flush()
        idle(ns)
    return flushed


def _size(text: str) -> int:
    """A memory size (``cpu.sizes``: bytes, or with a K, M or G suffix: ``128M``)."""
    from cpu.sizes import parse_size

    try:
        return parse_size(text, "memory size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_boot(args: argparse.Namespace) -> int:
    from emu.machine.console import ScriptConsole, TerminalConsole

    script = args.script
    if args.script_file:
        try:
            script = open(args.script_file).read()
        except OSError as err:
            print(f"emu: error: cannot read script {args.script_file}: {err.strerror}", file=sys.stderr)
            return 2
    out = sys.stdout.buffer
    watcher: ScriptConsole | None = None   # set once the machine exists

    def output(data: bytes) -> None:
        out.write(data)
        if b"\n" in data:      # a line at a time (a write a character cost a boot 3 %); a prompt: _flushing
            out.flush()
        if watcher is not None:
            watcher.watch(data)

    made = _make_machine(args, output)
    if made is None:
        return 2
    machine = made[0]
    start = time.perf_counter()
    watcher = ScriptConsole(script, machine.uart.feed, lambda: machine.state.icount,
                            panicked=lambda reason: machine.halt(1, reason))
    if args.gdb is not None:
        stop = _boot_gdb(args, machine, interactive=script is None)
        if stop is None:
            return 2
    elif script is not None:
        stop = machine.run()
    else:
        with TerminalConsole(machine.uart.feed) as console:
            stop = None
            while stop is None and not console.quit:
                console.poll()
                stop = machine.run(limit_ns=10_000_000, idle=_flushing(console.idle))
            if console.quit:
                for disk in machine.disks:
                    disk.close()
    seconds = time.perf_counter() - start
    reason = stop.reason if stop is not None else "quit from the console (Ctrl-A X)"
    print(f"\r\nemu: {reason}", file=sys.stderr)
    if args.stats:
        if watcher.marker is not None:
            print(f"emu: /init marker after {watcher.marker[0]} instructions, {watcher.marker[1]:.2f} s wall",
                  file=sys.stderr)
        count = machine.state.icount
        print(f"emu: {count} instructions retired, {machine.clock.now() / 1e9:.3f} s of virtual time, "
              f"{seconds:.2f} s wall ({count / seconds / 1e6:.2f} MIPS)", file=sys.stderr)
        print(f"emu: {machine.cpu.translation_summary()}", file=sys.stderr)
        if machine.cpu.jit is not None:
            print(f"emu: {machine.cpu.jit.summary()}", file=sys.stderr)
    return stop.status if stop is not None else 0


def _program_options(parser: argparse.ArgumentParser) -> None:
    """Options of a user-mode program's run, shared by `emu run` and `emu debug`."""
    parser.add_argument("--seed", type=int, default=0, help="seed of AT_RANDOM and getrandom (default 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="clocks follow retired instructions (1 ns each) instead of host time, "
                             "so runs and traces repeat exactly")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emu", description="An instructional x86-64 machine emulator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run an x86-64 Linux program in user mode",
                         description="Run an x86-64 Linux ELF program, static or dynamically linked, on this host, "
                                     "like qemu-x86_64. Its stdout, stderr and exit status are the program's own.")
    run.add_argument("program", help="path of an x86-64 ELF executable, static or dynamically linked")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    run.add_argument("-E", "--env", action="append", default=[], metavar="NAME=VALUE",
                     help="set an environment variable for the program (repeatable)")
    run.add_argument("-U", "--unset-env", action="append", default=[], metavar="NAME",
                     help="remove an environment variable (repeatable)")
    run.add_argument("--clear-env", action="store_true", help="start the program with an empty environment")
    run.add_argument("-0", "--argv0", metavar="NAME", help="the program's argv[0] (default: PROGRAM), as qemu -0")
    run.add_argument("--aslr", action="store_true",
                     help="place a position-independent program, the heap and mappings at random, as Linux does "
                          "(off by default, as in qemu-x86_64, so that the code cache finds its blocks again; "
                          "ignored with --deterministic)")
    run.add_argument("--signal-state", help=argparse.SUPPRESS)     # IGNORED:BLOCKED in hex, passed on by execve
    run.add_argument("--process-slots", help=argparse.SUPPRESS)    # R,W: the process cap's pipe, passed on by execve
    run.add_argument("--max-memory", type=_guest_memory, metavar="SIZE",
                     help="cap on the guest's memory, e.g. 512M: mappings past it fail with ENOMEM, and a guest "
                          "that touches more is killed (default: 8G, or half the host's RAM if less)")
    run.add_argument("--max-processes", type=int, default=DEFAULT_MAX_PROCESSES, metavar="N",
                     help=f"processes the program may grow into at once (fork past it fails with EAGAIN; "
                          f"default {DEFAULT_MAX_PROCESSES})")
    run.add_argument("-L", dest="sysroot", metavar="DIR",
                     help="look up the dynamic linker and absolute paths under DIR first, as qemu -L "
                          "(default: EMU_LD_PREFIX, else /)")
    _program_options(run)
    run.add_argument("--stats", action="store_true",
                     help="print instructions retired, time and MIPS to stderr at exit")
    run.add_argument("--no-code-cache", action="store_true",
                     help="translate every block afresh instead of reusing earlier runs' (also EMU_CODE_CACHE=0)")
    _jit_option(run, "on")
    _cpu_option(run)
    run.add_argument("--gdb", metavar="[HOST:]PORT",
                     help="wait for gdb to connect (target remote :PORT) before the first instruction; "
                          "HOST defaults to 127.0.0.1, PORT 0 picks a free port")
    run.set_defaults(func=_cmd_run)

    binfmt = sub.add_parser(
        "binfmt", help="print (or install) the binfmt_misc entry that runs x86-64 ELF files through emu",
        description="Print the line that, written to /proc/sys/fs/binfmt_misc/register, makes the kernel of a "
                    "non-x86 host run every x86-64 ELF file through `emu run` (magic and mask as qemu-x86_64's). "
                    "--install also writes the interpreter script the line names and registers it.")
    binfmt.add_argument("-L", dest="sysroot", metavar="DIR",
                        help="the sysroot the programs run with (default: EMU_LD_PREFIX, else none)")
    binfmt.add_argument("--interpreter", metavar="PATH", default=None,
                        help="where the interpreter script goes (default /usr/local/libexec/emu-binfmt-x86_64)")
    binfmt.add_argument("--script", action="store_true", help="print the interpreter script instead of the line")
    binfmt.add_argument("--install", action="store_true",
                        help="write the interpreter script and register the entry (needs root and binfmt_misc)")
    binfmt.add_argument("--force", action="store_true", help="install even on an x86-64 host")
    binfmt.add_argument("--binfmt-dir", metavar="DIR", default=None,
                        help="where binfmt_misc is mounted (default /proc/sys/fs/binfmt_misc)")
    binfmt.set_defaults(func=_cmd_binfmt)

    explain = sub.add_parser("explain", help="show an instruction's semantics as micro-ops",
                             description="Assemble an instruction (Intel syntax) and print the micro-ops "
                                         "its semantics perform, as the interpreter will run them.")
    explain.add_argument("instruction", nargs="+", help="e.g. 'add rax, qword ptr [rbx+8]' (or hex with --bytes)")
    explain.add_argument("--bytes", action="store_true", help="the arguments are machine-code bytes in hex")
    explain.add_argument("--address", type=lambda s: int(s, 0), default=0x401000,
                         help="address of the instruction (matters for RIP-relative operands and branches)")
    explain.add_argument("--ir", action="store_true",
                         help="show the LLVM IR the JIT makes of the instructions as one block instead")
    explain.set_defaults(func=_cmd_explain)

    debug = sub.add_parser("debug", help="run a program (or, with --boot, the machine) under a gdb-like debugger",
                           description="Load a static x86-64 Linux program, stop at its entry point and read "
                                       "debugger commands (gdb's words: si, ni, c, break, watch, x, info "
                                       "registers, bt, finish...) from stdin; `help` inside lists them. The "
                                       "program shares the debugger's terminal (and stdin). With --boot, the "
                                       "full-system machine instead, stopped at the kernel's first instruction, "
                                       "with QEMU monitor views (xp, info tlb, info mem, info pic, pagewalk) "
                                       "and `serial TEXT` to type into the guest's console.")
    debug.add_argument("program", nargs="?", help="path of a static x86-64 ELF executable (not with --boot)")
    debug.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    debug.add_argument("--symbols", action="append", default=[], metavar="FILE",
                       help="also read symbols from FILE: an ELF file or a System.map (repeatable; the default "
                            "guest's System.map is read without it)")
    debug.add_argument("-x", dest="command_file", action="append", default=[], metavar="FILE",
                       help="run the debugger commands in FILE first; the first failing command ends it")
    debug.add_argument("--batch", action="store_true",
                       help="exit after the -x files instead of reading commands from stdin; the exit status "
                            "is 1 if a command failed, else 0 (as gdb -batch)")
    _program_options(debug)
    _cpu_option(debug)
    debug.add_argument("--boot", action="store_true",
                       help="debug the full-system machine (the options of `emu boot` below) instead of a program")
    debug.add_argument("--serial", metavar="FILE",
                       help="with --boot: write the guest's serial console output to FILE instead of stdout")
    _machine_options(debug)
    debug.set_defaults(func=_cmd_debug)
    boot = sub.add_parser("boot", help="boot a Linux guest on the emulated PC (full system)",
                          description="Boot an unmodified Linux kernel to a busybox shell on the serial console. "
                                      "With no --kernel, the default guest is built on first use (about 5 minutes, "
                                      "cached) and booted. Interactive: Ctrl-A X quits.")
    _machine_options(boot)
    _cpu_option(boot)
    boot.add_argument("--script", help="commands typed into the guest shell once it is up (non-interactive); "
                                       "end with `poweroff -f` to finish the run")
    boot.add_argument("--script-file", help="read the --script commands from a file")
    boot.add_argument("--stats", action="store_true", help="print instructions retired and MIPS at exit")
    boot.add_argument("--gdb", metavar="[HOST:]PORT",
                      help="serve gdb on PORT (target remote :PORT), as qemu -s: the guest runs, and gdb's "
                           "connecting stops it; HOST defaults to 127.0.0.1, PORT 0 picks a free port")
    boot.add_argument("--wait", action="store_true",
                      help="with --gdb: stay at the kernel's first instruction until gdb continues (qemu -S)")
    boot.set_defaults(func=_cmd_boot)
    return parser


def _machine_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe a machine, shared by `emu boot` and `emu debug --boot`."""
    parser.add_argument("--kernel", help="bzImage or ELF vmlinux (default: the built-in guest)")
    parser.add_argument("--guest", choices=("tiny", "debian"), default="tiny",
                        help="without --kernel, which built-in guest: tiny (default; built from source, microvm) "
                             "or debian (Debian's stock cloud kernel with virtio modules, pc; guest_images/README.md)")
    parser.add_argument("--initrd", help="initramfs: newc cpio archives, compressed or not (the kernel unpacks "
                             "them), such as /boot/initrd.img-*")
    parser.add_argument("--disk", action="append", default=[], metavar="IMAGE[,ro]",
                        help="raw disk image as a virtio-blk device (repeatable; /dev/vda, /dev/vdb, ...); "
                             "with ,ro the guest sees it read-only")
    parser.add_argument("--machine", choices=("microvm", "pc"),
                        help="microvm: disks on virtio-mmio, no PCI (default); pc: a PCI bus with the disks "
                             "on virtio-pci, for kernels without virtio-mmio command-line devices (docs/machine.md)")
    parser.add_argument("--snapshot", action="store_true",
                        help="keep disk writes in memory; the images stay unchanged")
    parser.add_argument("--append", default="", help="extra kernel command-line arguments")
    parser.add_argument("--memory", "-m", type=_size,
                        help="RAM size (default 128M; 512M with an --initrd over 8M, as a distribution's is)")
    parser.add_argument("--rtc-base", type=int, metavar="EPOCH",
                        help="the RTC's time at power-on, in seconds since 1970 (default: host time); "
                             "with it, two runs print identical logs")
    parser.add_argument("--no-code-cache", action="store_true",
                        help="translate every block afresh instead of reusing earlier runs' (also EMU_CODE_CACHE=0)")
    _jit_option(parser, "on for boot, off for debug")


def _cpu_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", metavar="LEVEL",
                        help="the CPU to be: x86-64-v1, x86-64-v2, x86-64-v3 (the psABI levels) or max, everything "
                             "emu implements; CPUID says so and other instructions raise #UD (default: EMU_CPU, "
                             "else max)")


def _jit_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--jit", metavar="MODE",
                        help="off: the Python tier only; on: hot blocks compiled to native code by LLVM; "
                             f"eager: every block compiled (default: EMU_JIT, else {default}; docs/jit.md)")


GC_THRESHOLD = (100_000, 50, 100)
"""The cyclic collector's thresholds for an emulator process.  Translation and the code cache allocate
millions of short-lived objects that never form cycles, and at Python's default (700 allocations) the
collector ran ~8 % of a warm boot, mostly scanning the long-lived translated blocks (measured: 3.65 ->
3.40 s to the boot's /init marker)."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status."""
    gc.set_threshold(*GC_THRESHOLD)
    return _command(_parser().parse_args(argv))


def entry() -> NoReturn:
    """The ``emu`` program (and ``python -m emu``): :func:`main`; after ``run`` and ``boot`` the process then
    ends as soon as the exit handlers (the code cache's last writes, the compile thread's end) have run and
    stdout and stderr are flushed, without Python's teardown.  That teardown, a full collection and the
    freeing of every translated block, took 25-30 ms, a tenth of a short program's whole run under
    ``emu run`` (measured with sha256 of 1 MiB: 0.28-0.29 s -> 0.25-0.26 s).  Neither command leaves a
    Python file object for the teardown to flush: a guest's files are host descriptors, and ``boot`` closes
    its ``--serial`` file itself."""
    gc.set_threshold(*GC_THRESHOLD)
    args = _parser().parse_args()
    status = _command(args)
    if args.func in (_cmd_run, _cmd_boot):
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(status)
    raise SystemExit(status)


def _command(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("emu: interrupted", file=sys.stderr)
        return 130
