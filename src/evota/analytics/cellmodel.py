"""The fitted cell model: a typed, versioned equivalent circuit that round-trips through JSON.

The circuit is OCV(SoC, T) in series with R0 and two RC pairs (R1 || C1, R2 || C2), written
with time constants tau = R * C because those are what a pulse test identifies directly.
Every parameter is a table over temperature (the rows) and SoC (the columns); capacity is a
table over temperature. Outside the fitted temperatures the resistances follow the Arrhenius
law with the activation energies stored here, because a table clamped at its last row would
make a cell at -10 °C look like one at 0 °C (R0 is about 1.5x larger in between).

This module only holds and checks data; it reads no files (the CLI does) and fits nothing
(see `identify`). `from_dict` validates at the edge and raises `InputError`, so a broken or
foreign JSON file is an operator's problem with a clear message, not a traceback.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evota.errors import InputError

__all__ = ["FORMAT", "FORMAT_VERSION", "GAS_CONSTANT", "CellModel", "RcTable"]

FORMAT = "evota.cell-model"
FORMAT_VERSION = 1
GAS_CONSTANT = 8.314462618  # J/(mol K)

FloatArray = NDArray[np.float64]


def _matrix(raw: object, rows: int, cols: int, what: str, *, positive: bool) -> FloatArray:
    try:
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"cell model: {what} must be a table of numbers") from None
    if arr.shape != (rows, cols):
        raise InputError(f"cell model: {what} must be {rows} x {cols} (temperatures x SoC), not {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"cell model: {what} has a value that is not a finite number")
    if positive and np.any(arr <= 0):
        raise InputError(f"cell model: {what} must be positive everywhere")
    return arr


def _axis(raw: object, what: str) -> FloatArray:
    try:
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"cell model: {what} must be a list of numbers") from None
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise InputError(f"cell model: {what} must be at least two finite numbers in increasing order")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class RcTable:
    """R0 and the two RC pairs over (temperature, SoC), in ohm and seconds.

    `fit_rmse_v` is the circuit's own voltage error on each pulse segment it was fitted to:
    the evidence of how well this model follows the cell there, which the SoC filters turn
    into a floor on their reported uncertainty.
    """

    soc: FloatArray
    r0_ohm: FloatArray
    r1_ohm: FloatArray
    tau1_s: FloatArray
    r2_ohm: FloatArray
    tau2_s: FloatArray
    fit_rmse_v: FloatArray


@dataclasses.dataclass(frozen=True, eq=False)
class CellModel:
    """An identified 2RC equivalent-circuit cell (see the module docstring for the shape).

    `activation_energy_j_mol` maps "r0", "r1", "r2" to the Arrhenius activation energy fitted
    across the table's temperatures (used only to extrapolate past them). `fit_report` is
    free-form evidence from the identification (per-temperature voltage RMSE and so on).
    """

    name: str
    temperature_c: FloatArray
    capacity_ah: FloatArray
    ocv_soc: FloatArray
    ocv_v: FloatArray
    rc: RcTable
    activation_energy_j_mol: Mapping[str, float]
    voltage_min_v: float
    voltage_max_v: float
    fit_report: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n_t = self.temperature_c.size
        if self.capacity_ah.shape != (n_t,) or np.any(self.capacity_ah <= 0):
            raise InputError("cell model: capacity_ah needs one positive value per temperature")
        if self.ocv_v.shape != (n_t, self.ocv_soc.size):
            raise InputError("cell model: ocv_v must be temperatures x ocv_soc")
        if np.any(np.diff(self.ocv_v, axis=1) <= 0):
            raise InputError("cell model: OCV must rise strictly with SoC at every temperature")
        if not 0 < self.voltage_min_v < self.voltage_max_v < 10:
            raise InputError("cell model: voltage limits must satisfy 0 < min < max < 10 V")
        for key in ("r0", "r1", "r2"):
            ea = self.activation_energy_j_mol.get(key)
            if ea is None or not math.isfinite(ea) or not 0 <= ea < 200_000:
                raise InputError(f"cell model: activation energy for {key} must be in [0, 200000) J/mol")

    @property
    def nominal_capacity_ah(self) -> float:
        """The capacity at the temperature nearest 25 °C: the figure a C-rate refers to."""
        return float(self.capacity_ah[int(np.argmin(np.abs(self.temperature_c - 25.0)))])

    def to_dict(self) -> dict[str, Any]:
        def rows(a: FloatArray, digits: int) -> list[list[float]]:
            return [[round(float(x), digits) for x in row] for row in a]

        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "temperature_c": [float(t) for t in self.temperature_c],
            "capacity_ah": [round(float(q), 6) for q in self.capacity_ah],
            "voltage_limits_v": [self.voltage_min_v, self.voltage_max_v],
            "ocv": {"soc": [round(float(z), 6) for z in self.ocv_soc], "voltage_v": rows(self.ocv_v, 6)},
            "rc": {
                "soc": [round(float(z), 6) for z in self.rc.soc],
                "r0_ohm": rows(self.rc.r0_ohm, 8),
                "r1_ohm": rows(self.rc.r1_ohm, 8),
                "tau1_s": rows(self.rc.tau1_s, 4),
                "r2_ohm": rows(self.rc.r2_ohm, 8),
                "tau2_s": rows(self.rc.tau2_s, 4),
                "fit_rmse_v": rows(self.rc.fit_rmse_v, 6),
            },
            "activation_energy_j_mol": {k: round(v, 1) for k, v in self.activation_energy_j_mol.items()},
            "fit_report": dict(self.fit_report),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CellModel:
        """Validate and build; every problem is an `InputError` naming the field."""
        if not isinstance(d, Mapping):
            raise InputError("cell model: expected a JSON object")
        if d.get("format") != FORMAT:
            raise InputError(f"not an evota cell model (format is {d.get('format')!r}, expected {FORMAT!r})")
        if d.get("version") != FORMAT_VERSION:
            raise InputError(
                f"cell model version {d.get('version')!r} is not supported "
                f"(this evota reads {FORMAT_VERSION})"
            )
        try:
            temps = _axis(d["temperature_c"], "temperature_c")
            ocv, rc = d["ocv"], d["rc"]
            ocv_soc = _axis(ocv["soc"], "ocv.soc")
            rc_soc = _axis(rc["soc"], "rc.soc")
            vmin, vmax = (float(v) for v in d["voltage_limits_v"])
            ea = {str(k): float(v) for k, v in d["activation_energy_j_mol"].items()}
            capacity = np.asarray(d["capacity_ah"], dtype=float)
            name = str(d["name"])
            report = d.get("fit_report", {})
        except KeyError as e:
            raise InputError(f"cell model: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise InputError(f"cell model: malformed field ({e})") from None
        n_t, n_rc = temps.size, rc_soc.size

        def table(key: str) -> FloatArray:
            if key not in rc:
                raise InputError(f"cell model: missing field 'rc.{key}'")
            return _matrix(rc[key], n_t, n_rc, f"rc.{key}", positive=True)

        return cls(
            name=name,
            temperature_c=temps,
            capacity_ah=capacity,
            ocv_soc=ocv_soc,
            ocv_v=_matrix(ocv.get("voltage_v"), n_t, ocv_soc.size, "ocv.voltage_v", positive=True),
            rc=RcTable(
                soc=rc_soc,
                r0_ohm=table("r0_ohm"),
                r1_ohm=table("r1_ohm"),
                tau1_s=table("tau1_s"),
                r2_ohm=table("r2_ohm"),
                tau2_s=table("tau2_s"),
                fit_rmse_v=table("fit_rmse_v"),
            ),
            activation_energy_j_mol=ea,
            voltage_min_v=vmin,
            voltage_max_v=vmax,
            fit_report=report if isinstance(report, Mapping) else {},
        )


def arrhenius_factor(ea_j_mol: float, temperature_c: FloatArray, reference_c: float) -> FloatArray:
    """R(T) / R(T_ref) for a thermally activated resistance: exp(Ea/R (1/T - 1/T_ref))."""
    t = np.asarray(temperature_c, dtype=float) + 273.15
    return np.asarray(np.exp(ea_j_mol / GAS_CONSTANT * (1.0 / t - 1.0 / (reference_c + 273.15))))


def fit_activation_energy(temperature_c: Sequence[float] | FloatArray, values: FloatArray) -> float:
    """Least-squares Ea from ln R = ln A + Ea/(R T), over the mean of each temperature row.

    Clipped at zero: a resistance that falls with cooling is not thermally activated, and
    extrapolating it as if it were would be worse than holding it constant.
    """
    inv_t = 1.0 / (np.asarray(temperature_c, dtype=float) + 273.15)
    log_r = np.log(np.asarray(values, dtype=float).mean(axis=1))
    slope = float(np.polyfit(inv_t, log_r, 1)[0])
    return max(0.0, slope * GAS_CONSTANT)
