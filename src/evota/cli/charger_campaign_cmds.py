"""`evota charger campaign …`: firmware campaigns for chargers.

Like `evota campaign`, these act on the home's database on the server's machine, with the
operator named by --by (or EVOTA_USER); four-eyes approval compares those names. Remote
operators use `/api/v1/charger-campaigns`, where the name comes from their token.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from evota.cli.campaign_cmds import _window
from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    database,
    open_deployment,
    print_json,
    reports_errors,
)
from evota.domain.campaign import CampaignEvent
from evota.domain.charger_campaign import ChargerPolicy
from evota.domain.charger_health import SessionGate
from evota.domain.firmware import FirmwareTimeouts
from evota.errors import InputError

if TYPE_CHECKING:
    from evota.server.services.charger_campaigns import ChargerCampaignSummary

campaign_app = typer.Typer(help="Staged firmware rollouts to chargers.", no_args_is_help=True)

ByOpt = Annotated[
    str, typer.Option("--by", envvar="EVOTA_USER", help="Who does this (four eyes compares names).")
]
Many = Annotated[list[str] | None, typer.Option()]


def _show(summary: ChargerCampaignSummary, as_json: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    approved = f", approved by {summary.approved_by}" if summary.approved_by else ""
    console.print(
        f"{summary.name}: {summary.vendor} {summary.model} firmware {summary.version}, {summary.state} "
        f"(wave {summary.current_wave + 1} of {len(summary.wave_sizes)}), "
        f"created by {summary.created_by}{approved}"
    )
    if summary.halt_reason:
        console.print(f"  halted: {summary.halt_reason}")
    console.print("  waves: " + " → ".join(str(n) for n in summary.wave_sizes) + " chargers")
    console.print("  chargers: " + ", ".join(f"{n} {s}" for s, n in summary.statuses.items()))
    console.print(f"  sessions: {summary.validation.verdict.value}: {summary.validation.reason}")


@campaign_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="Campaign name, e.g. ac22-2-1-0.")],
    version: Annotated[
        str, typer.Option(help="The firmware version to roll out (evota charger firmware add).")
    ],
    model: Annotated[str, typer.Option(help="The charger model.")],
    by: ByOpt,
    vendor: Annotated[str | None, typer.Option(help="The vendor, if several have that model.")] = None,
    site: Many = None,
    tag: Many = None,
    from_version: Many = None,
    charger: Many = None,
    waves: Annotated[str, typer.Option(help="Cumulative percentages.")] = "10,50,100",
    dwell_hours: Annotated[float, typer.Option(help="Time each wave runs before the next may start.")] = 24.0,
    max_concurrent: Annotated[int, typer.Option(help="Throttle: updates in flight at most.")] = 20,
    error_threshold: Annotated[
        float, typer.Option(help="Halt when failures exceed this % of finished chargers.")
    ] = 10.0,
    success_threshold: Annotated[
        float, typer.Option(help="% of a wave that must be updated to advance.")
    ] = 80.0,
    window: Annotated[
        list[str] | None,
        typer.Option(
            help="Update window in each charger's local time, HH:MM-HH:MM, optionally /DAYS"
            " (0 = Monday: 22:00-05:00/0,1,2,3,4)."
        ),
    ] = None,
    quiet_hours: Annotated[
        int | None, typer.Option(help="Instead of --window: each site's quietest N hours, from its sessions.")
    ] = None,
    min_sessions: Annotated[
        int, typer.Option(help="Sessions in each cohort before the session gate judges.")
    ] = 20,
    alpha: Annotated[
        float, typer.Option(help="Significance of a session regression (Fisher, one-sided).")
    ] = 0.05,
    available_minutes: Annotated[
        float, typer.Option(help="Back to Available within this after the install.")
    ] = 10.0,
    retries: Annotated[int, typer.Option(help="Download tries sent with each request.")] = 3,
    retry_interval: Annotated[int, typer.Option(help="Seconds between download tries.")] = 60,
    silence_minutes: Annotated[
        float, typer.Option(help="A charger silent this long mid-update is resent.")
    ] = 30.0,
    max_days: Annotated[
        float, typer.Option(help="The campaign's horizon: certificates must outlive it.")
    ] = 30.0,
    defer_during_sessions: Annotated[
        bool, typer.Option("--defer-during-sessions", help="Send nothing to a charger while a session runs.")
    ] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft charger campaign: the firmware, the chargers it targets, waves and gates."""
    from cryptography.hazmat.primitives import serialization

    from evota.security.firmware_signing import FirmwarePki
    from evota.server.services.charger_campaigns import ChargerSelector, create_campaign

    if window and quiet_hours is not None:
        raise InputError("--window and --quiet-hours are alternatives: give one")
    try:
        wave_list = [float(w) for w in waves.split(",")]
    except ValueError:
        raise InputError(f"--waves {waves!r}: expected percentages like 10,50,100") from None
    policy = ChargerPolicy(
        dwell=dt.timedelta(hours=dwell_hours),
        max_concurrent=max_concurrent,
        error_threshold_pct=error_threshold,
        success_threshold_pct=success_threshold,
        windows=tuple(_window(w) for w in window or ()),
        retries=retries,
        retry_interval=dt.timedelta(seconds=retry_interval),
        timeouts=_timeouts(silence_minutes),
        available_within=dt.timedelta(minutes=available_minutes),
        sessions=SessionGate(min_sessions=min_sessions, alpha=alpha),
        max_duration=dt.timedelta(days=max_days),
        defer_during_sessions=defer_during_sessions,
    )
    selector = ChargerSelector(*(tuple(v or ()) for v in (site, (), from_version, tag, charger)))
    dep = open_deployment(home)
    root = FirmwarePki(dep.home.path, dep.keys).root_certificate().public_bytes(serialization.Encoding.PEM)
    with database(home) as db:
        summary = create_campaign(
            db,
            dep.home.path,
            root,
            name=name,
            vendor=vendor,
            model=model,
            version=version,
            selector=selector,
            waves=wave_list,
            policy=policy,
            created_by=by,
            now=dep.clock.now(),
            quiet_hours=quiet_hours,
        )
    _show(summary, as_json)


def _timeouts(silence_minutes: float) -> FirmwareTimeouts:
    try:
        return FirmwareTimeouts(silence=dt.timedelta(minutes=silence_minutes))
    except ValueError as e:
        raise InputError(f"--silence-minutes: {e}") from None


def _move(event: CampaignEvent, doc: str) -> None:
    def command(
        name: Annotated[str, typer.Argument(help="The campaign.")],
        by: ByOpt,
        home: HomeOpt = DEFAULT_HOME,
        as_json: JsonOpt = False,
    ) -> None:
        from evota.server.services.charger_campaigns import move_campaign

        with database(home) as db:
            summary = move_campaign(db, name, event, actor=by, now=open_deployment(home).clock.now())
        _show(summary, as_json)

    command.__doc__ = doc
    campaign_app.command(event.value.replace("_", "-"))(reports_errors(command))


_move(CampaignEvent.APPROVE, "Approve a draft campaign (someone other than its creator).")
_move(CampaignEvent.START, "Start an approved campaign: `evota serve` rolls it out.")
_move(CampaignEvent.PAUSE, "Pause a running campaign (updates in flight finish).")
_move(CampaignEvent.RESUME, "Resume a paused or halted campaign.")
_move(CampaignEvent.ABORT, "Abort a campaign (updates in flight finish; nothing new is sent).")
_move(
    CampaignEvent.ROLL_BACK,
    "Roll back: every charger that took the new firmware goes back to its last good one.",
)


@campaign_app.command("status")
@reports_errors
def status(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """A campaign's state, its session gate and every charger in it."""
    from evota.server.services.charger_campaigns import campaign_members, campaign_summary

    with database(home) as db:
        summary, members = campaign_summary(db, name), campaign_members(db, name)
    if as_json:
        print_json({**summary.to_json(), "chargers": [m.to_json() for m in members]})
        return
    _show(summary, False)
    table = Table("charger", "site", "wave", "status", "firmware", "request", "reasons")
    for m in members:
        table.add_row(
            m.charge_point_id,
            m.site,
            str(m.wave + 1),
            m.status,
            m.firmware_version or "?",
            m.request or "-",
            "; ".join(m.reasons),
        )
    console.print(table)


@campaign_app.command("list")
@reports_errors
def list_all(home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False) -> None:
    """Every charger campaign, newest first."""
    from evota.server.services.charger_campaigns import list_campaigns

    with database(home) as db:
        found = list_campaigns(db)
    if as_json:
        print_json([c.to_json() for c in found])
        return
    for c in found:
        _show(c, False)
