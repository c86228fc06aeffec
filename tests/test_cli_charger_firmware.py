"""`evota charger firmware …`, `evota charger campaign …` and `evota sim charger` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evota.cli import app

runner = CliRunner()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    return result.output


def booted(home: str, cpid: str, version: str = "1.0.0") -> None:
    """What a charger's BootNotification records (the CSMS's part is tested over websockets)."""
    from evota.clock import SystemClock
    from evota.deployment import open_home
    from evota.server.services import csms
    from evota.server.store.db import open_database

    db = open_database(open_home(home, SystemClock()).home.database_url())
    try:
        boot = csms.Boot(
            vendor="Acme", model="AC22", firmware_version=version, serial_number=None, reason="PowerUp"
        )
        csms.record_boot(db, cpid, boot, now=SystemClock().now())
        csms.record_connection(db, cpid, connected=False, protocol="2.0.1", now=SystemClock().now())
    finally:
        db.dispose()


def test_signing_images_and_a_campaign_from_draft_to_abort(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    h = ("--home", home)
    ok("init", *h)
    image = tmp_path / "ac22-2.0.0.bin"
    image.write_bytes(b"firmware" * 100)
    assert "init-signing" in fails(
        "charger",
        "firmware",
        "add",
        str(image),
        "--version",
        "2.0.0",
        "--model",
        "AC22",
        "--vendor",
        "Acme",
        *h,
    )
    assert "created" in ok("charger", "firmware", "init-signing", *h)
    assert "exists" in fails("charger", "firmware", "init-signing", *h)
    assert ok("charger", "firmware", "root-cert", *h).startswith("-----BEGIN CERTIFICATE-----")
    for version in ("1.0.0", "2.0.0"):
        path = tmp_path / f"ac22-{version}.bin"
        path.write_bytes(version.encode() * 100)
        ok(
            "charger",
            "firmware",
            "add",
            str(path),
            "--version",
            version,
            "--model",
            "AC22",
            "--vendor",
            "Acme",
            "--by",
            "alice",
            *h,
        )
    listed = json.loads(ok("charger", "firmware", "list", "--json", *h))
    assert [(i["version"], i["path"].startswith("/charger-firmware/")) for i in listed] == [
        ("1.0.0", True),
        ("2.0.0", True),
    ]
    assert "2.0.0" in ok("charger", "firmware", "list", *h)
    for cpid, site in (("CP1", "north"), ("CP2", "south")):
        ok("charger", "add", cpid, "--site", site, "--time-zone", "Europe/Berlin", *h)
    create = (
        "charger",
        "campaign",
        "create",
        "ac22-2",
        "--version",
        "2.0.0",
        "--model",
        "AC22",
        "--by",
        "alice",
    )
    assert "finds no" in fails(*create, *h)  # no charger has booted as an AC22 yet
    booted(home, "CP1")
    booted(home, "CP2")
    summary = json.loads(ok(*create, "--waves", "50,100", "--window", "01:00-05:00", "--json", *h))
    assert (summary["state"], summary["wave_sizes"], summary["statuses"]) == ("draft", [1, 1], {"pending": 2})
    assert summary["policy"]["windows"] == [
        {"start": "01:00", "end": "05:00", "weekdays": [0, 1, 2, 3, 4, 5, 6]}
    ]
    assert "someone else" in fails("charger", "campaign", "approve", "ac22-2", "--by", "alice", *h)
    assert "approved by bob" in ok("charger", "campaign", "approve", "ac22-2", "--by", "bob", *h)
    assert "running" in ok("charger", "campaign", "start", "ac22-2", "--by", "alice", *h)
    status = json.loads(ok("charger", "campaign", "status", "ac22-2", "--json", *h))
    assert [c["charge_point_id"] for c in status["chargers"]] and status["validation"]["verdict"] == "hold"
    table = ok("charger", "campaign", "status", "ac22-2", *h)
    assert "CP1" in table and "sessions: hold" in table
    assert "paused" in ok("charger", "campaign", "pause", "ac22-2", "--by", "alice", *h)
    assert "cannot" in fails("charger", "campaign", "start", "ac22-2", "--by", "alice", *h)
    assert "aborted" in ok("charger", "campaign", "abort", "ac22-2", "--by", "alice", *h)
    assert "ac22-2" in ok("charger", "campaign", "list", *h)
    assert "--quiet-hours" in fails(*create, "--window", "01:00-05:00", "--quiet-hours", "4", *h)
    quiet = json.loads(
        ok(
            "charger",
            "campaign",
            "create",
            "quiet",
            "--version",
            "2.0.0",
            "--model",
            "AC22",
            "--by",
            "alice",
            "--quiet-hours",
            "4",
            "--json",
            *h,
        )
    )
    assert quiet["policy"]["site_windows"] == {
        "north": [{"start": "01:00", "end": "05:00", "weekdays": [0, 1, 2, 3, 4, 5, 6]}],
        "south": [{"start": "01:00", "end": "05:00", "weekdays": [0, 1, 2, 3, 4, 5, 6]}],
    }
    assert "queued" in ok("charger", "firmware", "send", "CP1", "--version", "2.0.0", *h)
    history = json.loads(ok("charger", "firmware", "history", "CP1", "--json", *h))
    assert history["requests"][0]["state"] == "queued" and history["requests"][0]["purpose"] == "update"
    assert "no firmware 9.9.9" in fails("charger", "firmware", "send", "CP1", "--version", "9.9.9", *h)


def test_the_simulator_runs_against_a_real_server(tmp_path: Path) -> None:
    from evota.clock import SystemClock
    from evota.deployment import open_home
    from evota.server.app import create_app
    from evota.server.runner import serve_in_thread
    from evota.server.services.chargers import get_charger
    from evota.server.store.db import open_database

    home = str(tmp_path / "home")
    ok("init", "--home", home)
    password = json.loads(
        ok("charger", "add", "CP1", "--site", "x", "--time-zone", "UTC", "--json", "--home", home)
    )["password"]
    dep = open_home(home, SystemClock())
    db = open_database(dep.home.database_url())
    try:
        with serve_in_thread(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as url:
            out = ok(
                "sim",
                "charger",
                "--id",
                "CP1",
                "--csms",
                url.replace("http", "ws") + "/ocpp",
                "--password",
                password,
                "--protocol",
                "1.6",
                "--duration",
                "1.5",
                "--sessions-every",
                "0.3",
                "--session-seconds",
                "0.05",
            )
        assert "stopped: firmware 1.0.0" in out and "boot PowerUp 1.0.0" in out
        view = get_charger(db, "CP1")
        assert (view.protocol, view.firmware_version, view.model) == ("1.6", "1.0.0", "AC22")
    finally:
        db.dispose()
    refused = fails("sim", "charger", "--id", "CP1", "--csms", "ws://x", "--fail", "gremlins")
    assert "faults: download, signature" in refused
    assert "--plain is for OCPP 1.6" in fails("sim", "charger", "--id", "CP1", "--csms", "ws://x", "--plain")
