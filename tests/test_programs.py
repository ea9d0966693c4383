"""Whole-program differential tests: every C program in tests/programs, built with `gcc -static` at -O0 and -O2
(or the levels and flags its case names), gives the same exit status, stdout and stderr under `emu run` as it
does natively."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
WORKDIR = "{workdir}"  # an argument replaced by the test's own empty temporary directory
ENV = {
    "PATH": "/usr/bin:/bin",
    "LC_ALL": "C",
    "EMU_TEST_VAR": "hello from the test",
    "EMU_TEST_EQUALS": "a=b=c",
}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...] = ()
    returncode: int = 0
    opts: tuple[str, ...] = ("O0", "O2")
    flags: tuple[str, ...] = ()
    host: tuple[str, ...] = ()       # /proc/cpuinfo flags the host needs to run it natively


PROGRAMS = {
    "args_env": Case(args=("alpha", "", "two words", "ünïcödé", "--flag=value", "*", "-x")),
    "avx": Case(opts=("O0", "O3"), flags=("-march=x86-64-v3",), host=("avx2", "fma", "f16c")),
    "bits": Case(),
    "division": Case(),
    "exit_status": Case(args=("42",), returncode=42),
    "fileio": Case(args=(WORKDIR,)),
    "floats": Case(),
    "heap": Case(),
    "intmath": Case(),
    "longdouble": Case(),
    "longjmp": Case(),
    "mmx": Case(),
    "recursion": Case(),
    "rdtsc": Case(),
    "return3": Case(returncode=3),
    "selfmodify": Case(),
    "sha256": Case(args=("16384",)),
    "simd": Case(),
    "sorting": Case(),
    "stderr": Case(returncode=1),
    "strings": Case(),
}


@cache
def host_cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_every_program_source_has_a_case() -> None:
    assert sorted(path.stem for path in PROGRAMS_DIR.glob("*.c")) == sorted(PROGRAMS)


@pytest.mark.parametrize(("name", "opt"), [(name, opt) for name in sorted(PROGRAMS) for opt in PROGRAMS[name].opts])
def test_program_behaves_as_natively(name: str, opt: str, build_static, same_as_native, tmp_path: Path) -> None:
    case = PROGRAMS[name]
    missing = set(case.host) - host_cpu_flags()
    if missing:
        pytest.skip(f"the host CPU lacks {', '.join(sorted(missing))}")
    binary = build_static(PROGRAMS_DIR / f"{name}.c", opt, case.flags)
    args = [str(tmp_path) if arg == WORKDIR else arg for arg in case.args]
    same_as_native([str(binary), *args], returncode=case.returncode, cwd=tmp_path, env=ENV)
