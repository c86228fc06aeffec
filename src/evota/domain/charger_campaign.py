"""Charger firmware campaigns: member statuses, the policy, waves and low-utilisation windows.

A charger campaign shares the vehicle campaign's lifecycle table, four-eyes approval and
stratified waves (`domain/campaign.py`): waves cover every site and every firmware version
in scope first. What differs is what a member goes through, so it has its own statuses and
planner (`domain/charger_planner.py`):

    pending ─send─▶ updating ─installed─▶ validating ─booted on target, Available─▶ updated
       │               │                      │
       │               └─failed─▶ failed      └─not Available in time, reboot loop─▶ rolling_back
       └─hold (no rollback image, downgrade refused) ─▶ held          rolling_back ─▶ rolled_back

`quiet_window` picks a site's low-utilisation hours from when its sessions start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evota.domain.campaign import Scoped, assign_waves
from evota.domain.charger_health import SessionGate
from evota.domain.firmware import FirmwareTimeouts
from evota.domain.gates import MaintenanceWindow
from evota.errors import InputError

__all__ = [
    "ChargerPolicy",
    "MemberStatus",
    "ScopedCharger",
    "assign_charger_waves",
    "policy_from_dict",
    "policy_to_dict",
    "quiet_window",
]


class MemberStatus(enum.StrEnum):
    PENDING = "pending"  # in scope, not sent yet (or waiting, with reasons)
    UPDATING = "updating"  # its update request is out
    VALIDATING = "validating"  # installed; waiting for the boot on the target and Available
    UPDATED = "updated"  # validated
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"  # its rollback request is out
    ROLLED_BACK = "rolled_back"
    HELD = "held"  # cannot be updated safely (reason given)

    @property
    def finished(self) -> bool:
        return self in (MemberStatus.UPDATED, MemberStatus.FAILED, MemberStatus.ROLLED_BACK)

    @property
    def in_flight(self) -> bool:
        return self in (MemberStatus.UPDATING, MemberStatus.VALIDATING, MemberStatus.ROLLING_BACK)


@dataclasses.dataclass(frozen=True)
class ChargerPolicy:
    dwell: dt.timedelta = dt.timedelta(hours=24)
    max_concurrent: int = 20
    error_threshold_pct: float = 10.0
    min_executed: int = 3
    success_threshold_pct: float = 80.0
    windows: tuple[MaintenanceWindow, ...] = ()  # in each charger's local time; none: any time
    site_windows: Mapping[str, tuple[MaintenanceWindow, ...]] = dataclasses.field(default_factory=dict)
    retries: int = 3  # download tries sent with each request (≥ 1)
    retry_interval: dt.timedelta = dt.timedelta(seconds=60)
    timeouts: FirmwareTimeouts = dataclasses.field(default_factory=FirmwareTimeouts)
    available_within: dt.timedelta = dt.timedelta(minutes=10)  # after the install
    max_boots: int = 3  # boots after the install before it counts as a reboot loop
    sessions: SessionGate = dataclasses.field(default_factory=SessionGate)
    max_duration: dt.timedelta = dt.timedelta(days=30)  # certificates must outlive it
    defer_during_sessions: bool = False  # also hold signed updates while a session runs

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise InputError("the throttle must allow at least one update at a time")
        if not 0 <= self.error_threshold_pct <= 100 or not 0 <= self.success_threshold_pct <= 100:
            raise InputError("thresholds are percentages between 0 and 100")
        if self.min_executed < 1:
            raise InputError("the error gate needs at least one finished charger")
        if self.retries < 1 or self.retry_interval < dt.timedelta(seconds=1):
            raise InputError("updates are sent with at least one try and a retry interval of 1 s or more")
        if self.max_boots < 1:
            raise InputError("max_boots must be at least 1")
        for delta in (self.dwell, self.available_within, self.max_duration):
            if not dt.timedelta(0) <= delta <= dt.timedelta(days=366):
                raise InputError("durations are between 0 and a year")

    def windows_for(self, site: str) -> tuple[MaintenanceWindow, ...]:
        return self.site_windows.get(site, self.windows)


def _window_dict(w: MaintenanceWindow) -> dict[str, object]:
    return {
        "start": w.start.isoformat("minutes"),
        "end": w.end.isoformat("minutes"),
        "weekdays": sorted(w.weekdays),
    }


def _window(d: Mapping[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        dt.time.fromisoformat(d["start"]), dt.time.fromisoformat(d["end"]), frozenset(d["weekdays"])
    )


def policy_to_dict(p: ChargerPolicy) -> dict[str, object]:
    return {
        "dwell_s": p.dwell.total_seconds(),
        "max_concurrent": p.max_concurrent,
        "error_threshold_pct": p.error_threshold_pct,
        "min_executed": p.min_executed,
        "success_threshold_pct": p.success_threshold_pct,
        "windows": [_window_dict(w) for w in p.windows],
        "site_windows": {site: [_window_dict(w) for w in ws] for site, ws in sorted(p.site_windows.items())},
        "retries": p.retries,
        "retry_interval_s": p.retry_interval.total_seconds(),
        "silence_s": p.timeouts.silence.total_seconds(),
        "scheduled_s": p.timeouts.scheduled.total_seconds(),
        "max_attempts": p.timeouts.max_attempts,
        "available_within_s": p.available_within.total_seconds(),
        "max_boots": p.max_boots,
        "min_sessions": p.sessions.min_sessions,
        "alpha": p.sessions.alpha,
        "max_duration_s": p.max_duration.total_seconds(),
        "defer_during_sessions": p.defer_during_sessions,
    }


def policy_from_dict(d: Mapping[str, Any]) -> ChargerPolicy:
    """The inverse of `policy_to_dict`; InputError on anything malformed."""
    seconds = dt.timedelta(seconds=1)
    try:
        return ChargerPolicy(
            dwell=float(d["dwell_s"]) * seconds,
            max_concurrent=int(d["max_concurrent"]),
            error_threshold_pct=float(d["error_threshold_pct"]),
            min_executed=int(d["min_executed"]),
            success_threshold_pct=float(d["success_threshold_pct"]),
            windows=tuple(_window(w) for w in d["windows"]),
            site_windows={site: tuple(_window(w) for w in ws) for site, ws in d["site_windows"].items()},
            retries=int(d["retries"]),
            retry_interval=float(d["retry_interval_s"]) * seconds,
            timeouts=FirmwareTimeouts(
                silence=float(d["silence_s"]) * seconds,
                scheduled=float(d["scheduled_s"]) * seconds,
                max_attempts=int(d["max_attempts"]),
            ),
            available_within=float(d["available_within_s"]) * seconds,
            max_boots=int(d["max_boots"]),
            sessions=SessionGate(min_sessions=int(d["min_sessions"]), alpha=float(d["alpha"])),
            max_duration=float(d["max_duration_s"]) * seconds,
            defer_during_sessions=bool(d["defer_during_sessions"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise InputError(f"malformed charger campaign policy: {e!r}") from e


@dataclasses.dataclass(frozen=True)
class ScopedCharger:
    charge_point_id: str
    site: str
    firmware_version: str


def assign_charger_waves(
    chargers: Sequence[ScopedCharger], percents: Sequence[float], seed: str
) -> dict[str, int]:
    """Charge point id → wave, by the vehicle campaigns' stratified assignment: strata are
    the site and the firmware version the charger runs now."""
    scoped = [Scoped(c.charge_point_id, c.site, c.firmware_version) for c in chargers]
    return assign_waves(scoped, percents, seed)


def quiet_window(
    session_hours: Iterable[int], *, hours: int = 4, default_start: int = 1
) -> MaintenanceWindow:
    """The `hours`-long span of the day in which the fewest sessions started (local hours
    0-23, the span may cross midnight); ties go to the earliest start from `default_start`,
    which is also the start when there is no history at all."""
    if not 1 <= hours <= 23:
        raise InputError("a low-utilisation window lasts 1 to 23 hours")
    counts = Counter(h % 24 for h in session_hours)
    order = [(default_start + i) % 24 for i in range(24)]
    start = min(order, key=lambda s: sum(counts[(s + k) % 24] for k in range(hours)))
    return MaintenanceWindow(dt.time(start), dt.time((start + hours) % 24), frozenset(range(7)))
