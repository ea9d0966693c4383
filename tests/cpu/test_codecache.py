"""The persistent code cache (cpu/codecache.py) and the translation shortcuts next to it.

A block from the cache must be exactly what translation would produce now:
same guest bytes, same address, same translator.  These tests run programs
twice against a private cache directory and check that the second run
retires the same instructions with the same results while taking its blocks
from the cache, that changed code is never served stale, and that a cache
that cannot work only costs speed.  The decoder's memo and block-wise
decoding are checked against plain one-by-one decoding.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpu import codecache
from cpu.codecache import VERSION, CodeCache, translator_sources, version_key
from cpu.decoder import PAGE_SIZE, Decoder
from cpu.exceptions import GuestFault, PFError, Vector
from cpu.interp import MAX_BLOCK, ExitKind, Interpreter
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from emu.user.process import Process
from tests.user.elfs import BASE, PF_R, PF_W, PF_X, Segment, assemble, build, code_offset, program, write

REPO_ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

TWO_BLOCKS = """
    mov edi, 3
    add edi, 1
    jmp next
next:
    mov ecx, 10
count:
    add edi, 2
    dec ecx
    jnz count
    mov eax, 231
    syscall
"""
"""Exits with 3 + 1 + 20 = 24, through four blocks: to the jmp, into the loop, the loop, the exit."""


@dataclass
class Run:
    status: int
    out: bytes
    err: bytes
    icount: int
    translated: int
    cached: int
    cache_error: str | None
    state: CpuState


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private, empty code cache for the test (EMU_CACHE_DIR)."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("EMU_CACHE_DIR", str(directory))
    monkeypatch.delenv("EMU_CODE_CACHE", raising=False)
    yield directory
    cache = CodeCache._shared.get(directory / "code" / f"{VERSION}.sqlite")
    if cache is not None:
        cache.close()


def run(path: str, tmp_path: Path, *args: str) -> Run:
    """Run the program at ``path`` in this process, deterministically, with stdout and stderr in files."""
    out, err, log = tmp_path / "out", tmp_path / "err", io.StringIO()
    with open(out, "wb") as o, open(err, "wb") as e:
        process = Process(path, [path, *args], {}, deterministic=True, stdout=o.fileno(), stderr=e.fileno(), log=log)
        status = process.run()
    interp = process.interp
    cache = interp.code_cache
    return Run(status, out.read_bytes(), err.read_bytes() + log.getvalue().encode(), process.state.icount,
               interp.blocks_translated, interp.blocks_cached, None if cache is None else cache.error, process.state)


# -- reuse --------------------------------------------------------------------------------------
def test_a_second_run_takes_every_block_from_the_cache_and_retires_the_same_instructions(
        cache_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path, program(TWO_BLOCKS))
    first = run(path, tmp_path)
    second = run(path, tmp_path)
    assert first.status == second.status == 24
    assert first.icount == second.icount
    assert (first.translated, first.cached) == (4, 0)
    assert (second.translated, second.cached) == (0, 4)


def test_busybox_twice_from_the_command_line_gives_the_same_output_and_count(tmp_path: Path) -> None:
    env = {**os.environ, "EMU_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("EMU_CODE_CACHE", None)

    def emu(*options: str) -> tuple[str, list[str]]:
        result = subprocess.run([sys.executable, "-m", "emu", "run", "--stats", "--deterministic", *options,
                                 BUSYBOX, "echo", "hi"], capture_output=True, text=True, env=env, timeout=120,
                                check=True)
        retired, blocks = result.stderr.splitlines()[:2]     # then the JIT's line
        return result.stdout, [retired.split(" in ")[0], blocks]

    out1, (retired1, blocks1) = emu()
    out2, (retired2, blocks2) = emu()
    out3, (retired3, blocks3) = emu("--no-code-cache")
    assert out1 == out2 == out3 == "hi\n"
    assert retired1 == retired2 == retired3
    translated = int(blocks1.split()[1])
    each = r"\(\d+\.\d{3} ms each\)"
    assert re.fullmatch(rf"emu: {translated} blocks translated {each}, 0 from the code cache", blocks1)
    assert blocks2 == f"emu: 0 blocks translated, {translated} from the code cache"
    assert re.fullmatch(rf"emu: {translated} blocks translated {each}, 0 from the code cache \(code cache off\)",
                        blocks3)


def test_runs_writing_the_cache_at_once_leave_it_whole(tmp_path: Path) -> None:
    env = {**os.environ, "EMU_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("EMU_CODE_CACHE", None)
    commands = [["echo", "one"], ["printf", "%s\\n", "two"], ["seq", "3"], ["basename", "/four"]]
    runs = [subprocess.Popen([sys.executable, "-m", "emu", "run", "--stats", BUSYBOX, *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in commands]
    results = [run.communicate(timeout=120) for run in runs]
    assert [out for out, _ in results] == ["one\n", "two\n", "1\n2\n3\n", "four\n"]
    assert all("code cache off" not in err for _, err in results)
    with sqlite3.connect(tmp_path / "code" / f"{VERSION}.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM blocks").fetchone()[0] > 500


def test_the_environment_switches_the_cache_off(cache_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMU_CODE_CACHE", "0")
    path = write(tmp_path, program(TWO_BLOCKS))
    run(path, tmp_path)
    second = run(path, tmp_path)
    assert (second.translated, second.cached) == (4, 0)
    assert not cache_dir.exists()


# -- never stale --------------------------------------------------------------------------------
def test_a_patched_copy_at_the_same_address_is_not_served_the_cached_code(cache_dir: Path, tmp_path: Path) -> None:
    original = program(TWO_BLOCKS)
    add_2 = assemble("add edi, 2", 0)
    assert original.count(add_2) == 1
    patched = original.replace(add_2, assemble("add edi, 3", 0))
    first = run(write(tmp_path, original, "original"), tmp_path)
    second = run(write(tmp_path, patched, "patched"), tmp_path)
    assert first.status == 24
    assert second.status == 34                      # the loop adds 3 now
    assert (second.translated, second.cached) == (2, 2)   # the two blocks holding the loop changed


def test_self_modifying_code_runs_the_same_with_a_warm_cache(cache_dir: Path, tmp_path: Path) -> None:
    source = """
        mov edi, 1
        call patch_me
        mov byte ptr [patch_me + 2], 7
        call patch_me
        mov eax, 231
        syscall
    patch_me:
        add edi, 2
        ret
    """
    binary = build(assemble(source, BASE + code_offset()), segments=[Segment(flags=PF_R | PF_W | PF_X)])
    path = write(tmp_path, binary)
    first = run(path, tmp_path)
    second = run(path, tmp_path)
    assert first.status == second.status == 1 + 2 + 7
    assert first.icount == second.icount
    # patch_me twice (before and after the store), and the rest of the storing block: a store into a page with
    # translated code ends its block at the next instruction, which starts a new one
    assert first.translated == 6
    assert (second.translated, second.cached) == (0, 6)


def test_a_fault_inside_a_cached_block_rolls_back_to_the_same_state(cache_dir: Path, tmp_path: Path) -> None:
    source = "mov edi, 5; add rdi, 1; push rdi; xor eax, eax; cmp edi, 6; mov rax, [rax]; mov eax, 231; syscall"
    path = write(tmp_path, program(source))
    first = run(path, tmp_path)
    second = run(path, tmp_path)
    assert second.cached == 1 and second.translated == 0
    assert first.status == second.status == 139
    assert first.err == second.err and b"#PF" in second.err
    for name in ("rip", "rdi", "rsp", "rax", "cc_op", "cc_a", "cc_b", "cc_r", "icount"):
        assert getattr(first.state, name) == getattr(second.state, name), name


def test_a_breakpoint_inside_a_cached_block_still_cuts_it(cache_dir: Path) -> None:
    code = assemble("mov eax, 1; mov ebx, 2; mov ecx, 3; hlt", 0x40_1000).ljust(0x1000, b"\0")
    cache = CodeCache.open()

    def machine() -> Interpreter:
        mem = AddressSpace()
        mem.map(0x40_1000, 0x1000, 5, code)
        state = CpuState()
        state.reset_user()
        state.rip = 0x40_1000
        return Interpreter(state, mem, code_cache=cache)

    first = machine()
    assert first.run().kind == ExitKind.HALT
    cache.flush()
    second = machine()
    second.set_breakpoints({0x40_1000 + 10})        # the third instruction
    assert second.run().kind == ExitKind.BREAKPOINT
    assert (second.state.rip, second.state.rax, second.state.rbx, second.state.rcx) == (0x40_100a, 1, 2, 0)
    assert second.blocks_cached == 0
    third = machine()
    assert third.run().kind == ExitKind.HALT and third.blocks_cached == 1


def test_the_version_key_changes_when_a_semantics_source_changes(tmp_path: Path) -> None:
    sources = translator_sources()
    names = {f"{p.parent.name}/{p.name}" for p in sources}
    assert {"cpu/interp.py", "backends/python.py", "cpu/decoder.py", "semantics/binary.py"} <= names
    assert version_key() == VERSION
    copies = []
    for path in sources:
        copy = tmp_path / path.parent.name / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    assert version_key(copies) == VERSION
    binary = tmp_path / "semantics" / "binary.py"
    binary.write_text(binary.read_text().replace("ops.add(", "ops.sub(", 1))
    assert version_key(copies) != VERSION


# -- a capped cache keeps taking new code -----------------------------------------------------------------------
def _busybox_run(tmp_path: Path, *argv: str, cap: int | None = None) -> tuple[str, str]:
    """``emu run --stats busybox ARGV`` with the cache in ``tmp_path`` (capped at ``cap`` bytes): stdout and the
    ``--stats`` line on blocks."""
    env = {**os.environ, "EMU_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("EMU_CODE_CACHE", None)
    if cap is not None:
        env["EMU_CODE_CACHE_SIZE"] = str(cap)
    result = subprocess.run([sys.executable, "-m", "emu", "run", "--stats", "--jit=off", BUSYBOX, *argv],
                            capture_output=True, text=True, env=env, timeout=120, check=True)
    return result.stdout, next(line for line in result.stderr.splitlines() if "blocks translated" in line)


def _translated(blocks: str) -> int:
    return int(re.match(r"emu: (\d+) blocks translated", blocks)[1])


def _live_bytes(database: Path) -> int:
    with sqlite3.connect(database) as db:
        (pages,), = db.execute("PRAGMA page_count").fetchall()
        (free,), = db.execute("PRAGMA freelist_count").fetchall()
        (size,), = db.execute("PRAGMA page_size").fetchall()
    return (pages - free) * size


def test_a_full_cache_drops_what_was_used_longest_ago_and_keeps_taking_new_code(tmp_path: Path) -> None:
    database = tmp_path / "code" / f"{VERSION}.sqlite"
    applets = {("echo", "one"): "one\n", ("printf", "%x\\n", "255"): "ff\n", ("expr", "6", "*", "7"): "42\n",
               ("wc", "-c", "/dev/null"): "0 /dev/null\n", ("seq", "3"): "1\n2\n3\n"}
    for argv, out in applets.items():
        assert _busybox_run(tmp_path, *argv)[0] == out
    with sqlite3.connect(database) as db:        # as if they had all last run a thousand hours ago
        db.execute("UPDATE block_uses SET stamp = stamp - 1000")
    assert _translated(_busybox_run(tmp_path, "seq", "3")[1]) == 0          # seq is used now: noted as such
    full = _live_bytes(database)
    cap = full * 9 // 10
    out, blocks = _busybox_run(tmp_path, "basename", "/four", cap=cap)    # opens an over-full cache: evicts
    assert out == "four\n" and _translated(blocks) > 0
    assert _live_bytes(database) <= cap
    assert _translated(_busybox_run(tmp_path, "basename", "/four", cap=cap)[1]) == 0   # new code was kept,
    assert _translated(_busybox_run(tmp_path, "seq", "3", cap=cap)[1]) == 0           # and what was used lately,
    assert _translated(_busybox_run(tmp_path, "echo", "one", cap=cap)[1]) > 0         # not what was used long ago
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM blocks").fetchone() == db.execute(
            "SELECT count(*) FROM block_uses").fetchone()


def test_a_cache_size_that_is_not_a_size_is_reported_and_the_run_stays_correct(tmp_path: Path) -> None:
    env = {**os.environ, "EMU_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), "EMU_CODE_CACHE_SIZE": "lots"}
    result = subprocess.run([sys.executable, "-m", "emu", "run", "--stats", BUSYBOX, "echo", "hi"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert (result.returncode, result.stdout) == (0, "hi\n")
    assert "code cache off: not a size for EMU_CODE_CACHE_SIZE: 'lots'" in result.stderr


# -- a cache that cannot work costs only speed ----------------------------------------------------------------
def test_a_cache_directory_that_is_a_file_leaves_the_run_correct(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("EMU_CACHE_DIR", str(not_a_directory))
    path = write(tmp_path, program(TWO_BLOCKS))
    result = run(path, tmp_path)
    assert result.status == 24 and result.err == b""
    assert result.cache_error is not None and result.translated == 4


def test_a_corrupt_database_is_started_afresh(cache_dir: Path, tmp_path: Path) -> None:
    database = cache_dir / "code" / f"{VERSION}.sqlite"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not an SQLite database" * 100)
    path = write(tmp_path, program(TWO_BLOCKS))
    assert run(path, tmp_path).status == 24
    second = run(path, tmp_path)
    assert second.status == 24 and second.cache_error is None and second.cached == 4


def test_a_database_locked_by_another_run_leaves_the_run_correct(cache_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecache, "LOCK_TIMEOUT", 0.05)
    database = cache_dir / "code" / f"{VERSION}.sqlite"
    database.parent.mkdir(parents=True)
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.executescript(codecache._SCHEMA)
    other.execute("BEGIN EXCLUSIVE")                 # another run in the middle of writing, for too long
    try:
        path = write(tmp_path, program(TWO_BLOCKS))
        result = run(path, tmp_path)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert result.status == 24 and result.err == b""
    assert result.cache_error is not None and "locked" in result.cache_error


# -- decoding shortcuts ---------------------------------------------------------------------------------
def _busybox_code() -> tuple[bytes, int]:
    """A stretch of busybox's machine code and its address."""
    from emu.user.elf import read_elf

    assert os.path.exists(BUSYBOX), "busybox-static is missing: run ./scripts/setup (apt-get install busybox-static)"
    image = read_elf(BUSYBOX)
    text = next(p for p in image.loads if p.p_flags & 1)
    start = text.p_offset + min(text.p_filesz // 2, 0x20000)
    return image.data[start:start + 0x3000], text.p_vaddr + start - text.p_offset


def test_the_decoders_memo_gives_what_capstone_gives_at_any_address() -> None:
    code, address = _busybox_code()
    memo, plain = Decoder(), Decoder()

    def fresh(window: bytes, at: int):
        plain._memo.clear()
        return plain.decode_bytes(window, at)

    offset, seen, branches = 0, 0, 0
    while offset < len(code) - 15:
        window = code[offset:offset + 15]
        try:
            length = fresh(window, address + offset).length
        except GuestFault:
            offset += 1
            continue
        for shift in (0, 0x1234567, -0x3456):
            expected = fresh(window, address + offset + shift)
            assert memo.decode_bytes(window, address + offset + shift) == expected
            seen += 1
            branches += expected.relative
        offset += length
    assert seen > 3000 and branches > 100
    assert len(memo._memo) < seen / 3               # most came from the memo


@pytest.mark.parametrize("next_page_mapped", [True, False])
def test_decoding_a_run_gives_the_instructions_and_reads_the_pages_that_one_by_one_decoding_does(
        next_page_mapped: bool) -> None:
    code, address = _busybox_code()
    base = (address + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    code = code[base - address:][:2 * PAGE_SIZE]
    mapped_end = base + (2 if next_page_mapped else 1) * PAGE_SIZE

    def fetcher(pages: set[int]):
        def fetch(at: int, length: int) -> bytes:      # as the interpreter's safe fetch: what it can
            pages.update(range(at >> 12, ((at + length - 1) >> 12) + 1))
            if at >= mapped_end:
                raise GuestFault(Vector.PF, PFError.I, at)
            return code[at - base:min(at + length, mapped_end) - base]
        return fetch

    for start in (base + 5, base + 0x800, base + PAGE_SIZE - 200, base + PAGE_SIZE - 30, base + PAGE_SIZE - 3):
        one, many = set(), set()
        decoder, fetch = Decoder(), fetcher(one)
        expected, faulted, at = [], False, start
        while at < base + PAGE_SIZE and len(expected) < MAX_BLOCK:
            try:
                insn = decoder.decode(fetch, at)
            except GuestFault:
                faulted = True
                break
            expected.append(insn)
            at = insn.next
        run_ = Decoder().decode_run(fetcher(many), start, MAX_BLOCK)
        assert [next(run_) for _ in expected] == expected
        if faulted:
            with pytest.raises(GuestFault):
                next(run_)
        assert many == one, hex(start)
