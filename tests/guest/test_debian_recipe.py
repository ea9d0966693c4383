"""The Debian guest recipe (emu/machine/debian_guest.py, guest_images/debian/): module ordering from the modules'
own `depends=`, the initramfs writer, the hash; and (slow) the stock kernel booting on --machine pc."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emu.machine import debian_guest as dg
from emu.machine.guest import GuestBuildError, recipe_hash


def fake_module(depends: str) -> bytes:
    """The bytes of a .ko as far as _depends reads them: a .modinfo string table."""
    return b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0retpoline=Y\0"


def test_depends_is_read_from_the_modinfo_section():
    assert dg._depends(fake_module("virtio_ring,virtio")) == ["virtio_ring", "virtio"]
    assert dg._depends(fake_module("")) == []


def test_modules_come_after_everything_they_depend_on():
    depends = {"virtio_pci": ["virtio_ring", "virtio_pci_modern_dev", "virtio"],
               "virtio_blk": ["virtio", "virtio_ring"], "virtio": [], "virtio_ring": [], "virtio_pci_modern_dev": []}
    order = dg.module_order(["virtio_pci", "virtio_blk"], depends)
    assert sorted(order) == sorted(depends)
    for module, needs in depends.items():
        assert all(order.index(n) < order.index(module) for n in needs)


def test_a_missing_module_or_a_circle_is_a_build_error():
    with pytest.raises(GuestBuildError, match="not in the kernel package"):
        dg.module_order(["virtio_blk"], {"virtio_blk": ["virtio"]})
    with pytest.raises(GuestBuildError, match="circle"):
        dg.module_order(["a"], {"a": ["b"], "b": ["a"]})


def test_initramfs_holds_the_prelude_as_init_the_project_init_busybox_and_the_modules_in_order():
    archive = dg._initramfs({"virtio": b"ko-1", "virtio_blk": b"ko-2"}, ["virtio", "virtio_blk"])
    listing = subprocess.run(["cpio", "-t"], input=archive, capture_output=True, check=True).stdout.decode().split()
    assert {"init", "bin/emu-init", "bin/busybox", "bin/insmod", "dev/console", "lib/modules/virtio.ko",
            "lib/modules/virtio_blk.ko", "lib/modules/emu.order"} <= set(listing)
    assert b"virtio\nvirtio_blk\n" in archive
    assert (dg.DEBIAN_DIR / "init").read_bytes() in archive


def test_the_debian_recipe_does_not_change_the_tiny_guests_hash(tmp_path: Path):
    copy = tmp_path / "guest_images"
    shutil.copytree(dg.RECIPE_DIR, copy)
    (copy / "debian" / "modules").write_text("virtio_net\n")
    assert recipe_hash(copy) == recipe_hash()


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
