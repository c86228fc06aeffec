"""Charge sessions: when they start and end, and the current the BMS lets through.

A session is AC (depot, 11 kW on-board charger, 92 % efficient) or DC (a public fast
charger, up to what the VCMS requests and the station gives). The BMS's allowed current
is the smallest of

* its calibration's C-rate at the pack temperature, tapered above the taper SoC and
  times its believed capacity (and by the fault derate on a retry after a fault),
* what the charger's power leaves after the heater, the cooler and the HV loads, and
* the constant-voltage limit: the current at which the highest element would reach the
  calibration's maximum cell voltage at the end of the step (solved from the element's
  OCV, its RC memory and resistance; exact for the linear RC step).

A session ends completed at its target SoC (by the BMS's estimate) or at the voltage
limit with the current tapered below C/20; unplugged (departure, or the driver's
patience at a DC charger) it is completed only within 5 points of its target; on a
fault it is aborted and retried after 5 minutes at the derated limit, at most twice per
plug-in. Arrays over vehicles; the session kind is a `Mode` value (0: none).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from evota.sim.cell import CellEval
from evota.sim.duty import Mode
from evota.sim.pack import PackState, StepResponse

__all__ = ["ChargerSpec", "Sessions", "allowed_current"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Int8Array = NDArray[np.int8]


def allowed_current(
    pack: PackState,
    ev: CellEval,
    resp: StepResponse,
    bms: dict[str, FloatArray],
    *,
    c_rate: FloatArray,
    soc_bms: FloatArray,
    derate: FloatArray,
    supply_w: FloatArray,
) -> tuple[FloatArray, BoolArray]:
    """(charge current in A, >= 0; whether the voltage limit set it) for each vehicle.

    `bms` holds the vehicles' compiled BMS settings (`CalibrationRows.per_vehicle`),
    `c_rate` their table's C-rate at the pack temperature, `supply_w` what the charger
    leaves for the cells.
    """
    above = np.minimum(
        np.maximum((soc_bms - bms["taper_above"]) / (1.0 - bms["taper_above"] + 1e-9), 0.0), 1.0
    )
    i_bms = c_rate * (1.0 - (1.0 - bms["taper_full"]) * above) * bms["capacity_ah"] * derate
    i_cap = np.minimum(i_bms, np.maximum(supply_w, 0.0) / (pack.spec.n_series * ev.ocv))
    # The highest element: its RC memory and resistance are k_hi times the reference's.
    ocv_hi = ev.ocv + ev.slope * pack.dev_hi
    i_cv = (bms["max_cell_v"] - ocv_hi + pack.k_hi * resp.memory) / (pack.k_hi * resp.resistance)
    return np.maximum(np.minimum(i_cap, i_cv), 0.0), np.asarray(i_cv <= i_cap)


@dataclasses.dataclass(frozen=True)
class ChargerSpec:
    ac_kw: float = 11.0
    ac_efficiency: float = 0.92
    dc_station_kw: float = 150.0
    hv_load_w: float = 300.0  # BMS, contactors, pumps while charging
    complete_within: float = 0.05  # an unplugged session within this of its target counts
    taper_end_c_rate: float = 0.05
    retry_after_s: float = 300.0
    max_retries: int = 2


class Sessions:
    def __init__(self, n: int, spec: ChargerSpec) -> None:
        self.spec = spec
        self.kind: Int8Array = np.zeros(n, dtype=np.int8)  # Mode.CHARGING_AC / _DC, or 0
        self.target = np.zeros(n)
        self.retries = np.zeros(n, dtype=np.int64)
        self.retry_at = np.full(n, np.inf)  # a pending retry after a fault
        self.retry_kind: Int8Array = np.zeros(n, dtype=np.int8)
        self.derate = np.ones(n)
        self.dc_until = np.zeros(n)  # the driver leaves the DC charger at this time
        self.depot_done = np.zeros(n, dtype=bool)  # the depot charge of this plug-in is over
        self.started = np.zeros(n, dtype=np.int64)
        self.completed = np.zeros(n, dtype=np.int64)

    @property
    def active(self) -> BoolArray:
        return np.asarray(self.kind != 0)

    def start(self, mask: BoolArray, kind: Mode, target: FloatArray) -> None:
        self.kind = np.where(mask, np.int8(kind), self.kind).astype(np.int8)
        self.target = np.where(mask, target, self.target)

    def new_plug_in(self, mask: BoolArray) -> None:
        """A new plug-in: the retry budget and derate start afresh."""
        self.retries = np.where(mask, 0, self.retries)
        self.derate = np.where(mask, 1.0, self.derate)
        self.retry_at = np.where(mask, np.inf, self.retry_at)
        self.retry_kind = np.where(mask, np.int8(0), self.retry_kind).astype(np.int8)

    def end(self, mask: BoolArray, completed: BoolArray) -> None:
        """End sessions; each is counted now (so completed <= started in any KPI window)."""
        ending = mask & self.active
        self.started += ending
        self.completed += ending & completed
        self.kind = np.where(mask, np.int8(0), self.kind).astype(np.int8)

    def unplug(self, mask: BoolArray, soc: FloatArray) -> None:
        """The session ends because the van leaves: completed only close to its target."""
        close = soc >= self.target - self.spec.complete_within
        self.end(mask & self.active, close)
        self.retry_at = np.where(mask, np.inf, self.retry_at)
        self.retry_kind = np.where(mask, np.int8(0), self.retry_kind).astype(np.int8)

    def fault(self, mask: BoolArray, now: float, derate: FloatArray) -> None:
        """The BMS aborts: not completed; a retry is scheduled while the budget lasts."""
        mask = mask & self.active
        can_retry = mask & (self.retries < self.spec.max_retries)
        self.retry_kind = np.where(can_retry, self.kind, self.retry_kind).astype(np.int8)
        self.retry_at = np.where(can_retry, now + self.spec.retry_after_s, self.retry_at)
        self.retries += mask
        self.derate = np.where(mask, np.minimum(self.derate, derate), self.derate)
        self.depot_done |= mask & ~can_retry & (self.kind == Mode.CHARGING_AC)
        self.end(mask, np.zeros_like(mask))

    def take_counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(sessions ended, of which completed) since the previous take; the counters restart."""
        counts = (self.started, self.completed)
        self.started = np.zeros_like(self.started)
        self.completed = np.zeros_like(self.completed)
        return counts

    def due_retries(self, now: float) -> BoolArray:
        due = (self.retry_at <= now) & ~self.active
        self.retry_at = np.where(due, np.inf, self.retry_at)
        return np.asarray(due)
