"""The VEX.128 forms of AES and PCLMULQDQ: VAESENC, VAESENCLAST, VAESDEC, VAESDECLAST, VAESIMC,
VAESKEYGENASSIST and VPCLMULQDQ.

Intel SDM Vol. 2, the VEX.128 lines of the AESENC, AESENCLAST, AESDEC, AESDECLAST, AESIMC,
AESKEYGENASSIST and PCLMULQDQ pages: each computes what the legacy instruction does (the same helpers,
``cpu.semantics.aes`` and ``clmul``) with a separate first source (``vaesenc xmm1, xmm2, xmm3/m128``:
the state is xmm2, the round key xmm3/m128), any memory alignment, and the destination's bits 255:128
cleared.  They need AES (PCLMULQDQ) and AVX: registered under the first, and ``vex.check`` refuses
them unless the OS enabled AVX state; no ``--cpu`` level has AES or PCLMULQDQ without AVX.

Not implemented: the VEX.256 forms, which belong to VAES and VPCLMULQDQ, extensions this CPU does not
advertise: they raise #UD.
"""

from __future__ import annotations

from cpu.semantics import semantics, vex


def _xmm_only(insn, dst) -> None:
    """#UD (through the translator's refusal) for a VEX.256 form, which needs VAES or VPCLMULQDQ."""
    if dst.size != 128:
        raise ValueError(f"the 256-bit {insn.mnemonic} needs {'VPCLMULQDQ' if 'clmul' in insn.mnemonic else 'VAES'},"
                         " which this CPU does not have")


@semantics("vaesenc", "vaesenclast", "vaesdec", "vaesdeclast", feature="aes")
def round_insn(ops, insn, dst, src1, src2):
    """VAESENC xmm1, xmm2, xmm3/m128: xmm1 = one round of state xmm2 with round key xmm3/m128."""
    _xmm_only(insn, dst)
    vex.check(ops)
    state, key = vex.read(ops, insn, src1), vex.read(ops, insn, src2)
    vex.write_halves(ops, insn, dst, [ops.helper(insn.mnemonic[1:], state, key)])


@semantics("vaesimc", feature="aes")
def aesimc(ops, insn, dst, src):
    """VAESIMC xmm1, xmm2/m128."""
    _xmm_only(insn, dst)
    vex.check(ops)
    vex.write_halves(ops, insn, dst, [ops.helper("aesimc", vex.read(ops, insn, src))])


@semantics("vaeskeygenassist", feature="aes")
def aeskeygenassist(ops, insn, dst, src, rcon):
    """VAESKEYGENASSIST xmm1, xmm2/m128, imm8."""
    _xmm_only(insn, dst)
    vex.check(ops)
    vex.write_halves(ops, insn, dst, [ops.helper("aeskeygenassist", vex.read(ops, insn, src), rcon.imm)])


@semantics("vpclmulqdq", feature="pclmulqdq")
def pclmulqdq(ops, insn, dst, src1, src2, imm):
    """VPCLMULQDQ xmm1, xmm2, xmm3/m128, imm8: quadword imm[0] of xmm2 times quadword imm[4] of xmm3/m128."""
    _xmm_only(insn, dst)
    vex.check(ops)
    a, b = vex.read(ops, insn, src1), vex.read(ops, insn, src2)
    vex.write_halves(ops, insn, dst, [ops.helper("pclmulqdq", a, b, imm.imm)])
