"""A real initramfs-tools initrd for Debian's cloud kernel, and a root disk for it: what a Debian host's
`/boot/initrd.img-*` is, built without installing the kernel (README.md, "A kernel from your Debian host").

`host_initrd()` builds on first use into `~/.cache/emu/initramfs-tools/<hash>/` (`$EMU_CACHE_DIR/...` when
set), `<hash>` covering this file, the kernel package and the host's initramfs-tools, busybox-static and
udev versions, and returns `vmlinuz`, `initrd.img` and `root.img`.  The steps:

1. the Debian guest's downloaded kernel package (emu/machine/debian_guest.py) is unpacked with `dpkg-deb -x`;
2. in a private mount namespace (`unshare --mount`, so the host's /usr and /boot never change) the package's
   `lib/modules` and `boot` are laid over /usr and /boot with overlayfs, whose upper layers are in the work
   directory; there `depmod` indexes the modules and Debian's own `mkinitramfs` (initramfs-tools, with a
   configuration directory of its own: `MODULES=most`, zstd) writes the initrd, as `update-initramfs` does on a
   host where the kernel is installed;
3. the root disk is an ext2 image (`mke2fs -d`) holding busybox-static, /dev/console, the /dev, /proc, /sys
   and /run the initrd moves its mounts to, and an /sbin/init script that mounts /proc and /sys when they are
   not mounted yet, prints the project's init marker (so `emu boot --script` types after it) and
   runs a shell on the console.

`unavailable()` says why it cannot be built here (not root, no initramfs-tools), for the test to skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emu.machine import debian_guest as dg
from emu.machine.console import INIT_MARKER
from emu.machine.guest import BUSYBOX, GuestBuildError, _locked, cache_root

TOOLS = ("mkinitramfs", "depmod", "unshare", "mke2fs", "debugfs", "dpkg-deb")
HOST_PACKAGES = ("initramfs-tools", "busybox-static", "udev", "kmod")
ROOT_SIZE = "8M"
APPLETS = ("sh", "mount", "umount", "ls", "cat", "echo", "poweroff", "sync", "uname", "dmesg", "grep", "mkdir")
INITRAMFS_CONF = "MODULES=most\nBUSYBOX=auto\nCOMPRESS=zstd\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n"
ROOT_INIT = f"""#!/bin/sh
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
echo "{INIT_MARKER.decode()} (the root filesystem's /sbin/init)"
exec /bin/sh </dev/console >/dev/console 2>&1
"""
NAMESPACE_SCRIPT = """set -eu
W=$1 V=$2
for d in usr boot; do
    mkdir -p "$W/upper/$d" "$W/scratch/$d"
    mount -t overlay overlay -o "lowerdir=$W/lower/$d:/$d,upperdir=$W/upper/$d,workdir=$W/scratch/$d" "/$d"
done
depmod "$V"
mkinitramfs -d "$W/conf" -o "$W/out/initrd.img" "$V"
"""
"""Run by `unshare --mount --propagation private`: the mounts exist only in that namespace and vanish with it."""


@dataclass(frozen=True)
class HostInitrd:
    """The built files: the kernel, its initramfs-tools initrd and a root disk."""

    directory: Path

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def root(self) -> Path:
        return self.directory / "root.img"

    def is_complete(self) -> bool:
        return all(p.is_file() for p in (self.kernel, self.initrd, self.root))


def unavailable() -> str | None:
    """Why the initrd cannot be built on this host, or None when it can."""
    if os.geteuid() != 0:
        return "building an initramfs-tools initrd needs root (a private mount namespace with overlayfs)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    if missing:
        return f"{', '.join(missing)} not found: install initramfs-tools, kmod and e2fsprogs (scripts/setup)"
    return None


def _versions() -> str:
    query = subprocess.run(["dpkg-query", "-W", *HOST_PACKAGES], capture_output=True, text=True, check=False)
    return query.stdout


def host_initrd(progress: Callable[[str], None]) -> HostInitrd:
    """The kernel, initrd and root disk, built first if the cache has none for this recipe."""
    guest = dg.debian_guest(progress)
    debs = sorted(guest.directory.glob("linux-image-*.deb"))
    if not debs:
        raise GuestBuildError(f"the Debian guest in {guest.directory} kept no kernel package")
    digest = hashlib.sha256(Path(__file__).read_bytes() + debs[-1].name.encode() + _versions().encode())
    cache = cache_root().parent / "initramfs-tools"
    image = HostInitrd(cache / digest.hexdigest()[:16])
    if image.is_complete():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{image.directory.name}.lock", progress):
        if not image.is_complete():
            _build(debs[-1], cache / f"{image.directory.name}.partial", image.directory, progress)
    return image


def _build(deb: Path, work: Path, final: Path, progress: Callable[[str], None]) -> None:
    if work.exists():
        shutil.rmtree(work)
    version = deb.name.split("_")[0].removeprefix("linux-image-")
    package = work / "package"
    work.mkdir(parents=True)
    progress(f"unpacking {deb.name}")
    _run(["dpkg-deb", "-x", str(deb), str(package)])
    (work / "lower" / "usr" / "lib").mkdir(parents=True)
    (package / "lib" / "modules").rename(work / "lower" / "usr" / "lib" / "modules")
    (package / "boot").rename(work / "lower" / "boot")
    conf = work / "conf"
    for sub in ("conf.d", "hooks", "scripts"):
        (conf / sub).mkdir(parents=True)
    (conf / "initramfs.conf").write_text(INITRAMFS_CONF)
    (conf / "modules").write_text("")
    out = work / "out"
    out.mkdir()
    progress(f"mkinitramfs for {version} in a private mount namespace (about a minute)")
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh", str(work), version])
    shutil.copyfile(work / "lower" / "boot" / f"vmlinuz-{version}", out / "vmlinuz")
    progress(f"building root.img ({ROOT_SIZE} ext2): busybox-static, /dev/console, /sbin/init")
    _root_image(work / "root", out / "root.img")
    os.rename(out, final)
    shutil.rmtree(work)
    progress(f"done: {final} (initrd.img {(final / 'initrd.img').stat().st_size >> 10} KiB)")


def _root_image(tree: Path, image: Path) -> None:
    for sub in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp"):
        (tree / sub).mkdir(parents=True)
    shutil.copyfile(BUSYBOX, tree / "bin" / "busybox")
    (tree / "bin" / "busybox").chmod(0o755)
    for applet in APPLETS:
        (tree / "bin" / applet).symlink_to("busybox")
    (tree / "sbin" / "init").write_text(ROOT_INIT)
    (tree / "sbin" / "init").chmod(0o755)
    _run(["mke2fs", "-q", "-F", "-t", "ext2", "-L", "emu-root", "-E", "root_owner=0:0", "-d", str(tree), str(image),
          ROOT_SIZE])
    _run(["debugfs", "-w", "-R", "mknod /dev/console c 5 1", str(image)])


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestBuildError(f"`{' '.join(argv[:4])} ...` failed (exit status {result.returncode}):\n"
                              + (result.stderr or result.stdout)[-2000:])


if __name__ == "__main__":
    built = host_initrd(lambda line: print(line, file=sys.stderr))
    print(built.directory)
