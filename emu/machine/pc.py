"""The machine: a minimal PC that an unmodified Linux kernel boots on, and its run loop.

Assembled in :meth:`Machine.__init__`, one step per device.  Two machine types share everything but how disks
are attached: ``microvm`` puts each virtio-blk disk on virtio-mmio, announced on the kernel command line, with
no PCI; ``pc`` has a PCI host bridge and puts each disk on virtio-pci in slots 1, 2, ..., with BARs and
interrupt lines assigned by the firmware before the kernel starts (firmware/pci.py).  The address map (the one
place that says where everything is):

==============================  =================================================
physical memory
``0x0000_0000 .. RAM size``     RAM (at most 3 GiB); the boot loader's layout is in firmware/linux.py
``0xD000_0000 + 0x1000*n``      microvm: virtio-mmio device n (0x200 bytes of registers), IRQ 10 + n
``0xE000_0000 .. 0xFEC0_0000``  pc: the PCI memory window, where the firmware puts memory BARs (a hole in e820)
I/O ports
``0x20-0x21``, ``0xA0-0xA1``    8259A PIC pair (devices/pic8259.py)
``0x4D0-0x4D1``                 pc: the ELCR, PCI interrupt lines made level sensitive (devices/pic8259.py)
``0xCF8-0xCFF``                 pc: PCI configuration mechanism #1 (devices/pci.py)
``0xC000-0xFFFF``               pc: the PCI I/O window, where the firmware puts I/O BARs
``0x40-0x43``, ``0x61``         8254 PIT, and the PC's port B for channel 2 (devices/pit8254.py)
``0x60``, ``0x64``              i8042: only the reset line (devices/i8042.py)
``0x70-0x71``                   MC146818 RTC/CMOS, IRQ 8 (devices/cmos.py)
``0x80``                        POST code port: Linux writes it as an I/O delay
``0xF4``                        isa-debug-exit, for tests (devices/debug_exit.py)
``0x3F8-0x3FF``                 16550A UART (COM1), IRQ 4 (devices/uart16550.py)
everything else                 unassigned: reads all ones, writes ignored
==============================  =================================================

PCI interrupts: INTA#-INTD# of slot s reach IRQ ``devices.pci.intx_irq(s, pin)`` (10, 11, 9 or 5), which
the firmware writes in each function's Interrupt Line.

The run loop: the CPU runs until the next clock deadline, an event (a port
access, HLT, SYSCALL, STI) or a fault; the machine then fires due timers,
delivers the fault or a pending interrupt through the IDT, and goes on.
Time is the virtual clock (devices/clock.py): one nanosecond per retired
instruction, and a halted CPU jumps to the next deadline, so runs repeat
exactly.  An ISA port access takes 1 us of virtual time, as on a PC's ISA
bus; that also keeps Linux's PIT-polling calibration loops short.

The machine stops when the guest powers off (HLT with interrupts disabled and
nothing that could wake it), reboots (a triple fault with ``reboot=t``, or the
i8042 reset line), or writes the debug-exit port.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from cpu import exceptions
from cpu.codecache import CodeCache
from cpu.cpuid import level
from cpu.exceptions import GuestFault, TripleFault
from cpu.flags import Flag
from cpu.interp import Exit, ExitKind, Interpreter
from cpu.mmu import Mmu
from cpu.physical import PhysicalMemory
from cpu.state import CpuState
from devices.bus import Bus
from devices.clock import Clock
from devices.cmos import Cmos
from devices.debug_exit import DebugExit
from devices.i8042 import I8042
from devices.pci import PciHost
from devices.pic8259 import Elcr, Pic8259Pair
from devices.pit8254 import Pit8254
from devices.uart16550 import Uart16550
from devices.virtio_blk import VirtioBlk
from devices.virtio_mmio import WINDOW_SIZE, VirtioMmio
from devices.virtio_pci import VirtioPci
from firmware.linux import BootInfo, load_linux
from firmware.pci import assign_resources

MAX_RAM = 3 << 30
VIRTIO_BASE, VIRTIO_STRIDE, VIRTIO_IRQ = 0xD000_0000, 0x1000, 10
UART_IRQ, PIT_IRQ, RTC_IRQ = 4, 0, 8
PORT_IO_NS = 1000
"""Virtual time an ISA port access takes."""
SLICE_NS = 1_000_000
"""Longest run of the CPU between looks at the host (input, Ctrl-C)."""

DEFAULT_APPEND = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=t no_timer_check tsc_early_khz=1000000"


MACHINES = ("microvm", "pc")
DEFAULT_MEMORY = 128 << 20
LARGE_INITRD = 8 << 20
LARGE_INITRD_MEMORY = 512 << 20


def default_memory(initrd_size: int) -> int:
    """RAM when the user gives none: 128 MiB, or 512 MiB for an initrd over 8 MiB.  A distribution's initrd is
    compressed and unpacks to several times its size while the compressed copy is still in memory: Debian's
    initramfs-tools initrd for its cloud kernel (13.6 MiB, 51 MiB unpacked) panics in 128 MiB ("System is
    deadlocked on memory") and boots in 512 MiB (docs/machine.md)."""
    return LARGE_INITRD_MEMORY if initrd_size > LARGE_INITRD else DEFAULT_MEMORY


@dataclass(frozen=True)
class Disk:
    """A disk image and how the guest may use it."""

    path: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Disk:
        """``FILE`` or ``FILE,ro`` (the ``--disk`` syntax)."""
        path, comma, option = text.rpartition(",")
        if comma and option == "ro":
            return cls(path, read_only=True)
        return cls(text)


@dataclass
class MachineConfig:
    kernel: str
    initrd: str | None = None
    disks: list[Disk] = field(default_factory=list)
    machine: str = "microvm"        # microvm: virtio-mmio, no PCI; pc: PCI and virtio-pci
    append: str = DEFAULT_APPEND
    memory: int = DEFAULT_MEMORY
    snapshot: bool = False
    rtc_base: int | None = None     # also seeds RDRAND: with it, two runs are the same
    code_cache: bool = True         # reuse blocks translated by earlier runs (cpu/codecache.py)
    jit: str = "off"                # off, on or eager: the native tier (cpu/jit.py)
    cpu: str = "max"                # the CPU level: what CPUID says, which instructions exist (cpu/cpuid.py)


class IsaPorts:
    """Port I/O as the CPU sees it: the port bus, each access taking PORT_IO_NS of virtual time."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        self.bus = bus
        self.clock = clock

    def read(self, port: int, size: int) -> int:
        self.clock.spend(PORT_IO_NS)
        return self.bus.read(port, size)

    def write(self, port: int, size: int, value: int) -> None:
        self.clock.spend(PORT_IO_NS)
        self.bus.write(port, size, value)


class PostPort:
    """Port 0x80: the POST diagnostic port; writes are Linux's I/O delay and go nowhere."""

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        pass


class MachineStop(Exception):
    """The guest ended the machine: power-off, reset, or the debug-exit port."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Machine:
    def __init__(self, config: MachineConfig, output: Callable[[bytes], None], *, log: TextIO | None = None) -> None:
        if not 16 << 20 <= config.memory <= MAX_RAM or config.memory % 4096:
            raise ValueError(f"memory must be between 16 MiB and {MAX_RAM >> 30} GiB in 4 KiB units")
        self.config = config
        self.log = log if log is not None else sys.stderr
        self.stop: MachineStop | None = None
        self.halted = False
        """The CPU executed HLT and waits for an interrupt."""
        self.halted_ns = 0
        """Virtual time skipped while the CPU was halted (``info clock``)."""

        # The CPU, its physical memory and the two buses.
        self.state = CpuState()
        self.mmio = Bus("mmio", log=self.log)
        self.ports = Bus("ports")
        self.phys = PhysicalMemory(config.memory, self.mmio)
        self.mmu = Mmu(self.state, self.phys)
        self.cpu = Interpreter(self.state, self.mmu, code_cache=CodeCache.open() if config.code_cache else None,
                               cpu=level(config.cpu), entropy_seed=config.rtc_base)
        if config.jit != "off":
            from cpu.jit import Jit  # only here, so that llvmlite is loaded only when the JIT is on

            self.cpu.jit = Jit(self.cpu, config.jit)
        self.clock = Clock(self.state)
        self.cpu.io = IsaPorts(self.ports, self.clock)

        # Interrupt controller: INTR rising makes the CPU return to this loop.
        self.pic = Pic8259Pair(on_intr=lambda level: level and self.cpu.request_exit())
        self.ports.map(0x20, 2, self.pic.master, "pic-master")
        self.ports.map(0xA0, 2, self.pic.slave, "pic-slave")

        # Timer, RTC, reset line, POST port, debug exit, serial console.
        self.pit = Pit8254(self.clock, self.pic.irq(PIT_IRQ))
        self.ports.map(0x40, 4, self.pit, "pit")
        self.ports.map(0x61, 1, self.pit.port61, "port61")
        self.cmos = Cmos(self.clock, base=config.rtc_base)
        self.ports.map(0x70, 2, self.cmos, "rtc")
        self.i8042 = I8042(reset=lambda: self.halt(0, "reset through the i8042"))
        self.ports.map(0x60, 1, self.i8042.data, "i8042-data")
        self.ports.map(0x64, 1, self.i8042.command, "i8042-command")
        self.ports.map(0x80, 1, PostPort(), "post")
        self.ports.map(0xF4, 1, DebugExit(lambda status: self.halt(status, "debug-exit port")), "debug-exit")
        self.uart = Uart16550(self.pic.irq(UART_IRQ), output)
        self.ports.map(0x3F8, 8, self.uart, "uart")

        # virtio-blk disks: /dev/vda, /dev/vdb, ... in this order.
        if config.machine not in MACHINES:
            raise ValueError(f"unknown machine {config.machine!r}: choose one of {', '.join(MACHINES)}")
        self.disks = [VirtioBlk(d.path, snapshot=config.snapshot, read_only=d.read_only, log=self.log)
                      for d in config.disks]
        append = config.append
        self.pci: PciHost | None = None
        if config.machine == "microvm":
            # On the MMIO window, announced on the kernel command line.
            for n, disk in enumerate(self.disks):
                base = VIRTIO_BASE + VIRTIO_STRIDE * n
                transport = VirtioMmio(disk, self.phys, self.pic.irq(VIRTIO_IRQ + n), log=self.log)
                self.mmio.map(base, WINDOW_SIZE, transport, f"virtio-blk{n}")
                append += f" virtio_mmio.device={WINDOW_SIZE}@{base:#x}:{VIRTIO_IRQ + n}"
        else:
            # The PCI host bridge and the ELCR, a virtio-pci function per disk, then the firmware's POST.
            self.ports.map(0x4D0, 2, Elcr(self.pic), "elcr")
            self.pci = PciHost(self.ports, self.mmio, config.memory, self.pic.irq, log=self.log)
            self.ports.map(0xCF8, 8, self.pci, "pci-conf1")
            for n, disk in enumerate(self.disks):
                self.pci.attach(1 + n, VirtioPci(disk, self.phys, log=self.log).function)
            assign_resources(self.ports)

        # The kernel, loaded as a boot loader would.
        self.boot: BootInfo = load_linux(self.phys, self.state, config.kernel, initrd=config.initrd,
                                         cmdline=append.strip())
        self.mmu.flush_tlb()

    # -- the run loop ---------------------------------------------------------
    def halt(self, status: int, reason: str) -> None:
        """Stop the machine after the current block: its run ends with exit status ``status``."""
        self.stop = MachineStop(status, reason)
        self.cpu.request_exit()

    @property
    def halted_for_good(self) -> bool:
        """HLT with IF clear and no NMI source: nothing can ever wake the CPU (Linux's power-off)."""
        return not self.state.rflags & Flag.IF

    def run(self, limit_ns: int | None = None, *, idle: Callable[[int], None] | None = None) -> MachineStop | None:
        """Run until the guest stops the machine, or for ``limit_ns`` of virtual time.

        ``idle(ns)`` is called when the CPU halts with nothing due for ``ns``
        nanoseconds (interactive sessions wait for host input there).  The
        steps of one turn of the loop are public so that a debugger
        (emu/debug/machine_target.py) can stop between them.
        """
        end = None if limit_ns is None else self.clock.now() + limit_ns
        while self.stop is None:
            now = self.clock.now()
            if end is not None and now >= end:
                return None
            self.service()
            if self.halted:
                self.wait_halted(idle)
                continue
            self.execute(self.budget(SLICE_NS if end is None else end - now))
        self.close()
        return self.stop

    def service(self) -> int | None:
        """Between two instructions: fire the timers that are due, then deliver the interrupt the PIC
        raises if the CPU accepts it now (else ask the CPU to return the moment it does).
        Returns the vector delivered, if any."""
        self.clock.fire_due()
        if not self.pic.pending():
            return None
        if not exceptions.accepts_interrupt(self.state):
            self.cpu.request_interrupt_window()     # IF is clear or a shadow is open: come back when not
            return None
        self.halted = False
        vector = self.pic.acknowledge()
        self._deliver(vector, None, external=True)
        return vector

    def wait_halted(self, idle: Callable[[int], None] | None) -> None:
        """The CPU is halted: power off if nothing can wake it, else let virtual time jump to the next
        deadline (after ``idle`` had its chance to wait for the host, where a person types)."""
        if self.halted_for_good:
            self.stop = MachineStop(0, "the CPU halted with interrupts disabled (power off)")
            return
        now = self.clock.now()
        deadline = self.clock.next_deadline()
        if deadline is None:
            if idle is None:
                self.stop = MachineStop(1, "the CPU halted with no timer armed and no input possible")
            else:
                idle(SLICE_NS)
            return
        if idle is not None:
            idle(deadline - now)
        self.halted_ns += max(0, deadline - self.clock.now())
        self.clock.skip_to(deadline)

    def budget(self, most: int) -> int:
        """Instructions the CPU may run now: at most ``most``, and never past the next clock deadline."""
        deadline = self.clock.next_deadline()
        if deadline is not None:
            most = min(most, deadline - self.clock.now())
        return max(1, min(most, SLICE_NS))

    def execute(self, budget: int) -> Exit:
        """Run the CPU for at most ``budget`` instructions and handle why it returned: HLT halts it, a
        fault is delivered through the IDT, SYSCALL enters the kernel.  Returns the CPU's exit."""
        exit_ = self.cpu.run(budget)
        match exit_.kind:
            case ExitKind.HALT:
                self.halted = True
            case ExitKind.FAULT:
                self._deliver(exit_.fault.vector, exit_.fault.error_code, fault=exit_.fault)
            case ExitKind.SYSCALL:
                self._guarded(lambda: exceptions.syscall_entry(self.cpu))
        return exit_

    def close(self) -> None:
        """The machine has stopped: write back and close the disks."""
        for disk in self.disks:
            disk.close()

    def _deliver(self, vector: int, error_code: int | None, *, external: bool = False,
                 fault: GuestFault | None = None) -> None:
        self._guarded(lambda: exceptions.deliver(self.cpu, vector, error_code, external=external, fault=fault))

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except TripleFault as err:
            self.stop = MachineStop(0, f"triple fault ({err}): the machine resets")
