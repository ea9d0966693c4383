"""LFS, LGS, LSS, the far CALL and JMP through memory, LAR and LSL (``cpu/semantics/segment.py``), and INT1.

emu runs these cases with Linux's GDT (arch/x86/include/asm/segment.h, the 64-bit layout: kernel CS
0x10 and DS 0x18, user 32-bit CS 0x23, user DS 0x2b, user CS 0x33, a TSS at 0x40, empty TLS slots,
16 entries) and the host, a Linux process at CPL 3, with its own, so each selector means the same on
both.  Far pointers and the slots a far CALL pushes live in the data page, which is compared; a
transfer returns with RETF, so the pushed layout is checked twice.  Cases run stepped, as blocks and
through the LLVM JIT (``harness.compare``).  Compatibility mode is not modelled (the host would enter
it): a far transfer to 0x23 is checked to fault in emu alone.
"""

from __future__ import annotations

import random
import struct
import subprocess

import pytest

from tests.semantics.harness import CODE, DATA, Case, run_emu
from tests.semantics.host import check_host, needs_host
from tests.test_cli import compile_c, emu


def _descriptor(flags_access: int) -> int:
    """A flat segment (base 0, limit 0xFFFFF) with Linux's GDT_ENTRY_INIT flags (0xa09b: G, L, P, code...)."""
    return 0xFFFF | (flags_access & 0xFF) << 40 | 0xF << 48 | (flags_access >> 8 & 0xF0) << 48


LINUX_GDT = b"".join(struct.pack("<Q", d) for d in (
    0, _descriptor(0xC09B), _descriptor(0xA09B), _descriptor(0xC093), _descriptor(0xC0FB), _descriptor(0xC0F3),
    _descriptor(0xA0FB), 0,
    0x0000_8900_0000_0067, 0,                       # the TSS (a 16-byte system descriptor)
    0, 0, 0, 0, 0,                                   # the LDT (absent) and the TLS slots (empty)
    0x0040_F500_0000_0001,                           # CPUNODE: data at DPL 3, its limit the CPU number (1)
))
SELECTORS = (0, 3, 0x2B, 0x28, 0x33, 0x23, 0x10, 0x18, 0x40, 0x63, 0x2C, 0x83, 0x2A)
"""Null (RPL 0 and 3), user data (RPL 3 and 0), user code (64- and 32-bit, readable), kernel code and data
(DPL 0), the TSS, an empty TLS slot, the LDT, past the GDT's limit, user data with RPL 2."""


def case(asm: str, rng: random.Random, data: bytes = b"") -> Case:
    regs = {name: rng.getrandbits(64) for name in ("rax", "rbx", "rcx", "rdx")}
    regs["rsi"] = DATA
    return Case(asm, regs, data=data.ljust(0x100, b"\0") + rng.randbytes(0x200), gdt=LINUX_GDT)


def far_pointer(offset: int, selector: int, size: int) -> bytes:
    return offset.to_bytes(size // 8, "little") + selector.to_bytes(2, "little")


@needs_host
@pytest.mark.parametrize("mnemonic", ["lfs", "lgs", "lss"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_far_pointer_loads_match_the_host(rng, mnemonic, size):
    """The register gets the offset, the segment register the selector (FS and GS: base 0 from the descriptor,
    read back with RDFSBASE/RDGSBASE) or a #GP that changes neither."""
    reg = {16: "cx", 32: "ecx", 64: "rcx"}[size]
    segment = mnemonic[1:]
    read_base = {"fs": "rdfsbase rdx", "gs": "rdgsbase rdx", "ss": "nop"}[segment]
    for selector in SELECTORS:
        pointer = far_pointer(rng.getrandbits(size), selector, size)
        check_host(case(f"{mnemonic} {reg}, [rsi + 0x10]; mov eax, {segment}; {read_base}", rng,
                        bytes(0x10) + pointer))


def _far(kind: str, size: int) -> str:
    """FF /3 (call) or FF /5 (jmp) on [rsi], with the prefix for ``size``: keystone has no spelling for all."""
    prefix = {16: "0x66, ", 32: "", 64: "0x48, "}[size]
    return f".byte {prefix}0xff, {0x1E if kind == 'call' else 0x2E:#x}"


@needs_host
@pytest.mark.parametrize("kind", ["call", "jmp"])
@pytest.mark.parametrize("size", [32, 64])
def test_far_call_and_jmp_through_memory_match_the_host(rng, kind, size):
    """To 0x33 (and 0x30, RPL 0 <= CPL): CS and the stack (in the data page) as the host has them after the
    target ran and RETF came back; to data, kernel or null selectors: #GP before anything is pushed."""
    ret = "retf" if size == 32 else ".byte 0x48, 0xcb"
    offset_store = "mov dword ptr [rsi], eax" if size == 32 else "mov qword ptr [rsi], rax"
    for selector in (0x33, 0x30, 0x2B, 0x10, 0x18, 0, 0x40, 0x83):
        back = f"mov ebx, cs; {ret}" if kind == "call" else "mov ebx, cs; jmp done"
        asm = (f"lea rax, [rip + target]; {offset_store}; mov word ptr [rsi + {size // 8}], {selector}; "
               f"lea rsp, [rsi + 0x200]; {_far(kind, size)}; jmp done; target: {back}; done: mov ecx, cs")
        check_host(case(asm, rng))


@needs_host
def test_a_16_bit_far_call_truncates_the_offset_and_pushes_two_words(rng):
    """66 FF /3: a 16-bit IP below the code page, so both fault fetching there, with RSP 4 bytes lower."""
    for kind in ("call", "jmp"):
        check_host(case(f"mov dword ptr [rsi], 0x330040; lea rsp, [rsi + 0x200]; {_far(kind, 16)}", rng))


@needs_host
def test_a_non_canonical_far_target_faults_at_the_call(rng):
    pointer = far_pointer(0x8000_0000_0000_0000, 0x33, 64)
    for kind in ("call", "jmp"):
        check_host(case(f"lea rsp, [rsi + 0x200]; {_far(kind, 64)}", rng, pointer))


@pytest.mark.parametrize("kind", ["call", "jmp"])
def test_a_far_transfer_to_compatibility_mode_is_refused(rng, kind):
    """Not modelled: the host would run 32-bit code; emu raises #GP at the instruction, nothing pushed."""
    c = case(f"lea rsp, [rsi + 0x200]; {_far(kind, 32)}", rng, far_pointer(CODE, 0x23, 32))
    for blocks, jit in ((False, "off"), (True, "off"), (True, "eager")):
        out = run_emu(c, blocks, jit)
        assert out.faulted and out.regs["rsp"] == DATA + 0x200 and out.data[0x1F0:0x200] == c.data[0x1F0:0x200]


QUERIES = {"lar": ("lar cx, ax", "lar ecx, eax", "lar rcx, eax", "lar ecx, word ptr [rsi + 0x10]"),
           "lsl": (".byte 0x66, 0x0f, 0x03, 0xc8", "lsl ecx, eax", ".byte 0x48, 0x0f, 0x03, 0xc8",
                   ".byte 0x0f, 0x03, 0x4e, 0x10")}
"""16-, 32- and 64-bit destinations, a register and a memory source (keystone spells only some LSL forms)."""


@needs_host
@pytest.mark.parametrize("mnemonic", ["lar", "lsl"])
def test_lar_and_lsl_match_the_host(rng, mnemonic):
    """ZF and the access rights or limit for what CPL 3 may see; ZF clear and the register untouched (its upper
    half too) for the rest.  LSL of Linux's CPUNODE entry (0x78) is the CPU the host runs on: only LAR reads it."""
    for selector in (*SELECTORS, 0x7B, 0x7A, 0x48):
        if mnemonic == "lsl" and selector & 0xFFF8 == 0x78:
            continue
        for asm in QUERIES[mnemonic]:
            c = case(asm, rng, bytes(0x10) + selector.to_bytes(2, "little"))
            c.regs["rax"] = rng.getrandbits(48) << 16 | selector
            check_host(c)


@needs_host
def test_int1_is_a_trap_like_the_host_s(rng):
    for asm in ("int1", "mov eax, 1; int1; mov eax, 2"):
        check_host(case(asm, rng))


INT1_PROGRAM = r"""#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <ucontext.h>
static void on_trap(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    printf("signal %d code %d trapno %lld err %lld\n", sig, info->si_code,
           (long long)uc->uc_mcontext.gregs[REG_TRAPNO], (long long)uc->uc_mcontext.gregs[REG_ERR]);
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, 0);
    __asm__ volatile(".byte 0xf1");
    puts("after int1");
    return 0;
}
"""


@needs_host
def test_a_program_s_int1_gets_the_sigtrap_linux_sends_and_continues_after_it(tmp_path):
    exe = compile_c(tmp_path, "int1", INT1_PROGRAM)
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert native.stdout.endswith("after int1\n")
    emulated = emu("run", str(exe))
    assert (emulated.returncode, emulated.stdout) == (native.returncode, native.stdout)
