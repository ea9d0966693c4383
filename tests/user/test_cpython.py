"""CPython as a guest: Debian's own dynamically linked /usr/bin/python3 run by `emu run`, compared with the
same interpreter run natively; and (slow) a selection of CPython's regression tests passing under emu."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_emu, run_native

PYTHON = Path("/usr/bin/python3")
SCRIPT = """
import hashlib, json, re, subprocess, sys, threading
worker = threading.Thread(target=lambda: None, name="worker"); worker.start(); worker.join()
data = {"sha256": hashlib.sha256(b"emu").hexdigest(), "words": re.findall(r"[a-z]+", "x86-64 on any host"),
        "child": subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout,
        "main": threading.current_thread().name, "big": 3 ** 200 % 1000003}
print(json.dumps(data, sort_keys=True))
"""
REGRESSION_TESTS = ("test_int", "test_bool", "test_string", "test_fractions", "test_float")
"""A selection of CPython's own tests (Debian's libpython3.11-testsuite); regrtest itself starts a watchdog thread.
test_json passes too but takes 7 min 40 s of CPU alone: its 15 test_tool tests each start a child interpreter
(`python3 -m json.tool` under emu: 25 s of CPU), so it is not here."""

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}

pytestmark = pytest.mark.skipif(not PYTHON.exists(), reason="needs Debian's python3 at /usr/bin/python3")


def test_python3_imports_hashes_matches_and_runs_a_child_as_natively():
    native = run_native([str(PYTHON), "-c", SCRIPT], env=ENV)
    emulated = run_emu([str(PYTHON), "-c", SCRIPT], env=ENV)
    assert native.returncode == 0, native.stderr
    assert (emulated.returncode, emulated.stdout) == (0, native.stdout), emulated.stderr[-2000:]
    assert b'"child": "42\\n"' in emulated.stdout


def test_python3_exits_with_the_status_and_the_stderr_it_gives_natively():
    program = "import sys; print('to stderr', file=sys.stderr); raise SystemExit(3)"
    native = run_native([str(PYTHON), "-c", program], env=ENV)
    emulated = run_emu([str(PYTHON), "-c", program], env=ENV)
    assert (emulated.returncode, emulated.stderr) == (native.returncode, native.stderr) == (3, b"to stderr\n")


@pytest.mark.slow
def test_a_selection_of_cpythons_regression_tests_passes_under_emu():
    """About 2 minutes of CPU with the code cache warm (125 s user + 2 s system for the five; test_int alone is
    3.4 G guest instructions), 4 minutes of wall time on a machine shared with three other jobs."""
    if not list(Path("/usr/lib").glob("python3*/test/test_int.py")):
        pytest.skip("CPython's tests are not installed (apt-get install libpython3.11-testsuite)")
    emulated = subprocess.run([sys.executable, "-m", "emu", "run", str(PYTHON), "-m", "test", *REGRESSION_TESTS],
                              capture_output=True, text=True, timeout=1800, env={**ENV, "PYTHONPATH": str(REPO_ROOT)})
    assert emulated.returncode == 0, emulated.stdout[-3000:] + emulated.stderr[-2000:]
    assert f"All {len(REGRESSION_TESTS)} tests OK." in emulated.stdout
    assert "Tests result: SUCCESS" in emulated.stdout
