"""Every way a file can be unfit to run is refused with one actionable line and an exit status: qemu-x86_64's
(255 for another architecture or a missing dynamic linker, 1 for a truncated file), else 2."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from emu.user.elf import PIE_BASE, read_elf
from emu.user.process import run_program
from tests.user.elfs import (
    BASE,
    EHDR,
    ET_DYN,
    ET_REL,
    PF_R,
    PF_W,
    PT_INTERP,
    PT_NOTE,
    Segment,
    build,
    code_offset,
    write,
)

EXIT_0 = bytes.fromhex("b83c00000031ff0f05")   # mov eax, 60; xor edi, edi; syscall


def refused(path: str, capsys: pytest.CaptureFixture[str], status: int = 2) -> str:
    """Run ``path``; assert it is refused with ``status``, and return the error line's message."""
    assert run_program([path]) == status
    err = capsys.readouterr().err
    assert err.startswith("emu: error: ") and err.count("\n") == 1, err
    return err.removeprefix("emu: error: ").rstrip("\n")


def test_a_well_formed_static_executable_is_accepted(tmp_path: Path) -> None:
    image = read_elf(write(tmp_path, build(EXIT_0)))
    assert image.entry == BASE + code_offset()
    assert image.bias == 0
    assert image.phdr_address == BASE + EHDR.size


def test_a_static_pie_is_loaded_at_the_pie_base(tmp_path: Path) -> None:
    image = read_elf(write(tmp_path, build(EXIT_0, segments=[Segment(vaddr=0)], entry=code_offset(), e_type=ET_DYN)))
    assert image.bias == PIE_BASE
    assert image.entry == PIE_BASE + code_offset()


def test_a_missing_file_names_the_os_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nothing-here")
    assert refused(path, capsys) == f"cannot read {path}: No such file or directory"


def test_a_directory_cannot_be_read_as_a_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(str(tmp_path), capsys) == f"cannot read {tmp_path}: Is a directory"


def test_a_text_file_is_not_an_elf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b"#!/bin/sh\necho hi\n")
    assert refused(path, capsys) == f"{path} is not an ELF file (it starts with 23 21 2f 62, not 7f 45 4c 46)"


def test_an_empty_file_is_not_an_elf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b"")
    assert refused(path, capsys) == f"{path} is not an ELF file (it starts with nothing, not 7f 45 4c 46)"


def test_a_32_bit_elf_is_refused_as_not_x86_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, elf_class=1))
    assert refused(path, capsys, 255) == f"{path} is a 32-bit ELF; emu runs x86-64 programs only"


def test_a_big_endian_elf_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, data=2))
    assert refused(path, capsys, 255) == f"{path} is a big-endian ELF; emu runs little-endian x86-64 programs only"


def test_an_elf_for_another_machine_names_that_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    true = Path(shutil.which("true") or "/bin/true").read_bytes()
    path = write(tmp_path, true[:18] + struct.pack("<H", 183) + true[20:])    # e_machine = EM_AARCH64
    assert refused(path, capsys, 255) == (f"{path} is an ELF for AArch64 (e_machine 183); "
                                          f"emu runs x86-64 programs only")


def test_a_truncated_header_is_reported_with_its_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0)[:40])
    assert refused(path, capsys, 1) == f"{path} is truncated: 40 bytes, an ELF header needs 64"


def test_an_object_file_is_not_an_executable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, e_type=ET_REL))
    assert refused(path, capsys) == (f"{path} is a relocatable object file (e_type 1), not an executable; "
                                     f"link it into a program first")


def test_program_headers_past_the_end_of_the_file_are_reported(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, phoff=4096))
    assert refused(path, capsys, 1) == (f"{path} is truncated: its 1 program headers end at byte 4152 "
                                     f"but the file has {code_offset() + len(EXIT_0)}")


def test_program_headers_of_the_wrong_size_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, phentsize=32))
    assert refused(path, capsys) == f"{path} has program headers of 32 bytes; ELF64 ones are 56"


def test_a_segment_with_file_bytes_past_the_end_is_a_truncated_file(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(filesz=0x2000)]))
    size = code_offset() + len(EXIT_0)
    assert refused(path, capsys, 1) == (f"{path}: PT_LOAD segment 0 has file bytes 0x0..0x2000 past the end of the "
                                     f"file ({size:#x} bytes); the file is truncated")


def test_a_segment_with_more_file_than_memory_bytes_is_refused(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(memsz=0x10)]))
    size = code_offset() + len(EXIT_0)
    assert refused(path, capsys) == f"{path}: PT_LOAD segment 0 has p_filesz {size:#x} larger than p_memsz 0x10"


def test_a_segment_larger_than_a_terabyte_is_absurd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(memsz=1 << 41)]))
    assert refused(path, capsys) == (f"{path}: PT_LOAD segment 0 has an absurd size of 0x20000000000 bytes "
                                     f"(more than 1 TiB)")


def test_a_segment_beyond_user_space_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(), Segment(flags=PF_R | PF_W, vaddr=0x7FFF_FFFF_F000,
                                                                      filesz=0, memsz=0x2000)]))
    assert refused(path, capsys) == (f"{path}: PT_LOAD segment 1 at 0x7ffffffff000..0x800000001000 lies beyond "
                                     f"user space (which ends at 0x7ffffffff000)")


def test_overlapping_segments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(), Segment(flags=PF_R | PF_W, vaddr=BASE + 0x40,
                                                                      offset=0x40, filesz=0, memsz=0x100)]))
    assert refused(path, capsys) == f"{path}: PT_LOAD segments 0 and 1 overlap at {BASE + 0x40:#x}"


def test_a_segment_whose_address_and_offset_disagree_cannot_be_mapped(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(vaddr=BASE + 0x10)], entry=BASE + 0x10 + code_offset()))
    assert refused(path, capsys) == (f"{path}: PT_LOAD segment 0 has p_vaddr {BASE + 0x10:#x} and p_offset 0x0 "
                                     f"that differ by a non-multiple of the page size, so it cannot be mapped")


def test_a_file_without_loadable_segments_has_nothing_to_load(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(type=PT_NOTE)]))
    assert refused(path, capsys) == f"{path} has no PT_LOAD segment, so there is nothing to load"


def test_an_entry_point_outside_executable_code_is_refused(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, segments=[Segment(flags=PF_R)]))
    assert refused(path, capsys) == (f"{path} has its entry point {BASE + code_offset():#x} outside every "
                                     f"executable segment")


def test_an_entry_point_past_the_segment_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, build(EXIT_0, entry=BASE + 0x5000))
    assert "has its entry point 0x405000 outside every executable segment" in refused(path, capsys)


def test_a_dynamically_linked_program_names_its_dynamic_linker() -> None:
    true = shutil.which("true") or "/bin/true"
    assert read_elf(true).interpreter == b"/lib64/ld-linux-x86-64.so.2"


def test_a_pt_interp_without_its_nul_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = b"/lib/ld.so"
    at = code_offset(2) + len(EXIT_0)
    path = write(tmp_path, build(EXIT_0 + name, segments=[Segment(), Segment(type=PT_INTERP, offset=at,
                                                                             filesz=len(name))]))
    assert refused(path, capsys) == f"{path} has a PT_INTERP that is not one NUL-terminated path"


def test_a_missing_dynamic_linker_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = b"/nonexistent/ld.so\0"
    at = code_offset(2) + len(EXIT_0)
    path = write(tmp_path, build(EXIT_0 + name, segments=[Segment(), Segment(type=PT_INTERP, offset=at,
                                                                             filesz=len(name))]))
    assert refused(path, capsys, 255) == (f"{path} needs the dynamic linker /nonexistent/ld.so: cannot read "
                                          f"/nonexistent/ld.so: No such file or directory")


def test_no_program_at_all_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_program([]) == 2
    assert capsys.readouterr().err == "emu: error: no program given\n"

