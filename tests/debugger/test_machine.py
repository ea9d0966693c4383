"""`emu debug --boot` on the default guest, driven over a pipe as a person at the prompt would.

Each scenario boots the guest once (deterministically: --rtc-base) and stops
early in the boot: at the kernel's entry, at start_kernel (about 15 M
instructions), at the first timer interrupt (about 25 M), at run_init_process
(about 36 M).  Addresses come from the guest's own System.map.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emu.debug.symbols import SymbolTable, load_symbols
from emu.machine.guest import default_guest

ROOT = Path(__file__).resolve().parents[2]
RTC_BASE = "1700000000"
TIMEOUT = 300
PROMPT = "(emu) "
KERNEL_ENTRY = 0x100200
"""The 64-bit entry of a bzImage loaded at 1 MiB (the boot protocol's load address + 0x200)."""
TIMER_VECTOR = 0x30
"""Linux's vector for ISA IRQ 0 (ISA_IRQ_VECTOR(0)): it programs the master PIC's base to 0x30."""


class Repl:
    """``python -m emu debug --boot`` with its stdin and stdout on pipes: one command in, its output out."""

    def __init__(self, serial: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emu", "debug", "--boot", "--rtc-base", RTC_BASE, "--serial", str(serial), *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.banner = self._until_prompt()

    def _until_prompt(self) -> str:
        out = b""
        deadline = time.monotonic() + TIMEOUT
        fd = self.proc.stdout.fileno()
        while not out.endswith(PROMPT.encode()):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                self.proc.kill()
                raise AssertionError(f"no prompt from emu debug --boot; output so far: {out.decode()[-3000:]}\n"
                                     f"stderr: {self.proc.stderr.read().decode()[-3000:]}")
            out += chunk
        return out.decode()[:-len(PROMPT)]

    def __call__(self, command: str) -> str:
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        output = self._until_prompt()
        assert "internal error" not in output, output
        return output

    def quit(self) -> int:
        self.proc.stdin.write(b"quit\n")
        self.proc.stdin.flush()
        self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode


@pytest.fixture(scope="module")
def guest():
    return default_guest(progress=lambda line: print(line, file=sys.stderr))


@pytest.fixture(scope="module")
def symbols(guest) -> SymbolTable:
    return load_symbols(str(guest.system_map))


def address_of(symbols: SymbolTable, name: str) -> int:
    symbol = symbols.lookup(name)
    assert symbol is not None, f"{name} is not in the guest's System.map"
    return symbol.address


def run_commands(tmp_path: Path, commands: list[str]) -> tuple[str, list[str], str, int]:
    """Boot under the debugger, run ``commands``: (banner, output of each command, serial output, exit status)."""
    serial = tmp_path / "serial.txt"
    repl = Repl(serial)
    outputs = [repl(command) for command in commands]
    status = repl.quit()
    return repl.banner, outputs, serial.read_text(errors="replace"), status


# -- at the entry and at start_kernel -----------------------------------------------------------
START_KERNEL_SESSION = ["x/4i $pc", "info registers rip cr0 cpl", "si 3", "xp/4xg 0x7000", "xp/xw 0x7202",
                        "break start_kernel", "continue", "info registers", "pagewalk start_kernel", "info tlb",
                        "info mem", "info clock", "info pic", "info devices"]


@pytest.fixture(scope="module")
def at_start_kernel(guest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str], str, int]:
    banner, outputs, serial, status = run_commands(tmp_path_factory.mktemp("start_kernel"), START_KERNEL_SESSION)
    return banner, dict(zip(START_KERNEL_SESSION, outputs, strict=True)), serial, status


def test_debug_boot_stops_at_the_kernel_entry_before_the_first_instruction(at_start_kernel) -> None:
    banner, out, _, _ = at_start_kernel
    assert f"stopped at the entry point {KERNEL_ENTRY:#x}, before the first instruction" in banner
    assert f"=> {KERNEL_ENTRY:#x}:" in banner
    assert re.search(r"^rip\s+0x100200\b", out["info registers rip cr0 cpl"], re.M)
    assert re.search(r"^cpl\s+0x0\s+0$", out["info registers rip cr0 cpl"], re.M)


def test_si_3_advances_three_instructions(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    fourth = re.findall(r"(0x[0-9a-f]+):", out["x/4i $pc"])[3]
    assert out["si 3"].startswith(f"Stopped at {fourth}\n=> {fourth}:")


def test_xp_shows_the_boot_params_the_loader_wrote_at_0x7000(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    lines = out["xp/4xg 0x7000"].splitlines()
    assert [line.split(":")[0] for line in lines] == ["0x7000", "0x7010"]
    assert out["xp/xw 0x7202"].strip() == "0x7202:\t0x53726448"          # the setup header's "HdrS"


def test_break_start_kernel_stops_at_its_system_map_address(at_start_kernel, symbols) -> None:
    _, out, _, _ = at_start_kernel
    start_kernel = address_of(symbols, "start_kernel")
    assert out["break start_kernel"].strip() == f"Breakpoint 1 at {start_kernel:#x} <start_kernel+0>"
    assert out["continue"].startswith(f"Breakpoint 1, {start_kernel:#x}\n=> {start_kernel:#x} <start_kernel+0>:")


def test_info_registers_shows_the_system_registers_with_cr0_pg(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    registers = out["info registers"]
    cr0 = re.search(r"^cr0\s+(0x[0-9a-f]+)\s+\[ (.*) \]$", registers, re.M)
    assert cr0 and int(cr0[1], 16) >> 31 == 1 and {"PE", "PG", "WP"} <= set(cr0[2].split())
    for name in ("rip", "cr2", "cr3", "cr4", "efer", "cpl", "gdtr", "idtr", "tr", "fs_base", "gs_base",
                 "kernel_gs_base"):
        assert re.search(rf"^{name}\s+0x", registers, re.M), name
    assert re.search(r"^efer\s+0x[0-9a-f]+\s+\[ .*LMA.* \]$", registers, re.M)
    assert re.search(r"^gdtr\s+0x[0-9a-f]+\s+limit=0x[0-9a-f]+$", registers, re.M)


def test_pagewalk_of_start_kernel_reaches_the_kernel_physical_load_at_16_mib(at_start_kernel, symbols) -> None:
    _, out, _, _ = at_start_kernel
    walk = out["pagewalk start_kernel"]
    start_kernel = address_of(symbols, "start_kernel")
    assert walk.startswith(f"read of {start_kernel:#x} at CPL 0")
    names = re.findall(r"^  (PML4E|PDPTE|PDE|PTE) @ 0x[0-9a-f]+ = 0x[0-9a-f]{16} \[(.*)\]$", walk, re.M)
    assert [n for n, _ in names][:3] == ["PML4E", "PDPTE", "PDE"]
    assert len(names) == 4 or "PS" in names[-1][1].split()            # four levels, or a large page
    physical = int(re.search(r"-> physical (0x[0-9a-f]+)", walk)[1], 16)
    assert 16 << 20 <= physical < 32 << 20
    assert physical & 0xFFF == start_kernel & 0xFFF


def test_info_tlb_lists_the_cached_translations_with_flags(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    tlb = out["info tlb"]
    assert re.search(r"^Supervisor TLB \(CPL 0-2\) in use: \d+ pages$", tlb, re.M)
    entries = re.findall(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ([r-][w-][x-]) ([X-][G-][P-][D-][A-][C-][T-][U-][W-])",
                         tlb, re.M)
    assert entries
    code = [e for e in entries if e[2].endswith("x") and e[0].startswith("ffffffff8")]
    assert code, "the kernel's code is in the fetch TLB"


def test_info_mem_shows_the_kernel_mapping_and_its_rights(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    ranges = re.findall(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-]r[w-][x-])", out["info mem"], re.M)
    kernel = [r for r in ranges if int(r[0], 16) <= 0xFFFFFFFF81000000 < int(r[1], 16)]
    assert kernel and kernel[0][3].startswith("-r")                       # supervisor-only
    assert any(r[3].startswith("-rw") for r in ranges)


def test_info_clock_pic_and_devices_at_start_kernel(at_start_kernel) -> None:
    _, out, _, _ = at_start_kernel
    clock = out["info clock"]
    retired = int(re.search(r"^Instructions retired: (\d+)", clock, re.M)[1])
    now = int(re.search(r"^Virtual time: (\d+) ns", clock, re.M)[1])
    assert 5_000_000 < retired <= now
    assert "master: irr=00 isr=00 imr=ff vector_base=0x08" in out["info pic"]   # Linux has not set it up yet
    devices = out["info devices"]
    assert re.search(r"^  03f8-03ff  uart$", devices, re.M) and re.search(r"^  d0000000-d00001ff  virtio-blk0$",
                                                                          devices, re.M)


def test_with_the_jit_on_break_start_kernel_stops_at_the_same_instruction_count(at_start_kernel, tmp_path) -> None:
    """The same session in the native tier: the breakpoint, the registers and the clock are the Python tier's."""
    _, off, _, _ = at_start_kernel
    serial = tmp_path / "serial.txt"
    repl = Repl(serial, "--jit=on")
    outputs = {command: repl(command) for command in ("break start_kernel", "continue", "info registers rip rsp",
                                                      "info clock", "info jit")}
    assert repl.quit() == 0
    assert outputs["continue"].startswith("Breakpoint 1, ")
    for command in ("info clock",):
        assert outputs[command] == off[command]
    rip = re.search(r"^rip\s+(0x[0-9a-f]+)", outputs["info registers rip rsp"], re.M)[1]
    assert rip == re.search(r"^rip\s+(0x[0-9a-f]+)", off["info registers"], re.M)[1]
    assert re.search(r"^JIT on: [1-9]\d* of \d+ blocks native", outputs["info jit"], re.M), outputs["info jit"]


def test_quit_ends_the_session_with_status_0(at_start_kernel) -> None:
    assert at_start_kernel[3] == 0


# -- one timer interrupt, then a serial one ------------------------------------------------------------
@pytest.fixture(scope="module")
def interrupts(guest, symbols, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Break where the IDT is set up, find vector 0x30's handler in the IDT, break there; later type into the
    serial console at run_init_process and step once."""
    serial = tmp_path_factory.mktemp("interrupts") / "serial.txt"
    repl = Repl(serial)
    out = {"break time_init": repl("break time_init"), "c1": repl("continue")}
    gate = f"$idtr_base + {TIMER_VECTOR * 16}"
    out["gate"] = repl(f"p/x *(long *)({gate}) & 0xffff | *(long *)({gate}) >> 32 & 0xffff0000 "
                       f"| *(long *)({gate} + 8) << 32")
    for command in ("delete", "break *$1", "continue", "info pic", "x/5xg $rsp", "info registers cpl cs",
                    "stepi", "x/xg $rsp", "stepi", "delete", "break timer_interrupt", "continue", "bt",
                    "delete", "break run_init_process", "continue", "info pic", 'serial "x"', "info pic", "stepi",
                    "info pic"):
        out[f"{len(out)}: {command}"] = repl(command)
    out["status"] = str(repl.quit())
    return out


def step(out: dict[str, str], command: str, nth: int = 1) -> str:
    """The output of the ``nth`` run of ``command`` in the interrupts session."""
    return [text for key, text in out.items() if key.endswith(f": {command}")][nth - 1]


def test_the_idt_gate_of_vector_0x30_points_into_linux_irq_entry_stubs(interrupts, symbols) -> None:
    handler = int(re.search(r"\$1 = (0x[0-9a-f]+)", interrupts["gate"])[1], 16)
    assert 0 < handler - address_of(symbols, "irq_entries_start") < 0x1000


def test_a_breakpoint_on_the_handler_stops_right_after_the_timer_interrupt_is_delivered(interrupts) -> None:
    stop = step(interrupts, "continue")
    assert stop.startswith("Breakpoint 2, ")
    note = re.search(r"^Interrupt vector 0x30 \(IRQ 0 from the PIC\) delivered through the IDT: CPL 0 -> 0, "
                     r"return address (0x[0-9a-f]+)$", stop, re.M)
    assert note, stop
    frame = [int(word, 16) for line in step(interrupts, "x/5xg $rsp").splitlines()
             for word in line.split(":", 1)[1].split()]
    assert frame[0] == int(note[1], 16)                   # the CPU pushed RIP, CS, RFLAGS, RSP, SS
    assert frame[1] == 0x10 and frame[2] & 0x200          # kernel CS; IF was set when the interrupt came
    assert "master: irr=00 isr=01" in step(interrupts, "info pic")   # IRQ 0 in service
    assert re.search(r"^cpl\s+0x0\s+0$", step(interrupts, "info registers cpl cs"), re.M)


def test_the_entry_stub_pushes_the_vector_and_jumps_to_the_common_handler(interrupts) -> None:
    assert step(interrupts, "x/xg $rsp").split(":")[1].strip() == f"0x{TIMER_VECTOR:016x}"
    assert "<asm_common_interrupt+0>" in step(interrupts, "stepi", 2)
    assert step(interrupts, "continue", 2).startswith("Breakpoint 3, ")      # on to timer_interrupt
    assert "in timer_interrupt ()" in step(interrupts, "bt")


def test_si_with_an_interrupt_pending_stops_at_the_first_instruction_of_its_handler(interrupts) -> None:
    assert re.search(r"^master: irr=.. isr=00 ", step(interrupts, "info pic", 2), re.M)
    assert step(interrupts, 'serial "x"').strip() == "Typed 1 byte into the UART."
    assert re.search(r"^master: irr=(..) ", step(interrupts, "info pic", 3), re.M)[1] in ("10", "11")  # IRQ 4 asks
    stop = step(interrupts, "stepi", 3)
    assert re.search(r"^Interrupt vector 0x34 \(IRQ 4 from the PIC\) delivered through the IDT", stop, re.M), stop
    assert "push 0x34" in stop                                               # the stub's first instruction
    assert re.search(r"^master: irr=.. isr=10 ", step(interrupts, "info pic", 4), re.M)


def test_the_interrupt_session_quits_with_status_0(interrupts) -> None:
    assert interrupts["status"] == "0"


# -- the guest's console, its end, and Ctrl-C --------------------------------------------------------
def test_serial_types_into_the_shell_and_poweroff_ends_the_session_like_an_exit(guest, tmp_path: Path) -> None:
    _, out, serial, status = run_commands(tmp_path, [
        "break run_init_process", "continue", 'serial "echo typed-by-$((6*7)); poweroff -f\\n"', "delete",
        "continue", "continue"])
    assert out[1].startswith("Breakpoint 1, ")
    assert out[2].strip() == "Typed 36 bytes into the UART."
    assert out[4] == "Machine stopped: the CPU halted with interrupts disabled (power off) (exit status 0)\n"
    assert out[5] == "The program is not being run.\n"
    assert "\ntyped-by-42\n" in serial and "Run /init as init process" in serial
    assert status == 0


def test_ctrl_c_interrupts_the_running_machine_and_its_clock_stands_still_at_the_prompt(guest, tmp_path: Path) -> None:
    repl = Repl(tmp_path / "serial.txt")
    repl.proc.stdin.write(b"continue\n")
    repl.proc.stdin.flush()
    time.sleep(3)
    repl.proc.send_signal(signal.SIGINT)
    stop = repl._until_prompt()
    assert stop.startswith("Program interrupted\n=> 0x"), stop
    first = repl("info clock")
    time.sleep(0.5)
    assert repl("info clock") == first and int(re.search(r"retired: (\d+)", first)[1]) > 0
    assert repl.quit() == 0


def test_info_pci_lists_the_pc_machine_s_functions_with_the_bars_and_irqs_the_firmware_assigned(guest, tmp_path):
    """Two disks on --machine pc: the host bridge and a virtio-blk function per disk, as QEMU's `info pci`
    shows them; the microvm machine has no PCI bus and says so."""
    disks = [tmp_path / f"disk{i}.img" for i in range(2)]
    for disk in disks:
        disk.write_bytes(bytes(1 << 20))
    repl = Repl(tmp_path / "serial.txt", "--machine", "pc", *(f"--disk={d}" for d in disks))
    listing = repl("info pci")
    assert repl.quit() == 0
    assert "Bus  0, device   0, function 0:\n    Host bridge: PCI device 8086:1237" in listing
    functions = re.findall(r"device +(\d+), function 0:\n    SCSI controller: PCI device 1af4:1001\n"
                           r"      PCI subsystem 1af4:0002\n      IRQ (\d+), pin A\n"
                           r"      BAR0: I/O at (0x[0-9a-f]+) \[(0x[0-9a-f]+)\]\.\n"
                           r"      BAR1: 32 bit memory at (0x[0-9a-f]+) \[(0x[0-9a-f]+)\]\.", listing)
    assert [int(f[0]) for f in functions] == [1, 2], listing
    assert {int(f[1]) for f in functions} <= {5, 9, 10, 11} and functions[0][1] != functions[1][1]
    bars = sorted((int(start, 16), int(end, 16)) for f in functions for start, end in (f[2:4], f[4:6]))
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(bars, bars[1:], strict=False)), bars
    microvm = Repl(tmp_path / "serial2.txt")
    assert "no PCI bus" in microvm("info pci")
    assert microvm.quit() == 0
