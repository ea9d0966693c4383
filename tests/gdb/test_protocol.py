"""The stub spoken to packet by packet, as gdb would: framing, queries, registers, memory, running, stopping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from emu.gdb.registers import NUMBERS, REGISTERS
from emu.gdb.stub import parse_address
from tests.gdb.conftest import DATA, Program
from tests.gdb.rsp import ROOT, TIMEOUT, Client, Emu, stop_registers, unescape

RIP = NUMBERS["rip"]
G_SIZE = sum(r.bits // 8 for r in REGISTERS)


def u64(hex_text: str | bytes) -> int:
    return int.from_bytes(bytes.fromhex(hex_text.decode() if isinstance(hex_text, bytes) else hex_text), "little")


def rip_of(client: Client) -> int:
    return u64(client.request(b"p%x" % RIP))


def assert_clean_exit(emu: Emu, status: int) -> str:
    code, _, err = emu.finish()
    assert code == status, err
    assert "Traceback" not in err
    return err


# -- framing -------------------------------------------------------------------------
def test_a_packet_is_acknowledged_and_the_reply_carries_a_valid_checksum(session: tuple[Emu, Client]) -> None:
    _, client = session
    assert client.request(b"?").startswith(b"T05")       # Client.receive checks the checksum


def test_the_first_stop_reply_names_thread_1_and_sigtrap(session: tuple[Emu, Client],
                                                        programs: dict[str, Program]) -> None:
    _, client = session
    reply = client.request(b"?")
    assert reply.startswith(b"T05")
    fields = stop_registers(reply)
    assert fields["thread"] == "01"
    assert u64(fields[f"{RIP:02x}"]) == programs["store"].addresses[0]


def test_a_bad_checksum_is_answered_with_a_nak_and_garbage_is_skipped(session: tuple[Emu, Client]) -> None:
    emu, client = session
    client.send_raw(b"hello, stub")
    client.send_raw(b"$?#00")
    assert client.read_byte() == b"-"
    assert client.request(b"?").startswith(b"T05")
    client.send(b"k")
    err = assert_clean_exit(emu, 137)
    assert "unexpected byte" in err and "bad checksum" in err


def test_a_nak_from_the_client_makes_the_stub_send_its_reply_again(session: tuple[Emu, Client]) -> None:
    _, client = session
    reply = client.request(b"qAttached")
    client.send_raw(b"-")
    assert client.receive() == reply == b"1"


def test_no_ack_mode_stops_the_acknowledgments(session: tuple[Emu, Client]) -> None:
    _, client = session
    assert client.request(b"QStartNoAckMode") == b"OK"
    client.ack = False
    client.send(b"qC")
    assert client.read_byte() == b"$"          # the reply, with no '+' before it
    client.buf = b"$" + client.buf
    assert client.receive() == b"QC01"


def test_an_unknown_packet_gets_an_empty_reply(session: tuple[Emu, Client]) -> None:
    _, client = session
    assert client.request(b"qNoSuchThing") == b""
    assert client.request(b"vMustReplyEmpty") == b""
    assert client.request(b"!") == b""


def test_a_malformed_packet_is_an_error_not_a_crash(session: tuple[Emu, Client]) -> None:
    emu, client = session
    assert client.request(b"mnothex").startswith(b"E")
    assert client.request(b"Z0,zz").startswith(b"E")
    assert client.request(b"p-1").startswith(b"E")
    client.send(b"k")
    assert "malformed packet" in assert_clean_exit(emu, 137)


# -- queries -------------------------------------------------------------------------
def test_qsupported_advertises_the_features_gdb_needs(session: tuple[Emu, Client]) -> None:
    _, client = session
    features = client.request(b"qSupported:swbreak+;hwbreak+;xmlRegisters=i386").decode().split(";")
    for feature in ("qXfer:features:read+", "qXfer:exec-file:read+", "qXfer:auxv:read+", "swbreak+", "hwbreak+",
                    "QStartNoAckMode+", "vContSupported+"):
        assert feature in features
    assert int(next(f for f in features if f.startswith("PacketSize=")).split("=")[1], 16) >= 0x1000


def read_object(client: Client, request: str, chunk: int = 0x100) -> bytes:
    data, offset = b"", 0
    while True:
        reply = client.request(f"{request}{offset:x},{chunk:x}".encode())
        assert reply[:1] in (b"m", b"l"), reply
        data += unescape(reply[1:])
        offset += len(unescape(reply[1:]))
        if reply[:1] == b"l":
            return data


def test_the_target_description_is_x86_64_with_gdbs_register_order(session: tuple[Emu, Client]) -> None:
    _, client = session
    root = ET.fromstring(read_object(client, "qXfer:features:read:target.xml:"))
    assert root.findtext("architecture") == "i386:x86-64"
    features = {f.get("name"): [r.get("name") for r in f.iter("reg")] for f in root.iter("feature")}
    core = features["org.gnu.gdb.i386.core"]
    assert core[:8] == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"]
    assert core[16:24] == ["rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs"]
    assert core[24:] == [f"st{i}" for i in range(8)] + ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg",
                                                        "fooff", "fop"]
    assert features["org.gnu.gdb.i386.sse"] == [f"xmm{i}" for i in range(16)] + ["mxcsr"]
    assert features["org.gnu.gdb.i386.segments"] == ["fs_base", "gs_base"]
    assert features["org.gnu.gdb.i386.avx"] == [f"ymm{i}h" for i in range(16)]
    assert [int(r.get("regnum")) for r in root.iter("reg")] == list(range(len(REGISTERS)))


def test_exec_file_is_the_programs_absolute_path(session: tuple[Emu, Client], programs: dict[str, Program]) -> None:
    _, client = session
    assert read_object(client, "qXfer:exec-file:read::").decode() == os.path.abspath(programs["store"].path)


def test_auxv_is_the_vector_the_loader_wrote(session: tuple[Emu, Client], programs: dict[str, Program]) -> None:
    _, client = session
    data = read_object(client, "qXfer:auxv:read::", chunk=0x40)
    pairs = [(u64(data[i:i + 8].hex()), u64(data[i + 8:i + 16].hex())) for i in range(0, len(data), 16)]
    assert pairs[-1] == (0, 0)
    assert dict(pairs)[9] == programs["store"].addresses[0]           # AT_ENTRY
    assert dict(pairs)[6] == 4096                                     # AT_PAGESZ


def test_thread_queries_describe_one_attached_thread(session: tuple[Emu, Client]) -> None:
    _, client = session
    assert client.request(b"qAttached") == b"1"
    assert client.request(b"qC") == b"QC01"
    assert client.request(b"qfThreadInfo") == b"m01"
    assert client.request(b"qsThreadInfo") == b"l"
    assert client.request(b"Hg0") == b"OK"


def test_with_multiprocess_thread_ids_carry_the_pid(session: tuple[Emu, Client]) -> None:
    emu, client = session
    assert "multiprocess+" in client.request(b"qSupported:multiprocess+").decode()
    pid = emu.proc.pid
    assert client.request(b"qC") == b"QCp%x.%x" % (pid, pid)
    assert client.request(b"vCont;c").startswith(b"W2a;process:%x" % pid)


# -- registers ---------------------------------------------------------------------------
def test_g_returns_every_register_in_description_order(session: tuple[Emu, Client],
                                                       programs: dict[str, Program]) -> None:
    _, client = session
    regs = bytes.fromhex(client.request(b"g").decode())
    assert len(regs) == G_SIZE
    assert u64(regs[16 * 8:17 * 8].hex()) == programs["store"].addresses[0]          # rip after 16 GPRs
    assert int.from_bytes(regs[17 * 8 + 4:17 * 8 + 8], "little") == 0x33             # cs after eflags


def test_p_and_P_read_and_write_one_register(session: tuple[Emu, Client]) -> None:
    _, client = session
    rbx = NUMBERS["rbx"]
    assert client.request(b"P%x=%s" % (rbx, (0x1122334455667788).to_bytes(8, "little").hex().encode())) == b"OK"
    assert u64(client.request(b"p%x" % rbx)) == 0x1122334455667788
    assert client.request(b"p%x" % NUMBERS["mxcsr"]) == b"801f0000"
    assert client.request(b"p%x" % NUMBERS["ftag"]) == b"ffff0000"      # every x87 register empty
    assert client.request(b"P%x=%s" % (NUMBERS["fioff"], b"00104000")) == b"OK"     # FIP, as FNSTENV would show it
    assert client.request(b"p%x" % NUMBERS["fioff"]) == b"00104000"
    assert client.request(b"P%x=%s" % (NUMBERS["fiseg"], b"33000000")) == b"OK"     # FCS: always zero
    assert client.request(b"p%x" % NUMBERS["fiseg"]) == b"00000000"
    assert client.request(b"p%x" % 200).startswith(b"E")


def test_G_writes_all_registers(session: tuple[Emu, Client]) -> None:
    _, client = session
    regs = bytearray(bytes.fromhex(client.request(b"g").decode()))
    regs[0:8] = (0xABCDEF).to_bytes(8, "little")           # rax
    assert client.request(b"G" + regs.hex().encode()) == b"OK"
    assert u64(client.request(b"p0")) == 0xABCDEF


# -- memory ------------------------------------------------------------------------------
def test_m_reads_code_and_unmapped_memory_is_E14(session: tuple[Emu, Client], programs: dict[str, Program]) -> None:
    _, client = session
    entry = programs["store"].addresses[0]
    assert client.request(b"m%x,3" % entry) == b"48c7c3"        # mov rbx, imm32
    assert client.request(b"m0,8") == b"E14"
    assert client.request(b"m%x,8" % (DATA + 0x1000)) == b"E14"
    assert client.request(b"m%x,8" % (DATA + 0xFFC)) == b"00000000"   # a short read up to the unmapped page


def test_M_and_X_write_memory_and_X_unescapes_binary(session: tuple[Emu, Client]) -> None:
    _, client = session
    assert client.request(b"M%x,4:deadbeef" % DATA) == b"OK"
    assert client.request(b"m%x,4" % DATA) == b"deadbeef"
    payload = bytes([0x7D, 0x23 ^ 0x20, 0x7D, 0x24 ^ 0x20, 0x7D, 0x7D ^ 0x20, 0x41])   # '#', '$', '}', 'A'
    assert client.request(b"X%x,4:" % (DATA + 8) + payload) == b"OK"
    assert client.request(b"m%x,4" % (DATA + 8)) == b"23247d41"
    assert client.request(b"X%x,0:" % DATA) == b"OK"
    assert client.request(b"M0,1:00") == b"E14"


# -- running -----------------------------------------------------------------------------
def test_a_breakpoint_then_continue_stops_at_its_address(session: tuple[Emu, Client],
                                                         programs: dict[str, Program]) -> None:
    _, client = session
    client.request(b"qSupported:swbreak+")
    target = programs["store"].addresses[3]
    assert client.request(b"Z0,%x,1" % target) == b"OK"
    reply = client.request(b"c")
    assert reply.startswith(b"T05swbreak:;")
    assert u64(stop_registers(reply)[f"{RIP:02x}"]) == target
    assert rip_of(client) == target


def test_a_hardware_breakpoint_is_reported_as_hwbreak(session: tuple[Emu, Client],
                                                      programs: dict[str, Program]) -> None:
    _, client = session
    client.request(b"qSupported:swbreak+;hwbreak+")
    assert client.request(b"Z1,%x,1" % programs["store"].addresses[2]) == b"OK"
    assert client.request(b"vCont;c").startswith(b"T05hwbreak:;")


def test_a_removed_breakpoint_no_longer_stops(session: tuple[Emu, Client], programs: dict[str, Program]) -> None:
    emu, client = session
    address = programs["store"].addresses[3]
    assert client.request(b"Z0,%x,1" % address) == b"OK"
    assert client.request(b"Z0,%x,1" % address) == b"OK"          # inserting twice is harmless
    assert client.request(b"z0,%x,1" % address) == b"OK"
    assert client.request(b"c") == b"W2a"
    client.close()
    assert_clean_exit(emu, 42)


@pytest.mark.parametrize(("ztype", "reason", "after"), [(2, "watch", 2), (3, "rwatch", 4), (4, "awatch", 2)])
def test_a_watchpoint_stops_after_the_access_with_its_address(session: tuple[Emu, Client],
                                                              programs: dict[str, Program],
                                                              ztype: int, reason: str, after: int) -> None:
    _, client = session
    assert client.request(b"Z%d,%x,8" % (ztype, DATA)) == b"OK"
    assert client.request(b"m%x,8" % DATA) == b"00" * 8       # the debugger's own reads are not the program's
    reply = client.request(b"c")
    fields = stop_registers(reply)
    assert reply.startswith(b"T05") and int(fields[reason], 16) == DATA
    assert u64(fields[f"{RIP:02x}"]) == programs["store"].addresses[after]
    if reason == "watch":
        assert client.request(b"m%x,1" % DATA) == b"2a"


def test_vcont_step_executes_one_instruction(session: tuple[Emu, Client], programs: dict[str, Program]) -> None:
    _, client = session
    assert client.request(b"vCont?") == b"vCont;c;C;s;S"
    addresses = programs["store"].addresses
    assert client.request(b"vCont;s:1;c").startswith(b"T05")
    assert rip_of(client) == addresses[1]
    assert client.request(b"s").startswith(b"T05")
    assert rip_of(client) == addresses[2]
    assert u64(client.request(b"p%x" % NUMBERS["rbx"])) == DATA


def test_running_to_the_end_reports_the_exit_status(session: tuple[Emu, Client]) -> None:
    emu, client = session
    assert client.request(b"c") == b"W2a"
    client.close()
    assert_clean_exit(emu, 42)


def test_a_fault_stops_with_its_signal_and_continuing_with_it_kills(programs: dict[str, Program]) -> None:
    emu = Emu([programs["segv"].path])
    client = Client(emu)
    reply = client.request(b"c")
    assert reply.startswith(b"T0b")
    assert u64(stop_registers(reply)[f"{RIP:02x}"]) == programs["segv"].addresses[1]
    assert client.request(b"c").startswith(b"T0b")             # without the signal, the load faults again
    assert client.request(b"C0b") == b"X0b"
    client.close()
    assert "terminated by SIGSEGV" in assert_clean_exit(emu, 128 + 11)


def test_the_interrupt_byte_stops_a_running_program_with_sigint(programs: dict[str, Program]) -> None:
    emu = Emu([programs["loop"].path])
    client = Client(emu)
    client.send(b"c")
    time.sleep(0.5)
    client.send_raw(b"\x03")
    reply = client.receive()
    assert reply.startswith(b"T02")
    assert u64(stop_registers(reply)[f"{RIP:02x}"]) == programs["loop"].addresses[1]
    client.send(b"k")
    assert_clean_exit(emu, 137)


def test_kill_ends_the_program_and_the_emulator(session: tuple[Emu, Client]) -> None:
    emu, client = session
    client.send(b"k")
    assert_clean_exit(emu, 137)


def test_detach_lets_the_program_finish_without_breakpoints(session: tuple[Emu, Client],
                                                            programs: dict[str, Program]) -> None:
    emu, client = session
    assert client.request(b"Z0,%x,1" % programs["store"].addresses[3]) == b"OK"
    assert client.request(b"D") == b"OK"
    assert_clean_exit(emu, 42)


def test_a_client_that_disconnects_mid_packet_leaves_no_traceback(session: tuple[Emu, Client]) -> None:
    emu, client = session
    client.send_raw(b"$qSupported:multipro")
    client.close()
    err = assert_clean_exit(emu, 42)
    assert "disconnected" in err


def test_a_client_that_disconnects_while_the_program_runs_lets_it_finish(programs: dict[str, Program]) -> None:
    emu = Emu([programs["store"].path])
    client = Client(emu)
    client.request(b"Z0,%x,1" % programs["store"].addresses[3])
    client.send(b"s")
    client.close()
    assert_clean_exit(emu, 42)


# -- the command line ---------------------------------------------------------------------
def test_gdb_addresses_are_port_or_host_and_port() -> None:
    assert parse_address("1234") == ("127.0.0.1", 1234)
    assert parse_address("localhost:0") == ("localhost", 0)
    assert parse_address(":99") == ("127.0.0.1", 99)
    with pytest.raises(ValueError):
        parse_address("nope")


def emu_run_gdb(address: str, program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emu", "run", "--gdb", address, program], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_a_bad_gdb_address_is_a_one_line_error(programs: dict[str, Program]) -> None:
    result = emu_run_gdb("x:y", programs["store"].path)
    assert (result.returncode, result.stderr) == (2, "emu: error: --gdb expects PORT or HOST:PORT, got 'x:y'\n")


def test_a_port_in_use_is_a_one_line_error(programs: dict[str, Program]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        result = emu_run_gdb(str(taken.getsockname()[1]), programs["store"].path)
    assert result.returncode == 2
    assert result.stderr.startswith("emu: error: cannot listen for gdb on 127.0.0.1:")
    assert result.stderr.count("\n") == 1
