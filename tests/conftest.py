"""Shared fixtures: a fresh home on a simulated clock, published images, a registered
vehicle with real keys, and a real HTTP server on loopback."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from evota.clock import SimClock
from evota.deployment import Deployment, init_home
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.security.image_repo import PublishedBundle, PublishedImage
from evota.security.uptane import EcuState, Primary, RepositoryAccess
from evota.server.app import create_app
from evota.server.runner import serve_in_thread

VIN = "WVWZZZ1JZ3W386752"
START = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def dep(tmp_path: Path, clock: SimClock) -> Deployment:
    return init_home(tmp_path / "home", clock)


@pytest.fixture
def firmware(tmp_path: Path) -> Callable[[str, int], Path]:
    """Make an image file of `size` bytes whose content depends on its name."""
    folder = tmp_path / "firmware"
    folder.mkdir()

    def make(name: str, size: int = 4096) -> Path:
        seed = sum(name.encode())
        path = folder / name
        path.write_bytes(bytes((seed + i * 7) % 256 for i in range(size)))
        return path

    return make


@dataclasses.dataclass
class Published:
    vcms: PublishedImage
    bms: PublishedImage
    release: PublishedBundle


@pytest.fixture
def published(dep: Deployment, firmware: Callable[[str, int], Path]) -> Published:
    vcms = dep.images.add_image(
        firmware("vcms-3.1.0.bin", 3000), ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.1.0"
    )
    bms = dep.images.add_image(
        firmware("bms-2.4.0.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.0",
        requires=["vcms>=3.1"],
    )
    release = dep.images.add_bundle("energy-2026-11", [vcms.path, bms.path])
    return Published(vcms, bms, release)


@dataclasses.dataclass
class Vehicle:
    identity: VehicleIdentity
    signers: dict[str, CryptoSigner]

    @property
    def vin(self) -> str:
        return self.identity.vin

    def ecu_states(self) -> list[EcuState]:
        return [EcuState(e.serial, e.ecu_type, e.hardware_id) for e in self.identity.ecus]


def make_vehicle(vin: str = VIN) -> Vehicle:
    specs = (("GW-1", "gateway", "gw-tcu4"), ("BMS-1", "bms", "bms-gen2"), ("VCMS-1", "vcms", "vcms-gen3"))
    signers = {serial: CryptoSigner.generate_ed25519() for serial, _, _ in specs}
    ecus = tuple(
        EcuIdentity(s, t, h, {"keyid": signers[s].public_key.keyid, **signers[s].public_key.to_dict()})
        for s, t, h in specs
    )
    return Vehicle(VehicleIdentity(vin, "GW-1", ecus), signers)


@pytest.fixture
def vehicle(dep: Deployment) -> Vehicle:
    v = make_vehicle()
    dep.director.register_vehicle(v.identity)
    return v


@pytest.fixture
def server(dep: Deployment) -> Iterator[str]:
    """Base URL of a real evota server on loopback serving `dep`."""
    with serve_in_thread(create_app(dep, refresh_interval_s=None)) as url:
        yield url


@pytest.fixture
def make_primary(dep: Deployment, server: str, clock: SimClock, tmp_path: Path) -> Callable[..., Primary]:
    """Build the vehicle's primary, provisioned with the roots as they are now."""
    image_root = dep.images.trust_root()
    director_root = dep.director.trust_root()

    def make(
        vehicle: Vehicle,
        ecus: list[EcuState] | None = None,
        *,
        state: str = "vehicle",
        director_root_bytes: bytes | None = None,
        image_root_bytes: bytes | None = None,
        director_url: str | None = None,
        vehicle_clock: SimClock | None = None,
    ) -> Primary:
        folder = tmp_path / state
        return Primary(
            vin=vehicle.vin,
            ecus=ecus if ecus is not None else vehicle.ecu_states(),
            clock=vehicle_clock or clock,
            director=RepositoryAccess(
                director_url or f"{server}/repo/director/{vehicle.vin}/metadata/",
                director_root_bytes or director_root,
                folder / "director",
            ),
            image=RepositoryAccess(
                f"{server}/repo/image/metadata/",
                image_root_bytes or image_root,
                folder / "image",
                f"{server}/repo/image/targets/",
            ),
        )

    return make
