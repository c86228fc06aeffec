"""Regenerate the battery fixtures in tests/analytics/fixtures/ from a physics model (PyBaMM).

Why a physics model: an estimator checked against data made by its own equivalent circuit
only proves that the code agrees with itself. Here the truth comes from a Doyle-Fuller-Newman
model (porous electrodes, solid and electrolyte diffusion, Butler-Volmer kinetics) with the
published ORegan2022 parameter set for the LG M50T (5 Ah NMC811/graphite-SiOx). ORegan2022 is
chosen over Chen2020 because its OCPs carry entropic terms and its transport depends on
temperature, so the open-circuit voltage and the resistances both move with temperature, as
in a real cell.

What it writes (gzip CSV, small enough to commit):
- characterization.csv.gz: for each of 0, 10, 25, 40 °C, a C/20 discharge-rest-charge test
  ("ocv") and a pulse test ("hppc": at 95, 85, ... 5 % SoC, a 1C discharge pulse and a 0.75C
  charge pulse of 30 s each, then 10 % SoC at C/2 and a 1 h rest). This is all the fit sees.
- drive_<T>C.csv.gz: a synthetic WLTP-like drive cycle (urban, suburban, rural, motorway
  phases; regenerative braking), scaled to the cell and repeated from 95 % SoC down to about
  2 % (about 5 h), at each temperature. The fit never sees these; the SoC benchmark and tests score on them.

One SoC definition for everything (see docs/analytics.md): every run starts fully charged
(PyBaMM initial_soc=1) and SoC = 1 - (Ah discharged) / Q_T, where Q_T is the capacity the C/20
discharge delivers at the same temperature. PyBaMM's DFN has no SoC variable of its own.
Logged currents are rounded to 10 uA and voltages to 10 uV.

Run (needs the optional extra: pip install -e '.[bench]'):
    PYBAMM_DISABLE_TELEMETRY=true .venv/bin/python scripts/gen_battery_fixtures.py
It takes about 12 minutes on two cores. The drive profile is seeded, so reruns give the same
files up to solver round-off.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import pybamm

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "analytics" / "fixtures"
TEMPERATURES_C = (0.0, 10.0, 25.0, 40.0)
PARAMETER_SET = "ORegan2022"
V_MIN, V_MAX = 2.5, 4.4  # the parameter set's cut-offs
SEED = 2026
BOUNDARY_S = 0.01

FloatArray = NDArray[np.float64]


def parameters(temperature_c: float) -> pybamm.ParameterValues:
    """The cell held isothermal at the chamber temperature (a characterization chamber)."""
    p = pybamm.ParameterValues(PARAMETER_SET)
    kelvin = 273.15 + temperature_c
    p.update({"Ambient temperature [K]": kelvin, "Initial temperature [K]": kelvin})
    return p


def run(steps: list[Any], temperature_c: float) -> pybamm.Solution:
    sim = pybamm.Simulation(
        pybamm.lithium_ion.DFN(),
        parameter_values=parameters(temperature_c),
        experiment=pybamm.Experiment(steps),
        # Tight tolerances: at the default rtol 1e-4 the cell's charge state drifts ~0.2 % from
        # the integral of the prescribed current over a 5 h drive, which would be scored as
        # estimator error. At 1e-6 it is ~0.02 %.
        solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8),
    )
    return sim.solve(initial_soc=1.0)


def columns(sol: pybamm.Solution) -> dict[str, FloatArray]:
    """Samples at each output time. A step boundary appears twice in PyBaMM's solution (end of
    one step, start of the next, the current jumping in between); the first of the pair is
    logged BOUNDARY_S earlier, so times stay strictly increasing and the trapezoid rule
    over the log integrates the current exactly (a jump is a ramp over BOUNDARY_S)."""
    t = np.asarray(sol["Time [s]"].entries, dtype=float).copy()
    dup = np.flatnonzero(np.diff(t) <= 1e-9)
    t[dup] -= BOUNDARY_S
    keep = np.concatenate([[True], np.diff(t) > 1e-9])
    return {
        "time_s": t[keep],
        "current_a": np.asarray(sol["Current [A]"].entries, dtype=float)[keep],
        "voltage_v": np.asarray(sol["Voltage [V]"].entries, dtype=float)[keep],
        "temperature_c": np.asarray(sol["Volume-averaged cell temperature [K]"].entries)[keep] - 273.15,
    }


def discharged_ah(data: dict[str, FloatArray]) -> FloatArray:
    """The exact integral of the prescribed current: PyBaMM interpolates drive currents
    linearly between the 1 s knots and holds CC steps, and step boundaries are logged as
    BOUNDARY_S ramps, so the trapezoid rule over the log is exact. This, not PyBaMM's
    "Discharge capacity" state (which carries the solver's tolerance), defines SoC truth."""
    t, i = data["time_s"], data["current_a"]
    return np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))]) / 3600.0


def ocv_test(temperature_c: float) -> tuple[dict[str, FloatArray], float]:
    """C/20 down to V_MIN, 2 h rest, C/20 back up; returns the data and Q_T (Ah)."""
    sol = run(
        [
            f"Discharge at C/20 until {V_MIN} V (60 second period)",
            "Rest for 2 hours (300 second period)",
            f"Charge at C/20 until {V_MAX} V (60 second period)",
        ],
        temperature_c,
    )
    data = columns(sol)
    q = float(discharged_ah(data).max())
    return data, q


def hppc_test(temperature_c: float) -> dict[str, FloatArray]:
    """Pulses at 95, 85, ... 5 % SoC. 30 s pulses make the fast RC pair visible, and the
    1 h rests after each 10 % step the slow one."""
    steps: list[str] = [
        f"Discharge at C/2 for 6 minutes or until {V_MIN} V (10 second period)",
        "Rest for 1 hour (20 second period)",
    ]
    for _ in range(10):
        steps += [
            "Rest for 60 seconds (1 second period)",
            f"Discharge at 1C for 30 seconds or until {V_MIN} V (1 second period)",
            "Rest for 2 minutes (1 second period)",
            f"Charge at 0.75C for 30 seconds or until {V_MAX} V (1 second period)",
            "Rest for 2 minutes (1 second period)",
            f"Discharge at C/2 for 12 minutes or until {V_MIN} V (5 second period)",
            "Rest for 1 hour (20 second period)",
        ]
    return columns(run(steps, temperature_c))


def speed_profile(rng: np.random.Generator) -> FloatArray:
    """One ~30 min WLTP-like speed trace (m/s at 1 s): four phases of micro-trips with rising
    top speeds. Not the WLTC table itself (that needs a download); the same shape of demand."""
    phases = [(50, 6, 25), (75, 4, 15), (100, 3, 10), (130, 2, 5)]  # top km/h, trips, idle s
    speeds: list[float] = [0.0] * 10
    for top_kmh, trips, idle_s in phases:
        for _ in range(trips):
            target = rng.uniform(0.45, 1.0) * top_kmh / 3.6
            accel = rng.uniform(0.6, 1.6)
            v = 0.0
            while v < target:
                v = min(target, v + accel)
                speeds.append(v)
            cruise = int(rng.uniform(30, 120))
            phase0 = rng.uniform(0, 2 * np.pi)
            for k in range(cruise):
                speeds.append(max(0.0, target * (1 + 0.08 * np.sin(phase0 + k / 9.0))))
            decel = rng.uniform(0.7, 1.5)
            v = speeds[-1]
            while v > 0:
                v = max(0.0, v - decel)
                speeds.append(v)
            speeds.extend([0.0] * int(idle_s * rng.uniform(0.5, 1.5)))
    return np.asarray(speeds)


def cell_current(speed: FloatArray) -> FloatArray:
    """Road load -> battery power -> one cell's current (A, discharge positive).

    A 1.9 t van, a pack of 96 series x 20 parallel M50T cells (about 35 kWh), 90 %
    drivetrain efficiency, 65 % of braking power regenerated, capped at 60 kW of regen, and
    a 1.2 kW auxiliary load. This gives peaks near 4C in discharge and 1.1C in regen.
    """
    mass, cda, crr, g, rho = 1900.0, 0.75, 0.011, 9.81, 1.2
    accel = np.gradient(speed)
    wheel = speed * (mass * accel + 0.5 * rho * cda * speed**2 + crr * mass * g * (speed > 0))
    battery = np.where(wheel > 0, wheel / 0.9, np.maximum(wheel * 0.65, -60e3)) + 1200.0
    return battery / (96 * 3.7) / 20


def drive_test(temperature_c: float, profile: FloatArray) -> dict[str, FloatArray]:
    """5 % at C/3 and a 30 min rest (so the drive starts near 95 % SoC, where regen is
    allowed), then the drive cycle until V_MIN. The fixture keeps only the drive."""
    drive = pybamm.step.current(
        np.column_stack([np.arange(profile.size, dtype=float), profile]),
        termination=f"< {V_MIN} V",
        period=1.0,
    )
    return columns(
        run(
            [
                "Discharge at C/3 for 9 minutes (10 second period)",
                "Rest for 30 minutes (10 second period)",
                drive,
            ],
            temperature_c,
        )
    )


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with gzip.open(path, "wt", newline="", compresslevel=9) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=10, help="drive cycles back to back (stops at V_MIN)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    profile = np.concatenate([cell_current(speed_profile(rng)) for _ in range(args.repeats)])

    char_rows: list[list[Any]] = []
    for temp in TEMPERATURES_C:
        ocv, q = ocv_test(temp)
        hppc = hppc_test(temp)
        print(f"{temp:4.0f} C: C/20 capacity {q:.4f} Ah, hppc {hppc['time_s'].size} samples")
        for name, data in (("ocv", ocv), ("hppc", hppc)):
            for t, i, v, tc in zip(
                data["time_s"], data["current_a"], data["voltage_v"], data["temperature_c"], strict=True
            ):
                char_rows.append([name, fmt(tc, 2), fmt(t, 2), fmt(i, 5), fmt(v, 5)])

        drive = drive_test(temp, profile)
        soc = 1.0 - discharged_ah(drive) / q
        start = int(np.argmax(drive["time_s"] >= 9 * 60 + 30 * 60 - 1e-6))  # the drive itself
        rows = [
            [fmt(t - drive["time_s"][start], 2), fmt(i, 5), fmt(v, 5), fmt(tc, 2), fmt(s, 6)]
            for t, i, v, tc, s in zip(
                drive["time_s"][start:],
                drive["current_a"][start:],
                drive["voltage_v"][start:],
                drive["temperature_c"][start:],
                soc[start:],
                strict=True,
            )
        ]
        write_csv(
            args.out / f"drive_{temp:.0f}C.csv.gz",
            ["time_s", "current_a", "voltage_v", "temperature_c", "soc_true"],
            rows,
        )
        print(f"        drive: {len(rows)} s, SoC {soc[start]:.3f} -> {soc[-1]:.3f}")
    write_csv(
        args.out / "characterization.csv.gz",
        ["test", "temperature_c", "time_s", "current_a", "voltage_v"],
        char_rows,
    )
    (args.out / "SOURCE.txt").write_text(
        f"Generated by scripts/gen_battery_fixtures.py with PyBaMM {pybamm.__version__}, "
        f"DFN, parameter set {PARAMETER_SET}, isothermal at each temperature, seed {SEED}.\n"
    )


if __name__ == "__main__":
    main()
