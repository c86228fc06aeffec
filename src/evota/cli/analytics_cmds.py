"""`evota analytics …`: fit a cell model from characterization tests, estimate SoC from a log.

NumPy and SciPy are imported inside each command, so `evota --help` and every other command
start without them.
"""

from __future__ import annotations

import enum
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from evota.cli.common import done, err_console, reports_errors
from evota.errors import InputError
from evota.fsutil import atomic_write

analytics_app = typer.Typer(
    help="Battery analytics: identify a cell model, estimate state of charge.", no_args_is_help=True
)


class SocMethod(enum.StrEnum):
    ekf = "ekf"
    ukf = "ukf"
    coulomb = "coulomb"


class CurrentSign(enum.StrEnum):
    discharge_positive = "discharge-positive"
    charge_positive = "charge-positive"


@analytics_app.command("fit-ecm")
@reports_errors
def fit_ecm(
    input_csv: Annotated[
        Path,
        typer.Option(
            "--input",
            help="CSV (or .csv.gz): test,temperature_c,time_s,current_a,voltage_v; test is ocv or hppc.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the cell model (JSON).")],
    name: Annotated[str, typer.Option(help="A name for the cell, kept in the model.")] = "cell",
) -> None:
    """Fit OCV, R0 and two RC pairs per temperature from slow (ocv) and pulse (hppc) tests.

    Each test must start fully charged and rested; SoC is counted from there.
    """
    from evota.analytics.identify import fit_cell_model
    from evota.analytics.timeseries import parse_characterization, read_csv

    tests = parse_characterization(read_csv(input_csv))
    ocv_volts = [rec.voltage_v for (kind, _), rec in tests.items() if kind == "ocv"]
    if not ocv_volts:
        raise InputError("characterization has no ocv test")
    limits = (
        round(float(min(v.min() for v in ocv_volts)), 2),
        round(float(max(v.max() for v in ocv_volts)), 2),
    )
    model = fit_cell_model(tests, name=name, voltage_limits_v=limits)
    atomic_write(out, (json.dumps(model.to_dict(), indent=1) + "\n").encode())
    rmse = ", ".join(f"{t} °C {v} mV" for t, v in model.fit_report["pulse_rmse_mv"].items())
    done("fitted", f"{out}: {model.temperature_c.size} temperatures; pulse-fit voltage RMSE {rmse}")


@analytics_app.command("soc")
@reports_errors
def soc(
    cell: Annotated[Path, typer.Option("--cell", help="Cell model JSON from fit-ecm.")],
    input_csv: Annotated[
        Path,
        typer.Option(
            "--input", help="CSV (or .csv.gz): time_s,current_a,voltage_v,temperature_c[,soc_init]; one cell."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the input plus soc and soc_std.")],
    method: Annotated[SocMethod, typer.Option(help="Estimator.")] = SocMethod.ekf,
    current_sign: Annotated[
        CurrentSign, typer.Option(help="How the log signs current; evota's own is discharge-positive.")
    ] = CurrentSign.discharge_positive,
    max_gap_s: Annotated[float, typer.Option(help="Longest allowed gap between samples (s).")] = 10.0,
) -> None:
    """Estimate SoC (0-1) and its standard deviation at every sample of a cell's log.

    Without soc_init the first sample's voltage sets the start, with a wide uncertainty.
    """
    import numpy as np

    from evota.analytics.cellmodel import CellModel
    from evota.analytics.grid import ParameterGrid
    from evota.analytics.soc import estimate_soc
    from evota.analytics.timeseries import parse_drive, read_csv

    if not cell.is_file():
        raise InputError(f"{cell} does not exist")
    try:
        model = CellModel.from_dict(json.loads(cell.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{cell} is not JSON: {e}") from None
    cols = read_csv(input_csv)
    data = parse_drive(
        cols,
        capacity_ah=model.nominal_capacity_ah,
        voltage_window_v=(model.voltage_min_v, model.voltage_max_v),
        sign=current_sign.value,
        max_gap_s=max_gap_s,
    )
    for note in data.notes:
        err_console.print(f"note: {note}")
    result = estimate_soc(
        ParameterGrid.from_model(model),
        data.time_s,
        data.current_a,
        data.voltage_v,
        data.temperature_c,
        method=method.value,
        soc_init=None if data.soc_init is None else np.array([data.soc_init]),
    )
    buf = io.StringIO()
    names = list(cols)
    buf.write(",".join([*names, "soc", "soc_std"]) + "\n")
    for k, (z, s) in enumerate(zip(result.soc[:, 0], result.soc_std[:, 0], strict=True)):
        buf.write(",".join([*(cols[n][k] for n in names), f"{z:.6f}", f"{s:.6f}"]) + "\n")
    atomic_write(out, buf.getvalue().encode())
    done("estimated", f"{out}: {len(result.soc)} samples, final SoC {result.soc[-1, 0]:.3f}")
