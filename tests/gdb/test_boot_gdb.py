"""gdb on the full-system machine: ``emu boot --gdb PORT [--wait]`` as ``qemu -s [-S]``, with the default guest.

Debian's gdb is given the guest's vmlinux (its symbols), connects, breaks in
the kernel, continues and kills; a protocol-level client checks what the stub
says about a machine (no process, a system register feature, virtual memory).
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from emu.debug.symbols import load_symbols
from emu.gdb.registers import SYSTEM
from emu.machine.guest import default_guest
from tests.gdb.rsp import Client, Emu, stop_registers
from tests.gdb.test_protocol import read_object
from tests.gdb.test_with_gdb import GDB, run_gdb

RTC_BASE = "1700000000"
ENTRY = 0x100200


@pytest.fixture(scope="module")
def guest():
    return default_guest(progress=lambda line: print(line, file=sys.stderr))


def boot(guest, *extra: str) -> Emu:
    return Emu(["--kernel", str(guest.kernel), "--initrd", str(guest.initrd), "--disk", str(guest.disk),
                "--snapshot", "--rtc-base", RTC_BASE, *extra], command="boot")


def u64(hex_bytes: bytes) -> int:
    return int.from_bytes(bytes.fromhex(hex_bytes.decode()), "little")


@pytest.mark.skipif(GDB is None, reason="needs gdb (apt-get install gdb; scripts/setup installs it)")
def test_gdb_breaks_at_start_kernel_then_kills_the_machine(guest) -> None:
    start_kernel = load_symbols(str(guest.system_map)).lookup("start_kernel").address
    emu = boot(guest, "--wait")
    out = run_gdb(emu, guest.vmlinux, "break start_kernel", "continue", "info registers rip", "x/2i $pc",
                  "p $cr0", "kill")
    assert f"{ENTRY:#018x} in ?? ()" in out                       # where --wait holds the machine
    assert re.search(rf"^Breakpoint 1, {start_kernel:#018x} in start_kernel \(\)$", out, re.M), out
    assert re.search(rf"^rip\s+{start_kernel:#x}\s+{start_kernel:#x} <start_kernel>$", out, re.M), out
    assert re.search(rf"^=> {start_kernel:#x} <start_kernel>:\s+push\s+%r14$", out, re.M), out
    assert re.search(r"^\$1 = \[ PE .*\bPG \]$", out, re.M), out
    assert "[Inferior 1 (Remote target) killed]" in out
    status, _, err = emu.finish()
    assert status == 0 and "switched off by the debugger" in err


@pytest.mark.skipif(GDB is None, reason="needs gdb (apt-get install gdb; scripts/setup installs it)")
def test_without_wait_the_guest_runs_until_gdb_connects_and_stops_it(guest) -> None:
    emu = boot(guest)
    out = run_gdb(emu, guest.vmlinux, "info registers rip", "p $cs", "kill")
    rip = re.search(r"^rip\s+(0x[0-9a-f]+)", out, re.M)
    assert rip and int(rip[1], 16) != ENTRY, out                     # it ran before gdb came
    assert re.search(r"^\$1 = 16$", out, re.M)                      # the kernel's CS
    assert emu.finish()[0] == 0


def test_the_stub_describes_a_machine_with_system_registers_and_virtual_memory(guest) -> None:
    start_kernel = load_symbols(str(guest.system_map)).lookup("start_kernel").address
    emu = boot(guest, "--wait")
    client = Client(emu)
    try:
        features = client.request(b"qSupported:multiprocess+;swbreak+;hwbreak+").decode()
        assert "qXfer:exec-file" not in features and "auxv" not in features and "multiprocess" not in features
        xml = read_object(client, "qXfer:features:read:target.xml:", 0x1000)
        feature = ET.fromstring(xml).find("feature[@name='org.emu.x86.system']")
        assert [r.get("name") for r in feature.iter("reg")] == [
            "kernel_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"]
        assert u64(client.request(b"p%x" % SYSTEM.numbers["cr0"])) == 0x8000_0031     # PG NE ET PE: the loader's
        assert u64(client.request(b"p%x" % SYSTEM.numbers["cr3"])) == 0x9000
        assert client.request(b"P%x=0000000000000000" % SYSTEM.numbers["cr3"]) == b"E16"   # paging is read-only
        assert client.request(b"m%x,1" % ENTRY) == b"fc"             # cld, through the loader's identity map
        assert client.request(b"m%x,1" % start_kernel) == b"E14"     # not mapped yet...
        assert client.request(b"Z0,%x,1" % start_kernel) == b"OK"    # ...but a breakpoint can wait for it
        reply = client.request(b"c")
        assert reply.startswith(b"T05") and int.from_bytes(bytes.fromhex(stop_registers(reply)["10"]),
                                                           "little") == start_kernel
        assert client.request(b"m%x,1" % start_kernel) == b"41"       # push r14 (41 56)
        client.send(b"k")
    finally:
        client.close()
    assert emu.finish()[0] == 0
