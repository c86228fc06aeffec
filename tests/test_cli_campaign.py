"""`evota campaign` end to end through the CLI: create, four eyes, start, show, report."""

from __future__ import annotations

import json
import sqlite3
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


def started_campaign(tmp_path: Path) -> Path:
    """A home with 10 vehicles and campaign bms-2-4 running (waves of 5 and 5)."""
    home = tmp_path / "home"
    assert cli("init", "--home", home)[0] == 0
    fw = tmp_path / "bms-2.4.0.bin"
    fw.write_bytes(b"\x01" * 2048)
    add = ("release", "add", fw, "--ecu-type", "bms", "--hardware-id", "bms-gen2", "--version", "2.4.0")
    assert cli(*add, "--home", home)[0] == 0
    assert cli("release", "bundle", "energy", "--image", "bms/2.4.0/bms-2.4.0.bin", "--home", home)[0] == 0
    csv = tmp_path / "fleet.csv"
    csv.write_text(
        "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
        + "".join(f"WVWZZZ1JZ3W3867{i:02d},eVan,d{i % 2},eu,cold,Europe/Berlin,,{ECUS}\n" for i in range(10))
    )
    assert cli("fleet", "import", csv, "--home", home)[0] == 0
    create = ("campaign", "create", "bms-2-4", "--release", "energy", "--waves", "50,100")
    assert cli(*create, "--by", "alice", "--home", home)[0] == 0
    assert cli("campaign", "approve", "bms-2-4", "--by", "bob", "--home", home)[0] == 0
    assert cli("campaign", "start", "bms-2-4", "--by", "alice", "--home", home)[0] == 0
    # What the controller and the vehicles would have written: in wave 1, one van waits for
    # charge, one updated, one installs but has been silent since 2020.
    with sqlite3.connect(home / "evota.db") as db:
        first = [
            v for (v,) in db.execute("SELECT vehicle_id FROM campaign_vehicles WHERE wave = 0 ORDER BY 1")
        ]
        db.execute(
            "UPDATE campaign_vehicles SET reasons = ? WHERE vehicle_id = ?", ('["soc 42 % < 60 %"]', first[0])
        )
        db.execute("UPDATE campaign_vehicles SET status = 'updated' WHERE vehicle_id = ?", (first[1],))
        db.execute("UPDATE campaign_vehicles SET status = 'offered' WHERE vehicle_id = ?", (first[2],))
        db.execute(
            "UPDATE vehicles SET last_contact_at = '2020-01-01 00:00:00.000000' WHERE id = ?", (first[2],)
        )
    return home


def table_row(out: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no row {first_cell!r} in:\n{out}")


def test_campaign_report_as_text(tmp_path: Path) -> None:
    home = started_campaign(tmp_path)
    code, out, err = cli("campaign", "report", "bms-2-4", "--home", home)
    assert code == 0, err
    assert "bms-2-4: release energy, running, wave 1 of 2 since " in out and "(dwell 24 h, ends " in out
    # vehicles, updated, installing, pending, waiting, held, failed, rolled back, > 24 h, > 7 days, never
    assert table_row(out, "1 (50 %)") == ["5", "1", "1", "2", "1", "0", "0", "0", "1", "1", "3"]
    assert table_row(out, "2 (100 %)") == ["5", "0", "0", "5", "0", "0", "0", "0", "0", "0", "5"]
    assert table_row(out, "all") == ["10", "1", "1", "7", "1", "0", "0", "0", "1", "1", "8"]
    assert table_row(out, "waiting") == ["soc", "1", "soc 42 % < 60 %"]
    assert table_row(out, "bms") == ["2.3.0", "10", "100 %"]
    assert table_row(out, "gateway") == ["unknown", "10", "100 %"]


def test_campaign_report_as_json(tmp_path: Path) -> None:
    home = started_campaign(tmp_path)
    code, out, err = cli("campaign", "report", "bms-2-4", "--home", home, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["name"], data["state"], data["current_wave"]) == ("bms-2-4", "running", 0)
    first = data["waves"][0]
    assert first["index"] == 0 and first["percent"] == 50.0
    assert (first["updated"], first["offered"], first["pending"], first["waiting"]) == (1, 1, 2, 1)
    assert first["not_seen"] == {"over_24h": 1, "over_7d": 1, "never": 3}
    assert data["overall"]["reasons"] == {
        "waiting": [{"kind": "soc", "vehicles": 1, "example": "soc 42 % < 60 %"}]
    }
    assert data["versions"] == {"bms": {"2.3.0": 10}, "gateway": {"unknown": 10}}

    code, _, err = cli("campaign", "report", "ghost", "--home", home)
    assert code == 1 and "no campaign named ghost" in err


def test_campaign_create_takes_the_whole_rollout_policy(tmp_path: Path) -> None:
    home = started_campaign(tmp_path)
    create = ("campaign", "create", "night", "--release", "energy", "--by", "alice", "--home", home)
    code, out, err = cli(
        *create,
        "--window",
        "22:00-05:00/0,1,2,3,4",
        "--window",
        "10:00-12:00",
        "--install-timeout-hours",
        "3",
        "--success-threshold",
        "90",
        "--plugged-in",
        "required",
        "--charging",
        "any",
        "--json",
    )
    assert code == 0, err
    policy = json.loads(out)["policy"]
    assert policy["windows"] == [
        {"start": "22:00", "end": "05:00", "weekdays": [0, 1, 2, 3, 4]},
        {"start": "10:00", "end": "12:00", "weekdays": [0, 1, 2, 3, 4, 5, 6]},
    ]
    assert policy["install_timeout_s"] == 3 * 3600 and policy["success_threshold_pct"] == 90
    assert (
        policy["preconditions"]["plugged_in"] == "required" and policy["preconditions"]["charging"] == "any"
    )
    for bad in ("22:00", "25:00-05:00", "22:00-05:00/7", "22:00-22:00"):
        code, _, err = cli(*create[:2], f"bad-{len(bad)}", *create[3:], "--window", bad)
        assert code == 1 and "window" in err, (bad, err)
    code, _, err = cli(*create[:2], "bad-plug", *create[3:], "--plugged-in", "sometimes")
    assert code == 2 and "sometimes" in err


def test_an_anchored_head_catches_a_truncated_audit_log(tmp_path: Path) -> None:
    home = started_campaign(tmp_path)  # import, create, approve, start: four entries
    code, out, _ = cli("audit", "verify", "--home", home)
    anchor = out.split("--anchor): ")[1].split()[0]
    assert code == 0 and anchor.startswith("4:")
    assert cli("audit", "verify", "--home", home, "--anchor", anchor)[0] == 0
    with sqlite3.connect(home / "evota.db") as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 3")  # the chain that is left still verifies
    assert cli("audit", "verify", "--home", home)[0] == 0
    code, _, err = cli("audit", "verify", "--home", home, "--anchor", anchor)
    assert code == 1 and "anchored entry 4 is gone" in err
    code, _, err = cli("audit", "verify", "--home", home, "--anchor", "2:" + "0" * 64)
    assert code == 1 and "anchored entry 2 has hash" in err
    code, _, err = cli("audit", "verify", "--home", home, "--anchor", "two")
    assert code == 1 and "expected SEQ:HASH" in err
