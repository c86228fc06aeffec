"""What the campaign server costs, against baselines measured in the same run, on PostgreSQL.

    .venv/bin/python benchmarks/campaign_server.py [--checkins N] [--clients C]
                                                   [--vehicles 100000 1000000] [--skip-checkins]

1. Check-ins over HTTP on loopback: `evota serve` (a subprocess, uvicorn, one process) takes
   real signed version manifests with energy states from C client threads (httpx, keep-alive) at
   POST /api/v1/device/checkin: verification of 4 Ed25519 signatures, one transaction that
   locks the vehicle and records ECUs, energy state and campaigns. The baseline is a bare
   FastAPI route at the same path that does nothing, run by the same runner
   (`evota.server.runner.serve_forever`) in a subprocess, fed the same bodies by the same client.
2. Planner tick for each fleet size: vehicles, ECUs and one running campaign (waves 1, 5, 20,
   50, 100 %, throttle 50) bulk-loaded with INSERT … SELECT generate_series; every vehicle
   passes the gates. One `tick` on wave 1 and one on the last wave (waves before it updated),
   each twice: the first tick writes a wait reason ("throttle") on every vehicle it does not
   offer, the second finds nothing changed (the steady state, every tick after). The tick
   includes the director signing the offers it makes (at most the throttle: 50); the table
   gives that part apart. The baseline is a plain scan: the vehicle columns the tick reads,
   every row of the vehicles table fetched through SQLAlchemy into Python.

The whole run takes about 6 minutes on 2 cores (the 1,000,000-vehicle part: 5, most of it
the bulk load and the two last-wave ticks); `--vehicles 100000` leaves that part out.

PostgreSQL: EVOTA_BENCH_POSTGRES_URL (default: the local server's database `test`, trust
auth); each part creates its own database and drops it. Machines here are noisy: read the
ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from securesystemslib.signer import CryptoSigner
from sqlalchemy import select, update

from evota.clock import SystemClock
from evota.deployment import Deployment, init_home
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.domain.gates import Preconditions
from evota.domain.planner import RolloutPolicy, policy_to_dict
from evota.domain.registry import parse_vehicle_csv
from evota.security.director import Director
from evota.security.manifest import EcuReport, sign_ecu_report, sign_vehicle_manifest
from evota.server.services import controller
from evota.server.services.devices import provision
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database, open_database
from evota.server.store.models import CampaignRow, CampaignVehicleRow, VehicleRow

ADMIN_URL = os.environ.get("EVOTA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RELEASE = "energy-2026-11"
ECUS = (
    ("GW-1", "gateway", "gw-tcu4", "1.0.0"),
    ("BMS-1", "bms", "bms-gen2", "2.3.0"),
    ("VCMS-1", "vcms", "vcms-gen3", "3.0.0"),
)
WAVES = [1.0, 5.0, 20.0, 50.0, 100.0]
THROTTLE = 50
CHUNK = 100_000  # vehicles per bulk INSERT

console = Console(width=None if sys.stdout.isatty() else 150)  # a pipe or a file has no width


def vin(i: int) -> str:
    return f"WVWZZZ1JZ{i:08d}"


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextlib.contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    name = f"evota_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_home(base: Path) -> Deployment:
    """A home with the two-image release published."""
    dep = init_home(base / "home", SystemClock())
    fw = base / "fw"
    fw.mkdir()
    (fw / "vcms-3.1.0.bin").write_bytes(bytes(range(256)) * 64)
    (fw / "bms-2.4.0.bin").write_bytes(bytes(reversed(range(256))) * 128)
    vcms = dep.images.add_image(
        fw / "vcms-3.1.0.bin", ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.1.0"
    )
    bms = dep.images.add_image(
        fw / "bms-2.4.0.bin",
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.0",
        requires=["vcms>=3.1"],
    )
    dep.images.add_bundle(RELEASE, [vcms.path, bms.path])
    return dep


# ---- 1. check-ins over HTTP ----------------------------------------------------------------------
def bare_app_main(port: int) -> None:
    """The baseline server: one route at the check-in path that does nothing (subprocess mode)."""
    from fastapi import FastAPI

    from evota.server.runner import serve_forever

    app = FastAPI()

    @app.post("/api/v1/device/checkin")
    def check_in() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    serve_forever(app, "127.0.0.1", port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Run a server subprocess on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [*args, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def signed_bodies(fleet: list[tuple[str, dict[str, CryptoSigner]]], rounds: int) -> list[list[bytes]]:
    """Per round, one check-in body per vehicle, with counters rising round by round."""
    out: list[list[bytes]] = []
    with progress() as bar:
        task = bar.add_task("signing manifests", total=rounds * len(fleet))
        for r in range(1, rounds + 1):
            now = dt.datetime.now(dt.UTC)
            bodies = []
            for v, signers in fleet:
                reports = {
                    serial: sign_ecu_report(
                        EcuReport(serial, f"factory/{serial.lower()}.bin", 100, {"sha256": "0" * 64}, now, r),
                        signers[serial],
                    )
                    for serial, *_ in ECUS
                }
                manifest = sign_vehicle_manifest(
                    vin=v, primary_serial="GW-1", reports=reports, time=now, counter=r, signer=signers["GW-1"]
                )
                energy = {
                    "soc_pct": 80.0,
                    "charging": False,
                    "plugged_in": True,
                    "gear": "P",
                    "ambient_c": 12.0,
                    "at": now.isoformat(),
                }
                bodies.append(json.dumps({"manifest": json.loads(manifest), "energy": energy}).encode())
                bar.advance(task)
            out.append(bodies)
    return out


def post_all(url: str, tokens: list[str], rounds: list[list[bytes]], clients: int, label: str) -> float:
    """Post every body from `clients` threads, each with its keep-alive connection; a vehicle
    always goes through the same thread, so its check-ins arrive in counter order. The first
    round warms up (untimed); returns the check-ins per second of the others."""
    done = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def worker(w: int, batch: list[list[bytes]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for bodies in batch:
                for i in range(w, len(bodies), clients):
                    headers = {"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json"}
                    r = client.post("/api/v1/device/checkin", content=bodies[i], headers=headers)
                    with lock:
                        done[0] += 1
                        if r.status_code != 200:
                            errors.append(f"{label}: HTTP {r.status_code}: {r.text[:300]}")
                            return

    def run(batch: list[list[bytes]]) -> float:
        threads = [threading.Thread(target=worker, args=(w, batch)) for w in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        with progress() as bar:
            task = bar.add_task(label, total=sum(len(b) for b in batch))
            while any(t.is_alive() for t in threads):
                time.sleep(0.2)
                bar.update(task, completed=done[0])
            bar.update(task, completed=done[0])
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(errors[0])
        return elapsed

    run(rounds[:1])
    done[0] = 0
    return sum(len(b) for b in rounds[1:]) / run(rounds[1:])


def bench_checkins(base: Path, checkins: int, clients: int, fleet_size: int) -> tuple[float, float]:
    dep = new_home(base)
    with scratch_database("checkin") as url:
        db = open_database(url)
        try:
            now = dt.datetime.now(dt.UTC)
            ecus = "|".join(f"{t}:{s}:{h}:{v}" for s, t, h, v in ECUS)
            csv = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n" + "".join(
                f"{vin(i)},eVan-3,berlin,eu,cold,Europe/Berlin,,{ecus}\n" for i in range(fleet_size)
            )
            import_vehicles(db, parse_vehicle_csv(csv), now, actor="bench")
            fleet: list[tuple[str, dict[str, CryptoSigner]]] = []
            tokens: list[str] = []
            with progress() as bar:
                task = bar.add_task("provisioning vehicles", total=fleet_size)
                for i in range(fleet_size):
                    signers = {s: CryptoSigner.generate_ed25519() for s, *_ in ECUS}
                    identity = VehicleIdentity(
                        vin(i),
                        "GW-1",
                        tuple(
                            EcuIdentity(
                                s,
                                t,
                                h,
                                {"keyid": signers[s].public_key.keyid, **signers[s].public_key.to_dict()},
                            )
                            for s, t, h, _ in ECUS
                        ),
                    )
                    tokens.append(provision(db, dep.director, identity, actor="bench", now=now))
                    fleet.append((vin(i), signers))
                    bar.advance(task)
        finally:
            db.dispose()
        rounds = signed_bodies(fleet, 1 + max(1, checkins // fleet_size))
        env = {**os.environ, "EVOTA_DATABASE_URL": url}
        evota_cmd = [sys.executable, "-m", "evota", "serve", "--home", str(dep.home.path)]
        evota_args = [*evota_cmd, "--host", "127.0.0.1", "--tick-seconds", "0"]
        with server(evota_args, env, base / "evota.log") as evota_url:
            evota_rate = post_all(evota_url, tokens, rounds, clients, "evota check-ins")
        with server([sys.executable, __file__, "--serve-bare"], env, base / "bare.log") as bare_url:
            bare_rate = post_all(bare_url, tokens, rounds, clients, "bare FastAPI route")
    return evota_rate, bare_rate


# ---- 2. planner tick ------------------------------------------------------------------------------
class TimedDirector(Director):
    """The director, keeping the time spent signing assignments (the dispatch's share)."""

    signing_s = 0.0

    def assign_release(self, vin: str, release: str) -> dict[str, str]:
        start = time.perf_counter()
        try:
            return super().assign_release(vin, release)
        finally:
            self.signing_s += time.perf_counter() - start


# Bulk loads for vehicles lo..hi: 3 ECUs each; waves by a hash of the id, 1, 5, 20, 50, 100 %.
LOAD_VEHICLES = """
INSERT INTO vehicles (vin, model, depot, region, climate_zone, time_zone, primary_serial, created_at,
                      soc, soh, charging, plugged_in, gear, ambient_c, energy_reported_at,
                      provisioned_at, manifest_counter)
SELECT 'WVWZZZ1JZ' || lpad(g::text, 8, '0'), 'eVan-3', 'depot-' || mod(g, 40), 'eu-' || mod(g, 4),
       (ARRAY['cold', 'temperate', 'warm'])[1 + mod(g, 3)],
       (ARRAY['Europe/Berlin', 'Europe/Oslo', 'Europe/Madrid'])[1 + mod(g, 3)], 'GW-1', %(now)s,
       80, 97, false, true, 'P', 12, %(now)s, %(now)s, 0
FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
"""
LOAD_ECUS = """
INSERT INTO ecus (vehicle_id, serial, ecu_type, hardware_id, installed_version, report_counter)
SELECT v.id, e.serial, e.ecu_type, e.hw, e.version, 0
FROM vehicles AS v
CROSS JOIN (VALUES ('GW-1', 'gateway', 'gw-tcu4', '1.0.0'), ('BMS-1', 'bms', 'bms-gen2', '2.3.0'),
                   ('VCMS-1', 'vcms', 'vcms-gen3', '3.0.0')) AS e (serial, ecu_type, hw, version)
WHERE v.vin BETWEEN 'WVWZZZ1JZ' || lpad(%(lo)s::text, 8, '0') AND 'WVWZZZ1JZ' || lpad(%(hi)s::text, 8, '0')
"""
LOAD_CAMPAIGN_VEHICLES = """
INSERT INTO campaign_vehicles (campaign_id, vehicle_id, wave, status, assigned, updated_at)
SELECT %(c)s, id,
       CASE WHEN h < 100 THEN 0 WHEN h < 500 THEN 1 WHEN h < 2000 THEN 2 WHEN h < 5000 THEN 3 ELSE 4 END,
       'pending', false, %(now)s
FROM (SELECT id, mod(id::bigint * 2654435761, 10000) AS h
      FROM vehicles
      WHERE vin BETWEEN 'WVWZZZ1JZ' || lpad(%(lo)s::text, 8, '0')
                    AND 'WVWZZZ1JZ' || lpad(%(hi)s::text, 8, '0')) AS v
"""


def bulk_load(url: str, n: int, now: dt.datetime) -> int:
    """n vehicles (3 ECUs each, fresh energy states) and one running campaign over all of them,
    waves drawn by a hash of the vehicle id; returns the campaign id."""
    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    policy = RolloutPolicy(
        dwell=dt.timedelta(0),
        max_concurrent=THROTTLE,
        error_threshold_pct=100.0,
        preconditions=Preconditions(max_state_age=dt.timedelta(days=1)),  # the run may be long
    )
    with psycopg.connect(raw) as conn, progress() as bar:
        campaign_id = conn.execute(
            "INSERT INTO campaigns (name, release, selector, waves, policy, state, current_wave,"
            " wave_started_at, created_by, approved_by, created_at, updated_at)"
            " VALUES ('bench', %s, '{}', %s, %s, 'running', 0, %s, 'alice', 'bob', %s, %s) RETURNING id",
            (RELEASE, json.dumps(WAVES), json.dumps(policy_to_dict(policy)), now, now, now),
        ).fetchone()
        assert campaign_id is not None
        task = bar.add_task(f"loading {n:,} vehicles", total=n)
        for lo in range(1, n + 1, CHUNK):
            hi = min(n, lo + CHUNK - 1)
            params = {"lo": lo, "hi": hi, "now": now, "c": campaign_id[0]}
            for statement in (LOAD_VEHICLES, LOAD_ECUS, LOAD_CAMPAIGN_VEHICLES):
                conn.execute(statement, params)
            conn.commit()
            bar.update(task, completed=hi)
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return int(campaign_id[0])


def register_next_offers(db: Database, director: Director, campaign_id: int, wave: int) -> None:
    """Register with the director the vehicles the next tick will offer (its dispatch signs
    them): the first pending ones of the waves so far in (wave, VIN) order, as the planner
    picks. Registering the whole fleet would take hours and change nothing measured."""
    with db.sessions() as session:
        vins = session.scalars(
            select(VehicleRow.vin)
            .join(CampaignVehicleRow, CampaignVehicleRow.vehicle_id == VehicleRow.id)
            .where(
                CampaignVehicleRow.campaign_id == campaign_id,
                CampaignVehicleRow.wave <= wave,
                CampaignVehicleRow.status == "pending",
            )
            .order_by(CampaignVehicleRow.wave, VehicleRow.vin)
            .limit(THROTTLE)
        ).all()
    known = set(director.vehicles())
    for v in vins:
        if v not in known:
            director.register_vehicle(
                VehicleIdentity(v, "GW-1", tuple(EcuIdentity(s, t, h) for s, t, h, _ in ECUS))
            )


def scan_s(db: Database) -> float:
    """The baseline: every vehicle row, the columns the tick reads, into Python (best of 2)."""
    query = select(
        VehicleRow.id,
        VehicleRow.vin,
        VehicleRow.time_zone,
        VehicleRow.soc,
        VehicleRow.soh,
        VehicleRow.charging,
        VehicleRow.plugged_in,
        VehicleRow.gear,
        VehicleRow.ambient_c,
        VehicleRow.energy_reported_at,
        VehicleRow.provisioned_at,
    )
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        with db.sessions() as session:
            rows = session.execute(query).all()
        best = min(best, time.perf_counter() - start)
        del rows
    return best


def timed_tick(db: Database, director: TimedDirector) -> tuple[float, float, controller.TickReport]:
    director.signing_s = 0.0
    with console.status("ticking"):
        start = time.perf_counter()
        report = controller.tick(db, director, dt.datetime.now(dt.UTC))
        elapsed = time.perf_counter() - start
    return elapsed, director.signing_s, report


def bench_tick(
    base: Path, n: int
) -> tuple[float, float, list[tuple[str, float, float, controller.TickReport]]]:
    """Returns the load time, the scan time and, per tick, (label, seconds, signing s, report)."""
    dep = new_home(base)
    director = TimedDirector(dep.home, dep.keys, dep.clock, dep.settings.expiry, dep.images)
    ticks: list[tuple[str, float, float, controller.TickReport]] = []
    with scratch_database(f"tick{n}") as url:
        db = open_database(url)
        try:
            start = time.perf_counter()
            campaign_id = bulk_load(url, n, dt.datetime.now(dt.UTC))
            load = time.perf_counter() - start
            scan = scan_s(db)
            register_next_offers(db, director, campaign_id, 0)
            ticks.append(("wave 1 (1 %), first tick", *timed_tick(db, director)))
            ticks.append(("wave 1 (1 %), steady state", *timed_tick(db, director)))
            with db.sessions.begin() as session:  # the earlier waves are done: move to the last
                session.execute(
                    update(CampaignVehicleRow)
                    .where(CampaignVehicleRow.wave < len(WAVES) - 1)
                    .values(status="updated", reasons=None, assigned=True)
                )
                campaign = session.get_one(CampaignRow, campaign_id)
                campaign.current_wave = len(WAVES) - 1
            register_next_offers(db, director, campaign_id, len(WAVES) - 1)
            ticks.append(("last wave (100 %), first tick", *timed_tick(db, director)))
            ticks.append(("last wave (100 %), steady state", *timed_tick(db, director)))
        finally:
            db.dispose()
    return load, scan, ticks


# ---- main -------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkins", type=int, default=4000, help="timed check-ins per server")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--fleet", type=int, default=200, help="provisioned vehicles sending check-ins")
    parser.add_argument(
        "--vehicles", type=int, nargs="*", default=[100_000, 1_000_000], help="fleet sizes to tick"
    )
    parser.add_argument("--skip-checkins", action="store_true", help="only the planner ticks")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        bare_app_main(args.port)
        return

    results = Table(title="evota campaign server on PostgreSQL: ratios against baselines of the same run")
    results.add_column("measurement")
    results.add_column("evota", justify="right")
    results.add_column("baseline", justify="right")
    results.add_column("ratio", justify="right")
    results.add_column("of evota: signing", justify="right")
    results.add_column("ratio w/o signing", justify="right")
    with tempfile.TemporaryDirectory(prefix="evota-bench-") as tmp:
        if not args.skip_checkins:
            evota_rate, bare_rate = bench_checkins(
                Path(tmp) / "checkin", args.checkins, args.clients, args.fleet
            )
            results.add_row(
                f"check-ins/s, HTTP, {args.clients} clients (baseline: bare FastAPI route)",
                f"{evota_rate:,.0f}/s",
                f"{bare_rate:,.0f}/s",
                f"{bare_rate / evota_rate:.1f}x slower",
                "",
                "",
            )
        for n in args.vehicles:
            load, scan, ticks = bench_tick(Path(tmp) / f"tick{n}", n)
            console.print(f"{n:,} vehicles: bulk load {load:.1f} s, scan {scan:.2f} s")
            results.add_section()
            for label, seconds, signing, report in ticks:
                results.add_row(
                    f"tick, {n:,} vehicles, {label} (offers {report.offered}; baseline: scan)",
                    f"{seconds:.2f} s",
                    f"{scan:.2f} s",
                    f"{seconds / scan:.1f}x",
                    f"{signing:.2f} s ({report.assigned})",
                    f"{(seconds - signing) / scan:.1f}x",
                )
    console.print(results)


if __name__ == "__main__":
    main()
