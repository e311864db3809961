"""What a fit tells the user while it runs, on stderr: its phases (compile, sample, self-check,
save) and, while sampling, draws done, draws per second and an ETA.

On a terminal nutpie draws its live bar; anywhere else (a log file, CI, a notebook calling the
CLI) ``DrawsReporter`` prints a plain line at least every ``LINE_SECONDS`` (never silent longer),
so a long fit is never mistaken for a hung one. ``quiet``/``progress=False`` silences both.
The API's default (``progress=None``, ``show_progress``) is on in a notebook (a Jupyter/IPython
kernel, ``in_notebook``), where nutpie draws its own bar, and off in scripts and tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

#: Longest silence between plain progress lines (seconds).
LINE_SECONDS = 10.0
#: How often nutpie calls the reporter (milliseconds); lines are printed only every ``LINE_SECONDS``.
CALLBACK_MS = 1000


def in_notebook() -> bool:
    """Whether this runs in a Jupyter/IPython kernel (a notebook, also VS Code's or Colab's): an
    IPython shell with a kernel. A terminal IPython or a plain interpreter is not one."""
    ipython = sys.modules.get("IPython")  # never imported here: a script without IPython pays nothing
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return getattr(shell, "kernel", None) is not None


def show_progress(progress: bool | None) -> bool:
    """The API's ``progress`` argument resolved: as given, or (``None``) on exactly in a notebook."""
    return in_notebook() if progress is None else bool(progress)


def live_bar() -> bool:
    """Whether nutpie's own live bar is the better display: stderr is a terminal, or this is a notebook (nutpie draws it as HTML)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) or in_notebook()


def phase(message: str, stream: TextIO | None = None) -> None:
    """One line saying what the fit is doing now."""
    print(f"bayescale: {message}", file=stream or sys.stderr, flush=True)


class DrawsReporter:
    """nutpie's ``progress_callback``: a plain line with draws done, draws/s and the ETA, at most every ``every`` seconds (and at the end)."""

    def __init__(self, label: str, every: float = LINE_SECONDS, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.every, self.stream, self.clock = label, every, stream, clock
        self.start = clock()
        self.last: float | None = None
        self.done_reported = False

    def __call__(self, chains: Sequence[Any]) -> None:
        done = sum(int(c.finished_draws) for c in chains)
        total = sum(int(c.total_draws) for c in chains)
        now = self.clock()
        finished = total > 0 and done >= total
        if finished and self.done_reported:
            return
        if not finished and self.last is not None and now - self.last < self.every:
            return
        self.last = now
        self.done_reported = finished
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        tuning = sum(1 for c in chains if getattr(c, "tuning", False))
        divergences = sum(int(getattr(c, "divergences", 0)) for c in chains)
        eta = f", about {(total - done) / rate:.0f} s left" if rate > 0 and not finished else ""
        stage = f" ({tuning} of {len(chains)} chains tuning)" if tuning else ""
        print(f"bayescale: {self.label}: {done}/{total} draws{stage}, {rate:.0f} draws/s, {elapsed:.0f} s{eta}; {divergences} divergences", file=self.stream or sys.stderr, flush=True)
