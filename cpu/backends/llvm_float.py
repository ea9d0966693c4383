"""SSE floating-point arithmetic natively, for the LLVM backend (``cpu.backends.llvm``), where that is exact.

The semantics name ADDSD, MULPS, SQRTPD ... by a helper of ``cpu.semantics.sse_float`` (``addsd(a, b,
mxcsr)``) that returns the new register value with the MXCSR exception flags above bit 128; the Python
backends call it.  Here the same helpers get a native fast path for the common case, and call Python for
the rest, so the helper's definition stays the specification (the differential tests in
``tests/semantics/test_sse_float.py`` run every case through both).

The fast path applies when MXCSR rounds to nearest and every operand and result lane it computes is a
normal number well inside its format's exponent range (biased exponent at least twice the precision plus
two above the smallest and, for double, below the largest by as much as the Veltkamp split needs).  There
IEEE 754 arithmetic on the host (LLVM's ``fadd``, ``fmul``, ... with no fast-math flags: SSE2 on x86-64,
the FPU on AArch64) is the SSE result, no exception but precision can arise, and precision is decided
exactly without an FMA instruction (which an LLVM ``llvm.fma`` call could turn into a libm call that
MCJIT cannot resolve):

- a sum: Knuth's TwoSum gives the rounding error exactly;
- single-precision products, quotients and square roots: the product of two singles is exact in double,
  so ``r * b == a`` (division) and ``r * r == b`` (square root) are exact tests;
- double-precision products: Dekker's two-product with Veltkamp's split; quotients and square roots:
  ``a - q*b`` (and ``b - r*r``) computed exactly the same way (Sterbenz's lemma makes the subtraction exact).

Anything else (another rounding mode, zeros, denormals, infinities, NaNs, results near overflow or
underflow, MIN/MAX, comparisons, conversions) goes to the Python helper.
"""

from __future__ import annotations

from typing import NamedTuple

from cpu.backends.llvm_ir import Builder, V, Val
from cpu.semantics.xmm import Mxcsr


class Shape(NamedTuple):
    """How a mnemonic's lanes look: the float type, its bits, lanes computed, and the exponent window."""

    ty: str
    bits: int
    fraction: int
    lanes: int          # lanes in 128 bits
    computed: int       # lanes the instruction computes (1 for a scalar form)
    low: int            # smallest biased exponent taken
    high: int           # largest biased exponent taken


_F32 = Shape("float", 32, 23, 4, 4, 2 * 24 + 2, 254 - 2)
_F64 = Shape("double", 64, 52, 2, 2, 2 * 53 + 2, 1023 + 995)
SHAPES = {"ss": _F32._replace(computed=1), "ps": _F32, "sd": _F64._replace(computed=1), "pd": _F64}
OPS = ("add", "sub", "mul", "div", "sqrt")
NATIVE = frozenset(op + suffix for op in OPS for suffix in SHAPES)
"""The ``cpu.semantics.sse_float`` helpers with a native fast path."""

_SPLIT = "0x41A0000002000000"       # 2**27 + 1 as LLVM's hexadecimal double
_PE = int(Mxcsr.PE)


class FloatLanes:
    """Emits the fast path through one function's :class:`Builder`; collects the intrinsics it declares."""

    def __init__(self, b: Builder, declares: set[str]) -> None:
        self.b = b
        self.declares = declares

    def arith(self, name: str, a: V, x: V, mxcsr: V) -> tuple[str, Val]:
        """``(ok, packed)``: an ``i1`` that holds where the fast path applies, and the helper's value there
        (an ``i256``: the register's new 128 bits, PE above bit 128 when the result was rounded)."""
        op, shape = name[:-2], SHAPES[name[-2:]]
        b = self.b
        vec, ivec = f"<{shape.lanes} x {shape.ty}>", f"<{shape.lanes} x i{shape.bits}>"
        a128, x128 = b.at(a, 128), b.at(x, 128)
        first = b.value(f"bitcast i128 {a128} to {vec}", 0).name
        second = b.value(f"bitcast i128 {x128} to {vec}", 0).name
        if op == "sqrt":
            self.declares.add(f"declare {vec} @llvm.sqrt.v{shape.lanes}f{shape.bits}({vec})")
            result = b.value(f"call {vec} @llvm.sqrt.v{shape.lanes}f{shape.bits}({vec} {second})", 0).name
        else:
            result = b.value(f"f{op} {vec} {first}, {second}", 0).name
        ok = [self._in_range(x128, shape)]
        if op == "sqrt":
            sign = b.value(f"lshr {ivec} {b.value(f'bitcast i128 {x128} to {ivec}', 0).name}, "
                           f"{self._splat(shape.bits - 1, shape)}", 0).name
            ok.append(b.value(f"icmp eq {ivec} {sign}, zeroinitializer", 0).name)
        else:
            ok.append(self._in_range(a128, shape))
        result_bits = b.value(f"bitcast {vec} {result} to i128", 128)
        ok.append(self._in_range(result_bits.name, shape))
        inexact = self._inexact(op, shape, first, second, result)
        ok_lanes = b.value(f"and <{shape.lanes} x i1> {ok[0]}, {ok[1]}", 0).name
        ok_lanes = b.value(f"and <{shape.lanes} x i1> {ok_lanes}, {ok[2]}", 0).name
        rounding = b.binop("and", Val(b.at(mxcsr, 64), 64), int(Mxcsr.RC), 64)
        nearest = b.icmp("eq", rounding, 0, 64)
        all_ok = b.value(f"and i1 {nearest}, {self._all(ok_lanes, shape)}", 1).name
        rounded = b.value(f"zext i1 {self._any(inexact, shape)} to i256", 256)
        if shape.computed == 1:
            lane = (1 << shape.bits) - 1
            kept = b.binop("and", Val(a128, 128), ((1 << 128) - 1) ^ lane, 128)
            value = b.binop("or", kept, b.binop("and", result_bits, lane, 128), 128)
        else:
            value = result_bits
        packed = b.binop("or", b.value(f"zext i128 {b.at(value, 128)} to i256", 256),
                         b.binop("shl", rounded, 128 + _PE.bit_length() - 1, 256), 256)
        return all_ok, Val(b.at(packed, 256), 256)

    # -- lanes ----------------------------------------------------------------------------
    def _splat(self, value: int, shape: Shape) -> str:
        return f"<{', '.join([f'i{shape.bits} {value}'] * shape.lanes)}>"

    def _in_range(self, bits128: str, shape: Shape) -> str:
        """Each lane's biased exponent inside [low, high]: a ``<lanes x i1>``."""
        b, ivec = self.b, f"<{shape.lanes} x i{shape.bits}>"
        lanes = b.value(f"bitcast i128 {bits128} to {ivec}", 0).name
        shifted = b.value(f"lshr {ivec} {lanes}, {self._splat(shape.fraction, shape)}", 0).name
        exponent = b.value(f"and {ivec} {shifted}, {self._splat((1 << (shape.bits - 1 - shape.fraction)) - 1, shape)}",
                           0).name
        above = b.value(f"icmp uge {ivec} {exponent}, {self._splat(shape.low, shape)}", 0).name
        below = b.value(f"icmp ule {ivec} {exponent}, {self._splat(shape.high, shape)}", 0).name
        return b.value(f"and <{shape.lanes} x i1> {above}, {below}", 0).name

    def _reduce(self, lanes: str, shape: Shape) -> str:
        """The computed lanes of a ``<lanes x i1>`` as the low bits of an integer."""
        b = self.b
        bits = b.value(f"bitcast <{shape.lanes} x i1> {lanes} to i{shape.lanes}", shape.lanes)
        return b.binop("and", bits, (1 << shape.computed) - 1, shape.lanes).name  # type: ignore[union-attr]

    def _all(self, lanes: str, shape: Shape) -> str:
        return self.b.icmp("eq", Val(self._reduce(lanes, shape), shape.lanes), (1 << shape.computed) - 1,
                           shape.lanes)

    def _any(self, lanes: str, shape: Shape) -> str:
        return self.b.icmp("ne", Val(self._reduce(lanes, shape), shape.lanes), 0, shape.lanes)

    # -- exactness ----------------------------------------------------------------------
    def _inexact(self, op: str, shape: Shape, a: str, x: str, r: str) -> str:
        """Per lane, whether ``r`` (``a op x`` rounded to nearest) differs from the exact result."""
        b = self.b
        vec = f"<{shape.lanes} x {shape.ty}>"
        if op in ("add", "sub"):
            y = x if op == "add" else b.value(f"fneg {vec} {x}", 0).name
            back = b.value(f"fsub {vec} {r}, {a}", 0).name                 # TwoSum: r = a + y exactly
            a_part = b.value(f"fsub {vec} {r}, {back}", 0).name
            y_error = b.value(f"fsub {vec} {y}, {back}", 0).name
            a_error = b.value(f"fsub {vec} {a}, {a_part}", 0).name
            error = b.value(f"fadd {vec} {a_error}, {y_error}", 0).name
            return b.value(f"fcmp une {vec} {error}, zeroinitializer", 0).name
        if shape.ty == "float":
            wide = f"<{shape.lanes} x double>"
            a64, x64, r64 = (b.value(f"fpext {vec} {v} to {wide}", 0).name for v in (a, x, r))
            if op == "mul":
                return b.value(f"fcmp une {wide} {r64}, {b.value(f'fmul {wide} {a64}, {x64}', 0).name}", 0).name
            if op == "div":
                return b.value(f"fcmp une {wide} {b.value(f'fmul {wide} {r64}, {x64}', 0).name}, {a64}", 0).name
            return b.value(f"fcmp une {wide} {b.value(f'fmul {wide} {r64}, {r64}', 0).name}, {x64}", 0).name
        if op == "mul":
            product, error = self._two_product(vec, a, x, r)
            return b.value(f"fcmp une {vec} {error}, zeroinitializer", 0).name
        left, right, target = (r, x, a) if op == "div" else (r, r, x)
        product, error = self._two_product(vec, left, right, None)
        difference = b.value(f"fsub {vec} {target}, {product}", 0).name       # exact: Sterbenz
        return b.value(f"fcmp une {vec} {difference}, {error}", 0).name

    def _two_product(self, vec: str, a: str, x: str, product: str | None) -> tuple[str, str]:
        """Dekker: ``(p, e)`` with ``p = fl(a * x)`` and ``a * x = p + e`` exactly (no overflow, no underflow)."""
        b = self.b
        if product is None:
            product = b.value(f"fmul {vec} {a}, {x}", 0).name
        a_hi, a_lo = self._split(vec, a)
        x_hi, x_lo = self._split(vec, x)
        error = b.value(f"fsub {vec} {b.value(f'fmul {vec} {a_hi}, {x_hi}', 0).name}, {product}", 0).name
        error = b.value(f"fadd {vec} {error}, {b.value(f'fmul {vec} {a_hi}, {x_lo}', 0).name}", 0).name
        error = b.value(f"fadd {vec} {error}, {b.value(f'fmul {vec} {a_lo}, {x_hi}', 0).name}", 0).name
        error = b.value(f"fadd {vec} {error}, {b.value(f'fmul {vec} {a_lo}, {x_lo}', 0).name}", 0).name
        return product, error

    def _split(self, vec: str, v: str) -> tuple[str, str]:
        """Veltkamp: ``v = hi + lo`` with each half 26 bits wide."""
        b = self.b
        lanes = vec.split()[0][1:]
        factor = f"<{', '.join([f'double {_SPLIT}'] * int(lanes))}>"
        c = b.value(f"fmul {vec} {v}, {factor}", 0).name
        hi = b.value(f"fsub {vec} {c}, {b.value(f'fsub {vec} {c}, {v}', 0).name}", 0).name
        return hi, b.value(f"fsub {vec} {v}, {hi}", 0).name


__all__ = ["NATIVE", "FloatLanes"]
