"""The persistent code cache: translated blocks kept on disk and reused by later runs.

Translating a block (capstone's decoding, the semantics run through
:class:`cpu.backends.python.PyOps`, ``compile()``) costs about 0.1 ms per instruction,
and short runs are mostly translation: a busybox applet, or the 140 k
instructions a Linux boot translates.  This is item 3 of the execution tiers
in the starting design, for the Python backend: each translated block's code
object (``marshal``) and what the run loop needs to know of it are kept in an
SQLite database, so that a second run loads blocks instead of translating them.

What a translation depends on, and so what the key covers:

* the guest bytes of its instructions.  They are stored whole and compared
  with guest memory before use (never trusted from a hash), fetched so that
  exactly the pages translation would fetch from are touched (:meth:`lookup`);
* its start address: RIP-relative addresses and branch targets are constants
  in the generated code;
* the CPU level (``cpu.cpuid``): an instruction whose feature the level lacks
  translates to #UD (or TZCNT to BSF), so a block is kept per level;
* the block-size limit (``Interpreter.max_block``, or 1 for the
  one-instruction blocks of stepping and of the end of an instruction budget:
  a warm boot translated 498 of those, 0.12 s, before they were kept too).
  Blocks cut at a breakpoint are never stored, and a stored block is not used
  when a breakpoint falls inside it.  Neither is a block stored that ended
  because its next instruction could not be fetched or decoded: its length
  depends on bytes past its end;
* the translator: :data:`VERSION` hashes the source of every module under
  ``cpu/`` (``cpu/semantics/`` and ``cpu/backends/`` included), capstone's
  version and Python's bytecode format.  Each version has its own database file.

A block from the cache is then handled exactly like a fresh one: registered
with its pages, checked against the fetch TLB in system mode, dropped when its
code is written.  The cache only answers where ``Interpreter.translate`` would
otherwise translate.  Its ``Translation`` has no source text (only the code is
kept) and decodes its instruction records again from the verified bytes on the
rare occasions they are read (a fault's rollback).

The database is ``$EMU_CACHE_DIR/code/<version>.sqlite`` (else under
``$XDG_CACHE_HOME/emu`` or ``~/.cache/emu``), in WAL mode so that concurrent
runs read while one writes; new blocks are written in batches (every
:data:`FLUSH_EVERY` blocks and at exit).  Its size is capped, like ccache's:
``EMU_CODE_CACHE_SIZE`` (default :data:`MAX_BYTES`, 1 GiB).  Every block and
native module carries a stamp of when a run last used it: the hour, or one
more than the stamp of the last eviction if that is later (so rows used
since an eviction rank above those that were not).  A stamp is written at
most once per row and stamp, in a small table of its own so that a big row is
never rewritten (noting every row a warm boot uses on every run was measured
at 40-90 ms).  A run that opens a database over the cap first deletes its
least recently used rows (oldest stamp, then oldest row) down to
:data:`EVICT_TO` of the cap, so a test runner's cache keeps taking the code it
runs now instead of filling up with what it ran last month.

The cache is only an optimisation: any error (a directory that cannot be
created, a corrupt file, a lock held too long) switches it off for the rest of
the run, logged once at INFO level on the ``emu.codecache`` logger, so a
program's own stderr stays its own;
``--stats`` shows the reason.  ``EMU_CODE_CACHE=0`` (or ``--no-code-cache``)
turns it off.  The files are trusted like ``__pycache__``: code is loaded
from them.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import marshal
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import CodeType
from typing import NamedTuple

from cpu.backends.python import Translation
from cpu.decoder import MAX_INSN_LEN, Decoder, Insn
from cpu.exceptions import GuestFault
from cpu.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from cpu.sizes import parse_size
from cpu.storedblock import StoredTranslation

FLUSH_EVERY = 512
"""New blocks kept in memory before they are written out."""
KEEP_OTHER_VERSIONS = 3
"""Databases of other translator versions kept (most recently used first); older ones are deleted."""
LOCK_TIMEOUT = 5.0
"""Seconds to wait for another run's write lock before giving up on the cache."""
MAX_BYTES = 1 << 30
"""The default cap on a database's live bytes (``EMU_CODE_CACHE_SIZE`` sets another): a boot stores about
40 MB, a test runner's day of static programs more."""
EVICT_TO = 0.75
"""A database found over its cap is brought down to this share of it, its least recently used rows first."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    addr INTEGER NOT NULL,  -- start address, as a signed 64-bit integer
    lim INTEGER NOT NULL,   -- the block-size limit it was translated under
    cpu TEXT NOT NULL,      -- the CPU level it was translated for (cpu.cpuid)
    code BLOB NOT NULL,     -- the guest bytes of its instructions
    span INTEGER NOT NULL,  -- bytes translation fetched from addr: offset of the last instruction + 15
    data BLOB NOT NULL,     -- marshal: (code object, event, instruction count,
                            --           marshal of (instruction offsets, lines, snapshots))
    PRIMARY KEY (addr, lim, cpu, code, span)    -- span follows from code: in the key so that a page's
                                                -- keys are read from the index alone (CodeCache._blocks)
);
CREATE TABLE IF NOT EXISTS natives (
    key BLOB PRIMARY KEY,   -- cpu.jit's hash of a module's blocks (addresses, bytes), the translator, the
                            -- LLVM version, the target and the host CPU
    meta BLOB NOT NULL,     -- marshal: what the JIT needs to know of its blocks (names, exit sites)
    obj BLOB NOT NULL       -- the object code LLVM made of that module
);
CREATE TABLE IF NOT EXISTS placements (
    page INTEGER NOT NULL,  -- the guest page of a block's first byte (its address >> 12, signed)
    addr INTEGER NOT NULL,  -- the block's address (signed): a block elsewhere is not hashed to be looked up
    block BLOB NOT NULL,    -- cpu.jit's hash of that one block (address, instruction count, bytes, target)
    module BLOB NOT NULL,   -- the key of a module in natives that holds its native code
    PRIMARY KEY (page, block)
);
CREATE TABLE IF NOT EXISTS block_uses (
    id INTEGER PRIMARY KEY, -- a row of blocks (its rowid)
    stamp INTEGER NOT NULL  -- when a run last used it (CodeCache.stamp)
);
CREATE TABLE IF NOT EXISTS native_uses (
    id INTEGER PRIMARY KEY, -- a row of natives (its rowid)
    stamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evictions (
    stamp INTEGER NOT NULL  -- the stamp the last eviction gave the runs after it
)"""
_USES = (("blocks", "block_uses"), ("natives", "native_uses"))
"""Each table whose rows are evicted, and the table of when each row was last used."""


def translator_sources() -> list[Path]:
    """The modules whose source decides what translation produces: every ``.py`` under ``cpu/``
    (``cpu/*.py``, ``cpu/semantics/``, ``cpu/backends/``)."""
    root = Path(__file__).resolve().parent
    return sorted(root.rglob("*.py"))


def capstone_files() -> list[Path]:
    """The capstone that decodes, as files: its binding's ``__init__.py`` (which holds its version) and the
    libraries it ships.  Read without importing it: a run whose blocks all come from the cache never decodes,
    and importing capstone (every architecture's module) costs ~45 ms."""
    spec = importlib.util.find_spec("capstone")
    if spec is None or spec.origin is None:
        raise OSError("capstone is not installed: run ./scripts/setup")
    package = Path(spec.origin).parent
    return [package / "__init__.py", *sorted((package / "lib").glob("*"))]


def version_key(paths: Iterable[Path] | None = None) -> str:
    """A short hash of the translator: the given sources (default :func:`translator_sources`), the
    capstone that decodes (:func:`capstone_files`: the binding's source, its libraries' names and sizes) and
    the bytecode format the code objects are in."""
    digest = hashlib.sha256(f"emu code cache 1; python {importlib.util.MAGIC_NUMBER.hex()}; marshal "
                            f"{marshal.version}\n".encode())
    for path in capstone_files():
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        if path.suffix == ".py":
            digest.update(path.read_bytes())
    files = [Path(p) for p in (translator_sources() if paths is None else paths)]
    named = {f"{path.parent.name}/{path.name}": path for path in files}    # the same wherever the tree is
    for name in sorted(named):
        data = named[name].read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


try:
    VERSION: str | None = version_key()
except OSError:             # sources not readable as files (a zip install): no persistent cache
    VERSION = None


def cache_dir() -> Path:
    """``$EMU_CACHE_DIR/code``, else ``~/.cache/emu/code`` (``$XDG_CACHE_HOME/emu/code`` when that is set)."""
    if os.environ.get("EMU_CACHE_DIR"):
        return Path(os.environ["EMU_CACHE_DIR"]).expanduser() / "code"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "emu" / "code"


def enabled_by_environment() -> bool:
    """False when ``EMU_CODE_CACHE`` says off (``0``, ``no``, ``off``, ``false``)."""
    return os.environ.get("EMU_CODE_CACHE", "1").strip().lower() not in ("0", "no", "off", "false")


def size_cap() -> int:
    """``EMU_CODE_CACHE_SIZE`` in bytes (``cpu.sizes``: ``500M``, ``2G``, ``64K`` or a number of bytes), else
    :data:`MAX_BYTES`; ValueError saying what is wrong for anything else."""
    text = os.environ.get("EMU_CODE_CACHE_SIZE", "").strip()
    return parse_size(text, "size for EMU_CODE_CACHE_SIZE") if text else MAX_BYTES


class Hit(NamedTuple):
    """A block found in the cache: its code, its translation, and the address just past its bytes."""

    code: CodeType
    translation: Translation
    end: int


def _signed(address: int) -> int:
    """An address as SQLite's signed 64-bit INTEGER."""
    return address - (1 << 64) if address >> 63 else address


class CodeCache:
    """One database of translated blocks for one translator :data:`VERSION`.

    ``error`` is None while the cache works, else why it was switched off.
    """

    _shared: dict[Path, CodeCache] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self.full = False
        self.pending: list[tuple[int, int, str, bytes, int, bytes]] = []
        self.pending_natives: list[tuple[bytes, bytes, bytes]] = []
        self.pending_placements: list[tuple[int, int, bytes, bytes]] = []
        self.pages: dict[tuple[int, int, str], dict[int, list[list]]] = {}
        """The stored blocks of each page looked at so far, by address (see :meth:`_rows`)."""
        self.mixed: set[tuple[int, int, str]] = set()
        """Pages that also held blocks whose bytes were not the page's when it was read."""
        self.placements: dict[int, dict[int, dict[bytes, bytes]]] = {}
        """Each page's placements read so far (one query a page), with this run's own added."""
        self.cap = MAX_BYTES
        self.stamp = int(time.time()) // 3600
        """This run's mark on the rows it uses: the hour since the epoch, or the last eviction's if later."""
        self.used: dict[str, set[int]] = {table: set() for table, _ in _USES}
        """Rows of each table this run used whose stamp is older than this run's (written at flush)."""
        self._lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None
        try:
            self.cap = size_cap()
            self.db = self._connect()
            self.reader = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None,
                                          check_same_thread=False)
            (last,), = self.db.execute("SELECT coalesce(max(stamp), 0) FROM evictions").fetchall()
            self.stamp = max(self.stamp, last)
            if self._live_bytes() > self.cap:
                self._evict()
            self.full = self._live_bytes() > self.cap
        except (OSError, sqlite3.Error, ValueError) as err:
            self._fail(err)
            return
        atexit.register(self.close)

    @classmethod
    def open(cls, directory: str | Path | None = None) -> CodeCache | None:
        """The cache of this translator version (one per process and directory), or None when
        ``EMU_CODE_CACHE`` turns it off.  Never raises: a cache that cannot work is returned
        switched off, with ``error`` saying why."""
        if not enabled_by_environment():
            return None
        directory = Path(directory) if directory is not None else cache_dir()
        path = directory / f"{VERSION}.sqlite"
        cache = cls._shared.get(path)
        if cache is None:
            cache = cls._shared[path] = cls(path)
            if VERSION is None:
                cache._fail("the translator's sources cannot be read, so no version key")
        return cache

    def _connect(self) -> sqlite3.Connection:
        if VERSION is None:
            raise OSError("no version key")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _prune(self.path)
        for attempt in range(2):
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                return db
            except sqlite3.OperationalError:
                db.close()
                raise
            except sqlite3.DatabaseError:    # not a database, or malformed: start this version's file afresh
                db.close()
                if attempt:
                    raise
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _live_bytes(self) -> int:
        """The bytes the database's pages hold now (its file keeps the freed ones, which new rows reuse)."""
        assert self.db is not None
        (pages,), = self.db.execute("PRAGMA page_count").fetchall()
        (free,), = self.db.execute("PRAGMA freelist_count").fetchall()
        (size,), = self.db.execute("PRAGMA page_size").fetchall()
        return (pages - free) * size

    def _evict(self) -> None:
        """Delete the least recently used rows of blocks and natives (the same share of each, oldest stamp first,
        then oldest row) until about :data:`EVICT_TO` of the cap is left, and the placements of the modules
        deleted; the runs from now on use a newer stamp.  One write transaction: a run reading meanwhile keeps
        its snapshot."""
        assert self.db is not None
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                live = self._live_bytes()
                share = 1 - EVICT_TO * self.cap / live if live > self.cap else 0.0
                for table, uses in _USES if share > 0 else ():
                    (rows,), = self.db.execute(f"SELECT count(*) FROM {table}").fetchall()
                    self.db.execute("DROP TABLE IF EXISTS temp.gone")
                    self.db.execute(f"CREATE TEMP TABLE gone AS SELECT id FROM {uses} ORDER BY stamp, id LIMIT ?",
                                    (math.ceil(rows * share),))
                    self.db.execute(f"DELETE FROM {table} WHERE rowid IN temp.gone")
                    self.db.execute(f"DELETE FROM {uses} WHERE id IN temp.gone")
                self.db.execute("DELETE FROM placements WHERE module NOT IN (SELECT key FROM natives)")
                (last,), = self.db.execute("SELECT coalesce(max(stamp), 0) FROM evictions").fetchall()
                self.stamp = max(self.stamp, last) + 1
                self.db.execute("DELETE FROM evictions")
                self.db.execute("INSERT INTO evictions VALUES (?)", (self.stamp,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("DROP TABLE IF EXISTS temp.gone")

    def _fail(self, err: object) -> None:
        """Switch the cache off for the rest of the run (the one log line it ever writes)."""
        if self.error is None:
            import logging  # only now: importing it costs every run a few ms

            self.error = str(err) or type(err).__name__
            logging.getLogger("emu.codecache").info("code cache %s off: %s", self.path, self.error)
        self._drop_pending()
        self._disconnect()

    def _drop_pending(self) -> None:
        """Forget what this run has not written yet."""
        self.pending.clear()
        self.pending_natives.clear()
        self.pending_placements.clear()
        for rows in self.used.values():
            rows.clear()

    def _disconnect(self) -> None:
        for db in (self.db, self.reader):
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
        self.db = self.reader = None

    def _read(self, sql: str, args: tuple) -> list[tuple]:
        """Rows of a query on the reading connection, inside one read transaction that lasts until the next
        :meth:`flush`: a statement of its own would take and drop the WAL's shared lock each time, which
        was half the cost of a lookup (measured: 28 k lookups in a warm boot, ~15 % of its run time)."""
        assert self.reader is not None
        with self._lock:
            if not self.reader.in_transaction:
                self.reader.execute("BEGIN")
            return self.reader.execute(sql, args).fetchall()

    # -- reading ------------------------------------------------------------------------------
    def lookup(self, rip: int, limit: int, fetch: Callable[[int, int], bytes], decoder: Decoder, cpu: str,
               breakpoints: frozenset[int] = frozenset(),
               code_page: Callable[[int], bytes | None] = lambda _: None) -> Hit | None:
        """The stored block translation would produce at ``rip`` now for the CPU level ``cpu``, or None.

        ``fetch`` is the interpreter's instruction fetch.  It is called so
        that exactly the pages translation would read are read (a page walk
        sets accessed bits and fills the TLB): first the block's bytes within
        the page of ``rip``, which translation always reads; then, only when
        those match, up to ``span`` when the last instruction's 15-byte fetch
        window reaches into the next page, as translation's fetch of it would.
        ``code_page(address)`` gives the bytes of the page holding ``address``
        as fetch reads them now when that is RAM (None for a device's page), so
        that only a page's stored blocks that match it are read (:meth:`_rows`).
        """
        if self.db is None:
            return None
        try:
            hit = self._match(self._rows(rip, limit, cpu, code_page), rip, fetch, decoder, breakpoints)
            if hit is None:
                hit = self._match(self._rows(rip, limit, cpu, code_page, again=True), rip, fetch, decoder,
                                  breakpoints)
        except sqlite3.Error as err:
            self._fail(err)
            return None
        except GuestFault:
            return None
        return hit

    def _match(self, rows: list[list], rip: int, fetch: Callable[[int, int], bytes], decoder: Decoder,
               breakpoints: frozenset[int]) -> Hit | None:
        """The first of ``rows`` that is the code at ``rip`` now (see :meth:`lookup`), as a hit."""
        room = PAGE_SIZE - (rip & PAGE_MASK)
        for code, span, data, row, stamp in rows:
            if breakpoints and any(rip < b < rip + len(code) for b in breakpoints):
                continue                    # translation would cut it (and read no further than the cut)
            if not _same_bytes(code, span, rip, room, fetch):
                continue
            try:
                fn_code, event, count, detail = marshal.loads(data)
            except (ValueError, EOFError, TypeError):        # a damaged row: translate instead
                continue
            if not (isinstance(fn_code, CodeType) and isinstance(count, int) and isinstance(detail, bytes)):
                continue
            translation = StoredTranslation(code, rip, count, detail, decoder, event)
            if row is not None and stamp != self.stamp:
                self.used["blocks"].add(row)
            return Hit(fn_code, translation, rip + len(code))
        return None

    def _rows(self, rip: int, limit: int, cpu: str, code_page: Callable[[int], bytes | None],
              again: bool = False) -> list[list]:
        """The stored blocks at ``rip`` that may be the code there now: [code, span, data, row id, stamp] each.

        A page is read once, not a block at a time (a query cost 4.5 us in SQLite alone, and a warm boot looks
        up 28 k blocks on 458 pages), and only its blocks whose bytes within the page are the page's bytes then
        (SQLite compares them): a page can hold the code of many programs or kernels at the same addresses (a
        test runner's 0x401000 held 5,819 blocks, and reading all their keys took sha256 80 ms; the default
        guest's and Debian's kernels share their addresses).  ``again``: none of those was the code at ``rip``;
        if the page held other blocks too, the ones at ``rip`` that match the page's bytes now are read (code
        patched or loaded since the page was read), else none."""
        first = _signed(rip & ~PAGE_MASK)
        key = (first, limit, cpu)
        page = self.pages.get(key)
        if page is None:
            page = self.pages[key] = self._blocks(first, first, first + PAGE_MASK, limit, cpu,
                                                  code_page(rip & ~PAGE_MASK))
            (count,), = self._read("SELECT count(*) FROM blocks WHERE addr BETWEEN ? AND ? AND lim = ? AND cpu = ?",
                                   (first, first + PAGE_MASK, limit, cpu))     # from the index alone
            if count > sum(map(len, page.values())):
                self.mixed.add(key)
        here = _signed(rip)
        if not again:
            return page.get(here, [])
        if key not in self.mixed:
            return []
        known = {stored[3] for stored in page.get(here, ())}
        found = self._blocks(first, here, here, limit, cpu, code_page(rip & ~PAGE_MASK))
        fresh = [stored for stored in found.get(here, ()) if stored[3] not in known]
        page.setdefault(here, []).extend(fresh)
        return fresh

    def _blocks(self, first: int, low: int, high: int, limit: int, cpu: str,
                now: bytes | None) -> dict[int, list[list]]:
        """The stored blocks from ``low`` to ``high`` (signed addresses in the page at ``first``) whose bytes
        within the page are those of ``now`` (the page's bytes, None: a device's page, which matches none), by
        address.  One query: SQLite compares the bytes in the key's index and reads a row's data only for a
        match (its plan defers the seek into the table)."""
        found: dict[int, list[list]] = {}
        if now is None:
            return found
        for addr, code, span, row, data, stamp in self._read(
                "SELECT b.addr, b.code, b.span, b.rowid, b.data, u.stamp FROM blocks b LEFT JOIN block_uses u "
                "ON u.id = b.rowid WHERE b.addr BETWEEN ? AND ? AND b.lim = ? AND b.cpu = ? "
                f"AND substr(?, b.addr - ? + 1, length(b.code)) = substr(b.code, 1, {PAGE_SIZE} - (b.addr - ?))",
                (low, high, limit, cpu, now, first, first)):
            found.setdefault(addr, []).append([code, span, data, row, stamp])
        return found

    # -- writing ------------------------------------------------------------------------------
    def store(self, rip: int, limit: int, cpu: str, insns: Sequence[Insn], translation: Translation,
              code: CodeType) -> None:
        """Keep a block translation just produced for the CPU level ``cpu`` (complete: not cut at a breakpoint
        or a decoding fault)."""
        if self.db is None or self.full:
            return
        data_bytes = b"".join(insn.raw for insn in insns)
        offsets = tuple(insn.address - rip for insn in insns)
        snapshots = tuple((s.index, s.dirty, s.cc) for s in translation.snapshots)
        try:
            detail = marshal.dumps((offsets, tuple(translation.lines), snapshots))
            data = marshal.dumps((code, translation.event, len(offsets), detail))
        except ValueError as err:
            self._fail(err)
            return
        row = (_signed(rip), limit, cpu, data_bytes, offsets[-1] + MAX_INSN_LEN, data)
        self.pending.append(row)
        page = self.pages.get((_signed(rip & ~PAGE_MASK), limit, cpu))
        if page is not None:
            page.setdefault(row[0], []).append([*row[3:], None, self.stamp])
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def native(self, key: bytes) -> tuple[bytes, bytes] | None:
        """The object code and metadata kept for a native module with this key (``cpu.jit``), if any."""
        if self.db is None:
            return None
        for pending in self.pending_natives:
            if pending[0] == key:
                return pending[1], pending[2]
        try:
            rows = self._read("SELECT n.obj, n.meta, n.rowid, u.stamp FROM natives n LEFT JOIN native_uses u "
                              "ON u.id = n.rowid WHERE key = ?", (key,))
        except sqlite3.Error as err:
            self._fail(err)
            return None
        if not rows:
            return None
        code, meta, row, stamp = rows[0]
        if stamp != self.stamp:
            self.used["natives"].add(row)
        return bytes(code), bytes(meta)

    def store_native(self, key: bytes, obj: bytes, meta: bytes) -> None:
        """Keep the object code of a native module just compiled, and what the JIT needs to use it."""
        if self.db is None or self.full:
            return
        self.pending_natives.append((key, obj, meta))
        if len(self.pending_natives) >= FLUSH_EVERY // 8:
            self.flush()

    def placement(self, rip: int, block: Callable[[], bytes]) -> bytes | None:
        """The key of a native module that holds the code of the block at ``rip`` whose hash ``block()`` gives
        (called only when some block at ``rip`` was placed), if an earlier run compiled one: the JIT can run the
        block natively from its first execution."""
        page = _signed(rip) >> PAGE_SHIFT
        known = self.placements.get(page)
        if known is None:
            if self.db is None:
                return None
            try:
                rows = self._read("SELECT addr, block, module FROM placements WHERE page = ?", (page,))
            except sqlite3.Error as err:
                self._fail(err)
                return None
            known = self.placements[page] = {}
            for addr, hashed, module in rows:
                known.setdefault(addr, {})[bytes(hashed)] = bytes(module)
        here = known.get(_signed(rip))
        return None if here is None else here.get(block())

    def place(self, rip: int, block: bytes, module: bytes) -> None:
        """Note that the native module ``module`` holds the code of the block hashed ``block`` at ``rip``."""
        if self.db is None or self.full:
            return
        page = _signed(rip) >> PAGE_SHIFT
        self.placements.setdefault(page, {}).setdefault(_signed(rip), {}).setdefault(block, module)
        self.pending_placements.append((page, _signed(rip), block, module))

    def flush(self) -> None:
        """Write the new blocks out (other runs may have written some of them too: those are kept once)."""
        if self.db is None or not (self.pending or self.pending_natives or self.pending_placements
                                   or any(self.used.values())):
            return
        rows, self.pending = self.pending, []
        natives, self.pending_natives = self.pending_natives, []
        placements, self.pending_placements = self.pending_placements, []
        noted, self.used = self.used, {table: set() for table, _ in _USES}
        used = {table: list(rows) for table, rows in noted.items()}    # the compile thread may add meanwhile
        try:
            with self._lock:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self.db.executemany("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?, ?, ?)", rows)
                    self.db.executemany("INSERT OR IGNORE INTO natives (key, obj, meta) VALUES (?, ?, ?)", natives)
                    self.db.executemany("INSERT OR IGNORE INTO placements VALUES (?, ?, ?, ?)", placements)
                    self.db.executemany("INSERT OR REPLACE INTO block_uses SELECT rowid, ? FROM blocks "
                                        "WHERE addr = ? AND lim = ? AND cpu = ? AND code = ?",
                                        [(self.stamp, *row[:4]) for row in rows])
                    self.db.executemany("INSERT OR REPLACE INTO native_uses SELECT rowid, ? FROM natives "
                                        "WHERE key = ?", [(self.stamp, native[0]) for native in natives])
                    for table, uses in _USES:
                        self.db.executemany(f"INSERT OR REPLACE INTO {uses} VALUES (?, ?)",
                                            [(row, self.stamp) for row in used.get(table, ())])
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                if self.reader is not None and self.reader.in_transaction:
                    self.reader.execute("COMMIT")     # let the WAL be checkpointed past the old snapshot
                self.full = self._live_bytes() > self.cap
        except sqlite3.Error as err:
            self._fail(err)

    def abandon(self) -> None:
        """In a forked child: run without the cache and never touch the parent's connections (SQLite's must not
        cross a fork; the exit handler inherited from the parent would flush the parent's pending blocks
        through them)."""
        self.db = self.reader = None
        self._drop_pending()
        if CodeCache._shared.get(self.path) is self:
            del CodeCache._shared[self.path]
        atexit.unregister(self.close)

    def close(self) -> None:
        """Write the new blocks out and let go of the database (``open`` then opens it afresh)."""
        self.flush()
        if CodeCache._shared.get(self.path) is self:
            del CodeCache._shared[self.path]
        atexit.unregister(self.close)
        self._disconnect()


def _same_bytes(code: bytes, span: int, rip: int, room: int, fetch: Callable[[int, int], bytes]) -> bool:
    """Does memory at ``rip`` hold ``code``, read as translation would read it (see :meth:`CodeCache.lookup`)?"""
    first = min(len(code), room)
    if fetch(rip, first) != code[:first]:
        return False
    if span > room:
        return fetch(rip, span)[:len(code)] == code
    return True


def _prune(current: Path) -> None:
    """Delete the databases of all but the most recently used other translator versions."""
    try:
        current.touch(exist_ok=True)
        others = [p for p in current.parent.glob("*.sqlite") if p != current]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEEP_OTHER_VERSIONS:]:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{old}{suffix}").unlink(missing_ok=True)
    except OSError:
        pass
