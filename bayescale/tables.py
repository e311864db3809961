"""Reading run tables: a file's bytes, read once and bounded, to a DataFrame, and columns to numbers.

Shared by ``runs.load_runs`` and the forecast targets. Parsing is vectorised: a cell goes through
``units.parse_quantity`` only when the column is not all plain numbers (``70B``) or has a bad cell to name.
"""

from __future__ import annotations

import codecs
import csv
import io
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.errors import RunTableError
from bayescale.units import parse_quantity

#: Largest run table (bytes) a load reads: far above any real log, small enough to fail fast on
#: ``/dev/zero`` or a runaway pipe instead of exhausting memory.
MAX_TABLE_BYTES = 2**30


def _read_once(path: Path, limit: int = MAX_TABLE_BYTES) -> bytes:
    """The file's bytes, read exactly once and at most ``limit`` of them.

    Regular files and pipes (a FIFO, ``<(cat runs.csv)``) are read; devices, sockets and folders
    are refused, so ``/dev/zero`` cannot fill memory and a FIFO is never opened twice.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RunTableError(f"{path}: no such file") from None
    except OSError as exc:
        raise RunTableError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise RunTableError(f"{path}: is a folder, not a run table (CSV or Parquet)")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise RunTableError(f"{path}: is a device or socket, not a run table file; save the table to a CSV or Parquet file")
    if stat.S_ISREG(mode) and path.stat().st_size > limit:
        raise RunTableError(f"{path}: {path.stat().st_size / 2**20:.0f} MiB is larger than a run table may be ({limit / 2**20:.0f} MiB)")
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise RunTableError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise RunTableError(f"{path}: the stream is larger than a run table may be ({limit / 2**20:.0f} MiB); stopped reading")
    return data


def read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV/Parquet run table as strings (CSV) or typed columns (Parquet), read once.

    The CSV is parsed from its bytes (no decoded copy of the whole text is kept), every cell a string.
    """
    data = _read_once(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq") or data[:4] == b"PAR1":
            return pd.read_parquet(io.BytesIO(data))
        if b"\x00" in data[:4096]:
            raise RunTableError(f"{path}: looks like a binary file, expected a CSV or Parquet run table")
        _check_utf8(data)
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
        _check_header(path, first, sep)
        frame = pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except RunTableError:
        raise
    except UnicodeDecodeError as exc:
        raise RunTableError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the table as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise RunTableError(f"{path}: the file is empty; expected a header row with params, tokens, loss") from None
    except Exception as exc:
        raise RunTableError(f"{path}: cannot read as a run table: {type(exc).__name__}: {str(exc)[:200]}") from None
    return frame


def _check_utf8(data: bytes, block: int = 2**24) -> None:
    """Raise ``UnicodeDecodeError`` (byte offsets of the whole file) unless ``data`` is UTF-8; decoded in blocks to bound memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(data), block):
        try:
            decoder.decode(data[start : start + block], final=start + block >= len(data))
        except UnicodeDecodeError as exc:
            raise UnicodeDecodeError(exc.encoding, data, start + exc.start, start + exc.end, exc.reason) from None
    if not data:
        decoder.decode(b"", final=True)


def _check_header(path: Path, text: str, sep: str) -> None:
    """Refuse a header naming a column twice, however it is hidden (quotes, spaces, a byte-order mark)."""
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error:
        return  # pandas reports the malformed table itself
    seen: set[str] = set()
    for name in header:
        clean = name.replace("\ufeff", "").strip()
        if clean in seen:
            raise RunTableError(f"{path}: column {clean!r} appears more than once in the header")
        seen.add(clean)


def _row_label(source: str, position: int, from_file: bool) -> str:
    # position is 0-based over data rows; files have a header line, so data row k is line k+2.
    return f"row {position + 1} (line {position + 2})" if from_file else f"row {position + 1}"


def parse_numeric_column(frame: pd.DataFrame, column: str, source: str, from_file: bool, positive: bool = True) -> np.ndarray:
    """Parse one column to floats (units allowed), raising on empty, non-numeric, inf or ≤ 0."""
    series = frame[column]
    values = _fast_floats(series)
    if values is not None and np.all(np.isfinite(values) & ((values > 0) if positive else True)):
        return values  # the common case, vectorised; the loop below reads units and names the first bad row
    out = np.empty(len(frame))
    for position, value in enumerate(series.tolist()):
        where = f"{source}: {_row_label(source, position, from_file)}, column {column!r}"
        if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and value.strip() in ("", "nan", "NaN", "NA", "null", "None")):
            raise RunTableError(f"{where}: empty or NaN value; every run needs a {column}")
        try:
            number = parse_quantity(value)
        except ValueError as exc:
            raise RunTableError(f"{where}: {exc}") from None
        if not np.isfinite(number):
            raise RunTableError(f"{where}: value {value!r} is not finite")
        if positive and number <= 0:
            raise RunTableError(f"{where}: value {value!r} must be > 0")
        out[position] = number
    return out


def _fast_floats(series: pd.Series) -> np.ndarray | None:
    """The column as floats when every cell is a plain number (exactly ``float()`` of each text), else None."""
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.infer_dtype(series, skipna=False) != "string":
        return None
    try:
        return series.to_numpy(dtype=object).astype(np.float64)
    except (ValueError, TypeError):
        return None


def _decode_bytes(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bytes cells (a Parquet binary column) as UTF-8 text; undecodable bytes name their column and row."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object or not any(isinstance(v, (bytes, bytearray)) for v in series):
            continue
        values = series.tolist()
        for position, value in enumerate(values):
            if isinstance(value, (bytes, bytearray)):
                try:
                    values[position] = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise RunTableError(f"{source}: row {position + 1}, column {column!r}: binary value {bytes(value)[:20]!r} is not UTF-8 text") from None
        frame = frame.copy()
        frame[column] = values
    return frame
