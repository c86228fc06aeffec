"""Gates as tables: every precondition, and maintenance windows at midnight, across time
zones and on both DST nights."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from evota.domain.gates import (
    EnergyState,
    Gear,
    MaintenanceWindow,
    Preconditions,
    Rule,
    check_preconditions,
    in_window,
)
from evota.errors import InputError

NOW = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
PARKED = EnergyState(
    soc_pct=80, charging=False, plugged_in=True, gear=Gear.PARK, ambient_c=10, reported_at=NOW
)


def state(**changes: object) -> EnergyState:
    return dataclasses.replace(PARKED, **changes)  # type: ignore[arg-type]


# id → (preconditions, state, consent, expected reasons)
CASES: dict[str, tuple[Preconditions, EnergyState | None, bool, list[str]]] = {
    "all-good": (Preconditions(), PARKED, False, []),
    "soc-low": (Preconditions(), state(soc_pct=42), False, ["soc 42 % < 60 %"]),
    "soc-at-limit": (Preconditions(), state(soc_pct=60), False, []),
    "driving": (Preconditions(), state(gear=Gear.DRIVE), False, ["gear D, not P"]),
    "driving-allowed": (Preconditions(park_required=False), state(gear=Gear.DRIVE), False, []),
    "charging-forbidden": (Preconditions(), state(charging=True), False, ["charging"]),
    "plug-required": (
        Preconditions(plugged_in=Rule.REQUIRED),
        state(plugged_in=False),
        False,
        ["not plugged in"],
    ),
    "plug-forbidden": (Preconditions(plugged_in=Rule.FORBIDDEN), PARKED, False, ["plugged in"]),
    "charging-required": (Preconditions(charging=Rule.REQUIRED), PARKED, False, ["not charging"]),
    "too-cold": (Preconditions(), state(ambient_c=-25), False, ["ambient -25 °C < -20 °C"]),
    "too-hot": (Preconditions(), state(ambient_c=48), False, ["ambient 48 °C > 45 °C"]),
    "no-range": (Preconditions(ambient_min_c=None, ambient_max_c=None), state(ambient_c=-40), False, []),
    "consent-missing": (Preconditions(consent_required=True), PARKED, False, ["consent: not given"]),
    "consent-given": (Preconditions(consent_required=True), PARKED, True, []),
    "stale-state": (
        Preconditions(),
        state(reported_at=NOW - dt.timedelta(hours=3)),
        False,
        ["state: 3 h 00 min old > 1 h 00 min"],
    ),
    "never-reported": (
        Preconditions(consent_required=True),
        None,
        False,
        ["consent: not given", "state: never reported"],
    ),
    "several": (
        Preconditions(),
        state(soc_pct=30, gear=Gear.DRIVE, charging=True),
        False,
        ["soc 30 % < 60 %", "gear D, not P", "charging"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_preconditions(case: str) -> None:
    pre, st, consent, expected = CASES[case]
    assert check_preconditions(pre, st, consent=consent, now=NOW) == expected


def test_preconditions_refuse_nonsense() -> None:
    with pytest.raises(InputError):
        Preconditions(min_soc_pct=120)
    with pytest.raises(InputError):
        Preconditions(ambient_min_c=10, ambient_max_c=0)


NIGHT = MaintenanceWindow(dt.time(22), dt.time(5))  # every night, past midnight
WEEKNIGHTS = MaintenanceWindow(dt.time(22), dt.time(5), frozenset({0, 1, 2, 3, 4}))  # Mon–Fri evenings
LUNCH = MaintenanceWindow(dt.time(12), dt.time(13))
EARLY = MaintenanceWindow(dt.time(2), dt.time(3))  # the hour that DST skips or repeats


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


# id → (windows, time zone, instant in UTC, inside?)
WINDOWS = {
    "no-windows-always": ([], "Europe/Berlin", "2026-11-22T12:00", True),
    "before-start": ([NIGHT], "UTC", "2026-11-22T21:59", False),
    "at-start": ([NIGHT], "UTC", "2026-11-22T22:00", True),
    "after-midnight": ([NIGHT], "UTC", "2026-11-23T04:59", True),
    "at-end": ([NIGHT], "UTC", "2026-11-23T05:00", False),
    "local-time-berlin": ([NIGHT], "Europe/Berlin", "2026-11-22T21:30", True),  # 22:30 CET
    "local-time-new-york": ([NIGHT], "America/New_York", "2026-11-22T23:00", False),  # 18:00 EST
    "local-time-tokyo": ([LUNCH], "Asia/Tokyo", "2026-11-22T03:30", True),  # 12:30 JST
    "friday-night-into-saturday": ([WEEKNIGHTS], "UTC", "2026-11-28T03:00", True),  # Sat 03:00, Fri's night
    "saturday-night": ([WEEKNIGHTS], "UTC", "2026-11-28T23:00", False),
    "sunday-night-into-monday": ([WEEKNIGHTS], "UTC", "2026-11-30T03:00", False),  # Mon 03:00, Sun's night
    "monday-evening": ([WEEKNIGHTS], "UTC", "2026-11-30T22:30", True),
    "any-of-several": ([LUNCH, NIGHT], "UTC", "2026-11-22T12:30", True),
    # Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:00–03:00 local never happens.
    "dst-spring-skipped-hour": ([EARLY], "Europe/Berlin", "2026-03-29T01:30", False),  # 03:30 CEST
    "dst-spring-before": ([EARLY], "Europe/Berlin", "2026-03-29T00:59", False),  # 01:59 CET
    "dst-spring-day-after": ([EARLY], "Europe/Berlin", "2026-03-30T00:30", True),  # 02:30 CEST
    # Berlin, 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:00–03:00 happens twice.
    "dst-autumn-first-pass": ([EARLY], "Europe/Berlin", "2026-10-25T00:30", True),  # 02:30 CEST
    "dst-autumn-second-pass": ([EARLY], "Europe/Berlin", "2026-10-25T01:30", True),  # 02:30 CET
    "dst-autumn-after": ([EARLY], "Europe/Berlin", "2026-10-25T02:00", False),  # 03:00 CET
}


@pytest.mark.parametrize("case", list(WINDOWS))
def test_maintenance_windows(case: str) -> None:
    windows, tz, instant, inside = WINDOWS[case]
    assert in_window(windows, tz, utc(instant)) is inside


def test_windows_refuse_nonsense() -> None:
    with pytest.raises(InputError):
        MaintenanceWindow(dt.time(3), dt.time(3))
    with pytest.raises(InputError):
        MaintenanceWindow(dt.time(1), dt.time(3), frozenset({7}))
