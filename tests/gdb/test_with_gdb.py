"""Debian's gdb as the client: ``target remote`` to ``emu run --gdb``, on a C program built with gcc -g."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.gdb.rsp import TIMEOUT, Emu

PROGRAM_C = r"""
#include <stdio.h>

volatile int counter;
volatile long spins;

int add(int a, int b) {
    return a + b;
}

int main(int argc, char **argv) {
    for (int i = 0; i < 3; i++)
        counter = add(counter, i + 1);
    printf("counter=%d\n", counter);
    while (argc > 1)
        spins++;
    return counter - 1;
}
"""
EXIT_STATUS = 5
"""main returns 1 + 2 + 3 - 1."""

GDB = shutil.which("gdb")
pytestmark = pytest.mark.skipif(GDB is None, reason="needs gdb (apt-get install gdb; scripts/setup installs it)")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("gdb-c")
    (directory / "prog.c").write_text(PROGRAM_C)
    binary = directory / "prog"
    subprocess.run(["gcc", "-static", "-O0", "-g", "-o", str(binary), str(directory / "prog.c")], check=True,
                   timeout=TIMEOUT)
    return binary


def symbol_range(binary: Path, name: str) -> range:
    listing = subprocess.run(["nm", "-S", str(binary)], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3] == name:
            return range(int(fields[0], 16), int(fields[0], 16) + int(fields[1], 16))
    raise AssertionError(f"{name} not in {binary}")


def gdb_command(emu: Emu, program: Path, *commands: str) -> list[str]:
    argv = [GDB, "-batch", "-nx", "-ex", "set confirm off", "-ex", f"target remote {emu.host}:{emu.port}"]
    for command in commands:
        argv += ["-ex", command]
    return [*argv, str(program)]


def run_gdb(emu: Emu, program: Path, *commands: str) -> str:
    try:
        result = subprocess.run(gdb_command(emu, program, *commands), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        emu.kill()
        raise
    return result.stdout + result.stderr


def test_gdb_breaks_at_main_disassembles_steps_and_runs_to_the_exit(program: Path) -> None:
    emu = Emu([str(program)])
    out = run_gdb(emu, program, "break main", "continue", "info registers rip", "x/4i $pc", "stepi", "p $rax",
                  "continue")
    status, stdout, err = emu.finish()
    assert re.search(r"0x[0-9a-f]+ in _start \(\)", out), out         # stopped before the first instruction
    assert "Breakpoint 1, main" in out
    rip = re.search(r"^rip\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+ <main\+\d+>$", out, re.M)
    assert rip is not None and int(rip[1], 16) in symbol_range(program, "main"), out
    assert len(re.findall(r"^(=> | {3})0x[0-9a-f]+ <main\+\d+>:\t\S", out, re.M)) == 4, out
    assert re.search(r"^\$1 = -?\d+$", out, re.M), out
    assert re.search(rf"^\[Inferior 1 \(process \d+\) exited with code {EXIT_STATUS:02o}\]$", out, re.M), out
    assert (status, stdout) == (EXIT_STATUS, "counter=6\n")
    assert "Traceback" not in err


def test_gdb_shows_and_sets_the_ymm_registers(program: Path) -> None:
    """gdb builds $ymm1 from $xmm1 and $ymm1h (the org.gnu.gdb.i386.avx feature) and writes both halves back."""
    emu = Emu([str(program)])
    out = run_gdb(emu, program, "break main", "continue", "set var $ymm1.v8_int32 = {1, 2, 3, 4, 5, 6, 7, 8}",
                  "p $ymm1.v8_int32", "p $xmm1.v4i32", "p/x $ymm1h", "kill")
    emu.finish()
    assert "= {1, 2, 3, 4, 5, 6, 7, 8}" in out, out
    assert "= {1, 2, 3, 4}" in out, out
    assert "= 0x8000000070000000600000005" in out, out


def test_gdb_watch_on_a_global_stops_after_each_change(program: Path) -> None:
    emu = Emu([str(program)])
    out = run_gdb(emu, program, "break main", "continue", "watch counter", "continue", "continue",
                  "info registers fs_base", "delete", "continue")
    status, stdout, _ = emu.finish()
    assert "Hardware watchpoint 2: counter" in out
    assert re.search(r"Old value = 0\s+New value = 1\s", out), out
    assert re.search(r"Old value = 1\s+New value = 3\s", out), out
    fs_base = re.search(r"^fs_base\s+(0x[0-9a-f]+)", out, re.M)
    assert fs_base is not None and int(fs_base[1], 16) != 0, out      # glibc has set up its TLS by main
    assert (status, stdout) == (EXIT_STATUS, "counter=6\n")


def test_gdb_finds_the_program_from_the_stub_without_a_file_argument(program: Path) -> None:
    emu = Emu([str(program)])
    argv = gdb_command(emu, program, "break add", "continue", "bt", "kill")[:-1]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert f"Reading symbols from {program}" in out
    assert re.search(r"Breakpoint 1, add \(a=0, b=1\)", out), out
    assert re.search(r"#1 +0x[0-9a-f]+ in main \(", out), out
    assert emu.finish()[0] == 128 + 9


def test_ctrl_c_in_gdb_interrupts_a_running_program(program: Path) -> None:
    emu = Emu([str(program), "spin"])
    gdb = subprocess.Popen(gdb_command(emu, program, "continue", "p spins > 0", "kill"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        gdb.send_signal(signal.SIGINT)
        out = gdb.communicate(timeout=TIMEOUT)[0]
    finally:
        gdb.kill()
        emu.kill()
    assert "Program received signal SIGINT" in out
    assert re.search(r"^\$1 = 1$", out, re.M), out
