"""CPU levels (``--cpu``, ``cpu/cpuid.py``): what CPUID advertises, which instructions exist, and that
translations made for one level are never reused by another.

The expected answers are derived from the registry (``cpu.semantics.FEATURES``) and the level table,
not written out: a feature is advertised when the level includes it and some instruction needs it
(or it is a system feature), so these tests stay true as instructions are added.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from cpu.cpuid import FEATURE_BITS, LEVEL_FEATURES, SYSTEM, CpuLevel, Reg, UnknownLevel, level
from cpu.exceptions import Vector
from cpu.interp import ExitKind, Interpreter
from cpu.semantics import FEATURES
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from emu.user.loader import HWCAP2_FSGSBASE, Auxv
from tests.semantics.harness import Case, assemble, run_unicorn
from tests.test_cli import compile_c, emu

LEVELS = list(LEVEL_FEATURES)


def run_at(cpu: CpuLevel, asm: str, **regs: int) -> tuple[CpuState, object]:
    """Run ``asm`` one instruction at a time at level ``cpu``; the state and the exit that ended it."""
    code = assemble(asm)
    mem = AddressSpace()
    mem.map(0x10000, 0x1000, 5, code)
    state = CpuState()
    state.reset_user()
    state.rip = 0x10000
    for name, value in regs.items():
        setattr(state, name, value)
    interp = Interpreter(state, mem, cpu=cpu)
    exit_ = None
    while state.rip != 0x10000 + len(code):
        exit_ = interp.run(limit=1)
        if exit_.kind is ExitKind.FAULT:
            break
    return state, exit_


# -- the table -----------------------------------------------------------------------------------

def test_each_level_includes_the_one_below():
    for lower, higher in pairwise(LEVELS):
        assert LEVEL_FEATURES[lower] < LEVEL_FEATURES[higher]


def test_every_feature_an_instruction_names_has_a_cpuid_bit_and_a_level():
    for mnemonic, feature in FEATURES.items():
        assert feature in FEATURE_BITS, f"{mnemonic}: feature {feature} has no CPUID bit"
        assert feature in LEVEL_FEATURES["max"], f"{mnemonic}: feature {feature} is in no level"


@pytest.mark.parametrize("name", LEVELS)
def test_cpuid_advertises_exactly_what_the_level_includes_and_emu_implements(name):
    cpu = level(name)
    for feature, bit in FEATURE_BITS.items():
        if feature == "osxsave":                    # not a feature of its own: CR4.OSXSAVE (the next test)
            continue
        value = cpu.cpuid(bit.leaf, bit.subleaf)[bit.reg.value]
        expected = feature in LEVEL_FEATURES[name] and (feature in SYSTEM or feature in FEATURES.values())
        assert bool(value >> bit.bit & 1) == expected, f"{name}: {feature}"


def test_osxsave_mirrors_cr4_only_where_xsave_is_advertised():
    osxsave = 1 << FEATURE_BITS["osxsave"].bit
    for name in LEVELS:
        cpu = level(name)
        assert not cpu.cpuid(1, 0, cr4=0)[Reg.ECX.value] & osxsave
        assert bool(cpu.cpuid(1, 0, cr4=1 << 18)[Reg.ECX.value] & osxsave) == cpu.has("xsave")


def test_an_unknown_level_is_refused():
    with pytest.raises(UnknownLevel):
        level("x86-64-v9")


def test_the_cpuid_instruction_answers_for_the_interpreter_s_level():
    for name in LEVELS:
        state, _ = run_at(level(name), "cpuid", rax=7, rcx=0)
        assert (state.rax, state.rbx, state.rcx, state.rdx) == level(name).cpuid(7, 0)
    state, _ = run_at(level("max"), "cpuid", rax=0, rcx=0)
    assert state.rax >= 0x16, "the maximum basic leaf reaches the frequency leaf"
    state, _ = run_at(level("max"), "cpuid", rax=0x16, rcx=0)
    assert (state.rax, state.rbx, state.rcx) == (1000, 1000, 100), "base, maximum and bus frequency in MHz"


# -- which instructions exist ----------------------------------------------------------------------

def test_an_instruction_the_level_lacks_is_undefined_and_says_which_feature():
    state, exit_ = run_at(level("x86-64-v2"), "pdep rax, rbx, rcx", rbx=5, rcx=0xF0)
    assert exit_.kind is ExitKind.FAULT and exit_.fault.vector == Vector.UD
    assert "pdep needs bmi2, which --cpu x86-64-v2 lacks" in exit_.message and "pdep rax, rbx, rcx" in exit_.message
    assert state.rax == 0 and state.rip == 0x10000
    state, exit_ = run_at(level("x86-64-v3"), "pdep rax, rbx, rcx", rbx=5, rcx=0xF0)
    assert state.rax == 0x50


@pytest.mark.parametrize("asm", ["popcnt rax, rbx", "lahf", "cmpxchg16b xmmword ptr [rsp]"])
def test_v2_instructions_are_undefined_at_v1(asm):
    _, exit_ = run_at(level("x86-64-v1"), asm, rsp=0)
    assert exit_ is not None and exit_.kind is ExitKind.FAULT and exit_.fault.vector == Vector.UD


@pytest.mark.parametrize("asm, lacking, having", [
    ("vrcpps ymm0, ymm1", "x86-64-v2", "x86-64-v3"), ("vdpps ymm0, ymm1, ymm2, 0xff", "x86-64-v2", "x86-64-v3"),
    ("vpcmpistri xmm1, xmm2, 0", "x86-64-v2", "x86-64-v3"), ("vmpsadbw xmm0, xmm1, xmm2, 0", "x86-64-v2", "x86-64-v3"),
    ("vaesenc xmm0, xmm1, xmm2", "x86-64-v3", "max"), ("vpclmulqdq xmm0, xmm1, xmm2, 0", "x86-64-v3", "max"),
    ("rcpps xmm0, xmm1", None, "x86-64-v1"), ("maskmovdqu xmm0, xmm1", None, "x86-64-v1"),
])
def test_the_vex_forms_need_their_level_and_the_sse_gaps_are_baseline(asm, lacking, having):
    """VPCMPISTRI needs AVX though v2 has SSE4.2; VAESENC and VPCLMULQDQ need AES and PCLMULQDQ (max only)."""
    if lacking is not None:
        state, exit_ = run_at(level(lacking), asm, rdi=0x10000)
        assert exit_.kind is ExitKind.FAULT and exit_.fault.vector == Vector.UD and state.rip == 0x10000
    state, exit_ = run_at(level(having), asm, rdi=0x10000)
    assert exit_ is None or exit_.kind is not ExitKind.FAULT or exit_.fault.vector != Vector.UD


@pytest.mark.parametrize("mnemonic, older", [("tzcnt", "bsf"), ("lzcnt", "bsr")])
@pytest.mark.parametrize("source", [0, 1, 0x8000, 0x1234_5678_0000_0000, 2**64 - 1])
def test_tzcnt_and_lzcnt_are_bsf_and_bsr_without_their_feature(mnemonic, older, source):
    """As on a processor that ignores the F3 prefix; unicorn runs the plain BSF/BSR (padded to the same length)."""
    regs = {"rbx": source, "rax": 0x5555_5555_5555_5555}
    ours, _ = run_at(level("x86-64-v2"), f"{mnemonic} rax, rbx", **regs)
    theirs = run_unicorn(Case(f"{older} rax, rbx; nop", regs))
    assert ours.rax == theirs.regs["rax"]
    real, _ = run_at(level("max"), f"{mnemonic} rax, rbx", **regs)
    assert real.rax == (64 if source == 0 else theirs.regs["rax"] if mnemonic == "tzcnt" else 63 - theirs.regs["rax"])


def test_user_mode_auxv_follows_the_level(tmp_path):
    from emu.user.process import Process

    exe = compile_c(tmp_path, "ret0", "int main(void) { return 0; }\n")
    for name in LEVELS:
        process = Process(str(exe), [str(exe)], {}, cpu=level(name))
        auxv = process.program.auxv
        assert auxv[Auxv.AT_HWCAP] == level(name).cpuid(1, 0)[Reg.EDX.value]
        assert auxv[Auxv.AT_HWCAP2] == (HWCAP2_FSGSBASE if level(name).has("fsgsbase") else 0)
        process.kernel.close()


# -- through the command line ----------------------------------------------------------------------

SUPPORTS = """#include <stdio.h>
int main(void) {
    __builtin_cpu_init();
    printf("popcnt=%d sse4.2=%d bmi=%d bmi2=%d avx2=%d\\n", !!__builtin_cpu_supports("popcnt"),
           !!__builtin_cpu_supports("sse4.2"), !!__builtin_cpu_supports("bmi"), !!__builtin_cpu_supports("bmi2"),
           !!__builtin_cpu_supports("avx2"));
    return 0;
}
"""

INSTRUCTIONS = """#include <stdio.h>
int main(int argc, char **argv) {
    unsigned long zero = argc - 1, count = 99, bits, deposited;
    __asm__ volatile("tzcnt %1, %0" : "+r"(count) : "r"(zero));
    printf("tzcnt(0)=%lu\\n", count);
    fflush(stdout);
    __asm__ volatile("popcnt %1, %0" : "=r"(bits) : "r"(0xF0F0UL + zero));
    printf("popcnt=%lu\\n", bits);
    fflush(stdout);
    __asm__ volatile("pdep %2, %1, %0" : "=r"(deposited) : "r"(5UL + zero), "r"(0xF0UL));
    printf("pdep=%#lx\\n", deposited);
    return 0;
}
"""


@pytest.mark.parametrize("name", LEVELS)
def test_a_program_sees_the_features_of_its_level(tmp_path, name):
    exe = compile_c(tmp_path, "supports", SUPPORTS)
    proc = emu("run", "--cpu", name, str(exe))
    cpu = level(name)
    has = {"popcnt": cpu.has("popcnt"), "sse4.2": cpu.has("sse4_2"), "bmi": cpu.has("bmi1"),
           "bmi2": cpu.has("bmi2"), "avx2": cpu.has("avx2") and cpu.has("avx") and cpu.has("xsave")}
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == " ".join(f"{k}={int(v)}" for k, v in has.items()) + "\n"


def test_each_level_runs_what_it_has_and_dies_of_sigill_at_the_first_it_lacks(tmp_path):
    exe = compile_c(tmp_path, "insns", INSTRUCTIONS)
    v1 = emu("run", "--cpu", "x86-64-v1", str(exe))
    assert v1.returncode == -4 and v1.stdout == "tzcnt(0)=99\n"         # BSF of 0 keeps the destination
    assert "SIGILL" in v1.stderr and "popcnt needs popcnt, which --cpu x86-64-v1 lacks" in v1.stderr
    v2 = emu("run", "--cpu", "x86-64-v2", str(exe))
    assert v2.returncode == -4 and v2.stdout == "tzcnt(0)=99\npopcnt=8\n" and "pdep needs bmi2" in v2.stderr
    native = subprocess.run([str(exe)], capture_output=True, text=True)       # this host has BMI1/2 and POPCNT
    assert (native.returncode, native.stdout) == (0, "tzcnt(0)=64\npopcnt=8\npdep=0x50\n")
    for name in ("x86-64-v3", "max"):
        proc = emu("run", "--cpu", name, str(exe))
        assert (proc.returncode, proc.stdout) == (0, native.stdout), proc.stderr


@pytest.mark.parametrize("jit", ["off", "eager"])
def test_translations_for_one_level_are_not_reused_by_another(tmp_path, monkeypatch, jit):
    """Both caches (Python code objects, native objects) see the max run first; the v1 run must still fault."""
    exe = compile_c(tmp_path, "insns", INSTRUCTIONS)
    monkeypatch.setenv("EMU_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EMU_JIT", jit)
    assert emu("run", "--cpu", "max", str(exe)).returncode == 0
    again = emu("run", "--cpu", "x86-64-v1", str(exe))
    assert again.returncode == -4 and again.stdout == "tzcnt(0)=99\n"
    assert emu("run", "--cpu", "max", str(exe)).stdout.endswith("pdep=0x50\n")


def test_a_bad_level_is_one_line_and_status_2(tmp_path, monkeypatch):
    exe = compile_c(tmp_path, "ret0", "int main(void) { return 0; }\n")
    proc = emu("run", "--cpu", "bogus", str(exe))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("emu: error: --cpu takes one of x86-64-v1")
    for command in (["boot", "--cpu", "bogus", "--kernel", str(exe)], ["debug", "--batch", "--cpu", "bogus", str(exe)]):
        proc = emu(*command)
        assert proc.returncode == 2 and proc.stderr.startswith("emu: error: --cpu takes one of"), command
    monkeypatch.setenv("EMU_CPU", "x86-64-v0")
    proc = emu("run", str(exe))
    assert proc.returncode == 2 and proc.stderr.startswith("emu: error: EMU_CPU takes one of")


def test_the_environment_chooses_the_level_when_the_option_does_not(tmp_path, monkeypatch):
    exe = compile_c(tmp_path, "insns", INSTRUCTIONS)
    monkeypatch.setenv("EMU_CPU", "x86-64-v2")
    assert emu("run", str(exe)).returncode == -4
    assert emu("run", "--cpu", "max", str(exe)).returncode == 0


def test_docs_isa_md_holds_what_the_opcode_map_sweep_finds():
    """docs/isa.md's lists are scripts/isa_sweep.py's output: regenerate them with
    ``python3 scripts/isa_sweep.py --write docs/isa.md`` when instructions are added."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("isa_sweep", root / "scripts" / "isa_sweep.py")
    assert spec is not None and spec.loader is not None
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    document = (root / "docs" / "isa.md").read_text()
    assert document == sweep.updated(document), "docs/isa.md is stale: run scripts/isa_sweep.py --write docs/isa.md"
    assert "- **bmi2** (8): bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx" in document


RDRAND = """#include <stdio.h>
int main(void) {
    unsigned long value;
    unsigned char ok;
    __asm__ volatile("rdrand %0; setc %1" : "=r"(value), "=qm"(ok));
    printf("%d %lx\\n", ok, value);
    return 0;
}
"""


def test_rdrand_repeats_in_deterministic_runs_and_not_otherwise(tmp_path):
    exe = compile_c(tmp_path, "rdrand", RDRAND)
    first, second = (emu("run", "--deterministic", str(exe)).stdout for _ in range(2))
    assert first == second and first.startswith("1 ")
    assert emu("run", "--deterministic", "--seed", "1", str(exe)).stdout != first
    assert len({emu("run", str(exe)).stdout for _ in range(2)}) == 2


def test_the_debugger_runs_the_level_it_is_given(tmp_path):
    exe = compile_c(tmp_path, "insns", INSTRUCTIONS)
    proc = subprocess.run([sys.executable, "-m", "emu", "debug", "--cpu", "x86-64-v2", str(exe)], input="c\nquit\n",
                          capture_output=True, text=True, timeout=300)
    assert "Program received signal SIGILL: #UD: pdep needs bmi2, which --cpu x86-64-v2 lacks" in proc.stdout


STRINGS = r"""#include <stdio.h>
#include <string.h>
int main(void) {
    static char buf[4096], copy[4096];
    unsigned long sum = 0;
    for (int n = 0; n < 300; n += 7) {
        memset(buf, 'a' + n % 26, n);
        buf[n] = 0;
        memcpy(copy, buf, n + 1);
        sum += strlen(copy) + !!strchr(copy, 'a' + n % 26) + !!memchr(copy, 0, n + 1) + !strcmp(copy, buf);
    }
    printf("%lu\n", sum);
    return 0;
}
"""


@pytest.mark.parametrize(("name", "chosen"), [("max", "__strlen_avx2"), ("x86-64-v3", "__strlen_avx2"),
                                              ("x86-64-v2", "__strlen_sse2")])
def test_glibc_picks_its_avx2_string_functions_when_the_level_has_avx2(tmp_path, name, chosen):
    """glibc's ifunc resolvers read CPUID and XGETBV: at v3 and max its AVX2 strlen runs (the debugger stops
    there), at v2 its SSE2 one; the program prints what it prints natively, in every JIT tier."""
    exe = compile_c(tmp_path, "strings", STRINGS)
    native = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    for jit in ("off", "on", "eager"):
        assert emu("run", "--cpu", name, f"--jit={jit}", str(exe)).stdout == native
    session = subprocess.run([sys.executable, "-m", "emu", "debug", "--cpu", name, str(exe)], capture_output=True,
                             text=True, timeout=120, input="break __strlen_avx2\nbreak __strlen_sse2\nc\nq\n",
                             cwd=Path(__file__).resolve().parents[1])
    stop = next(line for line in session.stdout.splitlines() if ", 0x" in line and "Breakpoint" in line)
    expected = 1 if chosen == "__strlen_avx2" else 2
    assert stop.startswith(f"(emu) Breakpoint {expected}, "), session.stdout
