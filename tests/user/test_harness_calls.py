"""The descriptors event loops and test harnesses use (emu/user/epoll.py, anonfiles.py, sockets.py and
close_range): one C program run natively and under emu, static and dynamic, in the Python tier and the JIT."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "harness_calls.c"


@pytest.fixture(scope="module")
def builds(build_static, build_dynamic) -> dict[str, Path]:
    return {"static": build_static(PROGRAM, "O1"), "dynamic": build_dynamic(PROGRAM, "O1")}


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_eventfd_epoll_sockets_timerfd_memfd_and_close_range_as_natively(builds, tmp_path: Path, link: str,
                                                                          jit: str):
    native = run_native([str(builds[link]), str(tmp_path)])
    assert native.returncode == 0 and b"hello over a path" in native.stdout, native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link]), str(tmp_path)])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
