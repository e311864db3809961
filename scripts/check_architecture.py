"""Check the package's shape: ARCHITECTURE.md's module map names every module and nothing else,
no import cycle (imports under ``TYPE_CHECKING`` and inside functions count), and no package module
longer than ``MAX_LINES``.

Run `uv run python scripts/check_architecture.py`; `tests/test_architecture.py` runs it too, so the
map and the layering cannot drift from the code (the habit CausalPy keeps with its inventory check).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayescale"
#: The developers' guide's limit on a package module's length (lines).
MAX_LINES = 450


def package_modules() -> set[str]:
    """Top-level modules as `name.py` and subpackages as `name/` (their files are covered by the folder)."""
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return modules


def mapped_modules(text: str) -> set[str]:
    """Every backticked `*.py` or `folder/` in the first column of the module-map table."""
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            names |= {n for n in re.findall(r"`([^`]+)`", first) if n.endswith((".py", "/")) and "/" not in n.rstrip("/")}
    return names


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file: at the top, under
    ``TYPE_CHECKING`` or inside a function (``from pkg import module`` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for dotted in targets:
            target = dotted
            while target and target not in modules:  # `pkg.mod.attr` -> `pkg.mod`
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles() -> list[list[str]]:
    """The package's import cycles: strongly connected groups of two or more modules, sorted."""
    files = module_files()
    graph = {name: imports(name, path, set(files)) for name, path in files.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def long_modules() -> dict[str, int]:
    """Package modules over ``MAX_LINES`` lines, with their lengths."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out[name] = lines
    return out


def problems() -> list[str]:
    """Modules missing from the map, map entries with no module, import cycles and long modules, as readable lines."""
    mapped = mapped_modules((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    actual = package_modules()
    out = [f"bayescale/{name} is not in ARCHITECTURE.md's module map" for name in sorted(actual - mapped)]
    out += [f"ARCHITECTURE.md maps `{name}`, which bayescale/ does not have" for name in sorted(mapped - actual)]
    out += [f"import cycle: {' <-> '.join(cycle)}" for cycle in import_cycles()]
    out += [f"bayescale/{name} has {lines} lines, more than {MAX_LINES}" for name, lines in long_modules().items()]
    return out


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or "ARCHITECTURE.md's module map matches the package; no import cycle; no module too long")
    sys.exit(1 if found else 0)
