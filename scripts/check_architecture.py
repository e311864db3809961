"""Check that ARCHITECTURE.md's module map names every module of the package, and nothing else.

Run `uv run python scripts/check_architecture.py`; `tests/test_architecture.py` runs it too, so the
map cannot drift from the code (the habit CausalPy keeps with its inventory check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayescale"


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


def problems() -> list[str]:
    """Modules missing from the map and map entries with no module, as readable lines."""
    mapped = mapped_modules((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    actual = package_modules()
    out = [f"bayescale/{name} is not in ARCHITECTURE.md's module map" for name in sorted(actual - mapped)]
    out += [f"ARCHITECTURE.md maps `{name}`, which bayescale/ does not have" for name in sorted(mapped - actual)]
    return out


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or "ARCHITECTURE.md's module map matches the package")
    sys.exit(1 if found else 0)
