"""`emu explain` and the symbolic backend.

Every registered semantic runs through :class:`cpu.backends.symbolic.SymbolicOps`,
whose values refuse to act as Python booleans: a semantic that branched on a
guest value would fail here, so this is also the check that the semantics are
backend-neutral.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import keystone
import pytest

from cpu.backends.symbolic import explain
from cpu.decoder import Decoder, Insn
from cpu.exceptions import GuestFault
from cpu.semantics import load_all

FORMS = (
    "", "rax", "eax", "rax, rbx", "eax, ebx", "ax, bx", "al, bl", "rax, 1", "eax, 1", "rax, cl", "rax, rbx, 3",
    "rax, rbx, cl", "xmm0, xmm1", "xmm0, xmm1, 1", "xmm0, 3", "xmm0, rax", "xmm0, eax", "rax, xmm0", "eax, xmm0",
    "xmm0, qword ptr [rax]", "xmm0, dword ptr [rax]", "qword ptr [rax], xmm0", "xmm0, xmmword ptr [rax]",
    "xmmword ptr [rax], xmm0", "qword ptr [rax]", "dword ptr [rax]", "byte ptr [rax]", "xmmword ptr [rax]", "0x401010",
    "al", "rax, qword ptr [rbx]", "eax, xmm0, 1", "xmm0, eax, 1", "word ptr [rax]", "8, 0", "rax, byte ptr [rbx]",
    "qword ptr [rax], rbx", "rax, rbx, rcx",
    "ymm0, ymm1, ymm2", "ymm0, ymm1", "ymm0, ymm1, 1", "ymm0, ymm1, ymm2, 1", "xmm0, xmm1, xmm2", "xmm0, ymm1",
    "ymm0, xmm1", "eax, ymm1", "xmm0, xmm1, eax", "xmm0, xmm1, qword ptr [rax]", "xmm0, xmm1, xmm2, 1",
    "xmm0, xmm1, eax, 1", "ymm0, ymm1, xmm2", "ymm0, ymm1, xmm2, 1", "xmm0, ymm1, 1", "ymm0, ymm1, ymmword ptr [rax]",
    "ymm0, ymmword ptr [rax]", "ymm0, xmmword ptr [rax]", "ymm0, dword ptr [rax]", "ymm0, ymm1, ymm2, ymm3",
    "ymm0, [rax + ymm1*4], ymm2", "xmm0, [rax + ymm1*4], xmm2", "ymm0, [rax + xmm1*4], ymm2",
    "ymm0, ymm1, ymmword ptr [rax], 1", "ymmword ptr [rax], ymm0, ymm1",
)
"""Operand shapes tried, in order, with keystone until capstone decodes the same mnemonic back."""

BYTES = {
    "endbr64": "f3 0f 1e fa", "endbr32": "f3 0f 1e fb", "movsxd": "48 63 c3", "sal": "48 d1 f0",
    "ud0": "0f ff c0", "ud1": "0f b9 c0", "int": "cd 80", "out": "e6 80", "sysretq": "48 0f 07",
    "pextrq": "66 48 0f 3a 16 c0 01", "pinsrq": "66 48 0f 3a 22 c0 01",
    "vpextrq": "c4 e3 f9 16 c8 03", "vpinsrq": "c4 e3 f1 22 c0 01",
    "rdpid": "f3 0f c7 f8",
    "fbld": "df 26", "fbstp": "df 37", "ffree": "dd c3", "ffreep": "df c1", "fstpnce": "d9 d9",
    "fcmovb": "da c1", "fcmove": "da c9", "fcmovbe": "da d1", "fcmovu": "da d9",
    "fcmovnb": "db c1", "fcmovne": "db c9", "fcmovnbe": "db d1", "fcmovnu": "db d9",
    "cvtpd2pi": "66 0f 2d c1", "cvtps2pi": "0f 2d c1", "cvttpd2pi": "66 0f 2c c1", "cvttps2pi": "0f 2c c1",
    "maskmovq": "0f f7 c1", "movdq2q": "f2 0f d6 c1", "movq2dq": "f3 0f d6 c1", "movntq": "0f e7 00",
    "pshufw": "0f 70 c1 03",
}
"""Encodings keystone does not produce (or spells differently)."""


@cache
def _keystone() -> keystone.Ks:
    return keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)


def sample(mnemonic: str) -> Insn | None:
    """One decoded instance of ``mnemonic``."""
    decoder = Decoder()
    if mnemonic in BYTES:
        return decoder.decode_bytes(bytes.fromhex(BYTES[mnemonic]), 0x401000)
    for form in FORMS:
        try:
            code, _ = _keystone().asm(f"{mnemonic} {form}", 0x401000)
            insn = decoder.decode_bytes(bytes(code or b""), 0x401000)
        except (keystone.KsError, GuestFault):
            continue
        if insn.mnemonic == mnemonic:
            return insn
    return None


@pytest.mark.parametrize("mnemonic", sorted(load_all()))
def test_every_semantic_renders_as_micro_ops_without_branching_on_guest_values(mnemonic: str) -> None:
    insn = sample(mnemonic)
    assert insn is not None, f"no sample encoding for {mnemonic}: add one to BYTES in this file"
    text = explain(insn)
    assert text.startswith(insn.text)
    assert len(text.splitlines()) >= 2


def test_explain_shows_the_reads_the_computation_the_writes_and_the_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "emu", "explain", "add rax, qword ptr [rbx+8]"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "add rax, qword ptr [rbx + 8]    (48 03 43 08)",
        "  t1 = rax",
        "  t2 = rbx",
        "  t3 = t2 + 8",
        "  t4 = load64 [t3]",
        "  t5 = add64 t1, t4",
        "  rax <- t5",
        "  flags <- ADD64 a=t1 b=t4 r=t5",
        "  rip <- 0x401004",
    ]


def test_explain_accepts_machine_code_bytes_and_names_the_32_bit_zero_extension() -> None:
    out = subprocess.run([sys.executable, "-m", "emu", "explain", "--bytes", "01 d8"],
                         capture_output=True, text=True, check=True).stdout
    assert "add eax, ebx" in out
    assert "eax <- t3  (zero-extends to 64 bits)" in out


def test_explain_shows_a_simd_exception_committing_only_mxcsr_and_x87_pointer_recording() -> None:
    """#XM (or #UD) before the destination is written, keeping MXCSR's flags; an x87 instruction records its
    opcode and operand first and FIP last."""
    out = subprocess.run([sys.executable, "-m", "emu", "explain", "divps xmm0, xmm1"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    xm = next(i for i, line in enumerate(out) if line.startswith("  if ") and ": raise #XM, keeping mxcsr <- t" in line)
    assert out[xm + 1].endswith(": raise #UD, keeping " + out[xm].split("keeping ")[1])
    assert next(i for i, line in enumerate(out) if line.startswith("  xmm0 <- ")) > xm + 1
    out = subprocess.run([sys.executable, "-m", "emu", "explain", "fmul dword ptr [rax+8]"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[1] == "  x87_opcode <- 0x48" and out[-2] == "  fip <- 0x401000"


def test_explain_rejects_bad_assembly_with_one_line_and_status_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "emu", "explain", "frobnicate rax"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("emu: error: cannot assemble 'frobnicate rax'")
    assert "Traceback" not in proc.stderr
