"""MAP_SHARED memory across fork (emu/user/sharedmem.py): process-shared semaphores and mutexes handing a counter
back and forth, atomic increments from two processes, a thread waiting for another process's post, a shared file
mapping, a private one that stays private, and SIGBUS past the end of a mapped file; one C program run natively
and under emu, static in the Python tier and dynamic with the JIT."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_emu, run_native

PROGRAM = Path(__file__).parent / "programs" / "shared_memory.c"


@pytest.fixture(scope="module")
def builds(build_static, build_dynamic) -> dict[str, Path]:
    return {"static": build_static(PROGRAM, "O1"), "dynamic": build_dynamic(PROGRAM, "O1")}


@pytest.mark.parametrize(("link", "jit"), [("static", "off"), ("dynamic", "on")])
def test_shared_mappings_semaphores_mutexes_and_sigbus_as_natively(builds, tmp_path: Path, link: str, jit: str):
    native = run_native([str(builds[link]), str(tmp_path)])
    assert native.returncode == 0 and b"total under the shared mutex: 600, atomic: 2000" in native.stdout, \
        native.stdout
    emulated = run_emu([f"--jit={jit}", str(builds[link]), str(tmp_path)])
    assert (emulated.returncode, emulated.stdout.decode()) == (0, native.stdout.decode()), emulated.stderr[-2000:]
