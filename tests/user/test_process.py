"""Whole programs run under the interpreter: output, exit status, and CPU faults ended like signals."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from emu.user.process import DETERMINISTIC_EPOCH_NS, Process, run_program
from tests.user.elfs import BASE, code_offset, program, write

CODE = BASE + code_offset()
EXIT = "mov eax, 231; syscall"     # exit_group(edi)


def run(tmp_path: Path, source: str, **options: object) -> int:
    return run_program([write(tmp_path, program(source))], {}, **options)


def test_a_program_writes_to_stdout_and_exits_with_its_status(tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    hello = """
        mov rax, 0x0a6f6c6c6568; push rax
        mov eax, 1; mov edi, 1; mov rsi, rsp; mov edx, 6; syscall
        mov edi, 7; """ + EXIT
    assert run(tmp_path, hello) == 7
    assert capfd.readouterr() == ("hello\n", "")


def test_a_null_pointer_read_is_a_sigsegv_with_the_fault_named(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "xor eax, eax; mov rax, [rax]") == 128 + 11
    assert capsys.readouterr().err == ("emu: program terminated by SIGSEGV: #PF (error code 0x4) at address 0x0 "
                                       f"at rip {CODE + 2:#x}\n")


def test_a_write_to_read_only_code_is_a_protection_fault(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, f"mov byte ptr [{BASE:#x}], 0") == 139
    assert f"#PF (error code 0x7) at address {BASE:#x} at rip {CODE:#x}" in capsys.readouterr().err


def test_ud2_is_a_sigill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "ud2") == 128 + 4
    assert capsys.readouterr().err.startswith("emu: program terminated by SIGILL: #UD")


def test_a_division_by_zero_is_a_sigfpe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "xor ecx, ecx; div ecx") == 128 + 8
    assert capsys.readouterr().err.startswith("emu: program terminated by SIGFPE: #DE")


def test_an_unmasked_x87_exception_is_a_sigfpe_at_the_next_waiting_instruction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FLDCW unmasks ZE (FCW 0x37B); FDIVP by zero leaves it pending; FWAIT (at CODE + 14) raises #MF."""
    unmask = "push 0x37b; fldcw word ptr [rsp]; fld1; fldz; fdivp st(1), st(0); fwait"
    assert run(tmp_path, unmask) == 128 + 8
    assert capsys.readouterr().err == f"emu: program terminated by SIGFPE: #MF at rip {CODE + 14:#x}\n"


def test_int3_is_a_sigtrap_reported_after_the_instruction(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "nop; int3") == 128 + 5
    err = capsys.readouterr().err
    assert "SIGTRAP" in err and f"at rip {CODE + 2:#x}" in err


def test_hlt_in_user_mode_is_a_sigsegv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "hlt") == 139
    assert "SIGSEGV" in capsys.readouterr().err


def test_abort_through_tgkill_ends_with_134_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A signal's default action says nothing, as natively: the parent or the shell reports it."""
    abort = "mov eax, 39; syscall; mov edi, eax; mov esi, eax; mov edx, 6; mov eax, 234; syscall; ud2"
    assert run(tmp_path, abort) == 134
    assert capsys.readouterr().err == ""


def test_an_instruction_limit_ends_a_runaway_program_like_sigxcpu(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "spin: jmp spin", max_instructions=1000) == 128 + 24
    assert capsys.readouterr().err == "emu: program terminated by SIGXCPU: after 1000 instructions (the limit)\n"


def test_a_deterministic_run_reads_a_clock_counted_in_instructions(tmp_path: Path) -> None:
    stamp = """
        sub rsp, 16; mov eax, 228; xor edi, edi; mov rsi, rsp; syscall
        mov eax, 1; mov edi, 1; mov rsi, rsp; mov edx, 16; syscall
        xor edi, edi; """ + EXIT

    def clock_reading() -> int:
        r, w = os.pipe()
        process = Process(write(tmp_path, program(stamp)), ["stamp"], {}, deterministic=True, stdout=w)
        assert process.run() == 0
        sec, nsec = struct.unpack("<qq", os.read(r, 16))
        os.close(r)
        os.close(w)
        return sec * 10**9 + nsec

    first = clock_reading()
    assert first == clock_reading()
    assert 0 < first - DETERMINISTIC_EPOCH_NS < 100


def test_a_static_glibc_program_sees_its_arguments_and_environment(static_program: str,
                                                                    capfd: pytest.CaptureFixture[str]) -> None:
    assert run_program([static_program, "one", "two words"], {"GREETING": "hi"}) == 5
    out = capfd.readouterr().out
    assert out == f"argv[0]={static_program}\nargv[1]=one\nargv[2]=two words\nGREETING=hi\n"


def test_stats_report_the_instructions_retired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "xor edi, edi; " + EXIT, stats=True) == 0
    retired, blocks = capsys.readouterr().err.splitlines()
    assert retired.startswith("emu: 3 instructions retired in ") and retired.endswith(" MIPS)")
    assert re.fullmatch(r"emu: \d+ blocks translated( \(\d+\.\d{3} ms each\))?, \d+ from the code cache.*", blocks)
