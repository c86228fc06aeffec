"""`evota vehicle provision` and `evota agent …`: the vehicle side, on the primary ECU."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

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
from evota.clock import SystemClock
from evota.errors import InputError

vehicle_app = typer.Typer(help="Vehicles on the line: provision a state folder.", no_args_is_help=True)
agent_app = typer.Typer(
    help="The on-vehicle agent: poll, verify, install with A/B slots, commit or roll back.",
    no_args_is_help=True,
)

StateOpt = Annotated[Path, typer.Option("--state-dir", help="The vehicle's state folder.")]


def _ecu_arg(text: str) -> tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise InputError(f"--ecu {text!r}: expected TYPE:SERIAL:HARDWARE_ID, e.g. bms:BMS-1:bms-gen2")
    return parts[0], parts[1], parts[2]


def _uds_arg(text: str) -> tuple[str, dict[str, Any]]:
    serial, _, file = text.partition("=")
    if not serial or not file:
        raise InputError(f"--uds {text!r}: expected SERIAL=FILE")
    try:
        options = json.loads(Path(file).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"--uds {serial}: cannot read {file}: {e}") from None
    if not isinstance(options, dict):
        raise InputError(f"--uds {serial}: {file} must hold a JSON object")
    return serial, options


@vehicle_app.command("provision")
@reports_errors
def provision(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN (it must be in the fleet registry).")],
    state_dir: StateOpt,
    ecu: Annotated[
        list[str] | None,
        typer.Option("--ecu", help="A secondary, TYPE:SERIAL:HARDWARE_ID (checked against the registry)."),
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="Server URL the agent polls (default: the home's).")
    ] = None,
    uds: Annotated[
        list[str] | None,
        typer.Option(
            help="SERIAL=FILE: this ECU is reached over UDS; FILE is JSON with interface, channel, "
            "txid, rxid, security_secret_hex and the ECU's public_key (docs/uds.md)."
        ),
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Create a vehicle's state folder: keys per ECU, both trusted roots, a factory image per
    ECU partition, and the device token; registers the keys with the server's director."""
    from evota.agent.provision import provision_vehicle

    dep = open_deployment(home)
    url = server or f"http://{dep.settings.server_host}:{dep.settings.server_port}"
    ecus = [_ecu_arg(e) for e in ecu or []]
    reached = dict(_uds_arg(u) for u in uds or [])
    with database(home) as db:
        config = provision_vehicle(
            dep, db, vin=vin, state_dir=state_dir, server_url=url, ecus=ecus, uds=reached, now=dep.clock.now()
        )
    serials = ", ".join(f"{e.ecu_type} {e.serial}" for e in config.ecus)
    done("provisioned", f"{vin} in {state_dir} (primary {config.primary_serial}; {serials}); polls {url}")


def _agent(state_dir: Path, server: str | None) -> Any:
    from evota.agent.agent import Agent
    from evota.agent.state import StateDir
    from evota.agent.transport import HttpServer

    state = StateDir(state_dir)
    config = state.config()
    port = HttpServer(server or config.server_url, vin=config.vin, token=state.token())
    return Agent(state, port, clock=SystemClock())


@agent_app.command("run")
@reports_errors
def run(
    state_dir: StateOpt,
    server: Annotated[str | None, typer.Option(help="Server URL (default: the state folder's).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one poll cycle and exit.")] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between polls (default: what the server asks).")
    ] = None,
) -> None:
    """Poll the server and install what the director assigns, journalling every step.

    A restart (after a crash or a power cut) first finishes or rolls back what the journal
    says was in flight. SIGTERM stops it between cycles.
    """
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _agent(state_dir, server) as agent:
        while True:
            result = agent.cycle()
            console.print(f"{result.outcome}: {result.detail}".rstrip(": "))
            if once or stop.is_set():
                return
            wait = interval if interval is not None else (result.next_poll_s or agent.config.poll_interval_s)
            if stop.wait(wait):
                return


@agent_app.command("status")
@reports_errors
def status(state_dir: StateOpt, as_json: JsonOpt = False) -> None:
    """Per ECU: its slots, the active and committed version, the pending step, the last result."""
    from evota.agent.state import StateDir
    from evota.agent.status import agent_status

    state = StateDir(state_dir)
    report = agent_status(state, state.open_secondaries())
    if as_json:
        print_json(report)
        return
    console.print(f"{report['vin']} (primary {report['primary']}), server {report['server']}")
    if report["in_flight"]:
        f = report["in_flight"]
        console.print(f"in flight: {f['kind']} {f['release']} at {f['phase']}")
    if report["waiting"]:
        console.print(f"waiting: {report['waiting']}")
    for serial, e in report["ecus"].items():
        if "error" in e:
            console.print(f"  {serial}: {e['error']}")
            continue
        fw = e["partitions"]["firmware"]
        last = e["last_result"]
        tail = f"; last: {last['phase']} {last['release']} {last['reason']}".rstrip() if last else ""
        console.print(
            f"  {serial} ({e['ecu_type']}): runs {e['version']} from {fw['active_slot']}"
            f"{' (on trial)' if fw['on_trial'] else ''}, committed {fw['committed_version']}{tail}"
        )


@agent_app.command("rollback")
@reports_errors
def rollback(
    state_dir: StateOpt,
    reason: Annotated[str, typer.Option(help="Why (it goes to the server and the audit log).")],
    server: Annotated[str | None, typer.Option(help="Server URL (default: the state folder's).")] = None,
) -> None:
    """Go back to what ran before the last committed release, inside its rollback window."""
    with _agent(state_dir, server) as agent:
        record = agent.user_rollback(reason)
    if record.phase.value != "committed":
        raise InputError(f"the rollback did not complete: {record.phase.value} ({record.reason})")
    done("rolled back", f"{record.release} on {', '.join(record.serials)}")


@agent_app.command("consent")
@reports_errors
def consent(
    state_dir: StateOpt,
    release: Annotated[str, typer.Option(help="The release the user consents to.")],
    by: Annotated[str, typer.Option(help="Who consents (driver, fleet app user).")],
) -> None:
    """Record the user's consent to an energy-related release (who and when)."""
    from evota.agent.state import StateDir
    from evota.domain.identifiers import validate_name

    validate_name(release)
    StateDir(state_dir).add_consent(release, by, SystemClock().now())
    done("consent", f"for {release} by {by}")


@agent_app.command("signals")
@reports_errors
def signals(
    state_dir: StateOpt,
    soc: Annotated[float, typer.Option(help="State of charge, %.")],
    gear: Annotated[str, typer.Option(help="P, R, N or D.")] = "P",
    charging: Annotated[bool, typer.Option("--charging/--not-charging")] = False,
    plugged_in: Annotated[bool, typer.Option("--plugged-in/--unplugged")] = False,
    ambient: Annotated[float, typer.Option(help="Ambient temperature, °C.")] = 20.0,
    hv: Annotated[
        bool | None, typer.Option("--hv-on/--hv-off", help="High-voltage system on (contactors closed).")
    ] = None,
) -> None:
    """Set the energy state the agent reads (what the vehicle's buses would report)."""
    from evota.agent.signals import FileSignals
    from evota.agent.state import StateDir
    from evota.domain.gates import EnergyState, Gear

    try:
        g = Gear(gear)
    except ValueError:
        raise InputError("--gear is P, R, N or D") from None
    if not 0 <= soc <= 100:
        raise InputError("--soc is a percentage, 0-100")
    state = StateDir(state_dir)
    state.config()
    now = SystemClock().now()
    FileSignals(state / "signals.json").write(
        EnergyState(soc, charging, plugged_in, g, ambient, now, hv_on=hv)
    )
    done(
        "signals",
        f"soc {soc:g} %, gear {g.value}, charging {charging}, plugged in {plugged_in}, {ambient:g} °C",
    )
