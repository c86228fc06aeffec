"""Energy-domain install semantics: parameter-only releases, the user's settings carried
across parameter versions (CS-12), BMS state reset after an algorithm change (CS-15), and
the user's rollback inside a release's rollback window (RT-18)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from evota.agent.errors import AgentError, PreconditionError
from evota.agent.secondary import Partition, SlotName
from evota.domain.gates import Gear
from evota.server.store.models import DeviceStepRow
from tests.agent.conftest import NEXT, Fleet, params_image, relaxed

SCHEMA_2 = {
    "max_charge_pct": {"type": "number", "min": 55, "max": 95, "default": 85},
    "departure_time": {"type": "time", "default": "07:00"},
    "preconditioning": {"type": "bool", "default": True},
}


def test_a_parameter_release_keeps_the_drivers_settings_across_a_schema_change(fleet: Fleet) -> None:
    bms = fleet.ecu("BMS-1")
    bms.write_user_settings({"charge_limit_pct": 70, "departure_time": "06:15"})
    firmware_before = bms.status().partitions[Partition.FIRMWARE]
    params = params_image(2, SCHEMA_2, renamed={"charge_limit_pct": "max_charge_pct"})
    fleet.assign(fleet.publish("calib-2", {}, params={"bms": params}, policy=relaxed()))
    assert fleet.agent().cycle().outcome == "installed"
    status = bms.status()
    assert status.partitions[Partition.PARAMS].active is SlotName.B
    assert status.partitions[Partition.FIRMWARE] == firmware_before  # firmware untouched
    assert bms.user_settings() == {"max_charge_pct": 70, "departure_time": "06:15", "preconditioning": True}


def test_a_setting_outside_the_new_bounds_is_clamped_not_reset(fleet: Fleet) -> None:
    bms = fleet.ecu("BMS-1")
    bms.write_user_settings({"charge_limit_pct": 100, "departure_time": "not a time"})
    params = params_image(2, SCHEMA_2, renamed={"charge_limit_pct": "max_charge_pct"})
    fleet.assign(fleet.publish("calib-2", {}, params={"bms": params}, policy=relaxed()))
    assert fleet.agent().cycle().outcome == "installed"
    assert bms.user_settings() == {"max_charge_pct": 95, "departure_time": "07:00", "preconditioning": True}


def test_an_automatic_rollback_restores_the_settings_exactly(fleet: Fleet) -> None:
    bms = fleet.ecu("BMS-1")
    bms.write_user_settings({"charge_limit_pct": 70, "departure_time": "06:15"})
    fleet.ecu("VCMS-1").set_fault("self_test", "HV interlock open")
    params = params_image(2, SCHEMA_2, renamed={"charge_limit_pct": "max_charge_pct"})
    fleet.assign(fleet.publish("calib-2", {"vcms": "3.1.0"}, params={"bms": params}, policy=relaxed()))
    result = fleet.agent().cycle()
    assert result.outcome == "rolled_back" and "HV interlock open" in result.detail
    assert bms.user_settings() == {"charge_limit_pct": 70, "departure_time": "06:15"}


def test_an_algorithm_change_resets_the_bms_state_machine_before_its_self_test(fleet: Fleet) -> None:
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed(), state_reset=("bms",)))
    assert fleet.agent().cycle().outcome == "installed"
    assert fleet.ecu("BMS-1").state_resets == 1
    assert fleet.ecu("VCMS-1").state_resets == 0


def _server_steps(fleet: Fleet) -> list[tuple[str, str | None]]:
    with fleet.db.sessions() as s:
        rows = s.scalars(select(DeviceStepRow).order_by(DeviceStepRow.id))
        return [(r.step, r.reason) for r in rows]


def test_the_user_rolls_back_inside_the_window_and_the_release_is_not_reinstalled(fleet: Fleet) -> None:
    factory = fleet.running()
    bms = fleet.ecu("BMS-1")
    params = params_image(2, SCHEMA_2, renamed={"charge_limit_pct": "max_charge_pct"})
    fleet.assign(fleet.publish("energy-2026-12", {"vcms": "3.1.0"}, params={"bms": params}, policy=relaxed()))
    assert fleet.agent().cycle().outcome == "installed"
    bms.write_user_settings({**bms.user_settings(), "max_charge_pct": 75})  # changed since the update
    fleet.clock.advance(dt.timedelta(hours=20))
    fleet.signals()
    record = fleet.agent().user_rollback("range dropped in the cold")
    assert record.phase.value == "committed"
    assert fleet.running() == factory
    assert bms.status().partitions[Partition.PARAMS].active is SlotName.A
    # Back under the old schema, the driver's newest value follows the rename backwards.
    assert bms.user_settings()["charge_limit_pct"] == 75
    assert ("rolled_back", "user rollback: range dropped in the cold") in _server_steps(fleet)
    again = fleet.agent().cycle()
    assert again.outcome == "refused" and "rolled back by the user" in again.detail
    assert fleet.running() == factory


def test_a_user_rollback_is_refused_outside_its_window_or_while_driving(fleet: Fleet) -> None:
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed()))
    with pytest.raises(AgentError, match="no committed install"):
        fleet.agent().user_rollback("why not")
    assert fleet.agent().cycle().outcome == "installed"
    fleet.signals(gear=Gear.DRIVE)
    with pytest.raises(PreconditionError, match="gear D, not P"):
        fleet.agent().user_rollback("now")
    fleet.clock.advance(dt.timedelta(hours=73))
    fleet.signals()
    with pytest.raises(AgentError, match="rollback window is over"):
        fleet.agent().user_rollback("too late")
