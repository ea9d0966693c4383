"""Architectural exceptions raised by guest code (Intel SDM Vol. 3A, ch. 6.3, table 6-1).

A :class:`GuestFault` is a Python exception that carries an x86 exception
vector, its error code and, for #PF, the faulting linear address (what CR2
receives).  Semantics and memory raise it; the run loop catches it, rolls the
CPU back to the faulting instruction and hands it on: user mode turns it into
a POSIX signal, system mode delivers it through the IDT.

This module does not deliver exceptions; that belongs to the machine.
"""

from __future__ import annotations

from enum import IntEnum


class Vector(IntEnum):
    """Exception vectors (SDM Vol. 3A, table 6-1)."""

    DE = 0    # divide error: DIV/IDIV by zero or quotient overflow
    DB = 1    # debug
    NMI = 2
    BP = 3    # INT3
    OF = 4    # INTO with OF set
    BR = 5
    UD = 6    # invalid or unimplemented opcode
    NM = 7
    DF = 8    # double fault
    TS = 10
    NP = 11
    SS = 12
    GP = 13   # general protection: non-canonical address, privileged instruction
    PF = 14   # page fault: error code + CR2
    MF = 16
    AC = 17
    MC = 18
    XM = 19   # SIMD floating-point exception


class PFError:
    """#PF error-code bits (SDM Vol. 3A, 4.7)."""

    P = 1 << 0      # 0: not-present page; 1: protection violation
    W = 1 << 1      # the access was a write
    U = 1 << 2      # the access came from CPL 3
    RSVD = 1 << 3   # a reserved bit was set in a paging entry
    I = 1 << 4      # the access was an instruction fetch  # noqa: E741


class GuestFault(Exception):
    """An x86 exception raised while executing guest code."""

    def __init__(self, vector: int, error_code: int | None = None,
                 address: int | None = None, detail: str = "") -> None:
        self.vector = Vector(vector)
        self.error_code = error_code
        self.address = address
        self.detail = detail
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"#{self.vector.name}"
        if self.error_code is not None:
            text += f" (error code {self.error_code:#x})"
        if self.address is not None:
            text += f" at address {self.address:#x}"
        if self.detail:
            text += f": {self.detail}"
        return text


class UndefinedOpcode(GuestFault):
    """#UD for bytes we cannot decode or an instruction without semantics."""

    def __init__(self, detail: str) -> None:
        super().__init__(Vector.UD, detail=detail)
