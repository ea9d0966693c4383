"""Memory as Linux manages it, under `emu run`: tests/user/programs/memory.c, one subtest per run, against
the same program run natively (mmap(2), mprotect(2), mremap(2), madvise(2), getrlimit(2), the vsyscall
page); the guest memory and process caps (tests/user/programs/forkbomb.c).

Covered: a 2^36-byte PROT_NONE|MAP_NORESERVE reservation with pages mapped and touched inside it, and a
program with a 1 GiB .bss (the emulator's peak RSS measured); code that stops running once mprotect
removes PROT_EXEC or it is unmapped or replaced by MAP_FIXED (SIGSEGV with SEGV_ACCERR/SEGV_MAPERR and
si_addr, with the JIT off, on and eager); data made read-only, PROT_NONE or unmapped under a hot loop
(the JIT's inline TLB); MADV_DONTNEED on anonymous memory and on a private file mapping; mremap (in
place, moving, shrinking, MREMAP_FIXED); MAP_FIXED_NOREPLACE; stack growth within RLIMIT_STACK;
RLIMIT_AS; RLIMIT_DATA on mmap, mprotect and brk; a MAP_GROWSDOWN mapping growing; /proc/self/maps; the
vsyscall page; ENOMEM at the commitment limit, SIGKILL past the memory cap, and a fork bomb that ends in
EAGAIN.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_emu, run_native

PROGRAMS = Path(__file__).resolve().parent / "programs"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
RSS_LIMIT_KB = 200 * 1024


@pytest.fixture(scope="module")
def memory(build_static) -> Path:
    return build_static(PROGRAMS / "memory.c", "O1")


@pytest.fixture(scope="module")
def forkbomb(build_static) -> Path:
    return build_static(PROGRAMS / "forkbomb.c", "O1")


@pytest.mark.parametrize("subtest", ["reserve", "code", "data", "dontneed", "remap", "stack", "rlimit_as",
                                     "rlimit_data", "growsdown", "maps"])
def test_memory_behaves_as_natively(subtest: str, memory: Path, tmp_path: Path, same_as_native) -> None:
    same_as_native([str(memory), subtest, str(tmp_path / "mapped.tmp")], env=ENV)


@pytest.mark.parametrize("jit", ["off", "eager"])
def test_code_made_non_executable_or_unmapped_stops_running_in_every_tier(jit: str, memory: Path,
                                                                           tmp_path: Path) -> None:
    """The default run (`same_as_native` above) has the JIT on; here the interpreter alone, and every block
    compiled: translations and native code of the page are dropped either way."""
    argv = [str(memory), "code", str(tmp_path / "code.tmp")]
    native = run_native(argv, env=ENV)
    emulated = run_emu([f"--jit={jit}", *argv], env=ENV)
    assert (emulated.returncode, emulated.stdout, emulated.stderr) == (0, native.stdout, b"")
    assert native.stdout.count(b"SEGV_ACCERR si_addr at the page") == 3
    assert b"SEGV_MAPERR si_addr at the page" in native.stdout
    assert native.stdout.endswith(b"new code: 7\nMAP_FIXED file code over it: 1 42\n")


@pytest.mark.parametrize("jit", ["off", "eager"])
def test_data_made_read_only_or_unmapped_faults_in_every_tier(jit: str, memory: Path) -> None:
    """Loads and stores of compiled code go through the JIT's inline TLB: it loses the page's entries with
    the mapping."""
    native = run_native([str(memory), "data"], env=ENV)
    emulated = run_emu([f"--jit={jit}", str(memory), "data"], env=ENV)
    assert (emulated.returncode, emulated.stdout, emulated.stderr) == (0, native.stdout, b"")
    assert native.stdout.count(b"SEGV_ACCERR si_addr at the page") == 2
    assert b"SEGV_MAPERR si_addr at the page" in native.stdout


def _host_has_vsyscall() -> bool:
    return "[vsyscall]" in Path("/proc/self/maps").read_text()


def test_the_vsyscall_page_emulates_its_three_calls_and_cannot_be_read(memory: Path) -> None:
    emulated = run_emu([str(memory), "vsyscall"], env=ENV)
    if _host_has_vsyscall():
        expected = run_native([str(memory), "vsyscall"], env=ENV).stdout
    else:       # a host kernel with vsyscall=none: what Linux's default (xonly) gives
        expected = (b"time: now, stored too\ngettimeofday: 0 now\ngetcpu: 0 set\n"
                    b"signal 11 si_code SEGV_MAPERR si_addr at the page\nsignal 11 si_code other si_addr elsewhere\n")
    assert (emulated.returncode, emulated.stdout, emulated.stderr) == (0, expected, b"")


def _peak_rss(argv: list[str]) -> tuple[int, bytes, int]:
    """Run ``emu run ARGV`` from a fresh Python and return its exit status, its output (stdout then stderr)
    and its peak RSS in KiB (RUSAGE_CHILDREN of that Python, whose only child it is)."""
    measure = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
               "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
               "sys.stdout.buffer.write(b'%d %d\\n' % (r.returncode, peak) + r.stdout + r.stderr)\n")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "emu", "run", *argv],
                            capture_output=True, env={**ENV, "PYTHONPATH": str(REPO_ROOT)}, timeout=300, check=False)
    first, _, output = result.stdout.partition(b"\n")
    status, peak_kb = (int(word) for word in first.split())
    print(f"peak RSS of the emulator: {peak_kb} KiB")
    return status, output, peak_kb


def test_a_2_to_the_36_reservation_costs_address_space_not_host_memory(memory: Path) -> None:
    status, output, peak_kb = _peak_rss([str(memory), "reserve"])
    assert (status, output) == (0, run_native([str(memory), "reserve"], env=ENV).stdout)
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KiB"


def test_a_1_gib_bss_costs_only_the_pages_touched(tmp_path: Path) -> None:
    source = tmp_path / "bss.c"
    source.write_text("static char big[1 << 30];\n"
                      "int main(void) { big[5] = 1; big[(1 << 30) - 1] = 2; return big[5] + big[(1 << 30) - 1]; }\n")
    subprocess.run(["gcc", "-O0", "-static", "-o", str(tmp_path / "bss"), str(source)], check=True)
    status, output, peak_kb = _peak_rss([str(tmp_path / "bss")])
    assert (status, output) == (3, b"")
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KiB"


def test_mappings_past_the_memory_cap_fail_with_enomem(memory: Path) -> None:
    result = run_emu(["--max-memory=64M", str(memory), "commit"], env=ENV)
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:3] == [b"malloc", b"failed", b"after"] and 48 <= int(words[3]) < 64
    assert result.stdout.endswith(b"Cannot allocate memory\n")


def test_touching_more_than_the_memory_cap_kills_the_guest_as_the_oom_killer_would(memory: Path) -> None:
    result = run_emu(["--max-memory=64M", str(memory), "touch"], env=ENV)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == b""
    assert result.stderr == (b"emu: program terminated by SIGKILL: the guest needs more than 64 MiB of memory "
                             b"(emu run --max-memory)\n")


@pytest.mark.parametrize("start", ["bomb", "exec"])
def test_a_fork_bomb_gets_eagain_at_the_process_cap(start: str, forkbomb: Path) -> None:
    """Five processes at most: the bomb itself and four children (also when the bomb was exec'd, so the
    cap crosses an execve); once they are reaped, fork works again."""
    result = run_emu(["--max-processes=5", str(forkbomb), start], env=ENV)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"forked 4, then EAGAIN\nreaped 4\nafter reaping: fork ok, child exit 3\n"


def test_bad_memory_options_get_a_one_line_error(memory: Path) -> None:
    result = run_emu(["--max-memory=12", str(memory), "reserve"], env=ENV)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.splitlines()[-1] == (b"emu run: error: argument --max-memory: 12 is too small for a "
                                              b"program's memory: give at least 1M")
    result = run_emu(["--max-processes=0", str(memory), "reserve"], env=ENV)
    assert result.returncode == 2
    assert result.stderr == b"emu: error: cannot set up the process limit: the process limit must be at least 1\n"
