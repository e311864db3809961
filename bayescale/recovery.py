"""A sampled fit is never lost: ``save_or_recover`` saves it to ``-o`` or, if that fails for any
reason, to a recovery file next to it (``NAME.recovery.nc``), which ``summary``, ``forecast`` and
every other command read like any fit.

The save re-checks the target first (``recheck``: e.g. "``-o`` now holds a different fit", which
another process may have written while this one sampled); a refusal is a failure like any other:
the draws go to the recovery file and the error names it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bayescale.errors import BayescaleError, OutputPathError

if TYPE_CHECKING:
    from bayescale.result import Fit

#: A recovery file never replaces anything: ``fit.recovery.nc``, then ``fit.recovery-1.nc`` and so on.
MAX_RECOVERY_FILES = 100


def output_state(path: str | Path) -> tuple[int, ...]:
    """What is at ``path`` now (device, inode, size, modification time; ``()`` for nothing): compared
    at save time with the state before sampling, to see whether someone else wrote there meanwhile."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def recovery_path(path: str | Path, folder: Path | None = None) -> Path:
    """The first free recovery name for ``path`` (in ``folder``, default ``path``'s own)."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix in (".nc", ".zarr") else path.name
    folder = path.parent if folder is None else folder
    for i in range(MAX_RECOVERY_FILES):
        candidate = folder / f"{stem}.recovery{f'-{i}' if i else ''}.nc"
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
    raise OutputPathError(f"{folder}: {MAX_RECOVERY_FILES} recovery files of {path.name} already exist; move them away")


def save_or_recover(result: Fit, path: str | Path, *, recheck: Callable[[], None] | None = None, seen: tuple[int, ...] | None = None) -> Path:
    """Save ``result`` to ``path``; on any failure save it to a recovery file and raise an error naming both.

    ``recheck`` runs right before the write (e.g. refuse to replace a different fit). With
    ``seen`` (``output_state`` before sampling) it is skipped when ``path`` is exactly as it was
    then: what the caller already agreed to replace (``--force``).
    """
    from bayescale.fitformat import save_fit

    try:
        if recheck is not None and (seen is None or output_state(path) != seen):
            recheck()
        return save_fit(result, path)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BayescaleError) else f"cannot write {path}: {_reason(exc)}"
        kept = _save_recovery(result, Path(path))
        kind = type(exc) if isinstance(exc, BayescaleError) else OutputPathError
        if kept is None:
            raise kind(f"{reason}; the fit could not be kept anywhere else either") from None
        raise kind(f"{reason}; the sampled fit was kept in {kept} (bayescale summary/forecast read it; move it to {path} when that can be written)") from None


def _reason(exc: BaseException) -> str:
    """An error's cause in a few words (``strerror`` for OS errors: "No space left on device")."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _save_recovery(result: Fit, path: Path) -> Path | None:
    """Save ``result`` next to ``path``, else in the temporary folder; None if neither works."""
    from bayescale.fitformat import save_fit

    for folder in (None, Path(tempfile.gettempdir())):
        try:
            return save_fit(result, recovery_path(path, folder))
        except KeyboardInterrupt:
            raise
        except Exception:
            continue
    return None
