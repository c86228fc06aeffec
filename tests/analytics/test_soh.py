"""SoH on the PyBaMM ageing set: capacity of cells the model never saw, its intervals, IC
features against PyBaMM's lithium loss, resistance growth, and refusals of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from evota.analytics.cellmodel import CellModel
from evota.analytics.soh import (
    CapacityModel,
    ChargeCurve,
    PulseResistance,
    checkup_curve,
    incremental_capacity,
    pulse_resistance,
    temperature_factor,
)
from evota.analytics.timeseries import Segment, parse_characterization, read_csv
from evota.errors import InputError

from .conftest import FIXTURES, ageing_truth

Ageing = tuple[dict[tuple[str, int], dict[str, Segment]], dict[tuple[str, int], float]]
V_NOISE, I_NOISE = 0.002, 0.010  # sensor noise added to the physics data, 1 sigma


def window(charge: Segment, capacity_ah: float, lo: float = 0.3, hi: float = 0.8) -> slice:
    """The samples between lo and hi SoC of a check-up charge (which starts at 15 %)."""
    inc = -0.5 * (charge.current_a[1:] + charge.current_a[:-1]) * np.diff(charge.time_s)
    soc = 0.15 + np.concatenate([[0.0], np.cumsum(inc)]) / 3600 / capacity_ah
    idx = np.flatnonzero((soc >= lo) & (soc <= hi))
    return slice(int(idx[0]), int(idx[-1]) + 1)


def noisy_curves(ageing: Ageing, seed: int) -> dict[tuple[str, int], ChargeCurve]:
    checkups, labels = ageing
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(checkups):
        c, p = checkups[key]["charge"], checkups[key]["pulse"]
        r = pulse_resistance(
            p.time_s,
            p.current_a + rng.normal(0, I_NOISE, p.time_s.size),
            p.voltage_v + rng.normal(0, V_NOISE, p.time_s.size),
            capacity_ah=5.0,
        )
        w = window(c, labels[key])
        n = c.time_s[w].size
        out[key] = checkup_curve(
            c.time_s[w],
            c.current_a[w] + rng.normal(0, I_NOISE, n),
            c.voltage_v[w] + rng.normal(0, V_NOISE, n),
            r,
        )
    return out


@pytest.fixture(scope="module")
def curves(ageing: Ageing) -> dict[tuple[str, int], ChargeCurve]:
    return noisy_curves(ageing, seed=6)


@pytest.mark.parametrize("held_out", ["C", "F"])
def test_capacity_of_an_unseen_cell_from_a_30_to_80_percent_charge(
    held_out: str, ageing: Ageing, curves: dict[tuple[str, int], ChargeCurve]
) -> None:
    """Trained on the five other cells; 2 mV and 10 mA noise on charge and pulse. The issue's
    target is SoH MAE <= 1.0 %; the bound on the 95 % interval's coverage is 85 %."""
    _, labels = ageing
    train = [k for k in curves if k[0] != held_out]
    model = CapacityModel.train(
        [curves[k] for k in train],
        [labels[k] for k in train],
        reference_capacity_ah=5.1,
        groups=[k[0] for k in train],
    )
    test = [k for k in curves if k[0] == held_out]
    fresh = labels[(held_out, 0)]
    est = [model.estimate(curves[k]) for k in test]
    err = np.array([(e.capacity_ah - labels[k]) / fresh for e, k in zip(est, test, strict=True)])
    std = np.array([e.std_ah / fresh for e in est])
    assert np.mean(np.abs(err)) <= 0.010
    assert np.max(np.abs(err)) <= 0.03
    assert np.mean(np.abs(err) <= 1.96 * std) >= 0.85
    assert np.all(std < 0.03)


def test_ic_peak_moves_up_with_lithium_loss(ageing: Ageing) -> None:
    """dQ/dV peak of the IR-corrected C/3 charge against PyBaMM's LLI, per cell (Spearman)."""
    checkups, _ = ageing
    truth = ageing_truth()
    for cell in "ABCDEF":
        rows = truth["cell"] == cell
        peaks = []
        for cycle in truth["cycle"][rows]:
            c, p = checkups[(cell, int(cycle))]["charge"], checkups[(cell, int(cycle))]["pulse"]
            r = pulse_resistance(p.time_s, p.current_a, p.voltage_v, capacity_ah=5.0)
            vg, ic = incremental_capacity(checkup_curve(c.time_s, c.current_a, c.voltage_v, r))
            inside = (vg > 3.72) & (vg < 4.02)
            peaks.append(vg[int(np.argmax(np.where(inside, ic, -np.inf)))])
        rho = spearmanr(truth["lli_pct"][rows], peaks)[0]
        assert rho > 0.6, (cell, rho)


def test_resistance_growth_from_noisy_pulses_is_within_five_percent(ageing: Ageing) -> None:
    checkups, _ = ageing
    rng = np.random.default_rng(8)
    for cell in "CF":
        keys = sorted(k for k in checkups if k[0] == cell)
        clean = [pulse_resistance(*_arrays(checkups[k]["pulse"]), capacity_ah=5.0).r_1s_ohm for k in keys]
        growth_true = np.asarray(clean) / clean[0]
        assert growth_true[-1] > 1.3  # SEI film resistance: the ageing shows in R
        noisy = []
        for k in keys:
            t, i, v = _arrays(checkups[k]["pulse"])
            r = pulse_resistance(
                t, i + rng.normal(0, I_NOISE, t.size), v + rng.normal(0, V_NOISE, t.size), capacity_ah=5.0
            )
            noisy.append(r.r_1s_ohm)
        growth = np.asarray(noisy) / np.mean(noisy[:1])
        assert np.max(np.abs(growth / growth_true - 1)) < 0.05


def _arrays(seg: Segment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return seg.time_s, seg.current_a, seg.voltage_v


def test_temperature_correction_refers_fresh_pulses_to_25_c(cell_model: CellModel) -> None:
    """The fresh ORegan2022 cell's first 1C pulse at 0, 10, 40 °C, corrected with the fitted
    R0 activation energy, against the same pulse at 25 °C: a fresh cell has grown by 1.0x."""
    tests = parse_characterization(read_csv(FIXTURES / "characterization.csv.gz"))
    ea = cell_model.activation_energy_j_mol["r0"]
    r = {
        t: pulse_resistance(*_arrays_char(tests[("hppc", t)]), capacity_ah=5.0).r_1s_ohm
        for t in (0.0, 10.0, 25.0, 40.0)
    }
    bounds = {0.0: 0.10, 10.0: 0.05, 40.0: 0.05}  # measured: -8 %, -3 %, +3 %
    for t, bound in bounds.items():
        assert abs(r[t] * temperature_factor(ea, t, 25.0) / r[25.0] - 1) < bound, t


def _arrays_char(rec: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rec.time_s, rec.current_a, rec.voltage_v  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def small_model(ageing: Ageing, curves: dict[tuple[str, int], ChargeCurve]) -> CapacityModel:
    _, labels = ageing
    keys = [k for k in curves if k[1] % 40 == 0]
    return CapacityModel.train(
        [curves[k] for k in keys],
        [labels[k] for k in keys],
        reference_capacity_ah=5.1,
        reference_r_1s_ohm=0.02,
    )


def _variant(c: ChargeCurve, **changes: object) -> ChargeCurve:
    fields = {"time_s": c.time_s, "current_a": c.current_a, "voltage_v": c.voltage_v,
              "resistance_ohm": c.resistance_ohm, "temperature_c": c.temperature_c}  # fmt: skip
    fields.update(changes)
    return ChargeCurve(**fields)  # type: ignore[arg-type]


BAD_CHARGES = {
    "flipped sign": (
        lambda c: _variant(c, current_a=-c.current_a),
        "positive, which evota reads as discharge",
    ),
    "another C-rate": (lambda c: _variant(c, current_a=2 * c.current_a), "trained at C/3"),
    "another temperature": (lambda c: _variant(c, temperature_c=40.0), "trained at 25 °C"),
    "millivolts": (lambda c: _variant(c, voltage_v=1000 * c.voltage_v), "millivolts"),
    "NaN": (
        lambda c: _variant(c, voltage_v=np.where(np.arange(c.time_s.size) == 5, np.nan, c.voltage_v)),
        "NaN",
    ),
    "unsorted time": (lambda c: _variant(c, time_s=c.time_s[::-1].copy()), "increase strictly"),
    "not constant current": (
        lambda c: _variant(c, current_a=c.current_a * np.linspace(1, 2, c.time_s.size)),
        "constant-current",
    ),
    "too short a window": (
        lambda c: _variant(c, time_s=c.time_s[:40], current_a=c.current_a[:40], voltage_v=c.voltage_v[:40]),
        "the capacity model needs",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CHARGES), ids=list(BAD_CHARGES))
def test_bad_charges_are_refused_with_a_named_error(
    case: str, small_model: CapacityModel, curves: dict[tuple[str, int], ChargeCurve]
) -> None:
    make, message = BAD_CHARGES[case]
    with pytest.raises(InputError, match=message):
        small_model.estimate(make(curves[("C", 100)]))


def test_model_round_trips_and_a_foreign_file_is_refused(
    small_model: CapacityModel, curves: dict[tuple[str, int], ChargeCurve]
) -> None:
    again = CapacityModel.from_dict(json.loads(json.dumps(small_model.to_dict())))
    assert again.estimate(curves[("C", 100)]) == small_model.estimate(curves[("C", 100)])
    with pytest.raises(InputError, match="not an evota SoH model"):
        CapacityModel.from_dict({"format": "evota.cell-model"})
    with pytest.raises(InputError, match="missing field"):
        CapacityModel.from_dict({"format": "evota.soh-model", "version": 1})


def test_resistance_growth_needs_a_temperature_correction_far_from_the_reference(
    small_model: CapacityModel,
) -> None:
    pulse = PulseResistance(0.03, 0.04, 5.0, 3.7)
    assert small_model.resistance_growth(pulse, 25.0) == pytest.approx(1.5)
    with pytest.raises(InputError, match="pass the cell model"):
        small_model.resistance_growth(pulse, 5.0)
    corrected = small_model.resistance_growth(pulse, 5.0, ea_j_mol=22_800.0)
    assert corrected == pytest.approx(1.5 * temperature_factor(22_800.0, 5.0, 25.0))
    assert corrected < 1.5
