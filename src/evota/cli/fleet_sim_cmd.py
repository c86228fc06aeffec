"""`evota sim fleet`: the demo's world at any size and length (the big runs of the simulator)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from evota.clock import SystemClock

console = Console()


def fleet(
    vehicles: Annotated[
        int, typer.Option(min=100, help="Vans in the fleet (the canary is twenty of them, at most 20 %).")
    ] = 1000,
    days: Annotated[float, typer.Option(min=0.5, help="Simulated days at most.")] = 7.0,
    depots: Annotated[int, typer.Option(min=2, max=8, help="Depots.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the fleet, its routes and its batteries.")] = 1,
    home: Annotated[Path, typer.Option(help="The simulation's evota home (replaced if it exists).")] = Path(
        "evota-sim"
    ),
    database_url: Annotated[
        str | None, typer.Option(envvar="EVOTA_DATABASE_URL", help="PostgreSQL instead of the home's SQLite.")
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("sim-report.json"),
) -> None:
    """Run the demo's three campaigns on a larger fleet, for at most DAYS simulated days,
    through the real server services and agents; then write the same report as `evota demo`."""
    from evota.sim.demo import demo_start, run_demo, write_report

    if home.exists():
        if not (home / "evota.toml").is_file():
            console.print(f"[red]{home} exists and is not an evota home; choose another --home[/red]")
            raise typer.Exit(1)
        shutil.rmtree(home)
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

        result = run_demo(
            home,
            vehicles=vehicles,
            depots=depots,
            seed=seed,
            start=demo_start(SystemClock().now().date()),  # the season only: last winter's January
            max_days=days,
            database_url=database_url,
            progress=progress,
        )
    write_report(result.report, report)
    result.sim.close()
    r = result.report
    console.print(
        f"{r['vehicles']} vans, {r['simulated_days']} simulated days, {r['agent_cycles']} agent cycles "
        f"in {r['wall_time_s']} s; report: {report}"
    )
    for c in r["campaigns"]:
        console.print(
            f"  {c['campaign']}: {c['final_state']}, wave {c['waves_reached']}/{len(c['waves'])}, "
            f"{c['vehicles_exposed']} exposed, {c['vehicles_rolled_back']} rolled back"
        )
