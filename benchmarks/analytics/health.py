"""SoH, anomaly and RUL figures on the PyBaMM ageing and short fixtures.

    make bench-analytics        (or: .venv/bin/python benchmarks/analytics/health.py)

1. SoH: leave-one-cell-out over the six ageing cells. The capacity model is trained on five
   cells' check-ups (their 30-80 % SoC window of the C/3 charge, IR-corrected with the
   check-up's pulse) and scores every check-up of the sixth. Noise-free, then with 2 mV and
   10 mA noise on charge and pulse. Reported: MAE and max of SoH error (capacity error over
   the cell's own fresh capacity), RMSE, and the share of truths inside the 95 % interval.
   Also R_1s growth from noisy pulses against the noise-free ratio, and the IC peak's rank
   correlation with PyBaMM's lithium loss.
2. Anomalies: internal shorts from PyBaMM's shorted cell in a 12-cell string with SoC spread,
   offsets, noise and 1 mV quantisation, screened every hour of a 72 h rest: hours to the
   first flag per short resistance and start SoC, and false alarms over healthy strings.
   Then a 600-cell fleet (type: cell C; faults: fade like cell F, +25 % contact resistance,
   a 1 kOhm leak), ten seeds pooled: precision and recall of peer SPC and the forest.
3. RUL: the power-law and exponential particle filters on each cell's SoH history (truth
   plus 0.6 % noise, the SoH estimator's error): 90 % interval coverage of the truth's cycles
   to 80 % at 30, 50 and 70 % of life, alpha-lambda accuracy (alpha = 0.2: median RUL within
   20 % of the true RUL) and the interval's width.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.analytics.conftest import ageing_truth, isc_traces  # noqa: E402

from evota.analytics.anomalies import fleet_screen, isc_screen, ocv_slope  # noqa: E402
from evota.analytics.faults import faulted_string, fleet_features  # noqa: E402
from evota.analytics.identify import fit_cell_model  # noqa: E402
from evota.analytics.rul import RulFilter  # noqa: E402
from evota.analytics.soh import CapacityModel, checkup_curve, incremental_capacity, pulse_resistance  # noqa: E402
from evota.analytics.timeseries import (  # noqa: E402
    parse_capacity_labels,
    parse_characterization,
    parse_checkups,
    read_csv,
)

FIXTURES = ROOT / "tests" / "analytics" / "fixtures"
CELLS = "ABCDEF"
V_NOISE, I_NOISE = 0.002, 0.010


def soh_benchmark() -> None:
    checkups = parse_checkups(read_csv(FIXTURES / "ageing.csv.gz"))
    labels = parse_capacity_labels(read_csv(FIXTURES / "ageing_truth.csv"))
    for noise in (0.0, 1.0):
        rng = np.random.default_rng(6)
        curves = {}
        for key in sorted(checkups):
            c, p = checkups[key]["charge"], checkups[key]["pulse"]
            r = pulse_resistance(
                p.time_s,
                p.current_a + noise * rng.normal(0, I_NOISE, p.time_s.size),
                p.voltage_v + noise * rng.normal(0, V_NOISE, p.time_s.size),
                capacity_ah=5.0,
            )
            inc = -0.5 * (c.current_a[1:] + c.current_a[:-1]) * np.diff(c.time_s)
            soc = 0.15 + np.concatenate([[0.0], np.cumsum(inc)]) / 3600 / labels[key]
            w = (soc >= 0.3) & (soc <= 0.8)
            n = int(w.sum())
            curves[key] = checkup_curve(
                c.time_s[w],
                c.current_a[w] + noise * rng.normal(0, I_NOISE, n),
                c.voltage_v[w] + noise * rng.normal(0, V_NOISE, n),
                r,
            )
        errs, inside = [], []
        t0 = time.perf_counter()
        print(f"\nSoH, leave one cell out, {'2 mV / 10 mA noise' if noise else 'noise-free'}")
        print(f"{'held out':>8} {'MAE %':>6} {'max %':>6} {'bias %':>7} {'in 95 %':>8} {'std scale':>9}")
        for held in CELLS:
            train = [k for k in curves if k[0] != held]
            model = CapacityModel.train(
                [curves[k] for k in train],
                [labels[k] for k in train],
                reference_capacity_ah=5.1,
                groups=[k[0] for k in train],
            )
            test = sorted(k for k in curves if k[0] == held)
            e = np.array(
                [(model.estimate(curves[k]).capacity_ah - labels[k]) / labels[(held, 0)] for k in test]
            )
            s = np.array([model.estimate(curves[k]).std_ah / labels[(held, 0)] for k in test])
            errs.extend(e)
            inside.extend(np.abs(e) <= 1.96 * s)
            print(
                f"{held:>8} {100 * np.mean(np.abs(e)):6.2f} {100 * np.max(np.abs(e)):6.2f} "
                f"{100 * np.mean(e):7.2f} {100 * np.mean(np.abs(e) <= 1.96 * s):7.0f}% {model.std_scale:9.2f}"
            )
        a = np.asarray(errs)
        print(
            f"{'all':>8} {100 * np.mean(np.abs(a)):6.2f} {100 * np.max(np.abs(a)):6.2f} "
            f"{100 * np.mean(a):7.2f} {100 * np.mean(inside):7.0f}%   "
            f"RMSE {100 * np.sqrt(np.mean(a**2)):.2f} %, "
            f"{len(a)} check-ups, {time.perf_counter() - t0:.0f} s"
        )
    rng = np.random.default_rng(8)
    worst = 0.0
    truth = ageing_truth()
    rhos = []
    for cell in CELLS:
        keys = sorted(k for k in checkups if k[0] == cell)
        pulses = [checkups[k]["pulse"] for k in keys]
        clean = np.array(
            [pulse_resistance(p.time_s, p.current_a, p.voltage_v, capacity_ah=5.0).r_1s_ohm for p in pulses]
        )
        noisy = np.array(
            [
                pulse_resistance(
                    p.time_s,
                    p.current_a + rng.normal(0, I_NOISE, p.time_s.size),
                    p.voltage_v + rng.normal(0, V_NOISE, p.time_s.size),
                    capacity_ah=5.0,
                ).r_1s_ohm
                for p in pulses
            ]
        )
        worst = max(worst, float(np.max(np.abs((noisy / noisy[0]) / (clean / clean[0]) - 1))))
        peaks = []
        for k in keys:
            c = checkups[k]["charge"]
            r = pulse_resistance(
                checkups[k]["pulse"].time_s,
                checkups[k]["pulse"].current_a,
                checkups[k]["pulse"].voltage_v,
                capacity_ah=5.0,
            )
            vg, ic = incremental_capacity(checkup_curve(c.time_s, c.current_a, c.voltage_v, r))
            inside_v = (vg > 3.72) & (vg < 4.02)
            peaks.append(vg[int(np.argmax(np.where(inside_v, ic, -np.inf)))])
        lli = truth["lli_pct"][truth["cell"] == cell]
        rhos.append(float(np.corrcoef(np.argsort(np.argsort(lli)), np.argsort(np.argsort(peaks)))[0, 1]))
        if cell in "AF":
            print(f"cell {cell}: R_1s growth by the last check-up {clean[-1] / clean[0]:.2f}x (noise-free)")
    print(f"R_1s growth from noisy pulses vs noise-free: worst error {100 * worst:.1f} % over all check-ups")
    print(f"IC peak voltage vs PyBaMM LLI, Spearman per cell: {', '.join(f'{r:.2f}' for r in rhos)}")


def anomaly_benchmark() -> None:
    model = fit_cell_model(
        parse_characterization(read_csv(FIXTURES / "characterization.csv.gz")),
        name="M50T",
        voltage_limits_v=(2.5, 4.4),
    )
    row = int(np.argmin(np.abs(model.temperature_c - 25.0)))
    t, by_soc = isc_traces()
    print("\nInternal shorts, 12-cell string at rest, screened hourly: hours to the first flag")
    print(
        f"{'R_isc':>7} " + " ".join(f"{'SoC ' + format(s, '.0%'):>9}" for s in sorted(by_soc, reverse=True))
    )
    false_cells = 0
    screened = 0
    for r_isc in (100.0, 300.0, 1000.0, 3000.0, 10000.0, float("inf")):
        cells = []
        for soc0 in sorted(by_soc, reverse=True):
            traces = by_soc[soc0]
            seeds = range(20) if np.isinf(r_isc) else range(1)
            first: float | None = None
            for seed in seeds:
                slope0 = ocv_slope(model.ocv_soc, model.ocv_v[row], float(traces[float("inf")][0]))
                shorts = {} if np.isinf(r_isc) else {4: r_isc}
                v = faulted_string(
                    traces,
                    n_cells=12,
                    shorts=shorts,
                    ocv_slope_v=slope0,
                    rng=np.random.default_rng(seed + int(min(r_isc, 1e6))),
                )
                hours = int(t[v.shape[0] - 1] // 3600)
                for h in range(1, hours + 1):
                    k = int(np.searchsorted(t, h * 3600.0, side="right"))
                    slope = ocv_slope(model.ocv_soc, model.ocv_v[row], float(np.median(v[k - 1])))
                    res = isc_screen(t[:k], v[:k], np.zeros(k), ocv_slope_v=slope, capacity_ah=5.0)
                    others = np.delete(res.flagged, 4) if shorts else res.flagged
                    false_cells += int(others.sum())
                    screened += others.size
                    if shorts and first is None and res.flagged[4]:
                        first = float(h)
            cells.append("-" if np.isinf(r_isc) else (f"{first:.0f} h" if first is not None else "> 72 h"))
        label = "none" if np.isinf(r_isc) else f"{r_isc:g}"
        print(f"{label:>7} " + " ".join(f"{c:>9}" for c in cells))
    print(
        f"false flags on healthy cells: {false_cells} of {screened} hourly cell screenings "
        f"(20 healthy strings per SoC, and the 11 healthy cells of each faulted one)"
    )

    checkups = parse_checkups(read_csv(FIXTURES / "ageing.csv.gz"))
    truth = ageing_truth()

    def trajectory(cell: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = truth["cell"] == cell
        n = truth["cycle"][rows]
        r = np.array(
            [
                pulse_resistance(p.time_s, p.current_a, p.voltage_v, capacity_ah=5.0).r_1s_ohm
                for p in (checkups[(cell, int(c))]["pulse"] for c in n)
            ]
        )
        return n, truth["soh"][rows], r / r[0]

    n_c, soh_c, g_c = trajectory("C")
    n_f, soh_f, _ = trajectory("F")
    keep = n_c <= n_f[-1]
    stats = {m: [0, 0] for m in ("spc", "if")}
    per_kind = {m: {k: 0 for k in ("fade", "resistance", "short")} for m in ("spc", "if")}
    faulty = 0
    kinds_total = {k: 0 for k in ("fade", "resistance", "short")}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        fleet = fleet_features(
            n_c[keep],
            soh_c[keep],
            g_c[keep],
            np.interp(n_c[keep], n_f, soh_f),
            n_cells=600,
            fault_share=0.05,
            rng=rng,
        )
        screen = fleet_screen(fleet.features, fleet.ages, rng)
        labels = np.array(fleet.fault)
        faulty += int(np.sum(labels != ""))
        for k in kinds_total:
            kinds_total[k] += int(np.sum(labels == k))
        for m, flags in (("spc", screen.spc), ("if", screen.isoforest)):
            stats[m][0] += int(np.sum(flags & (labels != "")))
            stats[m][1] += int(flags.sum())
            for k in kinds_total:
                per_kind[m][k] += int(np.sum(flags & (labels == k)))
    print("\nFleet of 600 cells x 10 seeds, 5 % faulty")
    for m, name in (("spc", "peer SPC (|z| > 3.5)"), ("if", "isolation forest (top 5 %)")):
        tp, flagged = stats[m]
        kinds = ", ".join(f"{k} {per_kind[m][k]}/{kinds_total[k]}" for k in kinds_total)
        print(f"{name:>27}: precision {tp / flagged:.2f}, recall {tp / faulty:.2f} ({kinds})")


def rul_benchmark() -> None:
    truth = ageing_truth()
    for law in ("power", "exponential"):
        print(f"\nRUL, {law} law: 90 % interval of cycles to 80 % SoH (truth in brackets)")
        hits = {0.3: [], 0.5: [], 0.7: []}
        accurate = {0.3: [], 0.5: [], 0.7: []}
        for cell in CELLS:
            rows = truth["cell"] == cell
            n, soh = truth["cycle"][rows], truth["soh"][rows]
            eol = float(np.interp(0.8, soh[::-1], n[::-1])) if soh[-1] < 0.8 else None
            y = soh + np.random.default_rng(3).normal(0, 0.006, soh.size)
            cells = []
            for share in hits:
                seen = n <= share * (eol if eol is not None else n[-1])
                est = RulFilter(law, np.random.default_rng(1)).fit_history(
                    n[seen], y[seen], np.full(seen.sum(), 0.006)
                )
                if eol is not None:
                    hits[share].append(est.eol_p05 <= eol <= est.eol_p95)
                    true_rul = eol - est.cycle
                    accurate[share].append(abs(est.rul_p50 - true_rul) <= 0.2 * true_rul)
                cells.append(f"{est.eol_p05:4.0f}-{est.eol_p95:<5.0f}")
            print(
                f"  cell {cell} [{'> 400' if eol is None else format(eol, '.0f'):>5}]: "
                + "  ".join(f"at {int(100 * s)} %: {c}" for s, c in zip(hits, cells, strict=True))
            )
        for share in hits:
            print(
                f"  at {int(100 * share)} % of life: truth inside in {sum(hits[share])}/{len(hits[share])}, "
                f"alpha-lambda (alpha 0.2) met in {sum(accurate[share])}/{len(accurate[share])}"
            )


def main() -> None:
    t0 = time.perf_counter()
    soh_benchmark()
    anomaly_benchmark()
    rul_benchmark()
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
