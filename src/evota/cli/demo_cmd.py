"""`evota demo`: the walkthrough of secure delivery (a fleet demo comes with the simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the demo's home and files here (default: a temp folder).")
    ] = None,
) -> None:
    """Walk through init → publish → serve → verify as a vehicle would, and two attacks."""
    from evota.walkthrough import run_walkthrough

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    if not run_walkthrough(Console(), workdir):
        raise typer.Exit(1)
