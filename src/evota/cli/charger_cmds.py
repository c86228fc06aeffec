"""`evota charger …`: the charger registry (add, list, show, new password)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table

from evota.cli.charger_campaign_cmds import campaign_app
from evota.cli.charger_cert_cmds import cert_app
from evota.cli.charger_firmware_cmds import firmware_app
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

charger_app = typer.Typer(
    help="Chargers that connect to `evota serve` over OCPP 1.6J or 2.0.1: the registry, firmware, "
    "campaigns and certifications.",
    no_args_is_help=True,
)
charger_app.add_typer(firmware_app, name="firmware")
charger_app.add_typer(campaign_app, name="campaign")
charger_app.add_typer(cert_app, name="cert")

ByOpt = Annotated[str, typer.Option("--by", envvar="EVOTA_USER", help="Who acts (for the audit log).")]


@charger_app.command("add")
@reports_errors
def charger_add(
    charge_point_id: Annotated[str, typer.Argument(help="The charger's OCPP identity (1-48 characters).")],
    site: Annotated[str, typer.Option(help="The site it stands at, e.g. berlin-north.")],
    time_zone: Annotated[str, typer.Option(help="The site's IANA time zone, e.g. Europe/Berlin.")],
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    plain_updates: Annotated[
        bool,
        typer.Option(
            "--plain-updates", help="A 1.6 charger without the security extension (plain UpdateFirmware)."
        ),
    ] = False,
    by: ByOpt = "",
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Register a charger and print its basic-auth password (shown once, stored hashed)."""
    from evota.server.services.chargers import add_charger

    with database(home) as db:
        password = add_charger(
            db,
            charge_point_id=charge_point_id,
            site=site,
            time_zone=time_zone,
            tags=tag or (),
            signed_updates=not plain_updates,
            actor=by or getpass.getuser(),
            now=open_deployment(home).clock.now(),
        )
    if as_json:
        print_json({"charge_point_id": charge_point_id, "password": password})
        return
    done("added", f"charger {charge_point_id} at {site}")
    console.print(f"basic-auth user: {charge_point_id}")
    console.print(f"password (shown once): {password}")


@charger_app.command("password")
@reports_errors
def charger_password(
    charge_point_id: Annotated[str, typer.Argument(help="The charger.")],
    by: ByOpt = "",
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Give a charger a new password (the old one stops working at its next connection)."""
    from evota.server.services.chargers import reset_password

    with database(home) as db:
        password = reset_password(
            db, charge_point_id, actor=by or getpass.getuser(), now=open_deployment(home).clock.now()
        )
    if as_json:
        print_json({"charge_point_id": charge_point_id, "password": password})
    else:
        console.print(f"password (shown once): {password}")


@charger_app.command("list")
@reports_errors
def charger_list(
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """List registered chargers with what they last reported."""
    from evota.server.services.chargers import list_chargers

    with database(home) as db:
        chargers = list_chargers(db, site=site)
    if as_json:
        print_json([c.to_json() for c in chargers])
        return
    table = Table("id", "site", "model", "firmware", "OCPP", "connected", "last seen", "connectors")
    for c in chargers:
        connectors = ", ".join(f"{x['evse']}:{x['status']}" for x in c.connectors)
        seen = c.last_seen_at.isoformat(timespec="seconds") if c.last_seen_at else "never"
        table.add_row(
            c.charge_point_id,
            c.site,
            f"{c.vendor or '?'} {c.model or '?'}",
            c.firmware_version or "?",
            c.protocol or "-",
            "yes" if c.connected else "no",
            seen,
            connectors,
        )
    console.print(table)


@charger_app.command("show")
@reports_errors
def charger_show(
    charge_point_id: Annotated[str, typer.Argument(help="The charger.")],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Everything the registry holds about one charger (JSON)."""
    from evota.server.services.chargers import get_charger

    with database(home) as db:
        print_json(get_charger(db, charge_point_id).to_json())
