"""Sizes in bytes as people write them: ``4096``, ``64K``, ``512M``, ``2G`` (binary units; a trailing ``B`` is
allowed, case does not matter).

One reading for every size emu takes: guest memory (``emu boot --memory``, ``emu run --max-memory``) and the
code cache's cap (``EMU_CODE_CACHE_SIZE``, ``cpu.codecache``).  Decimal units (``kB`` as 1000) are not read.
"""

from __future__ import annotations

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str, what: str = "size") -> int:
    """``text`` in bytes; ValueError saying so (naming ``what``) for anything that is not a positive size."""
    spelled = text.strip().upper().removesuffix("B")
    scale = UNITS.get(spelled[-1:], 1)
    digits = spelled[:-1] if scale > 1 else spelled
    if not digits.isdigit() or int(digits) == 0:
        raise ValueError(f"not a {what}: {text!r} (examples: 4096, 64K, 512M, 1G)")
    return int(digits) * scale
