"""`evota analytics fit-ecm` and `evota analytics soc` through the real CLI."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from evota.cli import app

from .conftest import FIXTURES

runner = CliRunner()


def drive_csv(tmp_path: Path, rows: int = 1500, *, flip: bool = False, soc_init: str | None = None) -> Path:
    with gzip.open(FIXTURES / "drive_25C.csv.gz", "rt") as f:
        data = list(csv.reader(f))[: rows + 1]
    header = data[0][:4]
    out = tmp_path / "drive.csv"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + (["soc_init"] if soc_init else []))
        for k, row in enumerate(data[1:]):
            cur = str(-float(row[1])) if flip else row[1]
            extra = ([soc_init if k == 0 else ""]) if soc_init else []
            w.writerow([row[0], cur, row[2], row[3], *extra])
    return out


def test_fit_then_estimate(tmp_path: Path) -> None:
    cell = tmp_path / "cell.json"
    fit = runner.invoke(app, ["analytics", "fit-ecm", "--input", str(FIXTURES / "characterization.csv.gz"),
                              "--out", str(cell), "--name", "M50T"])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    model = json.loads(cell.read_text())
    assert model["format"] == "evota.cell-model"
    assert model["version"] == 1
    assert model["temperature_c"] == [0.0, 10.0, 25.0, 40.0]

    out = tmp_path / "soc.csv"
    drive = drive_csv(tmp_path, soc_init="0.75")
    res = runner.invoke(app, ["analytics", "soc", "--cell", str(cell), "--input", str(drive),
                              "--out", str(out), "--method", "ukf"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "time_s",
        "current_a",
        "voltage_v",
        "temperature_c",
        "soc_init",
        "soc",
        "soc_std",
    ]
    assert len(rows) == 1500
    with gzip.open(FIXTURES / "drive_25C.csv.gz", "rt") as f:
        truth = np.array([float(r["soc_true"]) for r in csv.DictReader(f)][:1500])
    soc = np.array([float(r["soc"]) for r in rows])
    assert abs(soc[0] - 0.75) < 0.05  # started where it was told, 20 points low
    assert np.max(np.abs(soc[600:] - truth[600:])) < 0.02  # and within 2 % after 10 minutes


def test_flipped_current_is_refused_and_repaired_on_request(tmp_path: Path) -> None:
    cell = tmp_path / "cell.json"
    runner.invoke(app, ["analytics", "fit-ecm", "--input", str(FIXTURES / "characterization.csv.gz"),
                        "--out", str(cell)])  # fmt: skip
    flipped = drive_csv(tmp_path, 900, flip=True)
    out = tmp_path / "soc.csv"
    args = ["analytics", "soc", "--cell", str(cell), "--input", str(flipped), "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "current sign looks flipped" in res.stderr
    assert not out.exists()
    res = runner.invoke(app, [*args, "--current-sign", "charge-positive"])
    assert res.exit_code == 0, res.output
    assert "note: current negated" in res.stderr


def test_a_missing_or_foreign_cell_file_is_one_clear_line(tmp_path: Path) -> None:
    drive = drive_csv(tmp_path, 100)
    missing = tmp_path / "nope.json"
    res = runner.invoke(app, ["analytics", "soc", "--cell", str(missing), "--input", str(drive),
                              "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert res.exit_code == 1
    assert "does not exist" in res.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"format": "something-else"}')
    res = runner.invoke(app, ["analytics", "soc", "--cell", str(foreign), "--input", str(drive),
                              "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert res.exit_code == 1
    assert "not an evota cell model" in res.stderr
    assert "Traceback" not in res.output


def test_the_cli_starts_without_numpy_or_scipy() -> None:
    """`evota --help` and every non-analytics command must not pay for the numerical stack."""
    code = "import sys, evota.cli; sys.exit(int(any(m in sys.modules for m in ('numpy', 'scipy'))))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_fit_soh_then_estimate_an_unseen_cell(tmp_path: Path) -> None:
    """fit-soh on cells A, B, D, E (every 20th cycle), then soh on cell C at cycle 200. The
    model's voltage levels span what all its training charges cover (here the whole check-up
    charge, 15 % SoC to the CC end), so the charge it is given must cover them too."""
    with gzip.open(FIXTURES / "ageing.csv.gz", "rt") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    train = tmp_path / "checkups.csv"
    with train.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(r for r in body if r[0] in "ABDE" and int(r[1]) % 20 == 0)
    model = tmp_path / "soh.json"
    truth_csv = str(FIXTURES / "ageing_truth.csv")
    res = runner.invoke(app, ["analytics", "fit-soh", "--input", str(train), "--truth", truth_csv,
                              "--out", str(model)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "from 4 cells" in res.output
    with (FIXTURES / "ageing_truth.csv").open() as f:
        truth = {(r["cell"], r["cycle"]): r for r in csv.DictReader(f)}
    for test in ("charge", "pulse"):
        with (tmp_path / f"{test}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time_s", "current_a", "voltage_v", "temperature_c"])
            seg = [r for r in body if r[0] == "C" and r[1] == "200" and r[2] == test]
            w.writerows([*r[3:], "25.0"] for r in seg)
    args = ["analytics", "soh", "--model", str(model), "--input", str(tmp_path / "charge.csv"),
            "--pulse", str(tmp_path / "pulse.csv"), "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    true_soh = float(truth[("C", "200")]["capacity_ah"]) / float(truth[("C", "0")]["capacity_ah"])
    # SoH here is over the training cells' median fresh capacity, not C's own.
    ref = json.loads(model.read_text())["reference_capacity_ah"]
    assert abs(out["capacity_ah"] - float(truth[("C", "200")]["capacity_ah"])) < 0.05 * 5
    assert out["soh_low_95"] <= out["capacity_ah"] / ref <= out["soh_high_95"]
    assert abs(out["capacity_ah"] / float(truth[("C", "0")]["capacity_ah"]) - true_soh) < 0.02
    assert 2.0 < out["resistance_growth"] < 4.0  # SEI film resistance: about 3x by cycle 200
    res = runner.invoke(app, [*args[:-1], "--current-sign", "charge-positive"])
    assert res.exit_code == 1
    assert "is the current sign flipped" in res.stderr
