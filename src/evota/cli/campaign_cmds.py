"""`evota campaign …`: create, approve (four eyes), start, pause, resume, abort, show, report.

These commands act on the home's database directly, on the server's machine, where whoever
can run them is trusted already: the operator names themself with --by (or EVOTA_USER) and
four-eyes approval compares those names. Remote operators use the API (`/api/v1/campaigns`),
where the name comes from their token and each action needs its role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

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
from evota.domain.campaign import DEFAULT_WAVES, CampaignEvent
from evota.domain.gates import MaintenanceWindow, Preconditions, Rule
from evota.domain.planner import RolloutPolicy
from evota.errors import InputError

if TYPE_CHECKING:
    from evota.server.services.campaigns import CampaignSummary
    from evota.server.services.reports import CampaignReport, Tally
    from evota.server.store.db import Database

campaign_app = typer.Typer(help="Staged rollouts of a release to the fleet.", no_args_is_help=True)

ByOpt = Annotated[
    str, typer.Option("--by", envvar="EVOTA_USER", help="Who does this (four eyes compares names).")
]
Many = Annotated[list[str] | None, typer.Option()]


def _with_db(home: Path, fn: Callable[[Database], CampaignSummary]) -> CampaignSummary:
    with database(home) as db:
        return fn(db)


def _window(spec: str) -> MaintenanceWindow:
    """`22:00-05:00` or `22:00-05:00/0,1,2,3,4` (weekdays, 0 = Monday)."""
    hours, _, days = spec.partition("/")
    start, sep, end = hours.partition("-")
    try:
        if not sep:
            raise ValueError("no '-'")
        weekdays = frozenset(int(d) for d in days.split(",")) if days else frozenset(range(7))
        return MaintenanceWindow(dt.time.fromisoformat(start), dt.time.fromisoformat(end), weekdays)
    except (ValueError, InputError) as e:
        raise InputError(f"--window {spec!r}: expected HH:MM-HH:MM[/0,1,…] ({e})") from None


def _show(summary: CampaignSummary, as_json: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    approved = f", approved by {summary.approved_by}" if summary.approved_by else ""
    console.print(
        f"{summary.name}: release {summary.release}, {summary.state} (wave {summary.current_wave + 1}"
        f" of {len(summary.wave_sizes)}), created by {summary.created_by}{approved}"
    )
    console.print("  waves: " + " → ".join(str(n) for n in summary.wave_sizes) + " vehicles")
    console.print("  vehicles: " + ", ".join(f"{n} {s}" for s, n in summary.statuses.items()))


def _gate(interval_hours: float) -> dict[str, object]:
    from evota.domain.health import default_gate

    if not 0 < interval_hours <= 24 * 7:
        raise InputError("--gate-interval-hours must be above 0 and at most a week")
    return {**default_gate().to_dict(), "interval_s": interval_hours * 3600}


@campaign_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="Campaign name, e.g. bms-2-4-0-eu.")],
    release: Annotated[str, typer.Option(help="Release (bundle) name in the image repository.")],
    by: ByOpt,
    depot: Many = None,
    region: Many = None,
    climate_zone: Many = None,
    model: Many = None,
    hardware_id: Many = None,
    tag: Many = None,
    vin: Many = None,
    waves: Annotated[str, typer.Option(help="Cumulative percentages.")] = ",".join(
        f"{w:g}" for w in DEFAULT_WAVES
    ),
    dwell_hours: Annotated[float, typer.Option(help="Time each wave runs before the next may start.")] = 24.0,
    first_dwell_hours: Annotated[
        float | None, typer.Option(help="The first wave's dwell, if the canary should run longer.")
    ] = None,
    max_concurrent: Annotated[int, typer.Option(help="Throttle: installs in flight at most.")] = 50,
    error_threshold: Annotated[
        float, typer.Option(help="Halt when failures exceed this % of a wave's finished installs.")
    ] = 5.0,
    install_timeout_hours: Annotated[
        float, typer.Option(help="An offer with no result after this long counts as failed.")
    ] = 6.0,
    success_threshold: Annotated[
        float, typer.Option(help="% of a wave's compatible vehicles that must be updated to advance.")
    ] = 80.0,
    min_soc: Annotated[float, typer.Option(help="Minimum state of charge, %.")] = 60.0,
    plugged_in: Annotated[Rule, typer.Option(help="Plugged in: required, forbidden or any.")] = Rule.ANY,
    charging: Annotated[Rule, typer.Option(help="Charging: required, forbidden or any.")] = Rule.FORBIDDEN,
    window: Annotated[
        list[str] | None,
        typer.Option(
            help="Maintenance window in local time, HH:MM-HH:MM, optionally /DAYS"
            " (0 = Monday: 01:00-05:00/0,1,2,3,4); repeatable."
        ),
    ] = None,
    consent: Annotated[bool, typer.Option("--consent", help="Require the user's consent.")] = False,
    health_gate: Annotated[
        bool,
        typer.Option(
            help="Compare updated with control vehicles on fleet telemetry before each wave, and roll "
            "back on a significant deterioration (docs/health-gate.md)."
        ),
    ] = False,
    gate_interval_hours: Annotated[float, typer.Option(help="Hours between the health gate's looks.")] = 6.0,
    requires_charger: Annotated[
        str | None,
        typer.Option(
            help="A charger capability the release needs, e.g. iso15118-20-bidirectional: vehicles "
            "whose depot chargers are not all certified for it are held."
        ),
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft campaign: the release, the vehicles it targets, waves and gates.

    The API (`POST /api/v1/campaigns`) takes the same policy, and a few more knobs.
    """
    dep = open_deployment(home)
    if not any(b.meta.name == release for b in dep.images.bundles()):
        raise InputError(f"release {release} is not in the image repository (evota release bundle …)")
    try:
        wave_list = [float(w) for w in waves.split(",")]
    except ValueError:
        raise InputError(f"--waves {waves!r}: expected percentages like 1,5,20,50,100") from None
    from evota.server.services.campaigns import Selector, create_campaign  # loads on use

    selector = Selector(
        *(tuple(v or ()) for v in (depot, region, climate_zone, model, hardware_id, tag, vin))
    )
    policy = RolloutPolicy(
        dwell=dt.timedelta(hours=dwell_hours),
        first_dwell=dt.timedelta(hours=first_dwell_hours) if first_dwell_hours is not None else None,
        max_concurrent=max_concurrent,
        install_timeout=dt.timedelta(hours=install_timeout_hours),
        error_threshold_pct=error_threshold,
        success_threshold_pct=success_threshold,
        preconditions=Preconditions(
            min_soc_pct=min_soc, plugged_in=plugged_in, charging=charging, consent_required=consent
        ),
        windows=tuple(_window(w) for w in window or ()),
        charger_capability=requires_charger,
    )
    summary = _with_db(
        home,
        lambda db: create_campaign(
            db,
            name=name,
            release=release,
            selector=selector,
            waves=wave_list,
            policy=policy,
            created_by=by,
            now=dep.clock.now(),
            gate=_gate(gate_interval_hours) if health_gate else None,
        ),
    )
    if not as_json:
        done("created", f"campaign {name} (draft); someone other than {by} must approve it")
    _show(summary, as_json)


def _move(event: CampaignEvent, verb: str) -> Callable[..., None]:
    @reports_errors
    def command(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        by: ByOpt,
        home: HomeOpt = DEFAULT_HOME,
        as_json: JsonOpt = False,
    ) -> None:
        now = open_deployment(home).clock.now()
        from evota.server.services.campaigns import move_campaign

        summary = _with_db(home, lambda db: move_campaign(db, name, event, actor=by, now=now))
        if not as_json:
            done(verb, f"campaign {name} by {by}")
        _show(summary, as_json)

    return command


for _event, _verb, _help in (
    (CampaignEvent.APPROVE, "approved", "Approve a draft campaign (four eyes: not its creator)."),
    (CampaignEvent.START, "started", "Start an approved campaign at its first wave."),
    (CampaignEvent.PAUSE, "paused", "Pause a running campaign; nothing new is offered."),
    (CampaignEvent.RESUME, "resumed", "Resume a paused or halted campaign."),
    (CampaignEvent.ABORT, "aborted", "Abort a campaign that has not finished."),
):
    campaign_app.command(_event.value, help=_help)(_move(_event, _verb))


@campaign_app.command("show")
@reports_errors
def show(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Show a campaign: state, waves and how many vehicles are where."""
    from evota.server.services.campaigns import campaign_summary

    _show(_with_db(home, lambda db: campaign_summary(db, name)), as_json)


@campaign_app.command("report")
@reports_errors
def report(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """The deployment report: per wave, where the vehicles are, why they wait, who went quiet."""
    now = open_deployment(home).clock.now()
    from evota.server.services.reports import campaign_report

    with database(home) as db:
        result = campaign_report(db, name, now=now)
    if as_json:
        print_json(result.to_json())
        return
    _print_report(result)


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cells(t: Tally) -> list[str]:
    counts = (t.vehicles, t.updated, t.offered, t.pending, t.waiting, t.held, t.failed, t.rolled_back)
    return [str(n) for n in (*counts, t.not_seen.over_24h, t.not_seen.over_7d, t.not_seen.never)]


def _print_report(report: CampaignReport) -> None:
    wave = f"wave {report.current_wave + 1} of {len(report.waves)}"
    if report.wave_started_at is not None:
        wave += f" since {_when(report.wave_started_at)}"
    dwell = f"dwell {report.dwell.total_seconds() / 3600:g} h"
    if (ends := report.dwell_ends_at) is not None:
        dwell += f", ends {_when(ends)}"
    console.print(f"{report.name}: release {report.release}, {report.state}, {wave} ({dwell})")
    console.print(f"  as of {_when(report.generated_at)}")

    statuses = ("vehicles", "updated", "installing", "pending", "waiting", "held", "failed", "rolled back")
    quiet = ("not seen > 24 h", "> 7 days", "never seen")
    table = Table(
        "wave",
        *(Column(h, justify="right") for h in (*statuses, *quiet)),
        title="Vehicles by wave (not seen: those pending or installing)",
    )
    for w in report.waves:
        table.add_row(f"{w.index + 1} ({w.percent:g} %)", *_cells(w.tally))
    table.add_section()
    table.add_row("all", *_cells(report.overall))
    console.print(table)

    if report.overall.reasons:
        why = Table(
            "status",
            "reason",
            Column("vehicles", justify="right"),
            "for example",
            title="Reasons (all waves)",
        )
        for status, kinds in report.overall.reasons.items():
            for i, r in enumerate(kinds):
                why.add_row(status.replace("_", " ") if i == 0 else "", r.kind, str(r.vehicles), r.example)
        console.print(why)

    versions = Table(
        "ECU type",
        "version",
        Column("ECUs", justify="right"),
        Column("share", justify="right"),
        title="Installed versions (the campaign's vehicles)",
    )
    for ecu_type, counts in report.versions.items():
        total = sum(counts.values())
        for i, (version, n) in enumerate(counts.items()):
            versions.add_row(ecu_type if i == 0 else "", version, str(n), f"{100 * n / total:.0f} %")
    console.print(versions)
    if report.health is not None:
        h = report.health
        outcomes = ", ".join(f"{k} × {v}" for k, v in h.outcomes.items()) or "none yet"
        console.print(f"health gate: {h.looks} looks ({outcomes})")
        if h.latest is not None and h.latest_at is not None:
            console.print(
                f"  latest, {_when(h.latest_at)}, wave {(h.latest_wave or 0) + 1}: {h.latest.get('outcome')}"
            )
            for reason in list(h.latest.get("reasons", []))[:8]:  # type: ignore[call-overload]
                console.print(f"  - {reason}")
    if report.rollback is not None:
        back = report.rollback
        console.print(
            f"fleet rollback: {back.ordered} vehicles ordered back, {back.signed} signed by the director, "
            f"{back.confirmed} confirmed on their previous images"
        )
