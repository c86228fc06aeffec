"""Gates: may this vehicle install now? Energy-state preconditions and maintenance windows.

Pure functions of a vehicle's reported state, its local time zone and `now`. Each check
returns the reasons it fails, in words an operator reads in a report ("soc 42 % < 60 %"),
and an empty list when the vehicle may go. The agent checks the same preconditions on the
vehicle itself; the server's view decides whom to offer the update to and explains waits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import zoneinfo
from collections.abc import Sequence

from evota.errors import InputError

__all__ = [
    "EnergyState",
    "Gear",
    "MaintenanceWindow",
    "Preconditions",
    "Rule",
    "check_preconditions",
    "in_window",
]


class Gear(enum.StrEnum):
    PARK = "P"
    REVERSE = "R"
    NEUTRAL = "N"
    DRIVE = "D"


class Rule(enum.StrEnum):
    """A condition that is required, forbidden, or does not matter."""

    REQUIRED = "required"
    FORBIDDEN = "forbidden"
    ANY = "any"

    def fails(self, value: bool) -> bool:
        return (self is Rule.REQUIRED and not value) or (self is Rule.FORBIDDEN and value)


@dataclasses.dataclass(frozen=True)
class EnergyState:
    """What the vehicle last reported about its energy and motion."""

    soc_pct: float
    charging: bool
    plugged_in: bool
    gear: Gear
    ambient_c: float
    reported_at: dt.datetime
    soh_pct: float | None = None
    hv_on: bool | None = None  # the high-voltage system (contactors closed); None: not reported


@dataclasses.dataclass(frozen=True)
class Preconditions:
    """The energy-state conditions an install needs (defaults: the seed's practice)."""

    min_soc_pct: float = 60.0
    park_required: bool = True
    plugged_in: Rule = Rule.ANY
    charging: Rule = Rule.FORBIDDEN
    ambient_min_c: float | None = -20.0
    ambient_max_c: float | None = 45.0
    consent_required: bool = False
    max_state_age: dt.timedelta = dt.timedelta(hours=1)
    hv_off_required: bool = False  # switch only with the HV system off (contactors open)

    def __post_init__(self) -> None:
        if not 0 <= self.min_soc_pct <= 100:
            raise InputError("min SoC must be between 0 and 100 %")
        if (
            self.ambient_min_c is not None
            and self.ambient_max_c is not None
            and self.ambient_min_c > self.ambient_max_c
        ):
            raise InputError("the ambient temperature range is empty")


def check_preconditions(
    pre: Preconditions, state: EnergyState | None, *, consent: bool, now: dt.datetime
) -> list[str]:
    """Why the vehicle may not install now (empty: it may)."""
    reasons = []
    if pre.consent_required and not consent:
        reasons.append("consent: not given")
    if state is None:
        return [*reasons, "state: never reported"]
    age = now - state.reported_at
    if age > pre.max_state_age:
        reasons.append(f"state: {_duration(age)} old > {_duration(pre.max_state_age)}")
    if state.soc_pct < pre.min_soc_pct:
        reasons.append(f"soc {state.soc_pct:.0f} % < {pre.min_soc_pct:.0f} %")
    if pre.park_required and state.gear is not Gear.PARK:
        reasons.append(f"gear {state.gear.value}, not P")
    if pre.hv_off_required and state.hv_on is not False:
        reasons.append("HV system on" if state.hv_on else "HV state: not reported")
    if pre.plugged_in.fails(state.plugged_in):
        reasons.append("plugged in" if state.plugged_in else "not plugged in")
    if pre.charging.fails(state.charging):
        reasons.append("charging" if state.charging else "not charging")
    if pre.ambient_min_c is not None and state.ambient_c < pre.ambient_min_c:
        reasons.append(f"ambient {state.ambient_c:.0f} °C < {pre.ambient_min_c:.0f} °C")
    if pre.ambient_max_c is not None and state.ambient_c > pre.ambient_max_c:
        reasons.append(f"ambient {state.ambient_c:.0f} °C > {pre.ambient_max_c:.0f} °C")
    return reasons


def _duration(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


@dataclasses.dataclass(frozen=True)
class MaintenanceWindow:
    """Local wall-clock hours on some weekdays (0 = Monday). A window whose end is not after
    its start runs past midnight into the next day ("22:00–05:00")."""

    start: dt.time
    end: dt.time
    weekdays: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise InputError("a maintenance window needs a start and an end that differ")
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise InputError("weekdays are 0 (Monday) to 6 (Sunday)")

    def contains(self, local: dt.datetime) -> bool:
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start < self.end:
            return day in self.weekdays and self.start <= t < self.end
        # Past midnight: the evening part belongs to `day`, the morning part to the day before.
        return (day in self.weekdays and t >= self.start) or ((day - 1) % 7 in self.weekdays and t < self.end)


def in_window(windows: Sequence[MaintenanceWindow], time_zone: str, now: dt.datetime) -> bool:
    """True if `now` falls in any window, read in the vehicle's local time (no windows: always).

    Local time comes from the IANA database, so DST is honoured: a window at 02:30 does not
    exist on the spring-forward night, and one at 02:30 on the fall-back night opens twice.
    """
    if not windows:
        return True
    local = now.astimezone(zoneinfo.ZoneInfo(time_zone))
    return any(w.contains(local) for w in windows)
