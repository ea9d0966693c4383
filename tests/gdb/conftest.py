"""Fixtures for the GDB stub tests: tiny hand-assembled programs, a started ``emu run --gdb``, a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gdb.rsp import Client, Emu
from tests.user.elfs import BASE, PF_R, PF_W, Segment, assemble, build, code_offset, write

DATA = 0x60_0000
"""A zeroed read-write page of the test programs (a .bss-like segment)."""


@dataclass
class Program:
    path: str
    addresses: list[int]
    """Address of each instruction of the source, in order."""


def make_program(directory: Path, name: str, lines: list[str]) -> Program:
    """A static executable running ``lines`` (one instruction each, Intel syntax) with a data page at DATA."""
    segments = [Segment(), Segment(flags=PF_R | PF_W, offset=0, vaddr=DATA, filesz=0, memsz=0x1000)]
    address = BASE + code_offset(len(segments))
    code, addresses = b"", []
    for line in lines:
        addresses.append(address)
        encoding = assemble(line, address)
        code += encoding
        address += len(encoding)
    return Program(write(directory, build(code, segments=segments), name), addresses)


STORE_AND_LOAD = [
    f"mov rbx, {DATA:#x}",
    "mov qword ptr [rbx], 42",      # 1: the store a write watchpoint reports
    "nop",                          # 2: where that stop is
    "mov rdi, qword ptr [rbx]",     # 3: the load a read watchpoint reports
    "nop",                          # 4
    "mov eax, 231",                 # exit_group(42)
    "syscall",
]
LOOP_FOREVER = ["mov eax, 1", "spin: jmp spin"]
NULL_READ = ["xor eax, eax", "mov rax, qword ptr [rax]"]


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Program]:
    directory = tmp_path_factory.mktemp("gdb-programs")
    return {"store": make_program(directory, "store", STORE_AND_LOAD),
            "loop": make_program(directory, "loop", LOOP_FOREVER),
            "segv": make_program(directory, "segv", NULL_READ)}


@pytest.fixture
def session(programs: dict[str, Program]) -> Iterator[tuple[Emu, Client]]:
    """``emu run --gdb 0`` on the store-and-load program, with a connected client."""
    emu = Emu([programs["store"].path])
    client = Client(emu)
    yield emu, client
    client.close()
    emu.kill()
