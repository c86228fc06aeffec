"""`evota charger cert …`: the charger certification registry (vehicle–charger compatibility).

A vehicle campaign created with `--requires-charger CAPABILITY` holds every vehicle whose
depot chargers are not all certified for that capability on the firmware they run now.
"""

from __future__ import annotations

import getpass
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
from evota.domain.charger_compat import ISO15118_20_BIDIRECTIONAL, Certification

cert_app = typer.Typer(
    help="Charger certifications: which model and firmware is certified for what.", no_args_is_help=True
)

ByOpt = Annotated[str, typer.Option("--by", envvar="EVOTA_USER", help="Who acts (for the audit log).")]


@cert_app.command("add")
@reports_errors
def add(
    vendor: Annotated[str, typer.Option(help="Charger vendor (as in BootNotification).")],
    model: Annotated[str, typer.Option(help="Charger model.")],
    versions: Annotated[str, typer.Option(help="Firmware version range, e.g. '>=2.1,<3'.")],
    capability: Annotated[str, typer.Option(help="What it is certified for.")] = ISO15118_20_BIDIRECTIONAL,
    note: Annotated[str | None, typer.Option(help="E.g. the test report's reference.")] = None,
    by: ByOpt = "",
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Record that a charger model's firmware range is certified for a capability."""
    from evota.server.services.certifications import add_certification

    with database(home) as db:
        view = add_certification(
            db,
            Certification(capability, vendor, model, versions),
            note=note,
            actor=by or getpass.getuser(),
            now=open_deployment(home).clock.now(),
        )
    if as_json:
        print_json(view.to_json())
    else:
        done("certified", f"{vendor} {model} {versions} for {capability} (id {view.id})")


@cert_app.command("list")
@reports_errors
def list_certs(
    capability: Annotated[str | None, typer.Option(help="Only this capability.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """List certifications."""
    from evota.server.services.certifications import list_certifications

    with database(home) as db:
        found = list_certifications(db, capability=capability)
    if as_json:
        print_json([c.to_json() for c in found])
        return
    table = Table("id", "capability", "vendor", "model", "firmware", "note", "added")
    for c in found:
        table.add_row(
            str(c.id),
            c.capability,
            c.vendor,
            c.model,
            c.versions,
            c.note or "",
            f"{c.added_at:%Y-%m-%d} by {c.added_by}",
        )
    console.print(table)


@cert_app.command("remove")
@reports_errors
def remove(
    certification_id: Annotated[int, typer.Argument(help="The certification's id (see list).")],
    by: ByOpt = "",
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Withdraw a certification."""
    from evota.server.services.certifications import remove_certification

    with database(home) as db:
        remove_certification(
            db, certification_id, actor=by or getpass.getuser(), now=open_deployment(home).clock.now()
        )
    done("removed", f"certification {certification_id}")
