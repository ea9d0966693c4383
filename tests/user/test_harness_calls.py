"""The descriptors event loops and test harnesses use (emu/user/epoll.py, anonfiles.py, sockets.py and
close_range): one C program run natively and under emu, static and dynamic, in the Python tier and the JIT."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "harness_calls.c"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("harness_calls")
    built = {}
    for link in ("static", "dynamic"):
        binary = out / link
        subprocess.run(["gcc", "-O1", *(["-static"] if link == "static" else []), "-o", str(binary), str(PROGRAM)],
                       check=True)
        built[link] = binary
    return built


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_eventfd_epoll_sockets_timerfd_memfd_and_close_range_as_natively(builds, tmp_path: Path, link: str,
                                                                          jit: str):
    native = run_native([str(builds[link]), str(tmp_path)])
    assert native.returncode == 0 and b"hello over a path" in native.stdout, native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link]), str(tmp_path)])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
