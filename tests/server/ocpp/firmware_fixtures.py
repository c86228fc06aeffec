"""A CSMS with a firmware signing key and images, and simulated chargers to run against it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select

from evota.clock import SimClock
from evota.deployment import Deployment, init_home
from evota.domain.chargers import Protocol
from evota.domain.firmware import FirmwareTimeouts
from evota.security.firmware_signing import FirmwarePki
from evota.server.app import create_app
from evota.server.ocpp.rpc import CsmsContext
from evota.server.runner import serve_in_thread
from evota.server.services.chargers import add_charger
from evota.server.services.firmware import FirmwareView, add_firmware
from evota.server.services.firmware_queries import timeouts_resolver
from evota.server.store.charger_models import ChargerRow, FirmwareRequestRow, FirmwareStepRow
from evota.server.store.db import Database, open_database
from evota.sim.charger import REGRESSION_MARKER, Fault, SimCharger, SimConfig

FAST = FirmwareTimeouts(silence=__import__("datetime").timedelta(minutes=10))


@dataclasses.dataclass
class FirmwareCsms:
    url: str  # ws://127.0.0.1:PORT/ocpp
    dep: Deployment
    db: Database
    clock: SimClock
    pki: FirmwarePki
    root_pem: bytes
    images: dict[str, FirmwareView]
    folder: Path
    passwords: dict[str, str] = dataclasses.field(default_factory=dict)

    def add_chargers(
        self, ids: list[str], *, site: str = "berlin-north", plain: bool = False, **kw: Any
    ) -> None:
        def add(cpid: str) -> str:
            return add_charger(
                self.db,
                charge_point_id=cpid,
                site=site,
                time_zone="Europe/Berlin",
                signed_updates=not plain,
                actor="alice",
                now=self.clock.now(),
                **kw,
            )

        # scrypt releases the GIL: the passwords are hashed on every core.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            self.passwords.update(zip(ids, pool.map(add, ids), strict=True))

    def publish(self, version: str, *, regress: bool = False, model: str = "AC22") -> FirmwareView:
        if version in self.images:  # a module's shared server has it already
            return self.images[version]
        body = f"evota-sim:version={version}\n".encode() + (REGRESSION_MARKER + b"\n" if regress else b"")
        path = self.folder / f"ac22-{version}.bin"
        path.write_bytes(body + bytes(range(256)) * 16)
        view = add_firmware(
            self.db,
            self.pki,
            self.dep.home.path,
            path=path,
            vendor="Acme",
            model=model,
            version=version,
            actor="alice",
            now=self.clock.now(),
        )
        self.images[version] = view
        return view

    def sim(
        self, cpid: str, protocol: Protocol = Protocol.V201, *, faults: tuple[Fault, ...] = (), **kw: Any
    ) -> SimCharger:
        settings: dict[str, Any] = {
            "reboot_s": 0.05,
            "reconnect_s": 0.1,
            "step_s": 0.01,
            "session_every_s": None,
            "session_s": 0.02,
            **kw,
        }
        config = SimConfig(
            charge_point_id=cpid,
            csms_url=self.url,
            password=self.passwords[cpid],
            protocol=protocol,
            root_certificate=self.root_pem,
            faults=frozenset(faults),
            **settings,
        )
        return SimCharger(config)

    # ---- reading what the CSMS stored -------------------------------------------------------------
    def requests(self, cpid: str) -> list[tuple[str, str, str | None]]:
        """(message, state, reason) of the charger's requests, oldest first."""
        with self.db.sessions() as s:
            return [
                (r.message, r.state, r.reason)
                for r in s.scalars(
                    select(FirmwareRequestRow)
                    .join(ChargerRow, ChargerRow.id == FirmwareRequestRow.charger_id)
                    .where(ChargerRow.charge_point_id == cpid)
                    .order_by(FirmwareRequestRow.id)
                )
            ]

    def steps(self, cpid: str) -> list[str]:
        with self.db.sessions() as s:
            return list(
                s.scalars(
                    select(FirmwareStepRow.status)
                    .join(ChargerRow, ChargerRow.id == FirmwareStepRow.charger_id)
                    .where(ChargerRow.charge_point_id == cpid, FirmwareStepRow.source != "csms")
                    .order_by(FirmwareStepRow.id)
                )
            )


@pytest.fixture
def fw_csms(dep: Deployment, db: Database, clock: SimClock, tmp_path: Path) -> Iterator[FirmwareCsms]:
    """A fresh CSMS per test."""
    yield from _serve(dep, db, clock, tmp_path)


@pytest.fixture(scope="module")
def shared_fw_csms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirmwareCsms]:
    """One CSMS for a module's tests (`fw_csms_cleaned` empties its charger registry after each)."""
    from tests.conftest import START

    from .conftest import in_memory_sqlite

    folder = tmp_path_factory.mktemp("csms")
    clock = SimClock(START)
    dep = init_home(folder / "home", clock)
    with in_memory_sqlite(folder) as url:
        db = open_database(url)
        try:
            yield from _serve(dep, db, clock, folder)
        finally:
            db.dispose()


@pytest.fixture
def fw_csms_cleaned(shared_fw_csms: FirmwareCsms) -> Iterator[FirmwareCsms]:
    yield shared_fw_csms
    with shared_fw_csms.db.sessions.begin() as s:
        s.execute(delete(ChargerRow))  # their sessions, requests and steps go with them
    shared_fw_csms.passwords.clear()


@contextlib.contextmanager
def cheap_passwords() -> Iterator[None]:
    """Charger passwords hashed with scrypt at N = 2**10 instead of 2**14: fifty chargers'
    hashes and checks would otherwise cost the tests ten CPU seconds. A stored hash carries its
    own parameters, so checking is unchanged; `tests/server/ocpp/test_auth.py` and the
    password tests run at the real cost."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("evota.security.passwords._N", 2**10)
        yield


def _serve(dep: Deployment, db: Database, clock: SimClock, tmp_path: Path) -> Iterator[FirmwareCsms]:
    with cheap_passwords():
        yield from _serve_app(dep, db, clock, tmp_path)


def _serve_app(dep: Deployment, db: Database, clock: SimClock, tmp_path: Path) -> Iterator[FirmwareCsms]:
    pki = FirmwarePki(dep.home.path, dep.keys)
    root = pki.init(now=clock.now())
    folder = tmp_path / "images"
    folder.mkdir()
    ctx = CsmsContext(
        db, clock, timeouts=timeouts_resolver(db, FAST), reconcile_after_s=0.3, call_timeout_s=5
    )
    app = create_app(
        dep,
        db,
        refresh_interval_s=None,
        tick_interval_s=None,
        charger_interval_s=0.2,
        charger_decisions=True,
        csms=ctx,
    )
    with serve_in_thread(app) as url:
        yield FirmwareCsms(
            url.replace("http://", "ws://") + "/ocpp",
            dep,
            db,
            clock,
            pki,
            root.public_bytes(serialization.Encoding.PEM),
            {},
            folder,
        )


@contextlib.asynccontextmanager
async def running(*sims: SimCharger) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(s.run(stop)) for s in sims]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def start_campaign(
    csms: FirmwareCsms,
    name: str,
    version: str,
    *,
    waves: tuple[float, ...] = (100.0,),
    selector: Any = None,
    **policy: Any,
) -> None:
    """Create (alice), approve (bob) and start a charger campaign to `version`."""
    from evota.domain.campaign import CampaignEvent
    from evota.domain.charger_campaign import ChargerPolicy
    from evota.server.services import charger_campaigns as cc

    settings: dict[str, Any] = {"dwell": __import__("datetime").timedelta(0), **policy}
    cc.create_campaign(
        csms.db,
        csms.dep.home.path,
        csms.root_pem,
        name=name,
        vendor="Acme",
        model="AC22",
        version=version,
        selector=selector or cc.ChargerSelector(),
        waves=waves,
        policy=ChargerPolicy(**settings),
        created_by="alice",
        now=csms.clock.now(),
    )
    cc.move_campaign(csms.db, name, CampaignEvent.APPROVE, actor="bob", now=csms.clock.now())
    cc.move_campaign(csms.db, name, CampaignEvent.START, actor="alice", now=csms.clock.now())


def campaign_state(csms: FirmwareCsms, name: str) -> str:
    from evota.server.services.charger_campaigns import campaign_summary

    return campaign_summary(csms.db, name).state
