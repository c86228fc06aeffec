"""Campaign storage and lifecycle on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from evota.domain.campaign import CampaignEvent, FourEyesError, InvalidTransitionError
from evota.domain.planner import RolloutPolicy, policy_from_dict
from evota.domain.registry import parse_vehicle_csv
from evota.errors import InputError
from evota.server.services.campaigns import Selector, campaign_summary, create_campaign, move_campaign
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database

NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0"
DEPOTS = [
    ("berlin-north", "cold"),
    ("madrid-sur", "hot-dry"),
    ("lyon-est", "temperate"),
    ("oslo-vest", "cold"),
]


@pytest.fixture
def fleet(db: Database) -> Database:
    rows = "".join(
        f"WVWZZZ1JZ{d}{i:07d},eVan-3,{depot},eu,{zone},Europe/Berlin,{'pilot' if i % 5 == 0 else ''},{ECUS}\n"
        for d, (depot, zone) in enumerate(DEPOTS)
        for i in range(50)
    )
    import_vehicles(db, parse_vehicle_csv(HEADER + rows), NOW)
    return db


def create(db: Database, name: str = "bms-2-4", **selector: tuple[str, ...]) -> None:
    create_campaign(
        db,
        name=name,
        release="energy-2026-11",
        selector=Selector(**selector),
        waves=[1, 5, 20, 50, 100],
        policy=RolloutPolicy(max_concurrent=20),
        created_by="alice",
        now=NOW,
    )


def test_a_campaign_is_created_with_stratified_waves(fleet: Database) -> None:
    create(fleet)
    summary = campaign_summary(fleet, "bms-2-4")
    assert summary.state == "draft"
    assert summary.wave_sizes == (2, 8, 30, 60, 100)
    assert summary.statuses == {"pending": 200}
    assert policy_from_dict(summary.policy).max_concurrent == 20


def test_selectors_narrow_the_scope(fleet: Database) -> None:
    create(fleet, "cold-pilots", climate_zones=("cold",), tags=("pilot",))
    assert sum(campaign_summary(fleet, "cold-pilots").wave_sizes) == 20  # 2 cold depots x 10 pilots
    create(fleet, "by-hardware", hardware_ids=("bms-gen2",), depots=("lyon-est",))
    assert sum(campaign_summary(fleet, "by-hardware").wave_sizes) == 50
    with pytest.raises(InputError, match="finds no vehicle"):
        create(fleet, "nobody", depots=("tromso",))


def test_names_are_unique(fleet: Database) -> None:
    create(fleet)
    with pytest.raises(InputError, match="already exists"):
        create(fleet)


def test_four_eyes_and_the_lifecycle(fleet: Database) -> None:
    create(fleet)
    with pytest.raises(FourEyesError):
        move_campaign(fleet, "bms-2-4", CampaignEvent.APPROVE, actor="alice", now=NOW)
    with pytest.raises(InvalidTransitionError):
        move_campaign(fleet, "bms-2-4", CampaignEvent.START, actor="bob", now=NOW)
    assert move_campaign(fleet, "bms-2-4", CampaignEvent.APPROVE, actor="bob", now=NOW).approved_by == "bob"
    started = move_campaign(fleet, "bms-2-4", CampaignEvent.START, actor="alice", now=NOW)
    assert (started.state, started.current_wave) == ("running", 0)
    assert move_campaign(fleet, "bms-2-4", CampaignEvent.PAUSE, actor="alice", now=NOW).state == "paused"
    assert move_campaign(fleet, "bms-2-4", CampaignEvent.ABORT, actor="alice", now=NOW).state == "aborted"
    with pytest.raises(InvalidTransitionError):
        move_campaign(fleet, "bms-2-4", CampaignEvent.RESUME, actor="alice", now=NOW)


def test_an_unknown_campaign_is_a_clear_error(fleet: Database) -> None:
    with pytest.raises(InputError, match="no campaign named ghost"):
        campaign_summary(fleet, "ghost")
