"""Partial verification on a secondary: the director targets role only."""

from __future__ import annotations

import datetime as dt

import pytest
from tuf.api.metadata import Metadata, Root

from evota.deployment import Deployment
from evota.security.errors import FreezeError, HardwareMismatchError, MetadataRollbackError, SignatureError
from evota.security.uptane import verify_partial
from tests.conftest import Published, Vehicle


def director_root(dep: Deployment) -> Root:
    return Metadata[Root].from_bytes(dep.director.trust_root()).signed


def current_targets(dep: Deployment, vin: str) -> bytes:
    chain = dep.director.chain(vin)
    return (chain.folder / f"{chain.targets().signed.version}.targets.json").read_bytes()


def test_secondary_finds_its_image(dep: Deployment, published: Published, vehicle: Vehicle) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    tf = verify_partial(
        director_targets=current_targets(dep, vehicle.vin),
        director_root=director_root(dep),
        ecu_serial="BMS-1",
        hardware_id="bms-gen2",
        now=dep.clock.now(),
    )
    assert tf is not None and tf.path == published.bms.path
    assert tf.hashes == published.bms.hashes


def test_secondary_with_nothing_assigned_gets_none(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign(vehicle.vin, {"BMS-1": published.bms.path})
    assert (
        verify_partial(
            director_targets=current_targets(dep, vehicle.vin),
            director_root=director_root(dep),
            ecu_serial="VCMS-1",
            hardware_id="vcms-gen3",
            now=dep.clock.now(),
        )
        is None
    )


def test_secondary_refuses_targets_not_signed_by_the_director(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    md = Metadata.from_bytes(current_targets(dep, vehicle.vin))
    md.signed.version += 1  # changes the signed bytes; the signature no longer holds
    with pytest.raises(SignatureError):
        verify_partial(
            director_targets=md.to_bytes(),
            director_root=director_root(dep),
            ecu_serial="BMS-1",
            hardware_id="bms-gen2",
            now=dep.clock.now(),
        )


def test_secondary_refuses_expired_older_and_wrong_hardware(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    data, root, now = current_targets(dep, vehicle.vin), director_root(dep), dep.clock.now()
    version = Metadata.from_bytes(data).signed.version
    with pytest.raises(FreezeError):
        verify_partial(
            director_targets=data,
            director_root=root,
            ecu_serial="BMS-1",
            hardware_id="bms-gen2",
            now=now + dt.timedelta(days=2),
        )
    with pytest.raises(MetadataRollbackError):
        verify_partial(
            director_targets=data,
            director_root=root,
            ecu_serial="BMS-1",
            hardware_id="bms-gen2",
            now=now,
            last_version=version + 1,
        )
    with pytest.raises(HardwareMismatchError):
        verify_partial(
            director_targets=data, director_root=root, ecu_serial="BMS-1", hardware_id="bms-gen1", now=now
        )
