"""SSE integer lane helpers as LLVM vector IR, for the LLVM backend (``cpu.backends.llvm``).

The semantics name an SSE integer operation by a helper (``paddb(a, b)``,
``psrl(a, count, width)``, ``pshufd(a, order)``; ``cpu.semantics.sse``), and
the Python backends call that helper.  Here the same helpers become vector
instructions on the 128-bit value seen as ``<16 x i8>``, ``<8 x i16>``,
``<4 x i32>`` or ``<2 x i64>``: lane arithmetic, the saturating intrinsics
(``llvm.sadd.sat`` ...), ``shufflevector`` for shuffles and unpacks.  These
are target-independent LLVM (the language reference's vector instructions and
generic intrinsics), so every host gets native code.

What the helper's Python definition says is the specification; the
differential tests (``tests/semantics/test_sse.py``, ``test_ssse3.py``,
``test_sse4.py``) hold each lowering to it and to unicorn.  Helpers not listed
here (``pmaddwd``, ``psadbw``, the horizontal and string
operations, crypto) still call Python; SSE float arithmetic has its own fast path
(``cpu.backends.llvm_float``).
"""

from __future__ import annotations

from collections.abc import Callable

from cpu.backends.llvm_ir import Builder, V, Val
from cpu.semantics import sse, sse4
from cpu.semantics.sse import SIGNED_SATURATE, UNSIGNED_SATURATE

LANE_OPS = sse.LANE_OPS | sse4.LANE_OPS
_SATURATING = {
    ("paddsb", "paddsw"): "sadd.sat", ("psubsb", "psubsw"): "ssub.sat",
    ("paddusb", "paddusw"): "uadd.sat", ("psubusb", "psubusw"): "usub.sat",
    ("pminub", "pminuw", "pminud"): "umin", ("pmaxub", "pmaxuw", "pmaxud"): "umax",
    ("pminsw", "pminsb", "pminsd"): "smin", ("pmaxsw", "pmaxsb", "pmaxsd"): "smax",
}
_ABSOLUTE = {"pabsb": 8, "pabsw": 16, "pabsd": 32}
_INTRINSIC = {name: intrinsic for names, intrinsic in _SATURATING.items() for name in names}


class VectorLanes:
    """Emits one function's vector code through its :class:`Builder`; collects the intrinsics it declares."""

    def __init__(self, b: Builder, declares: set[str]) -> None:
        self.b = b
        self.declares = declares

    def lower(self, name: str, args: tuple[V, ...]) -> V | None:
        """The helper ``name`` applied to ``args`` as vector IR, or None when it has no such lowering
        (including when an operand that must be a translation-time constant is not)."""
        if name in LANE_OPS:
            return self._lane_op(name, *args)
        if name in sse4.EXTENSIONS:
            return self._extend(args[0], *sse4.EXTENSIONS[name])
        if name in _ABSOLUTE:
            return self._absolute(args[0], _ABSOLUTE[name])
        handler: Callable[..., V | None] | None = getattr(self, f"_{name}", None)
        if handler is None:
            return None
        return handler(*args)

    # -- plumbing ---------------------------------------------------------------------
    def vec(self, a: V, width: int) -> str:
        return self.b.value(f"bitcast i128 {self.b.at(a, 128)} to <{128 // width} x i{width}>", 0).name

    def scalar(self, v: str, width: int) -> Val:
        return self.b.value(f"bitcast <{128 // width} x i{width}> {v} to i128", 128)

    def op(self, text: str) -> str:
        return self.b.value(text, 0).name

    def intrinsic(self, name: str, vtype: str, *args: str) -> str:
        suffix = vtype.replace("<", "v").replace(" x ", "").replace(">", "")
        symbol = f"@llvm.{name}.{suffix}"
        self.declares.add(f"declare {vtype} {symbol}({', '.join([vtype] * len(args))})")
        return self.op(f"call {vtype} {symbol}({', '.join(f'{vtype} {a}' for a in args)})")

    def splat(self, value: str, width: int, n: int | None = None) -> str:
        """``value`` in each of ``n`` lanes of ``width`` bits (by default, as many as 128 bits hold)."""
        n = n or 128 // width
        one = self.op(f"insertelement <{n} x i{width}> poison, i{width} {value}, i64 0")
        return self.op(f"shufflevector <{n} x i{width}> {one}, <{n} x i{width}> poison, "
                       f"<{n} x i32> zeroinitializer")

    def shuffle(self, x: str, y: str, width: int, order: list[int], out: int | None = None) -> str:
        n = 128 // width
        mask = ", ".join(f"i32 {i}" for i in order)
        return self.op(f"shufflevector <{n} x i{width}> {x}, <{n} x i{width}> {y}, <{out or len(order)} x i32> "
                       f"<{mask}>")

    # -- lane arithmetic --------------------------------------------------------------------
    def _lane_op(self, name: str, a: V, b: V) -> V | None:
        width, _, _, fit = LANE_OPS[name]
        t = f"<{128 // width} x i{width}>"
        x, y = self.vec(a, width), self.vec(b, width)
        if name in _INTRINSIC:
            return self.scalar(self.intrinsic(_INTRINSIC[name], t, x, y), width)
        if fit in (SIGNED_SATURATE, UNSIGNED_SATURATE):
            return None
        simple = {"padd": "add", "psub": "sub", "pmull": "mul"}
        for prefix, opcode in simple.items():
            if name.startswith(prefix):
                return self.scalar(self.op(f"{opcode} {t} {x}, {y}"), width)
        if name == "pcmpeqq":
            return self._equal(a, b, 64)
        if name.startswith("pcmpgt"):
            bits = self.op(f"icmp sgt {t} {x}, {y}")
            return self.scalar(self.op(f"sext <{128 // width} x i1> {bits} to {t}"), width)
        if name.startswith(("pavg", "pmulh")):
            wide = f"<{128 // width} x i{2 * width}>"
            ext = "sext" if name == "pmulhw" else "zext"
            xw, yw = self.op(f"{ext} {t} {x} to {wide}"), self.op(f"{ext} {t} {y} to {wide}")
            if name.startswith("pavg"):
                one = self.splat("1", 2 * width, 128 // width)
                total = self.op(f"add {wide} {self.op(f'add {wide} {xw}, {yw}')}, {one}")
                shifted = self.op(f"lshr {wide} {total}, {one}")
            else:
                count = self.splat(str(width), 2 * width, 128 // width)
                shifted = self.op(f"lshr {wide} {self.op(f'mul {wide} {xw}, {yw}')}, {count}")
            return self.scalar(self.op(f"trunc {wide} {shifted} to {t}"), width)
        if name == "pmuludq":
            low = self.splat("4294967295", 64)
            return self.scalar(self.op(f"mul {t} {self.op(f'and {t} {x}, {low}')}, {self.op(f'and {t} {y}, {low}')}"),
                               64)
        return None

    def _equal(self, a: V, b: V, width: int) -> V:
        t = f"<{128 // width} x i{width}>"
        bits = self.op(f"icmp eq {t} {self.vec(a, width)}, {self.vec(b, width)}")
        return self.scalar(self.op(f"sext <{128 // width} x i1> {bits} to {t}"), width)

    def _pcmpeqb(self, a: V, b: V) -> V:
        return self._equal(a, b, 8)

    def _pcmpeqw(self, a: V, b: V) -> V:
        return self._equal(a, b, 16)

    def _pcmpeqd(self, a: V, b: V) -> V:
        return self._equal(a, b, 32)

    def _absolute(self, a: V, width: int) -> V:
        t = f"<{128 // width} x i{width}>"
        x = self.vec(a, width)
        negative = self.op(f"icmp slt {t} {x}, zeroinitializer")
        minus = self.op(f"sub {t} zeroinitializer, {x}")
        return self.scalar(self.op(f"select <{128 // width} x i1> {negative}, {t} {minus}, {t} {x}"), width)

    def _extend(self, a: V, source: int, target: int, signed: bool) -> V:
        """PMOVSX/PMOVZX: the low lanes of ``source`` bits, sign- or zero-extended to ``target`` bits."""
        n = 128 // target
        low = self.shuffle(self.vec(a, source), self.vec(a, source), source, list(range(n)))
        wide = self.op(f"{'sext' if signed else 'zext'} <{n} x i{source}> {low} to <{n} x i{target}>")
        return self.scalar(wide, target)

    # -- shifts: every lane by one count ------------------------------------------------------
    def _shift(self, kind: str, a: V, count: V, width: int) -> V | None:
        if not isinstance(width, int):
            return None
        b = self.b
        t = f"<{128 // width} x i{width}>"
        big = b.icmp("uge", count, width if kind != "ashr" else width - 1, 64)
        n = b.select(big, width - 1 if kind == "ashr" else 0, count)
        amount = self.splat(b.at(n, width), width)
        shifted = self.scalar(self.op(f"{kind} {t} {self.vec(a, width)}, {amount}"), width)
        return shifted if kind == "ashr" else b.select(big, 0, shifted)

    def _psll(self, a: V, count: V, width: V) -> V | None:
        return self._shift("shl", a, count, width)   # type: ignore[arg-type]

    def _psrl(self, a: V, count: V, width: V) -> V | None:
        return self._shift("lshr", a, count, width)  # type: ignore[arg-type]

    def _psra(self, a: V, count: V, width: V) -> V | None:
        return self._shift("ashr", a, count, width)  # type: ignore[arg-type]

    # -- shuffles and unpacks (the order is an immediate) -----------------------------------------
    def _pshufd(self, a: V, order: V) -> V | None:
        if not isinstance(order, int):
            return None
        x = self.vec(a, 32)
        return self.scalar(self.shuffle(x, x, 32, [(order >> 2 * i) & 3 for i in range(4)]), 32)

    def _pshuflw(self, a: V, order: V) -> V | None:
        if not isinstance(order, int):
            return None
        x = self.vec(a, 16)
        return self.scalar(self.shuffle(x, x, 16, [(order >> 2 * i) & 3 for i in range(4)] + [4, 5, 6, 7]), 16)

    def _pshufhw(self, a: V, order: V) -> V | None:
        if not isinstance(order, int):
            return None
        x = self.vec(a, 16)
        return self.scalar(self.shuffle(x, x, 16, [0, 1, 2, 3] + [4 + ((order >> 2 * i) & 3) for i in range(4)]),
                           16)

    def _shufps(self, a: V, b: V, order: V) -> V | None:
        if not isinstance(order, int):
            return None
        lanes = [order & 3, (order >> 2) & 3, 4 + ((order >> 4) & 3), 4 + ((order >> 6) & 3)]
        return self.scalar(self.shuffle(self.vec(a, 32), self.vec(b, 32), 32, lanes), 32)

    def _shufpd(self, a: V, b: V, order: V) -> V | None:
        if not isinstance(order, int):
            return None
        return self.scalar(self.shuffle(self.vec(a, 64), self.vec(b, 64), 64, [order & 1, 2 + ((order >> 1) & 1)]),
                           64)

    def _blend(self, a: V, b: V, imm: V, width: V) -> V | None:
        if not isinstance(imm, int) or not isinstance(width, int):
            return None
        n = 128 // width
        return self.scalar(self.shuffle(self.vec(a, width), self.vec(b, width), width,
                                        [n + i if imm >> i & 1 else i for i in range(n)]), width)

    def _blendv(self, a: V, b: V, mask: V, width: V) -> V | None:
        if not isinstance(width, int):
            return None
        n = 128 // width
        t = f"<{n} x i{width}>"
        take = self.op(f"icmp slt {t} {self.vec(mask, width)}, zeroinitializer")
        return self.scalar(self.op(f"select <{n} x i1> {take}, {t} {self.vec(b, width)}, {t} {self.vec(a, width)}"),
                           width)

    def _palignr(self, a: V, b: V, imm: V) -> V | None:
        """The bytes of b:a (b low) from byte imm on; bytes past the 32 read as zero."""
        if not isinstance(imm, int):
            return None
        if imm >= 32:
            return 0
        if imm < 16:
            return self.scalar(self.shuffle(self.vec(b, 8), self.vec(a, 8), 8, [imm + i for i in range(16)]), 8)
        order = [imm - 16 + i if imm - 16 + i < 16 else 16 for i in range(16)]
        return self.scalar(self.shuffle(self.vec(a, 8), "zeroinitializer", 8, order), 8)

    def _pshufb(self, a: V, b: V) -> V:
        """Byte i: byte (b[i] & 15) of a, or 0 when b[i] is negative; one extract/insert per byte."""
        t = "<16 x i8>"
        x, order = self.vec(a, 8), self.vec(b, 8)
        index = self.op(f"and {t} {order}, {self.splat('15', 8)}")
        out = "zeroinitializer"
        for i in range(16):
            k = self.op(f"extractelement {t} {index}, i64 {i}")
            out = self.op(f"insertelement {t} {out}, i8 {self.op(f'extractelement {t} {x}, i8 {k}')}, i64 {i}")
        negative = self.op(f"icmp slt {t} {order}, zeroinitializer")
        return self.scalar(self.op(f"select <16 x i1> {negative}, {t} zeroinitializer, {t} {out}"), 8)

    def _unpack(self, a: V, b: V, width: V, high: bool) -> V | None:
        if not isinstance(width, int):
            return None
        n = 128 // width
        start = n // 2 if high else 0
        order = [i for k in range(n // 2) for i in (start + k, n + start + k)]
        return self.scalar(self.shuffle(self.vec(a, width), self.vec(b, width), width, order), width)

    def _unpack_low(self, a: V, b: V, width: V) -> V | None:
        return self._unpack(a, b, width, False)

    def _unpack_high(self, a: V, b: V, width: V) -> V | None:
        return self._unpack(a, b, width, True)

    # -- packs and masks --------------------------------------------------------------------------
    def _pack(self, a: V, b: V, width: int, signed_result: bool) -> V:
        n, half = 128 // width, width // 2
        both = self.shuffle(self.vec(a, width), self.vec(b, width), width, list(range(2 * n)))
        t = f"<{2 * n} x i{width}>"
        lo, hi = (-(1 << (half - 1)), (1 << (half - 1)) - 1) if signed_result else (0, (1 << half) - 1)
        low = self.op(f"insertelement {t} poison, i{width} {lo}, i64 0")
        low = self.op(f"shufflevector {t} {low}, {t} poison, <{2 * n} x i32> zeroinitializer")
        high = self.op(f"insertelement {t} poison, i{width} {hi}, i64 0")
        high = self.op(f"shufflevector {t} {high}, {t} poison, <{2 * n} x i32> zeroinitializer")
        clamped = self.intrinsic("smin", t, self.intrinsic("smax", t, both, low), high)
        return self.scalar(self.op(f"trunc {t} {clamped} to <{2 * n} x i{half}>"), half)

    def _packsswb(self, a: V, b: V) -> V:
        return self._pack(a, b, 16, True)

    def _packuswb(self, a: V, b: V) -> V:
        return self._pack(a, b, 16, False)

    def _packssdw(self, a: V, b: V) -> V:
        return self._pack(a, b, 32, True)

    def _packusdw(self, a: V, b: V) -> V:
        return self._pack(a, b, 32, False)

    def _movmsk(self, a: V, width: V) -> V | None:
        if not isinstance(width, int):
            return None
        n = 128 // width
        bits = self.op(f"icmp slt <{n} x i{width}> {self.vec(a, width)}, zeroinitializer")
        packed = self.op(f"bitcast <{n} x i1> {bits} to i{n}")
        return self.b.value(f"zext i{n} {packed} to i64", 64)
