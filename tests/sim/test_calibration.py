"""Calibrations: the image format, its strict parsing, and what each preset changes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from evota.errors import InputError
from evota.sim import presets
from evota.sim.bench import dc_charge
from evota.sim.bms import T_GRID, CalibrationRows
from evota.sim.calibration import MAX_IMAGE_BYTES, Balancing, Calibration, SocEstimator

ALL = [
    presets.factory_bms(),
    presets.factory_tms(),
    presets.factory_vcms(),
    presets.good_soc_improvement(),
    presets.bad_cold_calibration(),
    presets.balancing_threshold_too_high(),
    presets.tms_preconditioning(),
    *presets.needs_newer_vcms(),
]


@pytest.mark.parametrize("cal", ALL, ids=lambda c: c.name)
def test_every_preset_round_trips_through_its_image(cal: Calibration) -> None:
    image = cal.to_image_bytes()
    assert Calibration.from_image_bytes(image) == cal
    assert Calibration.from_image_bytes(image).to_image_bytes() == image  # canonical bytes
    doc = json.loads(image)
    assert doc["evota_calibration"] == 1 and doc["ecu_type"] == cal.ecu_type


def test_releases_differ_from_each_other_in_their_bytes() -> None:
    images = {cal.to_image_bytes() for cal in ALL}
    assert len(images) == len(ALL)


def _doc(**changes: Any) -> dict[str, Any]:
    doc = presets.factory_bms().to_dict()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = doc
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
    return doc


MALFORMED: dict[str, tuple[bytes, str]] = {
    "not utf-8": (b"\xff\xfe{", "not UTF-8"),
    "not json": (b"{calibration", "not JSON"),
    "not an object": (b"[1, 2]", "expected a JSON object"),
    "no schema tag": (json.dumps({"ecu_type": "bms"}).encode(), "not an evota calibration"),
    "future schema": (json.dumps(_doc(evota_calibration=2)).encode(), "schema version 2"),
    "schema as bool": (json.dumps(_doc(evota_calibration=True)).encode(), "schema version True"),
    "unknown ecu": (json.dumps(_doc(ecu_type="inverter")).encode(), "ecu_type must be one of"),
    "section of another ecu": (
        json.dumps(_doc(thermal=presets.factory_tms().to_dict()["thermal"])).encode(),
        "unknown field(s) thermal",
    ),
    "missing section": (json.dumps(_doc(balancing=KeyError)).encode(), "missing section 'balancing'"),
    "missing field": (json.dumps(_doc(soc_estimator__capacity_ah=KeyError)).encode(), "missing capacity_ah"),
    "unknown field": (json.dumps(_doc(balancing__bleed_a=0.1)).encode(), "unknown bleed_a"),
    "string number": (json.dumps(_doc(balancing__threshold_mv="15")).encode(), "must be a number"),
    "bool number": (json.dumps(_doc(balancing__threshold_mv=True)).encode(), "must be a number"),
    "number flag": (json.dumps(_doc(soc_estimator__full_charge_reset=1)).encode(), "true or false"),
    "table not a list": (json.dumps(_doc(charge_limits__temp_c=5)).encode(), "list of numbers"),
    "nan": (json.dumps(_doc(balancing__threshold_mv=float("nan"))).encode(), "finite"),
    "falling axis": (
        json.dumps(_doc(charge_limits__temp_c=[0.0, -5.0] + [float(t) for t in range(10, 130, 10)])).encode(),
        "rise strictly",
    ),
    "ocv not monotone": (
        json.dumps(
            _doc(
                soc_estimator__ocv_v=[
                    3.0,
                    3.5,
                    3.4,
                    *presets.factory_bms().to_dict()["soc_estimator"]["ocv_v"][3:],
                ]
            )
        ).encode(),
        "rise strictly",
    ),
    "out of range": (json.dumps(_doc(charge_limits__max_cell_v=5.2)).encode(), "max_cell_v must be in"),
    "table lengths": (json.dumps(_doc(charge_limits__max_c_rate=[0.1, 0.2])).encode(), "one value per point"),
    "name not a string": (json.dumps(_doc(name=7)).encode(), "'name' must be a string"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_malformed_images_are_input_errors_that_say_why(case: str) -> None:
    data, message = MALFORMED[case]
    with pytest.raises(InputError) as err:
        Calibration.from_image_bytes(data)
    assert message in str(err.value)


def test_oversized_images_are_refused_before_parsing() -> None:
    with pytest.raises(InputError, match="exceeds"):
        Calibration.from_image_bytes(b" " * (MAX_IMAGE_BYTES + 1))


def test_constructors_check_sections_and_values() -> None:
    bms = presets.factory_bms()
    with pytest.raises(ValueError, match="needs a 'balancing'"):
        dataclasses.replace(bms, balancing=None)
    with pytest.raises(ValueError, match="must not carry a 'thermal'"):
        dataclasses.replace(bms, thermal=presets.factory_tms().thermal)
    with pytest.raises(ValueError, match="threshold_mv"):
        Balancing(threshold_mv=0.0, min_cell_v=3.9)
    soc = bms.soc
    assert soc is not None
    with pytest.raises(ValueError, match="span 0 to 100"):
        dataclasses.replace(soc, ocv_soc_pct=tuple(s / 2 for s in soc.ocv_soc_pct))
    assert isinstance(soc, SocEstimator)


def test_the_bad_cold_calibration_is_the_factory_one_when_warm() -> None:
    rows = CalibrationRows("bms")
    factory, bad = rows.row(presets.factory_bms()), rows.row(presets.bad_cold_calibration())
    warm = T_GRID >= 10.0
    for table in ("c_rate", "comp_v"):
        np.testing.assert_array_equal(rows.table[table][factory, warm], rows.table[table][bad, warm])
        assert np.any(rows.table[table][factory, ~warm] != rows.table[table][bad, ~warm])
    np.testing.assert_array_equal(rows.table["soc_of_v"][factory], rows.table["soc_of_v"][bad])


def test_dc_charging_is_slower_in_the_cold_without_preconditioning() -> None:
    factory = presets.factory_bms()
    warm = dc_charge(factory, temperature_c=25.0)
    cold = dc_charge(factory, temperature_c=-10.0)
    assert cold.mean_kw < warm.mean_kw / 5.0
    assert warm.plated_ah == 0.0 and cold.plated_ah == 0.0
    assert warm.max_temp_c < 55.0


def test_the_bad_cold_charge_table_plates_a_cold_pack_and_heats_it() -> None:
    bad, factory = presets.bad_cold_calibration(), presets.factory_bms()
    for temperature in (-10.0, 0.0):
        good_run, bad_run = (
            dc_charge(factory, temperature_c=temperature),
            dc_charge(bad, temperature_c=temperature),
        )
        assert bad_run.plated_ah > 1.0 and good_run.plated_ah == 0.0
        assert bad_run.max_temp_c > good_run.max_temp_c + 5.0
    assert dc_charge(bad, temperature_c=20.0) == dc_charge(factory, temperature_c=20.0)


def test_the_fast_dc_bms_charges_faster_only_when_the_vcms_asks_for_more() -> None:
    bms, vcms = presets.needs_newer_vcms()
    assert vcms.vehicle is not None and vcms.vehicle.dc_max_kw > 100.0
    old = dc_charge(presets.factory_bms(), temperature_c=25.0, charger_kw=150.0)
    new = dc_charge(bms, temperature_c=25.0, charger_kw=vcms.vehicle.dc_max_kw)
    limited = dc_charge(bms, temperature_c=25.0, charger_kw=100.0)
    assert new.energy_kwh > old.energy_kwh * 1.1
    assert limited.energy_kwh < new.energy_kwh
