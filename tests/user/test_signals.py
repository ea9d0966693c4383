"""Signal handlers that really run under `emu run`: tests/user/programs/signals.c, one subtest per run, against
the same program run natively (Linux's arch/x86/kernel/signal.c frame, sigaction(2), sigaltstack(2),
sigsuspend(2), sigtimedwait(2), setitimer(2)).

Covered: a SIGSEGV handler that siglongjmps out (si_addr, SEGV_MAPERR and SEGV_ACCERR), SIGFPE with
FPE_INTDIV, SIGALRM from ITIMER_REAL ending a busy loop, a read from a pipe restarted with SA_RESTART and
failing with EINTR without it, poll interrupted (EINTR even with SA_RESTART), a stack overflow caught on
the alternate stack, a SIGILL handler that moves REG_RIP past ud2 and changes registers in the ucontext
before returning, SIGTRAP from int3, AVX registers kept across a handler, blocked and pending signals,
sigsuspend, sigtimedwait, SA_RESETHAND, a child's kill and SIGCHLD, Ctrl-C (SIGINT sent to the emulator),
death by a signal's default action, and rt_sigreturn of a frame that cannot be read or holds an invalid
MXCSR (SIGSEGV).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROGRAM = Path(__file__).resolve().parent / "programs" / "signals.c"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@pytest.fixture(scope="module")
def signals(build_static) -> Path:
    return build_static(PROGRAM, "O1")


@pytest.mark.parametrize("subtest", ["segv", "fpe", "alarm", "restart", "poll", "overflow", "ucontext", "trap", "avx",
                                     "masks", "children"])
def test_a_handler_sees_and_does_what_it_does_natively(subtest: str, signals: Path, same_as_native) -> None:
    same_as_native([str(signals), subtest], env=ENV)


def test_the_default_action_kills_the_emulator_with_the_signal(signals: Path, same_as_native) -> None:
    same_as_native([str(signals), "die"], returncode=-signal.SIGSEGV, env=ENV)


@pytest.mark.parametrize("subtest", ["badframe", "badfpu"])
def test_rt_sigreturn_of_a_bad_frame_is_sigsegv(subtest: str, signals: Path, same_as_native) -> None:
    """An unreadable frame, or one whose FXSAVE image sets reserved MXCSR bits."""
    same_as_native([str(signals), subtest], returncode=-signal.SIGSEGV, env=ENV)


def _interrupted(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Start argv, wait for its "ready" line, send it SIGINT (as Ctrl-C does), and collect the rest."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first == b"ready\n", proc.stderr.read() if proc.stderr else first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert err == b""
    return proc.returncode, first + out


def test_a_host_sigint_reaches_the_guest_handler(signals: Path) -> None:
    native = _interrupted([str(signals), "sigint"], ENV)
    emulated = _interrupted([sys.executable, "-m", "emu", "run", str(signals), "sigint"],
                            {**ENV, "PYTHONPATH": str(REPO_ROOT), "HOME": os.environ.get("HOME", "/root")})
    assert emulated == native == (0, b"ready\nSIGINT from outside: signo 2, si_code SI_USER 1\n")


@pytest.mark.parametrize("tier", ["off", "eager"])
@pytest.mark.parametrize("subtest", ["segv", "alarm", "restart", "ucontext"])
def test_handlers_are_the_same_in_the_python_tier_and_native_code(subtest: str, tier: str, signals: Path,
                                                                   same_as_native) -> None:
    """The default tier is the JIT (hot blocks native); here the Python tier only, and every block native."""
    same_as_native([str(signals), subtest], env={**ENV, "EMU_JIT": tier})
