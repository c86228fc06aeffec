"""`evota analytics …`: fit a cell model from characterization tests, estimate SoC from a log.

NumPy and SciPy are imported inside each command, so `evota --help` and every other command
start without them.
"""

from __future__ import annotations

import enum
import io
import json
from pathlib import Path
from typing import Annotated, Any

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


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not JSON: {e}") from None


@analytics_app.command("fit-soh")
@reports_errors
def fit_soh(
    input_csv: Annotated[
        Path,
        typer.Option(
            "--input",
            help="Check-ups CSV (or .csv.gz): cell,cycle,test,time_s,current_a,voltage_v; "
            "test is charge (a CC charge segment) or pulse (a discharge pulse from rest).",
        ),
    ],
    truth: Annotated[Path, typer.Option("--truth", help="CSV: cell,cycle,capacity_ah (measured C/20).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the SoH model (JSON).")],
    reference_capacity_ah: Annotated[
        float | None,
        typer.Option(help="Capacity that means SoH 100 % (default: the median at cycle 0)."),
    ] = None,
) -> None:
    """Train the capacity model (a Gaussian process on partial-charge features) on labelled check-ups."""
    import numpy as np

    from evota.analytics.soh import CapacityModel, checkup_curve, pulse_resistance
    from evota.analytics.timeseries import parse_capacity_labels, parse_checkups, read_csv

    checkups = parse_checkups(read_csv(input_csv))
    labels = parse_capacity_labels(read_csv(truth))
    keys = sorted(k for k in checkups if k in labels and {"charge", "pulse"} <= set(checkups[k]))
    if len(keys) < 5:
        raise InputError(f"only {len(keys)} check-up(s) have a charge, a pulse and a capacity; need 5")
    fresh = [labels[k] for k in keys if k[1] == 0]
    if reference_capacity_ah is None:
        if not fresh:
            raise InputError("no check-up at cycle 0: pass --reference-capacity-ah")
        reference_capacity_ah = float(np.median(fresh))
    curves, fresh_r = [], []
    for k in keys:
        seg, p = checkups[k]["charge"], checkups[k]["pulse"]
        r = pulse_resistance(p.time_s, p.current_a, p.voltage_v, capacity_ah=reference_capacity_ah)
        curves.append(checkup_curve(seg.time_s, seg.current_a, seg.voltage_v, r, seg.temperature_c or 25.0))
        if k[1] == 0:
            fresh_r.append(r.r_1s_ohm)
    model = CapacityModel.train(
        curves,
        [labels[k] for k in keys],
        reference_capacity_ah=reference_capacity_ah,
        reference_r_1s_ohm=float(np.median(fresh_r)) if fresh_r else None,
        groups=[k[0] for k in keys],
    )
    atomic_write(out, (json.dumps(model.to_dict()) + "\n").encode())
    done(
        "fitted",
        f"{out}: {len(keys)} check-ups from {len({k[0] for k in keys})} cells, trained at "
        f"C/{1 / model.c_rate:.1f} and {model.temperature_c:g} °C; residual scatter "
        f"{model.gp.noise_std * 1000:.0f} mAh",
    )


@analytics_app.command("soh")
@reports_errors
def soh(
    model_path: Annotated[Path, typer.Option("--model", help="SoH model JSON from fit-soh.")],
    input_csv: Annotated[
        Path,
        typer.Option(
            "--input",
            help="A constant-current charge segment: time_s,current_a,voltage_v[,temperature_c].",
        ),
    ],
    pulse: Annotated[
        Path,
        typer.Option(
            help="A discharge pulse from rest near the charge (same columns): its resistance "
            "corrects the charge curve's ohmic drop and gives the resistance growth."
        ),
    ],
    cell: Annotated[
        Path | None,
        typer.Option("--cell", help="Cell model JSON: its R0 activation energy corrects temperature."),
    ] = None,
    current_sign: Annotated[
        CurrentSign, typer.Option(help="How the logs sign current; evota's own is discharge-positive.")
    ] = CurrentSign.discharge_positive,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Capacity and SoH with a 95 % interval from a partial charge; resistance growth from a pulse."""
    from evota.analytics.cellmodel import CellModel
    from evota.analytics.soh import CapacityModel, checkup_curve, pulse_resistance
    from evota.analytics.timeseries import parse_segment, read_csv
    from evota.cli.common import console

    raw = _load_json(model_path)
    model = CapacityModel.from_dict(raw)
    seg = parse_segment(read_csv(input_csv), sign=current_sign.value)
    for note in seg.notes:
        err_console.print(f"note: {note}")
    if seg.temperature_c is None:
        err_console.print(f"note: no temperature_c column; assuming the model's {model.temperature_c:g} °C")
    temp = model.temperature_c if seg.temperature_c is None else seg.temperature_c
    ea = None
    if cell is not None:
        ea = CellModel.from_dict(_load_json(cell)).activation_energy_j_mol["r0"]
    p = parse_segment(read_csv(pulse), sign=current_sign.value, max_gap_s=5.0)
    p_temp = model.temperature_c if p.temperature_c is None else p.temperature_c
    r = pulse_resistance(p.time_s, p.current_a, p.voltage_v, capacity_ah=model.reference_capacity_ah)
    est = model.estimate(checkup_curve(seg.time_s, seg.current_a, seg.voltage_v, r, temp))
    result: dict[str, float] = {
        "capacity_ah": round(est.capacity_ah, 4),
        "capacity_std_ah": round(est.std_ah, 4),
        "soh": round(est.soh, 4),
        "soh_low_95": round(est.soh - 1.96 * est.soh_std, 4),
        "soh_high_95": round(est.soh + 1.96 * est.soh_std, 4),
        "r_1s_ohm": round(r.r_1s_ohm, 6),
    }
    if model.reference_r_1s_ohm is not None:
        result["resistance_growth"] = round(model.resistance_growth(r, p_temp, ea_j_mol=ea), 4)
    if as_json:
        console.print(json.dumps(result))
        return
    line = (
        f"capacity {est.capacity_ah:.3f} Ah ± {est.std_ah:.3f} (1σ); SoH {est.soh:.1%} "
        f"(95 % interval {result['soh_low_95']:.1%}-{result['soh_high_95']:.1%}); "
        f"R1s {result['r_1s_ohm'] * 1000:.1f} mΩ"
    )
    if "resistance_growth" in result:
        line += f", growth {result['resistance_growth']:.3f}x"
    done("estimated", line)
