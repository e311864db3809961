"""The typer app and what every command shares: one-line errors with their exit codes, flag parsing.

Every ``BayescaleError`` is printed as its one-line message and exits with the error's
code (see ``errors.EXIT_CODES``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

#: Control characters (C0 but newline and tab, DEL, C1): printed raw, an ESC sequence from a spec name or group level could drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), safe to print to a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """A message on one line, control characters escaped: the CLI promises one ``error:`` line per failure."""
    return visible(" ".join(line.strip() for line in str(text).splitlines() if line.strip()))


#: Exit code of a command stopped by Ctrl-C (128 + SIGINT), as typer gives it.
INTERRUPTED = 130


class _Group(TyperGroup):
    """The command group: a usage error (bad flag value, missing argument) is one ``error:`` line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from bayescale.paths import remember_interrupts

        try:
            with remember_interrupts():  # a Ctrl-C a library swallows still stops the next write
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's (vendored click's) usage errors
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.secho(f"error: {one_line(exc.format_message())}{hint}", err=True, fg=typer.colors.RED)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        if code == INTERRUPTED:  # typer turns Ctrl-C into exit 130; every writer is atomic
            typer.secho("error: interrupted; nothing was written", err=True, fg=typer.colors.RED)
        sys.exit(code if isinstance(code, int) else 0)


def _is_budget(text: str) -> bool:
    """Whether ``text`` reads as a FLOP budget (``1e21``, ``5.76e23``, ``1e21:1e25:9``), not a path or flag."""
    from bayescale.units import parse_quantity

    try:
        for part in text.split(":"):
            parse_quantity(part)
    except ValueError:
        return False
    return not text.startswith("-")


class SeveralFlops(TyperCommand):
    """Lets one ``--flops`` take several values (``--flops 1e21 1e22 1e23``), besides repeated flags and ranges."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        out: list[str] = []
        state = "idle"  # "value": the next word is --flops's own value; "more": later budgets continue the list
        for arg in args:
            if state == "value":
                out.append(arg)
                state = "more"
            elif state == "more" and _is_budget(arg):
                out += ["--flops", arg]
            else:
                out.append(arg)
                state = "value" if arg == "--flops" else "more" if arg.startswith("--flops=") else "idle"
        return super().parse_args(ctx, out)


app = typer.Typer(
    cls=_Group,
    help="Bayesian scaling-law fitting and forecasting for LLM pre-training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
STATE = {"debug": False}


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False) -> None:
    STATE["debug"] = debug


def run(fn, *args, **kwargs):
    """Call the API, turning bayescale errors into one message and an exit code."""
    from bayescale.errors import (
        BayescaleError,
        ConvergenceWarning,
        ExtrapolationWarning,
    )

    def show(message, category, filename, lineno, file=None, line=None):
        label = {ConvergenceWarning: "WARNING (convergence)", ExtrapolationWarning: "WARNING (extrapolation)"}.get(category, "warning")
        typer.secho(f"{label}: {one_line(str(message))}", err=True, fg=typer.colors.YELLOW)

    try:
        with warnings.catch_warnings():  # restores the caller's showwarning afterwards
            warnings.showwarning = show
            return fn(*args, **kwargs)
    except BayescaleError as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"error: {one_line(str(exc))}", err=True, fg=typer.colors.RED)
        raise typer.Exit(exc.exit_code) from None


def pairs(items: list[str] | None, flag: str, form: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` options (repeatable) as a dict; a malformed one names the flag."""
    from bayescale.errors import RunTableError

    out = {}
    for pair in items or []:
        if "=" not in pair:
            raise RunTableError(f"{flag} {pair!r}: expected {form}, e.g. {flag} {example}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip().strip("'\"")
    return out


def column_map(items: list[str] | None) -> dict[str, str]:
    """``--column CANONICAL=HEADER`` options as a renaming."""
    return pairs(items, "--column", "CANONICAL=HEADER", "params='Model Size'")


def group_map(items: list[str] | None) -> dict[str, str]:
    """``--group-value COLUMN=LEVEL`` options as the level each grouping column is asked for."""
    return pairs(items, "--group-value", "COLUMN=LEVEL", "dataset=web")


def check_output(output: Path | None, kind: str = "file", inputs: Sequence[Path | str | None] = (), stdout: bool = False) -> None:
    """Refuse a bad ``-o``, or one that is any of the command's ``inputs``, before any work (``paths.check_output_path``, exit 2).

    ``None`` is stdout, and so is ``-`` for a command whose output is text (``stdout=True``, see ``formatting.emit``).
    """
    if output is not None and not (stdout and str(output) == "-"):
        from bayescale.paths import check_output_path

        run(check_output_path, output, kind, inputs)


def command_line(name: str, *positional: object, options: Sequence[tuple[str, object]] = ()) -> str:
    """A ``bayescale`` command line from parsed values (paths as the user gave them; absolute ones never)."""
    import shlex

    from bayescale.report import display_path

    def word(value: object) -> str:
        return shlex.quote(display_path(value) if isinstance(value, Path) else str(value))

    parts = ["bayescale", name, *(word(p) for p in positional)]
    for flag, value in options:
        if value is None or value is False or value == []:
            continue
        for item in value if isinstance(value, list) else [value]:
            parts += [flag] if item is True else [flag, word(item)]
    return " ".join(parts)


def strict_exit(strict: bool, result) -> None:
    """Exit 7 under ``--strict`` when the fit did not converge or its own forecasts failed its self-check."""
    from bayescale.documents import failure

    if strict and not result.converged:
        typer.secho("error: --strict and the fit did not converge", err=True, fg=typer.colors.RED)
        raise typer.Exit(7)
    warning = failure(result.self_check)
    if strict and warning:
        typer.secho(f"error: --strict and the {warning}", err=True, fg=typer.colors.RED)
        raise typer.Exit(7)


def health_line(result) -> str:
    """The warning line every output carries when the fit's own forecasts failed its self-check ('' when they held)."""
    from bayescale.documents import failure

    warning = failure(result.self_check)
    return f"WARNING: {warning}" if warning else ""
