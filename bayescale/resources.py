"""Where the shipped model specs and embedded run tables live (repo checkout or installed wheel)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bayescale's {name}/ folder is missing from the installation")


def models_dir() -> Path:
    """Folder of the shipped TOML model specs."""
    return _locate("models")


def data_dir() -> Path:
    """Folder of the embedded run tables."""
    return _locate("data")


def data_path(filename: str) -> Path:
    """Path of one embedded run table, e.g. ``data_path("chinchilla_figure4_runs.csv")``."""
    return data_dir() / filename
