"""Test-wide options, and shared fixtures for the whole-program differential tests: build a C program once per
session, and run a guest both natively and under `python -m emu run` to compare exit status, stdout and stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-seed", default=None, help="seed for the randomized differential tests (pytest -m fuzz)")


REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 300


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    if kw.get("input") is None:
        kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, capture_output=True, timeout=TIMEOUT_SECONDS, check=False, **kw)


def run_native(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return _run(list(argv), **kw)


def run_emu(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run the guest command argv under the emulator; PYTHONPATH lets the emulator's Python find this checkout."""
    env = {**kw.pop("env", os.environ), "PYTHONPATH": str(REPO_ROOT)}
    return _run([sys.executable, "-m", "emu", "run", *argv], env=env, **kw)


def _observed(result: subprocess.CompletedProcess) -> dict[str, object]:
    return {
        "returncode": result.returncode,
        "stdout": result.stdout.decode(errors="backslashreplace"),
        "stderr": result.stderr.decode(errors="backslashreplace"),
    }


def _check_same_as_native(argv: list[str], *, returncode: int = 0, **kw) -> None:
    native = run_native(argv, **kw)
    assert native.returncode == returncode, f"the native run itself went wrong: {_observed(native)}"
    emulated = run_emu(argv, **kw)
    assert _observed(emulated) == _observed(native)


@pytest.fixture
def same_as_native():
    """check(argv, returncode=0, **subprocess_kw): run argv natively (which must exit with returncode), then under
    emu with the same cwd, env and input, and assert both give the same exit status, stdout and stderr."""
    return _check_same_as_native


def _builder(out_dir: Path, link: list[str]):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is not installed; the program tests need it: apt-get install -y gcc libc6-dev")
    built: dict[tuple[Path, str, tuple[str, ...]], Path] = {}

    def build(source: Path, opt: str, flags: tuple[str, ...] = ()) -> Path:
        if (source, opt, flags) not in built:
            binary = out_dir / "-".join((source.stem, opt, *(flag.strip("-") for flag in flags)))
            command = [gcc, *link, f"-{opt}", *flags, "-o", str(binary), str(source), "-lm"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed:\n{result.stderr}")
            built[source, opt, flags] = binary
        return built[source, opt, flags]

    return build


@pytest.fixture(scope="session")
def build_static(tmp_path_factory):
    """build(source, opt, flags=()) -> path of `gcc -static -{opt} {flags}` applied to the C file source, built
    once per session."""
    return _builder(tmp_path_factory.mktemp("programs"), ["-static"])


@pytest.fixture(scope="session")
def build_dynamic(tmp_path_factory):
    """build(source, opt, flags=()) -> path of `gcc -{opt} {flags}` (dynamically linked, position-independent
    as gcc's default) applied to the C file source, built once per session."""
    return _builder(tmp_path_factory.mktemp("dynamic"), [])
