"""A block taken from the code cache (``cpu.codecache``): what its ``Translation`` holds besides its code.

A stored block keeps its code object and instruction count at hand; its instruction offsets, the snapshots a
rollback reads and their line numbers stay marshalled until a fault, the JIT's lowering or ``explain`` reads
them (unpacking them with every block cost a warm boot ~20 tuples a block for the cyclic collector to scan,
and their unmarshalling), and its instruction records are decoded again from its verified bytes only then.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence

from cpu.backends.python import Snapshot, Translation
from cpu.decoder import Decoder, Insn


class StoredDetail:
    """What a cached block's run needs only when it faults, is lowered or explained: its instruction offsets,
    its snapshots and their line numbers, kept marshalled until first read."""

    __slots__ = ("data", "_unpacked")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._unpacked: tuple[tuple[int, ...], tuple[int, ...], tuple[tuple, ...]] | None = None

    @property
    def unpacked(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple, ...]]:
        """(instruction offsets, each snapshot's first line, snapshots)."""
        if self._unpacked is None:
            self._unpacked = marshal.loads(self.data)
        return self._unpacked


class StoredInsns(Sequence[Insn]):
    """The instruction records of a cached block, decoded again from its verified bytes when first read."""

    __slots__ = ("code", "rip", "length", "detail", "decoder", "_decoded")

    def __init__(self, code: bytes, rip: int, length: int, detail: StoredDetail, decoder: Decoder) -> None:
        self.code = code
        self.rip = rip
        self.length = length
        self.detail = detail
        self.decoder = decoder
        self._decoded: dict[int, Insn] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - Sequence's int-or-slice protocol
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        insn = self._decoded.get(index)
        if insn is None:
            offset = self.detail.unpacked[0][index]
            insn = self._decoded[index] = self.decoder.decode_bytes(self.code[offset:], self.rip + offset)
        return insn


def insn_bounds(insns: Sequence[Insn], index: int) -> tuple[int, int]:
    """The address of instruction ``index`` of a block and the address after it, without decoding a stored
    block's instruction (a fault's rollback needs only these; decoding the first one imported capstone, ~16 ms
    of a warm boot that otherwise decodes nothing)."""
    if isinstance(insns, StoredInsns):
        offsets = insns.detail.unpacked[0]
        index = range(insns.length)[index]
        end = offsets[index + 1] if index + 1 < insns.length else len(insns.code)
        return insns.rip + offsets[index], insns.rip + end
    insn = insns[index]
    return insn.address, insn.next


class StoredSnapshots(Sequence[Snapshot]):
    """The snapshots of a cached block, made into :class:`Snapshot` records when a rollback reads one."""

    __slots__ = ("detail",)

    def __init__(self, detail: StoredDetail) -> None:
        self.detail = detail

    def __len__(self) -> int:
        return len(self.detail.unpacked[2])

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - Sequence's int-or-slice protocol
        rows = self.detail.unpacked[2]
        if isinstance(index, slice):
            return [Snapshot(*row) for row in rows[index]]
        return Snapshot(*rows[index])


class StoredTranslation(Translation):
    """The ``Translation`` of a cached block: its snapshots and their lines are unpacked when read (at a
    fault, a lowering or ``explain``), not two more objects for each of a warm boot's 28 k blocks."""

    def __init__(self, code: bytes, rip: int, count: int, detail: bytes, decoder: Decoder,
                 event: str | None) -> None:
        self.source = ""
        self.event = event
        self.detail = StoredDetail(detail)
        self.insns = StoredInsns(code, rip, count, self.detail, decoder)

    @property
    def lines(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.detail.unpacked[1]

    @property
    def snapshots(self) -> StoredSnapshots:  # type: ignore[override]
        return StoredSnapshots(self.detail)
