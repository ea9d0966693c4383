"""Instruction semantics, written once against the ``ops`` vocabulary (``cpu.ops``).

One module per instruction family, each registering its functions here with
:func:`semantics`.  A function has the signature ``f(ops, insn, *operands)``.
Mnemonics are capstone's base names (``"add"``, ``"stosq"``, ``"cmovne"``).

:data:`FEATURES` names the CPUID feature an instruction belongs to (``"ssse3"``,
``"bmi2"``, ``"avx2"``); mnemonics registered without one are the x86-64
baseline.  ``cpu.cpuid`` advertises a feature only when the chosen CPU level
includes it and instructions are registered for it, and the translator raises
#UD for an instruction whose feature the level lacks.

Two more registries hold Python code the semantics may name:

* :data:`HELPERS`: pure functions of integers (``popcount``, SSE lane
  arithmetic).  Backends call them; the symbolic backend prints their name.
* :data:`CALLS`: functions ``f(cpu, *args)`` that touch state wholesale
  (``cpuid``, repeated string instructions, ``fxsave``).  Backends write their
  cached registers back before and reload them after.
"""

from __future__ import annotations

from collections.abc import Callable

Semantic = Callable[..., None]

SEMANTICS: dict[str, Semantic] = {}
FEATURES: dict[str, str] = {}
HELPERS: dict[str, Callable[..., int]] = {}
CALLS: dict[str, Callable[..., int | None]] = {}


def semantics(*mnemonics: str, feature: str | None = None) -> Callable[[Semantic], Semantic]:
    """Register ``fn`` as the semantics of each mnemonic; ``feature``: the CPUID feature they need."""
    def register(fn: Semantic) -> Semantic:
        for m in mnemonics:
            if m in SEMANTICS:
                raise ValueError(f"semantics for {m!r} registered twice")
            SEMANTICS[m] = fn
            if feature is not None:
                FEATURES[m] = feature
        return fn
    return register


def helper(fn: Callable[..., int]) -> Callable[..., int]:
    """Register a pure helper under its function name."""
    HELPERS[fn.__name__] = fn
    return fn


def call(fn: Callable[..., int | None]) -> Callable[..., int | None]:
    """Register a state-touching call under its function name."""
    CALLS[fn.__name__] = fn
    return fn


def load_all() -> dict[str, Semantic]:
    """Import every family module (they register themselves) and return the table."""
    from cpu.semantics import (  # noqa: F401
        aes,
        avx,
        avx_crypto,
        avx_sse4,
        binary,
        bit,
        bmi,
        clmul,
        control,
        crc32,
        datamov,
        f16c,
        flagops,
        fma,
        gather,
        logical,
        mmx,
        muldiv,
        pcmpstr,
        privileged,
        reciprocal,
        segment,
        sha,
        shift,
        sse,
        sse3,
        sse4,
        sse4_float,
        sse_float,
        ssse3,
        stack,
        string,
        system,
        transcendental,
        vector,
        x87,
        x87_arith,
        xsave,
    )
    return SEMANTICS
