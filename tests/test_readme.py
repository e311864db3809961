"""Every ```bash and ```python block of README.md runs as printed, on the shipped data.

Blocks are found automatically, so a new one is tested as soon as it is written. They run in
order in one temporary folder holding ``data/`` and ``models/`` (later blocks use files earlier
ones wrote). ``uv run CMD`` runs CMD from this test's environment; ``uv run pytest`` lines are left
out (the suite cannot run itself). A line ``<!-- not-run: why -->`` right before a block skips
it; ``<!-- file: NAME -->`` writes the block to ``NAME`` instead of running it (e.g. a manifest).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayescale.cli import app

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = ("bash", "python")
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*(not-run|file)\s*:\s*(.+?)\s*-->$")
PYTEST_LINE = re.compile(r"^\s*uv run pytest\b")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  #: 1-based line of the opening fence
    skip: str | None = None  #: why it is not run (a not-run marker)
    file: str | None = None  #: write it to this file instead of running it

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.skip is None and self.file is None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block with its language and the marker on the line before it, if any."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        kind, value = marker.groups() if marker else (None, None)
        blocks.append(Block(opening.group(1), "\n".join(lines[i + 1 : end]) + "\n", i + 1, value if kind == "not-run" else None, value if kind == "file" else None))
        i = end + 1
    return blocks


BLOCKS = readme_blocks((ROOT / "README.md").read_text())


def cli_lines(block: Block) -> list[list[str]]:
    """The ``uv run bayescale ...`` commands of a bash block, as argument lists (comments dropped)."""
    commands = []
    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["uv", "run", "bayescale"]:
            commands.append(words[3:])
    return commands


def test_readme_has_runnable_blocks_and_well_formed_markers():
    langs = [b.lang for b in BLOCKS if b.runs]
    assert langs.count("bash") >= 5 and langs.count("python") >= 1, langs
    for block in BLOCKS:
        if block.lang == "python":
            compile(block.code, f"README.md:{block.line}", "exec")
        if block.file is not None:
            assert "/" not in block.file and block.file.strip() == block.file, block
    assert any(b.file == "manifest.toml" for b in BLOCKS)


def test_readme_commands_exist_with_their_flags_and_files():
    """Every bash line runs through ``uv run`` (a bare ``bayescale`` is not on PATH), names a real
    command and only its flags, and every ``data/`` file it reads is shipped."""
    helps: dict[str, str] = {}
    for block in BLOCKS:
        if block.lang != "bash":
            continue
        for line in block.code.splitlines():
            words = shlex.split(line, comments=True)
            assert not words or words[:2] == ["uv", "run"], f"README.md:{block.line}: {line!r} must start with 'uv run'"
        for args in cli_lines(block):
            command = args[0]
            if command not in helps:
                result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"})
                assert result.exit_code == 0, f"README.md:{block.line}: unknown command {command!r}"
                helps[command] = result.stdout
            for arg in args[1:]:
                flag = arg.split("=", 1)[0]
                if flag.startswith("--"):
                    assert flag in helps[command], f"README.md:{block.line}: bayescale {command} has no {flag}"
                if arg.startswith("data/"):
                    assert (ROOT / arg).is_file(), f"README.md:{block.line}: {arg} is not shipped"


def _uv_shim(folder: Path) -> Path:
    """A ``uv`` that runs ``uv run CMD ...`` as CMD from this environment (first on PATH)."""
    shim = folder / "uv"
    shim.write_text('#!/usr/bin/env bash\n[ "$1" = run ] || { echo "README blocks may only use uv run" >&2; exit 2; }\nshift\nexec "$@"\n')
    shim.chmod(0o755)
    return folder


@pytest.mark.slow
def test_readme_blocks_run_as_printed(tmp_path):
    work = tmp_path / "readme"
    work.mkdir()
    for name in ("data", "models"):
        (work / name).symlink_to(ROOT / name)
    shims = _uv_shim(tmp_path)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    for block in BLOCKS:
        if block.file is not None:
            (work / block.file).write_text(block.code)
            continue
        if not block.runs:
            continue
        if block.lang == "bash":
            code = "\n".join(line for line in block.code.splitlines() if not PYTEST_LINE.match(line))
            command = ["bash", "-euo", "pipefail", "-c", code]
        else:
            command = [sys.executable, "-c", block.code]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=1800, check=False)
        assert result.returncode == 0, f"README.md:{block.line} ({block.lang}) exited {result.returncode}:\n{block.code}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert (work / "fit.nc").is_file() and (work / "report.html").is_file() and (work / "results" / "summary.csv").is_file()
