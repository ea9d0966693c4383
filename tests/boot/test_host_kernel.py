"""A kernel from a Debian host: `emu boot --kernel /boot/vmlinuz-* --initrd /boot/initrd.img-*` with the files
as Debian installs them (README.md, "A kernel from your Debian host").  The slow tests build a real
initramfs-tools initrd for Debian's cloud kernel (tests/boot/initramfs_tools.py) and judge the guest by its own
serial output; the others check what a user meets first: an unreadable kernel, a large initrd."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.boot import initramfs_tools

RTC_BASE = "1700000000"


@pytest.fixture(scope="module")
def host() -> initramfs_tools.HostInitrd:
    reason = initramfs_tools.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return initramfs_tools.host_initrd(lambda line: print(line, file=sys.stderr))


def boot(host: initramfs_tools.HostInitrd, root: Path, append: str, script: str) -> subprocess.CompletedProcess[str]:
    """No --memory: emu picks 512 MiB for the 13.6 MiB initrd."""
    return subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--machine", "pc", "--kernel", str(host.kernel), "--initrd",
         str(host.initrd), "--disk", str(root), "--append", append, "--rtc-base", RTC_BASE, "--script", script],
        capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_a_real_initramfs_tools_initrd_loads_virtio_and_mounts_the_root_disk(host, tmp_path: Path):
    """About 1.44 G instructions, 4-8 minutes with a cold code cache on a loaded 2-core machine.  The initrd's
    udevd and kmod (dynamically linked glibc programs, which need a CPU vendor glibc knows) load virtio_pci and
    virtio_blk; its init mounts /dev/vda and runs the root filesystem's /sbin/init, which writes the disk."""
    root = tmp_path / "root.img"
    shutil.copy(host.root, root)
    script = "ls /sys/bus/pci/devices\ncat /proc/cmdline\necho written-from-the-root-fs > /hello\nsync\npoweroff -f\n"
    run = boot(host, root, "root=/dev/vda rw cryptomgr.notests", script)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "emu: 512 MiB of RAM for the 13 MiB initrd" in run.stderr
    log = run.stdout
    assert "CPU ISA level is lower than required" not in log
    assert "Begin: Loading essential drivers ... done." in log
    assert "virtio_blk virtio0: [vda] 16384 512-byte logical blocks" in log
    assert "emu-guest: init reached (the root filesystem's /sbin/init)" in log
    assert re.search(r"^0000:00:00\.0\s+0000:00:01\.0\s*$", log, re.M), log[-3000:]
    content = subprocess.run(["debugfs", "-R", "cat /hello", str(root)], capture_output=True, text=True,
                             check=True).stdout
    assert content == "written-from-the-root-fs\n"


@pytest.mark.slow
def test_without_root_the_initrd_stops_in_its_initramfs_shell_and_the_script_runs_there(host, tmp_path: Path):
    """initramfs-tools panics to its busybox shell ("No root device specified"); --script types at its
    `(initramfs) ` prompt."""
    root = tmp_path / "root.img"
    shutil.copy(host.root, root)
    run = boot(host, root, "cryptomgr.notests", "echo shell-$((6*7))\nls /sys/bus/pci/devices\npoweroff -f\n")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "No root device specified." in run.stdout
    assert "\nshell-42\n" in run.stdout.replace("\r", "")
    assert re.search(r"^0000:00:00\.0\s+0000:00:01\.0\s*$", run.stdout, re.M)


def test_an_unreadable_kernel_is_one_line_saying_what_to_do(tmp_path: Path, guest):
    """Debian installs /boot/vmlinuz-* with mode 0600 for root.  Played here as root without the capabilities
    that bypass file permissions (setpriv), reading a 0600 file another user owns."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to drop the permission-bypassing capabilities")
    kernel = tmp_path / "vmlinuz"
    shutil.copy(guest.kernel, kernel)
    kernel.chmod(0o600)
    os.chown(kernel, 65534, 65534)
    tmp_path.chmod(0o755)
    run = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                          "emu", "boot", "--kernel", str(kernel), "--script", "poweroff -f"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"emu: error: cannot read kernel {kernel}: Permission denied;")
    assert f"sudo install -m 644 {kernel} ~/" in lines[0] and "run emu as root" in lines[0]


def test_an_initrd_over_8_mib_gets_512_mib_of_ram_unless_memory_is_given(tmp_path: Path, guest):
    """The default guest's initrd padded past 8 MiB with zeros (the kernel skips zeros between archives)."""
    initrd = tmp_path / "initrd.cpio"
    data = guest.initrd.read_bytes()
    initrd.write_bytes(data + bytes((9 << 20) - len(data)))
    run = subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel), "--initrd", str(initrd), "--disk",
         str(guest.disk), "--snapshot", "--rtc-base", RTC_BASE, "--script", "cat /proc/meminfo\npoweroff -f\n"],
        capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stderr.splitlines()[0] == "emu: 512 MiB of RAM for the 9 MiB initrd (--memory sets it)"
    total = int(re.search(r"^MemTotal:\s+(\d+) kB", run.stdout, re.M)[1])
    assert 400 << 10 < total < 512 << 10, total
