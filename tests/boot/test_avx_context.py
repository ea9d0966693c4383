"""The guest kernel's XSAVE context switching: two guest processes keep their own ymm registers across the
switches between them (tests/boot/programs/avx_switch.c), and the kernel says it manages the AVX state with
XSAVE."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROGRAM = Path(__file__).resolve().parent / "programs" / "avx_switch.c"
ITERATIONS = 1000


def test_two_guest_processes_keep_their_ymm_registers_across_context_switches(guest, tmp_path: Path):
    files = tmp_path / "files"
    files.mkdir()
    subprocess.run(["gcc", "-static", "-O2", "-mavx2", "-o", str(files / "avx_switch"), str(PROGRAM)], check=True)
    disk = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-d", str(files), str(disk), "4M"], check=True)
    run = subprocess.run(
        [sys.executable, "-m", "emu", "boot", "--kernel", str(guest.kernel), "--initrd", str(guest.initrd),
         "--disk", str(disk), "--rtc-base", "1700000000",
         "--script", f"/mnt/avx_switch {ITERATIONS}; echo avx-switch-status=$?\npoweroff -f\n"],
        capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    log = run.stdout
    # CPUID offers XSAVE with the AVX state component, and the kernel switches contexts with it.
    xstate = re.search(r"x86/fpu: Enabled xstate features (0x[0-9a-f]+), context size is (\d+) bytes", log)
    assert xstate, log[:6000]
    assert int(xstate[1], 16) & 0x7 == 0x7, "x87, SSE and AVX state components"
    assert int(xstate[2]) >= 832, "the legacy area, the XSAVE header and the 256 bytes of upper ymm halves"
    assert "x86/fpu: Supporting XSAVE feature 0x004: 'AVX registers'" in log
    results = re.findall(r"avx-switch: pid (\d+) (OK|FAIL)(.*)", log)
    assert len(results) == 2 and len({pid for pid, _, _ in results}) == 2, log[-3000:]
    assert all(verdict == "OK" for _, verdict, _ in results), log[-3000:]
    # One CPU and two runnable processes: each sched_yield hands the CPU to the other one.
    for _, _, detail in results:
        switches = re.search(r"(\d+) voluntary and (\d+) involuntary context switches", detail)
        assert switches and int(switches[1]) + int(switches[2]) >= ITERATIONS // 2, detail
    assert "avx-switch-status=0" in log
