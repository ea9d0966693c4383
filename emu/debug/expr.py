"""The debugger's expression language: a small, safe subset of C as gdb accepts it.

Used for addresses (``x``, ``break``, ``watch``), breakpoint conditions and
``set``/``print``.  Text is tokenized, parsed by precedence climbing into a
tree of :class:`Node` records, then evaluated against an :class:`Environment`
(registers, symbols, memory) that the debugger supplies.  Nothing is ever
handed to Python's ``eval``.

The language (C operator precedence, lowest first)::

    =  (assignment, right to left)   ||   &&   |   ^   &   == !=   < <= > >=   << >>   + -   * / %
    unary: - + ! ~  *EXPR (load)  &SYMBOL  (TYPE) and (TYPE *) casts
    primary: 42 0x2a 052 0b101 'a'  $rax rax $eax $al $rip $pc $sp $fp $eflags  $1 $  SYMBOL  ( EXPR )

A bare name is a register when it names one (``rax``, ``pc``), else a
symbol.  Values are integers.  A symbol stands for its address (there is no debug
information to give it a type), so ``*counter`` reads the variable and
``x/s greeting`` shows the string.  ``*EXPR`` loads 8 bytes (a ``long``);
``*(uint32_t *)EXPR`` or ``*(char *)EXPR`` load the pointee's size, and adding
an integer to such a pointer scales it as C does.  Register values have the
register's width and are signed like gdb's (``$eax`` is an ``int``); ``$rip``,
``$pc``, ``$rsp``/``$sp`` and ``$rbp``/``$fp`` are addresses.  Arithmetic is
exact (Python integers); an address is taken modulo 2**64.

Not supported: floating point, structures, arrays, function calls, strings,
``++``/``--``, compound assignment, the conditional operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

MASK64 = (1 << 64) - 1


class ExprError(Exception):
    """The expression cannot be parsed or evaluated; the message says where or why."""


@dataclass(frozen=True)
class CType:
    """An integer C type: what a cast converts to and what a typed pointer loads."""

    name: str
    size: int        # bytes
    signed: bool


_TYPES = {t.name: t for t in (
    CType("char", 1, True), CType("signed char", 1, True), CType("unsigned char", 1, False),
    CType("int8_t", 1, True), CType("uint8_t", 1, False), CType("bool", 1, False), CType("_Bool", 1, False),
    CType("short", 2, True), CType("unsigned short", 2, False), CType("int16_t", 2, True), CType("uint16_t", 2, False),
    CType("int", 4, True), CType("unsigned", 4, False), CType("unsigned int", 4, False),
    CType("int32_t", 4, True), CType("uint32_t", 4, False),
    CType("long", 8, True), CType("unsigned long", 8, False), CType("long long", 8, True),
    CType("unsigned long long", 8, False), CType("int64_t", 8, True), CType("uint64_t", 8, False),
    CType("size_t", 8, False), CType("ssize_t", 8, True), CType("uintptr_t", 8, False), CType("intptr_t", 8, True),
    CType("void", 8, False),
)}
_TYPE_WORDS = {word for name in _TYPES for word in name.split()}
LONG = _TYPES["long"]


@dataclass(frozen=True)
class Value:
    """An evaluated expression: an integer with what printing and ``*`` need to know of its C type."""

    value: int
    size: int = 8                   # bytes of its type: /x of a negative int shows 8 hex digits
    address: bool = False           # a pointer or a symbol: printed in hex with <symbol+offset>
    pointee: CType | None = None    # set by a pointer cast: what ``*`` loads and how ``+`` scales

    def __bool__(self) -> bool:
        return self.value != 0

    @property
    def unsigned(self) -> int:
        return self.value & ((1 << (8 * self.size)) - 1)


class Environment(Protocol):
    """What an expression can see: registers, symbols and memory."""

    def register(self, name: str) -> Value | None: ...
    def set_register(self, name: str, value: int) -> None: ...
    def symbol(self, name: str) -> int | None: ...
    def read(self, address: int, length: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


# -- syntax tree -------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    op: str                          # "num", "reg", "name", "unary", "binary", "load", "cast", "assign"
    value: int = 0
    name: str = ""                   # register/symbol name, or the operator
    args: tuple[Node, ...] = ()
    ctype: CType | None = None       # for "cast": the type; pointer casts set ``pointer``
    pointer: bool = False


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|\d+)
  | (?P<char>'(?:\\.|[^\\'])')
  | (?P<reg>\$[A-Za-z_]\w*|\$\d*)
  | (?P<name>[A-Za-z_][\w.@]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|<<|>>|[-+*/%&|^~!<>=()])
""", re.VERBOSE)

_BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
           ("+", "-"), ("*", "/", "%")]
_PRECEDENCE = {op: level for level, ops in enumerate(_BINARY) for op in ops}
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27, "\\": 92, "'": 39, '"': 34}


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """``(kind, text, column)`` triples; kind is num, char, reg, name or op."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"invalid character {text[pos]!r} at column {pos + 1} of {text!r}")
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group(), pos))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ExprError(f"incomplete expression {self.text!r}")
        self.pos += 1
        return token

    def expect(self, op: str) -> None:
        kind, text, col = self.take()
        if (kind, text) != ("op", op):
            raise ExprError(f"expected {op!r} at column {col + 1} of {self.text!r}, found {text!r}")

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def parse(self) -> Node:
        if not self.tokens:
            raise ExprError("an expression is required")
        node = self.assignment()
        token = self.peek()
        if token is not None:
            raise ExprError(f"unexpected {token[1]!r} at column {token[2] + 1} of {self.text!r}")
        return node

    def assignment(self) -> Node:
        left = self.binary(0)
        if self.at_op("="):
            self.take()
            if left.op not in ("reg", "load", "name"):
                raise ExprError(f"left operand of assignment is not a register or memory: {self.text!r}")
            return Node("assign", args=(left, self.assignment()))
        return left

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while (token := self.peek()) is not None and token[0] == "op" and _PRECEDENCE.get(token[1]) == level:
            self.take()
            left = Node("binary", name=token[1], args=(left, self.binary(level + 1)))
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token[0] == "op":
            if token[1] in ("-", "+", "!", "~"):
                self.take()
                return Node("unary", name=token[1], args=(self.unary(),))
            if token[1] == "*":
                self.take()
                return Node("load", args=(self.unary(),))
            if token[1] == "&":
                self.take()
                operand = self.unary()
                if operand.op == "load":
                    return operand.args[0]
                if operand.op == "name":
                    return operand
                raise ExprError(f"& applies to a symbol or to *EXPR only, in {self.text!r}")
            if token[1] == "(" and (cast := self.cast()) is not None:
                ctype, pointer = cast
                return Node("cast", args=(self.unary(),), ctype=ctype, pointer=pointer)
        return self.primary()

    def cast(self) -> tuple[CType, bool] | None:
        """``(TYPE)`` or ``(TYPE *)`` at the cursor: consume it and return the type, else None."""
        words = []
        i = 1
        while (t := self.peek(i)) is not None and t[0] == "name" and t[1] in _TYPE_WORDS:
            words.append(t[1])
            i += 1
        if not words:
            return None
        name = " ".join(words)
        if name not in _TYPES:
            raise ExprError(f"unknown type {name!r} in {self.text!r}")
        stars = 0
        while (t := self.peek(i)) is not None and t[:2] == ("op", "*"):
            stars += 1
            i += 1
        if (t := self.peek(i)) is None or t[:2] != ("op", ")"):
            raise ExprError(f"expected ')' after the type {name!r} in {self.text!r}")
        if stars > 1:
            raise ExprError(f"pointers to pointers are not supported: {self.text!r}")
        self.pos += i + 1
        return _TYPES[name], stars == 1

    def primary(self) -> Node:
        kind, text, col = self.take()
        if kind == "num":
            base = 16 if text[:2] in ("0x", "0X") else 2 if text[:2] in ("0b", "0B") else 8 \
                if len(text) > 1 and text[0] == "0" else 10
            digits = text[2:] if base in (16, 2) or text[:2] in ("0o", "0O") else text
            try:
                return Node("num", int(digits, base))
            except ValueError:
                raise ExprError(f"invalid number {text!r} at column {col + 1} (a leading 0 means octal)") from None
        if kind == "char":
            body = text[1:-1]
            if body.startswith("\\"):
                if body[1] not in _ESCAPES:
                    raise ExprError(f"unknown escape {body!r} at column {col + 1}")
                return Node("num", _ESCAPES[body[1]])
            return Node("num", ord(body))
        if kind == "reg":
            return Node("reg", name=text[1:])
        if kind == "name":
            return Node("name", name=text)
        if text == "(":
            node = self.assignment()
            self.expect(")")
            return node
        raise ExprError(f"unexpected {text!r} at column {col + 1} of {self.text!r}")


def parse(text: str) -> Node:
    """Parse ``text``; raises :class:`ExprError` with the column of the problem."""
    return _Parser(text).parse()


# -- evaluation --------------------------------------------------------------------
def evaluate(text: str | Node, env: Environment) -> Value:
    """Parse (unless given a tree) and evaluate; assignments write through ``env``."""
    return _Evaluator(env).eval(parse(text) if isinstance(text, str) else text)


def _convert(value: int, ctype: CType) -> int:
    bits = 8 * ctype.size
    value &= (1 << bits) - 1
    if ctype.signed and value >> (bits - 1):
        value -= 1 << bits
    return value


class _Evaluator:
    def __init__(self, env: Environment) -> None:
        self.env = env

    def eval(self, node: Node) -> Value:
        match node.op:
            case "num":
                return Value(node.value, 4 if -(1 << 31) <= node.value < 1 << 31 else 8)
            case "reg":
                return self.register(node.name)
            case "name":
                return self.name(node.name)
            case "unary":
                return self.unary(node.name, self.eval(node.args[0]))
            case "binary":
                return self.binary(node.name, node.args[0], node.args[1])
            case "load":
                address, ctype = self.location(node)
                data = self.env.read(address, ctype.size)
                return Value(_convert(int.from_bytes(data, "little"), ctype), ctype.size)
            case "cast":
                v = self.eval(node.args[0])
                if node.pointer:
                    pointee = None if node.ctype.name == "void" else node.ctype
                    return Value(v.value & MASK64, 8, address=True, pointee=pointee)
                if node.ctype.name == "void":
                    raise ExprError("cannot cast a value to void")
                return Value(_convert(v.value, node.ctype), node.ctype.size)
            case "assign":
                return self.assign(node.args[0], self.eval(node.args[1]))
        raise ExprError(f"cannot evaluate {node.op}")

    def register(self, name: str) -> Value:
        v = self.env.register(name)
        if v is None:
            raise ExprError(f"no register or value named ${name}")
        return v

    def name(self, name: str) -> Value:
        v = self.env.register(name)
        if v is not None:
            return v
        address = self.env.symbol(name)
        if address is None:
            raise ExprError(f'No symbol "{name}" in current context.')
        return Value(address, 8, address=True)

    def location(self, node: Node) -> tuple[int, CType]:
        """Address and type of the memory a ``load`` node names."""
        target = self.eval(node.args[0])
        return target.value & MASK64, target.pointee or LONG

    def unary(self, op: str, v: Value) -> Value:
        size = max(v.size, 4)
        match op:
            case "-":
                return Value(-v.value, size)
            case "+":
                return Value(v.value, size, v.address, v.pointee)
            case "!":
                return Value(int(not v.value), 4)
            case _:
                return Value(~v.value, size)

    def binary(self, op: str, left_node: Node, right_node: Node) -> Value:
        a = self.eval(left_node)
        if op in ("&&", "||"):                      # short-circuit, so `$rdi && *$rdi` is safe
            if (op == "&&") != bool(a):
                return Value(int(bool(a)), 4)
            return Value(int(bool(self.eval(right_node))), 4)
        b = self.eval(right_node)
        x, y = a.value, b.value
        size = max(a.size, b.size, 4)
        match op:
            case "+" | "-" if a.pointee is not None and not b.address:
                step = y * a.pointee.size
                return Value((x + step if op == "+" else x - step) & MASK64, 8, True, a.pointee)
            case "+" if b.pointee is not None and not a.address:
                return Value((y + x * b.pointee.size) & MASK64, 8, True, b.pointee)
            case "+":
                return Value(x + y, size, a.address or b.address)
            case "-":
                return Value(x - y, size, a.address and not b.address)
            case "*":
                return Value(x * y, size)
            case "/" | "%":
                if y == 0:
                    raise ExprError("Division by zero")
                q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)     # C truncates toward zero
                return Value(q if op == "/" else x - q * y, size)
            case "&":
                return Value(x & y, size)
            case "|":
                return Value(x | y, size)
            case "^":
                return Value(x ^ y, size)
            case "<<" | ">>":
                if y < 0 or y > 4096:
                    raise ExprError(f"shift count {y} is out of range")
                return Value(x << y if op == "<<" else x >> y, size)
            case "==":
                return Value(int(x == y), 4)
            case "!=":
                return Value(int(x != y), 4)
            case "<":
                return Value(int(x < y), 4)
            case "<=":
                return Value(int(x <= y), 4)
            case ">":
                return Value(int(x > y), 4)
            case _:
                return Value(int(x >= y), 4)

    def assign(self, target: Node, v: Value) -> Value:
        if target.op == "load":
            address, ctype = self.location(target)
            self.env.write(address, (v.value & ((1 << (8 * ctype.size)) - 1)).to_bytes(ctype.size, "little"))
            return Value(_convert(v.value, ctype), ctype.size)
        if target.op == "name" and self.env.register(target.name) is None:
            raise ExprError(f"{target.name} is a symbol (an address); assign to its memory with "
                            f"`*{target.name} = ...` or `*(int *){target.name} = ...`")
        self.env.set_register(target.name, v.value)
        return self.register(target.name)
