"""The rollout controller's shell: outbox, re-judged holds, leadership, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.campaign import CampaignEvent
from evota.domain.planner import RolloutPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.server.services import controller
from evota.server.services.campaigns import Selector, create_campaign, move_campaign
from evota.server.services.devices import provision
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database, open_database
from evota.server.store.models import CampaignVehicleRow, EcuRow, VehicleRow

from ..conftest import Published, make_vehicle

HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
VINS = [f"WVWZZZ1JZ3W{i:06d}" for i in range(4)]


def ready_to_install(db: Database, clock: SimClock) -> None:
    """Every vehicle reports now: parked, plugged in, not charging, 80 % charged."""
    with db.sessions.begin() as s:
        s.execute(
            update(VehicleRow).values(
                soc=80.0,
                charging=False,
                plugged_in=True,
                gear="P",
                ambient_c=10.0,
                energy_reported_at=clock.now(),
            )
        )


def setup_fleet(db: Database, dep: Deployment, clock: SimClock, *, vcms: str = "3.0.0") -> None:
    ecus = f"gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:{vcms}"
    rows = "".join(f"{vin},eVan-3,berlin,eu,cold,Europe/Berlin,,{ecus}\n" for vin in VINS)
    import_vehicles(db, parse_vehicle_csv(HEADER + rows), clock.now())
    for vin in VINS:
        provision(db, dep.director, make_vehicle(vin).identity, actor="alice", now=clock.now())
    ready_to_install(db, clock)


def run_campaign(
    db: Database, clock: SimClock, release: str, waves: tuple[float, ...] = (100,), **policy: object
) -> None:
    create_campaign(
        db,
        name="c1",
        release=release,
        selector=Selector(),
        waves=waves,
        policy=RolloutPolicy(**policy),  # type: ignore[arg-type]
        created_by="alice",
        now=clock.now(),
    )
    move_campaign(db, "c1", CampaignEvent.APPROVE, actor="bob", now=clock.now())
    move_campaign(db, "c1", CampaignEvent.START, actor="alice", now=clock.now())


def rows(db: Database) -> dict[str, tuple[str, bool, list[str] | None]]:
    with db.sessions() as s:
        result = s.execute(
            select(
                VehicleRow.vin,
                CampaignVehicleRow.status,
                CampaignVehicleRow.assigned,
                CampaignVehicleRow.reasons,
            )
            .join(CampaignVehicleRow, CampaignVehicleRow.vehicle_id == VehicleRow.id)
            .order_by(VehicleRow.vin)
        )
        return {vin: (status, assigned, reasons) for vin, status, assigned, reasons in result}


def test_an_offer_decided_before_a_crash_is_signed_by_the_next_tick(
    dep: Deployment, db: Database, clock: SimClock, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_fleet(db, dep, clock)
    run_campaign(db, clock, "energy-2026-11", max_concurrent=2)
    # The process dies after the deciding transaction commits, before the director signs.
    monkeypatch.setattr(controller, "dispatch", lambda *a, **k: 0)
    controller.tick(db, dep.director, clock.now())
    monkeypatch.undo()
    offered = [vin for vin, (status, _, _) in rows(db).items() if status == "offered"]
    assert len(offered) == 2
    assert all(not rows(db)[vin][1] for vin in offered)
    assert all(dep.director.assignments(vin) == {} for vin in offered)

    report = controller.tick(db, dep.director, clock.now())
    assert report.assigned == 2 and report.offered == 0  # the throttle is full: nothing new
    for vin in offered:
        assert rows(db)[vin][1] is True
        assert set(dep.director.assignments(vin)) == {"BMS-1", "VCMS-1"}
        assert dep.director.chain(vin).targets().signed.version == 2  # signed once


def test_an_offer_of_a_paused_campaign_is_not_signed(
    dep: Deployment, db: Database, clock: SimClock, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_fleet(db, dep, clock)
    run_campaign(db, clock, "energy-2026-11", max_concurrent=2)
    monkeypatch.setattr(controller, "dispatch", lambda *a, **k: 0)
    controller.tick(db, dep.director, clock.now())
    monkeypatch.undo()
    move_campaign(db, "c1", CampaignEvent.PAUSE, actor="alice", now=clock.now())
    assert controller.tick(db, dep.director, clock.now()).assigned == 0
    assert all(dep.director.assignments(vin) == {} for vin in VINS)


def test_a_held_vehicle_is_offered_once_its_other_ecus_allow_it(
    dep: Deployment, db: Database, clock: SimClock, published: Published, firmware: Callable[[str, int], Path]
) -> None:
    # A BMS-only release that needs vcms>=3.1, for vehicles whose VCMS runs 3.0.0.
    dep.images.add_bundle("bms-only", [published.bms.path])
    setup_fleet(db, dep, clock)
    # Two waves: with one, a tick that holds every vehicle would also complete the campaign
    # (nothing left to offer), and a completed campaign judges nothing again.
    run_campaign(db, clock, "bms-only", waves=(50, 100))
    controller.tick(db, dep.director, clock.now())
    first = [vin for vin, (status, _, _) in rows(db).items() if status == "held"]
    assert len(first) == 2  # wave 1; wave 2 is not judged yet
    assert rows(db)[first[0]][2] == ["incompatible (vcms 3.0.0 < 3.1)"]
    with db.sessions.begin() as s:  # one vehicle's VCMS was updated meanwhile
        vid = s.scalars(select(VehicleRow.id).where(VehicleRow.vin == first[0])).one()
        s.execute(
            update(EcuRow)
            .where(EcuRow.vehicle_id == vid, EcuRow.serial == "VCMS-1")
            .values(installed_version="3.1.0")
        )
    controller.tick(db, dep.director, clock.now())
    assert rows(db)[first[0]][:2] == ("offered", True)
    assert rows(db)[first[1]][0] == "held"


def test_an_unpublished_release_halts_the_campaign(dep: Deployment, db: Database, clock: SimClock) -> None:
    setup_fleet(db, dep, clock)
    run_campaign(db, clock, "never-published")
    report = controller.tick(db, dep.director, clock.now())
    assert report.halted == ["c1"]
    assert controller.tick(db, dep.director, clock.now()).campaigns == 0


def test_a_vehicle_not_provisioned_waits(
    dep: Deployment, db: Database, clock: SimClock, published: Published
) -> None:
    ecus = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0"
    rows_csv = f"{VINS[0]},eVan-3,berlin,eu,cold,Europe/Berlin,,{ecus}\n"
    import_vehicles(db, parse_vehicle_csv(HEADER + rows_csv), clock.now())
    ready_to_install(db, clock)
    run_campaign(db, clock, "energy-2026-11")
    controller.tick(db, dep.director, clock.now())
    assert rows(db)[VINS[0]] == ("pending", False, ["provisioning: no keys registered with the director"])


def test_an_sqlite_home_has_one_process_which_always_leads(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'evota.db'}")
    try:
        first, second = controller.Leadership(db), controller.Leadership(db)
        assert first.is_leader() and second.is_leader()  # no lock to take: one server per home
    finally:
        db.dispose()


def test_only_one_process_leads_on_postgresql(postgresql_url: str) -> None:
    one, other = open_database(postgresql_url), open_database(postgresql_url)
    try:
        first, second = controller.Leadership(one), controller.Leadership(other)
        assert first.is_leader() and not second.is_leader()
        assert first.is_leader()  # still leading on the next check
        first.release()
        assert second.is_leader() and not first.is_leader()
        second.release()
    finally:
        one.dispose()
        other.dispose()


def test_a_dead_leader_connection_hands_over(postgresql_url: str) -> None:
    one, other = open_database(postgresql_url), open_database(postgresql_url)
    try:
        first, second = controller.Leadership(one), controller.Leadership(other)
        assert first.is_leader()
        assert first._connection is not None
        first._connection.invalidate()  # the leader's session dies (server restart, network)
        assert not first.is_leader()  # it notices, and gives up
        assert second.is_leader()
        second.release()
    finally:
        one.dispose()
        other.dispose()


def test_a_pause_during_planning_wins_and_nothing_is_applied(
    dep: Deployment, db: Database, clock: SimClock, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick plans without the campaign's lock, so a pause is never kept waiting; what it
    planned meanwhile is dropped instead of applied to a paused campaign."""
    setup_fleet(db, dep, clock)
    run_campaign(db, clock, "energy-2026-11", max_concurrent=2)
    real_plan = controller.plan

    def plan_then_pause(view: controller.CampaignView, now: object) -> list[controller.Decision]:
        decisions = real_plan(view, now)  # type: ignore[arg-type]
        move_campaign(db, "c1", CampaignEvent.PAUSE, actor="alice", now=clock.now())
        return decisions

    monkeypatch.setattr(controller, "plan", plan_then_pause)
    report = controller.tick(db, dep.director, clock.now())
    assert report.offered == 0 and report.assigned == 0
    assert {status for status, _, _ in rows(db).values()} == {"pending"}
