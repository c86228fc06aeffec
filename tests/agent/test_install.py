"""The install flow end to end against a real server: verify, download, stage, switch all,
self-test, commit; and every way it ends otherwise."""

from __future__ import annotations

import json

from evota.agent.secondary import BootHealth, Partition, SlotName
from evota.agent.simulated import SELF_TEST_FAIL_MARKER
from tests.agent.conftest import NEXT, SECONDARIES, VIN, Fleet, relaxed


def test_a_three_ecu_release_installs_on_every_ecu_and_is_committed(fleet: Fleet) -> None:
    bundle = fleet.publish("energy-2026-12", NEXT, policy=relaxed())
    fleet.assign(bundle)
    result = fleet.agent().cycle()
    assert result.outcome == "installed", result
    assert set(fleet.running().values()) == set(bundle.meta.images)
    for serial in SECONDARIES:
        part = fleet.ecu(serial).status().partitions[Partition.FIRMWARE]
        assert part.active is SlotName.B
        assert part.slots[SlotName.B].health is BootHealth.GOOD
        assert part.slots[SlotName.A].health is BootHealth.GOOD  # the factory image stays as fallback
    again = fleet.agent().cycle()
    assert again.outcome == "idle"


def test_a_failing_self_test_on_one_ecu_rolls_every_ecu_back(fleet: Fleet) -> None:
    before = fleet.running()
    bad = SELF_TEST_FAIL_MARKER + b"contactor feedback missing\n"
    bundle = fleet.publish(
        "energy-2026-12",
        NEXT,
        policy=relaxed(),
        markers={"tms": bad},
    )
    fleet.assign(bundle)
    result = fleet.agent().cycle()
    assert result.outcome == "rolled_back"
    assert "TMS-1 self-test failed: contactor feedback missing" in result.detail
    assert fleet.running() == before
    for serial in SECONDARIES:
        part = fleet.ecu(serial).status().partitions[Partition.FIRMWARE]
        assert part.slots[part.active].health is BootHealth.GOOD
        assert part.slots[SlotName.B].health is BootHealth.BAD
    # Not retried: the same install stays refused.
    assert fleet.agent().cycle().outcome == "refused"


def test_status_json_names_slots_versions_and_the_last_result(fleet: Fleet) -> None:
    from typer.testing import CliRunner

    from evota.cli import app

    bundle = fleet.publish("energy-2026-12", NEXT, policy=relaxed())
    fleet.assign(bundle)
    fleet.agent().cycle()
    out = CliRunner().invoke(app, ["agent", "status", "--state-dir", str(fleet.state.path), "--json"])
    assert out.exit_code == 0, out.output
    status = json.loads(out.output)
    assert status["vin"] == VIN
    bms = status["ecus"]["BMS-1"]
    fw = bms["partitions"]["firmware"]
    assert (fw["active_slot"], fw["active_version"], fw["committed_version"]) == ("b", "2.4.0", "2.4.0")
    assert fw["slots"]["a"]["version"] == "2.3.0"
    assert bms["last_result"]["phase"] == "committed"
    assert bms["pending_step"] is None
