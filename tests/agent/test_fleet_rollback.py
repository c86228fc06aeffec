"""A fleet rollback: the director assigns the images a vehicle ran before its last install.

After a health gate's roll-back verdict the server asks every exposed vehicle to go back;
the agent accepts the lower release counters only for exactly the previous images, inside
the release's signed rollback window, and switches its slots back without a download.
"""

from __future__ import annotations

import datetime as dt

from evota.agent.secondary import Partition, SlotName
from evota.domain.policy import InstallPolicy
from tests.agent.conftest import NEXT, SECONDARIES, VIN, Fleet, relaxed

LATER = {"bms": "2.5.0", "vcms": "3.2.0", "tms": "1.2.0"}


def _two_releases(fleet: Fleet, policy: InstallPolicy | None = None) -> tuple[dict[str, str], dict[str, str]]:
    first = fleet.publish("energy-2026-12", NEXT, policy=relaxed())
    fleet.assign(first)
    assert fleet.agent().cycle().outcome == "installed"
    good = fleet.running()
    second = fleet.publish("energy-2027-01", LATER, policy=policy or relaxed())
    fleet.assign(second)
    assert fleet.agent().cycle().outcome == "installed"
    return good, fleet.running()


def test_the_director_sends_the_vehicle_back_to_the_images_it_ran_before(fleet: Fleet) -> None:
    good, _ = _two_releases(fleet)
    downloads = len(list((fleet.state / "images").rglob("*")))
    fleet.dep.director.assign(VIN, good)
    fleet.clock.advance(dt.timedelta(minutes=5))
    fleet.signals(ambient_c=-25.0)  # a safety rollback does not wait for the ambient band
    result = fleet.agent().cycle()
    assert result.outcome == "installed", result  # the switch back commits like an install
    assert fleet.running() == good
    for serial in SECONDARIES:
        part = fleet.ecu(serial).status().partitions[Partition.FIRMWARE]
        assert part.active is SlotName.B  # back in the slot the first release was written to
    assert len(list((fleet.state / "images").rglob("*"))) == downloads  # nothing fetched
    assert fleet.agent().cycle().outcome == "idle"
    steps = fleet.db.engine.connect().exec_driver_sql("SELECT step, reason FROM device_steps").all()
    assert ("rolled_back", "fleet rollback: the director assigns the images run before") in steps


def test_no_older_image_than_the_previous_one_and_not_after_the_window(fleet: Fleet) -> None:
    good, _ = _two_releases(fleet, InstallPolicy(relaxed().preconditions, dt.timedelta(hours=2)))
    fleet.clock.advance(dt.timedelta(hours=3))
    fleet.signals()
    fleet.dep.director.assign(VIN, good)
    result = fleet.agent().cycle()
    assert result.outcome == "refused" and "image_rollback" in result.detail, result


def test_a_safety_rollback_still_needs_the_vehicle_parked(fleet: Fleet) -> None:
    from evota.domain.gates import Gear

    good, bad = _two_releases(fleet)
    fleet.dep.director.assign(VIN, good)
    fleet.signals(gear=Gear.DRIVE, soc_pct=25.0)
    result = fleet.agent().cycle()
    assert result.outcome == "waiting" and result.detail == "waiting: gear D, not P", (
        result
    )  # SoC 25 % passes
    assert fleet.running() == bad
    fleet.signals(soc_pct=25.0)  # parked, 25 %: below the release's 60 %, enough for a switch
    assert fleet.agent().cycle().outcome == "installed"
    assert fleet.running() == good
