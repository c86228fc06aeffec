"""`evota demo`: a logistics fleet through three releases (`--walkthrough`: secure delivery)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from evota.clock import SystemClock

console = Console()


def demo(
    vehicles: Annotated[
        int, typer.Option(min=100, help="Vans in the fleet (the canary is twenty of them, at most 20 %).")
    ] = 200,
    depots: Annotated[int, typer.Option(min=2, max=8, help="Depots (cold and warm ones alike).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the fleet, its routes and its batteries.")] = 1,
    home: Annotated[
        Path, typer.Option(help="The demo's evota home, replaced if it exists (then: evota serve --home …).")
    ] = Path("evota-demo"),
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("demo-report.json"),
    walkthrough: Annotated[
        bool, typer.Option("--walkthrough", help="Instead: init → publish → serve → verify, and two attacks.")
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option(help="--walkthrough only: keep its home and files here.")
    ] = None,
) -> None:
    """Run the fleet story: 200 delivery vans in 8 depots, a good release to 100 %, a bad cold
    calibration caught and rolled back by the health gate, and a BMS release
    that needs a newer VCMS (a bundle, with incompatible vans held). Days of the fleet pass in
    minutes on a simulated clock, through the real server services and the real agents."""
    if walkthrough:
        from evota.walkthrough import run_walkthrough

        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        if not run_walkthrough(console, workdir):
            raise typer.Exit(1)
        return
    from evota.sim.demo import demo_start, run_demo, write_report

    if home.exists():
        if not (home / "evota.toml").is_file():
            console.print(f"[red]{home} exists and is not an evota home; choose another --home[/red]")
            raise typer.Exit(1)
        shutil.rmtree(home)
    start = demo_start(SystemClock().now().date())  # the season only: last winter's January
    console.print(
        f"[bold]evota demo[/bold]: {vehicles} vans in {depots} depots, from {start:%Y-%m-%d} (simulated)"
    )
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f} %"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, fraction: float) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=1.0)
            bar.update(tasks[what], completed=min(fraction, 1.0))

        result = run_demo(home, vehicles=vehicles, depots=depots, seed=seed, start=start, progress=progress)
    write_report(result.report, report)
    result.sim.close()
    _print(result.report)
    console.print(f"report: {report}; the fleet's home: {home} (see it live: evota serve --home {home})")


def _print(report: dict[str, Any]) -> None:
    table = Table(title="Deployment report")
    for column in ("campaign", "state", "waves", "exposed", "rolled back", "held", "bad telemetry → halt"):
        table.add_column(column)
    for c in report["campaigns"]:
        minutes = c["minutes_from_first_bad_telemetry_to_halt"]
        table.add_row(
            c["campaign"],
            c["final_state"],
            f"{c['waves_reached']}/{len(c['waves'])}",
            str(c["vehicles_exposed"]),
            str(c["vehicles_rolled_back"]),
            str(c["vehicles_held"]),
            "" if minutes is None else f"{minutes} min",
        )
    console.print(table)
    for ecu_type, versions in report["final_versions"].items():
        console.print(f"  {ecu_type}: " + ", ".join(f"{v} × {n}" for v, n in versions.items()))
    console.print(
        f"{report['simulated_days']} simulated days, {report['agent_cycles']} agent cycles, "
        f"{report['wall_time_s']} s"
    )
