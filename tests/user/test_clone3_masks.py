"""clone3 (emu/user/forkexec.py: struct clone_args, CLONE_PIDFD with poll and waitid(P_PIDFD), CLONE_CLEAR_SIGHAND,
kernel/fork.c's errors) and the signal masks of ppoll, pselect6, epoll_pwait and epoll_pwait2
(emu/user/signals.py's with_mask) and of rt_sigsuspend in a threaded process; one C program run natively and
under emu, static in the Python tier and dynamic with the JIT.  glibc's pthread_create goes through clone3 too,
so every threaded test exercises its thread path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "clone3_masks.c"


@pytest.fixture(scope="module")
def builds(build_static, build_dynamic) -> dict[str, Path]:
    return {"static": build_static(PROGRAM, "O1"), "dynamic": build_dynamic(PROGRAM, "O1")}


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_clone3_and_the_masks_of_waiting_calls_as_natively(builds, link: str, jit: str):
    native = run_native([str(builds[link])])
    assert native.returncode == 0 and b"ppoll unblocking a pending signal: -1 EINTR, handled 1" in native.stdout, \
        native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link])])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
