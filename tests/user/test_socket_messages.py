"""sendmsg/recvmsg/sendmmsg/recvmmsg (emu/user/sockmsg.py): a pipe passed to a forked child with SCM_RIGHTS,
truncated control data, SCM_CREDENTIALS, datagrams with msg_name, and Linux's errors; one C program run
natively and under emu, static in the Python tier and dynamic with the JIT."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "socket_messages.c"


@pytest.fixture(scope="module")
def builds(build_static, build_dynamic) -> dict[str, Path]:
    return {"static": build_static(PROGRAM, "O1"), "dynamic": build_dynamic(PROGRAM, "O1")}


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_scm_rights_credentials_datagrams_and_errors_as_natively(builds, tmp_path: Path, link: str, jit: str):
    native = run_native([str(builds[link]), str(tmp_path)])
    assert native.returncode == 0 and b"child got 9 bytes 'take this'" in native.stdout, native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link]), str(tmp_path)])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
