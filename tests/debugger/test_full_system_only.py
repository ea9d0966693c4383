"""A user-mode program has no machine: the full-system views say so in one line each."""

from __future__ import annotations

import pytest

from tests.debugger.repl import outputs, run_session

MACHINE_COMMANDS = ["info tlb", "info mem", "info pic", "info devices", "pagewalk 0x401000", "serial hello",
                    "xp/4xg 0x7000"]


@pytest.mark.parametrize("command", MACHINE_COMMANDS)
def test_a_machine_view_on_a_program_says_it_needs_a_full_system_machine(counter_program: str, command: str) -> None:
    s = run_session(counter_program, f"{command}\n")
    name = command.split("/")[0].split(" 0x")[0].removesuffix(" hello")
    assert outputs(s)[0].startswith(f"{name} needs a full-system machine (emu debug --boot); ")
    assert outputs(s)[0].count("\n") == 1


def test_system_registers_are_not_a_programs(counter_program: str) -> None:
    s = run_session(counter_program, "p $cr3\ninfo registers cr0\n")
    assert outputs(s)[0].strip() == "no register or value named $cr3"
    assert outputs(s)[1].strip() == "Invalid register `cr0'"
