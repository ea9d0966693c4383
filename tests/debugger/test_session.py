"""`emu debug` as a user runs it: commands through a real pipe, scripts, --batch, exit statuses, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.debugger.repl import outputs, run_session

ROOT = Path(__file__).resolve().parents[2]


def emu_debug(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emu", "debug", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_commands_through_a_pipe(counter_program: str) -> None:
    done = emu_debug(counter_program, stdin="break add\nc\nbt\ninfo registers rip\nx/s greeting\nfoo\nsi\nq\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"{counter_program}: stopped at the entry point 0x")
    assert "(emu) Breakpoint 1 at 0x" in out
    assert re.search(r"Breakpoint 1, 0x[0-9a-f]+\n=> 0x[0-9a-f]+ <add\+0>:\tpush rbp\n", out)
    assert re.search(r"#0  0x[0-9a-f]+ in add \(\)\n#1  0x[0-9a-f]+ in main \(\)\n", out)
    assert re.search(r"rip +0x[0-9a-f]+ +0x[0-9a-f]+ <add\+0>\n", out)
    assert '"hello, debugger"' in out
    assert 'Undefined command: "foo".  Try "help".\n' in out
    assert "<add+1>:\tmov rbp, rsp" in out           # the session went on after the error
    assert done.stderr == ""


def test_end_of_input_ends_the_session(counter_program: str) -> None:
    done = emu_debug(counter_program, stdin="si\n")
    assert done.returncode == 0
    assert done.stdout.endswith("(emu) ")


def test_batch_script_runs_then_exits_zero(counter_program: str, tmp_path: Path) -> None:
    script = tmp_path / "cmds.gdb"
    script.write_text("# a comment\nbreak add if $rdi == 2\n\ncontinue\np $rdi\ncontinue\n")
    done = emu_debug("--batch", "-x", str(script), counter_program, stdin="p 999\n")
    assert done.returncode == 0, done.stdout
    assert "$1 = 2\n" in done.stdout
    assert "Program exited with code 10" in done.stdout
    assert "999" not in done.stdout and "(emu)" not in done.stdout


def test_batch_script_stops_at_the_first_failing_command_and_exits_one(counter_program: str, tmp_path: Path) -> None:
    script = tmp_path / "cmds.gdb"
    script.write_text("p 1\nx/4xg 0\np 2\n")
    done = emu_debug("--batch", "-x", str(script), counter_program)
    assert done.returncode == 1
    assert "$1 = 1\nCannot access memory at address 0x0\n" in done.stdout
    assert "$2" not in done.stdout


def test_a_script_then_the_prompt(counter_program: str, tmp_path: Path) -> None:
    script = tmp_path / "cmds.gdb"
    script.write_text("break main\n")
    done = emu_debug("-x", str(script), counter_program, stdin="c\nq\n")
    assert done.returncode == 0
    assert "(emu) Breakpoint 1, 0x" in done.stdout


def test_source_runs_nested_scripts_and_a_failure_ends_them_all(counter_program: str, tmp_path: Path) -> None:
    inner, outer = tmp_path / "inner.gdb", tmp_path / "outer.gdb"
    inner.write_text("p 1\nnosuch\np 2\n")
    outer.write_text(f"source {inner}\np 3\n")
    s = run_session(counter_program, f"source {outer}\np 4\nsource {tmp_path}/missing.gdb\nsource\n")
    assert outputs(s)[0] == '$1 = 1\nUndefined command: "nosuch".  Try "help".\n'
    assert outputs(s)[1].strip() == "$2 = 4"
    assert "No such file or directory" in outputs(s)[2]
    assert outputs(s)[3].strip() == "source needs a file name"


def test_not_an_elf_is_one_line_and_status_2(tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    done = emu_debug(str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("emu: error: ") and done.stderr.count("\n") == 1
    assert done.stdout == ""


def test_symbols_from_a_system_map(counter_program: str, tmp_path: Path) -> None:
    system_map = tmp_path / "System.map"
    system_map.write_text("0000000000001000 T kernel_thing\n")
    done = emu_debug("--symbols", str(system_map), counter_program, stdin="info symbol 0x1008\ninfo symbol main\n")
    assert "kernel_thing + 8\n" in done.stdout
    assert "main in section .text\n" in done.stdout
    bad = emu_debug("--symbols", str(tmp_path / "missing"), counter_program)
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def test_ctrl_c_interrupts_the_running_guest_and_returns_to_the_prompt(spin_program: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "emu", "debug", spin_program], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        seen = b""
        while not seen.endswith(b"(emu) "):          # the debugger is ready (and its SIGINT handler will be)
            chunk = os.read(proc.stdout.fileno(), 1)
            assert chunk, proc.stderr.read()
            seen += chunk
        proc.stdin.write("c\n")
        proc.stdin.flush()
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate("p *spins > 0\nq\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Program interrupted\n=> 0x" in out
    assert "$1 = 1\n" in out


def test_help_lists_commands_and_explains_one(counter_program: str) -> None:
    s = run_session(counter_program, "help\nhelp x\nhelp si\nhelp nosuch\nh b\nsour\ns\n")
    assert "stepi [N] (si)" in outputs(s)[0] and "x/NFU ADDR" in outputs(s)[0]
    assert "Formats: x hex" in outputs(s)[1]
    assert outputs(s)[2].startswith("stepi [N] (si)") and "Aliases: si" in outputs(s)[2]
    assert outputs(s)[3].strip() == 'Undefined command: "nosuch".  Try "help".'
    assert outputs(s)[4].startswith("break [ADDR|SYMBOL]")
    assert outputs(s)[5].strip() == "source needs a file name"           # a unique prefix
    assert outputs(s)[6].startswith('Ambiguous command "s": ')


def test_info_lists_its_topics_and_refuses_unknown_ones(counter_program: str) -> None:
    s = run_session(counter_program, "info\ninfo nosuch\ninfo reg rip\ninfo clock\n")
    assert [line.split()[1] for line in outputs(s)[0].splitlines()] == [
        "breakpoints", "watchpoints", "registers", "symbol", "clock", "jit"]
    assert outputs(s)[1].strip() == 'Undefined info command: "nosuch".  Try "help info".'
    assert outputs(s)[2].startswith("rip ")
    assert outputs(s)[3].startswith("Instructions retired: 0\n")


def test_kill_ends_the_program(counter_program: str) -> None:
    s = run_session(counter_program, "kill\nc\n")
    assert outputs(s)[0].strip() == "Program terminated with signal SIGKILL"
    assert outputs(s)[1].strip() == "The program is not being run."


def test_a_session_with_the_jit_gives_the_answers_of_the_python_tier(counter_program: str) -> None:
    """Breakpoints, a watchpoint, stepping, finish and the exit through a pipe: --jit=eager and --jit=on
    print what --jit=off prints; `info jit` shows the blocks went native."""
    script = ("break add\nc\nbt\nfinish\nwatch counter\nc\nc\nsi\nni\ninfo registers rip rax rsp\ndelete\n"
              "tbreak add\nc\nx/4gx $rsp\nc\nq\n")
    runs = {mode: emu_debug(f"--jit={mode}", "--deterministic", counter_program, stdin=script)
            for mode in ("off", "on", "eager")}
    for mode, done in runs.items():
        assert done.returncode == 0 and done.stderr == "", f"{mode}: {done.stderr}"
    assert "Watchpoint 2: write of 8 bytes" in runs["off"].stdout and "exited with code 10" in runs["off"].stdout
    assert runs["on"].stdout == runs["off"].stdout
    assert runs["eager"].stdout == runs["off"].stdout
    status = emu_debug("--jit=eager", "--deterministic", counter_program, stdin="c\ninfo jit\n").stdout
    assert re.search(r"^\(emu\) JIT eager: [1-9]\d* of \d+ blocks native", status, re.M), status
