"""The host CPU as the oracle: run a :class:`harness.Case` natively on this x86-64 processor.

unicorn (QEMU's TCG) lacks AVX and gets some x87, MXCSR and NaN details wrong; the processor
this test suite runs on is the ground truth for what it implements.  ``hostrun.c`` is built once
per test session with gcc and kept running; each case is one request over a pipe: the snippet runs
natively at the same addresses and from the same state as in emu (see ``hostrun.c`` for what it
sets up), and the reply holds the registers, RFLAGS, XMM registers and the data page after it, or
the registers at the instruction that faulted.

Only usable on an x86-64 host with gcc: tests use :data:`needs_host`.
"""

from __future__ import annotations

import atexit
import platform
import shutil
import signal
import struct
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from cpu.state import GPR64
from tests.semantics.harness import (
    CODE,
    DATA_SIZE,
    FS_BASE,
    Case,
    Outcome,
    assemble,
    compare,
    initial_state,
)

CODE_SIZE = 0x1000
JUMP_BACK = 14
"""Bytes hostrun.c appends to the snippet: an indirect jump back to the driver."""

available = platform.machine() in ("x86_64", "AMD64") and shutil.which("gcc") is not None
"""Can this host serve as the oracle (an x86-64 with gcc)?"""
needs_host = pytest.mark.skipif(not available, reason="the host-CPU oracle needs an x86-64 host with gcc")

_REQUEST = struct.Struct(f"<IIQ16QQ256s{CODE_SIZE}s{DATA_SIZE}s")
_REPLY = struct.Struct(f"<II16QQQ256s{DATA_SIZE}sII")


class HostError(RuntimeError):
    """The oracle itself failed (not the snippet): it could not be built or stopped answering."""


@cache
def _driver() -> subprocess.Popen:
    source = Path(__file__).with_name("hostrun.c")
    binary = Path(tempfile.mkdtemp(prefix="emu-hostrun-")) / "hostrun"
    built = subprocess.run(["gcc", "-O1", "-fno-stack-protector", "-o", str(binary), str(source)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise HostError(f"cannot build {source.name}: {built.stderr.strip()[:300]}")
    process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    atexit.register(process.kill)
    return process


def run_host(case: Case) -> Outcome:
    """Run ``case`` on this CPU; a fault gives ``faulted`` with the registers at the faulting instruction."""
    code = assemble(case.asm)
    if len(code) + JUMP_BACK > CODE_SIZE:
        raise ValueError(f"snippet of {len(code)} bytes does not fit the code page")
    regs, data = initial_state(case)
    xmm = b"".join(case.xmm.get(i, 0).to_bytes(16, "little") for i in range(16))
    request = _REQUEST.pack(len(code), 0, FS_BASE, *(regs[name] for name in GPR64), case.rflags, xmm,
                            code, data)
    process = _driver()
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(request)
        process.stdin.flush()
        reply = process.stdout.read(_REPLY.size)
    except BrokenPipeError as e:
        raise HostError("the host oracle stopped") from e
    if len(reply) != _REPLY.size:
        raise HostError(f"the host oracle stopped (status {process.poll()})")
    faulted, signo, *rest = _REPLY.unpack(reply)
    gprs, (rip, rflags, xmm_out, data_out, mxcsr, _) = rest[:16], rest[16:]
    return Outcome(dict(zip(GPR64, gprs, strict=True)), rip, rflags,
                   {i: int.from_bytes(xmm_out[16 * i:16 * i + 16], "little") for i in range(16)},
                   data_out, bool(faulted), mxcsr if signo == signal.SIGFPE else None)


def check_host(case: Case) -> None:
    """Assert emu (stepped, as a block, and through the LLVM JIT) agrees with this CPU on ``case``."""
    compare(case, run_host(case), "host")


__all__ = ["CODE", "HostError", "available", "check_host", "needs_host", "run_host"]
