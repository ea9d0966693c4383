"""String instructions against unicorn: MOVS STOS LODS CMPS SCAS, every size, with and without
REP/REPE/REPNE, walking up (DF=0) and down (DF=1).

REP forms run with counts 0, 1, 2 and 17, across page boundaries in bulk
(about 5000 bytes), with overlapping source and destination, and into an
unmapped page, where the #PF must leave RCX, RSI and RDI saying how far the
instruction got.  CMPS and SCAS stop at a planted (mis)match.
"""

from __future__ import annotations

import pytest

from cpu.decoder import reg_name
from tests.semantics.harness import DATA, DATA_SIZE, FS_BASE, check, random_flags
from tests.semantics.operands import SIZES, Setup

SUFFIX = {8: "b", 16: "w", 32: "d", 64: "q"}
DF = 0x400
OPS = ("movs", "stos", "lods", "cmps", "scas")


def _mnemonic(op, size, prefix=""):
    """Capstone's and keystone's spelling: keystone knows `movsd` only with explicit operands."""
    text = f"{prefix} {op}{SUFFIX[size]}".strip()
    if size == 32 and op in ("movs", "cmps"):
        operands = "dword ptr [rdi], dword ptr [rsi]" if op == "movs" else "dword ptr [rsi], dword ptr [rdi]"
        text = f"{text} {operands}"
    return text


def _setup(rng, src, dst, acc=None, size=64):
    s = Setup(rng, data_bytes=DATA_SIZE)
    s.set("rsi", DATA + src)
    s.set("rdi", DATA + dst)
    if acc is not None:
        s.reg(reg_name("rax", size), acc)
    return s


def _plant(s, offset, size, value):
    s.mem(offset, size, value)


# -- one element -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("df", [0, DF], ids=["up", "down"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op", OPS)
def test_single_element(rng, op, size, df):
    n = size // 8
    for i in range(10):
        src, dst = rng.randrange(0x10, 0x800), rng.randrange(0x800, 0xFF0)
        s = _setup(rng, src, dst, acc=rng.getrandbits(size), size=size)
        if op in ("cmps", "scas") and i % 2:      # equal operands every other case
            value = rng.getrandbits(size)
            _plant(s, dst, size, value)
            if op == "cmps":
                _plant(s, src, size, value)
            else:
                s.reg(reg_name("rax", size), value)
        if i == 3:                                  # straddle a page boundary
            s.set("rsi", DATA + 0x1000 - n // 2)
        check(s.case(_mnemonic(op, size), random_flags(rng) | df))


@pytest.mark.parametrize("asm", ["movsb byte ptr [rdi], byte ptr fs:[rsi]", "lodsq rax, qword ptr fs:[rsi]",
                                 "cmpsw word ptr fs:[rsi], word ptr [rdi]",
                                 "rep movsb byte ptr [rdi], byte ptr fs:[rsi]",
                                 "rep lodsd eax, dword ptr fs:[rsi]", "repe cmpsb byte ptr fs:[rsi], byte ptr [rdi]"])
def test_segment_override_on_source(rng, asm):
    for df in (0, DF):
        for _ in range(3):
            s = Setup(rng, data_bytes=DATA_SIZE)
            s.set("rsi", 0x100 + rng.randrange(0, 0x40))       # relative to FS_BASE
            s.set("rdi", DATA + 0x100 + rng.randrange(0, 0x40))
            s.set("rcx", rng.choice((0, 1, 5, 17)))
            if "cmps" in asm:                                   # make the compared bytes mostly equal
                src = FS_BASE - DATA + s.regs["rsi"]
                s.data[s.regs["rdi"] - DATA - 0x20:s.regs["rdi"] - DATA + 0x20] = \
                    s.data[src - 0x20:src + 0x20]
            check(s.case(asm, random_flags(rng) | df))


# -- REP MOVS / STOS / LODS ------------------------------------------------------------------------------------

COUNTS = (0, 1, 2, 17)


@pytest.mark.parametrize("df", [0, DF], ids=["up", "down"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op", ("movs", "stos", "lods"))
def test_rep(rng, op, size, df):
    for count in COUNTS:
        for _ in range(3):
            src, dst = rng.randrange(0x200, 0x900), rng.randrange(0xA00, 0x1200)
            s = _setup(rng, src, dst, acc=rng.getrandbits(size), size=size)
            s.set("rcx", count)
            check(s.case(_mnemonic(op, size, "rep"), random_flags(rng) | df))


@pytest.mark.parametrize("asm", ["rep movsb", "rep movsq", "rep stosb", "rep stosw", "rep lodsq"])
@pytest.mark.parametrize("df", [0, DF], ids=["up", "down"])
def test_rep_across_pages(rng, asm, df):
    """About 5000 bytes, crossing page boundaries at unaligned offsets."""
    n = {"b": 1, "w": 2, "d": 4, "q": 8}[asm[-1]]
    count = 5000 // n
    up = not df
    # source 0xC00.., destination 0x10.. going up (the copy runs behind the source, as memmove would allow);
    # going down the pointers start at the top of the same ranges.
    src, dst = (0xC03, 0x11) if up else (0xC03 + 5000 - n, 0x11 + 5000 - n)
    for _ in range(2):
        s = _setup(rng, src, dst, acc=rng.getrandbits(64))
        s.set("rcx", count)
        check(s.case(asm, random_flags(rng) | df))


@pytest.mark.parametrize("asm", ["rep stosw", "rep stosd", "rep stosq"])
@pytest.mark.parametrize("pattern", [0, 0x4242_4242_4242_4242, 0x4242_4242_4242_4243, 0xFF42_4242_4242_4242])
def test_rep_stos_of_one_repeated_byte_and_of_others(rng, asm, pattern):
    """memset's and clear_page's patterns (one byte repeated: the JIT's native path) and near misses, across pages."""
    s = _setup(rng, 0, 0x13, acc=pattern)
    s.set("rcx", 5000 // {"w": 2, "d": 4, "q": 8}[asm[-1]])
    check(s.case(asm, random_flags(rng)))


@pytest.mark.parametrize("distance", [1, 2, 3, 7, 8, 9, 64, -1, -3, -8, -100])
@pytest.mark.parametrize("asm", ["rep movsb", "rep movsw", "rep movsq"])
def test_rep_movs_overlapping(rng, asm, distance):
    """dst = src + distance: a forward copy with dst just ahead replicates the first elements."""
    for df in (0, DF):
        s = _setup(rng, 0x800, 0x800 + distance)
        s.set("rcx", rng.choice((17, 300, 600)))
        check(s.case(asm, random_flags(rng) | df))


FAULTING = {
    "movsb into unmapped": ("mov ecx, 0x300; rep movsb", 0x10, DATA_SIZE - 0x100),
    "movsq into unmapped": ("mov ecx, 0x80; rep movsq", 0x13, DATA_SIZE - 0x1F3),
    "stosd into unmapped": ("mov ecx, 0x400; rep stosd", 0, DATA_SIZE - 0x802),
    "movsb from unmapped": ("mov ecx, 0x300; rep movsb", DATA_SIZE - 0x80, 0x10),
    "lodsw from unmapped": ("mov ecx, 0x300; rep lodsw", DATA_SIZE - 0x81, 0),
    "scasb into unmapped": ("mov ecx, 0x300; repne scasb", 0, DATA_SIZE - 0x40),
    "cmpsq into unmapped": ("mov ecx, 0x300; repe cmpsq", DATA_SIZE - 0x40, DATA_SIZE - 0x40),
    "stosb down into unmapped": ("std; mov ecx, 0x300; rep stosb", 0, 0x40),
    "movsq down from unmapped": ("std; mov ecx, 0x300; rep movsq", 0x43, 0x1800),
    "movsw down into unmapped": ("std; mov ecx, 0x300; rep movsw", 0x1800, 0x81),
    "lodsd down from unmapped": ("std; mov ecx, 0x300; rep lodsd", 0x102, 0),
}


@pytest.mark.parametrize("form", FAULTING)
def test_rep_page_fault_is_restartable(rng, form):
    """A #PF part-way leaves RCX/RSI/RDI at the first element not done (the SDM's interruptible REP)."""
    asm, src, dst = FAULTING[form]
    s = _setup(rng, src, dst, acc=0x1FF)      # an AL that scasb never finds in zero-filled padding
    s.data[DATA_SIZE - 0x200:] = bytes(0x200)
    check(s.case(asm, random_flags(rng)))


def test_repne_movs_is_rep(rng):
    """F2 on MOVS/STOS/LODS repeats like F3 (as hardware and QEMU do)."""
    for asm in (".byte 0xf2, 0xa4", ".byte 0xf2, 0x48, 0xab", ".byte 0xf2, 0xac"):
        s = _setup(rng, 0x100, 0x400, acc=rng.getrandbits(64))
        s.set("rcx", 9)
        check(s.case(asm, random_flags(rng)))


# -- REPE / REPNE CMPS and SCAS ------------------------------------------------------------------------------------

def _compare_case(rng, op, prefix, size, df, count, stop):
    """Two runs of ``count`` elements; for REPE they agree except at ``stop``, for REPNE they differ except there."""
    n = size // 8
    src_lo, dst_lo = 0x300, 0x900
    s = _setup(rng, src_lo, dst_lo, size=size)
    element = rng.getrandbits(size)
    for i in range(max(count, 1) + 1):
        a = rng.getrandbits(size)
        if prefix == "repe":
            b = a if i != stop else a ^ (1 << rng.randrange(size))
        else:
            b = a if i == stop else a ^ (1 << rng.randrange(size))
        if op == "scas":                      # the accumulator is the same for every element
            a = element
            b = element if (i == stop) == (prefix == "repne") else element ^ (1 << rng.randrange(size))
        index = i if not df else -i
        _plant(s, src_lo + 0x100 + index * n, size, a)
        _plant(s, dst_lo + 0x100 + index * n, size, b)
    s.set("rsi", DATA + src_lo + 0x100)
    s.set("rdi", DATA + dst_lo + 0x100)
    s.reg(reg_name("rax", size), element)
    s.set("rcx", count)
    return s.case(_mnemonic(op, size, prefix), random_flags(rng) | df)


@pytest.mark.parametrize("df", [0, DF], ids=["up", "down"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("prefix", ["repe", "repne"])
@pytest.mark.parametrize("op", ["cmps", "scas"])
def test_rep_compare(rng, op, prefix, size, df):
    for count in COUNTS:
        for stop in sorted({0, 1, count // 2, count - 1, count + 5}):
            check(_compare_case(rng, op, prefix, size, df, count, stop))


def test_strlen_and_memcmp_idioms(rng):
    for _ in range(8):
        s = Setup(rng, data_bytes=DATA_SIZE)
        length = rng.randrange(0, 3000)
        s.data[0x100:0x100 + length] = bytes(rng.randrange(1, 256) for _ in range(length))
        s.data[0x100 + length] = 0
        s.set("rdi", DATA + 0x100)
        check(s.case("xor eax, eax; mov rcx, -1; repne scasb; not rcx; dec rcx"))
        s.set("rsi", DATA + 0x100)
        s.set("rdi", DATA + 0x100 + rng.choice((0, 1, length // 2)))
        check(s.case(f"mov ecx, {length}; repe cmpsb; seta al; setb bl"))


def test_mixed_block(rng):
    """String instructions between ordinary ones in one block: state flows through the REP call and back."""
    for _ in range(10):
        s = _setup(rng, 0x100, 0x900, acc=rng.getrandbits(64))
        check(s.case("mov ecx, 33; add rax, 1; rep stosb; cmp rax, rbx; mov ecx, 5; rep movsd dword ptr [rdi], "
                     "dword ptr [rsi]; setl dl; lodsw; scasb; cmovne r8, r9", random_flags(rng)))


FUZZ_CASES = 13_000


# -- fuzz -------------------------------------------------------------------------------------------------------------

@pytest.mark.fuzz
def test_fuzz_string(rng):
    for _ in range(FUZZ_CASES):
        size = rng.choice(SIZES)
        df = rng.choice((0, DF))
        op = rng.choice(OPS)
        if op in ("cmps", "scas") and rng.random() < 0.7:
            count = rng.choice((0, 1, 2, 3, 17, 100))
            check(_compare_case(rng, op, rng.choice(("repe", "repne")), size, df, count, rng.randrange(0, count + 3)))
            continue
        s = _setup(rng, rng.randrange(0x400, 0xC00), rng.randrange(0x400, 0xC00), acc=rng.getrandbits(size),
                   size=size)
        s.set("rcx", rng.choice((0, 1, 2, 17, rng.randrange(0, 100), rng.randrange(0, 0x2000 >> (size // 16)))))
        prefix = rng.choice(("", "rep"))
        check(s.case(_mnemonic(op, size, prefix), random_flags(rng) | df))
