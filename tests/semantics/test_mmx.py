"""MMX against the host CPU (``cpu/semantics/mmx.py``): every MMX integer instruction with register and
memory sources, the SSE and SSSE3 instructions on MMX registers, and what each does to the x87 state (TOP = 0,
every tag valid, the written register's exponent all ones; EMMS empties the tags), compared byte for
byte through the FNSAVE image, the memory result and a GPR result (``tests/semantics/x87_batch.py``)."""

from __future__ import annotations

import random

from tests.semantics.harness import DATA, Case
from tests.semantics.host import check_host, needs_host
from tests.semantics.x87_batch import CLEAR, Slot, run_slots

pytestmark = needs_host

LANEWISE = ["paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq", "paddsb", "paddsw", "psubsb",
            "psubsw", "paddusb", "paddusw", "psubusb", "psubusw", "pcmpgtb", "pcmpgtw", "pcmpgtd", "pcmpeqb",
            "pcmpeqw", "pcmpeqd", "pminub", "pmaxub", "pminsw", "pmaxsw", "pavgb", "pavgw", "pmullw", "pmulhw",
            "pmulhuw", "pmuludq", "pmaddwd", "psadbw", "pand", "pandn", "por", "pxor", "punpcklbw", "punpcklwd",
            "punpckldq", "punpckhbw", "punpckhwd", "punpckhdq", "packsswb", "packuswb", "packssdw"]
SHIFTS = ["psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"]
SPECIAL = [0, (1 << 64) - 1, 0x8000_8000_8000_8000, 0x7FFF_7FFF_7FFF_7FFF, 0x0102_0304_0506_0708, 0x8000_0000,
           0x7F7F_7F7F_8080_8080, 0x0000_0000_0000_0040, 0x4F00_0000_3F80_0000]
GPR = "\nmov qword ptr {FLAGS}, rax"


def agree(bodies: list[str], per_body: int, seed: int) -> None:
    rng = random.Random(seed)

    def pick() -> int:
        return rng.choice(SPECIAL) if rng.random() < 0.3 else rng.getrandbits(64)
    slots = [Slot(body, pick() | rng.getrandbits(16) << 64, pick(), 0x037F, m=pick() | pick() << 64)
             for body in bodies for _ in range(per_body)]
    problems = run_slots(slots)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:8])


def test_lanewise_arithmetic_logic_packs_and_unpacks() -> None:
    agree([f"movq mm0, qword ptr {{A}}\nmovq mm1, qword ptr {{B}}\n{op} mm0, mm1" for op in LANEWISE]
          + [f"movq mm2, qword ptr {{A}}\n{op} mm2, qword ptr {{M}}" for op in LANEWISE], per_body=3, seed=1)


SSSE3 = ["pshufb", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw", "pmaddubsw", "pmulhrsw",
         "psignb", "psignw", "psignd", "pabsb", "pabsw", "pabsd"]


def test_ssse3_on_mmx_registers() -> None:
    agree([f"movq mm0, qword ptr {{A}}\nmovq mm1, qword ptr {{B}}\n{op} mm0, mm1" for op in SSSE3]
          + [f"movq mm2, qword ptr {{A}}\n{op} mm2, qword ptr {{M}}" for op in SSSE3]
          + [f"movq mm0, qword ptr {{A}}\nmovq mm1, qword ptr {{B}}\npalignr mm0, mm1, {n}" for n in (0, 3, 8, 13, 16)],
          per_body=3, seed=5)


def test_shifts_by_register_memory_and_immediate() -> None:
    agree([f"movq mm0, qword ptr {{A}}\nmovq mm1, qword ptr {{B}}\n{op} mm0, mm1" for op in SHIFTS]
          + [f"movq mm3, qword ptr {{A}}\n{op} mm3, qword ptr {{M}}" for op in SHIFTS]
          + [f"movq mm3, qword ptr {{A}}\n{op} mm3, {n}" for op in SHIFTS for n in (0, 5, 31, 64)],
          per_body=3, seed=2)


def test_moves_extracts_masks_and_the_sse_forms() -> None:
    agree(["movq mm0, qword ptr {A}\npshufw mm1, mm0, 0x1b", "pshufw mm1, qword ptr {M}, 0xd2",
           "movq mm0, qword ptr {A}\npextrw eax, mm0, 6" + GPR,
           "movq mm0, qword ptr {A}\nmov eax, 0x1234\npinsrw mm0, eax, 5",
           "movq mm0, qword ptr {A}\npmovmskb eax, mm0" + GPR, "movd mm0, dword ptr {M}",
           "movq mm0, qword ptr {A}\nmovd dword ptr {M}, mm0", "movq mm0, qword ptr {A}\nmovq rax, mm0" + GPR,
           "mov rax, qword ptr {M}\nmovq mm5, rax", "movq mm0, qword ptr {A}\nmovntq qword ptr {M}, mm0",
           "movq mm0, qword ptr {A}\nmovq2dq xmm1, mm0\nmovdqu xmmword ptr {M}, xmm1",
           "movdqu xmm1, xmmword ptr {M}\nmovdq2q mm3, xmm1",
           "movq mm0, qword ptr {A}\nmovdqu xmm1, xmmword ptr {M}\ncvtpi2ps xmm1, mm0\nmovdqu xmmword ptr {M}, xmm1",
           "movq mm0, qword ptr {A}\ncvtpi2pd xmm1, mm0\nmovdqu xmmword ptr {M}, xmm1",
           "movdqu xmm1, xmmword ptr {M}\ncvtpi2ps xmm1, qword ptr {A}\nmovdqu xmmword ptr {M}, xmm1",
           "cvtpi2pd xmm1, qword ptr {A}\nmovdqu xmmword ptr {M}, xmm1",
           "movdqu xmm1, xmmword ptr {M}\ncvtps2pi mm2, xmm1", "movdqu xmm1, xmmword ptr {M}\ncvttps2pi mm2, xmm1",
           "movdqu xmm1, xmmword ptr {M}\ncvtpd2pi mm2, xmm1", "movdqu xmm1, xmmword ptr {M}\ncvttpd2pi mm2, xmm1",
           "movq mm0, qword ptr {A}\nmovq mm1, qword ptr {B}\nlea rdi, {M}\nmaskmovq mm0, mm1"],
          per_body=4, seed=3)


def test_mmx_and_x87_state_share_the_registers() -> None:
    """After an MMX instruction TOP is 0 and every tag valid; EMMS empties them; x87 loads land in R7."""
    agree(["movq mm0, qword ptr {A}\nemms", "movq mm0, mm0", "movq mm0, qword ptr {A}\nfld1",
           "movq mm7, qword ptr {A}\nemms\nfld qword ptr {M}", "fincstp\nmovd mm1, dword ptr {M}"],
          per_body=3, seed=4)


def test_fxsave_and_fxrstor_carry_the_mmx_registers() -> None:
    """The image holds MMi in R_i's slot (TOP is 0) with exponent ones and every abridged tag set."""
    zero = "\n".join(f"mov byte ptr [rsi + {i}], 0" for i in range(6, 24))
    asm = (f"mov rsi, {DATA}\n{CLEAR}\nmovq mm3, qword ptr [rsi + 0x300]\nmovq mm6, mm3\npaddb mm6, mm6\n"
           f"fxsave [rsi]\n{zero}\nemms\nfxrstor [rsi]\nmovq qword ptr [rsi + 0x310], mm6\n"
           "fnstsw word ptr [rsi + 0x318]")
    check_host(Case(asm=asm, data=bytes(0x300) + (0x8081_7F00_FF01_0203).to_bytes(8, "little")))


def test_an_mmx_instruction_raises_a_pending_x87_exception() -> None:
    pending = f"mov rsi, {DATA}\nfldcw word ptr [rsi]\nfld1\nfldz\nfdivp st(1), st(0)\n"
    for insn in ("paddb mm0, mm1", "emms", "movd eax, mm2"):
        check_host(Case(asm=pending + insn + "\nmov rbx, 1", data=(0x037B).to_bytes(2, "little")))
