"""The cell model file: a round trip that loses nothing, and a clear error for each bad field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from evota.analytics.cellmodel import CellModel, arrhenius_factor, fit_activation_energy
from evota.errors import InputError


def test_round_trip_through_json_keeps_every_table(cell_model: CellModel) -> None:
    again = CellModel.from_dict(json.loads(json.dumps(cell_model.to_dict())))
    assert again.to_dict() == cell_model.to_dict()
    assert np.allclose(again.ocv_v, cell_model.ocv_v, atol=1e-6)
    assert np.allclose(again.rc.tau2_s, cell_model.rc.tau2_s, atol=1e-4)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        d[last] = value

    return f


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        del d[last]

    return f


def _reverse_ocv(d: dict[str, Any]) -> None:
    d["ocv"]["voltage_v"][0] = d["ocv"]["voltage_v"][0][::-1]


def _negative_r0(d: dict[str, Any]) -> None:
    d["rc"]["r0_ohm"][1][2] = -0.01


BAD_MODELS = {
    "foreign format": (_set("format", "ecm-tool"), "not an evota cell model"),
    "future version": (_set("version", 2), "cell model version 2 is not supported"),
    "missing ocv": (_drop("ocv"), "missing field 'ocv'"),
    "missing r1": (_drop("rc.r1_ohm"), "missing field 'rc.r1_ohm'"),
    "OCV falls with SoC": (_reverse_ocv, "OCV must rise strictly with SoC"),
    "negative R0": (_negative_r0, "rc.r0_ohm must be positive everywhere"),
    "short table": (lambda d: d["rc"]["tau1_s"].pop(), "rc.tau1_s must be 4 x 10"),
    "unsorted temperatures": (_set("temperature_c", [25, 0, 10, 40]), "temperature_c must be at least two"),
    "text where numbers go": (_set("rc.soc", ["low", "high"]), "rc.soc must be a list of numbers"),
    "bad voltage limits": (_set("voltage_limits_v", [4.4, 2.5]), "voltage limits must satisfy"),
    "absurd activation energy": (_set("activation_energy_j_mol.r0", -5.0), "activation energy for r0"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS), ids=list(BAD_MODELS))
def test_bad_model_files_are_refused_naming_the_field(cell_model: CellModel, case: str) -> None:
    corrupt, message = BAD_MODELS[case]
    d = copy.deepcopy(cell_model.to_dict())
    corrupt(d)
    with pytest.raises(InputError) as e:
        CellModel.from_dict(d)
    assert message in e.value.message


@pytest.mark.parametrize(
    ("ea", "temp", "ref", "expected"),
    [
        (0.0, -10.0, 25.0, 1.0),
        (20_000.0, 0.0, 25.0, 2.0926),  # R0 about x2.1 at 0 °C for 20 kJ/mol
        (20_000.0, -10.0, 25.0, 2.924),
        (35_000.0, 40.0, 25.0, 0.5085),
    ],
)
def test_arrhenius_factor_table(ea: float, temp: float, ref: float, expected: float) -> None:
    assert float(arrhenius_factor(ea, np.array([temp]), ref)[0]) == pytest.approx(expected, rel=2e-3)


def test_activation_energy_is_recovered_from_an_arrhenius_table_and_clipped_when_not_activated() -> None:
    temps = np.array([0.0, 10.0, 25.0, 40.0])
    table = 0.01 * arrhenius_factor(30_000.0, temps, 25.0)[:, None] * np.ones((1, 5))
    assert fit_activation_energy(temps, table) == pytest.approx(30_000.0, rel=1e-6)
    assert fit_activation_energy(temps, table[::-1]) == 0.0
