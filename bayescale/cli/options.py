"""Arguments and options several commands share, written once so their flags and help texts stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayescale.cli.formatting import Format

GROUP_VALUE_HELP = "COLUMN=LEVEL of a grouped fit (repeatable); levels match ignoring case."
NEW_GROUP_HELP = "For a new group not seen at fit time: population level, with the spread between groups."

FitArg = Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")]
RunsArg = Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")]
ModelOpt = Annotated[str, typer.Option(help="Shipped spec name or path to a TOML spec.")]
CiOpt = Annotated[float, typer.Option(help="Interval probability.")]
FormatOpt = Annotated[Format, typer.Option("--format", help="table, json or csv.")]
OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")]
GroupValueOpt = Annotated[list[str] | None, typer.Option(help=GROUP_VALUE_HELP)]
NewGroupOpt = Annotated[bool, typer.Option("--new-group", help=NEW_GROUP_HELP)]
DrawsOpt = Annotated[int, typer.Option(help="Posterior draws per chain.")]
TuneOpt = Annotated[int, typer.Option(help="Tuning steps per chain.")]
ChainsOpt = Annotated[int, typer.Option(help="Number of chains.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ColumnOpt = Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER.")]
DropHighestLossOpt = Annotated[int, typer.Option(help="Drop the k highest-loss runs first.")]
