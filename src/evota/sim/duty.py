"""Depot logistics duty: who drives which cycle when, and when vans come home to charge.

A van's day, in its depot's local time (DST included):

* It works with probability 0.97 on weekdays, 0.5 on Saturdays (half the distance) and
  0.1 on Sundays (0.4 of it).
* Departure around its own usual time (drawn once, 07:00 +- 30 min, within 05:45 and
  08:45) +- 10 min. The
  day's distance is drawn by route type (urban 110 +- 25 km, mixed 170 +- 35,
  highway 220 +- 40) and split over six legs; each leg drives one cycle, chosen by the
  route's mix (urban: mostly the urban round; highway: mostly the highway cycle), for
  as long as that distance takes at the cycle's speed (legs take similar times, so the
  mix is the share of driving time).
* Between legs: delivery stops of 10-40 min (parked, HV off) and, after the third leg,
  a lunch break of 30-60 min, when a DC-using van (15 % of urban, 35 % of mixed, 80 %
  of highway vans) may fast-charge (the physics decides, on the BMS's SoC).
* Back at the depot, it is plugged in (97 % of evenings); 40 % of vans are on a smart
  tariff and start charging at 22:00, the rest at once.

This module only plans: it turns time into each van's duty (`DutyNow`), with arrays over
vehicles. Charging sessions, their faults and their end are the physics' business,
because they depend on the battery. Each new local day's plans are drawn for every van
at once, so the random stream depends only on time, never on what the batteries did:
two runs that differ in one calibration see the same days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import zoneinfo
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from evota.errors import InputError
from evota.sim.arrays import some
from evota.sim.drive import CYCLES, cycle

__all__ = ["ROUTES", "DutyNow", "DutyRoster", "DutySpec", "LocalClock", "Mode"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]


class Mode(enum.IntEnum):
    PARKED = 0
    DRIVING = 1
    CHARGING_AC = 2
    CHARGING_DC = 3


ROUTES: dict[str, dict[str, float]] = {
    # cycle mix (over CYCLES), daily km mean and sd, share of DC users
    "urban": {"urban": 0.8, "wltc3": 0.2, "highway": 0.0, "km": 110.0, "km_sd": 25.0, "dc": 0.15},
    "mixed": {"urban": 0.35, "wltc3": 0.4, "highway": 0.25, "km": 170.0, "km_sd": 35.0, "dc": 0.35},
    "highway": {"urban": 0.1, "wltc3": 0.3, "highway": 0.6, "km": 220.0, "km_sd": 40.0, "dc": 0.8},
}


@dataclasses.dataclass(frozen=True)
class DutySpec:
    n_legs: int = 6
    work_probability: tuple[float, ...] = (0.97, 0.97, 0.97, 0.97, 0.97, 0.5, 0.1)  # Monday first
    distance_factor: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.4)
    depart_mean_h: float = 7.0
    depart_sd_min: float = 30.0
    day_sd_min: float = 10.0
    stop_min: tuple[float, float] = (10.0, 40.0)
    lunch_min: tuple[float, float] = (30.0, 60.0)
    latest_return_h: float = 20.5
    plug_probability: float = 0.97
    smart_share: float = 0.4
    smart_start_h: float = 22.0
    payload_kg: tuple[float, float] = (200.0, 900.0)


@dataclasses.dataclass(frozen=True)
class DutyNow:
    """Each van's duty at one instant (arrays over vehicles)."""

    on_shift: BoolArray  # between departure and return
    driving: BoolArray  # inside a leg
    cycle_idx: IntArray  # the leg's cycle (index into drive.CYCLES); meaningless when not driving
    at_lunch: BoolArray
    to_departure_s: FloatArray  # until the next planned departure (tomorrow's is estimated)


class LocalClock:
    """UTC offsets of a few IANA zones, refreshed every 15 minutes of simulated time."""

    def __init__(self, zone_names: Sequence[str]) -> None:
        try:
            self.zones = [zoneinfo.ZoneInfo(z) for z in zone_names]
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(f"unknown IANA time zone among {sorted(set(zone_names))}") from None
        self._key = -1
        self._offsets = np.zeros(len(self.zones))

    def offsets_s(self, epoch_s: float) -> FloatArray:
        key = int(epoch_s // 900)
        if key != self._key:
            when = dt.datetime.fromtimestamp(key * 900, dt.UTC)
            self._offsets = np.array(
                [(when.astimezone(z).utcoffset() or dt.timedelta()).total_seconds() for z in self.zones]
            )
            self._key = key
        return self._offsets


class DutyRoster:
    """Each van's standing traits and today's plan (see the module docstring)."""

    def __init__(self, routes: Sequence[str], rng: np.random.Generator, spec: DutySpec | None = None) -> None:
        self.spec = spec or DutySpec()
        self.rng = rng
        unknown = sorted(set(routes) - set(ROUTES))
        if unknown:
            raise InputError(f"unknown route type(s) {', '.join(unknown)} (known: {', '.join(ROUTES)})")
        n, k = len(routes), self.spec.n_legs
        self.n = n
        self.route_idx = np.array([list(ROUTES).index(r) for r in routes], dtype=np.intp)
        table = [ROUTES[r] for r in ROUTES]
        self._mix_cdf = np.cumsum([[row[c] for c in CYCLES] for row in table], axis=1)
        self._km = np.array([row["km"] for row in table])
        self._km_sd = np.array([row["km_sd"] for row in table])
        self._speed_kmh = np.array([cycle(c).mean_speed_kmh for c in CYCLES])
        self.dc_user = rng.random(n) < np.array([row["dc"] for row in table])[self.route_idx]
        self.smart = rng.random(n) < self.spec.smart_share
        usual = 3600.0 * self.spec.depart_mean_h + 60.0 * self.spec.depart_sd_min * rng.standard_normal(n)
        self.depart_base_s = np.clip(usual, 5.75 * 3600.0, 8.75 * 3600.0)
        self.mass_kg = 2600.0 + rng.uniform(*self.spec.payload_kg, n)
        self.plan_day = np.full(n, -(2**40), dtype=np.int64)
        self.works = np.zeros(n, dtype=bool)
        self.plugs = np.ones(n, dtype=bool)
        self.leg_start = np.zeros((n, k))
        self.leg_end = np.zeros((n, k))
        self.leg_cycle = np.zeros((n, k), dtype=np.intp)
        self.depart_s = self.depart_base_s.copy()
        self.return_s = self.depart_base_s.copy()
        self.lunch_leg = k // 2 - 1  # lunch comes after this leg

    def plan(self, local_day: NDArray[np.int64]) -> None:
        """Draw the plan of every van whose local day is not the one it has a plan for."""
        stale = local_day != self.plan_day
        if not some(stale):
            return
        spec, rng, n, k = self.spec, self.rng, self.n, self.spec.n_legs
        # Draw for every van (see the module docstring), keep the stale ones.
        u_work, u_plug = rng.random(n), rng.random(n)
        km_z = rng.standard_normal(n)
        u_cycle = rng.random((n, k))
        split = rng.uniform(0.7, 1.3, (n, k))
        jitter = rng.standard_normal(n)
        gaps = rng.uniform(*spec.stop_min, (n, k - 1)) * 60.0
        gaps[:, self.lunch_leg] = rng.uniform(*spec.lunch_min, n) * 60.0
        weekday = ((local_day + 3) % 7).astype(np.intp)  # 1970-01-01 was a Thursday
        works = u_work < np.asarray(spec.work_probability)[weekday]
        km = np.maximum(self._km[self.route_idx] + self._km_sd[self.route_idx] * km_z, 20.0)
        km = km * np.asarray(spec.distance_factor)[weekday]
        cyc = (u_cycle[:, :, None] > self._mix_cdf[self.route_idx][:, None, :]).sum(axis=2)
        cyc = np.minimum(cyc, len(CYCLES) - 1).astype(np.intp)
        # Legs take similar times (a highway leg covers more km than an urban one), so the
        # route's cycle mix is the share of driving time on each cycle.
        weight = split * self._speed_kmh[cyc]
        leg_km = km[:, None] * weight / weight.sum(axis=1, keepdims=True)
        drive_s = leg_km / self._speed_kmh[cyc] * 3600.0
        depart = self.depart_base_s + 60.0 * spec.day_sd_min * jitter
        # Shorten a day that would end after the latest return (driving and stops alike).
        total = drive_s.sum(axis=1) + gaps.sum(axis=1)
        shrink = np.minimum(1.0, (3600.0 * spec.latest_return_h - depart) / total)
        drive_s, gaps = drive_s * shrink[:, None], gaps * shrink[:, None]
        starts = np.empty((n, k))
        starts[:, 0] = depart
        starts[:, 1:] = depart[:, None] + np.cumsum(drive_s[:, :-1] + gaps, axis=1)
        ends = starts + drive_s
        self.works = np.where(stale, works, self.works)
        self.plugs = np.where(stale, u_plug < spec.plug_probability, self.plugs)
        self.leg_start = np.where(stale[:, None], starts, self.leg_start)
        self.leg_end = np.where(stale[:, None], ends, self.leg_end)
        self.leg_cycle = np.where(stale[:, None], cyc, self.leg_cycle)
        self.depart_s = np.where(stale, depart, self.depart_s)
        self.return_s = np.where(stale, ends[:, -1], self.return_s)
        self.plan_day = np.where(stale, local_day, self.plan_day)

    def now(self, second_of_day: FloatArray) -> DutyNow:
        s = second_of_day
        on_shift = self.works & (s >= self.depart_s) & (s < self.return_s)
        in_leg = (s[:, None] >= self.leg_start) & (s[:, None] < self.leg_end)
        driving = on_shift & in_leg.any(axis=1)
        leg = np.argmax(in_leg, axis=1)
        cycle_idx = np.take_along_axis(self.leg_cycle, leg[:, None], axis=1)[:, 0]
        lunch = self.lunch_leg
        at_lunch = on_shift & (s >= self.leg_end[:, lunch]) & (s < self.leg_start[:, lunch + 1])
        today = self.works & (s < self.depart_s)
        to_departure = np.where(today, self.depart_s - s, 86400.0 - s + self.depart_base_s)
        return DutyNow(on_shift, driving, cycle_idx, at_lunch, to_departure)

    def end_shift(self, mask: BoolArray, second_of_day: FloatArray) -> None:
        """End today's shift now for the vans in `mask` (they drive no further legs today)."""
        now = second_of_day[:, None]
        self.leg_end = np.where(mask[:, None], np.minimum(self.leg_end, now), self.leg_end)
        self.leg_start = np.where(mask[:, None], np.minimum(self.leg_start, now), self.leg_start)
        self.return_s = np.where(mask, np.minimum(self.return_s, second_of_day), self.return_s)

    def smart_start_in_s(self, second_of_day: FloatArray) -> FloatArray:
        """Seconds from now until a van may start its depot charge (0 if not on a smart tariff)."""
        wait = np.maximum(3600.0 * self.spec.smart_start_h - second_of_day, 0.0)
        return np.where(self.smart, wait, 0.0)
