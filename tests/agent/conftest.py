"""Fixtures of the agent tests.

A provisioned vehicle with three secondaries (BMS, VCMS, TMS) against a real server.

The deployment, the server (served on loopback), the fleet registry (SQLite) and the vehicle
state folder are all real; the ECUs are simulated ones (folders). Time is one SimClock
shared by the server and the vehicle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from evota.agent.agent import Agent
from evota.agent.provision import provision_vehicle
from evota.agent.secondary import Partition
from evota.agent.signals import FileSignals
from evota.agent.simulated import SimulatedEcu
from evota.agent.state import StateDir
from evota.agent.transport import HttpServer
from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.gates import EnergyState, Gear, Preconditions, Rule
from evota.domain.policy import InstallPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.domain.release import ImageKind
from evota.security.image_repo import PublishedBundle
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database, open_database
from tests.agent.uds_bench import bench  # noqa: F401  (the UDS test bench fixture)

VIN = "WVWZZZ1JZ3W386752"
SECONDARIES = ("BMS-1", "VCMS-1", "TMS-1")
NEXT = {"bms": "2.4.0", "vcms": "3.1.0", "tms": "1.1.0"}  # one version above the factory images
FLEET_CSV = (
    "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
    f"{VIN},eVan-3,berlin-north,eu-central,cold,Europe/Berlin,pilot,"
    "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0|tms:TMS-1:tms-gen1:1.0.0\n"
)


def image_bytes(name: str, size: int, *, marker: bytes = b"") -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    body = (seed * (size // len(seed) + 1))[:size]
    return marker + body[len(marker) :]


@dataclasses.dataclass
class Fleet:
    dep: Deployment
    db: Database
    url: str
    clock: SimClock
    state: StateDir
    tmp: Path
    agents: list[Agent] = dataclasses.field(default_factory=list)

    def publish(
        self,
        name: str,
        versions: dict[str, str],
        *,
        size: int = 24_000,
        policy: InstallPolicy | None = None,
        markers: dict[str, bytes] | None = None,
        state_reset: tuple[str, ...] = (),
        params: dict[str, bytes] | None = None,
    ) -> PublishedBundle:
        """Publish one image per ECU type in `versions` (and parameter sets) as a release."""
        hw = {"bms": "bms-gen2", "vcms": "vcms-gen3", "tms": "tms-gen1"}
        folder = self.tmp / "firmware" / name
        folder.mkdir(parents=True)
        paths = []
        for ecu_type, version in versions.items():
            f = folder / f"{ecu_type}-{version}.bin"
            f.write_bytes(image_bytes(f"{name}-{ecu_type}", size, marker=(markers or {}).get(ecu_type, b"")))
            img = self.dep.images.add_image(
                f,
                ecu_type=ecu_type,
                hardware_ids=[hw[ecu_type]],
                version=version,
                requires_state_reset=ecu_type in state_reset,
            )
            paths.append(img.path)
        for ecu_type, data in (params or {}).items():
            f = folder / f"{ecu_type}-params-{name}.json"
            f.write_bytes(data)
            img = self.dep.images.add_image(
                f,
                ecu_type=ecu_type,
                hardware_ids=[hw[ecu_type]],
                version=f"{name.split('-')[-1]}.0.0",
                kind=ImageKind.PARAMS,
            )
            paths.append(img.path)
        return self.dep.images.add_bundle(name, paths, policy=policy)

    def assign(self, bundle: PublishedBundle) -> None:
        self.dep.director.assign_release(VIN, bundle.meta.name)

    def signals(self, **changes: object) -> None:
        base = {"soc_pct": 80.0, "charging": False, "plugged_in": True, "gear": Gear.PARK, "ambient_c": 15.0}
        base.update(changes)
        FileSignals(self.state / "signals.json").write(
            EnergyState(reported_at=self.clock.now(), **base)  # type: ignore[arg-type]
        )

    def agent(self, **kwargs: object) -> Agent:
        port = HttpServer(self.url, vin=VIN, token=self.state.token())
        agent = Agent(self.state, port, clock=self.clock, **kwargs)  # type: ignore[arg-type]
        self.agents.append(agent)
        return agent

    def ecu(self, serial: str) -> SimulatedEcu:
        return SimulatedEcu(self.state.ecu_folder(serial))

    def running(self) -> dict[str, str]:
        return {s: self.ecu(s).status().partitions[Partition.FIRMWARE].running.path for s in SECONDARIES}  # type: ignore[union-attr]


@pytest.fixture
def fleet(dep: Deployment, clock: SimClock, tmp_path: Path) -> Iterator[Fleet]:
    db = open_database(dep.home.database_url())
    import_vehicles(db, parse_vehicle_csv(FLEET_CSV), clock.now(), actor="test")
    with serve_in_thread(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as url:
        state = StateDir(tmp_path / "vehicle")
        provision_vehicle(dep, db, vin=VIN, state_dir=state.path, server_url=url, now=clock.now())
        f = Fleet(dep, db, url, clock, state, tmp_path)
        f.signals()
        yield f
        for agent in f.agents:
            agent.close()
    db.dispose()


def relaxed(**kw: object) -> InstallPolicy:
    base: dict[str, object] = {"charging": Rule.ANY}
    base.update(kw)
    return InstallPolicy(Preconditions(**base))  # type: ignore[arg-type]


def params_image(
    schema: int, fields: dict[str, dict[str, object]], renamed: dict[str, str] | None = None
) -> bytes:
    body = {
        "evota_params": 1,
        "calibration": {"soc_ocv_table": [3.0, 3.6, 4.2], "schema_note": schema},
        "user_settings": {"schema": schema, "fields": fields, "renamed": renamed or {}},
    }
    return json.dumps(body).encode()
