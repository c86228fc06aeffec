"""Partial verification on a secondary: the director targets role only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tuf.api.metadata import Metadata, Root, TargetFile

from evota.deployment import Deployment
from evota.security.errors import (
    FreezeError,
    HardwareMismatchError,
    MetadataRollbackError,
    SignatureError,
    VehicleMismatchError,
    VerificationError,
)
from evota.security.uptane import verify_partial
from tests.conftest import Published, Vehicle, make_vehicle


def current_targets(dep: Deployment, vin: str) -> bytes:
    chain = dep.director.chain(vin)
    return (chain.folder / f"{chain.targets().signed.version}.targets.json").read_bytes()


def partial(dep: Deployment, vehicle: Vehicle, **overrides: Any) -> TargetFile | None:
    """verify_partial as the BMS secondary of `vehicle` calls it, unless overridden."""
    args: dict[str, Any] = {
        "director_targets": current_targets(dep, vehicle.vin),
        "director_root": Metadata[Root].from_bytes(dep.director.trust_root()).signed,
        "vin": vehicle.vin,
        "ecu_serial": "BMS-1",
        "hardware_id": "bms-gen2",
        "now": dep.clock.now(),
    }
    return verify_partial(**{**args, **overrides})


def test_secondary_finds_its_image(dep: Deployment, published: Published, vehicle: Vehicle) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    tf = partial(dep, vehicle)
    assert tf is not None and tf.path == published.bms.path
    assert tf.hashes == published.bms.hashes


def test_secondary_with_nothing_assigned_gets_none(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign(vehicle.vin, {"BMS-1": published.bms.path})
    assert partial(dep, vehicle, ecu_serial="VCMS-1", hardware_id="vcms-gen3") is None


def test_secondary_refuses_targets_not_signed_by_the_director(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    md = Metadata.from_bytes(current_targets(dep, vehicle.vin))
    md.signed.version += 1  # changes the signed bytes; the signature no longer holds
    with pytest.raises(SignatureError):
        partial(dep, vehicle, director_targets=md.to_bytes())


def test_secondary_refuses_expired_older_and_wrong_hardware(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    version = Metadata.from_bytes(current_targets(dep, vehicle.vin)).signed.version
    with pytest.raises(FreezeError):
        partial(dep, vehicle, now=dep.clock.now() + dt.timedelta(days=2))
    with pytest.raises(MetadataRollbackError):
        partial(dep, vehicle, last_version=version + 1)
    with pytest.raises(HardwareMismatchError):
        partial(dep, vehicle, hardware_id="bms-gen1")


def test_secondary_refuses_another_vehicles_director_targets(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    other = make_vehicle("1HGCM82633A004352")
    dep.director.register_vehicle(other.identity)
    dep.director.assign_release(other.vin, published.release.meta.name)
    with pytest.raises(VehicleMismatchError):
        partial(dep, vehicle, director_targets=current_targets(dep, other.vin))


@pytest.mark.parametrize("case", ["delegations", "ecu-named-twice"])
def test_secondary_refuses_what_full_verification_refuses(
    case: str, dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    from tuf.api.metadata import Delegations

    from evota.domain.release import CUSTOM_KEY

    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    chain = dep.director.chain(vehicle.vin)
    md = chain.targets()
    if case == "delegations":
        md.signed.delegations = Delegations(keys={}, roles={})
    else:
        for tf in md.signed.targets.values():
            tf.unrecognized_fields["custom"][CUSTOM_KEY]["ecu_serials"]["BMS-1"] = "bms-gen2"
    chain.commit_targets(md, dep.clock.now())
    expected = {
        "delegations": (VerificationError, "must not delegate"),
        "ecu-named-twice": (VehicleMismatchError, "names ECU BMS-1 more than once"),
    }
    error, message = expected[case]
    with pytest.raises(error, match=message):
        partial(dep, vehicle)
