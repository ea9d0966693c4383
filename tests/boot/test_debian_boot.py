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


@pytest.mark.slow
def test_debian_stock_kernel_takes_an_initrd_in_the_initramfs_tools_layout_given_with_kernel_and_initrd(
        tmp_path: Path):
    """`emu boot --kernel K --initrd I` as a user with a Debian host's files would type it.  The initrd is laid out
    as initramfs-tools writes one (an uncompressed early cpio for CPU microcode, then the main archive
    compressed with zstd); its contents are the Debian guest's, since a real initramfs-tools image needs the
    package and a kernel installed (README.md says what is not tested)."""
    guest = dg.debian_guest(progress=lambda line: print(line, file=sys.stderr))
    early = tmp_path / "early"
    (early / "kernel" / "x86" / "microcode").mkdir(parents=True)
    (early / "kernel" / "x86" / "microcode" / "GenuineIntel.bin").write_bytes(b"")
    names = "kernel\nkernel/x86\nkernel/x86/microcode\nkernel/x86/microcode/GenuineIntel.bin\n"
    early_cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=early, input=names.encode(),
                                capture_output=True, check=True).stdout
    main = subprocess.run(["zstd", "-q", "-c", str(guest.initrd)], capture_output=True, check=True).stdout
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(early_cpio + main)
    run = subprocess.run([sys.executable, "-m", "emu", "boot", "--machine", "pc", "--kernel", str(guest.kernel),
                          "--initrd", str(initrd), "--disk", f"{guest.disk},ro", "--append", guest.append,
                          "--rtc-base", "1700000000", "--script", "cat /mnt/hello.txt\npoweroff -f\n"],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # /init is only in the zstd archive: the marker means the kernel unpacked it after the early cpio.
    assert "Initramfs unpacking failed" not in run.stdout
    assert "emu-guest: init reached" in run.stdout
    assert "emu-guest: /dev/vda mounted on /mnt" in run.stdout
    assert "hello from the virtio disk" in run.stdout
