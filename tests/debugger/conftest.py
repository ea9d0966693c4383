"""Fixtures for the debugger tests: small static C programs compiled once per session.

The programs are built with ``gcc -static -O0 -fno-omit-frame-pointer`` so that
every function keeps the ``push rbp; mov rbp, rsp`` frame the backtrace and
``finish`` follow.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

COUNTER_C = r"""
long counter;
const char greeting[] = "hello, debugger";

int add(int a, int b) { return a + b; }

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 0; i < 5; i++) {
        total = add(i, total);
        counter++;
    }
    if (argc > 1) {
        volatile int *p = 0;
        *p = 1;
    }
    return total;
}
"""
"""add(i, total) for i = 0..4 (so rdi == i at add's entry), counter counts the calls; exit status 10.
With an argument it dereferences NULL after the loop."""

SPIN_C = r"""
volatile long spins;
int main(void) { for (;;) spins++; }
"""
"""Never ends: for Ctrl-C."""


def _compile(directory: Path, name: str, source: str) -> str:
    gcc = shutil.which("gcc")
    assert gcc is not None, "these tests need gcc and the static C library (apt-get install gcc libc6-dev)"
    (directory / f"{name}.c").write_text(source)
    binary = directory / name
    subprocess.run([gcc, "-static", "-O0", "-fno-omit-frame-pointer", "-o", str(binary), str(directory / f"{name}.c")],
                   check=True)
    return str(binary)


@pytest.fixture(scope="session")
def counter_program(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _compile(tmp_path_factory.mktemp("debugger"), "counter", COUNTER_C)


@pytest.fixture(scope="session")
def spin_program(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _compile(tmp_path_factory.mktemp("debugger"), "spin", SPIN_C)
