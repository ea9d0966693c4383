"""Fixtures for the user-mode tests: a static C program compiled once per session, a kernel to call."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from emu.user.syscalls import Kernel
from tests.user.guest import make_kernel

ECHO_ARGS_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv, char **envp) {
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    printf("GREETING=%s\n", getenv("GREETING"));
    return 5;
}
"""


@pytest.fixture(scope="session")
def static_program(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A glibc program built with gcc -static that prints its arguments and exits with 5."""
    gcc = shutil.which("gcc")
    assert gcc is not None, "these tests need gcc and the static C library (apt-get install gcc libc6-dev)"
    directory = tmp_path_factory.mktemp("static")
    source = directory / "echo_args.c"
    source.write_text(ECHO_ARGS_C)
    binary = directory / "echo_args"
    subprocess.run([gcc, "-static", "-O1", "-o", str(binary), str(source)], check=True)
    return str(binary)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A kernel over a fresh address space with a scratch region; its messages go to ``kernel.log``."""
    k = make_kernel(tmp_path)
    yield k
    k.close()
