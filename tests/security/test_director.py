"""The director's own bookkeeping: merges, releases kept across assignments, clearing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evota.deployment import Deployment
from evota.errors import InputError
from evota.security.director import director_targets_custom
from tests.conftest import Published, Vehicle


def signed_releases(dep: Deployment, vin: str) -> list[str]:
    return list(director_targets_custom(dep.director.chain(vin).targets().signed).get("releases", []))


def test_a_later_assignment_keeps_a_release_that_is_still_whole(
    dep: Deployment, published: Published, vehicle: Vehicle, firmware: Callable[[str, int], Path]
) -> None:
    gw = dep.images.add_image(
        firmware("gw-1.0.0.bin", 300), ecu_type="gateway", hardware_ids=["gw-tcu4"], version="1.0.0"
    )
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    merged = dep.director.assign(vehicle.vin, {"GW-1": gw.path})
    assert merged == {"BMS-1": published.bms.path, "VCMS-1": published.vcms.path, "GW-1": gw.path}
    assert signed_releases(dep, vehicle.vin) == [published.release.path]


def test_a_release_is_dropped_once_one_of_its_images_is_replaced(
    dep: Deployment, published: Published, vehicle: Vehicle, firmware: Callable[[str, int], Path]
) -> None:
    vcms_32 = dep.images.add_image(
        firmware("vcms-3.2.0.bin", 300), ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.2.0"
    )
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    dep.director.assign(vehicle.vin, {"VCMS-1": vcms_32.path})
    assert signed_releases(dep, vehicle.vin) == []


def test_assigning_part_of_a_named_release_is_refused_and_nothing_is_signed(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    version = dep.director.chain(vehicle.vin).targets().signed.version
    with pytest.raises(InputError, match="must install together"):
        dep.director.assign(vehicle.vin, {"BMS-1": published.bms.path}, release=published.release.meta.name)
    assert dep.director.chain(vehicle.vin).targets().signed.version == version


def test_clear_removes_every_assignment(dep: Deployment, published: Published, vehicle: Vehicle) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    dep.director.clear(vehicle.vin)
    assert dep.director.assignments(vehicle.vin) == {}
    assert director_targets_custom(dep.director.chain(vehicle.vin).targets().signed)["vin"] == vehicle.vin


def test_repeating_an_assignment_signs_nothing_new(
    dep: Deployment, published: Published, vehicle: Vehicle
) -> None:
    """The rollout controller finishes an interrupted offer by assigning again: that must not
    sign a new version (and must not make the vehicle download anything again)."""
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    version = dep.director.chain(vehicle.vin).targets().signed.version
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    dep.director.assign(vehicle.vin, {"BMS-1": published.bms.path}, release=published.release.meta.name)
    assert dep.director.chain(vehicle.vin).targets().signed.version == version
