"""`evota sim …`: simulators of what evota talks to. This module holds the command group;
each simulator adds its command here (`charger`: a real OCPP charge point; `fleet`, from
fleet_sim_cmd: the virtual fleet of vans)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from evota.cli.common import console, reports_errors
from evota.domain.chargers import Protocol
from evota.errors import InputError

sim_app = typer.Typer(
    help="Simulators of what evota talks to (a fleet of vans, chargers).", no_args_is_help=True
)


@sim_app.command("charger")
@reports_errors
def charger(
    charge_point_id: Annotated[str, typer.Option("--id", help="The charge point id (as registered).")],
    csms: Annotated[
        str, typer.Option(help="The CSMS URL, e.g. ws://127.0.0.1:8700/ocpp (the id is appended).")
    ],
    password: Annotated[
        str | None, typer.Option(envvar="EVOTA_CHARGER_PASSWORD", help="Its basic-auth password.")
    ] = None,
    protocol: Annotated[str, typer.Option(help="2.0.1 or 1.6.")] = "2.0.1",
    plain: Annotated[bool, typer.Option("--plain", help="1.6 without the security extension.")] = False,
    vendor: Annotated[str, typer.Option(help="Vendor it reports.")] = "Acme",
    model: Annotated[str, typer.Option(help="Model it reports.")] = "AC22",
    firmware_version: Annotated[str, typer.Option(help="Firmware it boots with.")] = "1.0.0",
    connectors: Annotated[int, typer.Option(help="Connectors (EVSEs).")] = 1,
    root_cert: Annotated[
        Path | None,
        typer.Option(help="The manufacturer root it trusts (evota charger firmware root-cert).", exists=True),
    ] = None,
    fail: Annotated[
        list[str] | None,
        typer.Option(
            help="Fail: download, signature, install, verification, power-loss, regression (repeatable)."
        ),
    ] = None,
    sessions_every: Annotated[
        float, typer.Option(help="Seconds between charging sessions (0: none).")
    ] = 30.0,
    session_seconds: Annotated[float, typer.Option(help="How long a session lasts.")] = 5.0,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every OCPP message.")] = False,
) -> None:
    """Run a simulated charger: boots, heartbeats, sessions, and firmware updates over OCPP.

    It downloads the image from the location it is sent, checks the certificate against
    --root-cert and the signature over the whole file, installs, reboots (BootNotification
    reason FirmwareUpdate) and reports every status on the way.
    """
    from evota.sim.charger import Fault, SimCharger, SimConfig

    try:
        version = Protocol(protocol)
        faults = frozenset(Fault(f) for f in fail or ())
    except ValueError as e:
        raise InputError(
            f"{e} (protocols: 2.0.1, 1.6; faults: {', '.join(f.value for f in Fault)})"
        ) from None
    if plain and version is not Protocol.V16:
        raise InputError("--plain is for OCPP 1.6 (2.0.1 updates are always signed)")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("evota.sim.charger").setLevel(logging.INFO)
    config = SimConfig(
        charge_point_id=charge_point_id,
        csms_url=csms,
        password=password,
        protocol=version,
        vendor=vendor,
        model=model,
        firmware_version=firmware_version,
        connectors=connectors,
        security_extension=not plain,
        root_certificate=root_cert.read_bytes() if root_cert else None,
        faults=faults,
        session_every_s=sessions_every or None,
        session_s=session_seconds,
    )
    station = SimCharger(config)
    console.print(f"charger {charge_point_id} (OCPP {version.value}) → {config.url}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if duration:
            loop.call_later(duration, stop.set)
        await station.run(stop)

    asyncio.run(main())
    console.print(f"stopped: firmware {station.version}, {station.sessions} sessions")
    for line in station.history:
        console.print(f"  {line}")
