"""The deployment report on SQLite and PostgreSQL: counts, reasons, silence, versions.

The controller is simulated: the campaign is created and started through the services, then
statuses, reasons and last contacts are written straight into the tables, as the controller
and the device API would.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from evota.domain.campaign import CampaignEvent
from evota.domain.planner import RolloutPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.errors import InputError
from evota.server.services.campaigns import Selector, create_campaign, move_campaign
from evota.server.services.fleet import import_vehicles
from evota.server.services.reports import ReasonCount, campaign_report, reason_kind
from evota.server.store.db import Database
from evota.server.store.models import CampaignRow, CampaignVehicleRow, VehicleRow

NOW = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
STARTED = NOW - dt.timedelta(days=1)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
BMS = ["2.3.0", "2.3.0", "2.4.0", "2.10.0"]  # 2.10.0 is the newest: sorting must not be by text
WINDOW = "window: outside the maintenance window"
INCOMPATIBLE = "incompatible (vcms 3.0.0 < 3.1)"

# Per wave, what the controller and the agents left behind, one vehicle per row in VIN order:
# (status, reasons, last contact as an age before NOW, None = never). Vehicles past the rows
# stay as created: pending, no reasons, last seen an hour ago.
UNCHANGED: Any = object()
SCRIPT: dict[int, list[tuple[str, Any, dt.timedelta | None]]] = {
    0: [
        ("updated", UNCHANGED, HOUR),
        ("updated", UNCHANGED, 30 * DAY),  # finished: its silence holds nothing up
        ("offered", None, DAY),  # exactly 24 h: not yet "more than 24 h"
        ("offered", None, DAY + dt.timedelta(seconds=1)),
        ("failed", ["timeout: no result 6 h after the offer"], HOUR),
    ],
    1: [
        ("pending", [WINDOW, "window: Sunday is not a window day"], 7 * DAY),  # > 24 h, not > 7 days
        ("pending", [WINDOW, "soc 42 % < 60 %"], 7 * DAY + dt.timedelta(seconds=1)),
        ("pending", ["soc 30 % < 60 %"], None),
        ("pending", ["soc 42 % < 60 %"], HOUR),
        ("pending", ["consent: not given", "state: never reported"], None),
        ("pending", ["not plugged in", "gear D, not P"], HOUR),
        ("pending", ["throttle: 20 installs in flight"], HOUR),
        ("held", [INCOMPATIBLE], HOUR),
        ("held", [INCOMPATIBLE], None),  # held: not counted as quiet
        ("rolled_back", ["self-test: cell voltage out of range"], HOUR),
        ("pending", [], HOUR),  # judged with nothing against it: pending, not waiting
        ("offered", None, 2 * DAY),  # reasons cleared on offer (stored as JSON null)
    ],
}


@pytest.fixture
def fleet(db: Database) -> Database:
    """40 vehicles in scope (waves of 5, 15 and 20), 3 outside it with other versions."""
    rows = [
        f"WVWZZZ1JZ3W3{i:05d},eVan-3,berlin-north,eu,cold,Europe/Berlin,,"
        f"gateway:GW-1:gw-tcu4:{'' if i % 5 == 0 else '1.0.0'}|bms:BMS-1:bms-gen2:{BMS[i % 4]}\n"
        for i in range(40)
    ]
    rows += [
        f"WVWZZZ1JZ4W4{i:05d},eVan-3,oslo-vest,eu,cold,Europe/Oslo,,"
        "gateway:GW-1:gw-tcu4:7.0.0|bms:BMS-1:bms-gen2:9.9.9\n"
        for i in range(3)
    ]
    import_vehicles(db, parse_vehicle_csv(HEADER + "".join(rows)), NOW - 30 * DAY)
    create_campaign(
        db,
        name="bms-2-4",
        release="energy-2026-11",
        selector=Selector(depots=("berlin-north",)),
        waves=[12.5, 50, 100],
        policy=RolloutPolicy(dwell=dt.timedelta(hours=36)),
        created_by="alice",
        now=STARTED,
    )
    move_campaign(db, "bms-2-4", CampaignEvent.APPROVE, actor="bob", now=STARTED)
    move_campaign(db, "bms-2-4", CampaignEvent.START, actor="alice", now=STARTED)
    return db


def simulate(db: Database, script: dict[int, list[tuple[str, Any, dt.timedelta | None]]]) -> None:
    with db.sessions.begin() as session:
        session.execute(update(VehicleRow).values(last_contact_at=NOW - HOUR))
        campaign_id = session.scalars(select(CampaignRow.id).where(CampaignRow.name == "bms-2-4")).one()
        for wave, rows in script.items():
            vehicles = session.scalars(
                select(CampaignVehicleRow.vehicle_id)
                .join(VehicleRow, VehicleRow.id == CampaignVehicleRow.vehicle_id)
                .where(CampaignVehicleRow.campaign_id == campaign_id, CampaignVehicleRow.wave == wave)
                .order_by(VehicleRow.vin)
            ).all()
            assert len(vehicles) >= len(rows)
            for vehicle_id, (status, reasons, silent) in zip(vehicles, rows, strict=False):
                values: dict[str, Any] = {"status": status, "updated_at": NOW}
                if reasons is not UNCHANGED:
                    values["reasons"] = reasons
                session.execute(
                    update(CampaignVehicleRow)
                    .where(
                        CampaignVehicleRow.campaign_id == campaign_id,
                        CampaignVehicleRow.vehicle_id == vehicle_id,
                    )
                    .values(**values)
                )
                session.execute(
                    update(VehicleRow)
                    .where(VehicleRow.id == vehicle_id)
                    .values(last_contact_at=None if silent is None else NOW - silent)
                )
        session.execute(
            update(CampaignRow)
            .where(CampaignRow.id == campaign_id)
            .values(current_wave=1, wave_started_at=NOW - 3 * HOUR)
        )


def counts(tally: Any) -> dict[str, int]:
    names = ("vehicles", "updated", "offered", "pending", "waiting", "held", "failed", "rolled_back")
    return {n: getattr(tally, n) for n in names}


def test_counts_per_wave_and_overall(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    report = campaign_report(fleet, "bms-2-4", now=NOW)
    got = [counts(w.tally) for w in report.waves]
    assert got == [
        dict(vehicles=5, updated=2, offered=2, pending=0, waiting=0, held=0, failed=1, rolled_back=0),
        dict(vehicles=15, updated=0, offered=1, pending=4, waiting=7, held=2, failed=0, rolled_back=1),
        dict(vehicles=20, updated=0, offered=0, pending=20, waiting=0, held=0, failed=0, rolled_back=0),
    ]
    assert counts(report.overall) == dict(
        vehicles=40, updated=2, offered=3, pending=24, waiting=7, held=2, failed=1, rolled_back=1
    )
    assert [(w.index, w.percent) for w in report.waves] == [(0, 12.5), (1, 50.0), (2, 100.0)]


def test_not_seen_counts_unfinished_vehicles_at_the_edges(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    report = campaign_report(fleet, "bms-2-4", now=NOW)
    quiet = [
        (w.tally.not_seen.over_24h, w.tally.not_seen.over_7d, w.tally.not_seen.never) for w in report.waves
    ]
    # wave 1: only the offer silent for 24 h + 1 s (exactly 24 h is not "more than"; the
    # updated van silent for 30 days is done). wave 2: 7 days exactly, 7 days + 1 s, 2 days
    # (over 24 h); 7 days + 1 s (over 7 days); two never seen (the held one does not count).
    assert quiet == [(1, 0, 0), (3, 1, 2), (0, 0, 0)]
    overall = report.overall.not_seen
    assert (overall.over_24h, overall.over_7d, overall.never) == (4, 1, 2)


def test_one_second_later_a_vehicle_crosses_each_edge(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    later = campaign_report(fleet, "bms-2-4", now=NOW + dt.timedelta(seconds=1)).overall.not_seen
    # the 24 h offer joins over_24h; the 7-day waiter joins over_7d; the 20 vehicles seen an
    # hour ago stay below both edges.
    assert (later.over_24h, later.over_7d, later.never) == (5, 2, 2)


def test_reasons_are_grouped_by_kind_with_an_example(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    report = campaign_report(fleet, "bms-2-4", now=NOW)
    assert report.waves[1].tally.reasons == {
        "waiting": (
            ReasonCount("soc", 3, "soc 42 % < 60 %"),  # the commoner of two soc texts
            ReasonCount("window", 2, WINDOW),  # two window reasons of one van count it once
            ReasonCount("consent", 1, "consent: not given"),
            ReasonCount("gear", 1, "gear D, not P"),
            ReasonCount("plugged in", 1, "not plugged in"),
            ReasonCount("state", 1, "state: never reported"),
            ReasonCount("throttle", 1, "throttle: 20 installs in flight"),
        ),
        "held": (ReasonCount("incompatible", 2, INCOMPATIBLE),),
        "rolled_back": (ReasonCount("self-test", 1, "self-test: cell voltage out of range"),),
    }
    assert report.waves[0].tally.reasons == {
        "failed": (ReasonCount("timeout", 1, "timeout: no result 6 h after the offer"),)
    }
    assert report.waves[2].tally.reasons == {}
    assert list(report.overall.reasons) == ["waiting", "held", "failed", "rolled_back"]


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("window: outside the maintenance window", "window"),
        ("soc: 42 % < 60 %", "soc"),
        ("soc 42 % < 60 %", "soc"),
        ("incompatible (vcms 3.0.0 < 3.1)", "incompatible"),
        ("consent: not given", "consent"),
        ("state: 3 h 05 min old > 1 h 00 min", "state"),
        ("gear D, not P", "gear"),
        ("ambient -12 °C < -10 °C", "ambient"),
        ("charging", "charging"),
        ("not charging", "charging"),
        ("not plugged in", "plugged in"),
        ("throttle: 50 installs in flight", "throttle"),
        ("Director: keys re-registered", "director"),
        ("park/gear not P (D)", "park/gear not p"),
        ("42", "42"),
    ],
)
def test_reason_kinds_are_derived_from_the_text(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_version_distribution_covers_only_the_campaigns_vehicles(fleet: Database) -> None:
    report = campaign_report(fleet, "bms-2-4", now=NOW)
    assert {t: list(v.items()) for t, v in report.versions.items()} == {
        "bms": [("2.10.0", 10), ("2.4.0", 10), ("2.3.0", 20)],
        "gateway": [("1.0.0", 32), ("unknown", 8)],
    }


@pytest.mark.parametrize(
    ("events", "current_wave", "dwell_ends_at"),
    [
        ((), 0, None),  # draft: no wave has started
        ((CampaignEvent.APPROVE, CampaignEvent.START), 0, STARTED + dt.timedelta(hours=36)),
        (
            (CampaignEvent.APPROVE, CampaignEvent.START, CampaignEvent.PAUSE),
            1,
            STARTED + dt.timedelta(hours=36),
        ),
        ((CampaignEvent.APPROVE, CampaignEvent.START), 2, None),  # the last wave: nothing to open
        ((CampaignEvent.APPROVE, CampaignEvent.START, CampaignEvent.ABORT), 0, None),
    ],
)
def test_wave_and_dwell(
    db: Database, events: tuple[CampaignEvent, ...], current_wave: int, dwell_ends_at: dt.datetime | None
) -> None:
    import_vehicles(
        db, parse_vehicle_csv(HEADER + "WVWZZZ1JZ3W386700,eVan,d,eu,cold,UTC,,gateway:GW-1:gw-tcu4\n"), NOW
    )
    create_campaign(
        db,
        name="c",
        release="r",
        selector=Selector(),
        waves=[50, 75, 100],
        policy=RolloutPolicy(dwell=dt.timedelta(hours=36)),
        created_by="alice",
        now=STARTED,
    )
    for event in events:
        move_campaign(db, "c", event, actor="bob" if event is CampaignEvent.APPROVE else "alice", now=STARTED)
    with db.sessions.begin() as session:
        session.execute(update(CampaignRow).values(current_wave=current_wave))
    report = campaign_report(db, "c", now=NOW)
    assert report.current_wave == current_wave
    assert report.wave_started_at == (STARTED if events else None)
    assert report.dwell_ends_at == dwell_ends_at
    assert report.to_json()["dwell_ends_at"] == (dwell_ends_at.isoformat() if dwell_ends_at else None)


def test_json_is_plain_data_with_zero_based_waves(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    data = json.loads(json.dumps(campaign_report(fleet, "bms-2-4", now=NOW).to_json()))
    assert (data["state"], data["current_wave"], data["dwell_s"]) == ("running", 1, 36 * 3600)
    assert data["wave_started_at"] == (NOW - 3 * HOUR).isoformat()
    assert data["dwell_ends_at"] == (NOW - 3 * HOUR + dt.timedelta(hours=36)).isoformat()
    assert [w["index"] for w in data["waves"]] == [0, 1, 2]
    assert data["waves"][1]["waiting"] == 7
    assert data["waves"][1]["not_seen"] == {"over_24h": 3, "over_7d": 1, "never": 2}
    assert data["overall"]["reasons"]["held"] == [
        {"kind": "incompatible", "vehicles": 2, "example": INCOMPATIBLE}
    ]
    assert data["versions"]["gateway"] == {"1.0.0": 32, "unknown": 8}


def test_other_campaigns_over_the_same_vehicles_do_not_leak_in(fleet: Database) -> None:
    simulate(fleet, SCRIPT)
    before = campaign_report(fleet, "bms-2-4", now=NOW)
    create_campaign(
        fleet,
        name="gw-7",
        release="gateway-7",
        selector=Selector(),  # all 43 vehicles, the 40 of bms-2-4 among them
        waves=[100],
        policy=RolloutPolicy(),
        created_by="alice",
        now=NOW,
    )
    with fleet.sessions.begin() as session:
        other = select(CampaignRow.id).where(CampaignRow.name == "gw-7").scalar_subquery()
        session.execute(
            update(CampaignVehicleRow)
            .where(CampaignVehicleRow.campaign_id == other)
            .values(status="failed", reasons=["timeout: no result 6 h after the offer"])
        )
    assert campaign_report(fleet, "bms-2-4", now=NOW) == before
    other_report = campaign_report(fleet, "gw-7", now=NOW)
    assert (other_report.overall.vehicles, other_report.overall.failed) == (43, 43)
    assert other_report.versions["bms"]["9.9.9"] == 3


def test_an_unknown_campaign_is_an_input_error(fleet: Database) -> None:
    with pytest.raises(InputError, match="no campaign named ghost"):
        campaign_report(fleet, "ghost", now=NOW)
