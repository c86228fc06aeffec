"""Per-vehicle KPIs accumulated between two reads, and the fault codes the BMS raises.

What each KPI means (arrays over vehicles, since the previous `take`):

* soc_error_pct: mean |BMS SoC - reference SoC| in SoC points, sampled once at the end
  of every rest of 2 h or more (when a fleet could compare the BMS against a rested-OCV
  reference). The reference is the simulator's true SoC (charge-based, mean of the
  elements), i.e. what a perfect OCV table would give after a full rest. NaN if no such
  rest ended in the window.
* cell_spread_mv: mean, over the same rest ends where the BMS reads 50 % SoC or more, of
  max - min element voltage at rest (what balancing controls; below half charge the
  steep OCV would make the figure depend on the SoC more than on the pack). NaN if none.
* max_temp_c: the hottest cell's temperature (pack mean + hot spot), maximum.
* charge_started / charge_completed: charge sessions, and those of them that ended at
  their target or at the voltage limit, or were unplugged within 5 points of their
  target. A session the BMS aborted (fault) or that was cut off far below target is not
  completed; a retry after a fault is a new session. Both are counted when the session
  ends, so a session in progress belongs to the window in which it ends, and
  completed <= started in every window.
* fault_codes: faults raised, each code at most once per operating cycle (a drive, a
  charge session, a park), as a DTC is confirmed; by code in `faults_by_code`.
* energy_kwh: battery energy drawn while driving (traction, auxiliaries, minus regen).
* distance_km: distance driven. vehicle_days: the window's length in days (exposure).
"""

from __future__ import annotations

import dataclasses
import enum
import math

import numpy as np
from numpy.typing import NDArray

from evota.sim.arrays import some

__all__ = ["SAMPLE_NAMES", "FaultCode", "KpiAccumulator", "KpiBatch"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

SAMPLE_NAMES = (
    "soc_error_pct",
    "cell_spread_mv",
    "max_temp_c",
    "charge_started",
    "charge_completed",
    "fault_codes",
    "energy_kwh_per_km",
    "distance_km",
)


class FaultCode(enum.StrEnum):
    PLATING_RISK = "BMS_LI_PLATING_RISK"  # charge current above the cell's plating limit
    CELL_OVERVOLTAGE = "BMS_CELL_OVERVOLTAGE"  # an element above the hardware limit (4.25 V)
    CELL_UNDERVOLTAGE = "BMS_CELL_UNDERVOLTAGE"  # an element below its minimum (2.9 V)
    OVERTEMPERATURE = "BMS_OVERTEMPERATURE"  # hottest cell above 55 °C
    SOC_JUMP = "BMS_SOC_IMPLAUSIBLE"  # an OCV reset moved the SoC by more than 5 points


@dataclasses.dataclass(frozen=True, eq=False)
class KpiBatch:
    soc_error_pct: FloatArray
    cell_spread_mv: FloatArray
    max_temp_c: FloatArray
    charge_started: IntArray
    charge_completed: IntArray
    fault_codes: IntArray
    energy_kwh: FloatArray
    distance_km: FloatArray
    vehicle_days: FloatArray
    faults_by_code: dict[FaultCode, IntArray]

    def to_samples(self, index: int) -> dict[str, float]:
        """One vehicle's KPIs, by the names in `SAMPLE_NAMES` (NaN where undefined)."""
        km = float(self.distance_km[index])
        return {
            "soc_error_pct": float(self.soc_error_pct[index]),
            "cell_spread_mv": float(self.cell_spread_mv[index]),
            "max_temp_c": float(self.max_temp_c[index]),
            "charge_started": float(self.charge_started[index]),
            "charge_completed": float(self.charge_completed[index]),
            "fault_codes": float(self.fault_codes[index]),
            "energy_kwh_per_km": float(self.energy_kwh[index]) / km if km > 0.0 else math.nan,
            "distance_km": km,
        }


class KpiAccumulator:
    def __init__(self, n: int) -> None:
        self.n = n
        self._reset()
        self.fault_active = {code: np.zeros(n, dtype=bool) for code in FaultCode}

    def _reset(self) -> None:
        n = self.n
        self.soc_err_sum = np.zeros(n)
        self.spread_sum = np.zeros(n)
        self.rest_samples = np.zeros(n, dtype=np.int64)
        self.spread_samples = np.zeros(n, dtype=np.int64)
        self.max_temp = np.full(n, -np.inf)
        self.faults = {code: np.zeros(n, dtype=np.int64) for code in FaultCode}
        self.energy_kwh = np.zeros(n)
        self.distance_km = np.zeros(n)

    def raise_faults(self, code: FaultCode, condition: BoolArray) -> BoolArray:
        """Raise `code` where `condition` holds and it is not raised yet in this operating
        cycle (as a DTC is confirmed once per drive or charge); returns where it is new."""
        if not some(condition):
            return condition
        latched = self.fault_active[code]
        new = condition & ~latched
        latched |= condition
        self.faults[code] += new
        return np.asarray(new)

    def new_operating_cycle(self, mask: BoolArray) -> None:
        """Vehicles in `mask` changed mode (drive, charge, park): their faults may be raised again."""
        if some(mask):
            for latched in self.fault_active.values():
                latched &= ~mask

    def take(self, days: float, sessions: tuple[IntArray, IntArray]) -> KpiBatch:
        """The window's KPIs (`sessions`: charge sessions started and completed in it)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = np.where(self.rest_samples > 0, self.rest_samples, np.nan)
            spread_samples = np.where(self.spread_samples > 0, self.spread_samples, np.nan)
            batch = KpiBatch(
                soc_error_pct=self.soc_err_sum / samples * 100.0,
                cell_spread_mv=self.spread_sum / spread_samples * 1000.0,
                max_temp_c=np.where(np.isfinite(self.max_temp), self.max_temp, np.nan),
                charge_started=sessions[0],
                charge_completed=sessions[1],
                fault_codes=np.sum(list(self.faults.values()), axis=0).astype(np.int64),
                energy_kwh=self.energy_kwh,
                distance_km=self.distance_km,
                vehicle_days=np.full(self.n, days),
                faults_by_code=self.faults,
            )
        self._reset()
        return batch
