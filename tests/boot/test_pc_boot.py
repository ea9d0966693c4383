"""The default guest on `--machine pc`: its kernel (CONFIG_PCI, CONFIG_VIRTIO_PCI) finds the PCI bus the
firmware set up and its disk as a virtio-pci function, judged by the guest's own serial output."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = """ls /sys/bus/pci/devices
cat /sys/bus/pci/devices/0000:00:01.0/vendor /sys/bus/pci/devices/0000:00:01.0/device
ls /sys/bus/virtio/drivers/virtio_blk
cat /proc/interrupts
echo written-over-pci > /mnt/from-guest.txt
sync
cat /mnt/hello.txt
poweroff -f
"""


def test_the_guest_boots_on_pc_and_uses_its_disk_over_virtio_pci(guest, tmp_path: Path):
    disk = tmp_path / "disk.img"
    shutil.copy(guest.disk, disk)
    run = subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--machine", "pc", "--kernel", str(guest.kernel), "--initrd",
         str(guest.initrd), "--disk", str(disk), "--rtc-base", "1700000000", "--script", SCRIPT],
        capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    log = run.stdout
    assert "emu-guest: init reached" in log
    assert "virtio_mmio" not in log, "on pc the disk is not announced on the command line"
    assert "PCI: Using configuration type 1 for base access" in log
    assert "[1af4:1001] type 00 class 0x010000" in log, "the kernel enumerated the transitional virtio-blk"
    # /sys/bus/pci/devices lists the host bridge in slot 0 and the disk in slot 1.
    assert re.search(r"^0000:00:00\.0\s+0000:00:01\.0\s*$", log, re.M), log[-3000:]
    assert re.search(r"^0x1af4\s*\n0x1001\s*$", log, re.M)
    assert "virtio0" in log.split("ls /sys/bus/virtio/drivers/virtio_blk", 1)[1], "virtio_blk bound the device"
    assert "emu-guest: /dev/vda mounted on /mnt" in log
    assert re.search(r"^\s*11:\s+[1-9]\d*\s+XT-PIC\s+virtio0", log, re.M), "slot 1's INTA# on IRQ 11, counted"
    assert "hello from the virtio disk" in log
    assert "power off" in run.stderr
    content = subprocess.run(["debugfs", "-R", "cat /from-guest.txt", str(disk)], capture_output=True, text=True,
                             check=True).stdout
    assert content == "written-over-pci\n"
