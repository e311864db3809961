"""The ``bayescale`` command line: thin typer commands over the public API.

``core`` holds the app, one-line errors and exit codes; each other module holds a family of
commands. They are registered here, in the order ``bayescale --help`` lists them.
"""

from __future__ import annotations

from bayescale.cli.core import SeveralFlops, app
from bayescale.cli.design import next_cmd
from bayescale.cli.fit import fit_cmd
from bayescale.cli.plan import allocate_cmd, decide_cmd, forecast_cmd
from bayescale.cli.reporting import plot_cmd, report_cmd, summary_cmd
from bayescale.cli.tasks import fit_tasks_cmd
from bayescale.cli.validation import backtest_cmd, compare_cmd
from bayescale.cli.workflows import batch_cmd, demo_cmd, spec_cmd

app.command("fit")(fit_cmd)
app.command("fit-tasks")(fit_tasks_cmd)
app.command("summary")(summary_cmd)
app.command("spec")(spec_cmd)
app.command("forecast")(forecast_cmd)
app.command("demo")(demo_cmd)
app.command("allocate", cls=SeveralFlops)(allocate_cmd)
app.command("decide", cls=SeveralFlops)(decide_cmd)
app.command("next")(next_cmd)
app.command("backtest")(backtest_cmd)
app.command("compare")(compare_cmd)
app.command("batch")(batch_cmd)
app.command("report", cls=SeveralFlops)(report_cmd)
app.command("plot", cls=SeveralFlops)(plot_cmd)

__all__ = ["app"]
