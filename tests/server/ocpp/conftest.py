"""A real evota server on loopback with registered chargers, and a raw OCPP-J client for it."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from evota.server.services.chargers import add_charger
from evota.server.store.db import Database

from ..conftest import postgresql_database


@dataclasses.dataclass
class Csms:
    url: str  # ws://127.0.0.1:PORT
    db: Database
    clock: SimClock
    passwords: dict[str, str]

    def ws_url(self, charge_point_id: str) -> str:
        return f"{self.url}/ocpp/{charge_point_id}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite unless a test asks for PostgreSQL too (`BOTH_DATABASES`): a websocket test's
    cost is its server, and the charger SQL is the same on both."""
    if getattr(request, "param", "sqlite") == "sqlite":
        with in_memory_sqlite(tmp_path) as url:
            yield url
        return
    with postgresql_database() as url:
        yield url


@contextlib.contextmanager
def in_memory_sqlite(fallback: Path) -> Iterator[str]:
    """A SQLite URL in memory-backed storage where there is one: these tests measure the CSMS,
    not the disk's fsync (fifty chargers' statuses are thousands of commits)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="evota-test-") as folder:
            yield f"sqlite:///{Path(folder) / 'evota.db'}"
        return
    yield f"sqlite:///{fallback / 'evota.db'}"


BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def csms(dep: Deployment, db: Database, clock: SimClock) -> Iterator[Csms]:
    passwords = {
        cpid: add_charger(
            db,
            charge_point_id=cpid,
            site="berlin-north",
            time_zone="Europe/Berlin",
            actor="alice",
            now=clock.now(),
        )
        for cpid in ("CP1", "CP2")
    }
    app = create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)
    with serve_in_thread(app) as url:
        yield Csms(url.replace("http://", "ws://"), db, clock, passwords)


class RawCharger:
    """Frames in, frames out: enough OCPP-J to test the CSMS's answers to odd messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send_frame(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def reply(self) -> list[Any]:
        return list(json.loads(await self.ws.recv(decode=True)))

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        uid = f"m{next(self._ids)}"
        await self.send_frame([2, uid, action, payload])
        answer = await self.reply()
        assert answer[1] == uid
        return answer


def connecting(csms: Csms, cpid: str, protocol: str, *, password: str | None = None) -> Any:
    return connect(
        csms.ws_url(cpid),
        subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers={"Authorization": basic(cpid, password or csms.passwords[cpid])},
        open_timeout=5,
    )


BOOT = {
    "ocpp1.6": {"chargePointVendor": "Acme", "chargePointModel": "AC22", "firmwareVersion": "1.0.0"},
    "ocpp2.0.1": {
        "chargingStation": {"vendorName": "Acme", "model": "AC22", "firmwareVersion": "1.0.0"},
        "reason": "PowerUp",
    },
}


def wait_until(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` (the server finishes a closed session on its own loop)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
