"""`evota fleet …`: the vehicle registry (import from CSV, list)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    database,
    done,
    open_deployment,
    print_json,
    reports_errors,
)
from evota.domain.registry import parse_vehicle_csv
from evota.errors import InputError

fleet_app = typer.Typer(
    help="The vehicle registry: import vehicles from CSV, list them.", no_args_is_help=True
)

MAX_CSV_BYTES = 512 * 1024 * 1024


@fleet_app.command("import")
@reports_errors
def fleet_import(
    file: Annotated[
        Path, typer.Argument(help="CSV: vin,model,depot,region,climate_zone,time_zone,tags,ecus.")
    ],
    by: Annotated[
        str, typer.Option("--by", envvar="EVOTA_USER", help="Who imports (for the audit log).")
    ] = "",
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Register vehicles from a CSV file: all rows or none; every bad row is reported by line.

    ecus is 'type:serial:hardware_id[:version]' joined by '|'; tags are joined by ';'.
    """
    if not file.is_file():
        raise InputError(f"{file} does not exist")
    if file.stat().st_size > MAX_CSV_BYTES:
        raise InputError(f"{file} is larger than {MAX_CSV_BYTES // 2**20} MiB; split it")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{file} is not UTF-8 text: {e}") from None
    rows = parse_vehicle_csv(text)
    from evota.server.services.fleet import import_vehicles  # database code loads on use

    with database(home) as db:
        count = import_vehicles(db, rows, open_deployment(home).clock.now(), actor=by or getpass.getuser())
    if as_json:
        print_json({"imported": count})
    else:
        done("imported", f"{count} vehicle(s) from {file}")


@fleet_app.command("list")
@reports_errors
def fleet_list(
    depot: Annotated[str | None, typer.Option(help="Only this depot.")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    climate_zone: Annotated[str | None, typer.Option(help="Only this climate zone.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only vehicles with this tag.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 1000,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """List registered vehicles."""
    from evota.server.services.fleet import list_vehicles

    with database(home) as db:
        vehicles = list_vehicles(
            db, depot=depot, region=region, climate_zone=climate_zone, tag=tag, limit=limit
        )
    if as_json:
        print_json([v.to_json() for v in vehicles])
        return
    table = Table("vin", "model", "depot", "region", "climate", "time zone", "tags", "ECUs")
    for v in vehicles:
        ecus = ", ".join(f"{e['ecu_type']} {e['installed_version'] or '?'}" for e in v.ecus)
        table.add_row(v.vin, v.model, v.depot, v.region, v.climate_zone, v.time_zone, ", ".join(v.tags), ecus)
    console.print(table)
