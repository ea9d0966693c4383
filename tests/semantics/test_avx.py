"""The VEX forms of the SSE/SSE2 instructions (``cpu/semantics/avx.py``, ``vex.py``) against the host CPU.

unicorn has no AVX, so the oracle is this processor (``tests/semantics/host.py``).  Every case loads
its YMM sources from the data page (the oracle compares XMM registers only), runs one instruction,
stores every YMM register it may have written and MXCSR back to the data page, and is run stepped,
as a block and through the LLVM JIT.  Forms: 256-bit register and memory (misaligned on purpose:
VEX needs no alignment), 128-bit (whose destination's bits 255:128 must be zeroed; the destination
starts with random upper bits), and the scalar forms, which merge src1's upper lanes.  Floating
point runs under random MXCSR rounding modes and DAZ/FTZ over special values.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from cpu.decoder import Decoder
from cpu.exceptions import UndefinedOpcode, Vector
from cpu.interp import ExitKind, Interpreter
from cpu.jit import Jit
from cpu.semantics.avx import FLOAT, INTEGER, LATER_FAMILIES
from cpu.semantics.sse import SHIFTS
from cpu.semantics.sse3 import ARITH as SSE3_FLOAT
from cpu.state import CR4_OSXSAVE, CpuState
from emu.user.address_space import AddressSpace
from tests.semantics.harness import CODE, DATA, DATA_SIZE, Case, assemble, check, run_emu
from tests.semantics.host import check_host, needs_host
from tests.semantics.test_sse import vector as int_vector
from tests.semantics.test_sse_float import WIDTH, number

pytestmark = needs_host

CASES = 3
SOURCES = 0x000          # ymm0..ymm3 start from the data page here (32 bytes each)
MEMORY = 0x101           # a misaligned m256/m128 source
RESULTS = 0x300          # ymm0..ymm3 are stored back here
CONTROL = 0x3F0          # MXCSR loaded from here; stored at CONTROL + 4
DEFAULT_MXCSR = 0x1F80
MASK128 = (1 << 128) - 1


def ints(rng: random.Random, bits: int = 256) -> int:
    return sum(int_vector(rng) << (128 * i) for i in range(bits // 128))


def floats(rng: random.Random, width: int, bits: int = 256) -> int:
    return sum(number(rng, width) << (width * i) for i in range(bits // width))


def mxcsr(rng: random.Random) -> int:
    return DEFAULT_MXCSR | (rng.randrange(4) << 13) | (0x40 if rng.random() < 0.2 else 0) | \
        (0x8000 if rng.random() < 0.2 else 0) | (0x20 if rng.random() < 0.5 else 0)


def case(rng: random.Random, asm: str, values, control: int = DEFAULT_MXCSR, memory: int | None = None) -> Case:
    """``asm`` with ymm0..ymm3 loaded from ``values`` (256-bit each) and the m256 at MEMORY; results stored."""
    data = bytearray(rng.randbytes(0x400))
    for i, v in enumerate(values):
        data[SOURCES + 32 * i:SOURCES + 32 * i + 32] = v.to_bytes(32, "little")
    if memory is not None:
        data[MEMORY:MEMORY + 32] = memory.to_bytes(32, "little")
    data[CONTROL:CONTROL + 8] = control.to_bytes(4, "little") + bytes(4)
    load = "; ".join(f"vmovdqu ymm{i}, ymmword ptr [rsi + {SOURCES + 32 * i:#x}]" for i in range(4))
    store = "; ".join(f"vmovdqu ymmword ptr [rsi + {RESULTS + 32 * i:#x}], ymm{i}" for i in range(4))
    text = f"ldmxcsr dword ptr [rsi + {CONTROL:#x}]; {load}; {asm}; {store}; stmxcsr dword ptr [rsi + {CONTROL + 4:#x}]"
    return Case(text, {"rsi": DATA, "rax": rng.getrandbits(64)}, data=bytes(data))


SCALAR = {m for m in FLOAT if m[-2:] in ("ss", "sd") and not m.startswith("cvtsi")} | {"cvtsd2ss", "cvtss2sd"}
IMM = {"shufps", "shufpd", "cmpps", "cmppd", "cmpss", "cmpsd", "pshufd", "pshuflw", "pshufhw", "palignr"}
UNARY = {"pshufd", "pshuflw", "pshufhw", "cvtdq2ps", "cvtps2dq", "cvttps2dq", "sqrtps", "sqrtpd",
         "pabsb", "pabsw", "pabsd", "movddup", "movshdup", "movsldup"}
LATER = [name for *_, names in LATER_FAMILIES for name in names]
"""The SSE3, SSSE3 and SSE4.1 lane forms avx.py registers by helper name."""
PTR = {32: "dword", 64: "qword", 128: "xmmword", 256: "ymmword"}


SOURCE_WIDTH = {"cvtdq2ps": 0, "cvtps2dq": 32, "cvttps2dq": 32, "cvtsd2ss": 64, "cvtss2sd": 32}


def lane_width(mnemonic: str) -> int:
    """The float format of a form's sources (0: integers)."""
    if mnemonic in SOURCE_WIDTH:
        return SOURCE_WIDTH[mnemonic]
    return WIDTH[mnemonic[-2:]] if mnemonic in FLOAT or mnemonic in SSE3_FLOAT else 0


def lane_cases(mnemonic: str, form: str, rng: random.Random, count: int = CASES):
    """vX in ``form``: "ymm", "m256", "xmm", "m128" (scalar ops: "xmm" and "mem" only)."""
    width = lane_width(mnemonic)
    for _ in range(count):
        def source() -> int:
            return floats(rng, width) if width else ints(rng)
        a, b = source(), source()
        if mnemonic in SHIFTS:
            count = rng.choice((0, 1, 7, 15, 16, 31, 32, 63, 64, 200))
            b = count | (rng.getrandbits(64) << 64 if rng.random() < 0.5 else 0)
        control = mxcsr(rng) if width else DEFAULT_MXCSR
        imm = f", {rng.getrandbits(5) if mnemonic.startswith('cmp') else rng.getrandbits(8)}" \
            if mnemonic in IMM else ""
        if mnemonic in ("pslldq", "psrldq"):
            imm, b = f", {rng.choice((0, 1, 5, 15, 16, 200))}", None
        vector = "xmm" if form in ("xmm", "m128", "mem") else "ymm"
        bits = 128 if vector == "xmm" else 256
        if mnemonic in SCALAR:
            mem = f"{PTR[width]} ptr [rsi + {MEMORY:#x}]"
        elif mnemonic in SHIFTS:
            mem = f"xmmword ptr [rsi + {MEMORY:#x}]"
        else:                                       # VMOVDDUP xmm1, m64 reads one double
            mem = f"{PTR[64 if (mnemonic, bits) == ('movddup', 128) else bits]} ptr [rsi + {MEMORY:#x}]"
        if mnemonic in SHIFTS and form in ("ymm", "xmm"):
            second = "xmm2"
        elif mnemonic in SHIFTS:
            second = mem if form.startswith("m") else f"{b & 0xFF}"
        else:
            second = mem if form.startswith("m") or form == "mem" else f"{vector}2"
        first = f"{vector}1"
        if mnemonic in ("pslldq", "psrldq"):
            operands = f"{vector}0, {first}"
        elif mnemonic in UNARY:
            operands = f"{vector}0, {second}"
        else:
            operands = f"{vector}0, {first}, {second}"
        yield case(rng, f"v{mnemonic} {operands}{imm}", [ints(rng), a, b if b is not None else 0, ints(rng)],
                   control, memory=b if b is not None else None)


def forms(mnemonic: str) -> tuple[str, ...]:
    if mnemonic in SCALAR:
        return ("xmm", "mem")
    if mnemonic in ("pslldq", "psrldq"):
        return ("ymm", "xmm")
    if mnemonic in SHIFTS:
        return ("ymm", "m256", "xmm", "imm")
    return ("ymm", "m256", "xmm", "m128")


LANE_FORMS = [(m, f) for m in (*INTEGER, *(m for m in FLOAT if not m.startswith("cvtsi")), *LATER) for f in forms(m)]


@pytest.mark.parametrize(("mnemonic", "form"), LANE_FORMS)
def test_vex_forms_of_sse_instructions_match_the_host(rng, mnemonic, form):
    for c in lane_cases(mnemonic, form, rng):
        check_host(c)


@pytest.mark.fuzz
def test_fuzz_vex_forms_of_sse_instructions(rng):
    for mnemonic, form in LANE_FORMS:
        for c in lane_cases(mnemonic, form, rng, 10 * CASES):
            check_host(c)


# -- forms whose shape differs from the legacy one ---------------------------------------------------------
def checked(rng: random.Random, asm: str, control: int = DEFAULT_MXCSR, width: int = 0) -> None:
    """``asm`` from random (or float) ymm0..ymm3 and m256, against the host."""
    def source() -> int:
        return floats(rng, width) if width else ints(rng)
    for _ in range(CASES):
        check_host(case(rng, asm, [source() for _ in range(4)], control, memory=source()))


M = f"[rsi + {MEMORY:#x}]"
MOVES = (
    *(f"{m} ymm0, ymm1" for m in ("vmovdqa", "vmovdqu", "vmovaps", "vmovups", "vmovapd", "vmovupd")),
    *(f"{m} xmm0, xmm1" for m in ("vmovdqa", "vmovdqu", "vmovaps", "vmovups", "vmovapd", "vmovupd")),
    *(f"{m} ymm0, ymmword ptr [rsi + 0x100]" for m in ("vmovdqa", "vmovaps", "vmovapd")),
    *(f"{m} xmm0, xmmword ptr [rsi + 0x110]" for m in ("vmovdqa", "vmovaps", "vmovapd")),
    *(f"{m} ymm0, ymmword ptr {M}" for m in ("vmovdqu", "vmovups", "vmovupd")),
    *(f"{m} ymmword ptr [rsi + 0x380], ymm1" for m in ("vmovdqa", "vmovaps", "vmovapd", "vmovntdq", "vmovntps",
                                                       "vmovntpd", "vmovdqu")),
    *(f"{m} xmmword ptr [rsi + 0x381], xmm1" for m in ("vmovdqu", "vmovups", "vmovupd")),
    "vmovd xmm0, eax", "vmovq xmm0, rax", f"vmovd xmm0, dword ptr {M}", f"vmovq xmm0, qword ptr {M}",
    "vmovd eax, xmm1", "vmovq rax, xmm1", "vmovq xmm0, xmm1", f"vmovd dword ptr {M}, xmm1",
    f"vmovq qword ptr {M}, xmm1",
    "vmovss xmm0, xmm1, xmm2", "vmovsd xmm0, xmm1, xmm2", f"vmovss xmm0, dword ptr {M}",
    f"vmovsd xmm0, qword ptr {M}", f"vmovss dword ptr {M}, xmm1", f"vmovsd qword ptr {M}, xmm1",
    *(f"{m} xmm0, xmm1, qword ptr {M}" for m in ("vmovhps", "vmovhpd", "vmovlps", "vmovlpd")),
    *(f"{m} qword ptr {M}, xmm1" for m in ("vmovhps", "vmovhpd", "vmovlps", "vmovlpd")),
    "vmovhlps xmm0, xmm1, xmm2", "vmovlhps xmm0, xmm1, xmm2",
    "vpextrw eax, xmm1, 5", "vpextrw rax, xmm1, 0x13", "vpinsrw xmm0, xmm1, eax, 6",
    f"vpinsrw xmm0, xmm1, word ptr {M}, 0xf1",
    "vpmovmskb eax, ymm1", "vpmovmskb eax, xmm1", "vmovmskps eax, ymm1", "vmovmskps rax, xmm1",
    "vmovmskpd eax, ymm1", "vmovmskpd eax, xmm1",
)


@pytest.mark.parametrize("asm", MOVES)
def test_vex_moves_match_the_host(rng, asm):
    checked(rng, asm)


@pytest.mark.parametrize("asm", [
    "vmovdqa ymm0, ymmword ptr [rsi + 0x110]", "vmovaps ymm0, ymmword ptr [rsi + 0x108]",
    "vmovapd xmm0, xmmword ptr [rsi + 0x108]", "vmovntdq ymmword ptr [rsi + 0x390], ymm1",
    "vmovdqa ymmword ptr [rsi + 0x384], ymm1",
])
def test_aligned_vex_moves_fault_on_misaligned_memory_like_the_host(rng, asm):
    checked(rng, asm)


CONVERSIONS = (
    "vcvtdq2pd ymm0, xmm1", "vcvtdq2pd xmm0, xmm1", f"vcvtdq2pd ymm0, xmmword ptr {M}",
    f"vcvtdq2pd xmm0, qword ptr {M}",
    "vcvtps2pd ymm0, xmm1", "vcvtps2pd xmm0, xmm1", f"vcvtps2pd ymm0, xmmword ptr {M}",
    "vcvtpd2ps xmm0, ymm1", "vcvtpd2ps xmm0, xmm1", f"vcvtpd2ps xmm0, ymmword ptr {M}",
    "vcvtpd2dq xmm0, ymm1", "vcvtpd2dq xmm0, xmm1", "vcvttpd2dq xmm0, ymm1", f"vcvttpd2dq xmm0, ymmword ptr {M}",
    "vcvtsi2sd xmm0, xmm1, eax", "vcvtsi2sd xmm0, xmm1, rax", "vcvtsi2ss xmm0, xmm1, rax",
    f"vcvtsi2ss xmm0, xmm1, dword ptr {M}",
    "vcvtsd2si eax, xmm1", "vcvttsd2si rax, xmm1", "vcvtss2si rax, xmm1", f"vcvttss2si eax, dword ptr {M}",
    "vcomiss xmm1, xmm2", "vucomisd xmm1, xmm2", f"vcomisd xmm1, qword ptr {M}", f"vucomiss xmm1, dword ptr {M}",
)


@pytest.mark.parametrize("asm", CONVERSIONS)
def test_vex_conversions_and_comparisons_match_the_host(rng, asm):
    width = 64 if ("pd" in asm.split()[0] or "sd" in asm.split()[0]) and "2pd" not in asm.split()[0] else 32
    checked(rng, asm, mxcsr(rng), width)


@pytest.mark.parametrize("asm", ["vldmxcsr dword ptr [rsi + 0x3f0]; vstmxcsr dword ptr [rsi + 0x3e0]"])
def test_vldmxcsr_and_vstmxcsr_match_the_host(rng, asm):
    checked(rng, asm, mxcsr(rng))


# -- the VEX #UD rules (emu alone: the host's CR4 and XCR0 are the host kernel's) -------------------------
def run_alone(asm: str, jit: str, cr4: int = CR4_OSXSAVE, xcr0: int = 7, cpl: int = 3,
              data: bytes = b"") -> tuple[ExitKind, int | None, CpuState]:
    """Run ``asm`` in emu alone from a user-mode state with CR4, XCR0 and CPL replaced and RSI at the data
    page: how it stopped, the fault's vector, the final state."""
    mem = AddressSpace()
    mem.map(CODE, 0x1000, 5, assemble(asm) + b"\xf4")
    mem.map(DATA, DATA_SIZE, 3, data)
    state = CpuState()
    state.reset_user()
    state.cr4, state.xcr0, state.cpl, state.rsi, state.rip = cr4, xcr0, cpl, DATA, CODE
    cpu = Interpreter(state, mem)
    if jit != "off":
        cpu.jit = Jit(cpu, jit, strict=True)
    exit_ = cpu.run(limit=20)
    return exit_.kind, exit_.fault.vector if exit_.fault else None, state


VEX_SAMPLES = ("vpaddd ymm0, ymm1, ymm2", "vaddps xmm0, xmm1, xmmword ptr [rsi]", "vmovdqu ymm0, ymmword ptr [rsi]",
               "vcomiss xmm0, xmm1", "vmovd eax, xmm0")


@pytest.mark.parametrize("jit", ["off", "eager"])
@pytest.mark.parametrize("asm", VEX_SAMPLES)
@pytest.mark.parametrize(("cr4", "xcr0"), [(0, 7), (CR4_OSXSAVE, 3), (CR4_OSXSAVE, 5), (CR4_OSXSAVE, 1)])
def test_vex_instructions_raise_ud_unless_the_os_enabled_avx_state(asm, cr4, xcr0, jit):
    """SDM Vol. 2A, 2.8 (exception conditions of VEX instructions): #UD "If XCR0[2:1] != '11b'" or
    "If CR4.OSXSAVE[bit 18] = 0"; RIP stays at the instruction (after one plain NOP)."""
    kind, vector, state = run_alone(f"nop; {asm}", jit, cr4, xcr0)
    assert (kind, vector, state.rip) == (ExitKind.FAULT, Vector.UD, CODE + 1)


@pytest.mark.parametrize("jit", ["off", "eager"])
def test_vex_instructions_run_when_the_os_enabled_avx_state(jit):
    kind, _, _ = run_alone(f"{'; '.join(VEX_SAMPLES)}", jit)
    assert kind is ExitKind.HALT


@pytest.mark.parametrize("code", ["c5 fd 6e c0", "c5 f1 6e c0", "c5 f5 70 c1 1b", "c4 e2 79 19 06",
                                  "c4 e3 71 06 06 01", "c5 b8 77", "48 c5 f4 58 c2"])
def test_vex_l_vvvv_or_rex_where_the_instruction_forbids_them_is_undefined(code):
    """SDM Vol. 2A, 2.3.6 and each page's "#UD If VEX.L = 1" / "If VEX.vvvv != 1111B": VMOVD with L = 1 or
    vvvv set, VPSHUFD with vvvv, VBROADCASTSD and VPERM2F128 with L = 0, VZEROUPPER with vvvv, REX before
    VEX (capstone refuses them all; the decoder turns that into #UD)."""
    with pytest.raises(UndefinedOpcode):
        Decoder().decode_bytes(bytes.fromhex(code), CODE)


@pytest.mark.parametrize("code", ["66 c5 f4 58 c2", "f3 c5 f4 58 c2", "f2 c4 e2 7d 18 06", "f0 c5 f4 58 c2"])
def test_a_simd_or_lock_prefix_before_vex_is_undefined(code):
    """SDM Vol. 2A, 2.3.2: "Any VEX-encoded instruction with a LOCK/66H/F2H/F3H prefix preceding VEX will #UD"."""
    with pytest.raises(UndefinedOpcode):
        Decoder().decode_bytes(bytes.fromhex(code), CODE)


# -- AVX/AVX2 instructions with no SSE form (cpu/semantics/vector.py) ---------------------------------------
NEW = (
    f"vbroadcastss ymm0, dword ptr {M}", f"vbroadcastss xmm0, dword ptr {M}", "vbroadcastss ymm0, xmm1",
    "vbroadcastss xmm0, xmm1", f"vbroadcastsd ymm0, qword ptr {M}", "vbroadcastsd ymm0, xmm1",
    f"vbroadcastf128 ymm0, xmmword ptr {M}", f"vbroadcasti128 ymm0, xmmword ptr {M}",
    *(f"vpbroadcast{s} {v}0, {src}" for s, m in (("b", "byte"), ("w", "word"), ("d", "dword"), ("q", "qword"))
      for v in ("xmm", "ymm") for src in ("xmm1", f"{m} ptr {M}")),
    *(f"{m} ymm0, ymm1, {src}, {i}" for m in ("vinsertf128", "vinserti128") for src in ("xmm2", f"xmmword ptr {M}")
      for i in (0, 1, 0xfe)),
    *(f"{m} {d}, ymm1, {i}" for m in ("vextractf128", "vextracti128") for d in ("xmm0", f"xmmword ptr {M}")
      for i in (0, 1, 0xff)),
    *(f"{m} ymm0, ymm1, {src}, {i}" for m in ("vperm2f128", "vperm2i128") for src in ("ymm2", f"ymmword ptr {M}")
      for i in (0x00, 0x31, 0x12, 0x23, 0x88, 0x08, 0x80, 0xE4, 0x5B)),
    *(f"{m} {v}0, {v}1, {src}" for m in ("vpermilps", "vpermilpd") for v in ("xmm", "ymm")
      for src in (f"{v}2", f"{'x' if v == 'xmm' else 'y'}mmword ptr {M}")),
    *(f"{m} {v}0, {src}, {i}" for m in ("vpermilps", "vpermilpd") for v in ("xmm", "ymm")
      for src in (f"{v}1", f"{'x' if v == 'xmm' else 'y'}mmword ptr {M}") for i in (0x1B, 0x0A, 0xE5)),
    *(f"{m} ymm0, ymm1, {src}" for m in ("vpermd", "vpermps") for src in ("ymm2", f"ymmword ptr {M}")),
    *(f"{m} ymm0, {src}, {i}" for m in ("vpermq", "vpermpd") for src in ("ymm1", f"ymmword ptr {M}")
      for i in (0x1B, 0xD8, 0x00)),
    *(f"vpblendd {v}0, {v}1, {src}, {i}" for v in ("xmm", "ymm")
      for src in (f"{v}2", f"{'x' if v == 'xmm' else 'y'}mmword ptr {M}") for i in (0x00, 0xA5, 0x3C, 0xFF)),
    *(f"{m} {r}, {s}" for m in ("vptest", "vtestps", "vtestpd") for r, s in (("ymm1", "ymm2"), ("xmm1", "xmm2"),
                                                                            ("ymm1", f"ymmword ptr {M}"),
                                                                            ("ymm1", "ymm1"))),
    "vzeroupper", "vzeroall",
)


@pytest.mark.parametrize("asm", NEW)
def test_avx_instructions_without_an_sse_form_match_the_host(rng, asm):
    checked(rng, asm)


@pytest.mark.parametrize("mnemonic", ["vpsllvd", "vpsllvq", "vpsrlvd", "vpsrlvq", "vpsravd"])
@pytest.mark.parametrize("form", ["ymm", "m256", "xmm", "m128"])
def test_per_element_shifts_match_the_host(rng, mnemonic, form):
    width = 64 if mnemonic.endswith("q") else 32
    for _ in range(CASES):
        counts = sum(rng.choice((0, 1, width - 1, width, width + 1, 0xFFFF_FFFF, rng.getrandbits(width)))
                     << (width * i) for i in range(256 // width))
        v = "ymm" if form in ("ymm", "m256") else "xmm"
        src = f"{v}2" if form in ("ymm", "xmm") else f"{'y' if v == 'ymm' else 'x'}mmword ptr {M}"
        check_host(case(rng, f"{mnemonic} {v}0, {v}1, {src}", [ints(rng), ints(rng), counts, 0], memory=counts))


# -- masked moves and gathers (cpu/semantics/gather.py) -----------------------------------------------------
def masks(rng: random.Random, width: int) -> int:
    """Random elements with a random top bit: some selected, some not."""
    return sum(((rng.getrandbits(width - 1)) | (rng.getrandbits(1) << (width - 1))) << (width * i)
               for i in range(256 // width))


MASKED = [f"{m} {v}0, {v}1, {'x' if v == 'xmm' else 'y'}mmword ptr {M}" for m in ("vmaskmovps", "vmaskmovpd",
                                                                                  "vpmaskmovd", "vpmaskmovq")
          for v in ("xmm", "ymm")] + \
    [f"{m} {'x' if v == 'xmm' else 'y'}mmword ptr {M}, {v}1, {v}2" for m in ("vmaskmovps", "vmaskmovpd",
                                                                            "vpmaskmovd", "vpmaskmovq")
     for v in ("xmm", "ymm")]


@pytest.mark.parametrize("asm", MASKED)
def test_masked_loads_and_stores_match_the_host(rng, asm):
    width = 64 if asm.split()[0].endswith(("pd", "q")) else 32
    for _ in range(CASES):
        check_host(case(rng, asm, [ints(rng), masks(rng, width), ints(rng), ints(rng)], memory=ints(rng)))


@pytest.mark.parametrize("store", [False, True])
def test_masked_out_elements_never_fault(rng, store):
    """A 256-bit masked access whose upper elements lie on the unmapped page after the data page: with
    their mask bits clear it completes; with one set it faults (and a store writes nothing)."""
    top = 0x2000 - 16                              # the last 16 bytes of the data page
    for selected in (0x0F, 0x1F):
        mask = sum((1 << 31) << (32 * j) for j in range(8) if selected >> j & 1)
        asm = (f"vmaskmovps ymmword ptr [rsi + {top:#x}], ymm1, ymm2" if store
               else f"vmaskmovps ymm0, ymm1, ymmword ptr [rsi + {top:#x}]")
        check_host(case(rng, asm, [ints(rng), mask, ints(rng), ints(rng)]))


@pytest.mark.parametrize("mnemonic", ["maskmovdqu", "vmaskmovdqu"])
@pytest.mark.parametrize("where", [0x101, 0x2000 - 16, 0x2000 - 15, 0x2000 - 1, -DATA])
def test_byte_masked_stores_match_the_host(rng, mnemonic, where):
    """MASKMOVDQU xmm1, xmm2 stores at RDI: inside the data page, at its end, across onto the unmapped page
    after it, and at address 0; masks none, one, some and all bytes (the host faults on any unmapped byte,
    selected or not; then nothing is written).  An FS prefix adds the FS base, a 67H one uses EDI."""
    for selected in (0, 1 << 15, 1, rng.getrandbits(16), 0xFFFF):
        mask = sum(rng.randrange(0x80, 0x100) << (8 * j) if selected >> j & 1 else rng.randrange(0x80) << (8 * j)
                   for j in range(16))
        c = case(rng, f"mov rdi, rsi; add rdi, {where}; {mnemonic} xmm1, xmm2", [ints(rng), ints(rng), mask, ints(rng)])
        check_host(c)
    other = case(rng, f"lea rdi, [rsi + {where}]; bts rdi, 40; .byte 0x67; {mnemonic} xmm1, xmm2",
                 [ints(rng), ints(rng), rng.getrandbits(128), 0])
    check_host(other)
    check_host(case(rng, f"mov rdi, {where - 0x800}; .byte 0x64; {mnemonic} xmm1, xmm2", [ints(rng), ints(rng),
                                                                                  rng.getrandbits(128), 0]))


def test_maskmovdqu_inside_the_page_matches_unicorn(rng):
    """unicorn has MASKMOVDQU (not the VEX form) and writes the selected bytes; it does not fault on bytes
    it does not write, so only stores within the data page are compared with it."""
    for where in (0, 0x101, 0x1FF0):
        for selected in (0, 0x8001, rng.getrandbits(16), 0xFFFF):
            mask = sum((0x80 | rng.getrandbits(7) if selected >> j & 1 else rng.getrandbits(7)) << (8 * j)
                       for j in range(16))
            check(Case("maskmovdqu xmm1, xmm2", {"rdi": DATA + where}, xmm={1: rng.getrandbits(128), 2: mask},
                       data=rng.randbytes(0x2000)))


GATHERS = {"vgatherdps": (32, 32), "vgatherdpd": (32, 64), "vgatherqps": (64, 32), "vgatherqpd": (64, 64),
           "vpgatherdd": (32, 32), "vpgatherdq": (32, 64), "vpgatherqd": (64, 32), "vpgatherqq": (64, 64)}


def gather_asm(mnemonic: str, wide: bool, scale: int) -> str:
    """ymm0/xmm0 gathered through index register 1 with mask register 2 (the widths the SDM pairs)."""
    index_width, width = GATHERS[mnemonic]
    data_reg = "ymm" if wide and not (index_width == 64 and width == 32) else "xmm"
    index_reg = "ymm" if wide and not (index_width == 32 and width == 64) else "xmm"
    return f"{mnemonic} {data_reg}0, [rsi + {index_reg}1*{scale} + 0x100], {data_reg}2"


@pytest.mark.parametrize("mnemonic", GATHERS)
@pytest.mark.parametrize("wide", [False, True])
def test_gathers_match_the_host(rng, mnemonic, wide):
    index_width, width = GATHERS[mnemonic]
    for scale in (1, 2, 4, 8):
        indices = sum((rng.randrange(-0x100 // scale, 0x1000 // scale) & ((1 << index_width) - 1))
                      << (index_width * i) for i in range(256 // index_width))
        check_host(case(rng, gather_asm(mnemonic, wide, scale), [ints(rng), indices, masks(rng, width), 0]))


@pytest.mark.parametrize("mnemonic", ["vpgatherdd", "vgatherqpd"])
def test_a_gather_that_faults_keeps_the_elements_before_the_fault(rng, mnemonic):
    """Element 2's index reaches past the data page: elements 0 and 1 are gathered and unmasked, the
    fault is delivered with RIP at the gather, and the host shows the same partial state."""
    index_width, width = GATHERS[mnemonic]
    indices = [8, 16, 0x4000, 24, 32, 40, 48, 56]
    packed = sum(i << (index_width * n) for n, i in enumerate(indices[:256 // index_width]))
    all_set = sum((1 << (width - 1)) << (width * i) for i in range(256 // width))
    asm = gather_asm(mnemonic, True, 1)
    c = case(rng, asm, [ints(rng), packed, all_set, 0])
    check_host(c)
    memory = c.data
    gathered = sum(int.from_bytes(memory[0x100 + indices[j]:0x100 + indices[j] + width // 8], "little")
                   << (width * j) for j in range(2))
    low_two = (1 << (2 * width)) - 1
    for blocks, jit in ((False, "off"), (True, "off"), (True, "eager")):
        out = run_emu(c, blocks, jit)
        assert out.faulted
        assert out.xmm[0] & low_two == gathered
        assert out.xmm[2] == all_set & MASK128 & ~low_two


@pytest.mark.parametrize("asm", ["vpgatherdd ymm1, [rsi + ymm1*4], ymm2", "vpgatherdd ymm1, [rsi + ymm2*4], ymm1",
                                 "vgatherdps ymm0, [rsi + ymm1*4], ymm1"])
def test_a_gather_naming_one_register_twice_is_undefined_like_the_host(rng, asm):
    check_host(case(rng, asm, [ints(rng), 0, 0, 0]))


# -- a C program in every tier ------------------------------------------------------------------------------
@pytest.mark.parametrize("jit", ["off", "eager"])
def test_a_program_built_for_x86_64_v3_gives_the_native_output_in_every_tier(build_static, jit):
    """tests/programs/avx.c (vectorised loops, FMA contraction, AVX2/F16C intrinsics) at -O3 -march=x86-64-v3:
    the interpreter alone and the JIT compiling every block print what the host prints."""
    binary = build_static(Path(__file__).parents[1] / "programs" / "avx.c", "O3", ("-march=x86-64-v3",))
    native = subprocess.run([str(binary)], capture_output=True, text=True, check=False)
    emulated = subprocess.run([sys.executable, "-m", "emu", "run", f"--jit={jit}", str(binary)],
                              capture_output=True, text=True, check=False)
    assert native.returncode == 0 and native.stdout.count("\n") > 20
    assert (emulated.returncode, emulated.stdout) == (0, native.stdout), emulated.stderr[-2000:]
