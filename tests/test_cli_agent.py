"""The vehicle side through the real CLI: provision from a home, set signals, consent, run one
cycle against a served home, status, and the errors an operator on the line can make."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evota.cli import app
from evota.clock import SystemClock
from evota.deployment import open_home
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from evota.server.store.db import open_database

runner = CliRunner()
VIN = "WVWZZZ1JZ3W386752"
CSV = (
    "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
    f"{VIN},eVan-3,berlin-north,eu-central,cold,Europe/Berlin,pilot,"
    "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0\n"
)


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    return result.stderr


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ok("init", "--home", str(home))
    (tmp_path / "fleet.csv").write_text(CSV)
    ok("fleet", "import", str(tmp_path / "fleet.csv"), "--home", str(home), "--by", "ops")
    for ecu, hw, version in (("bms", "bms-gen2", "2.4.0"), ("vcms", "vcms-gen3", "3.1.0")):
        f = tmp_path / f"{ecu}-{version}.bin"
        f.write_bytes(bytes(range(256)) * 40 + ecu.encode())
        ok(
            "release",
            "add",
            str(f),
            "--ecu-type",
            ecu,
            "--hardware-id",
            hw,
            "--version",
            version,
            "--home",
            str(home),
        )
    ok(
        "release",
        "bundle",
        "energy-2026-12",
        "--image",
        "vcms/3.1.0/vcms-3.1.0.bin",
        "--image",
        "bms/2.4.0/bms-2.4.0.bin",
        "--min-soc",
        "50",
        "--charging",
        "any",
        "--consent",
        "--home",
        str(home),
    )
    return home


def test_provision_consent_run_and_status_through_the_cli(tmp_path: Path) -> None:
    home = _home(tmp_path)
    van = str(tmp_path / "van-1")
    dep = open_home(home, SystemClock())
    db = open_database(dep.home.database_url())
    try:
        with serve_in_thread(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as url:
            out = ok(
                "vehicle",
                "provision",
                VIN,
                "--state-dir",
                van,
                "--ecu",
                "bms:BMS-1:bms-gen2",
                "--ecu",
                "vcms:VCMS-1:vcms-gen3",
                "--server",
                url,
                "--home",
                str(home),
            )
            assert f"provisioned {VIN}" in out
            ok("director", "assign", VIN, "--release", "energy-2026-12", "--home", str(home))
            ok("agent", "signals", "--state-dir", van, "--soc", "55", "--gear", "P", "--plugged-in")
            assert "waiting: consent: not given" in ok("agent", "run", "--state-dir", van, "--once")
            ok("agent", "consent", "--state-dir", van, "--release", "energy-2026-12", "--by", "driver:anna")
            assert ok("agent", "run", "--state-dir", van, "--once").startswith("installed")
    finally:
        db.dispose()
    status = json.loads(ok("agent", "status", "--state-dir", van, "--json"))
    assert status["ecus"]["BMS-1"]["version"] == "2.4.0"
    assert status["ecus"]["VCMS-1"]["partitions"]["firmware"]["slots"]["a"]["version"] == "3.0.0"
    text = ok("agent", "status", "--state-dir", van)
    assert "BMS-1 (bms): runs 2.4.0 from b, committed 2.4.0; last: committed energy-2026-12" in text


def test_line_mistakes_get_one_clear_line(tmp_path: Path) -> None:
    home = _home(tmp_path)
    van = str(tmp_path / "van-1")
    assert "is not in the fleet registry" in fails(
        "vehicle", "provision", "WVWZZZ1JZ3W386753", "--state-dir", van, "--home", str(home)
    )
    assert "differ from the registry's secondaries" in fails(
        "vehicle", "provision", VIN, "--state-dir", van, "--ecu", "bms:BMS-9:bms-gen2", "--home", str(home)
    )
    assert "expected TYPE:SERIAL:HARDWARE_ID" in fails(
        "vehicle", "provision", VIN, "--state-dir", van, "--ecu", "bms-BMS-1", "--home", str(home)
    )
    ok("vehicle", "provision", VIN, "--state-dir", van, "--home", str(home))
    assert "is not empty" in fails("vehicle", "provision", VIN, "--state-dir", van, "--home", str(home))
    assert "--gear is P, R, N or D" in fails(
        "agent", "signals", "--state-dir", van, "--soc", "50", "--gear", "X"
    )
    assert "is not a vehicle state folder" in fails("agent", "status", "--state-dir", str(tmp_path / "nope"))
    assert "no committed install" in fails("agent", "rollback", "--state-dir", van, "--reason", "test")


def test_a_vehicle_registered_by_hand_with_the_director_takes_its_keys_at_provisioning(
    tmp_path: Path,
) -> None:
    """The README's walk-through registers the VIN with the director (no keys) before the
    fleet import; provisioning then gives the director the keys, and keeps the assignment."""
    home = _home(tmp_path)
    ok(
        "director",
        "register",
        VIN,
        "--primary",
        "GW-1",
        "--ecu",
        "GW-1:gateway:gw-tcu4",
        "--ecu",
        "BMS-1:bms:bms-gen2",
        "--ecu",
        "VCMS-1:vcms:vcms-gen3",
        "--home",
        str(home),
    )
    ok("director", "assign", VIN, "--release", "energy-2026-12", "--home", str(home))
    ok("vehicle", "provision", VIN, "--state-dir", str(tmp_path / "van-1"), "--home", str(home))
    dep = open_home(home, SystemClock())
    assert all(e.public_key for e in dep.director.vehicle(VIN).ecus)
    assert set(dep.director.assignments(VIN).values()) == {
        "vcms/3.1.0/vcms-3.1.0.bin",
        "bms/2.4.0/bms-2.4.0.bin",
    }
    # A second vehicle folder for the same VIN has other keys: refused, and nothing is left behind.
    assert "under other keys" in fails(
        "vehicle", "provision", VIN, "--state-dir", str(tmp_path / "van-1b"), "--home", str(home)
    )
    assert not (tmp_path / "van-1b").exists()
