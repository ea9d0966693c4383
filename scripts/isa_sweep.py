#!/usr/bin/env python3
"""Walk the x86-64 opcode maps with capstone and list every instruction emu has no semantics for.

The maps are those of the Intel SDM Vol. 2, appendix A: one-byte, two-byte (0F), three-byte (0F 38
and 0F 3A), each opcode tried with no prefix, 66, F3, F2 and REX.W, and with ModRM bytes covering
every register form (mod = 3, all reg and rm) and a memory form for each reg field; then the VEX
maps (0F, 0F 38, 0F 3A, with each pp, L and W).  The EVEX (AVX-512) and XOP maps are not walked.
capstone's name for each decoded instruction (the name ``cpu.semantics`` registers) is looked up in
``cpu.semantics.SEMANTICS`` and, to be sure the form is handled (an MMX form shares its name with
the SSE2 one), decoded by emu and run through its semantics symbolically.  Instructions emu
implements are grouped by their CPUID feature (``cpu.semantics.FEATURES``, the baseline when
none), the others by the extension capstone assigns them, with why emu lacks them (:data:`WHY`).

    python3 scripts/isa_sweep.py                        # the Markdown lists docs/isa.md is made from
    python3 scripts/isa_sweep.py --write docs/isa.md    # put them there
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import capstone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpu.backends.symbolic import SymbolicOps  # noqa: E402
from cpu.cpuid import level  # noqa: E402
from cpu.decoder import Decoder  # noqa: E402
from cpu.exceptions import GuestFault  # noqa: E402
from cpu.semantics import FEATURES, load_all  # noqa: E402

PREFIXES = (b"", b"\x66", b"\xf3", b"\xf2", b"\x48")
NOT_OPCODES = frozenset([0x0F, 0x26, 0x2E, 0x36, 0x3E, 0x62, 0x64, 0x65, 0x66, 0x67, 0xC4, 0xC5, 0xF0, 0xF2, 0xF3,
                         *range(0x40, 0x50)])
"""One-byte values that are prefixes or escapes in 64-bit mode, not opcodes."""
MODRM = tuple(range(0xC0, 0x100)) + tuple(reg << 3 for reg in range(8))
TAIL = bytes(8)
"""Displacement and immediate bytes after the ModRM byte: zeros."""

GROUP_FEATURE = {"fpu": "x87", "mmx": "mmx", "3dnow": "3dnow", "sse1": "sse", "sse2": "sse2", "sse3": "sse3",
                 "ssse3": "ssse3", "sse41": "sse4_1", "sse42": "sse4_2", "sse4a": "sse4a", "aes": "aes",
                 "pclmul": "pclmulqdq", "sha": "sha", "avx": "avx", "avx2": "avx2", "fma": "fma", "fma4": "fma4",
                 "f16c": "f16c", "fc16": "f16c", "bmi": "bmi1", "bmi2": "bmi2", "adx": "adx", "vm": "vmx", "vtx": "vmx",
                 "svm": "svm", "sgx": "sgx", "rtm": "tsx", "hle": "tsx", "fsgsbase": "fsgsbase", "tbm": "tbm",
                 "xop": "xop", "privilege": "system", "cet": "cet", "mpx": "mpx", "gfni": "gfni",
                 "vaes": "vaes", "vpclmulqdq": "vpclmulqdq", "avx512": "avx512", "bwi": "avx512", "dqi": "avx512"}
"""capstone instruction groups (``CsInsn.group_name``) -> the extension name used here."""

BY_NAME = {
    **{m: "system" for m in ("invlpga", "vmcall", "vmfunc", "monitor", "mwait", "monitorx", "mwaitx", "rdpkru",
                             "wrpkru", "clac", "stac", "encls", "enclu", "xsaves", "xrstors", "xsaves64",
                             "xrstors64", "rdpmc", "sysenter", "sysexit", "invpcid", "rsm", "getsec", "wbinvd",
                             "wbnoinvd", "invd", "lmsw", "smsw", "sldt", "str", "lldt", "ltr", "verr", "verw",
                             "lar", "lsl", "clts", "swapgs", "rdmsr", "wrmsr", "sysret", "sysretq", "iretq",
                             "xsetbv", "serialize", "uiret", "testui", "clui", "stui", "senduipi", "tpause",
                             "umonitor", "umwait", "hreset", "pconfig", "rdpru", "rdtscp", "invlpg",
                             "incsspd", "incsspq", "rdsspd", "rdsspq", "saveprevssp", "rstorssp", "wrssd",
                             "wrssq", "wrussd", "wrussq", "setssbsy", "clrssbsy", "endbr32", "endbr64")},
    **{m: "vmx" for m in ("vmclear", "vmlaunch", "vmptrld", "vmptrst", "vmread", "vmresume", "vmwrite", "vmxoff",
                          "vmxon")},
    **{m: "svm" for m in ("vmrun", "vmload", "vmsave", "vmmcall")},
    **{m: "xop" for m in ("vpermil2pd", "vpermil2ps")},
    **{m: "x87" for m in ("fwait", "wait", "ffreep", "fnstsw", "fnstcw", "fnclex", "fninit", "fnstenv", "fnsave")},
    **{m: "xsave" for m in ("xsave", "xrstor", "xsave64", "xrstor64", "xgetbv")},
    **{m: "xsaveopt" for m in ("xsaveopt", "xsaveopt64")},
    **{m: "xsavec" for m in ("xsavec", "xsavec64")},
    **{m: "cache control" for m in ("clflushopt", "clwb", "cldemote", "clzero", "prefetchw", "prefetchwt1",
                                    "movdiri", "movdir64b", "enqcmd", "enqcmds", "ptwrite", "pcommit")},
}
"""Extensions of instructions capstone puts in no (or a too general) group."""

GAP = "not implemented yet, though part of the baseline every level advertises: a program using them gets SIGILL"
WHY = {
    "baseline": GAP, "sse": GAP, "sse2": GAP,
    "system": "system instruction emu's machine does not model (virtualization, protection keys, SMAP, "
              "shadow stacks, performance counters, SYSENTER, ...), or that the interpreter handles itself",
    "x87": "x87 floating point (the x87/MMX work adds them)",
    "mmx": "MMX (the x87/MMX work adds them; not advertised until then)",
    "3dnow": "AMD 3DNow!: out of scope (no Intel CPU has it)",
    "sse4a": "AMD SSE4a: out of scope (not in the psABI levels)",
    "fma4": "AMD FMA4: out of scope", "xop": "AMD XOP: out of scope", "tbm": "AMD TBM: out of scope",
    "svm": "AMD-V virtualization: out of scope", "vmx": "VT-x virtualization: out of scope",
    "sgx": "SGX enclaves: out of scope", "tsx": "TSX transactional memory: out of scope (not advertised)",
    "padlock": "VIA PadLock: out of scope",
    "mpx": "MPX bounds (removed from recent CPUs and compilers): out of scope", "cet": "CET: out of scope",
    "cache control": "cache and store-ordering hints: not advertised",
    "gfni": "GFNI: not in the psABI levels, not advertised", "vaes": "VAES: not advertised",
    "vpclmulqdq": "VPCLMULQDQ: not advertised",
    "avx512": "AVX-512: out of scope (EVEX is not decoded by the sweep)",
}
"""Why an extension's instructions have no semantics; others: "not implemented yet (not advertised)"."""


def _candidates() -> Iterator[tuple[str, bytes]]:
    """(map name, instruction bytes) for every opcode, prefix and representative ModRM."""
    for prefix in PREFIXES:
        for opcode in range(256):
            if opcode not in NOT_OPCODES:
                for modrm in MODRM:
                    yield "one-byte", prefix + bytes([opcode, modrm]) + TAIL
            for escape, name in ((b"\x0f", "0F"), (b"\x0f\x38", "0F 38"), (b"\x0f\x3a", "0F 3A")):
                for modrm in MODRM:
                    yield name, prefix + escape + bytes([opcode, modrm]) + TAIL
    for map_select, name in ((1, "VEX 0F"), (2, "VEX 0F 38"), (3, "VEX 0F 3A")):
        for w in (0, 1):
            for length in (0, 1):
                for pp in range(4):
                    vex = bytes([0xC4, 0xE0 | map_select, (w << 7) | (0xF << 3) | (length << 2) | pp])
                    for opcode in range(256):
                        for modrm in (0xC1, *(reg << 3 for reg in range(8)), *(0xC1 | reg << 3 for reg in range(8))):
                            yield name, vex + bytes([opcode, modrm]) + TAIL


def _form(op_str: str) -> str:
    """Which register file a form uses when a name covers several: MMX and 256-bit forms are listed apart."""
    if re.search(r"\bmm\d", op_str):
        return " (MMX)"
    return " (256-bit)" if "ymm" in op_str else ""


def _translates(decoder: Decoder, code: bytes) -> bool:
    """Does emu decode these bytes and run its semantics over them without refusing the operands?"""
    try:
        insn = decoder.decode_bytes(code, 0x1000)
    except GuestFault:
        return False
    semantic, _ = level().semantic(insn.mnemonic)
    if semantic is None:
        return False
    try:
        semantic(SymbolicOps(insn), insn, *insn.operands)
    except (KeyError, ValueError, TypeError, IndexError):     # what the interpreter turns into #UD
        return False
    return True


def sweep() -> dict[str, tuple[str, str, set[str], bool]]:
    """capstone name (and form) -> (map it was first met in, its bytes in hex, capstone's groups, whether emu
    translates it)."""
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    decoder = Decoder()
    found: dict[str, tuple[str, str, set[str], bool]] = {}
    for map_name, code in _candidates():
        for insn in cs.disasm(code, 0x1000, 1):
            name = insn.insn_name() + _form(insn.op_str)
            if name not in found:
                found[name] = (map_name, insn.bytes.hex(" "), {insn.group_name(g) for g in insn.groups},
                               _translates(decoder, bytes(insn.bytes)))
    return found


SSSE3 = ("pabs", "palignr", "phadd", "phsub", "pmaddubsw", "pmulhrsw", "pshufb", "psign")
PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("avx512", ("k",)), ("mpx", ("bnd",)), ("gfni", ("gf2p8", "vgf2p8")), ("sgx", ("encl",)), ("tsx", ("xtest",)),
    ("padlock", ("xcrypt", "xsha", "xstore", "montmul")), ("fma", ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub")),
    ("avx2", ("vbroadcasti128",)), ("ssse3", SSSE3), ("sse4_1", ("phminposuw",)), ("sse4_2", ("pcmpestr", "pcmpistr")),
    ("x87", ("f",)), ("avx", ("v",)),
)
"""Name prefixes for what capstone leaves without a telling group, tried after the groups' AVX-family names."""


FMA4 = re.compile(r"vfn?m(add|sub|addsub|subadd)(ps|pd|ss|sd)")
"""AMD's four-operand FMA names (VEX 0F 3A 5C-7F), which capstone groups as FMA: Intel's have 132/213/231."""
WIDE_ONLY = {"vaesenc": "vaes", "vaesenclast": "vaes", "vaesdec": "vaes", "vaesdeclast": "vaes",
             "vpclmulqdq": "vpclmulqdq"}
"""Names whose VEX.256 form belongs to another extension than their VEX.128 one (capstone says AVX)."""


def extension(name: str, groups: set[str]) -> str:
    """The extension an instruction emu lacks belongs to."""
    if name.endswith(" (MMX)"):
        return "mmx"
    wide = name.endswith(" (256-bit)")
    name = name.split()[0]
    if name in BY_NAME:
        return BY_NAME[name]
    if FMA4.fullmatch(name):
        return "fma4"
    if wide and name in WIDE_ONLY:
        return WIDE_ONLY[name]
    known = [GROUP_FEATURE[g] for g in sorted(groups) if g in GROUP_FEATURE]
    for preferred in ("avx512", "fma4", "xop", "fma", "f16c", "aes", "pclmulqdq", "sha", "avx2", "avx", "3dnow"):
        if preferred in known:
            return preferred
    for ext, prefixes in PATTERNS:
        if name.startswith(prefixes):
            return ext
    return known[0] if known else "baseline"


def report() -> str:
    """Markdown: the implemented instructions by feature, then the missing ones by extension with why."""
    semantics = load_all()
    found = sweep()
    implemented: dict[str, list[str]] = defaultdict(list)
    for name in semantics:
        implemented[FEATURES.get(name, "baseline")].append(name)
    missing: dict[str, list[str]] = defaultdict(list)
    for name, (map_name, code, groups, translates) in sorted(found.items()):
        if not translates:
            missing[extension(name, groups)].append(f"{name} ({map_name}: {code})")
    lacking = sum(map(len, missing.values()))
    out = [f"Decoded {len(found)} distinct instructions (a name's MMX and 256-bit forms counted apart); "
           f"{len(found) - lacking} translate, {lacking} do not.", "", "### Implemented, by CPUID feature", ""]
    for feature in sorted(implemented, key=lambda f: (f != "baseline", f)):
        out.append(f"- **{feature}** ({len(implemented[feature])}): {', '.join(sorted(implemented[feature]))}")
    out += ["", "### Without semantics, by extension", ""]
    for ext in sorted(missing, key=lambda e: (e != "baseline", e)):
        why = WHY.get(ext, "not implemented yet (so not advertised)")
        out.append(f"- **{ext}** ({len(missing[ext])}), {why}: {', '.join(missing[ext])}")
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- isa_sweep.py: begin -->\n", "<!-- isa_sweep.py: end -->\n"
"""The markers around the part of docs/isa.md this script writes."""


def updated(document: str) -> str:
    """``document`` with the text between :data:`BEGIN` and :data:`END` replaced by :func:`report`."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + BEGIN + report() + END + tail


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        path = Path(sys.argv[2])
        path.write_text(updated(path.read_text()))
    else:
        sys.stdout.write(report())
