"""Booting Debian's stock cloud kernel (`emu boot --guest debian`, built by emu/machine/debian_guest.py) on the
pc machine: the kernel finds the PCI bus and its virtio-pci disks, judged by the guest's own serial output."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emu.machine import debian_guest as dg


@pytest.mark.slow
def test_debian_stock_kernel_boots_on_pc_mounts_vda_and_writes_a_file_the_host_reads(tmp_path: Path):
    """About 4 minutes with the JIT: ~0.56 G instructions (cryptomgr.notests) to poweroff.  A second disk,
    read-only, is /dev/vdb in slot 2."""
    guest = dg.debian_guest(progress=lambda line: print(line, file=sys.stderr))
    disk, second = tmp_path / "disk.img", tmp_path / "second.img"
    shutil.copy(guest.disk, disk)
    second.write_bytes(bytes(1 << 20))
    script = ("cat /proc/interrupts\necho vdb-ro=$(cat /sys/block/vdb/ro)\n"
              "echo written-by-debian > /mnt/from-guest.txt\nsync\npoweroff -f\n")
    run = subprocess.run([sys.executable, "-m", "emu", "boot", "--guest", "debian", "--jit=on", "--disk", str(disk),
                          "--disk", f"{second},ro", "--rtc-base", "1700000000", "--script", script],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "PCI: Using configuration type 1 for base access" in run.stdout
    assert "[1af4:1001] type 00 class 0x010000" in run.stdout
    assert "emu-guest: /dev/vda mounted on /mnt" in run.stdout
    assert re.search(r"^\s*11:\s+[1-9]\d*\s+XT-PIC\s+virtio0", run.stdout, re.M), "vda's INTA# on IRQ 11"
    assert re.search(r"^\s*9:\s+\d+\s+XT-PIC\s+virtio1", run.stdout, re.M), "vdb's INTA# on IRQ 9"
    assert "vdb-ro=1" in run.stdout
    content = subprocess.run(["debugfs", "-R", "cat /from-guest.txt", str(disk)], capture_output=True, text=True,
                             check=True).stdout
    assert content == "written-by-debian\n"
