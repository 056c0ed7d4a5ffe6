"""`mlplatform report TENANT`: the tenant's design review from a run's records (report/build.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def report(tenant: Annotated[str, typer.Argument(help="tenant name or tenant file")],
           run: Annotated[Path, typer.Option(help="the demo run folder (its summary.json)")] = Path("runs/latest"),
           out: Annotated[Path, typer.Option(help="where <tenant>.md and its PNGs go")] = Path("docs/design"),
           bench: Annotated[Path, typer.Option(help="benchmark results (timings)")] = Path("bench/results.json"),
           loop: Annotated[Path | None, typer.Option(
               help="a `make demo-loop` record (default: the tenant's newest runs/*/loop.json)")] = None) -> None:
    """Write the tenant's design review from a run's records: <run>/<tenant>/report.html and <out>/<tenant>.md."""
    from mlplatform.report.build import from_run_dir

    html_path = from_run_dir(tenant, run.resolve(), out, bench if bench.is_file() else None, loop_path=loop)[1]
    console.print(f"report: {escape(str(html_path))}, {escape(str(out))}/")
