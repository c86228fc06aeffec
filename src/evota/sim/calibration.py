"""Calibrations: the data inside a firmware image that changes how an ECU behaves.

A calibration is one JSON document, and the image *is* that document (UTF-8, sorted
keys, no whitespace), so the image's hashes in the repository are the calibration's:

    {"evota_calibration": 1, "ecu_type": "bms", "name": "bms-factory", "version": "2.4.0",
     "notes": "...", "soc_estimator": {...}, "charge_limits": {...}, "balancing": {...}}

Which sections an image carries follows from its ECU type:

* bms: `soc_estimator` (the OCV table the BMS believes at 25 °C, the temperature
  compensation it subtracts from a rested voltage before inverting that table, the
  capacity it believes, and when it trusts a rest enough to reset its Coulomb count to
  the OCV: once after a rest time that may be longer in the cold, and once more after a
  long rest, when it wakes to check the cells), `charge_limits` (continuous charge
  C-rate by cell temperature, a taper at high SoC, the constant-voltage limit, the
  derate after a fault) and `balancing` (threshold in mV and the minimum cell voltage
  at which it balances).
* tms: `thermal` (pre-conditioning before departure, heating while plugged in, the
  heater's power and the cooling threshold).
* vcms: `vehicle` (AC and DC charge targets, when a DC-using van stops to charge, the DC
  power it requests, the share of braking energy it regenerates).

Reading is strict: unknown keys, missing keys, wrong types, a table whose axis does not
rise, or values outside physical ranges are `InputError`s naming the field, because a
calibration that half-parses would make a simulated fleet lie. The section constructors
raise `ValueError` (misuse by code); `from_image_bytes`/`from_dict` turn that into
`InputError` (bad data from outside). Presets live in `evota.sim.presets`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

from evota.errors import InputError

__all__ = [
    "ECU_TYPES",
    "MAX_IMAGE_BYTES",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "Balancing",
    "Calibration",
    "ChargeLimits",
    "SocEstimator",
    "ThermalConditioning",
    "VehicleControl",
]

SCHEMA_KEY = "evota_calibration"
SCHEMA_VERSION = 1
ECU_TYPES = ("bms", "tms", "vcms")
MAX_IMAGE_BYTES = 1 << 20  # a calibration is a few kB; refuse to parse anything huge


def _table(name: str, xs: tuple[float, ...], ys: tuple[float, ...], *, lo: float, hi: float) -> None:
    if len(xs) < 2 or len(xs) != len(ys):
        raise ValueError(f"{name}: needs at least two points and one value per point")
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        raise ValueError(f"{name}: every value must be a finite number")
    if any(b <= a for a, b in itertools.pairwise(xs)):
        raise ValueError(f"{name}: the axis must rise strictly")
    if any(not lo <= y <= hi for y in ys):
        raise ValueError(f"{name}: values must lie in [{lo}, {hi}]")


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value}")


@dataclasses.dataclass(frozen=True)
class SocEstimator:
    """What the BMS believes about the cell, and when it trusts a voltage as an OCV."""

    ocv_soc_pct: tuple[float, ...]
    ocv_v: tuple[float, ...]
    temp_comp_c: tuple[float, ...]  # the BMS subtracts comp_mv(T) from a rested voltage
    temp_comp_mv: tuple[float, ...]
    capacity_ah: float
    rest_min: float  # rest needed before an OCV reset, at or above cold_below_c
    cold_rest_min: float  # and below it
    cold_below_c: float
    second_reset_min: float  # a second reset when the rest has lasted this long (0: none)
    reset_gain: float  # share of the OCV estimate taken at a reset (1: replace the count)
    full_charge_reset: bool  # set 100 % when a charge ends at the voltage limit

    def __post_init__(self) -> None:
        _table("soc_estimator.ocv", self.ocv_soc_pct, self.ocv_v, lo=2.0, hi=5.0)
        if self.ocv_soc_pct[0] > 0.0 or self.ocv_soc_pct[-1] < 100.0:
            raise ValueError("soc_estimator.ocv: the table must span 0 to 100 % SoC")
        if any(b <= a for a, b in itertools.pairwise(self.ocv_v)):
            raise ValueError("soc_estimator.ocv: the voltage must rise strictly with SoC (it is inverted)")
        _table("soc_estimator.temp_comp", self.temp_comp_c, self.temp_comp_mv, lo=-200.0, hi=200.0)
        _range("soc_estimator.capacity_ah", self.capacity_ah, 1.0, 5000.0)
        _range("soc_estimator.rest_min", self.rest_min, 1.0, 24 * 60.0)
        _range("soc_estimator.cold_rest_min", self.cold_rest_min, 1.0, 24 * 60.0)
        _range("soc_estimator.cold_below_c", self.cold_below_c, -40.0, 40.0)
        _range("soc_estimator.second_reset_min", self.second_reset_min, 0.0, 48 * 60.0)
        _range("soc_estimator.reset_gain", self.reset_gain, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ChargeLimits:
    """Continuous charge current the BMS allows, by cell temperature (0 outside the table)."""

    temp_c: tuple[float, ...]
    max_c_rate: tuple[float, ...]
    taper_above_soc_pct: float  # above this SoC the limit falls linearly ...
    taper_at_full: float  # ... to this share of it at 100 %
    max_cell_v: float  # constant-voltage phase at this cell voltage
    fault_derate: float  # share of the limit for the retry after a charge fault

    def __post_init__(self) -> None:
        _table("charge_limits.c_rate", self.temp_c, self.max_c_rate, lo=0.0, hi=5.0)
        _range("charge_limits.taper_above_soc_pct", self.taper_above_soc_pct, 0.0, 100.0)
        _range("charge_limits.taper_at_full", self.taper_at_full, 0.0, 1.0)
        _range("charge_limits.max_cell_v", self.max_cell_v, 3.5, 4.4)
        _range("charge_limits.fault_derate", self.fault_derate, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Balancing:
    threshold_mv: float  # bleed every cell more than this above the lowest
    min_cell_v: float  # only when the pack's mean cell voltage is above this

    def __post_init__(self) -> None:
        _range("balancing.threshold_mv", self.threshold_mv, 1.0, 500.0)
        _range("balancing.min_cell_v", self.min_cell_v, 3.0, 4.4)


@dataclasses.dataclass(frozen=True)
class ThermalConditioning:
    """The TMS: pre-conditioning before departure, heating while plugged, cooling."""

    precondition: bool  # heat before a scheduled departure (from the grid, when plugged)
    precondition_below_c: float
    precondition_target_c: float
    lead_min: float  # how long before departure it starts
    charge_heating: bool  # heat while plugged in and charging
    charge_heat_below_c: float
    charge_heat_target_c: float
    heater_kw: float
    cool_above_c: float

    def __post_init__(self) -> None:
        _range("thermal.precondition_below_c", self.precondition_below_c, -40.0, 40.0)
        _range("thermal.precondition_target_c", self.precondition_target_c, -40.0, 45.0)
        _range("thermal.lead_min", self.lead_min, 0.0, 600.0)
        _range("thermal.charge_heat_below_c", self.charge_heat_below_c, -40.0, 40.0)
        _range("thermal.charge_heat_target_c", self.charge_heat_target_c, -40.0, 45.0)
        _range("thermal.heater_kw", self.heater_kw, 0.0, 20.0)
        _range("thermal.cool_above_c", self.cool_above_c, 15.0, 60.0)


@dataclasses.dataclass(frozen=True)
class VehicleControl:
    """The VCMS: charge targets and requests, and regeneration."""

    ac_target_soc_pct: float
    dc_target_soc_pct: float
    dc_trigger_soc_pct: float  # a DC-using van tops up at its midday stop below this
    dc_max_kw: float
    dc_max_minutes: float  # the longest a driver waits at a DC charger
    regen_fraction: float  # share of the available braking energy regenerated

    def __post_init__(self) -> None:
        _range("vehicle.ac_target_soc_pct", self.ac_target_soc_pct, 20.0, 100.0)
        _range("vehicle.dc_target_soc_pct", self.dc_target_soc_pct, 20.0, 100.0)
        _range("vehicle.dc_trigger_soc_pct", self.dc_trigger_soc_pct, 0.0, 100.0)
        _range("vehicle.dc_max_kw", self.dc_max_kw, 1.0, 1000.0)
        _range("vehicle.dc_max_minutes", self.dc_max_minutes, 5.0, 240.0)
        _range("vehicle.regen_fraction", self.regen_fraction, 0.0, 1.0)


_SECTIONS: dict[str, tuple[tuple[str, str, type[Any]], ...]] = {
    # ecu type -> (json key, attribute, section class)
    "bms": (
        ("soc_estimator", "soc", SocEstimator),
        ("charge_limits", "charge", ChargeLimits),
        ("balancing", "balancing", Balancing),
    ),
    "tms": (("thermal", "thermal", ThermalConditioning),),
    "vcms": (("vehicle", "vehicle", VehicleControl),),
}
_ALL_SECTIONS = {attr: key for specs in _SECTIONS.values() for key, attr, _ in specs}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """One ECU's calibration; the sections present are exactly its ECU type's."""

    ecu_type: str
    name: str
    version: str
    soc: SocEstimator | None = None
    charge: ChargeLimits | None = None
    balancing: Balancing | None = None
    thermal: ThermalConditioning | None = None
    vehicle: VehicleControl | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.ecu_type not in _SECTIONS:
            raise ValueError(f"ecu_type must be one of {', '.join(ECU_TYPES)}, not {self.ecu_type!r}")
        if not self.name or not self.version:
            raise ValueError("a calibration needs a name and a version")
        wanted = {attr for _, attr, _ in _SECTIONS[self.ecu_type]}
        for attr, key in _ALL_SECTIONS.items():
            present = getattr(self, attr) is not None
            if present != (attr in wanted):
                need = "needs" if attr in wanted else "must not carry"
                raise ValueError(f"a {self.ecu_type} calibration {need} a {key!r} section")

    # --- the wire ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            SCHEMA_KEY: SCHEMA_VERSION,
            "ecu_type": self.ecu_type,
            "name": self.name,
            "version": self.version,
            "notes": self.notes,
        }
        for key, attr, _ in _SECTIONS[self.ecu_type]:
            section = dataclasses.asdict(getattr(self, attr))
            d[key] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return d

    def to_image_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_image_bytes(cls, data: bytes) -> Calibration:
        """Parse an image; anything that is not a valid calibration is an `InputError`."""
        if len(data) > MAX_IMAGE_BYTES:
            raise InputError(f"calibration image of {len(data)} bytes exceeds {MAX_IMAGE_BYTES}")
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError("calibration image is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise InputError(f"calibration image is not JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> Calibration:
        if not isinstance(doc, Mapping):
            raise InputError("calibration: expected a JSON object")
        if SCHEMA_KEY not in doc:
            raise InputError(f"not an evota calibration (no {SCHEMA_KEY!r} key)")
        if doc[SCHEMA_KEY] != SCHEMA_VERSION or isinstance(doc[SCHEMA_KEY], bool):
            raise InputError(
                f"calibration schema version {doc[SCHEMA_KEY]!r} is not supported "
                f"(this evota reads {SCHEMA_VERSION})"
            )
        ecu_type = doc.get("ecu_type")
        if ecu_type not in _SECTIONS:
            raise InputError(f"calibration: ecu_type must be one of {', '.join(ECU_TYPES)}, not {ecu_type!r}")
        specs = _SECTIONS[str(ecu_type)]
        allowed = {SCHEMA_KEY, "ecu_type", "name", "version", "notes"} | {key for key, _, _ in specs}
        unknown = sorted(set(map(str, doc)) - allowed)
        if unknown:
            raise InputError(f"calibration ({ecu_type}): unknown field(s) {', '.join(unknown)}")
        sections: dict[str, Any] = {}
        for key, attr, section_cls in specs:
            if key not in doc:
                raise InputError(f"calibration ({ecu_type}): missing section {key!r}")
            sections[attr] = _section(section_cls, key, doc[key])
        try:
            return cls(
                ecu_type=str(ecu_type),
                name=_string(doc, "name"),
                version=_string(doc, "version"),
                notes=_string(doc, "notes", default=""),
                **sections,
            )
        except ValueError as e:
            raise InputError(f"calibration: {e}") from None


def _string(doc: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"calibration: {key!r} must be a string")
    return value


def _section(section_cls: type[Any], key: str, raw: object) -> Any:
    if not isinstance(raw, Mapping):
        raise InputError(f"calibration: {key!r} must be an object")
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    missing = sorted(set(fields) - set(raw))
    unknown = sorted(set(map(str, raw)) - set(fields))
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else []
        )
        raise InputError(f"calibration: {key!r}: {'; '.join(problems)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        value, where = raw[name], f"{key}.{name}"
        if f.type == "bool":
            if not isinstance(value, bool):
                raise InputError(f"calibration: {where} must be true or false")
            values[name] = value
        elif f.type == "float":
            values[name] = _number(value, where)
        else:  # tuple[float, ...]
            if not isinstance(value, list):
                raise InputError(f"calibration: {where} must be a list of numbers")
            values[name] = tuple(_number(v, where) for v in value)
    try:
        return section_cls(**values)
    except ValueError as e:
        raise InputError(f"calibration: {e}") from None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"calibration: {where} must be a number")
    if not math.isfinite(value):
        raise InputError(f"calibration: {where} must be finite")
    return float(value)
