"""Data movement against unicorn: MOV (every form, FS/GS, RIP-relative, moffs), MOVZX/MOVSX/MOVSXD,
LEA, XCHG, BSWAP, CMOVcc, SETcc, CBW..CQO and the no-operation family.

Conditions are tested twice: from random initial flags, and from flags
that an arithmetic or logical instruction earlier in the same snippet
produced, which is where the block translator specialises a condition on
its producer (``cmp; jl`` becomes one signed comparison).
"""

from __future__ import annotations

import pytest

from cpu.decoder import parse_reg
from cpu.flags import CONDITIONS, Flag
from tests.semantics.harness import BOUNDARY, DATA, FS_BASE, check, random_flags, values
from tests.semantics.operands import PTR, SIZES, Setup, name, pairs, signed_imm


def _imm(v, size):
    """``v`` cut to the immediate a MOV of ``size`` bits can hold (imm32 sign-extended for 64)."""
    width = min(size, 32)
    return signed_imm(v & ((1 << width) - 1), width)


# -- MOV -------------------------------------------------------------------------------------------------

MOV_FORMS = {
    "r,r": lambda s, v, n: f"mov {name('rax', n)}, {s.reg(name('rbx', n), v)}",
    "rex r,r": lambda s, v, n: f"mov {name('r9', n)}, {s.reg(name('rdi', n), v)}",
    "r,imm": lambda s, v, n: f"mov {name('rcx', n)}, {v if n < 64 else signed_imm(v & 0xFFFFFFFF, 32)}",
    "r,m": lambda s, v, n: f"mov {name('rdx', n)}, {s.mem(0x19, n, v)}",
    "m,r": lambda s, v, n: f"mov {s.mem(0x27, n, s.rng.getrandbits(n))}, {s.reg(name('r10', n), v)}",
    "m,imm": lambda s, v, n: f"mov {s.mem(0x30, n, 0)}, {_imm(v, n)}",
    "moffs load": lambda s, v, n: f"movabs {name('rax', n)}, {PTR[n]} ptr [{DATA + 0x48:#x}]",
    "moffs store": lambda s, v, n: f"movabs {PTR[n]} ptr [{DATA + 0x51:#x}], {s.reg(name('rax', n), v)}",
    "fs load": lambda s, v, n: f"mov {name('rbp', n)}, {PTR[n]} ptr fs:[rbx + 8]",
    "fs store": lambda s, v, n: f"mov {PTR[n]} ptr fs:[rbx + 0x10], {s.reg(name('r12', n), v)}",
    "fs absolute": lambda s, v, n: f"mov {name('r13', n)}, {PTR[n]} ptr fs:[0x20]",
    "gs store": lambda s, v, n: f"mov {PTR[n]} ptr gs:[rdi], {s.reg(name('r11', n), v)}",
    "rip load": lambda s, v, n: f"mov {name('r14', n)}, {PTR[n]} ptr [rip + 0x10000]",
    "rip store": lambda s, v, n: f"mov {PTR[n]} ptr [rip + 0x10000], {s.reg(name('r15', n), v)}",
    "rip imm": lambda s, v, n: f"mov {PTR[n]} ptr [rip + 0x10100], {_imm(v, n)}",
}
MOV_HIGH = {
    "ah,bl": "mov ah, bl", "al,ch": "mov al, ch", "bh,ah": "mov bh, ah", "sil,r9b": "mov sil, r9b",
    "dh,imm": "mov dh, 0x9c",
}


def _mov_setup(s):
    s.set("rbx", 0x40)         # fs:[rbx + ...] lands in the data page (FS_BASE is inside it)
    s.set("rdi", DATA + 0x60)  # gs base is 0: gs:[rdi] is an absolute address
    return s


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", MOV_FORMS)
def test_mov(rng, size, form):
    for v in values(size, rng, 10):
        s = _mov_setup(Setup(rng, data_bytes=0x200))
        check(s.case(MOV_FORMS[form](s, v, size), random_flags(rng)))


@pytest.mark.parametrize("form", MOV_HIGH)
def test_mov_byte_registers(rng, form):
    for _ in range(8):
        check(Setup(rng).case(MOV_HIGH[form]))


def test_movabs_imm64(rng):
    for v in values(64, rng, 12):
        check(Setup(rng).case(f"movabs r11, {v:#x}"))


def test_fs_base_is_inside_data():
    assert DATA <= FS_BASE < DATA + 0x1000


ADDRESSING = (
    "[rbx]", "[rbx + 0x7f]", "[rbx - 0x80]", "[rbx + 0x1000]", "[rbx + rcx]", "[rbx + rcx*2 + 8]",
    "[rbx + rcx*4 - 0x100]", "[rbx + rcx*8 + 0x10]", "[r12]", "[r13]", "[rbp]", "[rbp + r13*4]",
    "[r12 + r13*8 + 0x44]", "[rcx*8 + {D}]", "[rcx*2 + {D}]",
)


@pytest.mark.parametrize("mode", ADDRESSING)
def test_mov_addressing_forms(rng, mode):
    """Loads and stores through each encoding of base/index/scale/displacement."""
    for i in range(10):
        s = Setup(rng, data_bytes=0x1400)
        index = rng.randrange(0, 0x40)
        for base in ("rbx", "r12", "r13", "rbp"):
            s.set(base, DATA + 0x100 + rng.randrange(0, 0x100))
        s.set("rcx", index)
        s.set("r13", index if "r13*" in mode else s.regs["r13"])
        operand = mode.replace("{D}", hex(DATA + 0x80))
        if i % 2:
            asm = f"mov rax, qword ptr {operand}"
        else:
            asm = f"mov dword ptr {operand}, {s.reg('edx', rng.getrandbits(32))}"
        check(s.case(asm))


# -- MOVZX / MOVSX / MOVSXD --------------------------------------------------------------------------------

EXTEND = [(op, dst, src) for op in ("movzx", "movsx") for dst, src in ((16, 8), (32, 8), (64, 8), (32, 16), (64, 16))]
EXTEND += [("movsxd", 64, 32)]


# Only byte registers have a high form, and REX.W makes BH unencodable.
EXTEND_FORMS = [(op, dst, src, source) for op, dst, src in EXTEND for source in ("reg", "mem", "high")
                if source != "high" or (src == 8 and dst != 64)]


@pytest.mark.parametrize("op,dst,src,source", EXTEND_FORMS, ids=str)
def test_extending_moves(rng, op, dst, src, source):
    for v in values(src, rng, 10):
        s = Setup(rng)
        if source == "reg":
            operand = s.reg(name("r9", src), v)
        elif source == "high":
            operand = s.reg("bh", v)
        else:
            operand = s.mem(0x13, src, v)
        check(s.case(f"{op} {name('rcx', dst)}, {operand}"))


# -- LEA --------------------------------------------------------------------------------------------------

LEA_MODES = (
    "[rbx]", "[rbx + 0x7f]", "[rbx - 0x80]", "[rbx + 0x12345678]", "[rbx - 0x7fffffff]", "[rbx + rcx]",
    "[rbx + rcx*2 + 8]", "[rbx + rcx*4 - 0x1000]", "[rcx*8]", "[rcx*8 + 0x10]", "[rcx*2 - 1]", "[rcx*4]",
    "[rip + 0x100]", "[rip - 0x10]", "[r12]", "[r13]", "[rbp]", "[rsp + 8]", "[r12 + r13*8 + 0x44]",
    "[rsp + rbp]", "[0x1234]", "[rbx + rbx*4]", "[ebx + ecx*4 + 8]", "[ebx - 1]", "[r8d + r9d]",
)


@pytest.mark.parametrize("size", (16, 32, 64))
@pytest.mark.parametrize("mode", LEA_MODES)
def test_lea(rng, mode, size):
    for i, (base, index) in enumerate(pairs(64, rng, 0)[:12]):
        s = Setup(rng)
        for r in ("rbx", "r12", "rbp", "r8"):
            s.set(r, base if i % 2 else rng.getrandbits(64))
        for r in ("rcx", "r13", "r9"):
            s.set(r, index)
        check(s.case(f"lea {name('rax', size)}, {mode}"))


# -- XCHG, BSWAP -------------------------------------------------------------------------------------------

XCHG_FORMS = {
    "r,r": lambda s, a, b, n: f"xchg {s.reg(name('rcx', n), a)}, {s.reg(name('r9', n), b)}",
    "acc,r": lambda s, a, b, n: f"xchg {s.reg(name('rax', n), a)}, {s.reg(name('rbx', n), b)}",
    "m,r": lambda s, a, b, n: f"xchg {s.mem(0x18, n, a)}, {s.reg(name('rdx', n), b)}",
    "r,m": lambda s, a, b, n: f"xchg {s.reg(name('r12', n), b)}, {s.mem(0x28, n, a)}",
    "same": lambda s, a, b, n: f"xchg {s.reg(name('rbx', n), a)}, {name('rbx', n)}",
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", XCHG_FORMS)
def test_xchg(rng, size, form):
    for a, b in zip(values(size, rng, 8), values(size, rng, 8)[::-1], strict=True):
        s = Setup(rng)
        check(s.case(XCHG_FORMS[form](s, a, b, size)))


@pytest.mark.parametrize("asm", ["xchg ah, al", "xchg bh, cl", "xchg eax, eax", "xchg r8d, eax", "xchg ax, ax"])
def test_xchg_special(rng, asm):
    for _ in range(6):
        check(Setup(rng).case(asm))


@pytest.mark.parametrize("reg", ["eax", "ebx", "r8d", "r15d", "rax", "rsi", "r9", "r15"])
def test_bswap(rng, reg):
    for v in values(64, rng, 8):
        s = Setup(rng)
        s.set(parse_reg(reg)[0], v)
        check(s.case(f"bswap {reg}"))


# -- CMOVcc, SETcc from random flags -------------------------------------------------------------------------

def _cond_flags(rng, i):
    """Random flags; every 4th case one of the interesting corners (all clear, all set, SF=OF...)."""
    corners = (0x202, 0x202 | 0x8D5, 0x202 | 0x880, 0x202 | 0x041, 0x202 | 0x800, 0x202 | 0x080)
    return corners[(i // 4) % len(corners)] if i % 4 == 0 else random_flags(rng)


@pytest.mark.parametrize("source", ["reg", "mem"])
@pytest.mark.parametrize("size", (16, 32, 64))
@pytest.mark.parametrize("cc", CONDITIONS)
def test_cmovcc(rng, cc, size, source):
    for i in range(10):
        s = Setup(rng)
        src = s.reg(name("rbx", size), rng.getrandbits(size)) if source == "reg" else s.mem(
            0x20, size, rng.getrandbits(size))
        check(s.case(f"cmov{cc} {name('r10', size)}, {src}", _cond_flags(rng, i)))


@pytest.mark.parametrize("dst", ["cl", "ah", "r9b", "mem"])
@pytest.mark.parametrize("cc", CONDITIONS)
def test_setcc(rng, cc, dst):
    for i in range(10):
        s = Setup(rng)
        operand = s.mem(0x21, 8, 0xAA) if dst == "mem" else dst
        check(s.case(f"set{cc} {operand}", _cond_flags(rng, i)))


@pytest.mark.parametrize("alias", ["c", "nae", "nc", "nb", "z", "nz", "na", "nbe", "pe", "po", "nge", "nl", "ng",
                                   "nle"])
def test_condition_aliases(rng, alias):
    for i in range(6):
        check(Setup(rng).case(f"set{alias} al; cmov{alias} rcx, rdx", _cond_flags(rng, i)))


# -- conditions on flags produced in the same block -------------------------------------------------------------

_LOGIC_AF = int(Flag.AF)
"""AF is undefined after a logical instruction."""
PRODUCERS = ("add", "sub", "cmp", "and", "test", "inc", "dec", "adc", "sbb", "neg", "or", "xor")
UNARY_PRODUCERS = ("inc", "dec", "neg")


def _producer_case(s, producer, cc, consumer, size, a, b):
    ra, rb = name("rax", size), name("rbx", size)
    s.reg(ra, a)
    s.reg(rb, b)
    produce = f"{producer} {ra}" if producer in UNARY_PRODUCERS else f"{producer} {ra}, {rb}"
    if consumer == "setcc":
        return f"{produce}; set{cc} cl"
    if consumer == "cmovcc":
        dst = ra if size > 8 else "ecx"   # the consumer also reads the producer's (pending) result
        return f"{produce}; cmov{cc} {dst}, {name('rdx', max(size, 16) if size > 8 else 32)}"
    return f"{produce}; j{cc} taken; mov ecx, 1; jmp done; taken: mov ecx, 2; done: nop"


def _producer_pairs(rng, size, count):
    """Equal operands, boundary values and random ones: each condition comes out both ways."""
    out = [(x, x) for x in BOUNDARY[size][:3]]
    out += rng.sample(pairs(size, rng, 0), k=min(count, len(BOUNDARY[size]) ** 2))
    return out[:count]


@pytest.mark.parametrize("cc", CONDITIONS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_condition_after_producer(rng, producer, cc):
    i = 0
    for size in SIZES:
        for a, b in _producer_pairs(rng, size, 4):
            s = Setup(rng)
            consumer = ("setcc", "jcc", "cmovcc")[i % 3]
            i += 1
            check(s.case(_producer_case(s, producer, cc, consumer, size, a, b), random_flags(rng),
                         undefined=_LOGIC_AF if producer in ("and", "test", "or", "xor") else 0))


SHIFT_PRODUCERS = ("shl {r}, 1", "shr {r}, 1", "sar {r}, 1", "rol {r}, 1", "ror {r}, 1",
                   "shl {r}, 3", "shr {r}, 5", "sar {r}, 7", "shl {r}, cl", "sar {r}, cl")
_READS_OF = ("o", "no", "l", "ge", "le", "g")


# OF is undefined after a count other than 1, so conditions reading it follow 1-bit shifts only.
SHIFT_PAIRS = [(producer, cc) for producer in SHIFT_PRODUCERS for cc in CONDITIONS
               if cc not in _READS_OF or producer.endswith(", 1")]


@pytest.mark.parametrize("producer,cc", SHIFT_PAIRS, ids=str)
def test_condition_after_shift(rng, producer, cc):
    """Shifts and rotates as producers of every condition."""
    for size in SIZES:
        s = Setup(rng)
        s.reg(name("rax", size), rng.choice(BOUNDARY[size] + [rng.getrandbits(size)]))
        s.reg("cl", rng.choice((0, 1, 2, size - 1)))
        asm = f"{producer.format(r=name('rax', size))}; set{cc} dl; cmov{cc} r8, r9"
        check(s.case(asm, random_flags(rng), int(Flag.AF | (0 if producer.endswith(", 1") else Flag.OF))))


def test_flags_survive_non_flag_instructions(rng):
    """mov/lea/push between a producer and its consumer change nothing."""
    for a, b in pairs(64, rng, 6):
        s = Setup(rng)
        s.set("rax", a)
        s.set("rbx", b)
        check(s.case("cmp rax, rbx; mov rcx, rax; lea rdx, [rcx + 1]; setl r8b; setb r9b; seto r10b; setp r11b",
                     random_flags(rng)))


# -- CBW..CQO, NOP ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mnemonic", ["cbw", "cwde", "cdqe", "cwd", "cdq", "cqo"])
def test_sign_extend_accumulator(rng, mnemonic):
    for v in values(64, rng, 6) + [0x80, 0x7F, 0x8000, 0x7FFF, 0x8000_0000, 0x7FFF_FFFF]:
        s = Setup(rng)
        s.set("rax", v)
        check(s.case(mnemonic))


@pytest.mark.parametrize("asm", ["nop", "nop dword ptr [rax + rax]", "nop word ptr [rax + rax + 0x100]", "pause",
                                 ".byte 0xf3, 0x0f, 0x1e, 0xfa", "lfence", "mfence", "sfence",
                                 "prefetcht0 byte ptr [rsi]", "prefetchnta byte ptr [rsi]"])
def test_no_operation(rng, asm):
    for _ in range(3):
        check(Setup(rng).case(asm, random_flags(rng)))


FUZZ_CASES = 60_000


# -- fuzz -------------------------------------------------------------------------------------------------------

@pytest.mark.fuzz
def test_fuzz_datamov(rng):
    for _ in range(FUZZ_CASES):
        s = _mov_setup(Setup(rng, data_bytes=0x200))
        kind = rng.random()
        size = rng.choice(SIZES)
        if kind < 0.3:
            asm = MOV_FORMS[rng.choice(list(MOV_FORMS))](s, rng.getrandbits(size), size)
            flags = random_flags(rng)
        elif kind < 0.5:
            size = rng.choice((16, 32, 64))
            asm = f"cmov{rng.choice(CONDITIONS)} {name('r10', size)}, {s.reg(name('rbx', size), rng.getrandbits(size))}"
            flags = random_flags(rng)
        elif kind < 0.6:
            for r in ("rbx", "rcx", "r12", "r13", "rbp", "r8", "r9"):
                s.set(r, rng.getrandbits(64))
            asm = f"lea {name('rax', rng.choice((16, 32, 64)))}, {rng.choice(LEA_MODES)}"
            flags = 0x202
        else:
            producer, cc = rng.choice(PRODUCERS), rng.choice(CONDITIONS)
            consumer = rng.choice(("setcc", "jcc", "cmovcc"))
            a, b = rng.getrandbits(size), rng.getrandbits(size)
            if rng.random() < 0.2:
                b = a
            asm = _producer_case(s, producer, cc, consumer, size, a, b)
            flags = random_flags(rng)
        check(s.case(asm, flags, undefined=_LOGIC_AF if asm.split()[0] in ("and", "test", "or", "xor") else 0))
