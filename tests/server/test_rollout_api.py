"""A campaign end to end through the operator and device APIs and the controller, on SQLite
and PostgreSQL: provisioning, four-eyes approval over tokens, check-ins with signed manifests,
gates, throttle, waves with dwell, step reports, reconciliation, the error gate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.security.manifest import EcuReport, sign_ecu_report, sign_vehicle_manifest
from evota.server.app import create_app
from evota.server.services.controller import tick
from evota.server.services.users import add_user
from evota.server.store.db import Database
from evota.server.store.models import AuditRow, CampaignVehicleRow, DeviceStepRow, TelemetryRow, VehicleRow

from ..conftest import Published, Vehicle, make_vehicle

HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0"
FLEET = 20


@dataclasses.dataclass
class Car:
    vehicle: Vehicle
    token: str
    counter: int = 0
    installed: dict[str, str] = dataclasses.field(default_factory=dict)  # serial → path

    @property
    def vin(self) -> str:
        return self.vehicle.vin


@dataclasses.dataclass
class World:
    client: TestClient
    dep: Deployment
    db: Database
    clock: SimClock
    tokens: dict[str, str]
    cars: list[Car]
    published: Published

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def manifest(
        self, car: Car, installed: dict[str, str] | None = None, *, vehicle_counter: int | None = None
    ) -> dict[str, Any]:
        car.counter += 1
        now = self.clock.now()
        paths = {
            **{e.serial: f"factory/{e.serial.lower()}.bin" for e in car.vehicle.identity.ecus},
            **car.installed,
        }
        paths.update(installed or {})
        reports = {
            serial: sign_ecu_report(
                EcuReport(
                    serial, path, 100, {"sha256": hashlib.sha256(path.encode()).hexdigest()}, now, car.counter
                ),
                car.vehicle.signers[serial],
            )
            for serial, path in paths.items()
        }
        data = sign_vehicle_manifest(
            vin=car.vin,
            primary_serial="GW-1",
            reports=reports,
            time=now,
            counter=car.counter if vehicle_counter is None else vehicle_counter,
            signer=car.vehicle.signers["GW-1"],
        )
        return dict(json.loads(data))

    def check_in(self, car: Car, *, soc: float = 80.0, installed: dict[str, str] | None = None) -> Any:
        body = {
            "manifest": self.manifest(car, installed),
            "energy": {
                "soc_pct": soc,
                "charging": False,
                "plugged_in": True,
                "gear": "P",
                "ambient_c": 12.0,
                "at": self.clock.now().isoformat(),
            },
        }
        return self.client.post(
            "/api/v1/device/checkin", json=body, headers={"Authorization": f"Bearer {car.token}"}
        )

    def step(self, car: Car, step: str, reason: str | None = None) -> Any:
        body = {
            "release": "energy-2026-11",
            "step": step,
            "reason": reason,
            "at": self.clock.now().isoformat(),
        }
        return self.client.post(
            "/api/v1/device/steps", json=body, headers={"Authorization": f"Bearer {car.token}"}
        )

    def statuses(self) -> dict[str, str]:
        with self.db.sessions() as s:
            rows = s.execute(
                select(VehicleRow.vin, CampaignVehicleRow.status).join(
                    CampaignVehicleRow, CampaignVehicleRow.vehicle_id == VehicleRow.id
                )
            )
            return {vin: status for vin, status in rows}

    def tick(self) -> Any:
        return tick(self.db, self.dep.director, self.clock.now())


@pytest.fixture
def world(dep: Deployment, db: Database, clock: SimClock, published: Published) -> Iterator[World]:
    app = create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)
    with TestClient(app) as client:
        tokens = {"root": add_user(db, "root", "admin", actor="test", now=clock.now())}
        world = World(client, dep, db, clock, tokens, [], published)
        for name, role in (("alice", "operator"), ("bob", "approver"), ("vera", "viewer")):
            r = client.post("/api/v1/users", json={"name": name, "role": role}, headers=world.as_("root"))
            assert r.status_code == 201, r.text
            tokens[name] = r.json()["token"]
        rows = "".join(
            f"WVWZZZ1JZ3W{i:06d},eVan-3,berlin,eu,cold,Europe/Berlin,,{ECUS}\n" for i in range(FLEET)
        )
        r = client.post("/api/v1/vehicles/import", json={"csv": HEADER + rows}, headers=world.as_("alice"))
        assert r.status_code == 201 and r.json() == {"imported": FLEET}, r.text
        for i in range(FLEET):
            vehicle = make_vehicle(f"WVWZZZ1JZ3W{i:06d}")
            body = {
                "primary_serial": "GW-1",
                "ecus": [
                    {
                        "serial": e.serial,
                        "ecu_type": e.ecu_type,
                        "hardware_id": e.hardware_id,
                        "public_key": e.public_key,
                    }
                    for e in vehicle.identity.ecus
                ],
            }
            r = client.post(
                f"/api/v1/vehicles/{vehicle.vin}/provision", json=body, headers=world.as_("alice")
            )
            assert r.status_code == 201, r.text
            world.cars.append(Car(vehicle, r.json()["token"]))
        yield world


def start_campaign(world: World, **policy: Any) -> None:
    body = {
        "name": "energy-nov",
        "release": "energy-2026-11",
        "waves": [10, 50, 100],
        "policy": {"dwell_s": 3600, "max_concurrent": 3, **policy},
    }
    r = world.client.post("/api/v1/campaigns", json=body, headers=world.as_("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["wave_sizes"] == [2, 8, 10]
    r = world.client.post("/api/v1/campaigns/energy-nov/approve", headers=world.as_("alice"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = world.client.post("/api/v1/campaigns/energy-nov/approve", headers=world.as_("bob"))
    assert r.status_code == 200 and r.json()["approved_by"] == "bob"
    r = world.client.post("/api/v1/campaigns/energy-nov/start", headers=world.as_("alice"))
    assert r.status_code == 200 and r.json()["state"] == "running"


def install(world: World, car: Car) -> None:
    """What a good agent does with its assignment: install, commit, report, check in."""
    p = world.published
    car.installed.update({"BMS-1": p.bms.path, "VCMS-1": p.vcms.path})
    assert world.step(car, "committed").status_code == 201
    assert world.check_in(car).status_code == 200


def test_a_campaign_runs_through_its_waves_to_completion(world: World) -> None:
    start_campaign(world)
    report = world.tick()
    assert report.offered == 0  # nobody has reported an energy state yet
    assert set(world.statuses().values()) == {"pending"}

    for car in world.cars:
        r = world.check_in(car)
        assert r.status_code == 200, r.text
    report = world.tick()
    assert report.offered == 2 and report.assigned == 2  # wave 1 is 10 % of 20
    offered = [c for c in world.cars if world.statuses()[c.vin] == "offered"]
    for car in offered:
        assert set(world.dep.director.assignments(car.vin)) == {"BMS-1", "VCMS-1"}
        assert world.check_in(car).json()["assigned"] == ["energy-2026-11"]
    ecus = world.client.get("/api/v1/vehicles", headers=world.as_("vera")).json()
    pending = {v["vin"]: {e["serial"]: e["pending_version"] for e in v["ecus"]} for v in ecus}
    assert pending[offered[0].vin] == {"GW-1": None, "BMS-1": "2.4.0", "VCMS-1": "3.1.0"}

    for car in offered:
        install(world, car)
    assert world.tick().advanced == []  # the dwell time has not passed
    world.clock.advance(dt.timedelta(hours=1, seconds=1))
    for car in world.cars:
        world.check_in(car)  # fresh energy states
    assert world.tick().advanced == ["energy-nov"]

    for _ in range(20):  # throttle: at most 3 in flight, each installs before the next tick
        for car in world.cars:
            if world.statuses()[car.vin] == "offered":
                install(world, car)
        world.clock.advance(dt.timedelta(hours=1, seconds=1))
        for car in world.cars:
            world.check_in(car)
        report = world.tick()
        assert report.offered <= 3
        if report.completed:
            break
    assert set(world.statuses().values()) == {"updated"}
    ecus = world.client.get("/api/v1/vehicles", headers=world.as_("vera")).json()
    assert {e["pending_version"] for v in ecus for e in v["ecus"]} == {None}  # all arrived
    summary = world.client.get("/api/v1/campaigns/energy-nov", headers=world.as_("vera")).json()
    assert summary["state"] == "completed"

    audit = world.client.get("/api/v1/audit/verify", headers=world.as_("vera")).json()
    assert audit["intact"] is True
    with world.db.sessions() as s:
        actions = s.scalars(select(AuditRow.action)).all()
    assert {"user.add", "fleet.import", "vehicle.provision", "campaign.approve", "campaign.tick"} <= set(
        actions
    )


def test_gates_keep_vehicles_waiting_with_their_reasons(world: World) -> None:
    start_campaign(world)
    for car in world.cars:
        world.check_in(car, soc=42.0)
    assert world.tick().offered == 0
    with world.db.sessions() as s:
        reasons = s.scalars(select(CampaignVehicleRow.reasons).where(CampaignVehicleRow.wave == 0)).all()
    assert reasons == [["soc 42 % < 60 %"]] * 2


def test_failures_above_the_error_threshold_halt_the_campaign(world: World) -> None:
    start_campaign(world, max_concurrent=5, min_executed=2, error_threshold_pct=10)
    for car in world.cars:
        world.check_in(car)
    world.tick()
    offered = [c for c in world.cars if world.statuses()[c.vin] == "offered"]
    assert len(offered) == 2
    assert world.step(
        offered[0], "rolled_back", "self-test failed: bms cell voltage plausibility"
    ).json() == {
        "vin": offered[0].vin,
        "campaign": "energy-nov",
    }
    assert world.step(offered[1], "failed", "download: hash mismatch").status_code == 201
    report = world.tick()
    assert report.halted == ["energy-nov"]
    assert world.statuses()[offered[0].vin] == "rolled_back"
    summary = world.client.get("/api/v1/campaigns/energy-nov", headers=world.as_("vera")).json()
    assert summary["state"] == "halted"


def test_an_offer_times_out_as_a_failure_and_a_late_commit_still_counts(world: World) -> None:
    start_campaign(world, install_timeout_s=3600, error_threshold_pct=100)
    for car in world.cars:
        world.check_in(car)
    world.tick()
    late = next(c for c in world.cars if world.statuses()[c.vin] == "offered")
    world.clock.advance(dt.timedelta(hours=1, seconds=1))
    assert world.tick().timed_out == 2
    assert world.statuses()[late.vin] == "failed"
    install(world, late)
    assert world.statuses()[late.vin] == "updated"


def test_a_check_in_reconciles_a_vehicle_whose_reports_were_lost(world: World) -> None:
    start_campaign(world)
    for car in world.cars:
        world.check_in(car)
    world.tick()
    car = next(c for c in world.cars if world.statuses()[c.vin] == "offered")
    p = world.published
    result = world.check_in(car, installed={"BMS-1": p.bms.path, "VCMS-1": p.vcms.path}).json()
    assert result["updated"] == ["energy-nov"] and result["assigned"] == []
    assert world.statuses()[car.vin] == "updated"
    with world.db.sessions() as s:
        counter = s.scalars(select(VehicleRow.manifest_counter).where(VehicleRow.vin == car.vin)).one()
    assert counter == car.counter


def test_device_requests_are_refused_without_a_valid_token_or_manifest(world: World) -> None:
    car, other = world.cars[0], world.cars[1]
    body = {"manifest": world.manifest(car)}
    assert world.client.post("/api/v1/device/checkin", json=body).status_code == 401
    bad = {"Authorization": "Bearer evd_not-a-token"}
    r = world.client.post("/api/v1/device/checkin", json=body, headers=bad)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # Another vehicle's token: the manifest is for `car`, the token says `other`.
    r = world.client.post(
        "/api/v1/device/checkin", json=body, headers={"Authorization": f"Bearer {other.token}"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "manifest_signature"
    ok = world.client.post(
        "/api/v1/device/checkin", json=body, headers={"Authorization": f"Bearer {car.token}"}
    )
    assert ok.status_code == 200
    replay = world.client.post(
        "/api/v1/device/checkin", json=body, headers={"Authorization": f"Bearer {car.token}"}
    )
    assert replay.status_code == 403 and replay.json()["error"]["code"] == "manifest_replay"
    # Operator tokens are not device tokens, and the other way round.
    r = world.client.post("/api/v1/device/checkin", json=body, headers=world.as_("root"))
    assert r.status_code == 401
    r = world.client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {car.token}"})
    assert r.status_code == 401


def test_a_manifest_counter_at_or_below_the_stored_one_is_refused(world: World) -> None:
    """The server keeps the last accepted counter: a manifest re-signed with fresh ECU reports
    but an old vehicle counter is still a replay (a captured primary key replaying state)."""
    car = world.cars[0]
    headers = {"Authorization": f"Bearer {car.token}"}
    car.counter = 10
    r = world.client.post("/api/v1/device/checkin", json={"manifest": world.manifest(car)}, headers=headers)
    assert r.status_code == 200 and r.json()["manifest_counter"] == 11
    stale = world.manifest(car, vehicle_counter=11)  # ECU reports at 12, above their last
    r = world.client.post("/api/v1/device/checkin", json={"manifest": stale}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "manifest_replay"


def test_re_provisioning_revokes_the_old_token_and_other_keys_are_refused(world: World) -> None:
    car = world.cars[0]
    ecus = [
        {"serial": e.serial, "ecu_type": e.ecu_type, "hardware_id": e.hardware_id, "public_key": e.public_key}
        for e in car.vehicle.identity.ecus
    ]
    r = world.client.post(
        f"/api/v1/vehicles/{car.vin}/provision",
        json={"primary_serial": "GW-1", "ecus": ecus},
        headers=world.as_("alice"),
    )
    assert r.status_code == 201
    assert world.check_in(car).status_code == 401  # the old token no longer works
    car.token = r.json()["token"]
    assert world.check_in(car).status_code == 200
    stranger = make_vehicle(car.vin)
    ecus = [
        {"serial": e.serial, "ecu_type": e.ecu_type, "hardware_id": e.hardware_id, "public_key": e.public_key}
        for e in stranger.identity.ecus
    ]
    r = world.client.post(
        f"/api/v1/vehicles/{car.vin}/provision",
        json={"primary_serial": "GW-1", "ecus": ecus},
        headers=world.as_("alice"),
    )
    assert r.status_code == 422 and "other keys" in r.json()["error"]["message"]


def test_telemetry_and_steps_are_stored(world: World) -> None:
    car = world.cars[0]
    headers = {"Authorization": f"Bearer {car.token}"}
    at = world.clock.now().isoformat()
    body = {"samples": [{"at": at, "kpis": {"soc_error_pct": 1.5, "cell_spread_mv": 12.0}}]}
    r = world.client.post("/api/v1/device/telemetry", json=body, headers=headers)
    assert r.status_code == 201 and r.json()["stored"] == 2
    bad = {"samples": [{"at": at, "kpis": {"soc_error_pct": float("nan")}}]}
    r = world.client.post(
        "/api/v1/device/telemetry",
        content=json.dumps(bad),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    r = world.step(car, "waiting")
    assert r.status_code == 422  # a wait must say why
    assert world.step(car, "downloading").json() == {"vin": car.vin, "campaign": None}
    with world.db.sessions() as s:
        assert s.scalars(select(TelemetryRow.kpi).order_by(TelemetryRow.kpi)).all() == [
            "cell_spread_mv",
            "soc_error_pct",
        ]
        assert s.scalars(select(DeviceStepRow.step)).all() == ["downloading"]


@pytest.mark.parametrize(
    "key",
    [
        {"keyid": "x"},
        {"keyid": "x", "keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "abcd"}},
        {"keyid": "x", "keytype": "rot13", "scheme": "rot13", "keyval": {"public": "00" * 32}},
    ],
)
def test_provisioning_refuses_a_key_that_is_not_one(world: World, key: dict[str, Any]) -> None:
    car = world.cars[0]
    ecus = [
        {"serial": e.serial, "ecu_type": e.ecu_type, "hardware_id": e.hardware_id, "public_key": e.public_key}
        for e in car.vehicle.identity.ecus
    ]
    ecus[1]["public_key"] = key
    r = world.client.post(
        f"/api/v1/vehicles/{car.vin}/provision",
        json={"primary_serial": "GW-1", "ecus": ecus},
        headers=world.as_("alice"),
    )
    assert r.status_code == 422 and "not a usable key" in r.json()["error"]["message"]


def test_the_report_is_served_to_viewers(world: World) -> None:
    start_campaign(world)
    for car in world.cars:
        world.check_in(car, soc=30.0)
    world.tick()
    r = world.client.get("/api/v1/campaigns/energy-nov/report", headers=world.as_("vera"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["name"] == "energy-nov" and report["waves"][0]["waiting"] == 2
    assert world.client.get("/api/v1/campaigns/nope/report", headers=world.as_("vera")).status_code == 404
