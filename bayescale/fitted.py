"""``Fitted``: what the modules that read a fit need of it, as a type-only ``Protocol``.

Forecasting, allocation, decisions, the discrepancy, group targeting, the posterior view, the
self-check and the fit file take a ``Fitted`` rather than ``result.Fit``, so none of them imports
the module that builds fits (and whose shortcuts import them back): the import graph has no cycle.
``result.Fit`` satisfies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import xarray as xr

    from bayescale.documents import Diagnostics, FitInfo, SelfCheck
    from bayescale.modeldesign import Design
    from bayescale.runs import RunTable
    from bayescale.spec import ModelSpec


class Fitted(Protocol):
    """A fitted scaling law as its readers see it (``result.Fit`` is the one implementation)."""

    @property
    def tree(self) -> xr.DataTree: ...

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def runs(self) -> RunTable: ...

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def diagnostics(self) -> Diagnostics: ...

    @property
    def seed(self) -> int: ...

    @property
    def sampler(self) -> str: ...

    @property
    def info(self) -> FitInfo: ...

    @property
    def self_check(self) -> SelfCheck | None: ...

    @property
    def design(self) -> Design: ...

    @property
    def posterior(self) -> xr.Dataset: ...

    @property
    def converged(self) -> bool: ...

    def self_check_summary(self) -> dict[str, Any] | None: ...
