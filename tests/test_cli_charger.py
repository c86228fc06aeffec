"""`evota charger …` through the real CLI, on the home's SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evota.cli import app

runner = CliRunner()


def test_add_list_show_and_a_new_password(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert runner.invoke(app, ["init", "--home", home]).exit_code == 0
    added = runner.invoke(
        app,
        [
            *("charger", "add", "CP1", "--site", "berlin-north", "--time-zone", "Europe/Berlin"),
            *("--tag", "pilot", "--home", home, "--json", "--by", "alice"),
        ],
    )
    assert added.exit_code == 0, added.output
    first = json.loads(added.stdout)["password"]
    again = runner.invoke(app, ["charger", "add", "CP1", "--site", "x", "--time-zone", "UTC", "--home", home])
    assert again.exit_code == 1 and "already registered" in again.output
    bad_zone = runner.invoke(
        app, ["charger", "add", "CP2", "--site", "x", "--time-zone", "Mars/Olympus", "--home", home]
    )
    assert bad_zone.exit_code == 1 and "unknown time zone" in bad_zone.output
    listed = json.loads(runner.invoke(app, ["charger", "list", "--home", home, "--json"]).stdout)
    assert [(c["charge_point_id"], c["site"], c["tags"], c["connected"]) for c in listed] == [
        ("CP1", "berlin-north", ["pilot"], False)
    ]
    shown = json.loads(runner.invoke(app, ["charger", "show", "CP1", "--home", home]).stdout)
    assert shown["signed_updates"] is True and "password" not in json.dumps(shown)
    new = json.loads(runner.invoke(app, ["charger", "password", "CP1", "--home", home, "--json"]).stdout)
    assert new["password"] != first
    table = runner.invoke(app, ["charger", "list", "--home", home])
    assert "CP1" in table.stdout and "never" in table.stdout
    assert runner.invoke(app, ["charger", "show", "CP9", "--home", home]).exit_code == 1
