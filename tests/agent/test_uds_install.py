"""The agent's installer driving a UDS ECU over the virtual CAN bus: a 256 KiB bundle commits,
a failing self-test rolls back, a corrupted block fails the install before anything switches
and the next install goes through, and a state folder reaches the ECU through its options."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from evota.agent.errors import ProvisioningError
from evota.agent.images import ImageStore
from evota.agent.installer import Installer
from evota.agent.journal import InstallItem, InstallRecord, Journal
from evota.agent.provision import provision_vehicle
from evota.agent.secondary import BootHealth, Partition, SlotName
from evota.agent.state import EcuConfig, StateDir, _open_uds
from evota.agent.uds import UdsEcu
from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.lifecycle import Phase
from evota.domain.registry import parse_vehicle_csv
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import open_database
from tests.agent.conftest import FLEET_CSV, NEXT, VIN, Fleet, relaxed
from tests.agent.uds_bench import SECRET, Bench

FW = Partition.FIRMWARE
START = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def _install(bench: Bench, ecu: UdsEcu, tmp: Path, name: str) -> InstallRecord:
    store = ImageStore(tmp / "images")
    ref, path = bench.image(256 << 10, name=f"bms-{name}.bin", version=name)
    store.put(ref, path.read_bytes())
    part = ecu.status().partitions[FW]
    record = InstallRecord(
        id=name,
        kind="install",
        release=f"r-{name}",
        items=(InstallItem("BMS-1", FW, ref, part.active, part.inactive, part.running),),
        phase=Phase.STAGING,
        started_at=START,
        updated_at=START,
    )
    installer = Installer(
        secondaries={"BMS-1": ecu},
        journal=Journal(tmp / "journal"),
        images=store,
        clock=SimClock(START),
        report=lambda *a: None,
        fetch=lambda item: None,
        gate=lambda r: [],
    )
    return installer.start(record)


def test_a_256_kib_install_over_uds_commits(bench: Bench, tmp_path: Path) -> None:
    bench.sim()
    ecu = bench.tester()
    ended = _install(bench, ecu, tmp_path, "2.4.0")
    assert ended.phase is Phase.COMMITTED, ended.reason
    fw = ecu.status().partitions[FW]
    assert (fw.active, fw.slots[SlotName.B].health, fw.running.version) == (
        SlotName.B,
        BootHealth.GOOD,
        "2.4.0",
    )  # type: ignore[union-attr]


def test_a_failing_self_test_over_uds_rolls_back(bench: Bench, tmp_path: Path) -> None:
    bench.faults.self_test_failure = "cell voltages plausible"
    bench.sim()
    ecu = bench.tester()
    ended = _install(bench, ecu, tmp_path, "2.4.0")
    assert ended.phase is Phase.ROLLED_BACK and "cell voltages plausible" in ended.reason
    fw = ecu.status().partitions[FW]
    assert (fw.active, fw.slots[SlotName.A].health, fw.slots[SlotName.B].health) == (
        SlotName.A,
        BootHealth.GOOD,
        BootHealth.BAD,
    )


def test_a_corrupted_block_fails_before_any_switch_and_the_next_install_succeeds(
    bench: Bench, tmp_path: Path
) -> None:
    bench.faults.corrupt_block = 3
    bench.sim()
    ecu = bench.tester()
    failed = _install(bench, ecu, tmp_path, "2.4.0")
    assert failed.phase is Phase.FAILED and "generalProgrammingFailure" in failed.reason
    fw = ecu.status().partitions[FW]
    assert (fw.active, fw.slots[SlotName.A].health, fw.slots[SlotName.B].health) == (
        SlotName.A,
        BootHealth.GOOD,
        BootHealth.EMPTY,
    )
    assert _install(bench, ecu, tmp_path, "2.4.1").phase is Phase.COMMITTED


def test_a_state_folder_reaches_its_uds_ecu_through_the_options_and_checks_its_serial(bench: Bench) -> None:
    bench.sim()
    options = {
        "interface": "virtual",
        "channel": bench.link.channel,
        "txid": hex(bench.link.txid),
        "rxid": hex(bench.link.rxid),
        "security_secret_hex": SECRET.hex(),
    }
    ecu = _open_uds(EcuConfig("BMS-1", "bms", "bms-gen2", "uds", options))
    try:
        assert ecu.status().partitions[FW].active is SlotName.A
    finally:
        ecu.close()
    with pytest.raises(ProvisioningError, match="is BMS-1, not BMS-2"):
        _open_uds(EcuConfig("BMS-2", "bms", "bms-gen2", "uds", options))
    with pytest.raises(ProvisioningError, match="UDS options are incomplete"):
        _open_uds(EcuConfig("BMS-1", "bms", "bms-gen2", "uds", {"interface": "virtual"}))


def test_the_agent_installs_a_bundle_on_a_uds_bms_and_two_simulated_ecus_against_the_server(
    bench: Bench, dep: Deployment, clock: SimClock, tmp_path: Path
) -> None:
    bench.sim()
    db = open_database(dep.home.database_url())
    import_vehicles(db, parse_vehicle_csv(FLEET_CSV), clock.now(), actor="test")
    options = {
        "interface": "virtual",
        "channel": bench.link.channel,
        "txid": hex(bench.link.txid),
        "rxid": hex(bench.link.rxid),
        "security_secret_hex": SECRET.hex(),
        "public_key": bench.public_key,
    }
    try:
        with serve_in_thread(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as url:
            state = StateDir(tmp_path / "vehicle")
            config = provision_vehicle(
                dep,
                db,
                vin=VIN,
                state_dir=state.path,
                server_url=url,
                uds={"BMS-1": options},
                now=clock.now(),
            )
            assert [e.kind for e in config.ecus] == ["uds", "simulated", "simulated"]
            fleet = Fleet(dep, db, url, clock, state, tmp_path)
            fleet.signals()
            bundle = fleet.publish("energy-2026-12", NEXT, policy=relaxed())
            fleet.assign(bundle)
            with fleet.agent() as agent:
                result = agent.cycle()
                assert result.outcome == "installed", result
                bms = agent.secondaries["BMS-1"].status().partitions[FW]
                assert (bms.active, bms.running.version) == (SlotName.B, "2.4.0")  # type: ignore[union-attr]
                assert fleet.ecu("VCMS-1").status().partitions[FW].running.version == "3.1.0"  # type: ignore[union-attr]
                assert agent.cycle().outcome == "idle"  # the UDS ECU's signed report shows it installed
    finally:
        db.dispose()
