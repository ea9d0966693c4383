"""Booting the default guest: an unmodified Linux kernel to a busybox shell, judged by its own serial output.

The guest is built on first use (the `guest` fixture in conftest.py).
Each test boots it with a script typed into the serial console.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

RTC_BASE = "1700000000"
SCRIPT = """uname -a
cat /proc/interrupts
echo written-by-the-guest > /mnt/from-guest.txt
sync
cat /mnt/hello.txt
poweroff -f
"""


def boot(guest, disk: Path, script: str = SCRIPT, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel), "--initrd", str(guest.initrd),
         "--disk", str(disk), "--rtc-base", RTC_BASE, "--script", script, "--stats", *extra],
        capture_output=True, text=True, timeout=900)


def test_the_guest_boots_runs_a_script_writes_the_disk_and_powers_off_deterministically(guest, tmp_path: Path):
    """Booted in the Python tier and with the JIT: the same log and instruction count."""
    check_tiers(guest, tmp_path, ("off", "on"))


@pytest.mark.slow
def test_the_guest_boots_the_same_with_every_block_native(guest, tmp_path: Path):
    """--jit=eager compiles each of the boot's ~35,000 blocks before it first runs (about 3 minutes alone):
    the same log, disk and instruction count as the Python tier.  `pytest -m slow`; .ci/run runs it."""
    check_tiers(guest, tmp_path, ("off", "eager"))


def check_tiers(guest, tmp_path: Path, tiers: tuple[str, ...]) -> None:
    disks = [tmp_path / f"{tier}.img" for tier in tiers]
    runs = []
    for disk, tier in zip(disks, tiers, strict=True):
        shutil.copy(guest.disk, disk)
        runs.append(boot(guest, disk, SCRIPT, f"--jit={tier}"))
    first = runs[0]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    log = first.stdout
    assert "emu-guest: init reached" in log
    # The CPU's frequency comes from CPUID leaf 0x16 (one instruction a nanosecond), not from the PIT.
    assert "tsc: Detected 1000.000 MHz processor" in log and "calibration using PIT" not in log
    assert re.search(r"Linux \S+ 6\.1\.\S+ .* x86_64", log), "uname -a output"
    timer = re.search(r"^\s*0:\s+(\d+)\s+XT-PIC\s+timer", log, re.M)
    serial = re.search(r"^\s*4:\s+(\d+)\s+XT-PIC\s+ttyS0", log, re.M)
    assert timer and int(timer[1]) > 0, "timer interrupts counted in /proc/interrupts"
    assert serial and int(serial[1]) > 0, "serial interrupts counted in /proc/interrupts"
    assert "hello from the virtio disk" in log
    assert "powered off" in first.stderr or "power off" in first.stderr
    # The file the guest wrote reached the image on the host.
    for disk in disks:
        content = subprocess.run(["debugfs", "-R", "cat /from-guest.txt", str(disk)], capture_output=True,
                                 text=True, check=True).stdout
        assert content == "written-by-the-guest\n"
    # Same RTC base, same inputs: the same log, timestamps included, and the same instruction count.
    for run in runs[1:]:
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout == runs[0].stdout
    count = [re.search(r"(\d+) instructions retired", r.stderr)[1] for r in runs]
    assert len(set(count)) == 1, dict(zip(tiers, count, strict=True))


def test_the_interactive_shell_answers_through_a_pseudo_terminal(guest, tmp_path: Path):
    disk = tmp_path / "disk.img"
    shutil.copy(guest.disk, disk)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel),
                                  "--initrd", str(guest.initrd), "--disk", str(disk)])
    seen = bytearray()

    def wait_for(pattern: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {pattern!r}; last output: {bytes(seen[-500:])!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    seen.extend(os.read(fd, 4096))
                except OSError:
                    break
    try:
        wait_for(b"emu-guest: init reached", 600)
        wait_for(b"# ", 120)
        os.write(fd, b"echo h''i\r")
        wait_for(b"\nhi\r\n", 120)
        os.write(fd, b"\x01x")                      # Ctrl-A X quits
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def test_reboot_with_reboot_t_ends_in_a_triple_fault_that_stops_the_machine_with_status_0(guest):
    proc = subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel), "--initrd", str(guest.initrd),
         "--rtc-base", RTC_BASE, "--script", "reboot -f"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reboot: Restarting system" in proc.stdout
    assert "triple fault" in proc.stderr


def test_a_scripted_boot_whose_kernel_panics_stops_with_one_line_saying_why(guest):
    """No initramfs and no root disk: Linux panics and never reads its console again, so the scripted run ends
    with status 1 and a line that names the panic and what to give the kernel."""
    proc = subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel), "--rtc-base", RTC_BASE,
         "--script", "poweroff -f"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("emu: the guest kernel panicked (VFS: Unable to mount root fs on unknown-block(0,0))")
    assert "--initrd" in last and "root=/dev/vda" in last
    assert "Traceback" not in proc.stderr
