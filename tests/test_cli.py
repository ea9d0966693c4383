"""The `emu` command line as a user meets it: help, bad input, programs that die."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def emu(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emu", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    exe = tmp_path / name
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    return exe


@pytest.mark.parametrize("command", [[], ["run"], ["explain"]])
def test_every_command_has_help(command: list[str]) -> None:
    proc = emu(*command, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: emu")


def test_a_missing_program_is_one_line_and_status_2(tmp_path: Path) -> None:
    proc = emu("run", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("emu: error:") and "nope" in proc.stderr


def test_a_text_file_is_refused_as_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    proc = emu("run", str(script))
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_null_dereference_dies_with_sigsegv_like_natively(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "segv", "int main(void) { volatile int *p = 0; return *p; }\n")
    native = subprocess.run([str(exe)], capture_output=True)
    proc = emu("run", str(exe))
    assert native.returncode == -11
    assert proc.returncode == -11           # the emulator dies of the guest's signal, as qemu-x86_64 does
    assert "SIGSEGV" in proc.stderr and "#PF" in proc.stderr and "at address 0x0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unimplemented_instruction_dies_with_sigill_naming_mnemonic_and_bytes(tmp_path: Path) -> None:
    """AMD's SSE4a EXTRQ is out of scope (docs/isa.md)."""
    exe = compile_c(tmp_path, "extrq", 'int main(void) { __asm__ volatile("extrq %xmm1, %xmm0"); return 0; }\n')
    proc = emu("run", str(exe))
    assert proc.returncode == -4
    assert "SIGILL" in proc.stderr and "#UD" in proc.stderr
    assert "extrq xmm0, xmm1" in proc.stderr and "66 0f 79 c1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_divide_by_zero_dies_with_sigfpe(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "div0", "int main(int c, char **v) { return 7 / (c - 1); }\n")
    proc = emu("run", str(exe))
    assert proc.returncode == -8
    assert "SIGFPE" in proc.stderr and "#DE" in proc.stderr


def test_stats_reports_instructions_and_rate(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "ret3", "int main(void) { return 3; }\n")
    proc = emu("run", "--stats", str(exe))
    assert proc.returncode == 3
    assert "instructions retired" in proc.stderr and "MIPS" in proc.stderr


def test_deterministic_runs_retire_the_same_instruction_count(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "clock", '#include <stdio.h>\n#include <time.h>\n'
                    'int main(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);'
                    ' printf("%ld %ld\\n", (long)t.tv_sec, t.tv_nsec); return 0; }\n')
    first = emu("run", "--deterministic", "--stats", str(exe))
    second = emu("run", "--deterministic", "--stats", str(exe))
    assert first.stdout == second.stdout
    count = [line.split(" instructions")[0] for line in (first.stderr, second.stderr)]
    assert count[0] == count[1]


@pytest.mark.parametrize("args,message", [
    (["--kernel", "/nonexistent/bzImage"], "cannot read kernel /nonexistent/bzImage"),
    (["--kernel", "/bin/sh"], "is an ELF file but not a kernel"),
    (["--kernel", "README.md"], "is not a bzImage"),
    (["--kernel", "README.md", "--memory", "1M"], "memory must be between 16 MiB"),
    (["--kernel", "README.md", "--memory", "lots"], "not a memory size"),
], ids=["missing", "dynamic-elf", "text-file", "tiny-memory", "bad-size"])
def test_boot_refuses_bad_kernels_and_options_with_one_line(args: list[str], message: str) -> None:
    proc = emu("boot", *args, "--script", "poweroff -f", cwd=Path(__file__).parent.parent)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_boot_refuses_a_missing_disk_image_with_one_line(tmp_path: Path) -> None:
    proc = emu("boot", "--kernel", "README.md", "--disk", str(tmp_path / "none.img"), "--script", "x",
               cwd=Path(__file__).parent.parent)
    assert proc.returncode == 2
    assert "cannot open disk image" in proc.stderr and "Traceback" not in proc.stderr


def test_disk_option_takes_an_image_and_an_optional_ro() -> None:
    from emu.machine.pc import Disk

    assert Disk.parse("a.img") == Disk("a.img")
    assert Disk.parse("a.img,ro") == Disk("a.img", read_only=True)
    assert Disk.parse("dir,with,commas/a.img") == Disk("dir,with,commas/a.img")


def test_an_unknown_machine_is_refused_by_the_parser() -> None:
    proc = emu("boot", "--machine", "q35", "--kernel", "x")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
