"""Output paths: checked before any work, written atomically, and nothing deleted that a call did not create.

``check_output_path`` is what every command that writes calls first, so a bad ``-o`` (or one
that is the command's own input) fails in a second instead of after a long fit. Every file the
package writes goes through ``write_atomic``: a temporary sibling whose name only bayescale uses
(``.NAME.bayescale-tmp-PID-RANDOM``), created exclusively so no planted link is ever followed,
moved into place with ``os.replace``; only that exact temporary is removed, and temporaries left
by a killed process are cleaned up on the next write to the same path. Under ``remember_interrupts``
(the CLI), a Ctrl-C that a library swallowed (raised inside a weakref callback or ``__del__``,
printed and ignored) still stops the next write before it replaces anything.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from bayescale.errors import BayescaleError, OutputPathError, OutputWriteError

#: What an output is: any single file (``.html``, ``.csv``), a saved fit (a netCDF file, or a
#: ``.zarr`` store: a folder replaced as a whole) or a results folder written into (``batch -o``).
Kind = Literal["file", "fit", "folder"]
#: First bytes of the files a fit may replace: HDF5 (netCDF-4) and classic netCDF.
_FIT_MAGIC = (b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02")
_TMP_TAG = "bayescale-tmp"
#: SIGINTs received under ``remember_interrupts`` (checked before a write replaces anything).
_INTERRUPTS: list[int] = []
#: Non-empty while ``write_atomic`` writes (its interrupts are remembered, checked before the move).
_WRITING: list[bool] = []
_OLD_TAG = "bayescale-old"


def check_output_path(path: str | Path | None, kind: Kind = "file", inputs: Iterable[str | Path | None] = ()) -> Path:
    """Raise ``OutputPathError`` (exit 2) unless ``path`` can be written as ``kind``; return it.

    Refused: an empty path, ``.``/``..``/a root, an existing folder where a file goes (or a
    file where a folder goes), anything under a regular file, a missing or unwritable parent
    folder, an existing device/FIFO/socket, ``-`` (stdout, which the CLI handles before), for ``kind="fit"`` an existing file or folder that
    is not a saved fit (a run table given as ``-o`` by mistake is never overwritten), and any
    of ``inputs`` (``check_not_input``).
    """
    if path is None or str(path).strip() == "":
        raise OutputPathError("the output path is empty; give a file name, e.g. -o fit.nc")
    if str(path) == "-":  # the usual name of stdout: never a file called "-"
        raise OutputPathError(f"-o -: this output is a {kind}, which cannot go to stdout; give a path")
    path = Path(path)
    try:
        checked = _check(path, kind)
    except OSError as exc:  # a name too long, a loop of links, a permission on the way
        raise OutputPathError(f"output path {str(path)[:200]!r}: {exc.strerror or exc}") from None
    check_not_input(checked, inputs)
    return checked


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` are one existing file or folder (same device and inode: through links too)."""
    try:
        first, second = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False  # one does not exist: writing one cannot destroy the other
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _inside(path: Path, folder: str | Path) -> bool:
    """Whether ``path`` would land inside the existing folder ``folder`` (a zarr fit read as input)."""
    if not os.path.isdir(folder):
        return False
    return os.path.realpath(path).startswith(os.path.join(os.path.realpath(folder), ""))


def check_not_input(path: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Raise ``OutputPathError`` if ``path`` is one of ``inputs`` (the same file, also through a
    symbolic or hard link) or lies inside an input folder: writing it would destroy what is read."""
    for source in inputs:
        if source is None or str(source).strip() == "":
            continue
        if same_file(path, source) or _inside(Path(path), source):
            how = "" if os.path.abspath(path) == os.path.abspath(source) else " (the same file through a link)" if same_file(path, source) else " (inside it)"
            raise OutputPathError(f"output path {str(path)!r} is the input {str(source)!r}{how}; writing it would destroy the input: choose another -o")


def _check(path: Path, kind: Kind) -> Path:
    if path.name in ("", ".", ".."):
        example = path / ("results" if kind == "folder" else "fit.nc")
        raise OutputPathError(f"output path {str(path)!r} is a folder name, not a {'folder to create' if kind == 'folder' else 'file'}; give e.g. -o {example}")
    parent = path.parent
    _nearest_folder(path)
    if not parent.is_dir():
        raise OutputPathError(f"output path {str(path)!r}: the folder {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"output path {str(path)!r}: the folder {str(parent)!r} is not writable")
    if not (path.exists() or path.is_symlink()):
        return path
    mode = path.stat().st_mode if path.exists() else 0
    if kind == "folder":
        if not stat.S_ISDIR(mode):
            raise OutputPathError(f"output folder {str(path)!r} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"output folder {str(path)!r} is not writable")
    elif stat.S_ISDIR(mode):
        if not _is_store(path, kind):
            raise OutputPathError(f"output path {str(path)!r} is an existing folder; give a file name inside it, e.g. -o {path / 'out'}")
        if not _is_bayescale_store(path):
            raise OutputPathError(f"output path {str(path)!r} is an existing folder that is not a bayescale zarr fit; it will not be replaced")
    elif not stat.S_ISREG(mode):
        what = "a dangling link" if not mode else "a device, FIFO or socket"
        raise OutputPathError(f"output path {str(path)!r} exists and is {what}, not a regular file")
    elif _is_store(path, kind):
        raise OutputPathError(f"output path {str(path)!r} is an existing file; a .zarr fit is a folder")
    elif kind == "fit" and not _starts_with(path, _FIT_MAGIC):
        raise OutputPathError(f"output path {str(path)!r} is an existing file that is not a saved fit (netCDF); it will not be replaced")
    return path


def _nearest_folder(path: Path) -> Path:
    """The closest existing ancestor of ``path``; ``OutputPathError`` if it is not a folder."""
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise OutputPathError(f"output path {str(path)!r}: {str(ancestor)!r} is a file, not a folder")
            return ancestor
    return Path(path.anchor or ".")


def make_parents(path: str | Path) -> Path:
    """Create the missing folders above ``path`` (the API's convenience; the CLI wants them to exist)."""
    path = Path(path)
    if str(path).strip() and not path.parent.is_dir():
        _nearest_folder(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"output path {str(path)!r}: cannot create the folder {str(path.parent)!r}: {exc.strerror}") from None
    return path


def _is_store(path: Path, kind: Kind) -> bool:
    """A fit written as a zarr store (a folder) rather than one netCDF file."""
    return kind == "fit" and path.suffix == ".zarr"


def _starts_with(path: Path, magics: tuple[bytes, ...]) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return head.startswith(magics) or not head


def _is_bayescale_store(path: Path) -> bool:
    """True for a zarr store whose root attributes carry ``bayescale_format`` (v3 or v2 layout)."""
    for name, attrs in (("zarr.json", lambda raw: raw.get("attributes", {})), (".zattrs", lambda raw: raw)):
        meta = path / name
        if meta.is_file() and meta.stat().st_size < 1 << 24:
            try:
                raw = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return isinstance(raw, dict) and isinstance(attrs(raw), dict) and "bayescale_format" in attrs(raw)
    return False


def _own_names(path: Path) -> re.Pattern[str]:
    """Names of temporaries/backups of ``path`` this module creates, capturing the writer's pid."""
    return re.compile(rf"^\.{re.escape(path.name)}\.(?:{_TMP_TAG}|{_OLD_TAG})-(\d+)-[0-9a-f]{{12}}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove(path: Path) -> None:
    """Remove a file or folder bayescale itself created (by its exact name)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(path: Path) -> list[Path]:
    """Remove temporaries of ``path`` left by dead writers (``kill -9``); restore a lost store.

    Only names of this module's own pattern whose writer pid is no longer running are touched.
    A backup left between the two renames of a store replacement is moved back if ``path``
    is missing, so a kill at that instant loses nothing. Returns what was removed.
    """
    pattern, legacy = _own_names(path), re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}$")
    removed: list[Path] = []
    try:
        siblings = sorted(path.parent.iterdir())
    except OSError:
        return removed
    for sibling in siblings:
        if legacy.match(sibling.name) and _is_legacy_tmp(sibling, path.name):
            _remove(sibling)
            removed.append(sibling)
            continue
        match = pattern.match(sibling.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if f".{_OLD_TAG}-" in sibling.name and not (path.exists() or path.is_symlink()):
            os.replace(sibling, path)
            continue
        _remove(sibling)
        removed.append(sibling)
    return removed


def _is_legacy_tmp(folder: Path, name: str) -> bool:
    """A ``tempfile.mkdtemp`` folder of bayescale 0.1's saves: holds nothing but a copy of ``name``."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return {p.name for p in folder.iterdir()} <= {name}
    except OSError:
        return False


def write_atomic(path: str | Path, write: Callable[[Path], None] | str | bytes, kind: Kind = "file") -> Path:
    """Write ``path`` whole or not at all: ``write`` is the content (text as UTF-8) or a function
    that writes a file (or a zarr store) at the fresh path it is given.

    Content goes to a temporary sibling opened with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a name
    that exists, a planted link included, is never opened: another is drawn); a function writes
    inside a private folder created the same exclusive way, so its path is new and no one else's
    link lies on it. The result is moved into place with ``os.replace`` (a zarr store replacing
    an existing one through a backup of the same private naming). A failure or an interrupt
    leaves ``path`` as it was and removes the temporary; an ``OSError`` (disk full, an I/O
    error) becomes one ``OutputWriteError``.
    """
    path = check_output_path(path, kind)
    clean_stale(path)
    content = write.encode("utf-8") if isinstance(write, str) else write
    made: Path | None = None
    try:
        with _writing():
            if isinstance(content, bytes):
                made = staged = _write_temporary(path, content)
            else:
                made = _temporary(path, lambda tmp: os.mkdir(tmp, 0o700))
                staged = made / path.name
                content(staged)
        if _INTERRUPTS:  # an interrupt a library swallowed while this was written: nothing replaced
            raise KeyboardInterrupt
        _move_into_place(staged, path, kind)
    except BayescaleError:
        raise
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        if made is not None and (made.exists() or made.is_symlink()):
            _remove(made)
    return path


@contextmanager
def remember_interrupts() -> Iterator[None]:
    """Within: Ctrl-C raises ``KeyboardInterrupt`` as usual and is also remembered, so ``write_atomic``
    refuses to replace anything afterwards even if the exception was swallowed (a library's
    callback printed it and went on). While ``write_atomic`` writes, an interrupt is only
    remembered (raising inside h5py/netCDF internals leaves half-made objects whose cleanup prints
    tracebacks): the write finishes into its temporary, which is then removed, not moved into place.
    After an interrupt, cleanup errors of such objects are not printed. Main thread only (elsewhere
    a no-op); the previous handler is restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: object) -> None:
        _INTERRUPTS.append(signum)
        if not _WRITING:
            raise KeyboardInterrupt

    def unraisable(report: Any) -> None:
        if not _INTERRUPTS:
            default(report)

    previous, default = signal.signal(signal.SIGINT, on_interrupt), sys.unraisablehook
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = default
        _INTERRUPTS.clear()


@contextmanager
def _writing() -> Iterator[None]:
    """While a write runs: interrupts under ``remember_interrupts`` are remembered, not raised."""
    _WRITING.append(True)
    try:
        yield
    finally:
        _WRITING.pop()


def _temporary(path: Path, create: Callable[[Path], object]) -> Path:
    """A fresh sibling of ``path`` with a name only bayescale uses, made by ``create``, which must fail on any existing name."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_TMP_TAG}-{os.getpid()}-{secrets.token_hex(6)}")
        try:
            create(tmp)
        except FileExistsError:
            continue
        return tmp
    raise OutputWriteError(f"cannot write {path}: no free temporary name next to it")


def _write_temporary(path: Path, content: bytes) -> Path:
    """``content`` in a new, exclusively created temporary sibling of ``path`` (removed again if writing fails)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    handle: list[int] = []
    tmp = _temporary(path, lambda name: handle.append(os.open(name, flags, 0o666)))
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(handle[0], view) :]
    except BaseException:
        os.close(handle[0])
        tmp.unlink(missing_ok=True)
        raise
    os.close(handle[0])
    return tmp


def _move_into_place(staged: Path, path: Path, kind: Kind) -> None:
    """``os.replace`` ``staged`` onto ``path`` (a file replaced keeps its permissions); an existing
    zarr store is first moved aside to a private backup, and moved back if the swap fails."""
    if _is_store(path, kind) and path.exists():
        backup = path.with_name(f".{path.name}.{_OLD_TAG}-{os.getpid()}-{secrets.token_hex(6)}")
        os.replace(path, backup)
        try:
            os.replace(staged, path)
        except BaseException:
            os.replace(backup, path)
            raise
        _remove(backup)
        return
    old = os.lstat(path) if path.is_file() and not path.is_symlink() else None
    if old is not None and staged.is_file():
        os.chmod(staged, stat.S_IMODE(old.st_mode))  # a private (0600) output stays private
    os.replace(staged, path)


def _reason(exc: OSError) -> str:
    """An OSError as a short reason: ``No space left on device`` rather than a library's whole message."""
    number = exc.errno
    if number is None:  # h5py puts the system's errno in its message
        found = re.search(r"errno = (\d+)", str(exc))
        number = int(found.group(1)) if found else None
    if number:
        return os.strerror(number)
    return " ".join(str(exc).split())[:200] or type(exc).__name__
