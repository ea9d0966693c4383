"""Breakpoints: on symbols and addresses, conditional, temporary; delete, disable, enable, info breakpoints."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def test_break_on_a_symbol_stops_at_its_first_instruction(counter_program: str) -> None:
    s = run_session(counter_program, "break add\nc\n")
    add = s.debugger.symbols.lookup("add").address
    assert outputs(s)[0].strip() == f"Breakpoint 1 at {add:#x} <add+0>"
    assert outputs(s)[1].startswith(f"Breakpoint 1, {add:#x}\n")
    assert f"=> {add:#x} <add+0>:\t" in outputs(s)[1]
    assert s.rip == add


def test_break_star_address_and_expression(counter_program: str) -> None:
    add = run_session(counter_program, "").debugger.symbols.lookup("add").address
    s = run_session(counter_program, f"break *{add:#x}\nbreak add + 4\nc\nc\n")
    assert "Breakpoint 1, " in outputs(s)[2]
    assert "Breakpoint 2, " in outputs(s)[3] and s.rip == add + 4


def test_continue_from_a_breakpoint_hits_it_again_next_call(counter_program: str) -> None:
    s = run_session(counter_program, "break add\nc\nc\np $rdi\ninfo breakpoints\n")
    assert "Breakpoint 1, " in outputs(s)[2]
    assert outputs(s)[3].strip() == "$1 = 1"
    assert "breakpoint already hit 2 times" in outputs(s)[4]


def test_conditional_breakpoint_stops_only_when_the_condition_holds(counter_program: str) -> None:
    s = run_session(counter_program, "break add if $rdi == 3\nc\np $rdi\np *counter\ninfo breakpoints\n")
    assert "Breakpoint 1, " in outputs(s)[1]
    assert outputs(s)[2].strip() == "$1 = 3"
    assert outputs(s)[3].strip() == "$2 = 3"              # three earlier calls each counted
    assert "\tstop only if $rdi == 3" in outputs(s)[4]


def test_condition_with_a_bare_register_name_and_logic(counter_program: str) -> None:
    s = run_session(counter_program, "break add if rdi > 1 && (esi & 1) == 1\nc\np $rdi\np $rsi\n")
    assert outputs(s)[2].strip() == "$1 = 2" and outputs(s)[3].strip() == "$2 = 1"


def test_condition_that_never_holds_lets_the_program_finish(counter_program: str) -> None:
    s = run_session(counter_program, "break add if $rdi == 99\nc\n")
    assert "Program exited with code 10" in outputs(s)[1]


def test_malformed_condition_is_refused_and_no_breakpoint_is_set(counter_program: str) -> None:
    s = run_session(counter_program, "break add if $rdi ==\nbreak add if\ninfo breakpoints\n")
    assert "incomplete expression" in outputs(s)[0]
    assert "Argument required (boolean expression)." in outputs(s)[1]
    assert "No breakpoints or watchpoints." in outputs(s)[2]


def test_tbreak_is_deleted_when_hit(counter_program: str) -> None:
    s = run_session(counter_program, "tbreak add\nc\ninfo breakpoints\nc\n")
    assert outputs(s)[0].startswith("Temporary breakpoint 1 at ")
    assert "Temporary breakpoint 1, " in outputs(s)[1]
    assert "No breakpoints or watchpoints." in outputs(s)[2]
    assert "Program exited with code 10" in outputs(s)[3]


def test_disable_and_enable(counter_program: str) -> None:
    s = run_session(counter_program, "break add\ndisable 1\ninfo breakpoints\nbreak main\nc\nenable\nc\n")
    assert re.search(r"^1\s+breakpoint\s+keep n ", outputs(s)[2], re.MULTILINE)
    assert "Breakpoint 2, " in outputs(s)[4]
    assert "Breakpoint 1, " in outputs(s)[6]


def test_delete_one_and_all(counter_program: str) -> None:
    s = run_session(counter_program, "break add\nbreak main\nwatch counter\ndelete 2\ninfo breakpoints\n"
                                     "delete\ninfo breakpoints\nbreak add\n")
    table = outputs(s)[4]
    assert re.search(r"^1\s+breakpoint", table, re.MULTILINE) and re.search(r"^3\s+hw watchpoint", table, re.MULTILINE)
    assert not re.search(r"^2\s", table, re.MULTILINE)
    assert "No breakpoints or watchpoints." in outputs(s)[6]
    assert outputs(s)[7].startswith("Breakpoint 4 at ")


def test_bad_breakpoint_requests_give_a_message_and_the_session_goes_on(counter_program: str) -> None:
    s = run_session(counter_program, "break 0x1\ndelete 99\ndisable 99\ndelete one\nbreak nosuch\nbreak add\n")
    assert outputs(s)[0].strip() == "Cannot insert breakpoint at 0x1: no memory is mapped there."
    assert outputs(s)[1].strip() == "No breakpoint number 99."
    assert outputs(s)[2].strip() == "No breakpoint number 99."
    assert "not a breakpoint number" in outputs(s)[3]
    assert outputs(s)[4].strip() == 'No symbol "nosuch" in current context.'
    assert outputs(s)[5].startswith("Breakpoint 1 at ")


def test_internal_breakpoints_of_nexti_and_finish_use_no_numbers(counter_program: str) -> None:
    s = run_session(counter_program, "until main\nbreak add\nc\nfinish\nbreak main\n")
    assert outputs(s)[4].startswith("Breakpoint 2 at ")


def test_a_condition_that_cannot_be_evaluated_stops_and_says_why(counter_program: str) -> None:
    s = run_session(counter_program, "break add if *0 == 1\nc\n")
    assert "Error in testing condition '*0 == 1': Cannot access memory at address 0x0\n" in outputs(s)[1]
    assert "Breakpoint 1, " in outputs(s)[1]
