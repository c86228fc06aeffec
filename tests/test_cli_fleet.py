"""`evota fleet import` and `evota fleet list` through the real CLI, on the home's SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evota.cli import app

runner = CliRunner()
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.4.0"


def test_import_then_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    csv = tmp_path / "fleet.csv"
    csv.write_text(
        HEADER
        + f"WVWZZZ1JZ3W386752,eVan-3,berlin-north,eu-central,cold,Europe/Berlin,pilot,{ECUS}\n"
        + f"WVWZZZ1JZ3W386753,eVan-3,madrid-sur,eu-south,hot-dry,Europe/Madrid,,{ECUS}\n"
    )
    result = runner.invoke(app, ["fleet", "import", str(csv), "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"imported": 2}
    assert (home / "evota.db").is_file()
    listed = runner.invoke(app, ["fleet", "list", "--home", str(home), "--depot", "madrid-sur", "--json"])
    assert [v["vin"] for v in json.loads(listed.stdout)] == ["WVWZZZ1JZ3W386753"]


def test_a_file_with_bad_rows_imports_nothing_and_names_each_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner.invoke(app, ["init", "--home", str(home)])
    csv = tmp_path / "fleet.csv"
    csv.write_text(
        HEADER
        + f"WVWZZZ1JZ3W386752,eVan-3,berlin-north,eu-central,cold,Europe/Berlin,,{ECUS}\n"
        + f"WVWZZZ1JZ3W386753,eVan-3,berlin-north,eu-central,arctic,Europe/Berlin,,{ECUS}\n"
        + "WVWZZZ1JZ3W386754,eVan-3,berlin-north,eu-central,cold,Europe/Berlin,,bms:B:b\n"
    )
    result = runner.invoke(app, ["fleet", "import", str(csv), "--home", str(home)])
    assert result.exit_code == 1
    assert "2 bad row(s), nothing imported: line 3: climate zone 'arctic'" in result.stderr
    assert "line 4: name the primary" in result.stderr
    listed = runner.invoke(app, ["fleet", "list", "--home", str(home), "--json"])
    assert json.loads(listed.stdout) == []


def test_the_cli_starts_without_loading_the_database_layer() -> None:
    """Publishing and signing commands must not pay for SQLAlchemy and Alembic at start-up."""
    import subprocess
    import sys

    code = "import sys, evota.cli; sys.exit(int(any(m in sys.modules for m in ('sqlalchemy', 'alembic'))))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
