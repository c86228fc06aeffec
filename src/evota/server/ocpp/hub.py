"""The chargers connected to this process, by charge point id.

All sessions live on the server's event loop, so the hub needs no lock. A charger that
connects again replaces its old session (the old socket is closed): a station that lost its
network may reconnect before the CSMS notices the old TCP connection is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

__all__ = ["ChargerHub", "Session", "Waker"]


class Waker:
    """Wakes the firmware dispatcher when something may have queued a request (a boot, a
    status, a connection) instead of leaving it to the next poll. Loop-bound: set from the
    server's event loop only."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


class Session(Protocol):
    charge_point_id: str

    async def close(self) -> None: ...


class ChargerHub:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def attach(self, session: Session) -> Session | None:
        """Make `session` the charger's current one; returns the one it replaces, if any."""
        old = self._sessions.get(session.charge_point_id)
        self._sessions[session.charge_point_id] = session
        return old if old is not session else None

    def detach(self, session: Session) -> bool:
        """Forget `session` if it is still the current one (True if it was)."""
        if self._sessions.get(session.charge_point_id) is session:
            del self._sessions[session.charge_point_id]
            return True
        return False

    def get(self, charge_point_id: str) -> Session | None:
        return self._sessions.get(charge_point_id)

    def connected(self) -> list[str]:
        return sorted(self._sessions)
