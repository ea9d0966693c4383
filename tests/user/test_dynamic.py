"""Dynamically linked programs under `emu run`, against the same programs run natively on this host.

The host's own Debian binaries (coreutils, the dynamic linker, glibc) and a C program built without
-static: same stdout, stderr and exit status.  Then the placement Linux's load_elf_binary gives a
position-independent executable (ELF_ET_DYN_BASE, randomised with --aslr), the sysroot of
-L/EMU_LD_PREFIX (QEMU's -L), and the files that cannot run, with qemu-x86_64's exit statuses (compared
with qemu-x86_64 itself when it is installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from emu.user.elf import PIE_BASE
from tests.conftest import run_emu

PROGRAMS = Path(__file__).resolve().parent / "programs"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
LD_SO = "/lib64/ld-linux-x86-64.so.2"


@pytest.fixture(scope="module")
def dynamic(build_dynamic) -> Path:
    return build_dynamic(PROGRAMS / "dynamic.c", "O1")


@pytest.fixture
def stable_directory(tmp_path: Path) -> Path:
    """A directory whose `ls -la` cannot change between two runs: fixed names, sizes, times and modes."""
    root = tmp_path / "listing"
    root.mkdir()
    (root / "file").write_text("some bytes\n")
    (root / "sub").mkdir()
    (root / "link").symlink_to("file")
    (root / "script").write_text("#!/bin/sh\n")
    (root / "script").chmod(0o755)
    for path in (root / "file", root / "sub", root / "script", root):
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return root


def test_a_dynamically_linked_c_program_sees_what_it_sees_natively(dynamic: Path, same_as_native) -> None:
    same_as_native([str(dynamic)], env=ENV)
    same_as_native([str(dynamic), "one", "two"], returncode=7, env=ENV)


def test_true_from_coreutils(same_as_native) -> None:
    same_as_native(["/bin/true"], env=ENV)
    same_as_native(["/bin/false"], returncode=1, env=ENV)


def test_ls_la_of_a_stable_directory(stable_directory: Path, same_as_native) -> None:
    same_as_native(["/bin/ls", "-la", str(stable_directory)], env=ENV)


def test_ls_of_a_missing_file_fails_as_natively(tmp_path: Path, same_as_native) -> None:
    same_as_native(["/bin/ls", str(tmp_path / "missing")], returncode=2, env=ENV)


def test_sort_reads_stdin(same_as_native) -> None:
    same_as_native(["/usr/bin/sort", "-r"], input=b"pear\napple\nfig\n\nbanana\n", env=ENV)


def test_sha256sum_of_a_file(tmp_path: Path, same_as_native) -> None:
    data = tmp_path / "data"
    data.write_bytes(bytes(range(256)) * 64)
    same_as_native(["/usr/bin/sha256sum", str(data)], cwd=tmp_path, env=ENV)


def test_the_dynamic_linker_run_directly_runs_a_program(stable_directory: Path, same_as_native) -> None:
    same_as_native([LD_SO, "/bin/ls", str(stable_directory)], env=ENV)


# -- where a PIE goes --------------------------------------------------------------------
def _main_address(dynamic_pie: Path, *options: str) -> int:
    result = run_emu([*options, str(dynamic_pie)], env=ENV)
    assert result.returncode == 0, result.stderr
    return int(result.stdout, 16)


@pytest.fixture(scope="module")
def print_main(build_dynamic, tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("pie") / "print_main.c"
    source.write_text('#include <stdio.h>\nint main(void) { printf("%p\\n", (void *)main); return 0; }\n')
    return build_dynamic(source, "O0")


def test_a_pie_is_at_elf_et_dyn_base_by_default_and_under_deterministic(print_main: Path) -> None:
    first = _main_address(print_main)
    assert first == _main_address(print_main, "--deterministic") == _main_address(print_main, "--aslr",
                                                                                  "--deterministic")
    assert PIE_BASE <= first < PIE_BASE + 0x10_0000


def test_a_pie_moves_from_run_to_run_with_aslr(print_main: Path) -> None:
    addresses = {_main_address(print_main, "--aslr") for _ in range(3)}
    assert len(addresses) > 1
    assert all(address < PIE_BASE + 0x10_0000 and address & 0xFFF == min(addresses) & 0xFFF
               for address in addresses)


# -- the sysroot -------------------------------------------------------------------------
@pytest.fixture
def moved_linker(dynamic: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The dynamic program with its PT_INTERP renamed to a path that exists only in a sysroot; (program, root)."""
    moved = b"/emutt/ld-linux-x86-64.so.2"
    assert len(moved) == len(LD_SO)
    data = dynamic.read_bytes()
    assert data.count(LD_SO.encode()) == 1
    program = tmp_path / "moved"
    program.write_bytes(data.replace(LD_SO.encode(), moved))
    program.chmod(0o755)
    root = tmp_path / "sysroot"
    (root / "emutt").mkdir(parents=True)
    shutil.copy(LD_SO, root / "emutt" / "ld-linux-x86-64.so.2")
    return program, root


def test_minus_l_finds_the_dynamic_linker_in_the_sysroot(moved_linker: tuple[Path, Path], dynamic: Path) -> None:
    program, root = moved_linker
    native = subprocess.run([str(dynamic)], capture_output=True, env=ENV, check=False)
    by_option = run_emu(["-L", str(root), str(program)], env=ENV)
    by_variable = run_emu([str(program)], env={**ENV, "EMU_LD_PREFIX": str(root)})
    for result in by_option, by_variable:
        assert (result.returncode, result.stderr) == (0, b"")
        assert result.stdout == native.stdout.replace(str(dynamic).encode(), str(program).encode())


def test_without_the_sysroot_the_missing_linker_is_a_one_line_error(moved_linker: tuple[Path, Path]) -> None:
    program, _ = moved_linker
    result = run_emu([str(program)], env=ENV)
    assert result.stderr.decode() == (f"emu: error: {program} needs the dynamic linker /emutt/ld-linux-x86-64.so.2: "
                                      f"cannot read /emutt/ld-linux-x86-64.so.2: No such file or directory\n")
    assert result.returncode == 255 == _qemu_status([str(program)], 255)


def test_an_unreadable_sysroot_is_reported_and_the_host_paths_used(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = run_emu(["-L", str(not_a_directory), "/bin/true"], env=ENV)
    assert result.stderr.decode() == (f"emu: warning: the sysroot {not_a_directory} is not a readable directory; "
                                      f"using the host's paths\n")
    assert result.returncode == 0 == _qemu_status(["-L", str(not_a_directory), "/bin/true"], 0)


# -- files that cannot run -----------------------------------------------------------------
def _qemu_status(argv: list[str], expected: int) -> int:
    """qemu-x86_64's exit status for argv, or ``expected`` when qemu-x86_64 is not installed."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        return expected
    return subprocess.run([qemu, *argv], capture_output=True, env=ENV, check=False).returncode


def test_a_program_for_another_architecture(dynamic: Path, tmp_path: Path) -> None:
    data = bytearray(dynamic.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")       # e_machine = EM_AARCH64
    arm = tmp_path / "arm"
    arm.write_bytes(data)
    arm.chmod(0o755)
    result = run_emu([str(arm)], env=ENV)
    assert result.stderr.decode() == (f"emu: error: {arm} is an ELF for AArch64 (e_machine 183); "
                                      f"emu runs x86-64 programs only\n")
    assert result.returncode == 255 == _qemu_status([str(arm)], 255)


def test_a_truncated_dynamic_executable(dynamic: Path, tmp_path: Path) -> None:
    """Cut inside its ELF header: qemu-x86_64 gives up with status 1.  (Cut further on, qemu reads past the end
    and dies of SIGBUS or names an empty interpreter, depending on where; emu refuses every truncated file
    before it starts, with status 1: tests/user/test_elf_checks.py.)"""
    truncated = tmp_path / "truncated"
    truncated.write_bytes(dynamic.read_bytes()[:40])
    truncated.chmod(0o755)
    result = run_emu([str(truncated)], env=ENV)
    assert result.stderr.decode() == f"emu: error: {truncated} is truncated: 40 bytes, an ELF header needs 64\n"
    assert result.returncode == 1 == _qemu_status([str(truncated)], 1)
