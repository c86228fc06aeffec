"""`evota charger firmware …`: the signing key, images, and single updates.

init-signing   create the manufacturer-root-style CA and the signing certificate
renew-signing  a new signing certificate from the same root
root-cert      print the root certificate (install it on chargers as their
               ManufacturerRootCertificate)
add            sign an image and register it (served to chargers by `evota serve`)
list           the registered images
send           queue one update for one charger (outside any campaign)
history        a charger's firmware requests and the statuses it reported
"""

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
from evota.security.firmware_signing import FirmwarePki, SigningScheme

firmware_app = typer.Typer(
    help="Charger firmware: the signing key, images, single updates.", no_args_is_help=True
)

ByOpt = Annotated[str, typer.Option("--by", envvar="EVOTA_USER", help="Who acts (for the audit log).")]


def _pki(home: Path) -> FirmwarePki:
    dep = open_deployment(home)
    return FirmwarePki(dep.home.path, dep.keys)


@firmware_app.command("init-signing")
@reports_errors
def init_signing(
    scheme: Annotated[SigningScheme, typer.Option(help="Signature scheme.")] = SigningScheme.ECDSA_P256,
    organisation: Annotated[str, typer.Option(help="Organisation named in the certificates.")] = "evota",
    root_days: Annotated[int, typer.Option(help="Root certificate lifetime.")] = 3650,
    signing_days: Annotated[int, typer.Option(help="Signing certificate lifetime.")] = 730,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Create the firmware signing CA (root key offline) and a signing certificate under it."""
    dep = open_deployment(home)
    pki = FirmwarePki(dep.home.path, dep.keys)
    root = pki.init(
        now=dep.clock.now(),
        scheme=scheme,
        organisation=organisation,
        root_days=root_days,
        signing_days=signing_days,
    )
    done("created", f"firmware signing root {root.subject.rfc4514_string()} ({scheme.value})")
    console.print(
        f"root certificate: {pki.root_file} (install it on chargers: evota charger firmware root-cert)"
    )
    console.print(f"private keys: {dep.keys.offline_dir}")


@firmware_app.command("renew-signing")
@reports_errors
def renew_signing(
    days: Annotated[int, typer.Option(help="Signing certificate lifetime.")] = 730,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Issue a new signing key and certificate from the root (needs the offline root key)."""
    dep = open_deployment(home)
    cert = FirmwarePki(dep.home.path, dep.keys).renew(now=dep.clock.now(), days=days)
    done(
        "issued",
        f"signing certificate {cert.serial_number:x}, valid until {cert.not_valid_after_utc:%Y-%m-%d}",
    )


@firmware_app.command("root-cert")
@reports_errors
def root_cert(home: HomeOpt = DEFAULT_HOME) -> None:
    """Print the root certificate (PEM)."""
    from cryptography.hazmat.primitives import serialization

    typer.echo(_pki(home).root_certificate().public_bytes(serialization.Encoding.PEM).decode(), nl=False)


@firmware_app.command("add")
@reports_errors
def add(
    file: Annotated[Path, typer.Argument(help="The firmware image.", exists=True, dir_okay=False)],
    version: Annotated[str, typer.Option(help="Its version, as the charger will report it.")],
    model: Annotated[str, typer.Option(help="The charger model it is for (as in BootNotification).")],
    vendor: Annotated[str, typer.Option(help="The charger vendor (as in BootNotification).")],
    by: ByOpt = "",
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Sign an image over its whole file and register it."""
    from evota.server.services.firmware import add_firmware

    dep = open_deployment(home)
    pki = FirmwarePki(dep.home.path, dep.keys)
    with database(home) as db:
        view = add_firmware(
            db,
            pki,
            dep.home.path,
            path=file,
            vendor=vendor,
            model=model,
            version=version,
            actor=by or getpass.getuser(),
            now=dep.clock.now(),
        )
    if as_json:
        print_json(view.to_json())
        return
    done("added", f"{vendor} {model} firmware {version} ({view.size} bytes, sha256 {view.sha256[:16]}…)")
    console.print(f"served at {view.path}")


@firmware_app.command("list")
@reports_errors
def list_images(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """List registered charger firmware images."""
    from evota.server.services.firmware import list_firmware

    with database(home) as db:
        images = list_firmware(db, model=model)
    if as_json:
        print_json([i.to_json() for i in images])
        return
    table = Table("id", "vendor", "model", "version", "size", "sha256", "certificate", "published")
    for i in images:
        table.add_row(
            str(i.id),
            i.vendor,
            i.model,
            i.version,
            str(i.size),
            i.sha256[:16],
            i.certificate_serial[:16],
            f"{i.published_at:%Y-%m-%d} by {i.published_by}",
        )
    console.print(table)


@firmware_app.command("send")
@reports_errors
def send(
    charge_point_id: Annotated[str, typer.Argument(help="The charger.")],
    version: Annotated[str, typer.Option(help="The firmware version to install.")],
    vendor: Annotated[str | None, typer.Option(help="The vendor, if several have that model.")] = None,
    retries: Annotated[int, typer.Option(help="Download tries the charger makes.")] = 3,
    retry_interval: Annotated[int, typer.Option(help="Seconds between tries.")] = 60,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Queue one update for one charger; `evota serve` sends it when the charger is connected."""
    from evota.server.services.chargers import load_charger
    from evota.server.services.firmware import load_firmware
    from evota.server.services.firmware_requests import request_update

    dep = open_deployment(home)
    with database(home) as db:
        with db.sessions() as session:
            charger = load_charger(session, charge_point_id)
            image = load_firmware(
                session, vendor=vendor or charger.vendor, model=charger.model or "", version=version
            )
            image_id = image.id
        rid = request_update(
            db,
            charge_point_id,
            image_id,
            retries=retries,
            retry_interval_s=retry_interval,
            now=dep.clock.now(),
        )
    done("queued", f"request {rid}: {charge_point_id} to firmware {version}")


@firmware_app.command("history")
@reports_errors
def history(
    charge_point_id: Annotated[str, typer.Argument(help="The charger.")],
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """A charger's firmware requests, and every status it reported."""
    from evota.server.services.firmware_queries import charger_history

    with database(home) as db:
        requests, steps = charger_history(db, charge_point_id)
    if as_json:
        print_json({"requests": requests, "steps": steps})
        return
    table = Table("request", "firmware", "purpose", "message", "attempt", "state", "reason")
    for r in requests:
        table.add_row(
            *(
                str(r[k] if r[k] is not None else "")
                for k in ("id", "version", "purpose", "message", "attempt", "state", "reason")
            )
        )
    console.print(table)
    for s in steps:
        console.print(f"  {s['at']}  #{s['request_id'] or '-'}  {s['status']}  ({s['source']})")
