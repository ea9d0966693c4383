"""The Debian guest recipe (emu/machine/debian_guest.py, guest_images/debian/): module ordering from the modules'
own `depends=`, the initramfs writer, the hash.  Its boot is tests/boot/test_debian_boot.py."""

from __future__ import annotations

import shutil
import subprocess
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

