"""Priority-inheritance futexes (emu/user/pifutex.py): PTHREAD_PRIO_INHERIT mutexes contended by six threads, a
condition variable with a PI mutex, robust PI mutexes whose owner dies, and the futex word protocol through raw
futex(2) calls (LOCK_PI, LOCK_PI2, TRYLOCK_PI, UNLOCK_PI, WAIT_REQUEUE_PI, CMP_REQUEUE_PI and their errors); one
C program run natively and under emu, static in the Python tier and dynamic with the JIT."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "pi_futex.c"


@pytest.fixture(scope="module")
def builds(build_static, build_dynamic) -> dict[str, Path]:
    return {"static": build_static(PROGRAM, "O1"), "dynamic": build_dynamic(PROGRAM, "O1")}


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_pi_mutexes_condition_variable_robust_owner_death_and_word_protocol_as_natively(builds, link: str, jit: str):
    native = run_native([str(builds[link])])
    assert native.returncode == 0 and b"counter 2400 of 2400, overlaps 0" in native.stdout, native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link])])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
