"""emu benchmarks, side by side with the anchors, from one run.

    python3 benchmarks/run.py [--quick] [--no-boot] [--no-debian | --debian-only]

Reports (speed is measured here, never asserted in tests):
- decoder: capstone -> Insn records per second, over busybox's code;
- interpreter on a tight register loop, and unicorn (QEMU's TCG) on the same loop;
- a compiled C workload (tests/programs/sha256.c, gcc -static -O2, 1 MiB): emu's guest
  instructions per second and wall time, native wall time, and qemu-x86_64's when installed;
- floating point (benchmarks/programs/fp.c): a long double kernel (x87) and an AVX2/FMA one, the same
  three ways;
- Debian's python3 (dynamically linked): `python3 -c pass`, and with --suites a selection of CPython's
  regression tests and the CTest project of tests/user (emu as CMAKE_CROSSCOMPILING_EMULATOR), natively,
  under emu and under qemu-x86_64;
- booting the default guest to its /init marker: emu's wall time (from its process's start, as qemu's is
  measured) and guest instructions, and
  qemu-system-x86_64 -M microvm (TCG) on the same kernel and initramfs when installed; for each
  emu boot, the Python tier's cost per translated block (the cold path) and the JIT's line, with its
  compile time per block and share of the boot;
- booting Debian's stock cloud kernel (`emu boot --guest debian`, the pc machine) to the same marker,
  and qemu-system-x86_64 -M pc (TCG) on the same kernel, initramfs, command line and disk
  (`--no-debian` skips it, `--debian-only` runs only it).

emu runs as an installed copy does: with Python's bytecode cache (PYTHONDONTWRITEBYTECODE is
dropped from its environment), so a run's start-up is not spent compiling emu's own modules.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOOP = "mov rcx, {n}\nxor eax, eax\nl: add rax, rcx\ndec rcx\njnz l\nhlt"


def _assemble(text: str, address: int) -> bytes:
    import keystone
    code, _ = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(text, address)
    return bytes(code)


def bench_decoder(count: int) -> float:
    """Instructions decoded per second, linear sweep over /bin/busybox's first executable segment."""
    from cpu.decoder import Decoder
    from cpu.exceptions import GuestFault

    data = Path("/bin/busybox").read_bytes()
    code = data[0x1000:0x1000 + count * 6]
    decoder = Decoder()
    address, end, done = 0, len(code) - 16, 0
    start = time.perf_counter()
    while done < count and address < end:
        try:
            insn = decoder.decode_bytes(code[address:address + 15], 0x401000 + address)
            address += insn.length
        except GuestFault:
            address += 1
        done += 1
    return done / (time.perf_counter() - start)


def bench_loop_emu(iterations: int, jit: str = "off") -> float:
    from cpu.interp import Interpreter
    from cpu.state import CpuState
    from emu.user.address_space import AddressSpace

    code = _assemble(LOOP.format(n=iterations), 0x400000)
    mem = AddressSpace()
    mem.map(0x400000, 0x1000, 5, code)
    state = CpuState()
    state.reset_user()
    state.rip = 0x400000
    cpu = Interpreter(state, mem)
    if jit != "off":
        from cpu.jit import Jit

        cpu.jit = Jit(cpu, jit)
    start = time.perf_counter()
    cpu.run()
    return state.icount / (time.perf_counter() - start)


def bench_loop_unicorn(iterations: int) -> float | None:
    try:
        import unicorn
    except ImportError:
        return None
    code = _assemble(LOOP.format(n=iterations), 0x400000)
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(0x400000, 0x1000)
    uc.mem_write(0x400000, code)
    start = time.perf_counter()
    uc.emu_start(0x400000, 0x400000 + len(code) - 1)
    return (3 * iterations + 2) / (time.perf_counter() - start)


EMU_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""emu's environment: Python writes and reuses the bytecode of emu's modules, as in an installed copy."""


def _time(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=EMU_ENV)
    return time.perf_counter() - start, proc


def bench_program(source: str, flags: list[str], args: list[str], workdir: Path, jit: str = "on") -> dict[str, object]:
    """A C program built static with ``flags``, run with ``args`` natively, under emu (its second run, with the
    code cache warm: wall time, guest instructions; the output must be the native one) and under qemu-x86_64
    -cpu max when installed."""
    exe = workdir / Path(source).stem
    subprocess.run(["gcc", "-static", *flags, "-o", str(exe), str(ROOT / source)], check=True)
    native_s, native = _time([str(exe), *args])
    emu_cmd = [sys.executable, "-m", "emu", "run", "--stats", f"--jit={jit}", str(exe), *args]
    _time(emu_cmd)      # unmeasured: the code cache warm (its blocks and, with the JIT, its native modules)
    emu_s, emu = _time(emu_cmd)
    if emu.stdout != native.stdout:
        raise SystemExit(f"emu and native disagree on {source} {' '.join(args)}:\n{emu.stdout}{emu.stderr[-2000:]}\n"
                         f"vs\n{native.stdout}")
    match = re.search(r"(\d+) instructions", emu.stderr)
    result: dict[str, object] = {"native_s": native_s, "emu_s": emu_s, "instructions": int(match[1]) if match else 0}
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        result["qemu_s"], _ = _time([qemu, "-cpu", "max", str(exe), *args])
    return result


PYTHON = "/usr/bin/python3"
CPYTHON_TESTS = ["test_int", "test_bool", "test_string", "test_fractions", "test_float"]
"""The CPython regression tests tests/user/test_cpython.py runs under emu (Debian's libpython3.11-testsuite)."""


def _verdict(output: str) -> list[str]:
    """What CPython's test runner concludes (its other lines hold durations and load averages)."""
    verdict = re.compile(r"(Tests result:|All \d+ tests OK|\d+ tests? failed)")
    return [line for line in output.splitlines() if verdict.match(line)]


def bench_command(argv: list[str], outcome: Callable[[str], object] = str) -> dict[str, object]:
    """A dynamically linked host program (Debian's python3) natively, under emu (its second run: the code
    cache warm, as a test runner sees it after the first test) and under qemu-x86_64 when installed; ``outcome``
    is the part of their output that must agree."""
    native_s, native = _time(argv)
    emu_cmd = [sys.executable, "-m", "emu", "run", "--stats", *argv]
    _time(emu_cmd)
    emu_s, emu = _time(emu_cmd)
    if emu.returncode != native.returncode or outcome(emu.stdout) != outcome(native.stdout):
        raise SystemExit(f"emu and native disagree on {' '.join(argv)}:\n{emu.stdout[-2000:]}{emu.stderr[-2000:]}")
    match = re.search(r"(\d+) instructions", emu.stderr)
    result: dict[str, object] = {"native_s": native_s, "emu_s": emu_s, "instructions": int(match[1]) if match else 0}
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        result["qemu_s"], _ = _time([qemu, "-cpu", "max", *argv])
    return result


def bench_ctest(workdir: Path) -> dict[str, object]:
    """tests/user/programs/ctest_project's suite: `ctest` wall time with emu as CMAKE_CROSSCOMPILING_EMULATOR
    (its second run: the code cache warm), with qemu-x86_64 as the emulator, and natively."""
    result: dict[str, object] = {}
    emulators = {"emu": f"{sys.executable};-m;emu;run", "native": ""}
    if shutil.which("qemu-x86_64"):
        emulators["qemu"] = f"{shutil.which('qemu-x86_64')};-cpu;max"
    for name, emulator in emulators.items():
        build = workdir / name
        subprocess.run(["cmake", "-S", str(ROOT / "tests/user/programs/ctest_project"), "-B", str(build),
                        "-DCMAKE_C_COMPILER=gcc", f"-DCMAKE_CROSSCOMPILING_EMULATOR={emulator}"],
                       check=True, capture_output=True, env=EMU_ENV)
        subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, env=EMU_ENV)
        if name == "emu":
            _time(["ctest", "--test-dir", str(build)])
        seconds, run = _time(["ctest", "--test-dir", str(build)])
        if run.returncode != 0:
            raise SystemExit(f"ctest with {name} failed:\n{run.stdout[-2000:]}")
        result[f"{name}_s"] = seconds
    return result


def _command_rows(label: str, c: dict[str, object]) -> list[tuple[str, str, str]]:
    versus = f", qemu-x86_64 {c['qemu_s']:.2f} s ({c['emu_s'] / c['qemu_s']:,.0f}x)" if "qemu_s" in c else ""
    return [(f"{label}: emu", f"{c['emu_s']:.2f} s",
             f"{c['instructions']:,} guest insns, native {c['native_s']:.3f} s{versus}")]


FP_BUILDS = {"x87": ["-O2"], "avx": ["-O3", "-march=x86-64-v3", "-ffast-math"]}
"""benchmarks/programs/fp.c's two kernels and how each is built (the AVX2 one vectorised to 256-bit FMA)."""


QEMU_APPEND = "console=ttyS0 earlyprintk=serial reboot=t no_timer_check tsc_early_khz=1000000"


def _to_marker(cmd: list[str], env: dict[str, str] | None = None,
               stderr: int | IO[bytes] = subprocess.DEVNULL) -> tuple[float | None, subprocess.Popen]:
    """Start ``cmd`` and read its stdout (the guest's serial) up to the /init marker line: the wall time from
    the process's start to that line (None when it ended without printing it), and the process, still
    running.  emu and qemu-system are timed the same way, start-up included."""
    from emu.machine.console import INIT_MARKER

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=stderr, env=env)
    seen = b""
    while INIT_MARKER not in seen:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        seen = seen[-64:] + chunk
    return (time.perf_counter() - start if INIT_MARKER in seen else None), proc


def _qemu_to_marker(arguments: list[str]) -> float | None:
    """Wall time of qemu-system-x86_64 (TCG, 128 MiB, serial on stdout) from start to the /init marker line;
    None when it is not installed or never printed the marker."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None
    seconds, proc = _to_marker([qemu, "-accel", "tcg", "-m", "128M", "-nographic", "-no-reboot", *arguments])
    proc.kill()
    proc.wait()
    return seconds


def _emu_boot(arguments: list[str]) -> tuple[dict[str, object], str]:
    """`emu boot ARGUMENTS --script 'poweroff -f' --stats`: wall time from the process's start to the /init
    marker line (as qemu-system's), guest instructions to it, and emu's stderr (its --stats lines)."""
    with tempfile.TemporaryFile() as errors:
        seconds, emu = _to_marker([sys.executable, "-m", "emu", "boot", *arguments, "--rtc-base", "1700000000",
                                   "--script", "poweroff -f", "--stats"], EMU_ENV, errors)
        output = emu.stdout.read()
        emu.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    marker = re.search(r"/init marker after (\d+) instructions", stderr)
    if emu.returncode != 0 or marker is None or seconds is None:
        raise SystemExit(f"emu boot {' '.join(arguments)} failed:\n{output[-2000:].decode(errors='replace')}\n"
                         f"{stderr[-2000:]}")
    return {"emu_s": seconds, "instructions": int(marker[1])}, stderr


def bench_boot(jit: str, cold: bool = False) -> dict[str, object]:
    """Wall time (and for emu, guest instructions) from start to the guest's /init marker line."""
    from emu.machine.guest import default_guest

    guest = default_guest()
    result, stderr = _emu_boot(["--kernel", str(guest.kernel), "--initrd", str(guest.initrd), f"--jit={jit}",
                                *(["--no-code-cache"] if cold else [])])
    translated = re.search(r"^emu: (\d+) blocks translated(?: \(([\d.]+) ms each\))?", stderr, re.M)
    if translated and translated[2]:
        result["translated"] = f"Python tier: {int(translated[1]):,} blocks translated, {translated[2]} ms each"
    jit_line = re.search(r"^emu: (JIT .*)$", stderr, re.M)
    if jit_line:
        result["jit"] = jit_line[1]
        compiled = re.search(r"(\d+) blocks compiled .* (\d+) ms compiling", jit_line[1])
        if compiled and int(compiled[1]):
            ms = int(compiled[2])
            result["compile"] = (f"JIT compiling (its own thread): {ms / int(compiled[1]):.2f} ms per block, "
                                 f"{ms / 1000 / result['emu_s']:.0%} of the boot's wall time")
    qemu_s = _qemu_to_marker(["-M", "microvm,acpi=off", "-cpu", "qemu64,-apic", "-kernel", str(guest.kernel),
                              "-initrd", str(guest.initrd), "-append", QEMU_APPEND])
    if qemu_s is not None:
        result["qemu_s"] = qemu_s
    return result


def bench_debian_boot() -> dict[str, object]:
    """Debian's stock kernel (`emu boot --guest debian`, --machine pc, warm caches) to the /init marker, and
    qemu-system-x86_64 -M pc (TCG) on the same kernel, initramfs, command line and disk."""
    from emu.machine.debian_guest import debian_guest

    guest = debian_guest()
    result, _ = _emu_boot(["--guest", "debian", "--jit=on"])
    qemu_s = _qemu_to_marker(["-M", "pc", "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
                              "-append", f"{QEMU_APPEND} {guest.append}",
                              "-drive", f"file={guest.disk},if=virtio,format=raw,snapshot=on"])
    if qemu_s is not None:
        result["qemu_s"] = qemu_s
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--suites", action="store_true",
                        help="also run the test suites a runner is used for (CPython's tests: minutes)")
    parser.add_argument("--no-boot", action="store_true",
                        help="skip the Linux boots (they build the guests on first use)")
    parser.add_argument("--no-debian", action="store_true",
                        help="skip the Debian stock kernel's boot (minutes; it downloads the kernel on first use)")
    parser.add_argument("--debian-only", action="store_true", help="only the Debian stock kernel's boot")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    os.chdir(ROOT)
    subprocess.run([sys.executable, "-m", "emu", "--help"], env=EMU_ENV, capture_output=True, check=True)
    rows = [] if args.debian_only else _rows(args, scale)
    if not (args.no_boot or args.no_debian):
        boot = bench_debian_boot()
        versus = f", {boot['emu_s'] / boot['qemu_s']:,.0f}x qemu-system" if "qemu_s" in boot else ""
        rows.append(("Debian stock kernel to /init: emu --machine pc --jit=on, warm caches", f"{boot['emu_s']:.2f} s",
                     f"{boot['instructions']:,} guest insns{versus}"))
        qemu = f"{boot['qemu_s']:.2f} s" if "qemu_s" in boot else "not installed"
        rows.append(("Debian stock kernel to /init: qemu-system -M pc (TCG)", qemu, ""))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")
    return 0


def _rows(args: argparse.Namespace, scale: int) -> list[tuple[str, str, str]]:
    """Every row but the Debian boot's: (workload, measure, note)."""
    rows = []
    rate = bench_decoder(20_000 // scale)
    rows.append(("decoder (capstone -> Insn)", f"{rate / 1e3:,.1f} K insn/s", f"{1e6 / rate:.1f} us/insn"))
    uc_loop = bench_loop_unicorn(10_000_000 // scale)
    for jit, iterations in (("off", 1_000_000 // scale), ("on", 30_000_000 // scale)):
        emu_loop = bench_loop_emu(iterations, jit)
        note = f"unicorn is {uc_loop / emu_loop:,.1f}x faster" if uc_loop else ""
        rows.append((f"tight loop: emu --jit={jit}", f"{emu_loop / 1e6:,.2f} M insn/s", note))
    if uc_loop:
        rows.append(("tight loop: unicorn (TCG)", f"{uc_loop / 1e6:,.1f} M insn/s", ""))
    for jit in ("off", "on"):
        with tempfile.TemporaryDirectory() as tmp:
            c = bench_program("tests/programs/sha256.c", ["-O2"], [str((1 << 20) // scale)], Path(tmp), jit)
        ins, emu_s, native_s = c["instructions"], c["emu_s"], c["native_s"]
        versus = f", {emu_s / c['qemu_s']:,.1f}x qemu-x86_64" if "qemu_s" in c else ""
        rows.append((f"sha256 1 MiB: emu --jit={jit}", f"{emu_s:.2f} s",
                     f"{ins / emu_s / 1e6:,.2f} M insn/s, {emu_s / native_s:,.0f}x native{versus}"))
    rows.append(("sha256 1 MiB: native", f"{native_s:.3f} s", f"{ins:,} guest insns"))
    if "qemu_s" in c:
        rows.append(("sha256 1 MiB: qemu-x86_64", f"{c['qemu_s']:.3f} s", ""))
    else:
        rows.append(("sha256 1 MiB: qemu-x86_64", "not installed", "apt-get install qemu-user"))
    for kind, label, n in (("x87", "long double (x87)", 50_000 // scale), ("avx", "AVX2+FMA float", 200 // scale)):
        with tempfile.TemporaryDirectory() as tmp:
            fp = bench_program("benchmarks/programs/fp.c", FP_BUILDS[kind], [kind, str(n)], Path(tmp))
        ins, emu_s = fp["instructions"], fp["emu_s"]
        versus = f", {emu_s / fp['qemu_s']:,.1f}x qemu-x86_64 ({fp['qemu_s']:.2f} s)" if "qemu_s" in fp else ""
        rows.append((f"fp {label}, n={n:,}: emu", f"{emu_s:.2f} s",
                     f"{ins / emu_s / 1e6:,.2f} M insn/s, native {fp['native_s']:.3f} s{versus}"))
    if Path(PYTHON).exists():
        rows += _command_rows("python3 -c pass", bench_command([PYTHON, "-c", "pass"]))
        if args.suites:
            rows += _command_rows(f"CPython tests {' '.join(CPYTHON_TESTS)}",
                                  bench_command([PYTHON, "-m", "test", *CPYTHON_TESTS], _verdict))
    if args.suites and shutil.which("ctest"):
        with tempfile.TemporaryDirectory() as tmp:
            ct = bench_ctest(Path(tmp))
        versus = f", qemu-x86_64 {ct['qemu_s']:.2f} s ({ct['emu_s'] / ct['qemu_s']:,.0f}x)" if "qemu_s" in ct else ""
        rows.append(("CTest suite (tests/user/programs/ctest_project): emu", f"{ct['emu_s']:.2f} s",
                     f"native {ct['native_s']:.2f} s{versus}"))
    if not args.no_boot:
        bench_boot("on")        # unmeasured: fills the code cache (Python tier and native) the warm rows read
        for jit, cold in (("off", False), ("on", True), ("on", False)):
            boot = bench_boot(jit, cold)
            versus = f", {boot['emu_s'] / boot['qemu_s']:,.0f}x qemu-system" if "qemu_s" in boot else ""
            caches = "cold caches" if cold else "warm caches"
            rows.append((f"boot to /init: emu --jit={jit}, {caches}", f"{boot['emu_s']:.2f} s",
                         f"{boot['instructions']:,} guest insns{versus}"))
            for line in ("translated", "jit", "compile"):
                if line in boot:
                    rows.append(("", "", boot[line]))
        if "qemu_s" in boot:
            rows.append(("boot to /init: qemu-system (TCG)", f"{boot['qemu_s']:.2f} s", ""))
        else:
            rows.append(("boot to /init: qemu-system (TCG)", "not installed", "apt-get install qemu-system-x86"))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
