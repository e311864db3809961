"""ARCHITECTURE.md's module map must name exactly the package's modules (scripts/check_architecture.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_architecture.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_architecture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_map_matches_package():
    assert _checker().problems() == []


def test_check_reports_drift_both_ways(tmp_path, monkeypatch):
    checker = _checker()
    (tmp_path / "bayescale" / "laws").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "new_module.py", "laws/__init__.py"):
        (tmp_path / "bayescale" / name).write_text("")
    (tmp_path / "ARCHITECTURE.md").write_text("## Module map\n\n| module | owns |\n|---|---|\n| `errors.py` | errors |\n| `laws/` | laws |\n| `ghost.py` | nothing |\n\n## Next\n| `other.py` | |\n")
    monkeypatch.setattr(checker, "ROOT", tmp_path)
    monkeypatch.setattr(checker, "PACKAGE", tmp_path / "bayescale")
    assert checker.problems() == [
        "bayescale/new_module.py is not in ARCHITECTURE.md's module map",
        "ARCHITECTURE.md maps `ghost.py`, which bayescale/ does not have",
    ]


def test_no_import_cycle_and_no_long_module():
    checker = _checker()
    assert checker.import_cycles() == []
    assert checker.long_modules() == {}


def test_cycles_count_type_only_and_function_local_imports(tmp_path, monkeypatch):
    checker = _checker()
    package = tmp_path / "bayescale"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bayescale.b import B\n",
        "b.py": "def f():\n    from bayescale.sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..a import thing\n",
        "d.py": "import bayescale.a\n",
        "long.py": "x = 1\n" * (checker.MAX_LINES + 1),
        "short.py": "x = 1\n" * checker.MAX_LINES,
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.setattr(checker, "PACKAGE", package)
    assert checker.import_cycles() == [["bayescale.a", "bayescale.b", "bayescale.sub.c"]]
    assert checker.long_modules() == {"long.py": checker.MAX_LINES + 1}
