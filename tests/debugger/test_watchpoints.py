"""Watchpoints: the stop comes right after the instruction that made the access, and only then."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def _retired(text: str) -> int:
    return int(re.search(r"Instructions retired: (\d+)", text)[1])


def test_watch_stops_after_each_store_with_old_and_new_bytes(counter_program: str) -> None:
    s = run_session(counter_program, "watch counter\nc\np *counter\nc\np *counter\n")
    counter = s.debugger.symbols.lookup("counter").address
    assert outputs(s)[0].strip() == f"Hardware watchpoint 1: {counter:#x} <counter> (8 bytes)"
    first = outputs(s)[1]
    assert first.startswith(f"Watchpoint 1: write of 8 bytes at {counter:#x}\n")
    assert "  old: 00 00 00 00 00 00 00 00\n  new: 01 00 00 00 00 00 00 00\n" in first
    assert re.search(r"^=> 0x[0-9a-f]+ <main\+\d+>:", first, re.MULTILINE)
    assert outputs(s)[2].strip() == "$1 = 1"
    assert "new: 02 00" in outputs(s)[3]
    assert outputs(s)[4].strip() == "$2 = 2"          # exactly one more iteration


def test_the_watch_stop_follows_the_storing_instruction_exactly(counter_program: str) -> None:
    s = run_session(counter_program, "watch counter\nc\ninfo clock\n")
    stop_rip, n = s.rip, _retired(outputs(s)[2])
    replay = run_session(counter_program, f"si {n - 1}\np *counter\nsi\np *counter\n")
    assert outputs(replay)[1].strip() == "$1 = 0"
    assert outputs(replay)[3].strip() == "$2 = 1"
    assert replay.rip == stop_rip


def test_watch_with_a_length_and_an_expression_address(counter_program: str) -> None:
    s = run_session(counter_program, "watch &counter + 0 4\nc\n")
    assert "(4 bytes)" in outputs(s)[0]
    assert "Watchpoint 1: write of 8 bytes at " in outputs(s)[1]


def test_rwatch_stops_after_a_read(counter_program: str) -> None:
    s = run_session(counter_program, "rwatch counter\nc\n")
    assert outputs(s)[0].startswith("Hardware read watchpoint 1: ")
    assert "Watchpoint 1: read of 8 bytes at " in outputs(s)[1]
    assert "old:" not in outputs(s)[1]


def test_awatch_sees_the_read_then_the_write(counter_program: str) -> None:
    s = run_session(counter_program, "awatch counter\nc\nc\n")
    assert outputs(s)[0].startswith("Hardware access (read/write) watchpoint 1: ")
    assert "read of 8 bytes" in outputs(s)[1]
    assert "write of 8 bytes" in outputs(s)[2]


def test_debugger_reads_do_not_trigger_watchpoints(counter_program: str) -> None:
    s = run_session(counter_program, "rwatch counter\np *counter\nx/2xg counter\nc\n")
    assert re.search(r"^=> 0x[0-9a-f]+ <main\+\d+>:", outputs(s)[3], re.MULTILINE)


def test_debugger_writes_do_not_trigger_watchpoints(counter_program: str) -> None:
    s = run_session(counter_program, "watch counter\nset *counter = 40\nc\n")
    assert "old: 28 00" in outputs(s)[2] and "new: 29 00" in outputs(s)[2]


def test_disabled_watchpoint_does_not_stop(counter_program: str) -> None:
    s = run_session(counter_program, "watch counter\ndisable 1\nc\n")
    assert "Program exited with code 10" in outputs(s)[2]


def test_bad_watch_requests(counter_program: str) -> None:
    s = run_session(counter_program, "watch 0x10\nwatch counter 0\nwatch\ninfo watchpoints\nwatch counter\n")
    assert outputs(s)[0].strip() == "Cannot watch 0x10: no memory is mapped there."
    assert "length must be" in outputs(s)[1]
    assert "Argument required" in outputs(s)[2]
    assert outputs(s)[3].strip() == "No watchpoints."
    assert outputs(s)[4].startswith("Hardware watchpoint 1: ")
