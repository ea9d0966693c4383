"""Instruction tracing: one line per executed instruction, with the registers and memory it changed."""

from __future__ import annotations

import re
from pathlib import Path

from tests.debugger.repl import outputs, run_session

LINE = re.compile(r"0x[0-9a-f]+: \S.*")


def test_trace_to_a_file_writes_one_line_per_instruction(counter_program: str, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    s = run_session(counter_program, f"x/1i $pc\ntrace on {trace}\nsi 20\ntrace off\nsi\n")
    entry = s.debugger.symbols.lookup("_start").address
    lines = trace.read_text().splitlines()
    assert len(lines) == 20
    assert all(LINE.fullmatch(line) for line in lines)
    assert lines[0].startswith(f"{entry:#x}: xor ebp, ebp")
    assert outputs(s)[1].strip() == f"Tracing to {trace}."
    assert outputs(s)[3].strip() == "Tracing off."


def test_trace_lines_name_changed_registers_and_stored_memory(counter_program: str, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    run_session(counter_program, f"break main\nc\ntrace on {trace}\nsi 3\ntrace off\n")
    push, mov, sub = trace.read_text().splitlines()
    assert re.fullmatch(r"0x[0-9a-f]+: push rbp    rsp=(0x[0-9a-f]+) \[(0x[0-9a-f]+)\]=0x[0-9a-f]+", push)
    rsp, slot = re.findall(r"0x[0-9a-f]+", push.split("    ")[1])[:2]
    assert rsp == slot
    assert re.fullmatch(r"0x[0-9a-f]+: mov rbp, rsp    rbp=0x[0-9a-f]+", mov)
    assert re.fullmatch(r"0x[0-9a-f]+: sub rsp, 0x[0-9a-f]+    rsp=0x[0-9a-f]+ rflags=0x[0-9a-f]+", sub)


def test_trace_to_the_console_during_continue_stops_with_the_program(counter_program: str) -> None:
    s = run_session(counter_program, "until add\ntrace on\nc\n")
    lines = [line for line in outputs(s)[2].splitlines() if LINE.fullmatch(line)]
    assert len(lines) > 100
    assert "Program exited with code 10" in outputs(s)[2]
    assert "syscall" in lines[-1]


def test_traces_of_two_deterministic_runs_are_identical(counter_program: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for path in (a, b):
        run_session(counter_program, f"trace on {path}\nrun 3000\n")
    assert a.read_text() == b.read_text()
    assert len(a.read_text().splitlines()) == 3000


def test_a_faulting_instruction_is_marked(counter_program: str, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    run_session(counter_program, f"break main\nc\ntrace on {trace}\nc\n", "crash")
    assert trace.read_text().splitlines()[-1].endswith("mov dword ptr [rax], 1    (faulted)")


def test_bad_trace_requests(counter_program: str, tmp_path: Path) -> None:
    s = run_session(counter_program, f"trace\ntrace sideways\ntrace on {tmp_path}/no/such/dir/t.txt\nsi\n")
    assert outputs(s)[0].strip() == "Usage: trace on [FILE] | trace off"
    assert outputs(s)[1].strip() == "Usage: trace on [FILE] | trace off"
    assert "No such file or directory" in outputs(s)[2]
    assert "Stopped at" in outputs(s)[3]
