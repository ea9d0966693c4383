"""The house's layout: imports run one way, and a type checker holds the CPU's backends to the ``ops`` Protocol.

The layers, top to bottom: ``emu`` (the CLI, the debugger, the GDB stub,
the machine, user mode) -> ``firmware`` and ``devices`` -> ``cpu``.  A module
may import from its own layer and the ones below, never from above: the CPU
sees a bus interface, not the devices; the devices read the clock beside
them, not the machine's.  Inside ``emu``, the machine and user mode know
nothing of the debugger, the GDB stub or the command line.

Imports are read with ``ast`` from the sources, wherever they are: at module
level, under ``if TYPE_CHECKING:``, or inside a function.  mypy is configured
in pyproject.toml (``[tool.mypy]``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cpu", "devices", "firmware", "emu")

FORBIDDEN = {
    "cpu": ("emu", "devices", "firmware"),
    "devices": ("emu", "firmware"),
    "firmware": ("emu",),
    "emu.machine": ("emu.debug", "emu.gdb", "emu.cli"),
    "emu.user": ("emu.machine", "emu.debug", "emu.gdb", "emu.cli"),
    "emu.debug": ("emu.gdb", "emu.cli"),
    "emu.gdb": ("emu.cli",),
}
"""Package -> the packages none of its modules may import (it sits below them)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported(module: str, path: Path, *, module_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in ``path``; ``from a import b`` gives ``a.b``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = _module_level(tree.body) if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                      # relative: from the module's own package
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported (or type-checked): not those inside functions."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            children = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                children.extend(handler.body)
            yield from _module_level(children)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_module_imports_only_from_its_own_layer_and_below() -> None:
    wrong = []
    for module, path in sources().items():
        for package, above in FORBIDDEN.items():
            if not within(module, package):
                continue
            for line, name in imported(module, path):
                for upper in above:
                    if within(name, upper):
                        wrong.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {name} ({upper} is above it)")
    assert wrong == []


def test_the_layout_check_sees_an_import_against_the_direction(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from devices.bus import Bus\n"
                   "def f():\n    from emu.machine.pc import Machine\n")
    assert [name for _, name in imported("cpu.bad", bad)] == ["typing.TYPE_CHECKING", "devices.bus.Bus",
                                                                "emu.machine.pc.Machine"]


def test_module_level_imports_form_no_cycle() -> None:
    """A cycle is a module that, through the modules it imports at its top (``TYPE_CHECKING`` included), imports
    itself; a registry that imports its members inside a function (``cpu.semantics.load_all``) is not one."""
    modules = sources()

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {module: {target for _, name in imported(module, path, module_level_only=True)
                      if (target := ours(name)) is not None and target != module}
             for module, path in modules.items()}
    cycles = []
    state: dict[str, int] = {}                  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_mypy_finds_cpu_true_to_its_types_and_every_backend_true_to_the_ops_protocol() -> None:
    """Each backend declares ``cpu.ops.Ops`` (``class PyOps(Ops)``): one that lacks a method cannot be
    instantiated and one whose method takes other arguments breaks an override, and mypy says so."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "cpu"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
