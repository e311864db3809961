"""Column names as a fit file can store them: any header a user writes (``eval/paloma/macro_loss``,
``data set``, ``Größe``, ``1st``) maps to one storable name, and back.

xarray refuses ``/`` in a variable name, HDF5 and zarr refuse ``.``/``..``/empty names and zarr
reserves a leading ``__``. ``stored_name`` percent-encodes exactly those characters (and ``%``
itself, so the mapping is one-to-one and ``original_name`` inverts it); every other name is kept
as written, so fits of ordinary tables are stored as before. In memory a ``RunTable`` keeps the
user's names; the posterior's group dimensions and the variables named after a group column use
the stored name (a ``DataTree`` cannot hold a ``/``), and every output maps them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote

#: Dimensions of a fit's own: a grouping column cannot take one of these names.
RESERVED_DIMS = ("chain", "draw", "run")


def stored_name(name: str) -> str:
    """``name`` as a fit file stores it: percent-encoded ``%``, ``/`` and control characters; ``.``,
    ``..``, an empty name and a leading ``__`` encoded too. Unchanged for ordinary names."""
    name = str(name)
    if name == "":
        return "%"  # no encoded name is a lone '%': still one-to-one
    text = "".join(ch if ch not in "%/" and ch.isprintable() else _encoded(ch) for ch in name)
    if text in (".", ".."):
        text = text.replace(".", "%2E")
    if text.startswith("__"):
        text = "%5F" + text[1:]
    return text


def _encoded(ch: str) -> str:
    """``%XX`` for each UTF-8 byte of ``ch`` (a lone surrogate's code point bytes, which UTF-8 cannot hold)."""
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def original_name(stored: str) -> str:
    """The user's name a ``stored_name`` came from."""
    return "" if stored == "%" else unquote(stored, errors="surrogatepass")


def renamed(names: Iterable[str]) -> dict[str, str]:
    """``{original: stored}`` for the names that ``stored_name`` changes (empty for ordinary tables)."""
    return {str(n): stored_name(n) for n in names if stored_name(n) != str(n)}


def restored(stored_to_original: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """``{stored: original}`` for the ``names`` a file's name map lists (the rename a load applies)."""
    return {n: stored_to_original[n] for n in names if n in stored_to_original}
