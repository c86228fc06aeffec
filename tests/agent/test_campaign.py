"""The agent under a real campaign: the controller offers, the agent installs or rolls back,
and its reports move the campaign (updated, rolled back, waiting with the reason)."""

from __future__ import annotations

from sqlalchemy import select

from evota.agent.simulated import SELF_TEST_FAIL_MARKER
from evota.domain.campaign import CampaignEvent
from evota.domain.gates import Gear
from evota.domain.planner import RolloutPolicy
from evota.server.services import controller
from evota.server.services.campaigns import Selector, create_campaign, move_campaign
from evota.server.store.models import CampaignVehicleRow
from tests.agent.conftest import NEXT, Fleet, relaxed


def _campaign(fleet: Fleet, release: str) -> None:
    now = fleet.clock.now()
    create_campaign(
        fleet.db,
        name="c1",
        release=release,
        selector=Selector(),
        waves=(100,),
        policy=RolloutPolicy(),
        created_by="alice",
        now=now,
    )
    move_campaign(fleet.db, "c1", CampaignEvent.APPROVE, actor="bob", now=now)
    move_campaign(fleet.db, "c1", CampaignEvent.START, actor="alice", now=now)


def _row(fleet: Fleet) -> tuple[str, list[str] | None]:
    with fleet.db.sessions() as s:
        row = s.execute(select(CampaignVehicleRow.status, CampaignVehicleRow.reasons)).one()
        return row.status, row.reasons


def test_a_campaign_offer_is_installed_and_the_campaign_counts_the_vehicle_updated(fleet: Fleet) -> None:
    fleet.publish("energy-2026-12", NEXT, policy=relaxed())
    _campaign(fleet, "energy-2026-12")
    agent = fleet.agent()
    agent.cycle()  # the check-in gives the server the vehicle's energy state
    controller.tick(fleet.db, fleet.dep.director, fleet.clock.now())
    assert _row(fleet)[0] == "offered"
    assert agent.cycle().outcome == "installed"
    assert _row(fleet)[0] == "updated"


def test_a_self_test_failure_reaches_the_campaign_as_rolled_back_with_its_reason(fleet: Fleet) -> None:
    bad = SELF_TEST_FAIL_MARKER + b"cell voltage plausibility\n"
    fleet.publish("energy-2026-12", NEXT, policy=relaxed(), markers={"bms": bad})
    _campaign(fleet, "energy-2026-12")
    agent = fleet.agent()
    agent.cycle()
    controller.tick(fleet.db, fleet.dep.director, fleet.clock.now())
    assert agent.cycle().outcome == "rolled_back"
    status, reasons = _row(fleet)
    assert status == "rolled_back"
    assert reasons and "BMS-1 self-test failed: cell voltage plausibility" in reasons[0]


def test_a_vehicle_side_wait_shows_in_the_campaign_with_the_vehicles_reason(fleet: Fleet) -> None:
    fleet.publish("energy-2026-12", NEXT, policy=relaxed(min_soc_pct=70.0))
    _campaign(fleet, "energy-2026-12")
    agent = fleet.agent()
    agent.cycle()
    controller.tick(fleet.db, fleet.dep.director, fleet.clock.now())  # server gate: 80 % >= 60 %
    fleet.signals(soc_pct=65.0, gear=Gear.PARK)  # the vehicle's own release policy wants 70 %
    assert agent.cycle().detail == "waiting: soc 65 % < 70 %"
    assert _row(fleet) == ("offered", ["soc 65 % < 70 %"])
