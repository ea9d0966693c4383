"""The default guest: a Linux kernel, a busybox initramfs and a small ext2 disk, built from the recipe in
`guest_images/` (DESIGN.md, "Guest images").

The repository holds a recipe, never binaries. `default_guest()` builds it on first use into a cache directory
named after the recipe's hash, `~/.cache/emu/guest/<hash>/` (`$EMU_CACHE_DIR/guest/<hash>/` when that variable is
set), and returns the paths of what it holds:

    bzImage         the kernel the machine loads (Linux boot protocol, LZ4-compressed payload)
    vmlinux         the same kernel as an ELF file with its symbol table, for the debugger
    System.map      the kernel's symbols as `nm` prints them
    initramfs.cpio  the root filesystem: an uncompressed newc cpio with busybox and `/init`
    disk.img        a 4 MiB ext2 image holding `/hello.txt`, for virtio-blk
    config          the kernel's final .config

The build steps, each logged to `<hash>.partial/logs/<step>.log`:

1. install the Debian packages the build needs, if any is missing (`apt-get`, as root);
2. unpack Debian's `linux-source-6.1` tarball, unmodified;
3. `make tinyconfig`, merge `guest_images/kernel.config`, `make olddefconfig`;
4. check that every option the fragment sets really has that value in the .config (Kconfig silently drops an
   option whose dependencies are missing), `make bzImage`, and check the final .config again;
5. the initramfs, from `guest_images/initramfs.list` by the kernel's own `usr/gen_init_cpio`, which needs no root
   for the `/dev/console` node and writes every entry as owned by root;
6. the disk, by `mke2fs -d guest_images/disk`, which fills an ext2 image from a directory without mounting it.

A build works in `<hash>.partial/` and, when complete, renames its output directory to `<hash>/` in one step, so a
`<hash>/` directory is always whole. A lock file (`<hash>.lock`, `fcntl.flock`) makes a second process wait for the
first build rather than race it. A failed build keeps `<hash>.partial/` (logs and unpacked tree) and the next
attempt resumes there; a successful one deletes it.

Not covered by the hash: the versions of the Debian packages (kernel source, busybox) the build used; the build
records them in `manifest.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parents[2] / "guest_images"

BUILD_STEPS_REVISION = 1
"""Part of the recipe hash: bump it when a build step below changes what the build produces, so caches rebuild."""

NOT_HASHED = frozenset({"README.md"})
"""Files in the recipe directory that describe it without changing its output."""
OTHER_RECIPES = ("debian",)
"""Subdirectories holding other guests' recipes (emu/machine/debian_guest.py), not part of this one."""

KERNEL_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
BUSYBOX = Path("/bin/busybox")  # installed by busybox-static
DISK_SIZE = "4M"

DEBIAN_PACKAGES = (
    "linux-source-6.1",  # the kernel source tarball, /usr/src/linux-source-6.1.tar.xz
    "busybox-static",    # /bin/busybox, statically linked: the whole user space
    "make", "gcc", "libc6-dev", "flex", "bison", "bc", "perl", "libelf-dev", "libssl-dev",  # building Linux
    "xz-utils",          # unpacking the source tarball
    "lz4",               # CONFIG_KERNEL_LZ4 compresses the kernel with the lz4 tool
    "cpio",              # listing the initramfs (the tests, and anyone curious)
    "e2fsprogs",         # mke2fs for the disk image, debugfs to read it back
)

REQUIRED_OPTIONS = (
    "64BIT", "PRINTK", "PRINTK_TIME", "EARLY_PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE",
    "BLK_DEV_INITRD", "BINFMT_ELF", "BINFMT_SCRIPT", "DEVTMPFS", "DEVTMPFS_MOUNT", "PROC_FS", "SYSFS",
    "BLOCK", "BLK_DEV", "VIRTIO_MENU", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES", "VIRTIO_BLK", "EXT2_FS",
    "KERNEL_LZ4", "PCI", "VIRTIO_PCI",
)
"""Options the machine and the tests depend on: each must be `=y` in the fragment and in the final .config."""

FORBIDDEN_OPTIONS = (
    "SMP", "ACPI", "RD_GZIP", "RD_BZIP2", "RD_LZMA", "RD_XZ", "RD_LZO", "RD_LZ4", "RD_ZSTD",
)
"""Options that must be off: the machine has one CPU, no ACPI tables, and an uncompressed initramfs."""

EXPECTED_C_FILES = 640
"""About how many `CC` lines a full kernel build prints (635 measured): the denominator of the progress display."""

PROGRESS_INTERVAL = 5.0  # seconds between two kernel-build progress lines
LOG_TAIL_LINES = 30


class GuestBuildError(Exception):
    """A build step failed; the message says which, shows the end of its log and where the whole log is."""


@dataclass(frozen=True)
class GuestImage:
    """The built guest: paths inside one cache directory `directory`."""

    directory: Path

    @property
    def kernel(self) -> Path:
        return self.directory / "bzImage"

    @property
    def vmlinux(self) -> Path:
        return self.directory / "vmlinux"

    @property
    def system_map(self) -> Path:
        return self.directory / "System.map"

    @property
    def initrd(self) -> Path:
        return self.directory / "initramfs.cpio"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.img"

    @property
    def config(self) -> Path:
        return self.directory / "config"

    def paths(self) -> dict[str, Path]:
        return {name: getattr(self, name) for name in ("kernel", "vmlinux", "system_map", "initrd", "disk", "config")}

    def is_complete(self) -> bool:
        return all(path.is_file() for path in self.paths().values())


# --- the recipe and the cache ---

def recipe_hash(recipe_dir: Path = RECIPE_DIR) -> str:
    """Hex digest over every file of the recipe (its relative path, executable bit and bytes) and the build steps'
    revision; 16 hex digits name the cache directory."""
    digest = hashlib.sha256(f"emu guest recipe, build steps revision {BUILD_STEPS_REVISION}\n".encode())
    recipe_dir = Path(recipe_dir)
    for path in sorted(recipe_dir.rglob("*")):
        relative = path.relative_to(recipe_dir).as_posix()
        if not path.is_file() or relative in NOT_HASHED or "__pycache__" in path.parts \
                or relative.split("/")[0] in OTHER_RECIPES:
            continue
        executable = os.access(path, os.X_OK)
        content = path.read_bytes()
        digest.update(f"{relative}\0{int(executable)}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """`$EMU_CACHE_DIR/guest`, else `~/.cache/emu/guest` (`$XDG_CACHE_HOME/emu/guest` when that is set)."""
    if os.environ.get("EMU_CACHE_DIR"):
        return Path(os.environ["EMU_CACHE_DIR"]).expanduser().resolve() / "guest"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser().resolve() / "emu" / "guest"


def _print_progress(message: str) -> None:
    print(f"emu guest: {message}", file=sys.stderr, flush=True)


def default_guest(progress: Callable[[str], None] | None = None, *, recipe_dir: Path = RECIPE_DIR,
                  cache_dir: Path | None = None) -> GuestImage:
    """The default guest image, built first if the cache has none for this recipe. `progress` receives one line
    per step and the kernel build's progress (default: printed on stderr)."""
    progress = progress or _print_progress
    recipe_dir = Path(recipe_dir).resolve()
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    digest = recipe_hash(recipe_dir)
    image = GuestImage(cache / digest)
    if image.is_complete():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{digest}.lock", progress):
        if image.is_complete():  # another process built it while we waited
            return image
        if image.directory.exists():  # damaged by hand: a build never leaves a partial <hash>/
            shutil.rmtree(image.directory)
        _Build(recipe_dir, digest, cache / f"{digest}.partial", progress).run(image.directory)
    return image


@contextlib.contextmanager
def _locked(lock_path: Path, progress: Callable[[str], None]) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another build of this recipe to finish ({lock_path} is locked)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- checking the kernel configuration ---

_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_(\w+) is not set$")


def parse_config(text: str) -> dict[str, str | None]:
    """A .config (or fragment) as {option without CONFIG_: value}; `# CONFIG_X is not set` gives None."""
    options: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if match := _SET.match(line):
            options[match[1]] = match[2]
        elif match := _UNSET.match(line):
            options[match[1]] = None
    return options


def config_problems(final_config: str, fragment: str) -> list[str]:
    """Every way the final .config differs from what the fragment asked for, and from the required and forbidden
    options; an empty list means the kernel is configured as the recipe says."""
    final = parse_config(final_config)
    wanted = {**parse_config(fragment), **dict.fromkeys(REQUIRED_OPTIONS, "y"),
              **dict.fromkeys(FORBIDDEN_OPTIONS, None)}
    problems = []
    for option, value in wanted.items():
        got = final.get(option)
        if got != value:
            want_text = "not set" if value is None else f"={value}"
            got_text = "not set" if got is None else f"={got}"
            problems.append(f"CONFIG_{option}: wanted {want_text}, got {got_text}")
    return problems


# --- the build ---

class _Build:
    """One build of the recipe in a work directory `work`: `run(final)` leaves the outputs in `final`."""

    def __init__(self, recipe_dir: Path, digest: str, work: Path, progress: Callable[[str], None]) -> None:
        self.recipe = recipe_dir
        self.digest = digest
        self.work = work
        self.logs = work / "logs"
        self.out = work / "out"
        self.progress = progress
        self.tree = work / "src" / "linux-source-6.1"

    def run(self, final: Path) -> None:
        started = time.monotonic()
        self.progress(f"building the guest image for recipe {self.digest} in {self.work}")
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir()
        self.install_packages()
        self.unpack_kernel()
        self.configure_kernel()
        self.check_kernel_config(self.tree / ".config")  # fail before the long build, not after it
        self.build_kernel()
        self.check_kernel_config(self.out / "config")
        self.build_initramfs()
        self.build_disk()
        seconds = time.monotonic() - started
        self.write_manifest(seconds)
        shutil.copytree(self.logs, self.out / "logs")
        os.rename(self.out, final)  # atomic: <hash>/ appears complete or not at all
        shutil.rmtree(self.work)
        self.progress(f"done in {seconds:.0f} s: {final}")

    # Step 1
    def install_packages(self) -> None:
        missing = [package for package in DEBIAN_PACKAGES if not _dpkg_installed(package)]
        if not missing:
            return
        self.progress(f"installing Debian packages: {' '.join(missing)}")
        if os.geteuid() != 0:
            raise GuestBuildError(f"the guest build needs these Debian packages: {' '.join(missing)}\n"
                                  f"install them as root: apt-get install -y {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        self.command("apt-get-update", ["apt-get", "update"], env=env)
        self.command("apt-get-install", ["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)

    # Step 2
    def unpack_kernel(self) -> None:
        unpacked = self.tree / ".emu-unpacked"
        if unpacked.exists():
            self.progress(f"kernel source: reusing {self.tree} from an earlier attempt")
            return
        self.progress(f"unpacking {KERNEL_SOURCE}")
        if self.tree.parent.exists():
            shutil.rmtree(self.tree.parent)
        self.tree.parent.mkdir(parents=True)
        self.command("unpack", ["tar", "-xf", str(KERNEL_SOURCE), "-C", str(self.tree.parent)])
        if not (self.tree / "Makefile").is_file():
            raise GuestBuildError(f"{KERNEL_SOURCE} did not unpack to {self.tree}")
        unpacked.touch()

    # Step 3
    def configure_kernel(self) -> None:
        self.progress("configuring the kernel: tinyconfig + guest_images/kernel.config")
        self.make("tinyconfig", ["tinyconfig"])
        self.command("merge-config", ["scripts/kconfig/merge_config.sh", "-m", ".config",
                                      str(self.recipe / "kernel.config")], cwd=self.tree)
        self.make("olddefconfig", ["olddefconfig"])
        self.progress(f"kernel configured: {self.tree / '.config'}")

    # Step 4
    def build_kernel(self) -> None:
        jobs = os.cpu_count() or 1
        self.progress(f"building the kernel (make -j{jobs} bzImage; about 2 minutes on 2 cores)")
        started = time.monotonic()
        last_report = started
        compiled = 0

        def count(line: str) -> None:
            nonlocal compiled, last_report
            if line.startswith("  CC "):
                compiled += 1
            now = time.monotonic()
            if now - last_report >= PROGRESS_INTERVAL:
                last_report = now
                percent = min(99, 100 * compiled // EXPECTED_C_FILES)
                self.progress(f"kernel: {compiled} C files compiled (~{percent}%), {now - started:.0f} s")

        self.make("bzImage", [f"-j{jobs}", "bzImage"], on_line=count)
        self.progress(f"kernel built: {compiled} C files in {time.monotonic() - started:.0f} s")
        shutil.copyfile(self.tree / "arch/x86/boot/bzImage", self.out / "bzImage")
        shutil.copyfile(self.tree / "vmlinux", self.out / "vmlinux")
        shutil.copyfile(self.tree / "System.map", self.out / "System.map")
        shutil.copyfile(self.tree / ".config", self.out / "config")

    def check_kernel_config(self, config: Path) -> None:
        fragment = self.recipe / "kernel.config"
        problems = config_problems(config.read_text(), fragment.read_text())
        if problems:
            raise GuestBuildError(
                f"the kernel's .config does not match {fragment} (Kconfig drops an option whose dependencies are "
                "missing: see the option's `depends on` in its Kconfig file, or `make menuconfig`):\n  "
                + "\n  ".join(problems) + f"\n.config: {config}")
        self.progress(f"{config.name} checked: all {len(parse_config(fragment.read_text()))} options of the "
                      "fragment as asked")

    # Step 5
    def build_initramfs(self) -> None:
        self.progress("building initramfs.cpio from guest_images/initramfs.list")
        # gen_init_cpio reads the list's relative locations from its working directory, the recipe; -t 0 stamps
        # directories, nodes and links with the epoch instead of the build's time.
        env = {**os.environ, "BUSYBOX": str(BUSYBOX)}
        with open(self.out / "initramfs.cpio", "wb") as archive:
            self.command("initramfs", [str(self.tree / "usr/gen_init_cpio"), "-t", "0", "initramfs.list"],
                         cwd=self.recipe, env=env, stdout=archive)

    # Step 6
    def build_disk(self) -> None:
        self.progress(f"building disk.img ({DISK_SIZE} ext2) from guest_images/disk/")
        self.command("disk", ["mke2fs", "-q", "-F", "-t", "ext2", "-L", "emu-disk", "-E", "root_owner=0:0",
                              "-d", str(self.recipe / "disk"), str(self.out / "disk.img"), DISK_SIZE])

    def write_manifest(self, seconds: float) -> None:
        manifest = {
            "recipe_hash": self.digest,
            "build_seconds": round(seconds),
            "kernel_version": self.make_output(["-s", "kernelversion"]),
            "packages": {package: _dpkg_version(package) for package in ("linux-source-6.1", "busybox-static")},
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # Running commands
    def make(self, step: str, arguments: list[str], on_line: Callable[[str], None] | None = None) -> None:
        self.command(step, ["make", "ARCH=x86_64", *arguments], cwd=self.tree, env=self.make_env(), on_line=on_line)

    def make_output(self, arguments: list[str]) -> str:
        result = subprocess.run(["make", "ARCH=x86_64", *arguments], cwd=self.tree, env=self.make_env(),
                                capture_output=True, text=True, check=False)
        return result.stdout.strip()

    def make_env(self) -> dict[str, str]:
        # `uname -v` and the boot banner say which recipe built this kernel: "(emu@<hash>)".
        return {**os.environ, "KBUILD_BUILD_USER": "emu", "KBUILD_BUILD_HOST": self.digest}

    def command(self, step: str, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                on_line: Callable[[str], None] | None = None, stdout=None) -> None:
        """Run argv with its output in logs/<step>.log (stderr only, when stdout goes to a file); fail with the
        log's last lines."""
        log_path = self.logs / f"{step}.log"
        with open(log_path, "w") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            if stdout is not None:
                returncode = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                            stderr=log, check=False).returncode
            else:
                process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True, errors="replace")
                assert process.stdout is not None
                for line in process.stdout:
                    log.write(line)
                    if on_line is not None:
                        on_line(line)
                returncode = process.wait()
        if returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            raise GuestBuildError(f"step `{step}` failed (exit status {returncode}): {' '.join(argv)}\n"
                                  + "\n".join(f"    {line}" for line in tail)
                                  + f"\nfull log: {log_path}")


def _dpkg_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        raise GuestBuildError("the guest build uses Debian packages (linux-source-6.1, busybox-static, ...) and "
                              f"installs them with apt; this machine has no dpkg-query. Needed: {DEBIAN_PACKAGES}")
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                            check=False)
    return result.returncode == 0 and result.stdout.strip() == "install ok installed"


def _dpkg_version(package: str) -> str | None:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip() if result.returncode == 0 else None


# --- command line ---

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emu.machine.guest", description="The default guest image.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the guest image (if the cache has none) and print its paths")
    commands.add_parser("hash", help="print the recipe's hash, the name of its cache directory")
    arguments = parser.parse_args(argv)
    if arguments.command == "hash":
        print(recipe_hash())
        return 0
    try:
        image = default_guest()
    except GuestBuildError as error:
        print(f"emu guest: {error}", file=sys.stderr)
        return 1
    for name, path in image.paths().items():
        print(f"{name:<10} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
