"""The nutpie compile paths: same seed same draws (fresh, cached, new compile cache), light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from bayescale import fit
from bayescale.errors import ConvergenceWarning

from .fakefit import fake_fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLER_MODULES = ("nutpie", "pymc", "pytensor", "numba", "arviz_plots", "matplotlib")
#: Reading a fit made by ``fit`` needs neither the sampler nor ArviZ's statistics (stored at fit time).
#: ``scipy.stats`` is the costly import they would bring; ``scipy.sparse`` may come with ``dask.array``,
#: which xarray loads to decode string columns when Dask is installed.
LOAD_FREE_MODULES = (*SAMPLER_MODULES, "arviz_stats", "scipy.stats")


def _python(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_summary_of_a_saved_fit_imports_no_sampler(saved_fit_path, chinchilla_fit):
    """``bayescale summary`` of a real fit reads R-hat and ESS stored at fit time: no sampler, no ArviZ, no SciPy."""
    code = (
        "import sys, json\nfrom bayescale.cli import app\n"
        f"sys.argv = ['bayescale', 'summary', {str(saved_fit_path)!r}, '--format', 'json']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(json.dumps([m for m in {LOAD_FREE_MODULES!r} if m in sys.modules]))"
    )
    out = _python(code).strip().splitlines()
    assert json.loads(out[-1]) == []
    shown = json.loads("\n".join(out[:-1]))["parameters"]
    fresh = chinchilla_fit.with_posterior(chinchilla_fit.posterior).summary()  # with_posterior drops the stored statistics: computed again
    for name in ("E", "alpha", "sigma"):
        for column in ("rhat", "ess_bulk", "ess_tail"):
            assert shown[name][column] == pytest.approx(fresh.loc[name, column], rel=1e-12)


def test_summary_of_a_fit_without_stored_statistics_computes_them():
    """A fit built by hand (no ``parameter_diagnostics`` node) still gets R-hat and ESS, and storing them changes nothing."""
    made = fake_fit({"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}, spread=0.01)
    assert "parameter_diagnostics" not in made.tree.children
    stored = made.with_parameter_diagnostics()
    assert set(stored.tree["parameter_diagnostics"].to_dataset()["E"].coords["statistic"].values) == {"rhat", "ess_bulk", "ess_tail"}
    assert stored.summary().equals(made.summary()) and np.isfinite(made.summary().loc["E", "ess_bulk"])


def test_releasing_gil_wrapper_returns_the_kernels_values():
    import numba

    from bayescale.compiled import releasing_gil

    @numba.njit
    def kernel(x, scale, shift):
        return float((x * scale).sum() + shift[0]), x * scale

    x, scale, shift = np.arange(4.0), np.full(4, 0.5), np.array([2.0])
    value, grad = releasing_gil(kernel, 3)(x, scale, shift)
    expected_value, expected_grad = kernel(x, scale, shift)
    assert value == expected_value and np.array_equal(grad, expected_grad)


def test_default_cores_one_thread_for_small_tables_on_the_pyfunc_path():
    from bayescale.sampling import PARALLEL_MIN_RUNS, default_cores

    assert default_cores("nutpie", PARALLEL_MIN_RUNS - 1, 4) == 1
    machine = default_cores("nutpie-cfunc", 10, 4)
    assert 1 <= machine <= 4 and default_cores("nutpie", PARALLEL_MIN_RUNS, 4) == machine
    assert default_cores("pymc", 10, 1) == 1


@pytest.mark.slow
def test_nutpie_draws_do_not_depend_on_pytensors_compile_cache(synthetic_frame, tmp_path):
    """A new process with an empty compile cache gives the draws of this process; a fit loads no ArviZ plotting."""
    csv = tmp_path / "runs.csv"
    synthetic_frame.to_csv(csv, index=False)
    kwargs = {"draws": 100, "tune": 100, "chains": 2, "seed": 5}
    code = (
        "import sys, warnings\nwarnings.simplefilter('ignore')\nimport numpy as np\nfrom bayescale import fit\n"
        f"f = fit({str(csv)!r}, **{kwargs!r})\n"
        f"np.save({str(tmp_path / 'E.npy')!r}, f.posterior['E'].values)\n"
        "print(sorted(m for m in ('arviz_plots', 'matplotlib') if m in sys.modules))"
    )
    out = _python(code, {"PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'compiledir'}"})
    assert out.strip().splitlines()[-1] == "[]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        here = fit(str(csv), **kwargs)
    np.testing.assert_array_equal(np.load(tmp_path / "E.npy"), here.posterior["E"].values)


@pytest.mark.slow
def test_nutpie_cfunc_path_is_selectable_and_reproducible(synthetic_frame):
    """nutpie's own compile path still works, caches by sampler, and swaps data like the default path."""
    from bayescale import sampling

    kwargs = {"draws": 100, "tune": 100, "chains": 2, "seed": 3, "sampler": "nutpie-cfunc"}
    other = synthetic_frame.assign(loss=synthetic_frame["loss"] * 1.03)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampling._COMPILED.clear()
        fresh = fit(synthetic_frame, **kwargs)
        moved = fit(other, **kwargs)
        cached = fit(synthetic_frame, **kwargs)
        default = fit(synthetic_frame, **{**kwargs, "sampler": "nutpie"})
    assert sorted(k.split(":")[0] for k in sampling._COMPILED) == ["nutpie", "nutpie-cfunc"]
    assert fresh.sampler == "nutpie-cfunc" and fresh.info.adaptation == "low_rank"
    xr.testing.assert_identical(fresh.posterior, cached.posterior)
    assert not np.allclose(fresh.posterior["E"].values, moved.posterior["E"].values)
    # two compile paths, one posterior: the medians agree within Monte Carlo error
    for name in ("E", "alpha", "beta"):
        a, b = fresh.posterior[name], default.posterior[name]
        assert abs(float(a.median() - b.median())) < 0.5 * float(a.std() + b.std())


def test_kernels_with_data_skips_unknown_names_and_checks_rank():
    """``with_data`` on the default path: data the graph pruned are ignored, a wrong rank is an error."""
    from bayescale.compiled import NumbaKernels

    kernels = NumbaKernels(
        logp=None, expand=None, logp_data=("y",), expand_data=(), data={"y": np.zeros(3)}, n_dim=1, names=("a",), shapes=((),), dims={}, coords={}, initial_point=None, reparameterized_names=()
    )
    new = kernels.with_data({"y": [1, 2, 3], "unused_centre": 4.0})
    assert new.data["y"].dtype == np.float64 and list(new.data["y"]) == [1.0, 2.0, 3.0] and not new.data["y"].flags.writeable
    assert set(new.data) == {"y"} and kernels.data["y"].sum() == 0
    with pytest.raises(ValueError, match="rank 1"):
        kernels.with_data({"y": np.zeros((3, 1))})


def test_threads_do_not_change_the_draws(chinchilla_runs):
    """The default one thread for a small table and two threads give the same posterior (chains are seeded, not scheduled)."""
    options = {"draws": 50, "tune": 50, "chains": 2, "seed": 4, "self_check": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 50 draws: a short fit, compared, not judged
        one, two = fit(chinchilla_runs, cores=1, **options), fit(chinchilla_runs, cores=2, **options)
    xr.testing.assert_identical(one.posterior, two.posterior)
