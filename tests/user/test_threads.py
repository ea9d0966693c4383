"""Guest threads under `emu run` (emu/user/threads.py, emu/user/futex.py), each a real program:

* tests/user/programs/threads.c, built static and dynamic: eight pthreads with a mutex-protected
  counter, C11 atomics, join results and __thread values, a condition-variable queue, a read() that
  blocks one thread while another writes the pipe, pthread_kill to one spinning thread, and a fork of
  the threaded process; its output is compared with the native run's, under --jit=off and --jit=on,
  which must also retire the same number of instructions under --deterministic; then exit() from a
  thread that is not the main one, a robust mutex whose owner died, a priority-inheritance mutex, a
  read() blocked in one thread that pthread_kill interrupts (EINTR) and pthread_cancel ends, and raw
  futex calls (CMP_REQUEUE, WAKE_OP, a stale compare, a timed-out wait);
* a Go test binary (``CGO_ENABLED=0 go test -c``, static) of tests/user/programs/go_threads;
* a Rust test binary (``cargo test --no-run``, dynamic: libtest runs each test on a thread) of
  tests/user/programs/rust_threads;
* the priority-inheritance program under `emu debug`, whose loop switches threads as `emu run` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_emu, run_native

PROGRAMS = Path(__file__).resolve().parent / "programs"
SOURCE = PROGRAMS / "threads.c"


def _build(tmp_path: Path, link: list[str]) -> Path:
    binary = tmp_path / "threads"
    subprocess.run(["gcc", "-O1", "-pthread", *link, "-o", str(binary), str(SOURCE)], check=True)
    return binary


def _retired(stderr: bytes) -> list[int]:
    return [int(n) for n in re.findall(rb"emu: (\d+) instructions retired", stderr)]


@pytest.mark.parametrize("link", [["-static"], []], ids=["static", "dynamic"])
def test_pthreads_program_matches_native_with_the_jit_off_and_on(tmp_path: Path, link: list[str]) -> None:
    binary = _build(tmp_path, link)
    native = run_native([str(binary)])
    assert native.returncode == 0, native.stderr
    assert b"counter 16000 atomic 16000" in native.stdout
    counts = {}
    for jit in ("off", "on"):
        emulated = run_emu([f"--jit={jit}", "--deterministic", "--stats", str(binary)])
        assert (emulated.returncode, emulated.stdout) == (0, native.stdout), emulated.stderr.decode()
        counts[jit] = _retired(emulated.stderr)
    assert len(counts["off"]) == 2, "the parent and the forked child each report their count"
    assert counts["off"] == counts["on"]


@pytest.mark.parametrize(("mode", "status"),
                         [("exit_group", 5), ("robust", 0), ("pi", 0), ("interrupt", 0), ("futex", 0)])
def test_exit_mutexes_interrupts_and_futex_calls_as_natively(tmp_path: Path, mode: str, status: int) -> None:
    binary = _build(tmp_path, [])
    native = run_native([str(binary), mode])
    assert native.returncode == status
    emulated = run_emu(["--jit=on", str(binary), mode])
    assert (emulated.returncode, emulated.stdout, emulated.stderr) == (status, native.stdout, native.stderr)


def test_go_test_binary_passes(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (Debian: apt-get install golang-go; scripts/setup installs it)")
    binary = tmp_path / "gothreads.test"
    subprocess.run([go, "test", "-c", "-o", str(binary), "."], cwd=PROGRAMS / "go_threads", check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    result = run_emu(["--jit=on", str(binary), "-test.v"])
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert out.count("--- PASS") == 4 and "FAIL" not in out and out.rstrip().endswith("PASS")


def test_rust_test_binary_passes(tmp_path: Path) -> None:
    cargo = shutil.which("cargo", path="/usr/bin") or shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed (Debian: apt-get install cargo; scripts/setup installs it)")
    build = subprocess.run([cargo, "test", "--no-run", "--offline", "--message-format=json",
                            "--target-dir", str(tmp_path / "target")], cwd=PROGRAMS / "rust_threads",
                           capture_output=True, text=True, check=True)
    executables = re.findall(r'"executable":"([^"]+)"', build.stdout)
    assert len(executables) == 1, build.stdout
    result = run_emu(["--jit=on", executables[0]])
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "test result: ok. 5 passed; 0 failed" in out


def test_threads_run_under_the_debugger_too(tmp_path: Path) -> None:
    binary = _build(tmp_path, ["-static"])
    script = tmp_path / "continue.gdb"
    script.write_text("continue\n")
    native = run_native([str(binary), "pi"])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "emu", "debug", "-x", str(script), "--batch", str(binary), "pi"],
                            capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert native.stdout in result.stdout and b"Program exited with code 0" in result.stdout
