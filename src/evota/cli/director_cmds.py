"""`evota director …`: register vehicles and assign images to their ECUs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    done,
    open_deployment,
    print_json,
    reports_errors,
)
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.errors import InputError

director_app = typer.Typer(
    help="The director repository: what each vehicle's ECUs must run.", no_args_is_help=True
)


def _parse_ecu(spec: str) -> EcuIdentity:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise InputError(f"--ecu {spec!r}: expected SERIAL:TYPE:HWID[:PUBLIC_KEY.json]")
    key = None
    if len(parts) == 4:
        path = Path(parts[3])
        try:
            key = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"--ecu {spec!r}: cannot read public key {path}: {e}") from e
    return EcuIdentity(parts[0], parts[1], parts[2], key)


@director_app.command("register")
@reports_errors
def register(
    vin: Annotated[str, typer.Argument(help="Vehicle identification number (ISO 3779).")],
    primary: Annotated[str, typer.Option(help="Serial of the primary ECU (gateway).")],
    ecu: Annotated[list[str], typer.Option(help="SERIAL:TYPE:HWID[:PUBLIC_KEY.json] (repeatable).")],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Register a vehicle's ECUs (and their public keys) with the director."""
    vehicle = VehicleIdentity(vin, primary, tuple(_parse_ecu(e) for e in ecu))
    open_deployment(home).director.register_vehicle(vehicle)
    done("registered", f"{vin} with {len(vehicle.ecus)} ECU(s)")


@director_app.command("assign")
@reports_errors
def assign(
    vin: Annotated[str, typer.Argument(help="Vehicle identification number.")],
    ecu: Annotated[list[str] | None, typer.Option(help="SERIAL=TARGET (repeatable).")] = None,
    release: Annotated[str | None, typer.Option(help="Release whose images must install together.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Sign new director targets for a vehicle: which image each ECU must run.

    With only --release, each image of the release goes to the ECU of matching type and
    hardware. With --ecu and --release, the release is checked to be fully assigned.
    """
    dep = open_deployment(home)
    pairs: dict[str, str] = {}
    for spec in ecu or []:
        serial, sep, target = spec.partition("=")
        if not sep or not serial or not target:
            raise InputError(f"--ecu {spec!r}: expected SERIAL=TARGET")
        pairs[serial] = target
    if not pairs and release is None:
        raise InputError("give --ecu SERIAL=TARGET and/or --release NAME")
    if pairs:
        result = dep.director.assign(vin, pairs, release=release)
    else:
        assert release is not None
        result = dep.director.assign_release(vin, release)
    if as_json:
        print_json(result)
        return
    for serial, target in sorted(result.items()):
        console.print(f"  {serial} → {target}")
    done("signed", f"director targets for {vin}")


@director_app.command("show")
@reports_errors
def show(
    vin: Annotated[str, typer.Argument()], home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False
) -> None:
    """Show a vehicle's ECUs and what the director assigns them."""
    dep = open_deployment(home)
    vehicle, assigned = dep.director.vehicle(vin), dep.director.assignments(vin)
    if as_json:
        print_json({"vehicle": vehicle.to_dict(), "assignments": assigned})
        return
    table = Table("serial", "type", "hardware", "assigned image", title=vin)
    for e in vehicle.ecus:
        role = " (primary)" if e.serial == vehicle.primary_serial else ""
        table.add_row(e.serial + role, e.ecu_type, e.hardware_id, assigned.get(e.serial, "—"))
    console.print(table)
