"""Registers and values: info registers, print, set (registers with sub-register merging, memory)."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def test_info_registers_lists_the_user_mode_registers_like_gdb(counter_program: str) -> None:
    s = run_session(counter_program, "si 3\ninfo registers\n")
    out = outputs(s)[1]
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                     "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base"]
    assert re.search(rf"^rip {{12}}{s.rip:#x} +{s.rip:#x} <_start\+\d+>$", out, re.MULTILINE)
    assert re.search(r"^eflags +0x246 +\[ PF ZF IF \]$", out, re.MULTILINE)   # after xor ebp, ebp
    assert re.search(r"^cs +0x33 +51$", out, re.MULTILINE)
    assert "cr0" not in out and "efer" not in out


def test_info_registers_named_ones(counter_program: str) -> None:
    s = run_session(counter_program, "i r rip $eax al\ninfo registers cr3\ni r\n")
    lines = outputs(s)[0].splitlines()
    assert [line.split()[0] for line in lines] == ["rip", "eax", "al"]
    assert outputs(s)[1].strip() == "Invalid register `cr3'"
    assert len(outputs(s)[2].splitlines()) == 26


def test_set_rax_then_print_it(counter_program: str) -> None:
    s = run_session(counter_program, "set $rax = 5\np $rax\np rax\np/x $rax + 11\nsi\n")
    assert outputs(s)[1].strip() == "$1 = 5"
    assert outputs(s)[2].strip() == "$2 = 5"
    assert outputs(s)[3].strip() == "$3 = 0x10"
    assert "rax: 0x0 -> 0x5" in outputs(s)[4]              # changed since the previous stop


def test_sub_register_writes_keep_the_other_bits(counter_program: str) -> None:
    s = run_session(counter_program, "set $rax = 0x1122334455667788\nset $al = 0\np/x $rax\nset $ah = 0xab\n"
                                     "p/x $rax\nset $ax = 0x1\np/x $rax\nset $eax = -1\np/x $rax\np $eax\np $al\n"
                                     "set $r8d = 7\np/x $r8\n")
    assert outputs(s)[2].strip() == "$1 = 0x1122334455667700"
    assert outputs(s)[4].strip() == "$2 = 0x112233445566ab00"
    assert outputs(s)[6].strip() == "$3 = 0x1122334455660001"
    assert outputs(s)[8].strip() == "$4 = 0x11223344ffffffff"   # like gdb: the upper half is kept
    assert outputs(s)[9].strip() == "$5 = -1"
    assert outputs(s)[10].strip() == "$6 = -1"
    assert outputs(s)[12].strip() == "$7 = 0x7"


def test_set_eflags_and_rip(counter_program: str) -> None:
    s = run_session(counter_program, "set $eflags = 0x2c3\np $eflags\ninfo registers eflags\nset $pc = add\nsi\n")
    assert outputs(s)[1].strip() == "$1 = [ CF ZF SF IF ]"
    assert re.fullmatch(r"eflags +0x2c3 +\[ CF ZF SF IF \]\n", outputs(s)[2])
    add = s.debugger.symbols.lookup("add").address
    assert s.rip == add + 1                                  # push rbp ran


def test_set_memory_with_and_without_a_cast(counter_program: str) -> None:
    s = run_session(counter_program, "set *counter = -2\np *counter\nset *(char *)counter = 5\np/x *counter\n"
                                     "set var *(int *)(&counter + 4) = 1\np/x *counter\np *(unsigned char *)counter\n")
    assert outputs(s)[1].strip() == "$1 = -2"
    assert outputs(s)[3].strip() == "$2 = 0xffffffffffffff05"
    assert outputs(s)[5].strip() == "$3 = 0x1ffffff05"
    assert outputs(s)[6].strip() == "$4 = 5"


def test_writes_to_read_only_or_unmapped_memory_are_refused(counter_program: str) -> None:
    s = run_session(counter_program, "set *(char *)greeting = 'H'\nset *0x10 = 1\nx/s greeting\n")
    greeting = s.debugger.symbols.lookup("greeting").address
    assert outputs(s)[0].strip() == f"Cannot write memory at address {greeting:#x} (the page is read-only)"
    assert outputs(s)[1].strip() == "Cannot access memory at address 0x10"
    assert '"hello, debugger"' in outputs(s)[2]


def test_print_formats_history_and_addresses(counter_program: str) -> None:
    s = run_session(counter_program, "p 6 * 7\np/x $1\np/t 5\np/o 8\np/c 65\np/d -1\np/u (char)-1\np $ + $1\n"
                                     "p main\np $pc\np/x -1\np 7 / -2\np -7 % 3\n")
    got = [o.strip() for o in outputs(s)[:13]]
    main = s.debugger.symbols.lookup("main").address
    assert got == ["$1 = 42", "$2 = 0x2a", "$3 = 101", "$4 = 010", "$5 = 65 'A'", "$6 = -1", "$7 = 255",
                   "$8 = 41", f"$9 = {main:#x} <main>", f"$10 = {s.rip:#x} <_start>", "$11 = 0xffffffff",
                   "$12 = -3", "$13 = -1"]


def test_bad_expressions_give_messages(counter_program: str) -> None:
    s = run_session(counter_program, "p 1 / 0\np (1\np $nosuch\np $9\nset $rax\nset $1 = 2\nset main = 1\n"
                                     "p __import__('os')\np 09\np 1\n")
    out = [o.strip() for o in outputs(s)]
    assert out[0] == "Division by zero"
    assert out[1].startswith("incomplete expression")
    assert out[2] == "no register or value named $nosuch"
    assert out[3] == "History is empty."
    assert out[4].startswith("set needs an assignment")
    assert "history" in out[5]
    assert "is a symbol" in out[6]
    assert out[7].startswith("invalid character") or out[7].startswith("unexpected")
    assert "octal" in out[8]
    assert out[9] == "$1 = 1"


def test_ymm_registers_print_and_set_with_their_xmm_halves(counter_program: str) -> None:
    s = run_session(counter_program, "set $ymm2 = (1 << 200) | 0x77\np/x $ymm2\np/x $xmm2\ni r ymm2\n")
    assert outputs(s)[1].strip() == f"$1 = {(1 << 200) | 0x77:#x}"
    assert outputs(s)[2].strip() == "$2 = 0x77"
    assert outputs(s)[3].split()[0] == "ymm2"
