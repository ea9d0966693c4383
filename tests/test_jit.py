"""The JIT held to the Python tier: whole programs in every tier, exact instruction counts, isolation, bad input.

The instruction-level differential tests (tests/semantics) run every case through the LLVM backend too;
the default guest boots in every tier in tests/boot.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keystone
import pytest

from cpu.exceptions import Vector
from cpu.interp import ExitKind, Interpreter
from cpu.jit import Jit
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from tests.conftest import REPO_ROOT

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
CODE, DATA = 0x10000, 0x20000


def _machine(asm: str, mode: str) -> tuple[Interpreter, CpuState]:
    code = bytes(keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(asm, CODE)[0])
    mem = AddressSpace()
    mem.map(CODE, 0x1000, 5, code)
    mem.map(DATA, 0x1000, 3)
    state = CpuState()
    state.reset_user()
    state.rip = CODE
    interp = Interpreter(state, mem)
    if mode != "off":
        interp.jit = Jit(interp, mode, strict=True)
    return interp, state


def _emu(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emu", *argv], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", **(env or {})})


@pytest.mark.parametrize("mode", ["on", "eager"])
def test_a_hot_loop_runs_natively_with_the_same_result_and_instruction_count(mode: str) -> None:
    asm = "mov rcx, 100000\nxor eax, eax\nl: add rax, rcx\nmov [0x20008], rax\ndec rcx\njnz l\nhlt"
    results = {}
    for tier in ("off", mode):
        interp, state = _machine(asm, tier)
        assert interp.run().kind is ExitKind.HALT
        results[tier] = (state.rax, state.icount, interp.mem.load(0x20008, 64))
        if tier != "off":
            assert interp.jit.ctx.blocks > 1000, "the loop ran as native blocks"
    assert results["off"] == results[mode] == (5000050000, 400003, 5000050000)


@pytest.mark.parametrize("mode", ["off", "eager"])
def test_a_run_limit_stops_at_the_same_instruction_in_every_tier(mode: str) -> None:
    interp, state = _machine("mov rcx, 100000\nl: inc rax\ndec rcx\njnz l\nhlt", mode)
    exit_ = interp.run(limit=12_345)
    assert exit_.kind is ExitKind.LIMIT
    assert (state.icount, state.rax) == (12_345, 4_115)


@pytest.mark.parametrize("address", [
    DATA + (4096 << 12),            # the same slot of the native TLB as the mapped data page, another page
    DATA + (4096 << 24),
    0x7FFF_FFFF_F000,               # the top of the lower half, unmapped
    0xFFFF_8000_0000_0000,          # kernel half
])
@pytest.mark.parametrize("access", ["load", "store"])
def test_a_crafted_address_in_native_code_faults_instead_of_reaching_host_memory(address: int, access: str) -> None:
    touch = "mov rax, [rbx]\nmov [rbx], rax\n"            # fills the TLB slot the crafted address aliases
    op = "mov rax, [rcx]" if access == "load" else "mov [rcx], rbx"
    interp, state = _machine(f"{touch}{op}\nhlt", "eager")
    state.rbx, state.rcx = DATA, address
    exit_ = interp.run()
    assert exit_.kind is ExitKind.FAULT
    assert exit_.fault.vector == Vector.PF
    assert exit_.fault.address == address
    assert state.rip == CODE + 6, "RIP names the faulting instruction"
    assert state.icount == 2


def _two_pages(asm: str, mode: str, second: int | None) -> tuple[Interpreter, CpuState]:
    """``_machine`` with the page after DATA mapped with protection ``second`` (None: left unmapped)."""
    interp, state = _machine(asm, mode)
    if second is not None:
        interp.mem.map(DATA + 0x1000, 0x1000, second)
    return interp, state


def test_loads_and_stores_across_a_page_boundary_give_the_interpreters_bytes() -> None:
    """Each access width at each offset that runs from one mapped page into the next: a store, then loads of
    it at other widths.  Natively, once both pages are in the TLB, these are done by the runtime a byte at a
    time (docs/jit.md); the Python tier is the reference."""
    lines = []
    for size, reg in ((2, "bx"), (4, "ebx"), (8, "rbx")):
        for back in range(1, size):
            lines += [f"mov [rdi + {0x1000 - back}], {reg}", f"add rax, [rdi + {0x1000 - back}]",
                      f"movzx ecx, word ptr [rdi + {0xFFF}]", "add rax, rcx", f"mov ecx, [rdi + {0xFFE}]",
                      "add rax, rcx", "rol rbx, 7", "imul rax, rax, 31"]
    asm = "l: " + "\n".join(lines) + "\ndec rsi\njnz l\nhlt"
    results = {}
    for mode in ("off", "eager"):
        interp, state = _two_pages(asm, mode, 3)
        state.rdi, state.rbx, state.rsi = DATA, 0x0123_4567_89AB_CDEF, 3
        assert interp.run().kind is ExitKind.HALT
        results[mode] = (state.rax, interp.mem.load(DATA + 0xFF8, 64), interp.mem.load(DATA + 0x1000, 64),
                         state.icount)
    assert interp.jit.ctx.blocks >= 3, "the loop ran natively"
    assert results["eager"] == results["off"]


@pytest.mark.parametrize("second", [None, 1], ids=["unmapped", "read-only"])
def test_a_store_across_into_a_page_it_may_not_write_faults_and_writes_neither_page(second: int | None) -> None:
    """Natively too: the first page in the write TLB is not enough; the store is the slow path's, which
    faults on the second page (CR2 its first byte) before writing a byte of the first."""
    asm = "mov [rdi], rax\nmov rax, [rdi + 0x1000 - 8]\nmov [rdi + 0x1000 - 4], rbx\nhlt"
    interp, state = _two_pages(asm, "eager", second)
    state.rdi, state.rax, state.rbx = DATA, 0x1111_1111_1111_1111, 0x2222_2222_2222_2222
    exit_ = interp.run()
    assert exit_.kind is ExitKind.FAULT and exit_.fault.vector == Vector.PF
    assert exit_.fault.address == DATA + 0x1000
    assert interp.mem.load(DATA + 0xFF8, 64) == 0, "nothing of the faulting store was written"
    assert state.icount == 2


def test_a_non_canonical_address_in_native_code_is_a_general_protection_fault() -> None:
    interp, state = _machine("mov rax, [rcx]\nhlt", "eager")
    state.rcx = 0x8000_0000_0000_0000
    exit_ = interp.run()
    assert exit_.kind is ExitKind.FAULT and exit_.fault.vector == Vector.GP
    assert state.rip == CODE


@pytest.mark.parametrize("mode", ["off", "eager"])
@pytest.mark.parametrize("name", ["sha256", "intmath", "floats", "strings", "division", "longjmp", "selfmodify",
                                  "rdtsc"])
def test_programs_give_the_native_output_in_every_tier(name: str, mode: str, build_static, tmp_path: Path) -> None:
    binary = build_static(PROGRAMS_DIR / f"{name}.c", "O2")
    args = ["16384"] if name == "sha256" else []
    native = subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)
    emulated = _emu("run", f"--jit={mode}", str(binary), *args)
    assert (emulated.returncode, emulated.stdout) == (native.returncode, native.stdout), emulated.stderr[-2000:]


def test_instruction_counts_are_the_same_in_every_tier(build_static) -> None:
    binary = build_static(PROGRAMS_DIR / "sha256.c", "O2")
    counts = {}
    for mode in ("off", "on", "eager"):
        result = _emu("run", "--deterministic", "--stats", f"--jit={mode}", str(binary), "4096")
        assert result.returncode == 0, result.stderr
        counts[mode] = int(re.search(r"(\d+) instructions retired", result.stderr)[1])
    assert len(set(counts.values())) == 1, counts


def test_a_second_run_runs_what_the_first_compiled_natively_from_its_first_execution(build_static,
                                                                                      tmp_path: Path) -> None:
    """The code cache's placements: each block the first run compiled is native in the second as soon as it is
    translated (no 50 runs in the Python tier first), with the same output and instruction count."""
    binary = build_static(PROGRAMS_DIR / "sha256.c", "O2")
    runs = [_emu("run", "--deterministic", "--stats", "--jit=on", str(binary), "65536",
                 env={"EMU_CACHE_DIR": str(tmp_path)}) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout
    assert len({re.search(r"(\d+) instructions retired", r.stderr)[1] for r in runs}) == 1
    jit = [re.search(r"JIT on: (\d+) blocks compiled in \d+ modules \(\d+ from the code cache\), (\d+) native from "
                     r"their first run, .*; (\d+) instructions in", r.stderr) for r in runs]
    (compiled1, placed1, native1), (compiled2, placed2, native2) = ([int(g) for g in m.groups()] for m in jit)
    assert compiled1 > 0 and placed1 == 0
    assert (compiled2, placed2) == (0, compiled1)
    assert native2 > native1


@pytest.mark.parametrize("argv, env, source", [
    (["run", "--jit=bogus", "/bin/true"], {}, "--jit"),
    (["run", "/bin/true"], {"EMU_JIT": "fast"}, "EMU_JIT"),
    (["boot", "--jit=native", "--kernel", "/nonexistent"], {}, "--jit"),
])
def test_a_bad_jit_mode_is_a_one_line_error_with_status_2(argv: list[str], env: dict[str, str], source: str) -> None:
    result = _emu(*argv, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"emu: error: {source} takes one of off, on, eager")


def test_a_full_engine_is_renewed_between_blocks_and_the_program_goes_on(monkeypatch) -> None:
    """Eager mode makes one module per block; past the engine's limit all native code is dropped and
    compiled afresh (as QEMU flushes its translation buffer), with the same result."""
    import cpu.engine

    monkeypatch.setattr(cpu.engine, "MAX_MODULES", 8)
    monkeypatch.setattr(cpu.engine, "SEGMENT", 3)          # several MCJIT engines before each renewal
    asm = ("mov rcx, 3000\nl: mov rax, rcx\nand rax, 7\ncmp rax, 3\njne a\ninc rbx\na: cmp rax, 5\njne b\n"
           "add rbx, 2\nb: dec rcx\njnz l\nhlt")
    results = {}
    for tier in ("off", "eager"):
        interp, state = _machine(asm, tier)
        assert interp.run().kind is ExitKind.HALT
        results[tier] = (state.rbx, state.icount)
        if tier == "eager":
            assert interp.jit.stats.renewals >= 2
    assert results["off"] == results["eager"]


def test_explain_ir_shows_the_llvm_function_the_jit_makes_of_a_block() -> None:
    result = _emu("explain", "--ir", "cmp rax, rbx; jl 0x401000")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "define i64 @b_401000(ptr %s, ptr %x)" in out
    assert "; 0x401000: cmp rax, rbx" in out and "; 0x401003: jl 0x401000" in out
    assert "icmp slt i64" in out, "cmp; jl becomes one signed comparison, no flags computed"


def test_the_debugger_shows_jit_state_and_a_blocks_ir(build_static) -> None:
    binary = build_static(PROGRAMS_DIR / "return3.c", "O2")
    result = subprocess.run([sys.executable, "-m", "emu", "debug", str(binary)], input="info jit\nexplain --ir\nquit\n",
                            capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO_ROOT)})
    assert "JIT off: " in result.stdout
    assert "define i64 @b_" in result.stdout and "; exit site 0:" in result.stdout
