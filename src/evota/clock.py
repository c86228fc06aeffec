"""Time, in one place.

Nothing in evota reads the wall clock except `SystemClock`. Everything else takes a
`Clock`, so the simulator can run days of a fleet in seconds through the same code, and
so a vehicle can judge metadata expiry against an attested time instead of a clock an
attacker may have set back (Uptane's secure-time requirement).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol

__all__ = ["Clock", "SimClock", "SystemClock", "utc"]


def utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as an aware UTC datetime; naive values are refused, not guessed."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: evota only handles timezone-aware times")
    return value.astimezone(dt.UTC)


class Clock(Protocol):
    """A source of the current time (always timezone-aware UTC)."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The wall clock of this machine."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class SimClock:
    """A clock that moves only when told to; thread-safe so a served app can share it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = utc(start) if start else dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move time forward by `delta` (never backwards) and return the new time."""
        if delta < dt.timedelta(0):
            raise ValueError("a SimClock only moves forward")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, value: dt.datetime) -> None:
        """Jump to `value`, which must not be earlier than the current time."""
        value = utc(value)
        with self._lock:
            if value < self._now:
                raise ValueError("a SimClock only moves forward")
            self._now = value
