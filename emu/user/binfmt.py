"""``emu binfmt``: the binfmt_misc entry that makes the host kernel run x86-64 ELF files through emu.

Follows Documentation/admin-guide/binfmt-misc.rst: a line ``:name:type:offset:magic:mask:interpreter:flags``
written to ``/proc/sys/fs/binfmt_misc/register`` makes the kernel run every file whose first bytes, ANDed
with ``mask``, equal ``magic`` as ``interpreter FILE ARGV0 ARGS...`` (flag P keeps the program's own
argv[0]).  The magic and mask are those of an x86-64 ELF executable, as qemu's ``qemu-binfmt-conf.sh``
has them: 64-bit class, little-endian, ELF version 1, any OS ABI, e_type ET_EXEC or ET_DYN (the mask
clears the low bit), e_machine EM_X86_64 (62).

The interpreter must be one file without arguments, so emu writes a small shell script that starts
``python -m emu run`` with this Python, this checkout on PYTHONPATH and the sysroot (``-L``, else
``EMU_LD_PREFIX``) built in.

Not modelled: the C (credentials) and F (fix binary) flags, removing an entry (``echo -1`` to its file).
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path

NAME = "emu-x86_64"
MAGIC = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"
MASK = b"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
FLAGS = "P"
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
DEFAULT_INTERPRETER = "/usr/local/libexec/emu-binfmt-x86_64"
X86_64_MACHINES = ("x86_64", "amd64")


class BinfmtError(Exception):
    """Why the entry cannot be installed, in one line."""


def escaped(data: bytes) -> str:
    """Every byte as ``\\xNN``, as binfmt_misc reads the magic and mask."""
    return "".join(f"\\x{b:02x}" for b in data)


def register_line(interpreter: str) -> str:
    """The line to write to binfmt_misc's ``register`` file."""
    return f":{NAME}:M::{escaped(MAGIC)}:{escaped(MASK)}:{interpreter}:{FLAGS}"


def interpreter_script(sysroot: str | None) -> str:
    """The shell script binfmt_misc starts: ``SCRIPT FILE ARGV0 ARGS...`` (flag P) becomes
    ``python -m emu run [-L DIR] --argv0 ARGV0 -- FILE ARGS...``."""
    checkout = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-m", "emu", "run"]
    if sysroot:
        command += ["-L", sysroot]
    return ("#!/bin/sh\n"
            "# Written by `emu binfmt --install`: binfmt_misc runs x86-64 ELF files through emu.\n"
            'file=$1\nargv0=$2\nshift 2\n'
            f"PYTHONPATH={shlex.quote(checkout)}${{PYTHONPATH:+:$PYTHONPATH}} "
            f'exec {shlex.join(command)} --argv0 "$argv0" -- "$file" "$@"\n')


def install(interpreter: str, sysroot: str | None, *, force: bool = False, binfmt_dir: str = BINFMT_DIR) -> None:
    """Write the interpreter script and register the entry; raise :class:`BinfmtError` saying why not."""
    machine = platform.machine().lower()
    if machine in X86_64_MACHINES and not force:
        raise BinfmtError(f"this host is {machine}: its kernel runs x86-64 programs itself, so the entry would only "
                          f"slow them down; use --force to register it anyway")
    register = Path(binfmt_dir) / "register"
    if not register.exists():
        raise BinfmtError(f"binfmt_misc is not mounted at {binfmt_dir}: mount it first "
                          f"(mount -t binfmt_misc binfmt_misc {binfmt_dir})")
    if os.geteuid() != 0:
        raise BinfmtError("registering a binfmt_misc entry needs root: run it with sudo")
    if (Path(binfmt_dir) / NAME).exists():
        raise BinfmtError(f"an entry {NAME} is registered already: remove it first "
                          f"(echo -1 > {binfmt_dir}/{NAME})")
    script = Path(interpreter)
    try:
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(interpreter_script(sysroot))
        script.chmod(0o755)
    except OSError as e:
        raise BinfmtError(f"cannot write the interpreter script {interpreter}: {e.strerror}") from None
    try:
        with open(register, "w") as f:
            f.write(register_line(interpreter))
    except OSError as e:
        raise BinfmtError(f"the kernel refused the entry ({register}: {e.strerror})") from None
