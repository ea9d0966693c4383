"""The expression evaluator on its own, against a small fake machine: C precedence, types, memory, safety."""

from __future__ import annotations

import pytest

from emu.debug.expr import ExprError, Value, evaluate, parse


class FakeMachine:
    """Registers rax and rip, a symbol `table` at 0x1000 holding 16 bytes."""

    def __init__(self) -> None:
        self.regs = {"rax": 0xFFFF_FFFF_FFFF_FFFE, "rip": 0x401000}
        self.memory = bytearray(range(16))

    def register(self, name: str) -> Value | None:
        if name == "rax":
            v = self.regs["rax"]
            return Value(v - (1 << 64) if v >> 63 else v, 8)
        if name in ("rip", "pc"):
            return Value(self.regs["rip"], 8, address=True)
        return None

    def set_register(self, name: str, value: int) -> None:
        self.regs["rip" if name == "pc" else name] = value & ((1 << 64) - 1)

    def symbol(self, name: str) -> int | None:
        return 0x1000 if name == "table" else None

    def read(self, address: int, length: int) -> bytes:
        if not (0x1000 <= address and address + length <= 0x1010):
            raise ExprError(f"unmapped {address:#x}")
        return bytes(self.memory[address - 0x1000:address - 0x1000 + length])

    def write(self, address: int, data: bytes) -> None:
        self.memory[address - 0x1000:address - 0x1000 + len(data)] = data


def ev(text: str, machine: FakeMachine | None = None) -> int:
    return evaluate(text, machine or FakeMachine()).value


@pytest.mark.parametrize(("text", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("1 << 4 | 1", 17), ("7 & 3 ^ 1", 2), ("10 - 2 - 3", 5),
    ("0x10 + 010 + 0b11 + 0o7", 16 + 8 + 3 + 7), ("-7 / 2", -3), ("-7 % 2", -1), ("~0", -1), ("!5", 0),
    ("3 > 2 && 2 > 1", 1), ("0 || 0", 0), ("1 == 1 != 0", 1), ("2 <= 1", 0), ("'a'", 97), ("'\\n'", 10),
    ("1 < 2 == 1", 1), ("- -3", 3),
])
def test_arithmetic_follows_c(text: str, value: int) -> None:
    assert ev(text) == value


def test_registers_are_signed_and_rip_is_an_address() -> None:
    m = FakeMachine()
    assert ev("$rax", m) == -2 and ev("rax", m) == -2 and ev("$rax == -2", m) == 1
    v = evaluate("$pc", m)
    assert v.address and v.value == 0x401000


def test_symbols_are_addresses_and_star_loads() -> None:
    assert ev("table") == 0x1000 and ev("&table") == 0x1000
    assert ev("*table") == int.from_bytes(bytes(range(8)), "little")
    assert ev("*(char *)(table + 3)") == 3
    assert ev("*(uint16_t *)table") == 0x0100
    assert ev("*((uint32_t *)table + 1)") == int.from_bytes(bytes([4, 5, 6, 7]), "little")   # scaled by 4


def test_casts_truncate_and_sign_extend() -> None:
    assert ev("(char)0x1ff") == -1 and ev("(unsigned char)0x1ff") == 255 and ev("(int)0xffffffff") == -1
    assert ev("(unsigned long)-1") == (1 << 64) - 1


def test_assignment_writes_registers_and_memory() -> None:
    m = FakeMachine()
    assert ev("$rax = 5", m) == 5 and m.regs["rax"] == 5
    ev("*(int *)table = -1", m)
    assert m.memory[:5] == b"\xff\xff\xff\xff\x04"
    ev("$pc = table + 2", m)
    assert m.regs["rip"] == 0x1002


def test_logical_operators_short_circuit() -> None:
    assert ev("0 && *0") == 0 and ev("1 || *0") == 1


@pytest.mark.parametrize("text", ["", "1 +", "(1", "1 2", "__import__('os')", "x.y()", "1 = 2", "&5", "(long **)1",
                                  "(struct foo *)1", "nosuch", "$nosuch", "1 / 0", "1 << -1", "09", "@"])
def test_malformed_or_unknown_input_raises_expr_error(text: str) -> None:
    with pytest.raises(ExprError):
        ev(text)


def test_parse_never_runs_python() -> None:
    tree = parse("__class__ + 1")
    assert tree.op == "binary" and tree.args[0].op == "name"
