"""Issue 3, "killed at any instant": the rollout controller resumes from the database without
losing or repeating an assignment.

A real `evota serve` process ticks a running campaign on PostgreSQL every 50 ms and is killed
with SIGKILL twelve times, restarted each time. The kills take turns: at a seeded random
delay after the server is up; with offers decided and committed but not signed (the test
holds the home's write lock, so the director waits); and with an offer signed by the
director but its outbox flag not written (the test holds the rows' locks, so the flag update
waits). Between runs the vehicles whose director targets name the release commit it, so the
campaign moves through its waves, except after every other "signed" kill, when they are slow
and the next leader must finish that offer without signing it again. A last clean run
completes the campaign. Then:

- nothing lost: every offered or updated vehicle's director targets assign the release's
  images, every offer is flagged signed, and the director assigns nothing the database does
  not show as offered or updated;
- nothing repeated: every vehicle's director targets are at version 2 (1: the empty targets
  of its registration, 2: its one assignment), and no other targets version was ever written;
- the audit chain verifies, and its `campaign.tick` entries offer each vehicle exactly once,
  advance to the last wave once and complete the campaign once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import psycopg
import pytest
from sqlalchemy import func, select, update

from evota.clock import SystemClock
from evota.deployment import Deployment, init_home
from evota.domain.campaign import CampaignEvent
from evota.domain.planner import DeviceStatus, RolloutPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.domain.steps import Step
from evota.fsutil import exclusive_lock
from evota.server.services import audit, devices
from evota.server.services.campaigns import Selector, create_campaign, move_campaign
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database, open_database
from evota.server.store.models import AuditRow, CampaignRow, CampaignVehicleRow, VehicleRow

from ..conftest import make_vehicle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ADMIN_URL = os.environ.get("EVOTA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SEED = 20261122
FLEET = 40
WAVES = [25, 100]  # 10 vehicles, then the other 30
# A throttle of 5 splits the 40 offers into 8 signed batches, so that most runs of the server
# find a batch to decide and sign when they start, and a kill has work to interrupt.
MAX_CONCURRENT = 5
KILLS = 12
KINDS = ("random", "decided", "signed")  # the kill moments, in turn (see run_and_kill)
RELEASE = "energy-2026-11"
CAMPAIGN = "crash-nov"
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0"
START_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 40.0


def vin(i: int) -> str:
    return f"WVWZZZ1JZ3W{i:06d}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards. No server is a failure, not a skip."""
    name = f"evota_crash_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at {ADMIN_URL} is unreachable (set EVOTA_TEST_POSTGRES_URL): {e}")
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclasses.dataclass
class World:
    dep: Deployment
    db: Database
    url: str
    release: dict[str, str]  # ECU serial → image path: what an assignment of RELEASE signs

    def statuses(self) -> dict[str, tuple[str, bool]]:
        """VIN → (campaign status, assigned flag)."""
        with self.db.sessions() as s:
            rows = s.execute(
                select(VehicleRow.vin, CampaignVehicleRow.status, CampaignVehicleRow.assigned).join(
                    CampaignVehicleRow, CampaignVehicleRow.vehicle_id == VehicleRow.id
                )
            )
            return {v: (status, assigned) for v, status, assigned in rows}

    def unsigned_offers(self) -> int:
        with self.db.sessions() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(CampaignVehicleRow)
                    .where(
                        CampaignVehicleRow.status == DeviceStatus.OFFERED.value,
                        CampaignVehicleRow.assigned.is_(False),
                    )
                )
                or 0
            )

    def campaign_state(self) -> str:
        with self.db.sessions() as s:
            return str(s.scalars(select(CampaignRow.state).where(CampaignRow.name == CAMPAIGN)).one())

    def signed(self, v: str) -> bool:
        return self.dep.director.assignments(v) == self.release

    def vehicles_commit(self) -> int:
        """What good agents do: each vehicle whose director targets name the release installs
        it and reports the commit (whatever the database's outbox flag says)."""
        now = dt.datetime.now(dt.UTC)
        committed = 0
        for v, (status, _) in self.statuses().items():
            if status == DeviceStatus.OFFERED.value and self.signed(v):
                devices.report_step(
                    self.db, v, release=RELEASE, step=Step.COMMITTED, reason=None, at=now, now=now
                )
                committed += 1
        return committed


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[World]:
    clock = SystemClock()
    dep = init_home(tmp_path / "home", clock)
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    (firmware / "vcms-3.1.0.bin").write_bytes(os.urandom(3000))
    (firmware / "bms-2.4.0.bin").write_bytes(os.urandom(5000))
    vcms = dep.images.add_image(
        firmware / "vcms-3.1.0.bin", ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.1.0"
    )
    bms = dep.images.add_image(
        firmware / "bms-2.4.0.bin",
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.0",
        requires=["vcms>=3.1"],
    )
    dep.images.add_bundle(RELEASE, [vcms.path, bms.path])
    db = open_database(postgres_url)
    try:
        now = clock.now()
        depots = ("berlin", "hamburg", "munich", "oslo")
        rows = "".join(
            f"{vin(i)},eVan-3,{depots[i % 4]},eu,{'cold' if i % 4 == 3 else 'temperate'},"
            f"Europe/Berlin,,{ECUS}\n"
            for i in range(FLEET)
        )
        import_vehicles(db, parse_vehicle_csv(HEADER + rows), now, actor="alice")
        for i in range(FLEET):
            devices.provision(db, dep.director, make_vehicle(vin(i)).identity, actor="alice", now=now)
        with db.sessions.begin() as s:  # every vehicle passes the gates (state age limit: 1 h)
            s.execute(
                update(VehicleRow).values(
                    soc=80.0,
                    soh=97.0,
                    charging=False,
                    plugged_in=True,
                    gear="P",
                    ambient_c=12.0,
                    energy_reported_at=now,
                )
            )
        policy = RolloutPolicy(
            dwell=dt.timedelta(0), max_concurrent=MAX_CONCURRENT, error_threshold_pct=100.0
        )
        summary = create_campaign(
            db,
            name=CAMPAIGN,
            release=RELEASE,
            selector=Selector(),
            waves=WAVES,
            policy=policy,
            created_by="alice",
            now=now,
        )
        assert list(summary.wave_sizes) == [10, 30]
        move_campaign(db, CAMPAIGN, CampaignEvent.APPROVE, actor="bob", now=now)
        move_campaign(db, CAMPAIGN, CampaignEvent.START, actor="alice", now=now)
        yield World(dep, db, postgres_url, {"BMS-1": bms.path, "VCMS-1": vcms.path})
    finally:
        db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `evota serve` process of the world's home, ticking every 50 ms."""

    def __init__(self, world: World, log: IO[bytes]) -> None:
        self.port = free_port()
        env = {**os.environ, "EVOTA_DATABASE_URL": world.url}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evota",
                "serve",
                "--home",
                str(world.dep.home.path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--tick-seconds",
                "0.05",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_up(self) -> None:
        """Until /healthz answers: the lifespan has started the controller loop by then."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("evota serve did not start (see serve.log)")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL, "evota serve died on its own"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def run_and_kill(world: World, log: IO[bytes], kind: str, rng: random.Random) -> None:
    """Start a server and SIGKILL it at a moment of the given kind:

    - "random": 50-400 ms after it answers, wherever its ticks are;
    - "decided": offers committed, none signed (the test holds the home's write lock, so the
      director cannot sign);
    - "signed": an offer signed by the director, its `assigned` flag not written (the test
      then holds the offer rows' locks in PostgreSQL, so the flag update waits).
    """
    with contextlib.ExitStack() as write_lock:
        if kind != "random":
            write_lock.enter_context(exclusive_lock(world.dep.home.lock_file))
        server = Server(world, log)
        try:
            server.wait_up()
            if kind == "random":
                time.sleep(rng.uniform(0.05, 0.4))
            elif wait_for(lambda: world.unsigned_offers() > 0, 3.0) and kind == "signed":
                kill_after_a_signature(world, server, write_lock)
            server.kill()
        finally:
            server.stop()


def kill_after_a_signature(world: World, server: Server, write_lock: contextlib.ExitStack) -> None:
    with psycopg.connect(world.url.replace("+psycopg", ""), connect_timeout=5) as rows:
        vins = [
            v
            for (v,) in rows.execute(
                "SELECT v.vin FROM campaign_vehicles cv JOIN vehicles v ON v.id = cv.vehicle_id"
                " WHERE cv.status = 'offered' AND NOT cv.assigned FOR UPDATE OF cv"
            )
            if not world.signed(v)
        ]
        write_lock.close()  # the director signs now; the flag update waits for the rows
        if vins:
            assert wait_for(lambda: any(world.signed(v) for v in vins), 10.0), "nothing signed"
        server.kill()
        rows.rollback()


def assert_db_and_director_agree(world: World) -> dict[str, tuple[str, bool]]:
    """No lost assignment: what the database offered is signed, and only that is signed."""
    statuses = world.statuses()
    assert len(statuses) == FLEET
    live = (DeviceStatus.OFFERED.value, DeviceStatus.UPDATED.value)
    for v, (status, assigned) in statuses.items():
        if status in live:
            assert world.signed(v), f"{v} is {status} but its director targets do not assign {RELEASE}"
        else:
            assert world.dep.director.assignments(v) == {}, f"{v} is {status} but the director assigns it"
        if status == DeviceStatus.OFFERED.value:
            assert assigned, f"{v}: offer signed but not flagged"
        # An updated row may keep assigned = false: killed between the signature and the flag,
        # the vehicle saw its signed targets and committed before the next leader flagged it.
    return statuses


def test_sigkilled_controller_loses_and_repeats_no_assignment(world: World, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    decided = 0  # kills that left offers decided but not flagged signed
    signed_unflagged = 0  # kills that left an offer signed by the director but not flagged
    with (tmp_path / "serve.log").open("wb") as log:
        for k in range(KILLS):
            kind = KINDS[k % len(KINDS)]
            run_and_kill(world, log, kind, rng)
            unsigned = [
                v
                for v, (status, assigned) in world.statuses().items()
                if status == "offered" and not assigned
            ]
            decided += bool(unsigned)
            signed_unflagged += any(world.signed(v) for v in unsigned)
            # While no server runs, the vehicles act on what was signed; but after every other
            # "signed" kill they are slow, so the next leader finds that offer signed and not
            # flagged, and signs it again (which must sign nothing new).
            if kind != "signed" or k // len(KINDS) % 2 == 0:
                world.vehicles_commit()

        server = Server(world, log)
        try:
            server.wait_up()
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while world.unsigned_offers():  # the new leader first finishes the outbox
                assert time.monotonic() < deadline, f"offers left unsigned: {world.statuses()}"
                time.sleep(0.02)
            assert_db_and_director_agree(world)
            while world.campaign_state() != "completed":
                assert time.monotonic() < deadline, f"campaign not completed: {world.statuses()}"
                world.vehicles_commit()
                time.sleep(0.05)
        finally:
            server.stop()

    # The kills hit both crash windows of the outbox: before and after the signature.
    assert decided >= KILLS // len(KINDS) and signed_unflagged >= 2, (decided, signed_unflagged)

    statuses = assert_db_and_director_agree(world)
    assert {status for status, _ in statuses.values()} == {DeviceStatus.UPDATED.value}

    # Nothing repeated: one signed assignment per vehicle, and no other version ever written.
    for v in world.dep.director.vehicles():
        chain = world.dep.director.chain(v)
        assert chain.targets().signed.version == 2, v
        written = sorted(p.name for p in chain.folder.glob("*.targets.json"))
        assert written == ["1.targets.json", "2.targets.json"], (v, written)

    # The audit log verifies, and its controller entries offer each vehicle exactly once.
    assert audit.verify(world.db) == []
    with world.db.sessions() as s:
        ticks = list(
            s.scalars(
                select(AuditRow.details).where(AuditRow.action == "campaign.tick").order_by(AuditRow.seq)
            )
        )
    offered: list[str] = []
    for d in ticks:
        vins = d.get("offered", [])
        assert isinstance(vins, list)
        offered.extend(vins)
    assert len(offered) == len(set(offered)) == FLEET
    assert set(offered) == set(statuses)
    assert [d["advanced_to_wave"] for d in ticks if "advanced_to_wave" in d] == [2]
    assert sum(1 for d in ticks if d.get("completed")) == 1
