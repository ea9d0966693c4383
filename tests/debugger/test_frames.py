"""Backtraces by frame pointers, and a faulting program."""

from __future__ import annotations

import re

from tests.debugger.repl import outputs, run_session


def _frames(text: str) -> list[tuple[int, str]]:
    return [(int(a, 16), name) for a, name in re.findall(r"^#\d+ +(0x[0-9a-f]{16}) in (\S+) \(\)$", text, re.M)]


def test_bt_in_add_shows_add_then_main(counter_program: str) -> None:
    for steps in (0, 1, 2, 5):        # at entry, after push rbp, after mov rbp, rsp, in the body
        s = run_session(counter_program, f"break add\nc\nsi {steps}\nbt\n" if steps else "break add\nc\nbt\n")
        frames = _frames(outputs(s)[-2])
        assert [name for _, name in frames[:2]] == ["add", "main"], (steps, s.output)
        assert frames[0][0] == s.rip
        assert outputs(s)[-2].startswith("#0  0x")


def test_bt_n_limits_the_frames(counter_program: str) -> None:
    s = run_session(counter_program, "break add\nc\nbt 1\nwhere\n")
    assert len(_frames(outputs(s)[2])) == 1
    assert len(_frames(outputs(s)[3])) >= 2


def test_bt_at_the_entry_point_is_one_frame(counter_program: str) -> None:
    s = run_session(counter_program, "bt\n")
    assert _frames(outputs(s)[0]) == [(s.rip, "_start")]


def test_segfault_stops_with_the_signal_the_fault_and_its_rip(counter_program: str) -> None:
    s = run_session(counter_program, "c\nbt\nc\ninfo registers\n", "crash")
    out = outputs(s)[0]
    rip = s.rip
    assert out.startswith(f"Program received signal SIGSEGV: #PF (error code 0x6) at address 0x0 at rip {rip:#x}\n")
    assert re.search(rf"^=> {rip:#x} <main\+\d+>:\tmov dword ptr \[rax\], 1$", out, re.MULTILINE)
    assert _frames(outputs(s)[1])[0] == (rip, "main")
    assert outputs(s)[2].strip() == "Program terminated with signal SIGSEGV"
    assert "rip" in outputs(s)[3]              # registers stay readable after the end
