"""`evota campaign` end to end through the CLI: create, four eyes, start, show."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evota.cli import app

runner = CliRunner()
ECUS = "gateway:GW-1:gw-a|bms:BMS-1:bms-gen2:2.3.0"


def cli(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_campaign_flow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("init", "--home", home)[0] == 0
    fw = tmp_path / "bms-2.4.0.bin"
    fw.write_bytes(b"\x01" * 2048)
    assert (
        cli(
            "release",
            "add",
            fw,
            "--ecu-type",
            "bms",
            "--hardware-id",
            "bms-gen2",
            "--version",
            "2.4.0",
            "--home",
            home,
        )[0]
        == 0
    )
    assert cli("release", "bundle", "energy", "--image", "bms/2.4.0/bms-2.4.0.bin", "--home", home)[0] == 0
    csv = tmp_path / "fleet.csv"
    csv.write_text(
        "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
        + "".join(f"WVWZZZ1JZ3W3867{i:02d},eVan,d{i % 3},eu,cold,Europe/Berlin,,{ECUS}\n" for i in range(30))
    )
    assert cli("fleet", "import", csv, "--home", home)[0] == 0

    code, _, err = cli("campaign", "create", "bms-2-4", "--release", "nope", "--by", "alice", "--home", home)
    assert code == 1 and "release nope is not in the image repository" in err
    code, out, _ = cli(
        "campaign",
        "create",
        "bms-2-4",
        "--release",
        "energy",
        "--by",
        "alice",
        "--waves",
        "10,50,100",
        "--home",
        home,
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["wave_sizes"] == [3, 12, 15]

    code, _, err = cli("campaign", "approve", "bms-2-4", "--by", "alice", "--home", home)
    assert code == 1 and "someone else must approve" in err
    assert cli("campaign", "approve", "bms-2-4", "--by", "bob", "--home", home)[0] == 0
    code, out, _ = cli("campaign", "start", "bms-2-4", "--by", "alice", "--home", home, "--json")
    assert code == 0 and json.loads(out)["state"] == "running"
    code, out, _ = cli("campaign", "show", "bms-2-4", "--home", home)
    assert "running (wave 1 of 3)" in out and "approved by bob" in out and "30 pending" in out


def test_audit_verify_through_the_cli(tmp_path: Path) -> None:
    import sqlite3

    home = tmp_path / "home"
    cli("init", "--home", home)
    csv = tmp_path / "fleet.csv"
    csv.write_text(
        "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
        f"WVWZZZ1JZ3W386700,eVan,d1,eu,cold,UTC,,{ECUS}\n"
    )
    assert cli("fleet", "import", csv, "--by", "ops", "--home", home)[0] == 0
    code, out, _ = cli("audit", "verify", "--home", home)
    assert code == 0 and "1 audit entries, chain verified" in out
    with sqlite3.connect(home / "evota.db") as db:
        db.execute("UPDATE audit_log SET actor = 'mallory'")
    code, _, err = cli("audit", "verify", "--home", home)
    assert code == 1 and "entry 1: content changed" in err
