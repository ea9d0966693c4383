"""Stepping and running: stepi, nexti, finish, until, run N, continue, and the empty line that repeats."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def _addresses(text: str) -> list[int]:
    """The instruction addresses of disassembly lines (`=> 0x401000 <f+0>:` or `   0x401003 <f+3>:`)."""
    return [int(a, 16) for a in re.findall(r"^(?:=>|  ) (0x[0-9a-f]+)", text, re.MULTILINE)]


def _call_to_add(session_output: str) -> tuple[int, int]:
    """Address of main's `call add` and of the instruction after it, from a disassembly of main."""
    lines = session_output.splitlines()
    for line, following in zip(lines, lines[1:], strict=False):
        if re.search(r"call\s+0x[0-9a-f]+ <add\+0>", line):
            return _addresses(line)[0], _addresses(following)[0]
    raise AssertionError(f"no call to add in:\n{session_output}")


def test_si_3_executes_exactly_three_instructions(counter_program: str) -> None:
    s = run_session(counter_program, "x/4i $pc\nsi 3\ninfo clock\n")
    fourth = _addresses(outputs(s)[0])[3]
    assert s.rip == fourth
    assert "Instructions retired: 3\n" in outputs(s)[2]
    assert "Virtual time: 3 ns" in outputs(s)[2]


def test_stop_shows_reason_instruction_and_changed_registers(counter_program: str) -> None:
    s = run_session(counter_program, "si\n")
    out = outputs(s)[0]
    assert out.startswith("Stopped at ")
    assert re.search(r"^=> 0x[0-9a-f]+ <_start\+\d+>:\t", out, re.MULTILINE)
    assert re.search(r"\w+: 0x[0-9a-f]+ -> 0x[0-9a-f]+", out)


def test_empty_line_repeats_the_last_stepping_command(counter_program: str) -> None:
    s = run_session(counter_program, "si 2\n\n\ninfo clock\n")
    assert "Instructions retired: 6\n" in outputs(s)[3]


def test_empty_line_after_a_non_stepping_command_does_nothing(counter_program: str) -> None:
    s = run_session(counter_program, "si\ninfo clock\n\ninfo clock\n")
    assert outputs(s)[2] == ""
    assert "Instructions retired: 1\n" in outputs(s)[3]


def test_nexti_steps_over_a_call_to_the_next_instruction(counter_program: str) -> None:
    listing = run_session(counter_program, "disassemble main 40\n").output
    call, after = _call_to_add(listing)
    s = run_session(counter_program, f"until {call:#x}\ninfo clock\nni\ninfo clock\n")
    assert "<main+" in outputs(s)[0]
    before = int(re.search(r"retired: (\d+)", outputs(s)[1])[1])
    later = int(re.search(r"retired: (\d+)", outputs(s)[3])[1])
    assert s.rip == after
    assert later - before > 2          # add's instructions ran, but as one step
    assert "<add" not in outputs(s)[2]


def test_nexti_on_a_plain_instruction_is_stepi(counter_program: str) -> None:
    s = run_session(counter_program, "ni\ninfo clock\n")
    assert "Instructions retired: 1\n" in outputs(s)[1]


def test_finish_returns_to_the_caller_right_after_the_call(counter_program: str) -> None:
    listing = run_session(counter_program, "disassemble main 40\n").output
    _, after = _call_to_add(listing)
    s = run_session(counter_program, "break add\nc\nfinish\n")
    out = outputs(s)[2]
    assert "Run till exit from #0  0x" in out and "in add ()" in out
    assert s.rip == after
    assert re.search(rf"=> {after:#x} <main\+\d+>:", out)


def test_finish_works_inside_the_prologue_and_the_body(counter_program: str) -> None:
    listing = run_session(counter_program, "disassemble main 40\n").output
    _, after = _call_to_add(listing)
    for steps in (1, 2, 4):             # after push rbp; after mov rbp, rsp; in the body
        s = run_session(counter_program, f"break add\nc\nsi {steps}\nfinish\n")
        assert s.rip == after, (steps, s.output)


def test_finish_at_the_ret_instruction_takes_the_return_address_from_rsp(counter_program: str) -> None:
    listing = run_session(counter_program, "disassemble main 40\ndisassemble add 12\n").output
    _, after = _call_to_add(listing)
    ret = next(_addresses(line)[0] for line in listing.splitlines() if "<add+" in line and line.endswith("ret"))
    s = run_session(counter_program, f"until {ret:#x}\nfinish\n")
    assert s.rip == after


def test_finish_in_the_outermost_frame_says_so(counter_program: str) -> None:
    s = run_session(counter_program, "finish\ninfo clock\n")
    assert "finish" in outputs(s)[0] and "not" in outputs(s)[0]
    assert "Instructions retired: 0\n" in outputs(s)[1]


def test_until_runs_to_an_address(counter_program: str) -> None:
    s = run_session(counter_program, "until main\n")
    assert s.rip == s.debugger.symbols.lookup("main").address
    assert "Stopped at" in outputs(s)[0]


def test_run_n_runs_n_instructions_without_breakpoints(counter_program: str) -> None:
    s = run_session(counter_program, "run 100\ninfo clock\n")
    assert "Instructions retired: 100\n" in outputs(s)[1]


def test_run_n_stops_early_at_a_breakpoint(counter_program: str) -> None:
    s = run_session(counter_program, "break main\nrun 1000000\ninfo clock\n")
    assert "Breakpoint 1, " in outputs(s)[1]
    assert s.rip == s.debugger.symbols.lookup("main").address


def test_continue_to_the_end_reports_the_exit_status(counter_program: str) -> None:
    s = run_session(counter_program, "c\nsi\nc\n")
    assert "Program exited with code 10" in outputs(s)[0]
    assert outputs(s)[1].strip() == "The program is not being run."
    assert outputs(s)[2].strip() == "The program is not being run."
