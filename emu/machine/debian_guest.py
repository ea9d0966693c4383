"""The Debian guest: Debian's own stock cloud kernel, unmodified, with the project's /init and busybox.

The recipe is `guest_images/debian/`:

    kernel-package  the Debian package of the kernel (`linux-image-<abi>-cloud-amd64`)
    modules         the modules to load from that package; what they depend on is added
    init            a prelude that loads them in dependency order, then runs the tiny guest's `/init`
    append          kernel command-line arguments the guest boots with (README.md says why)

`debian_guest()` builds it on first use into `~/.cache/emu/guest-debian/<hash>/` (`$EMU_CACHE_DIR/...` when
set), `<hash>` covering those files and the tiny recipe's `init`, `initramfs.list` and `disk/`, and returns
what it holds: `vmlinuz`, `System.map`, `config` from the package, `initramfs.cpio`, `disk.img`, the
downloaded `.deb` and `manifest.json`. The steps:

1. `apt-get download` the kernel package into the work directory (never installed: the host's /boot and
   /lib/modules are not touched), and `dpkg-deb -x` it there;
2. resolve the modules' dependencies from each module's own `.modinfo` (`depends=`), order them so every
   module comes after what it depends on, and decompress `.ko.xz`/`.ko.gz` ones (insmod wants plain ELF);
3. write the initramfs, an uncompressed newc cpio, from the tiny recipe's `initramfs.list` (busybox and its
   applet links, the console node; its `/init` becomes `/bin/emu-init`) plus the prelude as `/init`, the
   modules in `/lib/modules/` and their order in `/lib/modules/emu.order`;
4. the same 4 MiB ext2 disk as the tiny guest (`mke2fs -d guest_images/disk`).

The build works in `<hash>.partial/` and renames it when whole, under the same lock as the tiny guest's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emu.machine.guest import (
    BUSYBOX,
    DISK_SIZE,
    RECIPE_DIR,
    GuestBuildError,
    GuestImage,
    _locked,
    _print_progress,
    cache_root,
)

DEBIAN_DIR = RECIPE_DIR / "debian"
SHARED_FILES = ("init", "initramfs.list")
"""Files of the tiny recipe the Debian guest uses too (with everything under disk/)."""
BUILD_STEPS_REVISION = 1
EXTRA_APPLETS = ("insmod", "lsmod", "rmmod")


@dataclass(frozen=True)
class DebianImage(GuestImage):
    """The built Debian guest: the same files as the tiny guest's but the kernel, and no vmlinux."""

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def append(self) -> str:
        """The recipe's kernel command-line arguments."""
        return " ".join(line.strip() for line in (self.directory / "append").read_text().splitlines()
                        if line.strip() and not line.startswith("#"))

    def is_complete(self) -> bool:
        return all(p.is_file() for p in (self.kernel, self.system_map, self.initrd, self.disk,
                                         self.directory / "append"))


def recipe_hash() -> str:
    digest = hashlib.sha256(f"emu debian guest, build steps revision {BUILD_STEPS_REVISION}\n".encode())
    files = sorted(DEBIAN_DIR.iterdir()) + [RECIPE_DIR / name for name in SHARED_FILES] \
        + sorted(p for p in (RECIPE_DIR / "disk").rglob("*") if p.is_file())
    for path in files:
        if path.name == "README.md" or not path.is_file():
            continue
        content = path.read_bytes()
        digest.update(f"{path.relative_to(RECIPE_DIR).as_posix()}\0{int(os.access(path, os.X_OK))}\0"
                      f"{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


def debian_guest(progress: Callable[[str], None] | None = None) -> DebianImage:
    """The Debian guest, built first if the cache has none for this recipe."""
    progress = progress or _print_progress
    cache = cache_root().parent / "guest-debian"
    digest = recipe_hash()
    image = DebianImage(cache / digest)
    if image.is_complete():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{digest}.lock", progress):
        if not image.is_complete():
            if image.directory.exists():
                shutil.rmtree(image.directory)
            _build(cache / f"{digest}.partial", image.directory, progress)
    return image


def _build(work: Path, final: Path, progress: Callable[[str], None]) -> None:
    started = time.monotonic()
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    package = (DEBIAN_DIR / "kernel-package").read_text().strip()
    debs = sorted(out.glob(f"{package}_*.deb"))
    if not debs:
        progress(f"downloading {package} (apt-get download; not installed)")
        _run(["apt-get", "download", package], cwd=out)
        debs = sorted(out.glob(f"{package}_*.deb"))
    if not debs:
        raise GuestBuildError(f"apt-get download {package} left no .deb in {out}")
    root = work / "package"
    if root.exists():
        shutil.rmtree(root)
    progress(f"unpacking {debs[-1].name}")
    _run(["dpkg-deb", "-x", str(debs[-1]), str(root)])
    boot = root / "boot"
    version = package.removeprefix("linux-image-")
    for name, target in ((f"vmlinuz-{version}", "vmlinuz"), (f"System.map-{version}", "System.map"),
                         (f"config-{version}", "config")):
        if not (boot / name).is_file():
            raise GuestBuildError(f"{debs[-1].name} has no boot/{name}")
        shutil.copyfile(boot / name, out / target)
    wanted = [line.strip() for line in (DEBIAN_DIR / "modules").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    modules = _find_modules(root / "lib" / "modules")
    order = module_order(wanted, {name: _depends(data) for name, data in modules.items()})
    progress(f"modules, in load order: {' '.join(order)}")
    progress("writing initramfs.cpio")
    (out / "initramfs.cpio").write_bytes(_initramfs({name: modules[name] for name in order}, order))
    progress(f"building disk.img ({DISK_SIZE} ext2) from guest_images/disk/")
    _run(["mke2fs", "-q", "-F", "-t", "ext2", "-L", "emu-disk", "-E", "root_owner=0:0", "-d",
          str(RECIPE_DIR / "disk"), str(out / "disk.img"), DISK_SIZE])
    shutil.copyfile(DEBIAN_DIR / "append", out / "append")
    (out / "manifest.json").write_text(json.dumps({"package": debs[-1].name, "modules": order,
                                                   "build_seconds": round(time.monotonic() - started)},
                                                  indent=2) + "\n")
    shutil.rmtree(root)
    os.rename(out, final)
    shutil.rmtree(work)
    progress(f"done: {final}")


def _run(argv: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestBuildError(f"`{' '.join(argv)}` failed (exit status {result.returncode}):\n"
                              + result.stderr[-2000:])


def _find_modules(tree: Path) -> dict[str, bytes]:
    """Every module in the package by name (dashes as underscores, as the kernel names them), decompressed."""
    found = {}
    for path in tree.rglob("*.ko*"):
        name = re.sub(r"\.ko(\.xz|\.gz)?$", "", path.name)
        if name == path.name:
            continue
        data = path.read_bytes()
        if path.suffix == ".xz":
            data = lzma.decompress(data)
        elif path.suffix == ".gz":
            data = gzip.decompress(data)
        found[name.replace("-", "_")] = data
    return found


def _depends(module: bytes) -> list[str]:
    """The `depends=` entry of a module's .modinfo section: the modules it needs loaded first."""
    match = re.search(rb"\0depends=([^\0]*)\0", module)
    return [m.decode().replace("-", "_") for m in match[1].split(b",") if m] if match else []


def module_order(wanted: list[str], depends: dict[str, list[str]]) -> list[str]:
    """``wanted`` and everything they depend on, each after its dependencies (a depth-first post-order)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in depends:
            raise GuestBuildError(f"module {name} is not in the kernel package")
        if name in visiting:
            raise GuestBuildError(f"modules depend on each other in a circle through {name}")
        visiting.add(name)
        for dependency in depends[name]:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


# --- the initramfs: a newc cpio (Documentation/driver-api/early-userspace/buffer-format.rst) ---

def _initramfs(modules: dict[str, bytes], order: list[str]) -> bytes:
    entries: list[tuple[str, int, bytes, int]] = []      # (name, mode, data, rdev)
    for line in (RECIPE_DIR / "initramfs.list").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        match words[0]:
            case "dir":
                entries.append((words[1], 0o040000 | int(words[2], 8), b"", 0))
            case "nod":
                entries.append((words[1], 0o020000 | int(words[2], 8), b"", int(words[6]) << 8 | int(words[7])))
            case "slink":
                entries.append((words[1], 0o120000 | int(words[3], 8), words[2].encode(), 0))
            case "file":
                source = BUSYBOX if words[2] == "${BUSYBOX}" else RECIPE_DIR / words[2]
                name = "/bin/emu-init" if words[1] == "/init" else words[1]
                entries.append((name, 0o100000 | int(words[3], 8), Path(source).read_bytes(), 0))
    entries += [(f"/bin/{applet}", 0o120777, b"busybox", 0) for applet in EXTRA_APPLETS]
    entries += [("/lib", 0o040755, b"", 0), ("/lib/modules", 0o040755, b"", 0)]
    entries += [(f"/lib/modules/{name}.ko", 0o100644, data, 0) for name, data in modules.items()]
    entries.append(("/lib/modules/emu.order", 0o100644, "".join(f"{m}\n" for m in order).encode(), 0))
    entries.append(("/init", 0o100755, (DEBIAN_DIR / "init").read_bytes(), 0))
    archive = bytearray()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        _cpio_entry(archive, ino, name.lstrip("/"), mode, data, rdev)
    _cpio_entry(archive, 0, "TRAILER!!!", 0, b"", 0)
    return bytes(archive)


def _cpio_entry(archive: bytearray, ino: int, name: str, mode: int, data: bytes, rdev: int) -> None:
    """One "070701" header (13 eight-digit hex fields), the NUL-terminated name and the data, each padded to 4."""
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(name) + 1, 0)
    archive += b"070701" + "".join(f"{f:08x}" for f in fields).encode() + name.encode() + b"\0"
    archive += bytes(-len(archive) % 4)
    archive += data
    archive += bytes(-len(archive) % 4)
