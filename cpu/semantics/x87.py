"""x87 FPU control and data movement: FNINIT ... FWAIT, FLD/FST families, FXCH, FCMOVcc, environments.

Intel SDM Vol. 1, ch. 8 (the x87 FPU: 8.1 execution environment, 8.3.3 data transfer, 8.3.4
constants, 8.1.10 saving the state) and the Vol. 2 instruction pages (FLD, FILD, FBLD, FST/FSTP,
FIST/FISTP, FISTTP, FBSTP, FLD1 and the other constants, FXCH, FCMOVcc, FFREE, FINCSTP, FDECSTP,
FNSTENV, FLDENV, FNSAVE, FRSTOR, FNSTSW, FNSTCW, FLDCW, FNINIT, FNCLEX, FWAIT).

The register stack (``cpu.semantics.fpu``) changes as a whole, so each instruction is one
``@call`` that reads its memory operand, checks the stack, computes with ``extended`` (exact
80-bit arithmetic) and writes back; its arguments are decode-time facts (a format, a register
index) and the linear address.  Every x87 instruction except the FN- forms first raises #MF
for a pending unmasked exception when CR0.NE is set.

The non-control instructions are registered with ``fpu.x87``, which records the last-instruction
pointers FIP, FDP and FOP (``cpu.semantics.fpu``).

Not modelled: CR0.EM and CR0.TS (#NM), real-mode image layouts.
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.exceptions import Vector
from cpu.semantics import call, semantics
from cpu.semantics import extended as X
from cpu.semantics.fpu import CR0_NE, ES, EXCEPTIONS, B, Fpu, x87

FCW_RESET = 0x037F
"""FNINIT's control word: all exceptions masked, 64-bit precision, round to nearest (SDM Vol. 1, 8.1.5)."""

FSW_EXCEPTIONS = 0x00FF
"""Status word bits FNCLEX clears: IE DE ZE OE UE PE, stack fault, error summary; and B (bit 15)."""

# Memory formats, by a call's ``kind`` argument
F32, F64, F80, I16, I32, I64, BCD, ST = range(8)
_FORMAT_BY_MNEMONIC = {"fld": {32: F32, 64: F64, 80: F80}, "fst": {32: F32, 64: F64},
                       "fstp": {32: F32, 64: F64, 80: F80}, "fild": {16: I16, 32: I32, 64: I64},
                       "fist": {16: I16, 32: I32}, "fistp": {16: I16, 32: I32, 64: I64},
                       "fisttp": {16: I16, 32: I32, 64: I64}, "fbld": {80: BCD}, "fbstp": {80: BCD}}
_BYTES = {F32: 4, F64: 8, F80: 10, I16: 2, I32: 4, I64: 8, BCD: 10}

CONSTANTS = {
    # mnemonic: (128-bit significand, exponent of its top bit): rounded per FCW.RC (SDM Vol. 1, 8.3.4)
    "fld1": (1 << 127, 0), "fldz": (0, 0),
    "fldpi": (0xC90FDAA22168C234C4C6628B80DC1CD1, 1),
    "fldl2t": (0xD49A784BCD1B8AFE492BF6FF4DAFDB4C, 1),
    "fldl2e": (0xB8AA3B295C17F0BBBE87FED0691D3E88, 0),
    "fldlg2": (0x9A209A84FBCFF7988F8959AC0B7C9178, -2),
    "fldln2": (0xB17217F7D1CF79ABC9E3B39803F2F6AF, -1),
}
_CONSTANT_NAMES = tuple(CONSTANTS)


def st_index(opnd) -> int:  # noqa: ANN001 - a decoder Operand naming st0..st7
    return int(opnd.reg[2:])


def operand_16bit(insn) -> bool:  # noqa: ANN001
    """An operand-size prefix (66) before the opcode: the 16-bit environment layout."""
    return 0x66 in insn.raw[:insn.raw.index(next(b for b in insn.raw if 0xD8 <= b <= 0xDF))]


# -- control ---------------------------------------------------------------------------------
@semantics("fninit")
def fninit(ops, insn):
    """Control word to its default, status word cleared (TOP = 0), every register tagged empty."""
    ops.set_reg("fcw", FCW_RESET)
    ops.set_reg("fsw", 0)
    ops.set_reg("ftw", 0)
    for pointer in ("fip", "fdp", "fop"):
        ops.set_reg(pointer, 0)


@semantics("fnclex")
def fnclex(ops, insn):
    ops.set_reg("fsw", ops.and_(ops.reg("fsw"), 0xFFFF ^ (FSW_EXCEPTIONS | B)))


@semantics("fnstcw")
def fnstcw(ops, insn, dst):
    ops.write(dst, ops.reg("fcw"))


def pending_x87_exception(ops):
    """Whether a waiting instruction raises #MF now: ES set and CR0.NE set (SDM Vol. 1, 8.7)."""
    return ops.and_(ops.ne(ops.and_(ops.reg("fsw"), ES), 0), ops.ne(ops.and_(ops.reg("cr0"), CR0_NE), 0))


@semantics("fldcw")
def fldcw(ops, insn, src):
    """FLDCW m16: ES and B follow from the flags and the new masks; unmasking a set flag leaves it pending."""
    fcw = ops.read(src)
    ops.fault_if(pending_x87_exception(ops), Vector.MF)
    fsw = ops.and_(ops.reg("fsw"), 0xFFFF ^ (ES | B))
    unmasked_set = ops.ne(ops.and_(ops.and_(fsw, ops.not_(fcw, 16)), EXCEPTIONS), 0)
    ops.set_reg("fsw", ops.or_(fsw, ops.select(unmasked_set, ES | B, 0)))
    ops.set_reg("fcw", fcw)


@semantics("fnstsw")
def fnstsw(ops, insn, dst):
    """FNSTSW m16 / FNSTSW AX."""
    ops.write(dst, ops.reg("fsw"))


@semantics("wait")
def fwait(ops, insn):
    """FWAIT: #MF when an unmasked exception is pending and CR0.NE is set."""
    ops.fault_if(pending_x87_exception(ops), Vector.MF)


@x87("fnop", "fdisi8087_nop", "feni8087_nop", "fsetpm")
def fnop(ops, insn):
    """FNOP, and the 8087/287 FDISI, FENI and FSETPM, which later processors ignore."""
    ops.call("fpu_wait")


@call
def fpu_wait(cpu) -> None:
    Fpu(cpu).wait()


@semantics("emms", feature="mmx")
def emms(ops, insn):
    """Leave MMX state: every x87 register tagged empty (#MF first for a pending x87 exception)."""
    ops.fault_if(pending_x87_exception(ops), Vector.MF)
    ops.set_reg("ftw", 0)


# -- loads -----------------------------------------------------------------------------------------
def read_operand(fpu: Fpu, kind: int, address: int) -> int:
    """The raw bits of a memory operand of ``kind``."""
    return int.from_bytes(fpu.mem.read(address, _BYTES[kind]), "little")


def load_value(kind: int, raw: int) -> tuple[int, int]:
    """A memory operand of ``kind`` as an extended value, with the flags its conversion raises."""
    if kind in (F32, F64):
        return X.from_float(raw, 32 if kind == F32 else 64)
    if kind in (I16, I32, I64):
        width = 16 << (kind - I16)
        return X.from_int(raw - (raw >> (width - 1) << width)), 0
    if kind == BCD:
        return X.from_bcd(raw), 0
    return raw, 0


@x87("fld", "fild", "fbld")
def fld(ops, insn, src):
    """FLD m32fp/m64fp/m80fp/ST(i), FILD m16int/m32int/m64int, FBLD m80dec: push the value."""
    if src.kind is Kind.REG:
        ops.call("fpu_load", ST, 0, st_index(src))
    else:
        ops.call("fpu_load", _FORMAT_BY_MNEMONIC[insn.mnemonic][src.size], ops.address(src), 0)


@call
def fpu_load(cpu, kind: int, address: int, i: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    if kind == ST:
        if fpu.underflow(i):
            fpu.push_checked(X.INDEFINITE)
            return
        fpu.push_checked(fpu.get(i))
        return
    value, flags = load_value(kind, read_operand(fpu, kind, address))
    fpu.push_checked(value, flags)


@x87(*CONSTANTS)
def fld_constant(ops, insn):
    """FLD1, FLDZ, FLDPI, FLDL2T, FLDL2E, FLDLG2, FLDLN2: push the constant rounded per FCW.RC."""
    ops.call("fpu_constant", _CONSTANT_NAMES.index(insn.mnemonic))


@call
def fpu_constant(cpu, index: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    significand, top = CONSTANTS[_CONSTANT_NAMES[index]]
    value, _ = X.round_pack(0, significand, top - 127, 64, fpu.rounding)
    fpu.push_checked(value)


# -- stores ------------------------------------------------------------------------------------------
def store_value(kind: int, value: int, rc: int) -> tuple[int, int]:
    """ST(0) converted for a memory operand of ``kind``, with the flags of the conversion."""
    if kind in (F32, F64):
        return X.to_float(value, 32 if kind == F32 else 64, rc)
    if kind in (I16, I32, I64):
        return X.to_int(value, 16 << (kind - I16), rc)
    if kind == BCD:
        return X.to_bcd(value, rc)
    return value, 0


_INDEFINITE_STORE = {F32: 0xFFC0_0000, F64: 0xFFF8 << 48, F80: X.INDEFINITE,
                     I16: 1 << 15, I32: 1 << 31, I64: 1 << 63, BCD: X.BCD_INDEFINITE}


@x87("fst", "fstp", "fist", "fistp", "fbstp", "fstpnce")
@x87("fisttp", feature="sse3")
def fst(ops, insn, dst, *_st0):
    """FST/FSTP m32fp/m64fp/m80fp/ST(i), FIST/FISTP m16/m32/m64int, FISTTP (truncating), FBSTP m80dec;
    FSTPNCE ST(i), ST(0) (D9 D8+i, an alias of FSTP ST(i))."""
    pop = int(insn.mnemonic.endswith("p") or insn.mnemonic == "fstpnce")
    truncate = int(insn.mnemonic == "fisttp")
    if dst.kind is Kind.REG:
        ops.call("fpu_store", ST, 0, st_index(dst), pop, 0)
    else:
        ops.call("fpu_store", _FORMAT_BY_MNEMONIC[insn.mnemonic.replace("nce", "")][dst.size],
                 ops.address(dst), 0, pop, truncate)


@call
def fpu_store(cpu, kind: int, address: int, i: int, pop: int, truncate: int) -> None:
    """The masked response to an empty ST(0) stores the indefinite of the destination format."""
    fpu = Fpu(cpu)
    fpu.wait()
    if kind == ST:
        if fpu.underflow(0):
            if not fpu.unmasked & X.IE:
                fpu.set(i, X.INDEFINITE)
                if pop:
                    fpu.pop()
            return
        fpu.signal(0)
        fpu.set(i, fpu.get(0))
        if pop:
            fpu.pop()
        return
    if fpu.empty(0):
        result, flags = _INDEFINITE_STORE[kind], X.IE | 0x40
    else:
        result, flags = store_value(kind, fpu.get(0), X.ZERO if truncate else fpu.rounding)
    if flags & fpu.unmasked & (X.IE | X.OE | X.UE):
        fpu.signal(flags & (X.IE | X.OE | X.UE | 0x40))   # memory and stack untouched
        return
    fpu.mem.write(address, result.to_bytes(_BYTES[kind], "little"))
    fpu.signal(flags)
    if pop:
        fpu.pop()


# -- exchange, conditional move, free, TOP ---------------------------------------------------------------
@x87("fxch")
def fxch(ops, insn, *regs):
    """FXCH ST(i): an empty register takes the QNaN indefinite (masked stack underflow)."""
    ops.call("fpu_exchange", st_index(regs[-1]) if regs else 1)


@call
def fpu_exchange(cpu, i: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    if fpu.underflow(0, i):
        if fpu.unmasked & X.IE:
            return
        for j in (0, i):
            if fpu.empty(j):
                fpu.set(j, X.INDEFINITE)
    else:
        fpu.signal(0)
    a, b = fpu.get(0), fpu.get(i)
    fpu.set(0, b)
    fpu.set(i, a)


_FCMOV = {"fcmovb": "b", "fcmove": "e", "fcmovbe": "be", "fcmovu": "p",
          "fcmovnb": "ae", "fcmovne": "ne", "fcmovnbe": "a", "fcmovnu": "np"}


@x87(*_FCMOV)
def fcmov(ops, insn, dst, src):
    """FCMOVcc ST(0), ST(i): copy when the EFLAGS condition holds; C1 cleared."""
    ops.call("fpu_cmove", ops.cond(_FCMOV[insn.mnemonic]), st_index(src))


@call
def fpu_cmove(cpu, condition: int, i: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    if fpu.underflow(0, i):
        if not fpu.unmasked & X.IE:             # whether or not the condition holds
            fpu.set(0, X.INDEFINITE)
        return
    fpu.signal(0)
    if condition:
        fpu.set(0, fpu.get(i))


@x87("ffree", "ffreep")
def ffree(ops, insn, reg):
    """FFREE ST(i): tag empty; FFREEP (DF C0+i, undocumented) pops as well."""
    ops.call("fpu_free", st_index(reg), int(insn.mnemonic == "ffreep"))


@call
def fpu_free(cpu, i: int, pop: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    fpu.free(i)
    if pop:
        fpu.top = fpu.top + 1


@x87("fincstp", "fdecstp")
def fincstp(ops, insn):
    """TOP + 1 or - 1; tags and contents unchanged, C1 cleared."""
    ops.call("fpu_rotate", 1 if insn.mnemonic == "fincstp" else 7)


@call
def fpu_rotate(cpu, step: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    fpu.signal(0)
    fpu.top = fpu.top + step


# -- environment and state images ------------------------------------------------------------------------
ENV, SAVE = 0, 1


@semantics("fnstenv", "fnsave")
def fnstenv(ops, insn, dst):
    """FNSTENV m14/28byte (then every exception masked), FNSAVE m94/108byte (then FNINIT)."""
    ops.call("fpu_store_state", ops.address(dst), int(insn.mnemonic == "fnsave"), 16 if operand_16bit(insn) else 32)


@call
def fpu_store_state(cpu, address: int, what: int, bits: int) -> None:
    fpu = Fpu(cpu)
    image = fpu.environment(bits)
    if what == SAVE:
        image += fpu.registers_image()
    fpu.mem.write(address, image)
    if what == SAVE:
        fpu.reset()
    else:
        fpu.state.fcw |= EXCEPTIONS


@semantics("fldenv", "frstor")
def fldenv(ops, insn, src):
    """FLDENV m14/28byte, FRSTOR m94/108byte."""
    ops.call("fpu_load_state", ops.address(src), int(insn.mnemonic == "frstor"), 16 if operand_16bit(insn) else 32)


@call
def fpu_load_state(cpu, address: int, what: int, bits: int) -> None:
    fpu = Fpu(cpu)
    size = 14 if bits == 16 else 28
    image = fpu.mem.read(address, size + (80 if what == SAVE else 0))
    fpu.load_environment(image, bits)
    if what == SAVE:
        fpu.load_registers(image[size:])

