"""Debian's static BusyBox under `emu run` against the same applets run natively: text tools, checksums, awk, a
shell loop. Each applet runs in a temporary directory holding a few known input files, with a fixed environment."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
PT_INTERP = 3  # program header type naming a dynamic loader (System V ABI, "Program Header")

WORDS = "banana\napple\ncherry\nalpha beta gamma\nzebra\nmango\nbanana\nAardvark\n"
NUMBERS = "alice 10 3.5\nbob 20 1.25\ncarol 7 10\ndave -4 0.5\n"
ACCOUNTS = (
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nemu:x:1000:1000::/home/emu:\n"
)
DATA = bytes((i * 37 + i // 256) & 0xFF for i in range(5000))

AWK_PROGRAM = (
    "{ total += $2; product = $2 * $3; name = toupper(substr($1, 1, 1)) substr($1, 2);"
    ' printf "%-6s len=%d x=%7.3f %s\\n", name, length($1), product, sprintf("%05d", $2 * 100) }'
    ' END { print "total", total, "mean", total / NR, "int", int(total / 3), "mod", total % 7 }'
)
SHELL_LOOP = "i=0; while [ $i -lt 5 ]; do echo $i; i=$((i+1)); done"


def applet(name: str, *args: str, stdin: bytes | None = None, returncode: int = 0, label: str | None = None):
    """One applet invocation; the test id is its command line unless a label names it."""
    return pytest.param([name, *args], stdin, returncode, id=label or " ".join([name, *args]))


APPLETS = [
    applet("echo", "hello", "world"),
    applet("echo", "-n", "no trailing newline"),
    applet("true"),
    applet("false", returncode=1),
    applet("wc", "words.txt"),
    applet("wc", "-l", "numbers.txt", "accounts.txt"),
    applet("sort", "words.txt"),
    applet("sort", "-r", "-u", "words.txt"),
    applet("sort", "-n", "-k2", "numbers.txt"),
    applet("sha256sum", "data.bin"),
    applet("md5sum", "data.bin", "words.txt"),
    applet("sed", "s/a/b/g", "words.txt"),
    applet("sed", "-n", "2,4p", "accounts.txt"),
    applet("awk", AWK_PROGRAM, "numbers.txt", label="awk arithmetic and string functions"),
    applet("expr", "6", "*", "7", "+", "1"),
    applet("expr", "length", "hello"),
    applet("expr", "5", "-", "5", returncode=1),
    applet("seq", "1", "20"),
    applet("tr", "a-z", "A-Z", stdin=WORDS.encode()),
    applet("cut", "-d:", "-f2", "accounts.txt"),
    applet("cut", "-d:", "-f1,6", "accounts.txt"),
    applet("head", "-n", "3", "words.txt"),
    applet("ls"),
    applet("ls", "-ln", "words.txt", "data.bin"),
    applet("sh", "-c", SHELL_LOOP, label="sh while loop with arithmetic"),
]


def _has_interpreter(elf: bytes) -> bool:
    """Whether an ELF64 little-endian file asks for a dynamic loader (a PT_INTERP program header)."""
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == PT_INTERP for i in range(phnum))


@pytest.fixture(scope="module")
def busybox() -> str:
    hint = "install Debian's static build: apt-get install -y busybox-static"
    if not BUSYBOX.is_file():
        pytest.fail(f"{BUSYBOX} is missing; {hint}")
    if _has_interpreter(BUSYBOX.read_bytes()):
        pytest.fail(f"{BUSYBOX} is dynamically linked and emu runs static programs only; {hint}")
    return str(BUSYBOX)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "words.txt").write_text(WORDS)
    (tmp_path / "numbers.txt").write_text(NUMBERS)
    (tmp_path / "accounts.txt").write_text(ACCOUNTS)
    (tmp_path / "data.bin").write_bytes(DATA)
    return tmp_path


@pytest.mark.parametrize(("argv", "stdin", "returncode"), APPLETS)
def test_busybox_applet_behaves_as_natively(argv, stdin, returncode, busybox, workdir, same_as_native) -> None:
    same_as_native([busybox, *argv], returncode=returncode, cwd=workdir, env=ENV, input=stdin)
