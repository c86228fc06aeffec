"""The stored audit log on SQLite and PostgreSQL: actions are recorded with their transaction,
and `verify` finds rows changed, removed or reordered behind evota's back."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from evota.domain.campaign import CampaignEvent, FourEyesError
from evota.domain.planner import RolloutPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.server.services.audit import list_entries, verify
from evota.server.services.campaigns import Selector, create_campaign, move_campaign
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database

NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
CSV = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n" + "".join(
    f"WVWZZZ1JZ3W3867{i:02d},eVan,d1,eu,cold,UTC,,gateway:GW-1:gw-a|bms:BMS-1:bms-gen2:2.3.0\n"
    for i in range(5)
)


@pytest.fixture
def history(db: Database) -> Database:
    import_vehicles(db, parse_vehicle_csv(CSV), NOW, actor="ops")
    create_campaign(
        db,
        name="c1",
        release="r1",
        selector=Selector(),
        waves=[100],
        policy=RolloutPolicy(),
        created_by="alice",
        now=NOW,
    )
    move_campaign(db, "c1", CampaignEvent.APPROVE, actor="bob", now=NOW)
    move_campaign(db, "c1", CampaignEvent.START, actor="alice", now=NOW + dt.timedelta(minutes=5))
    return db


def test_every_action_is_recorded_in_order(history: Database) -> None:
    entries = list_entries(history)
    assert [(e.seq, e.actor, e.action) for e in entries] == [
        (1, "ops", "fleet.import"),
        (2, "alice", "campaign.create"),
        (3, "bob", "campaign.approve"),
        (4, "alice", "campaign.start"),
    ]
    assert entries[3].details == {"from": "approved", "to": "running"}
    assert verify(history) == []


def test_a_refused_action_leaves_no_entry(history: Database) -> None:
    create_campaign(
        history,
        name="c2",
        release="r1",
        selector=Selector(),
        waves=[100],
        policy=RolloutPolicy(),
        created_by="carol",
        now=NOW,
    )
    with pytest.raises(FourEyesError):
        move_campaign(history, "c2", CampaignEvent.APPROVE, actor="carol", now=NOW)
    assert [e.action for e in list_entries(history)][-1] == "campaign.create"


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_log SET seq = seq + 100 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; "
        "UPDATE audit_log SET seq = 3 WHERE seq = 102",
    ],
    ids=["changed", "removed", "reordered"],
)
def test_tampering_is_found(history: Database, tamper: str) -> None:
    with history.engine.begin() as connection:
        for statement in tamper.split("; "):
            connection.execute(text(statement))
    assert verify(history) != []
