"""mmap, munmap, mprotect, mremap, madvise and brk change the guest's address space as Linux does."""

from __future__ import annotations

from pathlib import Path

import pytest

from emu.user.address_space import MMAP_BASE, PROT_EXEC, PROT_READ, PROT_WRITE
from emu.user.linux import AT_FDCWD, Errno
from emu.user.sharedmem import BusError
from emu.user.syscalls import Kernel
from tests.user.guest import BRK_START, SCRATCH, call, put_string

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x1, 0x2, 0x10, 0x20, 0x100000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def test_anonymous_mmap_gives_zeroed_writable_pages_below_the_mmap_base(kernel: Kernel) -> None:
    address = call(kernel, "mmap", 0, 10000, RW, ANON, -1, 0)
    assert address % 4096 == 0 and address < MMAP_BASE
    assert kernel.mem.read(address, 12288) == bytes(12288)
    kernel.mem.write(address + 12000, b"ok")
    assert kernel.mem.prot_at(address) == RW


def test_munmap_makes_guest_pointers_into_the_range_fail_with_efault(kernel: Kernel) -> None:
    address = call(kernel, "mmap", 0, 4096, RW, ANON, -1, 0)
    assert call(kernel, "write", 1, address, 0) == 0
    assert call(kernel, "munmap", address, 4096) == 0
    assert call(kernel, "write", 1, address, 1) == -Errno.EFAULT
    assert call(kernel, "munmap", address + 1, 4096) == -Errno.EINVAL


def test_mmap_uses_a_free_hint_and_map_fixed_replaces(kernel: Kernel) -> None:
    hint = 0x5000_0000
    assert call(kernel, "mmap", hint, 4096, RW, ANON, -1, 0) == hint
    kernel.mem.write(hint, b"old")
    assert call(kernel, "mmap", hint, 4096, RW, ANON, -1, 0) != hint             # taken: placed elsewhere
    assert call(kernel, "mmap", hint, 4096, RW, ANON | MAP_FIXED, -1, 0) == hint
    assert kernel.mem.read(hint, 3) == bytes(3)
    assert call(kernel, "mmap", hint, 4096, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0) == -Errno.EEXIST
    assert call(kernel, "mmap", hint + 1, 4096, RW, ANON | MAP_FIXED, -1, 0) == -Errno.EINVAL


def test_a_private_file_mapping_holds_the_file_bytes_from_the_offset(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"A" * 4096 + b"second page")
    fd = call(kernel, "openat", AT_FDCWD, put_string(kernel, SCRATCH, str(tmp_path / "blob")), 0, 0)
    address = call(kernel, "mmap", 0, 8192, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 4096)
    assert kernel.mem.read(address, 11) == b"second page"
    assert kernel.mem.read(address + 11, 4085) == bytes(4085)       # past the end of the file in its last page: zero
    with pytest.raises(BusError):                                    # a page wholly past it: SIGBUS
        kernel.mem.read(address + 4096, 1)
    assert call(kernel, "write", 1, address + 4096, 1) == -Errno.EFAULT
    assert kernel.mem.prot_at(address) == PROT_READ | PROT_EXEC


def test_a_writable_shared_file_mapping_writes_the_file(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"x" * 10)
    fd = call(kernel, "openat", AT_FDCWD, put_string(kernel, SCRATCH, str(tmp_path / "blob")), 2, 0)
    address = call(kernel, "mmap", 0, 4096, RW, MAP_SHARED, fd, 0)
    kernel.mem.write(address + 2, b"shared")
    assert (tmp_path / "blob").read_bytes() == b"xxsharedxx"
    (tmp_path / "blob").write_bytes(b"rewritten!")
    assert kernel.mem.read(address, 10) == b"rewritten!"
    read_only = call(kernel, "openat", AT_FDCWD, put_string(kernel, SCRATCH, str(tmp_path / "blob")), 0, 0)
    assert call(kernel, "mmap", 0, 4096, RW, MAP_SHARED, read_only, 0) == -Errno.EACCES


def test_mprotect_changes_permissions_and_fails_on_unmapped_memory(kernel: Kernel) -> None:
    address = call(kernel, "mmap", 0, 8192, RW, ANON, -1, 0)
    assert call(kernel, "mprotect", address, 4096, PROT_READ) == 0
    assert kernel.mem.prot_at(address) == PROT_READ
    assert call(kernel, "read", 0, address, 0) == 0
    assert call(kernel, "mprotect", address, 3 * 4096, PROT_READ) == -Errno.ENOMEM


def test_mremap_grows_a_mapping_and_keeps_its_contents(kernel: Kernel) -> None:
    address = call(kernel, "mmap", 0, 4096, RW, ANON, -1, 0)
    call(kernel, "mmap", address + 4096, 4096, RW, ANON | MAP_FIXED, -1, 0)      # blocks growth in place
    kernel.mem.write(address, b"keep me")
    moved = call(kernel, "mremap", address, 4096, 3 * 4096, 1, 0)                # MREMAP_MAYMOVE
    assert moved != address
    assert kernel.mem.read(moved, 7) == b"keep me"
    assert kernel.mem.read(moved + 4096, 8192) == bytes(8192)
    assert kernel.mem.is_free(address, 4096)
    assert call(kernel, "mremap", moved, 3 * 4096, 4096, 0, 0) == moved
    assert kernel.mem.is_free(moved + 4096, 8192)


def test_madvise_dontneed_clears_anonymous_memory(kernel: Kernel) -> None:
    address = call(kernel, "mmap", 0, 4096, RW, ANON, -1, 0)
    kernel.mem.write(address, b"gone")
    assert call(kernel, "madvise", address, 4096, 4) == 0
    assert kernel.mem.read(address, 4) == bytes(4)


def test_brk_grows_and_shrinks_the_heap_and_refuses_to_go_below_its_start(kernel: Kernel) -> None:
    assert call(kernel, "brk", 0) == BRK_START
    assert call(kernel, "brk", BRK_START + 10000) == BRK_START + 10000
    kernel.mem.write(BRK_START + 9999, b"!")
    assert call(kernel, "brk", BRK_START + 100) == BRK_START + 100
    assert kernel.mem.is_free(BRK_START + 4096, 8192)
    assert call(kernel, "brk", BRK_START - 4096) == BRK_START + 100
    assert call(kernel, "brk", BRK_START + 10000) == BRK_START + 10000
    assert kernel.mem.read(BRK_START + 9999, 1) == b"\0"


def test_brk_cannot_grow_over_another_mapping(kernel: Kernel) -> None:
    call(kernel, "mmap", BRK_START + 8192, 4096, RW, ANON | MAP_FIXED, -1, 0)
    assert call(kernel, "brk", BRK_START + 20000) == BRK_START
