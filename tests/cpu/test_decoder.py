"""The decoder's normalised records, including where it corrects capstone."""

from __future__ import annotations

import struct

from cpu.decoder import Decoder, Kind
from tests.semantics.harness import DATA, Case, check


def decode(hex_bytes: str):
    return Decoder().decode_bytes(bytes.fromhex(hex_bytes), 0x401000)


def test_registers_are_named_by_their_containing_register_with_size_and_high_byte() -> None:
    insn = decode("88 dc")                       # mov ah, bl
    dst, src = insn.operands
    assert (dst.reg, dst.size, dst.high) == ("rax", 8, True)
    assert (src.reg, src.size, src.high) == ("rbx", 8, False)


def test_memory_operands_carry_segment_base_index_scale_displacement_and_size() -> None:
    insn = decode("64 48 8b 44 88 f8")           # mov rax, qword ptr fs:[rax + rcx*4 - 8]
    mem = insn.operands[1]
    assert (mem.kind, mem.seg, mem.base, mem.index, mem.scale, mem.disp, mem.size) == \
        (Kind.MEM, "fs", "rax", "rcx", 4, -8, 64)


def test_immediates_are_masked_to_the_operand_size() -> None:
    assert decode("48 83 c0 ff").operands[1].imm == (1 << 64) - 1    # add rax, -1


def test_an_address_size_prefix_gives_a_32_bit_effective_address() -> None:
    assert decode("67 8b 00").operands[1].asize == 32                 # mov eax, dword ptr [eax]


def test_comisd_reads_eight_bytes_of_memory_which_need_no_alignment() -> None:
    assert decode("66 0f 2f 40 08").operands[1].size == 64            # comisd xmm0, qword ptr [rax + 8]
    data = struct.pack("<dd", 0.0, 1.5)         # 1.5 at DATA + 8: misaligned for a 16-byte access
    check(Case("comisd xmm0, qword ptr [rax + 8]", {"rax": DATA}, xmm={0: 0x3FF8_0000_0000_0000}, data=data))


def test_far_indirect_jumps_and_calls_are_not_mistaken_for_near_ones() -> None:
    assert decode("ff 2e").mnemonic == "ljmp"          # jmp m16:32 (capstone: "jmp ptr [rsi]")
    assert decode("ff 1e").mnemonic == "lcall"
    assert decode("ff 26").mnemonic == "jmp"           # jmp qword ptr [rsi]: near
    assert decode("ff e0").mnemonic == "jmp"           # jmp rax
    assert decode("e9 ff 69 f8 ff").mnemonic == "jmp"  # jmp rel32 whose displacement holds FF /5-like bytes
    assert decode("48 ff 2e").mnemonic == "ljmp"
