"""A PyMC model compiled for nutpie, and nutpie's draws as a DataTree, with light imports.

Two compile paths (``fitting.SAMPLERS`` names them):

* ``nutpie`` (default): PyTensor compiles the log-density, its gradient and the
  deterministics to Numba, and nutpie calls them through its Python-function interface
  (``nutpie.compiled_pyfunc.from_pyfunc``), one Python call per gradient; this skips the
  ``numba.cfunc`` wrappers that dominate nutpie's own compile. The raw jitted functions are pure (thread-safe across chains); the ``pm.Data``
  values are passed as arguments, so ``with_data`` swaps them without recompiling.
* ``nutpie-cfunc``: nutpie's own ``compile_pymc_model``, which wraps the same kernels in
  ``numba.cfunc`` callbacks: no Python call per gradient, slower to compile.

Both compile with Numba's fast-math flags off. With them (PyTensor's default: reassociation,
contraction, approximate functions) a kernel's bits depend on whether LLVM compiled it together
with its callees or loaded them from PyTensor's disk cache, so the same seed gave different draws
from an empty and a warm compile directory (``tests/test_reproducibility.py``). Without them the
disk cache is exact, so a new process loads the kernels instead of compiling them again.

nutpie imports the ``arviz`` meta-package (plots, matplotlib) at module level only to build
its result; ``import_nutpie`` makes that import lazy and ``to_datatree`` builds the result from
nutpie's raw Arrow trace with xarray alone, so a fit never loads ArviZ's plotting stack.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until an attribute is used, then imports it and delegates.

    ``importlib.util.LazyLoader`` cannot do this on Python 3.12.1: the ``import`` statement reads
    ``__spec__``, which makes a lazy module load at once.
    """

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):  # introspection (inspect, pickle) must not import it
            raise AttributeError(attr)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def import_nutpie():
    """``import nutpie`` with its ``arviz`` import deferred until something really uses ArviZ."""
    if "nutpie" in sys.modules or "arviz" in sys.modules or importlib.util.find_spec("arviz") is None:
        import nutpie

        return nutpie
    stand_in = _Deferred("arviz")
    stand_in.__spec__ = importlib.util.find_spec("arviz")
    sys.modules["arviz"] = stand_in
    try:
        import nutpie
    finally:  # only nutpie keeps the stand-in: anyone importing arviz later gets the real one
        if sys.modules.get("arviz") is stand_in:
            del sys.modules["arviz"]
    return nutpie


def compile_model(model: Any, sampler: str = "nutpie", release_gil: bool = False) -> Any:
    """Compile the ``pm.Model`` for nutpie along the path ``sampler`` names (see the module doc);
    ``release_gil``: the ``nutpie`` path's gradient lets other chains run meanwhile (``releasing_gil``)."""
    import pytensor

    nutpie = import_nutpie()
    # IEEE arithmetic (no fast-math) makes a kernel's result independent of how it was compiled or
    # loaded, so the disk cache cannot change the draws (see the module doc).
    with pytensor.config.change_flags(numba__fastmath=False):
        return nutpie.compile_pymc_model(model) if sampler == "nutpie-cfunc" else _compile_kernels(model, release_gil)


def data_names(compiled) -> set[str]:
    """Names of the ``pm.Data`` the compiled graph reads (PyTensor prunes unused ones)."""
    if isinstance(compiled, NumbaKernels):
        return set(compiled.data)
    return {var.name for var in compiled.shared_var_keys}


def with_data(compiled, values: Mapping[str, np.ndarray]):
    """``compiled`` with the ``pm.Data`` in ``values`` replaced (names the graph does not read are skipped)."""
    known = data_names(compiled)
    if isinstance(compiled, NumbaKernels):
        return compiled.with_data(values)
    return compiled.with_data(**{k: v for k, v in values.items() if k in known})


def _frozen(value, dtype) -> np.ndarray:
    array = np.array(value, dtype=dtype, order="C", copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class NumbaKernels:
    """PyTensor's Numba kernels of one model (log-density + gradient, deterministics) and its data.

    The kernels are pure functions of (point, data...), so chains may call them at once; the
    data are bound per sampler run, so a new data set never recompiles.
    """

    logp: Callable
    expand: Callable
    logp_data: tuple[str, ...]
    expand_data: tuple[str, ...]
    data: Mapping[str, np.ndarray]
    n_dim: int
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dims: Mapping[str, tuple[str, ...]]
    coords: Mapping[str, Any]
    initial_point: Callable
    reparameterized_names: tuple[str, ...]

    def with_data(self, values: Mapping[str, np.ndarray]) -> NumbaKernels:
        """The same kernels on new values of (some of) their data; names they do not read are skipped."""
        data = dict(self.data)
        for name, value in values.items():
            if name in data:
                new = _frozen(value, data[name].dtype)
                if new.ndim != data[name].ndim:
                    raise ValueError(f"data {name!r} must have rank {data[name].ndim}, got shape {new.shape}")
                data[name] = new
        return replace(self, data=data)

    def nutpie_model(self):
        """A nutpie ``PyFuncModel`` calling the kernels with this data bound (no per-call keyword merge)."""
        from nutpie.compiled_pyfunc import from_pyfunc

        logp_jit, expand_jit = self.logp, self.expand
        logp_args = tuple(self.data[n] for n in self.logp_data)
        expand_args = tuple(self.data[n] for n in self.expand_data)
        names, shapes = self.names, self.shapes

        def make_logp_fn():
            def logp(x):
                value, grad = logp_jit(x, *logp_args)
                return float(value), grad

            return logp

        def make_expand_fn(seed1, seed2, chain):  # the expansion is deterministic: seeds unused
            def expand(x):
                return {name: np.asarray(v, dtype="float64").reshape(shape) for name, v, shape in zip(names, expand_jit(x, *expand_args), shapes, strict=True)}

            return expand

        return from_pyfunc(
            ndim=self.n_dim,
            make_logp_fn=make_logp_fn,
            make_expand_fn=make_expand_fn,
            make_initial_point_fn=self.initial_point,
            expanded_dtypes=[np.dtype("float64")] * len(names),
            expanded_shapes=list(shapes),
            expanded_names=list(names),
            dims=dict(self.dims),
            coords=dict(self.coords),
            reparameterized_names=list(self.reparameterized_names),
        )


def releasing_gil(kernel: Callable, n_args: int) -> Callable:
    """``kernel`` (a Numba dispatcher of ``n_args`` positional arguments) behind a ``nogil`` Numba
    wrapper, so nutpie's chains evaluate gradients on all cores at once instead of taking turns
    holding the GIL (PyTensor compiles its kernels with the GIL held). The wrapper only links the
    already compiled kernel: about 0.5 s per model and process, the kernel itself is not recompiled."""
    import numba

    names = ", ".join(f"a{i}" for i in range(n_args))
    namespace = {"kernel": kernel}
    exec(f"def released({names}):\n    return kernel({names})\n", namespace)  # a fixed arity: Numba compiles no *args
    return numba.njit(nogil=True)(namespace["released"])


def _compile_kernels(model, release_gil: bool) -> NumbaKernels:
    """Compile through PyTensor's Numba backend (``compile_model`` turns fast-math off)."""
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords, _wrap_with_lock
    from pymc.initial_point import make_initial_point_fn

    # the defaults of nutpie.compile_pymc_model: support points jittered by the chain's seed
    initial_point = _wrap_with_lock(make_initial_point_fn(model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    n_dim, _, logp_pt, expand_pt, initial_point_fn, (names, _, shapes), reparameterized = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=False, pymc_initial_point_fn=initial_point
    )
    shapes = [tuple(int(n) for n in s) for s in shapes]
    dims, coords = _prepare_dims_and_coords(model, (names, [None] * len(names), shapes), reparameterized)
    shared = [*logp_pt.get_shared(), *expand_pt.get_shared()]
    logp_data = tuple(var.name for var in logp_pt.get_shared())
    return NumbaKernels(
        # the raw jitted functions: the Function objects are not thread-safe
        logp=releasing_gil(logp_pt.vm.jit_fn, 1 + len(logp_data)) if release_gil else logp_pt.vm.jit_fn,
        expand=expand_pt.vm.jit_fn,
        logp_data=logp_data,
        expand_data=tuple(var.name for var in expand_pt.get_shared()),
        data={var.name: _frozen(var.get_value(), var.dtype) for var in shared},
        n_dim=int(n_dim),
        names=tuple(names),
        shapes=tuple(shapes),
        dims=dims,
        coords=coords,
        initial_point=initial_point_fn,
        reparameterized_names=tuple(reparameterized),
    )


def sample(compiled: Any, stats: Sequence[str], **kwargs: Any) -> xr.DataTree:
    """``nutpie.sample`` as a DataTree of ``posterior`` and the sampler ``stats`` named (built without ArviZ).

    An interrupt (Ctrl-C) cancels the chains and propagates: nutpie's blocking call would instead
    return the partly filled trace as if sampling had finished.
    """
    nutpie = import_nutpie()
    if isinstance(compiled, NumbaKernels):
        check_initial(compiled, int(kwargs.get("seed", 0)), int(kwargs.get("chains", 1)))
    model = compiled.nutpie_model() if isinstance(compiled, NumbaKernels) else compiled
    sampler = nutpie.sample(model, return_raw_trace=True, blocking=False, **kwargs)
    try:
        raw = sampler.wait()
    except BaseException:
        sampler.cancel()
        raise
    return to_datatree(raw.get_arrow_trace(), model, stats)


#: Initial points tried per chain before a model is called unsamplable (nutpie retries jittered points too).
INITIAL_TRIES = 20


def check_initial(kernels: NumbaKernels, seed: int, chains: int) -> None:
    """Raise ``ValueError`` unless the log density and its gradient are finite at some initial point.

    nutpie's failure to initialise a chain (a NaN log density) leaves its threads' Python state
    corrupt: the process segfaults at exit. Checked here first, it is an ordinary error instead.
    """
    args = tuple(kernels.data[n] for n in kernels.logp_data)
    value = float("nan")
    for attempt in range(max(1, chains) * INITIAL_TRIES):
        point = np.asarray(kernels.initial_point(seed + attempt), dtype="float64")
        value, grad = kernels.logp(point, *args)
        if np.isfinite(value) and np.all(np.isfinite(grad)):
            return
    raise ValueError(f"the model's log density is not finite at its initial values (log density {float(value)}): the spec's priors or likelihood put no mass where the runs are; check their values")


def to_datatree(trace: Any, compiled: Any, stats: Sequence[str]) -> xr.DataTree:
    """The post-warm-up draws (model variables, not their unconstrained forms) and ``stats`` of nutpie's Arrow ``trace`` (draw and stat batches)."""
    from nutpie.sample import _add_arrow_data

    draw_batches, stat_batches = trace
    skip = {"posterior": list(compiled.reparameterized_names or ()), "sample_stats": [n for n in stat_batches[0].column_names if n not in stats]}
    n_chains = len(draw_batches)
    tuning = [int(stat.column("tuning").to_numpy().sum()) for stat in stat_batches]
    n_draws = max(batch.num_rows - t for batch, t in zip(draw_batches, tuning, strict=True))
    coords = {name: np.asarray(values) for name, values in compiled.coords.items()}
    nodes = {}
    for node, batches in (("posterior", draw_batches), ("sample_stats", stat_batches)):
        data: dict[str, np.ndarray] = {}
        dims: dict[str, list[str]] = {}
        for chain, (batch, t) in enumerate(zip(batches, tuning, strict=True)):
            _add_arrow_data(data, n_draws, batch.slice(t, batch.num_rows - t), chain, n_chains, dims, skip[node])
        variables = {}
        for name, values in data.items():
            extra = list(dims.get(name) or [f"{name}_dim_{i}" for i in range(values.ndim - 2)])
            variables[name] = (["chain", "draw", *extra], values)
        used = {d for _, (var_dims, _) in variables.items() for d in var_dims}
        ds_coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws), **{k: v for k, v in coords.items() if k in used}}
        nodes[node] = xr.Dataset(variables, coords=ds_coords)
    return xr.DataTree.from_dict(nodes)
