"""A GDB remote stub: ``emu run --gdb PORT prog`` lets gdb debug the program as ``qemu-x86_64 -g`` does,
and ``emu boot --gdb PORT`` the whole machine as ``qemu-system-x86_64 -s`` does.

Follows the GDB manual, appendix "Remote Serial Protocol": "Packets", "Stop
Reply Packets", "General Query Packets" (qSupported, qXfer:features:read,
qXfer:exec-file:read, qXfer:auxv:read, qAttached, qC, qfThreadInfo) and
"Interrupts"; the register layout is ``emu.gdb.registers`` ("Target
Descriptions"), the framing ``emu.gdb.packets``.  gdb drives the same
:class:`emu.debug.target.Target` as the REPL: breakpoints (Z0, and Z1 which is the
same thing here) and watchpoints (Z2 write, Z3 read, Z4 access) are the
target's, never int3 bytes written into the guest.

One process with one thread, all-stop mode.  The thread is ``01``, or
``pPID.PID`` when gdb offers multiprocess+ (so gdb names the process by the
pid the program sees in getpid).  Every stop reply carries rbp, rsp and rip.
Signals: a guest fault stops with the signal Linux would send (GDB's numbers
equal Linux's for SIGILL 4, SIGTRAP 5, SIGFPE 8, SIGSEGV 11, ...);
continuing with that signal (``C``) kills the program with it, since signal
handlers are not modelled; continuing without one re-executes the faulting
instruction, as on Linux.  ``k`` ends the program (SIGKILL: exit status
137); ``D`` and a client that disconnects let the program run to completion
without breakpoints, and emu exits with its status.  Memory writes respect
page protection (a read-only page answers ``E14``).  Not supported: non-stop
mode, extended-remote (``!``, vRun), vFile (gdb then reads the program from
the local file system), range stepping, tracepoints.

On a full-system machine (:func:`serve_machine`) the stub is the same over
the machine's target (``emu.debug.machine_target``): the registers add the system
feature (``emu.gdb.registers.SYSTEM``: CR0-CR4, CR8, EFER, kernel_gs_base);
``m``/``M`` read and write virtual memory through the guest's current page
tables; Z0/Z1 breakpoints go on kernel virtual addresses, mapped yet or not;
a stop is a SIGTRAP (SIGINT for an interrupt) and the machine's end (power-off,
triple fault, ``k``) is a ``W`` with its status.  There is no process: no pid,
no ``multiprocess+``, no auxv, and no ``qXfer:exec-file`` (gdb is given the
vmlinux by its user); signals given to ``C``/``S`` are ignored.  Without
``--wait`` the guest runs until gdb connects, which stops it, as QEMU does.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TextIO

from cpu.cpuid import CpuLevel
from cpu.exceptions import GuestFault
from cpu.memory import PAGE_MASK, PAGE_SIZE
from emu.debug.target import ProcessBackend, Stop, StopKind, Target
from emu.gdb.packets import Link, escape_binary, unescape_binary
from emu.gdb.registers import NUMBERS, SYSTEM, USER
from emu.user.elf import ElfError
from emu.user.linux import DEFAULT_IGNORED, Signal, signal_name
from emu.user.process import Process

PACKET_SIZE = 0x4000
"""The largest packet we accept (advertised in qSupported as hex)."""

SIGTRAP = int(Signal.SIGTRAP)
SIGINT = int(Signal.SIGINT)
EFAULT = b"E14"       # memory that is not mapped (or not writable)
EINVAL = b"E16"       # a malformed packet or a bad argument

WATCH_KINDS = {2: "write", 3: "read", 4: "access"}
"""Z packet type -> Target watchpoint kind."""
WATCH_REPLY = {"write": "watch", "read": "rwatch", "access": "awatch"}

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

EXPEDITED = tuple(NUMBERS[name] for name in ("rbp", "rsp", "rip"))
"""Registers sent with every stop reply, so gdb needs no ``g`` to show where the program stopped."""


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (loopback by default); ValueError when malformed."""
    host, _, port = text.rpartition(":")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host.strip("[]") or "127.0.0.1", number


def _hex(data: bytes) -> bytes:
    return data.hex().encode()


def _int(text: bytes) -> int:
    """A protocol number: hex digits only (no sign, no 0x); ValueError otherwise."""
    if not text or not set(text) <= _HEX_DIGITS:
        raise ValueError(f"{text[:20]!r} is not a hex number")
    return int(text, 16)


class GdbStub:
    """Serves one gdb connection over a :class:`Target`."""

    def __init__(self, target: Target, sock: socket.socket, *, log: TextIO | None = None) -> None:
        self.target = target
        self.backend = target.backend
        self.layout = SYSTEM if target.system else USER
        self.link = Link(sock, target.interrupt, log=log)
        self.last_stop: Stop | None = None
        self.fault: Stop | None = None
        """The last signal stop, for the message when the program dies of it."""
        self.points: dict[tuple[int, int, int], int] = {}
        """(Z type, address, kind) -> Target breakpoint/watchpoint number."""
        self.hardware: set[int] = set()
        """Numbers of the breakpoints gdb inserted with Z1."""
        self.client_features: set[str] = set()
        self.pid = target.backend.pid
        """The process's pid; None for a machine."""
        self.finished = False

    @property
    def multiprocess(self) -> bool:
        """gdb offered multiprocess+ (to a process): thread ids are ``pPID.TID`` and gdb shows ``process PID``."""
        return "multiprocess+" in self.client_features and self.pid is not None

    @property
    def thread(self) -> str:
        """The one thread's id: its tid is the pid, as for a Linux process's main thread."""
        return f"p{self.pid:x}.{self.pid:x}" if self.multiprocess else "01"

    # -- the session ---------------------------------------------------------------
    def serve(self) -> int:
        """Answer packets until gdb kills, detaches or disconnects; return the program's exit status."""
        while not self.finished:
            packet = self.link.receive()
            if packet is None:
                if self.target.exited is None:
                    how = " in the middle of a packet" if self.link.cut_off else ""
                    what = "machine" if self.target.system else "program"
                    self.link.say(f"the client disconnected{how}: the {what} runs on without it")
                break
            try:
                reply = self.handle(packet)
            except (ValueError, IndexError) as err:
                self.link.say(f"malformed packet {packet[:40]!r}: {err}")
                reply = EINVAL
            if reply is not None:
                self.link.send(reply)
        self.link.close()
        if self.target.exited is None:
            self._run_to_end()
        return int(self.target.exited.status)

    def handle(self, packet: bytes) -> bytes | None:
        """The reply to one packet (None: no reply, as for ``k``); unknown packets get an empty reply."""
        head, body = packet[:1], packet[1:]
        match head:
            case b"?":
                return self._stop_reply(self.last_stop)
            case b"q" | b"Q":
                return self._query(packet)
            case b"g":
                return _hex(self.layout.read_all(self.target.state))
            case b"G":
                self.layout.write_all(self.target.state, bytes.fromhex(body.decode()))
                return b"OK"
            case b"p":
                number = _int(body)
                registers = self.layout.registers
                return _hex(self.layout.read(self.target.state, number)) if number < len(registers) else EINVAL
            case b"P":
                number, value = body.split(b"=")
                if _int(number) >= len(self.layout.registers):
                    return EINVAL
                self.layout.write(self.target.state, _int(number), bytes.fromhex(value.decode()))
                return b"OK"
            case b"m":
                address, length = body.split(b",")
                data = self._read_memory(_int(address), min(_int(length), PACKET_SIZE // 2))
                return _hex(data) if data or not _int(length) else EFAULT
            case b"M" | b"X":
                where, data = body.split(b":", 1)
                address, length = (_int(x) for x in where.split(b","))
                data = bytes.fromhex(data.decode()) if head == b"M" else unescape_binary(data)
                if len(data) != length:
                    return EINVAL
                return self._write_memory(address, data)
            case b"c" | b"s":
                return self._resume(head.decode(), 0, _int(body) if body else None)
            case b"C" | b"S":
                signal, _, address = body.partition(b";")
                return self._resume(head.decode().lower(), _int(signal), _int(address) if address else None)
            case b"v":
                return self._v_packet(packet)
            case b"Z" | b"z":
                return self._point(head == b"Z", body)
            case b"H" | b"T":
                return b"OK"
            case b"k":
                self.target.kill()
                self.finished = True
                return None
            case b"D":
                self.finished = True
                return b"OK"
        return b""

    # -- queries -------------------------------------------------------------------
    def _query(self, packet: bytes) -> bytes:
        name, _, args = packet.partition(b":")
        match name:
            case b"qSupported":
                self.client_features = {f.decode(errors="replace") for f in args.split(b";") if f}
                extra = ";multiprocess+" if self.multiprocess else ""
                process = "qXfer:exec-file:read+;qXfer:auxv:read+;" if self.pid is not None else ""
                return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;{process}"
                        f"swbreak+;hwbreak+;QStartNoAckMode+;vContSupported+{extra}").encode()
            case b"QStartNoAckMode":
                self.link.noack = True
                return b"OK"
            case b"qXfer":
                return self._xfer(args)
            case b"qAttached":
                return b"1"
            case b"qC":
                return b"QC" + self.thread.encode()
            case b"qfThreadInfo":
                return b"m" + self.thread.encode()
            case b"qsThreadInfo":
                return b"l"
            case b"qSymbol":
                return b"OK"
        return b""

    def _xfer(self, args: bytes) -> bytes:
        """``qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH``: ``m`` + data when more follows, ``l`` + data at the end."""
        obj, operation, annex, span = args.split(b":", 3)
        if operation != b"read":
            return b""
        match obj:
            case b"features":
                if annex != b"target.xml":
                    return b"E00"
                data = self.layout.xml().encode()
            case b"exec-file" | b"auxv":
                data = self.backend.exec_file() if obj == b"exec-file" else self.backend.auxv()
                if data is None:
                    return b""
            case _:
                return b""
        offset, length = (_int(x) for x in span.split(b","))
        chunk = data[offset: offset + min(length, PACKET_SIZE // 2)]
        return (b"l" if offset + len(chunk) >= len(data) else b"m") + escape_binary(chunk)

    def _v_packet(self, packet: bytes) -> bytes | None:
        if packet == b"vCont?":
            return b"vCont;c;C;s;S"
        if packet.startswith(b"vCont;"):
            for action in packet[6:].split(b";"):     # one thread: the first action is the one for it
                what = action.partition(b":")[0]
                kind, signal = what[:1].decode(), _int(what[1:]) if len(what) > 1 else 0
                if kind in ("c", "s"):
                    return self._resume(kind, 0, None)
                if kind in ("C", "S"):
                    return self._resume(kind.lower(), signal, None)
            return EINVAL
        if packet.startswith(b"vKill"):
            self.target.kill()
            self.finished = True
            return b"OK"
        return b""

    # -- memory --------------------------------------------------------------------
    def _read_memory(self, address: int, length: int) -> bytes:
        """Up to ``length`` bytes: those readable from ``address`` on (gdb accepts a short read)."""
        out = bytearray()
        while len(out) < length:
            n = min(length - len(out), PAGE_SIZE - (address & PAGE_MASK))
            try:
                out += self.target.read_memory(address, n)
            except GuestFault:
                break
            address += n
        return bytes(out)

    def _write_memory(self, address: int, data: bytes) -> bytes:
        if data:
            try:
                self.target.write_memory(address, data)
            except GuestFault:
                return EFAULT
        return b"OK"

    # -- breakpoints and watchpoints -------------------------------------------------
    def _point(self, insert: bool, body: bytes) -> bytes:
        """``Z``/``z`` TYPE,ADDR,KIND[;cond...]: conditions evaluated by the target are not offered."""
        fields = body.split(b";", 1)[0].split(b",")
        ztype, address, kind = _int(fields[0]), _int(fields[1]), _int(fields[2])
        if ztype > 4:
            return b""
        key = (ztype, address, kind if ztype >= 2 else 0)
        if not insert:
            number = self.points.pop(key, None)
            if number is not None:
                self.target.delete(number)
                self.hardware.discard(number)
            return b"OK"
        if key in self.points:
            return b"OK"
        try:
            if ztype < 2:
                number = self.target.add_breakpoint(address).number
            else:
                number = self.target.add_watchpoint(address, kind, WATCH_KINDS[ztype]).number
        except GuestFault:
            return EFAULT
        except ValueError:
            return EINVAL
        self.points[key] = number
        if ztype == 1:
            self.hardware.add(number)
        return b"OK"

    # -- running ---------------------------------------------------------------------
    def _resume(self, action: str, signal: int, address: int | None) -> bytes:
        """``c``/``s`` (optionally at ``address``), delivering ``signal`` when it is not 0."""
        target = self.target
        if target.exited is None:
            if address is not None:
                target.state.rip = address
            if signal and signal not in DEFAULT_IGNORED and not target.system:
                target.pending_signal = Stop(StopKind.SIGNAL, target.state.rip, signal=signal)
            else:
                target.pending_signal = None    # Linux re-executes the faulting instruction
        stop = target.step() if action == "s" else target.cont()
        self.last_stop = stop
        if stop.kind is StopKind.SIGNAL:
            self.fault = stop
        elif stop.kind is StopKind.EXITED:
            self._report_death(stop)
        return self._stop_reply(stop)

    def _stop_reply(self, stop: Stop | None) -> bytes:
        """``T``SIG with the stop reason and expedited registers, or ``W``/``X`` when the program has ended."""
        if stop is None:
            return self._t_packet(SIGTRAP, "")
        match stop.kind:
            case StopKind.EXITED:
                process = f";process:{self.pid:x}".encode() if self.multiprocess else b""
                if stop.signal is not None:
                    return b"X%02x" % int(stop.signal) + process
                return b"W%02x" % (int(stop.status) & 0xFF) + process
            case StopKind.SIGNAL:
                return self._t_packet(int(stop.signal), "")
            case StopKind.INTERRUPTED:
                return self._t_packet(SIGINT, "")
            case StopKind.BREAKPOINT:
                hardware = stop.breakpoint.number in self.hardware
                reason = "hwbreak" if hardware else "swbreak"
                return self._t_packet(SIGTRAP, f"{reason}:;" if f"{reason}+" in self.client_features else "")
            case StopKind.WATCHPOINT:
                hit = stop.watch
                w = hit.watchpoint
                address = min(max(hit.address, w.address), w.address + w.length - 1)
                return self._t_packet(SIGTRAP, f"{WATCH_REPLY[w.kind]}:{address:x};")
        return self._t_packet(SIGTRAP, "")

    def _t_packet(self, signal: int, reason: str) -> bytes:
        state = self.target.state
        registers = "".join(f"{n:02x}:{self.layout.read(state, n).hex()};" for n in EXPEDITED)
        return f"T{signal:02x}{reason}{registers}thread:{self.thread};".encode()

    def _report_death(self, stop: Stop) -> None:
        if not self.target.system and stop.signal is not None and stop.signal not in (Signal.SIGPIPE, Signal.SIGKILL):
            why = f": {self.fault.message}" if self.fault is not None and self.fault.signal == stop.signal else ""
            self.backend.say(f"program terminated by {signal_name(stop.signal)}{why}")

    def _run_to_end(self) -> None:
        """Without gdb: drop its breakpoints and watchpoints and let the program finish."""
        for number in self.points.values():
            self.target.delete(number)
        self.points.clear()
        stop = self.target.cont()
        while stop.kind is not StopKind.EXITED:
            if stop.kind is StopKind.SIGNAL:
                self.fault = stop
            stop = self.target.cont()
        self._report_death(stop)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (OSError when the address is taken or invalid)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1)


def _listen(address: str, log: TextIO) -> socket.socket | None:
    """The listening socket for ``--gdb ADDRESS``, announced on ``log``; None (and a message) when impossible."""
    try:
        host, port = parse_address(address)
    except ValueError:
        print(f"emu: error: --gdb expects PORT or HOST:PORT, got {address!r}", file=log)
        return None
    try:
        server = listen(host, port)
    except OSError as e:
        print(f"emu: error: cannot listen for gdb on {host}:{port}: {e.strerror or e}", file=log)
        return None
    shown = server.getsockname()
    print(f"emu: waiting for gdb on {shown[0]}:{shown[1]}", file=log, flush=True)
    return server


def _connected(conn: socket.socket, peer: tuple, log: TextIO) -> socket.socket:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"emu: gdb connected from {peer[0]}:{peer[1]}", file=log, flush=True)
    return conn


def serve_program(argv: Sequence[str], env: Mapping[str, str] | None, address: str, *, seed: int = 0,
                  deterministic: bool = False, log: TextIO | None = None, cpu: CpuLevel | None = None) -> int:
    """``emu run --gdb ADDRESS``: load ``argv[0]``, wait for gdb, serve it; return the program's exit status."""
    log = log if log is not None else sys.stderr
    try:
        process = Process(argv[0], argv, os.environ if env is None else env, seed=seed, deterministic=deterministic,
                          cpu=cpu)
    except ElfError as e:
        print(f"emu: error: {e}", file=log)
        return 2
    server = _listen(address, log)
    if server is None:
        process.kernel.close()
        return 2
    with server:
        conn = _connected(*server.accept(), log)
    return GdbStub(Target(ProcessBackend(process)), conn, log=log).serve()


def serve_machine(target: Target, address: str, *, wait: bool, log: TextIO | None = None) -> int:
    """``emu boot --gdb ADDRESS [--wait]``: serve gdb over a machine's target; return the machine's exit status.

    With ``wait`` the machine stays at its first instruction until gdb connects
    and continues it; without, it runs, and gdb's connecting stops it.
    """
    log = log if log is not None else sys.stderr
    server = _listen(address, log)
    if server is None:
        return 2
    with server:
        if wait:
            conn = _connected(*server.accept(), log)
        else:
            accepted: list[tuple[socket.socket, tuple]] = []
            stopped = threading.Event()

            def accept() -> None:
                accepted.append(server.accept())
                while not stopped.is_set():        # until the run below has seen it (a run clears old requests)
                    target.interrupt()
                    stopped.wait(0.05)

            threading.Thread(target=accept, name="gdb-accept", daemon=True).start()
            stop = target.cont()
            while not accepted:
                if stop.kind is StopKind.EXITED:
                    return int(stop.status)
                stop = target.cont()
            stopped.set()
            conn = _connected(*accepted[0], log)
    return GdbStub(target, conn, log=log).serve()
