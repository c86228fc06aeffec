"""The `evota` command line: one command group per area."""

from __future__ import annotations

from typing import Annotated

import typer

from evota import __version__
from evota.cli.agent_cmds import agent_app, vehicle_app
from evota.cli.analytics_cmds import analytics_app
from evota.cli.audit_cmds import audit_app
from evota.cli.campaign_cmds import campaign_app
from evota.cli.charger_cmds import charger_app
from evota.cli.common import DEFAULT_HOME, HomeOpt, console, database, open_deployment, reports_errors
from evota.cli.demo_cmd import demo
from evota.cli.director_cmds import director_app
from evota.cli.fleet_cmds import fleet_app
from evota.cli.fleet_sim_cmd import fleet as fleet_sim
from evota.cli.repo_cmds import init, keys_app, release_app, repo_app
from evota.cli.sim_cmds import sim_app
from evota.cli.user_cmds import user_app

app = typer.Typer(
    name="evota",
    help="evota: secure over-the-air updates for EV energy ECUs (BMS, VCMS, thermal) and chargers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("init")(init)
app.add_typer(release_app, name="release")
app.add_typer(repo_app, name="repo")
app.add_typer(director_app, name="director")
app.add_typer(keys_app, name="keys")
app.add_typer(fleet_app, name="fleet")
app.add_typer(campaign_app, name="campaign")
app.add_typer(charger_app, name="charger")
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(analytics_app, name="analytics")
app.add_typer(vehicle_app, name="vehicle")
app.add_typer(agent_app, name="agent")
sim_app.command("fleet")(fleet_sim)
app.add_typer(sim_app, name="sim")
app.command("demo")(demo)


@app.command("serve")
@reports_errors
def serve(
    home: HomeOpt = DEFAULT_HOME,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default from evota.toml).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from evota.toml).")] = None,
    tick_seconds: Annotated[
        float, typer.Option(help="How often the rollout controller ticks (0: never, e.g. a read replica).")
    ] = 10.0,
    mqtt: Annotated[
        str | None,
        typer.Option(
            envvar="EVOTA_MQTT_URL",
            help="Also ingest vehicle telemetry from this MQTT broker (mqtt://host:1883), "
            "topic evota/v1/vehicles/<VIN>/telemetry.",
        ),
    ] = None,
) -> None:
    """Serve the repositories, the operator and device APIs, the CSMS for chargers (OCPP 1.6J
    and 2.0.1 at ws://HOST:PORT/ocpp/<charge point id>), and run the rollout controller.

    The database is the home's SQLite file unless EVOTA_DATABASE_URL names PostgreSQL; several
    processes may then serve one database, and one of them at a time runs the controller.
    """
    from evota.server.app import create_app
    from evota.server.runner import serve_forever

    dep = open_deployment(home)
    host = host or dep.settings.server_host
    port = port if port is not None else dep.settings.server_port
    with database(home) as db:
        console.print(
            f"serving {dep.home.path} on http://{host}:{port} (/repo/, /api/v1/, /docs; chargers: ws://…/ocpp/<id>)"
        )
        serve_forever(create_app(dep, db, tick_interval_s=tick_seconds or None, mqtt_url=mqtt), host, port)


@app.command("version")
def version() -> None:
    """Print evota's version."""
    typer.echo(__version__)


def main() -> None:
    app()
