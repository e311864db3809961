"""The small exception and warning hierarchy every user-facing failure goes through.

The CLI maps each error class to an exit code (``EXIT_CODES``) and prints only its message.
"""

from __future__ import annotations

from numbers import Integral


class BayescaleError(Exception):
    """Base class of every error bayescale raises on user input, files or specs."""

    exit_code = 2


class OutputPathError(BayescaleError, ValueError):
    """An output path that cannot be written (empty, a folder, under a file, missing or unwritable folder) or is an input."""

    exit_code = 2


class OutputWriteError(BayescaleError, OSError):
    """An output that could not be written (disk full, an I/O error): the old file is left as it was, the temporary removed."""

    exit_code = 8


class ManifestError(BayescaleError, ValueError):
    """A batch manifest with a missing, unknown or mistyped key, or job names whose folders would collide."""

    exit_code = 2


class RunTableError(BayescaleError, ValueError):
    """A run table (or a table of forecast targets) that cannot be used as given."""

    exit_code = 3


class ModelSpecError(BayescaleError, ValueError):
    """A model spec (TOML or dict) that names an unknown form, prior, parameter or column."""

    exit_code = 4


class FitFileError(BayescaleError, OSError):
    """A saved fit that is missing, truncated, corrupted, foreign or from an incompatible version."""

    exit_code = 5


class SamplerError(BayescaleError, RuntimeError):
    """A sampler that is unknown, not installed, or failed to produce a posterior."""

    exit_code = 6


def check_probability(value: float, name: str = "ci") -> None:
    """Raise a ``BayescaleError`` unless ``value`` (an interval mass or a quantile) is in (0, 1)."""
    if not 0 < value < 1:
        raise BayescaleError(f"{name}={value!r} must be a probability strictly between 0 and 1 (e.g. 0.9)")


#: Seeds are whole numbers in [0, SEED_MAX]: every sampler and numpy generator accepts them.
SEED_MAX = 2**32 - 1


def _whole(value: object) -> int | None:
    """``value`` as an int if it is a whole number (an int, or a float like 1000.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as an int; a ``BayescaleError`` unless it is a whole number from 0 to ``SEED_MAX``."""
    number = _whole(value)
    if number is None or not 0 <= number <= SEED_MAX:
        raise BayescaleError(f"{name}={value!r} must be a whole number from 0 to {SEED_MAX}")
    return number


def check_count(value: object, name: str, low: int = 1) -> int:
    """``value`` as an int; a ``BayescaleError`` unless it is a whole number >= ``low`` (draws, chains, tune)."""
    number = _whole(value)
    if number is None or number < low:
        raise BayescaleError(f"{name}={value!r} must be a whole number >= {low}")
    return number


class ConvergenceWarning(UserWarning):
    """The sampler did not converge (R-hat, ESS, divergences or tree depth): do not trust the fit."""


class ExtrapolationWarning(UserWarning):
    """A forecast target lies far outside the data the law was fitted to."""


class DataWarning(UserWarning):
    """A run table value that is allowed but suspicious (e.g. flops inconsistent with 6·N·D)."""


#: Exit codes of the CLI, documented in the README.
EXIT_CODES = {
    "ok": 0,
    "internal error": 1,
    "usage / generic bayescale error, bad output path, bad manifest": BayescaleError.exit_code,
    "bad run table or targets": RunTableError.exit_code,
    "bad model spec": ModelSpecError.exit_code,
    "bad fit file": FitFileError.exit_code,
    "sampler unavailable or failed": SamplerError.exit_code,
    "not converged under --strict": 7,
    "an output could not be written (disk full, I/O error)": OutputWriteError.exit_code,
}
