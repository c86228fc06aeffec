"""Vehicle-side preconditions: each one that fails makes the agent wait, say why, and install
nothing; the reason reaches the server as a `waiting` step."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from evota.domain.gates import Gear, Rule
from evota.server.store.models import DeviceStepRow
from tests.agent.conftest import NEXT, Fleet, relaxed


def _server_waits(fleet: Fleet) -> list[str]:
    with fleet.db.sessions() as s:
        return [
            r.reason or "" for r in s.scalars(select(DeviceStepRow).where(DeviceStepRow.step == "waiting"))
        ]


CASES = [
    # (id, policy overrides, signal overrides, the reason the agent must give)
    ("soc-below-minimum", {}, {"soc_pct": 42.0}, "soc 42 % < 60 %"),
    ("not-in-park", {}, {"gear": Gear.DRIVE}, "gear D, not P"),
    ("charging-forbidden", {"charging": Rule.FORBIDDEN}, {"charging": True}, "charging"),
    ("charging-required", {"charging": Rule.REQUIRED}, {"charging": False}, "not charging"),
    ("plug-required", {"plugged_in": Rule.REQUIRED}, {"plugged_in": False}, "not plugged in"),
    ("plug-forbidden", {"plugged_in": Rule.FORBIDDEN}, {"plugged_in": True}, "plugged in"),
    ("too-cold", {}, {"ambient_c": -25.0}, "ambient -25 °C < -20 °C"),
    ("too-hot", {"ambient_max_c": 40.0}, {"ambient_c": 43.0}, "ambient 43 °C > 40 °C"),
    ("no-consent", {"consent_required": True}, {}, "consent: not given"),
    ("hv-on", {"hv_off_required": True}, {"hv_on": True}, "HV system on"),
    ("hv-unknown", {"hv_off_required": True}, {}, "HV state: not reported"),
]


@pytest.mark.parametrize(("policy", "signals", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_failing_precondition_makes_the_agent_wait_with_its_reason(
    fleet: Fleet, policy: dict[str, object], signals: dict[str, object], reason: str
) -> None:
    before = fleet.running()
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed(**policy)))
    fleet.signals(**signals)
    result = fleet.agent().cycle()
    assert result.outcome == "waiting"
    assert result.detail == f"waiting: {reason}"
    assert fleet.running() == before
    assert list((fleet.state / "images").glob("*.part")) == []  # not even downloaded
    assert _server_waits(fleet) == [reason]


def test_unknown_or_stale_signals_are_a_reason_to_wait(fleet: Fleet) -> None:
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed()))
    (fleet.state / "signals.json").unlink()
    assert fleet.agent().cycle().detail == "waiting: state: never reported"
    fleet.signals()
    fleet.clock.advance(dt.timedelta(hours=2))
    assert fleet.agent().cycle().detail == "waiting: state: 2 h 00 min old > 1 h 00 min"


def test_consent_with_who_and_when_lets_the_install_go_and_reaches_the_server(fleet: Fleet) -> None:
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed(consent_required=True)))
    assert fleet.agent().cycle().outcome == "waiting"
    fleet.state.add_consent("energy-2026-12", "driver:anna", fleet.clock.now())
    assert fleet.agent().cycle().outcome == "installed"
    assert fleet.state.consents() == [
        {"release": "energy-2026-12", "by": "driver:anna", "at": fleet.clock.now().isoformat()}
    ]


def test_the_preconditions_are_checked_again_right_before_the_switch(fleet: Fleet) -> None:
    """Staged while parked; the driver shifts to D before the switch: no ECU is switched."""
    before = fleet.running()
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed()))

    def shift_on_last_stage(label: str) -> None:
        if label == "TMS-1:staged-firmware:after":
            fleet.signals(gear=Gear.DRIVE)

    result = fleet.agent(faults=shift_on_last_stage).cycle()
    assert (result.outcome, result.detail) == ("waiting", "waiting: gear D, not P")
    assert fleet.running() == before
    fleet.signals()
    assert fleet.agent().cycle().outcome == "installed"
    assert fleet.running() != before
