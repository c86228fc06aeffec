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
- ageing.csv.gz and ageing_truth.csv: an SEI-growth ageing set for SoH and RUL (see `AGEING_CELLS`).
  SPMe with "solvent-diffusion limited" SEI, lithium plating off, parameter set OKane2022 (LG M50,
  the Chen2020 cell with SEI parameters), at 25 °C. The SEI solvent diffusivity is raised
  2,000-6,000x over the published value so the C/20 capacity falls to 80 % within about
  120-400 1C cycles instead of thousands (the issue threads report hours per 100 DFN cycles).
  Six cells differ in that rate and in their electrodes' active-material fractions (+-2 %), so
  the map from charge curve to capacity is not the same one curve for every cell. Every 10
  cycles the fully charged state is checked on a side branch that does not feed back into the
  ageing (a check-up must not age the cell): a C/20 discharge (the capacity truth, with
  PyBaMM's LLI and LAM), a 1 h rest and a C/3 charge (kept between 15 and 90 % SoC: the partial
  charge curve), then from full a C/3 discharge to 50 % SoC, a 1 h rest and a 10 s 1C
  discharge pulse (resistance). The branch runs at the published SEI rate, so the check-up itself
  does not age the cell by the accelerated rate.
- isc_rest.csv.gz: internal-short precursors for the anomaly detector. The ORegan2022 DFN cell
  (the drive cycles' cell) at 25 °C, discharged at C/3 from full to 90, 60 or 30 % SoC, then
  parked for 72 h while a short of R_isc = inf, 10k, 3k, 1k, 300 or 100 ohm drains it
  (current V/R_isc from the cell's own voltage, a PyBaMM CustomStepExplicit). The logged
  current is the external one, zero: the leak is internal and only the voltage shows it.

One SoC definition for everything (see docs/analytics.md): every run starts fully charged
(PyBaMM initial_soc=1) and SoC = 1 - (Ah discharged) / Q_T, where Q_T is the capacity the C/20
discharge delivers at the same temperature. PyBaMM's DFN has no SoC variable of its own.
Logged currents are rounded to 10 uA and voltages to 10 uV.

Run (needs the optional extra: pip install -e '.[bench]'):
    PYBAMM_DISABLE_TELEMETRY=true .venv/bin/python scripts/gen_battery_fixtures.py
`--only ageing` or `--only isc` regenerates one set. Everything takes about 12 minutes
for the drive and characterization sets plus a few minutes for the ageing and short sets on
two cores. The drive profile is seeded, so reruns give the same
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


AGEING_PARAMETER_SET = "OKane2022"
AGEING_V_MIN, AGEING_V_MAX = 2.5, 4.2  # OKane2022's cut-offs
AGEING_CHECK_EVERY = 10  # cycles between check-ups
AGEING_MAX_CYCLES = 400
AGEING_STOP_SOH = 0.75  # stop a cell once its C/20 capacity is below this share of fresh
# (SEI solvent diffusivity multiplier, negative and positive active-material fraction factors)
AGEING_CELLS: dict[str, tuple[float, float, float]] = {
    "A": (2000.0, 1.00, 1.00),
    "B": (2500.0, 1.02, 0.98),
    "C": (3000.0, 0.98, 1.01),
    "D": (3500.0, 1.01, 1.02),
    "E": (4500.0, 0.99, 0.99),
    "F": (6000.0, 1.00, 0.98),
}
CHARGE_WINDOW = (0.15, 0.90)  # SoC window of the partial charge curve that is kept
ISC_SOCS = (0.9, 0.6, 0.3)
ISC_OHMS = (float("inf"), 10_000.0, 3_000.0, 1_000.0, 300.0, 100.0)
ISC_REST_H = 72


def ageing_parameters(cell: str, *, frozen: bool = False) -> pybamm.ParameterValues:
    """The cell's parameters; `frozen` keeps the published SEI rate (a check-up's branch)."""
    rate, neg, pos = AGEING_CELLS[cell]
    rate = 1.0 if frozen else rate
    p = pybamm.ParameterValues(AGEING_PARAMETER_SET)
    kelvin = 298.15
    p.update(
        {
            "Ambient temperature [K]": kelvin,
            "Initial temperature [K]": kelvin,
            "SEI solvent diffusivity [m2.s-1]": p["SEI solvent diffusivity [m2.s-1]"] * rate,
            "Negative electrode active material volume fraction": (
                p["Negative electrode active material volume fraction"] * neg
            ),
            "Positive electrode active material volume fraction": (
                p["Positive electrode active material volume fraction"] * pos
            ),
        }
    )
    return p


class AgeingRunner:
    """One ageing cell: SPMe with SEI growth; each call continues from a given state."""

    def __init__(self, cell: str) -> None:
        self.model = pybamm.lithium_ion.SPMe(
            {"SEI": "solvent-diffusion limited", "SEI porosity change": "false", "lithium plating": "none"}
        )
        self.params = ageing_parameters(cell)
        self.frozen = ageing_parameters(cell, frozen=True)

    def run(
        self, steps: list[Any], start: pybamm.Solution | None, *, frozen: bool = False
    ) -> pybamm.Solution:
        sim = pybamm.Simulation(
            self.model,
            parameter_values=self.frozen if frozen else self.params,
            experiment=pybamm.Experiment(steps),
            solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8),
        )
        if start is None:
            return sim.solve(initial_soc=1.0)
        return sim.solve(starting_solution=start)


def steps_columns(
    sol: pybamm.Solution, first: pybamm.Solution, last: pybamm.Solution | None = None
) -> dict[str, FloatArray]:
    """`columns` of a solution from the start of cycle `first` to the end of cycle `last`
    (default: the end), with the step boundaries kept as `columns` logs them."""
    data = columns(sol)
    start = float(first["Time [s]"].entries[0]) - 0.5 * BOUNDARY_S
    keep = data["time_s"] >= start
    if last is not None:
        keep &= data["time_s"] <= float(last["Time [s]"].entries[-1]) - 0.5 * BOUNDARY_S
    return {k: v[keep] for k, v in data.items()}


def checkup(runner: AgeingRunner, state: pybamm.Solution, q_fresh: float | None) -> dict[str, Any]:
    """The side-branch check-up of a fully charged cell (see the module docstring)."""
    sol = runner.run(
        [
            f"Discharge at C/20 until {AGEING_V_MIN} V (600 second period)",
            "Rest for 1 hour (300 second period)",
            f"Charge at C/3 until {AGEING_V_MAX} V (30 second period)",
            f"Hold at {AGEING_V_MAX} V until C/50 (120 second period)",
        ],
        state.last_state,
        frozen=True,
    )
    c20 = sol.cycles[-4]
    ah = c20["Discharge capacity [A.h]"].entries
    q = float(ah[-1] - ah[0])
    truth = {
        "capacity_ah": q,
        "lli_pct": float(c20["Loss of lithium inventory [%]"].entries[-1]),
        "lam_ne_pct": float(c20["Loss of active material in negative electrode [%]"].entries[-1]),
        "lam_pe_pct": float(c20["Loss of active material in positive electrode [%]"].entries[-1]),
    }
    charge = steps_columns(sol, sol.cycles[-2], sol.cycles[-2])
    soc = -discharged_ah(charge) / q  # from empty (the C/20 discharge ended at V_MIN)
    keep = (soc >= CHARGE_WINDOW[0]) & (soc <= CHARGE_WINDOW[1])
    charge = {k: v[keep] for k, v in charge.items()}
    charge["time_s"] = charge["time_s"] - charge["time_s"][0]
    nominal = float(runner.params["Nominal cell capacity [A.h]"])
    hours_to_half = 0.5 * q / (nominal / 3.0)
    pulse_sol = runner.run(
        [
            f"Discharge at C/3 for {hours_to_half * 60:.3f} minutes (60 second period)",
            "Rest for 1 hour (60 second period)",
            "Rest for 20 seconds (1 second period)",
            f"Discharge at 1C for 10 seconds or until {AGEING_V_MIN} V (1 second period)",
            "Rest for 30 seconds (1 second period)",
        ],
        sol.last_state,
        frozen=True,
    )
    pulse = steps_columns(pulse_sol, pulse_sol.cycles[-3])
    pulse["time_s"] = pulse["time_s"] - pulse["time_s"][0]
    truth["soh"] = q / (q_fresh if q_fresh is not None else q)
    return {"truth": truth, "charge": charge, "pulse": pulse}


def ageing_cell(cell: str) -> tuple[list[list[Any]], list[list[Any]]]:
    """Cycle one cell at 1C/1C with CV to C/20, checking every AGEING_CHECK_EVERY cycles."""
    runner = AgeingRunner(cell)
    state = runner.run(["Rest for 1 minute (60 second period)"], None)
    series: list[list[Any]] = []
    truths: list[list[Any]] = []
    q_fresh: float | None = None
    cycle = 0
    while True:
        check = checkup(runner, state, q_fresh)
        truth = check["truth"]
        q_fresh = q_fresh if q_fresh is not None else truth["capacity_ah"]
        truths.append(
            [cell, cycle]
            + [fmt(truth[k], 6) for k in ("capacity_ah", "soh", "lli_pct", "lam_ne_pct", "lam_pe_pct")]
        )
        for test in ("charge", "pulse"):
            d = check[test]
            for t, i, v in zip(d["time_s"], d["current_a"], d["voltage_v"], strict=True):
                series.append([cell, cycle, test, fmt(t, 2), fmt(i, 5), fmt(v, 5)])
        print(
            f"  cell {cell} cycle {cycle:3d}: C/20 {truth['capacity_ah']:.4f} Ah, SoH {truth['soh']:.4f}, "
            f"LLI {truth['lli_pct']:.2f} %",
            flush=True,
        )
        if truth["soh"] < AGEING_STOP_SOH or cycle >= AGEING_MAX_CYCLES:
            break
        block = [
            (
                f"Discharge at 1C until {AGEING_V_MIN} V (120 second period)",
                f"Charge at 1C until {AGEING_V_MAX} V (120 second period)",
                f"Hold at {AGEING_V_MAX} V until C/20 (120 second period)",
            )
        ] * AGEING_CHECK_EVERY
        state = runner.run(block, state.last_state)
        cycle += AGEING_CHECK_EVERY
    return series, truths


def ageing_set(out: Path) -> None:
    series: list[list[Any]] = []
    truths: list[list[Any]] = []
    for cell in AGEING_CELLS:
        s, t = ageing_cell(cell)
        series += s
        truths += t
    write_csv(out / "ageing.csv.gz", ["cell", "cycle", "test", "time_s", "current_a", "voltage_v"], series)
    with (out / "ageing_truth.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cell", "cycle", "capacity_ah", "soh", "lli_pct", "lam_ne_pct", "lam_pe_pct"])
        w.writerows(truths)


def isc_set(out: Path) -> None:
    """Rest with an internal short: the ORegan2022 DFN cell at 25 °C (see the docstring)."""
    rows: list[list[Any]] = []
    for soc0 in ISC_SOCS:
        for ohms in ISC_OHMS:
            steps: list[Any] = [
                f"Discharge at C/3 for {(1 - soc0) * 3 * 60:.2f} minutes (60 second period)",
            ]
            duration = ISC_REST_H * 3600
            if np.isinf(ohms):
                steps.append(f"Rest for {ISC_REST_H} hours (300 second period)")
            else:
                r = ohms
                steps.append(
                    pybamm.step.CustomStepExplicit(
                        lambda variables, r=r: variables["Voltage [V]"] / r, duration=duration, period=300
                    )
                )
            sol = run(steps, 25.0)
            rest = steps_columns(sol, sol.cycles[-1])
            t0 = rest["time_s"][0]
            label = "inf" if np.isinf(ohms) else f"{ohms:g}"
            for t, v in zip(rest["time_s"], rest["voltage_v"], strict=True):
                rows.append([fmt(soc0, 2), label, fmt(t - t0, 1), "0.00000", fmt(v, 5)])
            print(
                f"  isc: SoC {soc0:.1f}, R {label:>5} ohm: {rest['voltage_v'][0]:.4f} -> "
                f"{rest['voltage_v'][-1]:.4f} V",
                flush=True,
            )
    write_csv(out / "isc_rest.csv.gz", ["soc_start", "r_isc_ohm", "time_s", "current_a", "voltage_v"], rows)


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
    parser.add_argument("--only", choices=("drive", "ageing", "isc"), help="regenerate one set only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "ageing"):
        ageing_set(args.out)
    if args.only in (None, "isc"):
        isc_set(args.out)
    if args.only in (None, "drive"):
        drive_set(args)
    (args.out / "SOURCE.txt").write_text(
        f"Generated by scripts/gen_battery_fixtures.py with PyBaMM {pybamm.__version__}.\n"
        f"drive_*, characterization: DFN, {PARAMETER_SET}, isothermal at each temperature, seed {SEED}.\n"
        f"ageing*: SPMe with solvent-diffusion-limited SEI, {AGEING_PARAMETER_SET}, 25 °C, cells "
        f"{', '.join(f'{k} (SEI x{v[0]:g}, AM {v[1]:g}/{v[2]:g})' for k, v in AGEING_CELLS.items())}.\n"
        f"isc_rest: DFN, {PARAMETER_SET}, 25 °C, R_isc {', '.join(f'{r:g}' for r in ISC_OHMS)} ohm.\n"
    )


def drive_set(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    main()
