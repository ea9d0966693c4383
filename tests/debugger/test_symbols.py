"""Symbol tables from ELF files and System.map files."""

from __future__ import annotations

from pathlib import Path

import pytest

from emu.debug.symbols import SymbolError, load_symbols


def test_elf_symbols_have_addresses_sizes_and_sections(counter_program: str) -> None:
    table = load_symbols(counter_program)
    add, main, counter = table.lookup("add"), table.lookup("main"), table.lookup("counter")
    assert add.size > 0 and add.section == ".text"
    assert counter.size == 8 and counter.section == ".bss"
    assert table.describe(add.address) == "add"
    assert table.describe(add.address, plus_zero=True) == "add+0"
    assert table.describe(main.address + 4) == "main+4"
    assert table.describe(counter.address + 8) != "counter+8"      # past its size
    assert table.at(0x10) is None


def test_system_map(tmp_path: Path) -> None:
    path = tmp_path / "System.map"
    path.write_text("0000000000000000 A VDSO32_PRELINK\nffffffff81000000 T _text\nffffffff81000040 T startup_64\n"
                    "ffffffff81000100 t helper\nffffffff82000000 D init_data\n")
    table = load_symbols(str(path))
    assert table.lookup("startup_64").address == 0xFFFF_FFFF_8100_0040
    assert table.describe(0xFFFF_FFFF_8100_0050) == "startup_64+16"
    assert table.describe(0xFFFF_FFFF_8100_0100) == "helper"
    assert table.lookup("VDSO32_PRELINK") is None


@pytest.mark.parametrize(("content", "message"), [
    (b"", "holds no symbols"), (b"zzz T name\n", "not a hexadecimal address"), (b"1234\n", "expected"),
    (b"\xff\xfe\x00", "neither an ELF"), (b"\x7fELF\x01\x01", "not a little-endian ELF64"),
])
def test_unreadable_symbol_files_are_refused_with_a_reason(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(SymbolError, match=message):
        load_symbols(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SymbolError, match="cannot read"):
        load_symbols(str(tmp_path / "nothing"))
