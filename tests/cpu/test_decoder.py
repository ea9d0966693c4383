"""The decoder's normalised records, including where it corrects capstone."""

from __future__ import annotations

import random
import struct

import capstone
from capstone.x86_const import X86_OP_IMM, X86_OP_REG

from cpu.decoder import Decoder, Kind
from cpu.disassembly import Disassembler, RawInsn
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


def _from_binding(ci) -> RawInsn:
    """What capstone's Python binding (``CsInsn``) says of an instruction, as :class:`RawInsn` holds it."""
    operands = []
    for op in ci.operands:
        if op.type == X86_OP_REG:
            operands.append((op.type, op.size, op.reg, 0, 0, 0, 0, 0, 0))
        elif op.type == X86_OP_IMM:
            operands.append((op.type, op.size, 0, op.imm, 0, 0, 0, 0, 0))
        else:
            m = op.mem
            operands.append((op.type, op.size, 0, 0, m.segment, m.base, m.index, m.scale, m.disp))
    return RawInsn(ci.id, ci.address, ci.size, bytes(ci.bytes), ci.mnemonic, ci.op_str, bytes(ci.prefix),
                   capstone.CS_GRP_BRANCH_RELATIVE in ci.groups, tuple(operands))


def test_capstone_read_directly_says_what_its_python_binding_says() -> None:
    """cpu.disassembly reads capstone's C structures itself: held to the binding on real code (busybox's, at
    every byte offset, so that prefixes, VEX, SIB and odd encodings all occur) and on random bytes."""
    from tests.cpu.test_codecache import _busybox_code

    binding = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    binding.detail = True
    direct = Disassembler()
    code, address = _busybox_code()
    windows = [(code[i:i + 15], address + i) for i in range(len(code) - 15)]
    rng = random.Random(7)
    windows += [(rng.randbytes(15), rng.getrandbits(64)) for _ in range(20000)]
    windows += [(bytes.fromhex("c4e27d18") + rng.randbytes(11), 0xFFFFFFFF81000000) for _ in range(2000)]
    windows += [(bytes.fromhex(prefix) + bytes([imm]) + bytes(10), 0x401000)     # CMPccPS..., VCMPccPS...: pseudo-ops
                for prefix in ("0fc2c1", "660fc2c1", "f30fc2c1", "f20fc2c1", "0fc24608", "c5f0c2c2", "c5f1c2c2",
                               "c5f2c2c2", "c5f3c2c2", "c5f4c2c2", "c5f5c2c2", "c5f2c24608")
                for imm in range(256)]
    decoded = 0
    for window, at in windows:
        expected = next((_from_binding(ci) for ci in binding.disasm(window, at, 1)), None)
        assert direct.decode(window, at) == expected, (window.hex(), hex(at))
        decoded += expected is not None
    assert decoded > 20000
