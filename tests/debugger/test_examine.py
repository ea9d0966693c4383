"""Looking at memory and code: x/NFU, xp, disassemble, explain."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def test_x_4xg_sp_shows_four_giant_words_two_per_line(counter_program: str) -> None:
    s = run_session(counter_program, "x/4xg $sp\n")
    sp = s.debugger.state.rsp
    lines = outputs(s)[0].splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf"{sp:#x}:\t0x[0-9a-f]{{16}}\t0x[0-9a-f]{{16}}", lines[0])
    assert lines[1].startswith(f"{sp + 16:#x}:\t")
    argc = int(lines[0].split("\t")[1], 16)
    assert argc == 1                                    # the stack starts with argc


def test_x_2dw_counter_after_two_iterations(counter_program: str) -> None:
    s = run_session(counter_program, "set *counter = 0xfffffffe00000002\nx/2dw counter\nx/2uw counter\n")
    counter = s.debugger.symbols.lookup("counter").address
    assert outputs(s)[1].strip() == f"{counter:#x} <counter>:\t2\t-2"
    assert outputs(s)[2].strip() == f"{counter:#x} <counter>:\t2\t4294967294"


def test_x_s_prints_a_c_string(counter_program: str) -> None:
    s = run_session(counter_program, "x/s greeting\n")
    greeting = s.debugger.symbols.lookup("greeting").address
    assert outputs(s)[0].strip() == f'{greeting:#x} <greeting>:\t"hello, debugger"'


def test_x_3i_pc_disassembles_three_instructions_marking_rip(counter_program: str) -> None:
    s = run_session(counter_program, "x/3i $pc\n")
    lines = outputs(s)[0].splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"=> {s.rip:#x} <_start+0>:\t")
    assert lines[1].startswith("   0x") and "<_start+" in lines[1]


def test_x_remembers_the_format_and_continues_without_an_address(counter_program: str) -> None:
    s = run_session(counter_program, "x/2xw greeting\nx\n\n")
    greeting = s.debugger.symbols.lookup("greeting").address
    assert outputs(s)[0].strip() == f"{greeting:#x} <greeting>:\t0x6c6c6568\t0x64202c6f"
    assert outputs(s)[1].startswith(f"{greeting + 8:#x} <greeting+8>:\t0x")
    assert outputs(s)[1].count("\t") == 1
    assert outputs(s)[2].startswith(f"{greeting + 12:#x} <greeting+12>:\t0x")


def test_x_char_binary_octal_and_address_formats(counter_program: str) -> None:
    s = run_session(counter_program, "x/2c greeting\nx/tb greeting\nx/ob greeting\nset *counter = main\nx/a counter\n")
    assert outputs(s)[0].endswith(":\t104 'h'\t101 'e'\n")
    assert outputs(s)[1].endswith(":\t01101000\n")
    assert outputs(s)[2].endswith(":\t0150\n")
    main = s.debugger.symbols.lookup("main").address
    assert outputs(s)[4].endswith(f":\t{main:#x} <main>\n")


def test_bad_x_requests_give_messages_and_the_session_goes_on(counter_program: str) -> None:
    s = run_session(counter_program, "x/4x nonsense\nx/4q $sp\nx/4xg 0\nx\nx/s greeting\n")
    assert outputs(s)[0].strip() == 'No symbol "nonsense" in current context.'
    assert 'Invalid format letter "q"' in outputs(s)[1]
    assert outputs(s)[2].strip() == "Cannot access memory at address 0x0"
    assert "hello, debugger" in outputs(s)[4]


def test_x_stops_at_the_first_unreadable_unit(counter_program: str) -> None:
    s = run_session(counter_program, "x/3xg 0x7ffffffff000 - 16\n")
    lines = outputs(s)[0].splitlines()
    assert lines[0].startswith("0x7fffffffeff0:\t0x")
    assert lines[1] == "Cannot access memory at address 0x7ffffffff000"


def test_xp_explains_it_needs_a_full_system_machine(counter_program: str) -> None:
    s = run_session(counter_program, "xp/4xg 0x1000\n")
    assert outputs(s)[0].startswith("xp needs a full-system machine (emu debug --boot")


def test_disassemble_defaults_to_ten_instructions_from_rip(counter_program: str) -> None:
    s = run_session(counter_program, "disassemble\n")
    lines = outputs(s)[0].splitlines()
    assert len(lines) == 10
    assert lines[0].startswith(f"=> {s.rip:#x} <_start+0>:")
    assert sum(line.startswith("=>") for line in lines) == 1


def test_disassemble_a_function_names_call_targets_and_rip_relative_data(counter_program: str) -> None:
    s = run_session(counter_program, "disassemble main 40\ndisassemble add 2\n")
    listing = outputs(s)[0]
    assert re.search(r"\tcall 0x[0-9a-f]+ <add\+0>$", listing, re.MULTILINE)
    assert re.search(r"# 0x[0-9a-f]+ <counter>$", listing, re.MULTILINE)
    assert len(outputs(s)[1].splitlines()) == 2 and "<add+0>:\tpush rbp" in outputs(s)[1]


def test_explain_shows_the_micro_ops_of_the_current_instruction(counter_program: str) -> None:
    s = run_session(counter_program, "explain\nexplain add\n")
    assert re.match(r"\S.*    \(([0-9a-f]{2} ?)+\)\n", outputs(s)[0])
    assert "\n  rip <- " in outputs(s)[0]
    assert outputs(s)[1].startswith("push rbp    (55)\n")
    assert "store64" in outputs(s)[1]
