"""XSAVE, XSAVEOPT, XSAVEC, XRSTOR (``cpu/semantics/xsave.py``) against the host CPU; XGETBV, XSETBV and
CPUID leaf 0DH (``cpu/xsave.py``) against the SDM in emu alone (the host's XCR0 is its kernel's).

A case first sets every component from the data page (FXRSTOR for x87, MXCSR and XMM; VMOVDQU for the
YMM upper halves; or XRSTOR with XSTATE_BV = 0 to put components in their initial configuration), then
saves with EDX:EAX naming a subset of x87 | SSE | AVX, into an area prefilled with random bytes (so
every byte an instruction must leave alone is checked too), or restores from a prepared area and dumps
the state back with FXSAVE and VMOVDQU.  Stepped, as a block and through the JIT.
"""

from __future__ import annotations

import random
import struct

import pytest

from cpu.cpuid import level
from cpu.exceptions import Vector
from cpu.interp import ExitKind
from cpu.xsave import leaf
from tests.semantics.harness import DATA, DATA_SIZE, Case
from tests.semantics.host import check_host, needs_host
from tests.semantics.test_avx import run_alone

AREA = 0x40            # the XSAVE area (64-byte aligned)
IMAGE = 0xC00          # an FXRSTOR image setting x87, MXCSR and XMM
UPPER = 0x1000         # YMM upper halves (and whole YMM values) loaded from here
DUMP = 0x1400          # FXSAVE of the state after a restore
YDUMP = 0x1600         # the YMM registers after a restore
CASES = 4


def fx_image(rng: random.Random, mxcsr: int | None = None) -> bytes:
    """A valid FXRSTOR image: random x87 registers and tags (FIP, FDP, FOP zero), MXCSR, random XMM."""
    image = bytearray(rng.randbytes(512))
    fcw = 0x037F if rng.random() < 0.5 else rng.getrandbits(16) & 0x1F3F | 0x40
    struct.pack_into("<HHBxHQQII", image, 0, fcw, rng.getrandbits(16) & 0x3800, rng.getrandbits(8), 0, 0, 0,
                     mxcsr if mxcsr is not None else 0x1F80 | rng.getrandbits(6), 0xFFFF)
    for i in range(8):
        image[32 + 16 * i + 10:32 + 16 * i + 16] = bytes(6)
    return bytes(image)


def setup(rng: random.Random, initial: bool = False) -> tuple[bytearray, str]:
    """The data page and the snippet that sets every component from it (or puts them in their initial
    configuration: XRSTOR of an area whose XSTATE_BV is 0)."""
    data = bytearray(rng.randbytes(DATA_SIZE))
    data[IMAGE:IMAGE + 512] = fx_image(rng)
    if initial:
        data[0x800:0xA40] = bytes(0x240)
        data[0x800 + 24:0x800 + 28] = (0x1F80).to_bytes(4, "little")
        return data, "mov eax, 7; xor edx, edx; xrstor [rsi + 0x800]"
    loads = "; ".join(f"vmovdqu ymm{i}, ymmword ptr [rsi + {UPPER + 32 * i:#x}]" for i in range(16)
                      if rng.random() < 0.7)
    return data, f"{loads}; fxrstor [rsi + {IMAGE:#x}]"


def state_case(data: bytearray, asm: str) -> Case:
    return Case(asm, {"rsi": DATA}, data=bytes(data))


@needs_host
@pytest.mark.parametrize("instruction", ["xsave", "xsave64", "xsaveopt", "xsaveopt64", "xsavec", "xsavec64"])
@pytest.mark.parametrize("initial", [False, True])
def test_saves_match_the_host(rng, instruction, initial):
    for components in range(8):
        data, prepare = setup(rng, initial)
        check_host(state_case(data, f"{prepare}; mov eax, {components}; mov edx, 0; {instruction} [rsi + {AREA:#x}]"))


@needs_host
def test_saves_after_vzeroupper_leave_avx_out_of_xstate_bv_like_the_host(rng):
    for instruction in ("xsave", "xsaveopt", "xsavec"):
        data, prepare = setup(rng)
        check_host(state_case(data, f"{prepare}; vzeroupper; mov eax, 7; xor edx, edx; {instruction} [rsi + 0x40]"))


def restore_area(rng: random.Random, compacted: bool) -> bytes:
    """A valid area: random components, a random XSTATE_BV within x87 | SSE | AVX."""
    area = bytearray(fx_image(rng)) + bytes(64) + rng.randbytes(256)
    xstate_bv = rng.getrandbits(3)
    xcomp_bv = (1 << 63) | 7 if compacted else 0
    struct.pack_into("<QQ", area, 512, xstate_bv, xcomp_bv)
    return bytes(area)


DUMP_STATE = "; ".join([f"fxsave [rsi + {DUMP:#x}]"] + [f"vmovdqu ymmword ptr [rsi + {YDUMP + 32 * i:#x}], ymm{i}"
                                                         for i in range(16)])


@needs_host
@pytest.mark.parametrize("instruction", ["xrstor", "xrstor64"])
@pytest.mark.parametrize("compacted", [False, True])
def test_restores_match_the_host(rng, instruction, compacted):
    for components in range(8):
        data, prepare = setup(rng)
        data[AREA:AREA + 832] = restore_area(rng, compacted)
        asm = f"{prepare}; mov eax, {components}; xor edx, edx; {instruction} [rsi + {AREA:#x}]; {DUMP_STATE}"
        check_host(state_case(data, asm))


@needs_host
@pytest.mark.parametrize("save", ["xsave", "xsaveopt", "xsavec"])
def test_a_restore_of_what_was_saved_gives_the_state_back(rng, save):
    scramble = "; ".join(f"vpcmpeqd ymm{i}, ymm{i}, ymm{i}" for i in range(16))
    for _ in range(CASES):
        data, prepare = setup(rng)
        check_host(state_case(data, f"{prepare}; mov eax, 7; xor edx, edx; {save} [rsi + {AREA:#x}]; {scramble}; "
                                    f"fninit; xrstor [rsi + {AREA:#x}]; {DUMP_STATE}"))


@needs_host
@pytest.mark.parametrize("header", [
    (1, 1), (0, 0, 1), (1 << 3, (1 << 63) | 7), (7, (1 << 63) | 3), (3, (1 << 63) | 3, 1),
])
def test_restores_with_a_malformed_header_raise_gp_like_the_host(rng, header):
    """SDM Vol. 2C XRSTOR: #GP(0) for nonzero bytes 23:8 of a standard header, XCOMP_BV bits outside XCR0,
    XSTATE_BV outside XCOMP_BV, or nonzero bytes 63:16 of a compacted one.  (XSTATE_BV bits outside XCR0:
    in emu alone below, since the host's XCR0 enables more components.)"""
    xstate_bv, xcomp_bv, *rest = header
    data, prepare = setup(rng)
    data[AREA:AREA + 832] = restore_area(rng, False)
    struct.pack_into("<QQQ", data, AREA + 512, xstate_bv, xcomp_bv, rest[0] if rest else 0)
    check_host(state_case(data, f"{prepare}; mov eax, 7; xor edx, edx; xrstor [rsi + {AREA:#x}]"))


@needs_host
@pytest.mark.parametrize("asm", ["xsave [rsi + 0x50]", "xrstor [rsi + 0x60]", "xsavec [rsi + 0x48]",
                                 "xsaveopt [rsi + 0x41]"])
def test_a_misaligned_area_raises_gp_like_the_host(rng, asm):
    data, prepare = setup(rng)
    data[0x40:0x40 + 832] = restore_area(rng, False)
    check_host(state_case(data, f"{prepare}; mov eax, 7; xor edx, edx; {asm}"))


@needs_host
def test_a_restore_with_reserved_mxcsr_bits_raises_gp_like_the_host(rng):
    data, prepare = setup(rng)
    data[AREA:AREA + 832] = restore_area(rng, False)
    data[AREA + 24:AREA + 28] = (0x1_1F80).to_bytes(4, "little")
    check_host(state_case(data, f"{prepare}; mov eax, 7; xor edx, edx; xrstor [rsi + {AREA:#x}]"))


# -- XGETBV, XSETBV, CPUID leaf 0DH: emu alone ---------------------------------------------------------------
JITS = pytest.mark.parametrize("jit", ["off", "eager"])


@JITS
def test_xgetbv_reads_xcr0_and_xinuse_as_linux_user_mode_sets_them(jit):
    kind, _, s = run_alone("xor ecx, ecx; xgetbv; mov r8, rax; mov r9, rdx; mov ecx, 1; xgetbv", jit)
    assert kind is ExitKind.HALT and (s.r8, s.r9) == (7, 0)
    assert (s.rax, s.rdx) == (0, 0)                 # nothing in use in the initial state
    kind, _, s = run_alone("pcmpeqd xmm3, xmm3; mov ecx, 1; xgetbv", jit)
    assert (s.rax, s.rdx) == (2, 0)


@JITS
@pytest.mark.parametrize("asm", ["xgetbv", "xsetbv", "xsave [rsi]", "xrstor [rsi]", "xsaveopt [rsi]"])
def test_the_xsave_instructions_raise_ud_while_cr4_osxsave_is_clear(asm, jit):
    kind, vector, s = run_alone(f"xor ecx, ecx; mov eax, 7; xor edx, edx; {asm}", jit, cr4=0, cpl=0)
    assert (kind, vector) == (ExitKind.FAULT, Vector.UD)


@JITS
@pytest.mark.parametrize(("ecx", "eax", "edx", "cpl"), [(2, 0, 0, 0), (0, 7, 0, 3), (0, 6, 0, 0), (0, 5, 0, 0),
                                                        (0, 0xF, 0, 0), (0, 7, 1, 0)])
def test_xsetbv_raises_gp_for_user_mode_another_xcr_or_an_inconsistent_xcr0(ecx, eax, edx, cpl, jit):
    kind, vector, s = run_alone(f"mov ecx, {ecx}; mov eax, {eax}; mov edx, {edx}; xsetbv", jit, cpl=cpl)
    assert (kind, vector, s.xcr0) == (ExitKind.FAULT, Vector.GP, 7)


@JITS
@pytest.mark.parametrize("value", [1, 3, 7])
def test_xsetbv_at_cpl0_sets_xcr0_and_vex_follows_it(value, jit):
    kind, vector, s = run_alone(f"xor ecx, ecx; mov eax, {value}; xor edx, edx; xsetbv; xgetbv; "
                                "vpxor xmm0, xmm0, xmm0", jit, cpl=0)
    assert s.xcr0 == value and s.rax == value
    assert (kind, vector) == ((ExitKind.HALT, None) if value == 7 else (ExitKind.FAULT, Vector.UD))


@JITS
def test_xrstor_refuses_components_xcr0_does_not_enable(jit):
    area = bytearray(0x400)
    area[24:28] = (0x1F80).to_bytes(4, "little")
    area[512] = 1 << 5                                     # XSTATE_BV: AVX-512 opmask state
    kind, vector, _ = run_alone("mov eax, 7; xor edx, edx; xrstor [rsi]", jit, data=bytes(area))
    assert (kind, vector) == (ExitKind.FAULT, Vector.GP)


def test_cpuid_leaf_0d_describes_x87_sse_and_avx():
    """SDM Vol. 2B CPUID table 3-8: sub-leaf 0 the supported XCR0 bits and sizes, 1 the XSAVEOPT, XSAVEC and
    XGETBV-with-ECX=1 bits, 2 the AVX component (256 bytes at 576)."""
    assert leaf(0) == (7, 832, 832, 0)
    assert leaf(0, xcr0=3) == (7, 576, 832, 0)
    assert leaf(0, xcr0=3, supported=3) == (3, 576, 576, 0)
    assert leaf(1) == (0b100, 832, 0, 0)
    assert leaf(2) == (256, 576, 0, 0)
    assert leaf(2, supported=3) == leaf(3) == (0, 0, 0, 0)


def test_cpuid_leaf_0d_follows_the_cpu_level():
    """XSAVEOPT and XSAVEC (sub-leaf 1 EAX bits 0 and 1) come with --cpu max; x86-64-v3 has XSAVE and AVX
    only; x86-64-v2 no XSAVE at all, so no leaf 0DH."""
    assert level("max").cpuid(0xD, 1)[0] == 0b111
    assert level("x86-64-v3").cpuid(0xD, 1)[0] == 0b100
    assert level("x86-64-v3").cpuid(0xD, 0) == (7, 832, 832, 0)
    assert level("x86-64-v2").cpuid(0xD, 0) == level("x86-64-v2").cpuid(0xD, 1) == (0, 0, 0, 0)
