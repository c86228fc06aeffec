"""Vehicle and ECU identities: what the director signs for and the server checks against."""

from __future__ import annotations

from typing import Any

import pytest

from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.errors import InputError

VIN = "WVWZZZ1JZ3W386752"
KEY = {"keyid": "ab" * 32, "keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "cd" * 32}}


def ecus() -> tuple[EcuIdentity, ...]:
    return (
        EcuIdentity("GW-1", "gateway", "gw-tcu4", KEY),
        EcuIdentity("BMS-1", "bms", "bms-gen2"),
        EcuIdentity("VCMS-1", "vcms", "vcms-gen3"),
    )


def test_vehicle_identity_lookups() -> None:
    vehicle = VehicleIdentity(VIN, "GW-1", ecus())
    assert vehicle.primary.serial == "GW-1"
    bms = vehicle.ecu("BMS-1")
    assert bms is not None
    assert bms.hardware_id == "bms-gen2"
    assert vehicle.ecu("TMS-1") is None


@pytest.mark.parametrize(
    ("vin", "primary", "ecu_list", "message"),
    [
        pytest.param(
            VIN,
            "GW-1",
            (*ecus(), EcuIdentity("BMS-1", "bms", "bms-gen3")),
            "ECU serial twice",
            id="duplicate-serial",
        ),
        pytest.param(VIN, "GW-9", ecus(), "primary GW-9 is not among the ECUs", id="primary-unknown"),
        pytest.param(VIN, "GW-1", (), "primary GW-1 is not among the ECUs", id="no-ecus"),
        pytest.param("WVWZZZ1JZ3W38675O", "GW-1", ecus(), "unknown format", id="bad-vin"),
    ],
)
def test_vehicle_identity_refuses(
    vin: str, primary: str, ecu_list: tuple[EcuIdentity, ...], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        VehicleIdentity(vin, primary, ecu_list)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"serial": "BMS 1"}, "ECU serial", id="bad-serial"),
        pytest.param({"ecu_type": "BMS"}, "ECU type", id="bad-ecu-type"),
        pytest.param({"hardware_id": "BMS Gen2"}, "hardware id", id="bad-hardware-id"),
        pytest.param({"public_key": {"keytype": "ed25519"}}, "has no keyid", id="key-without-keyid"),
    ],
)
def test_ecu_identity_refuses(fields: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"serial": "BMS-1", "ecu_type": "bms", "hardware_id": "bms-gen2", **fields}
    with pytest.raises(InputError, match=message):
        EcuIdentity(**args)


def test_vehicle_identity_round_trip() -> None:
    vehicle = VehicleIdentity(VIN, "GW-1", ecus())
    data = vehicle.to_dict()
    assert data["vin"] == VIN
    assert data["primary_serial"] == "GW-1"
    assert data["ecus"][0]["public_key"] == KEY
    assert "public_key" not in data["ecus"][1]
    assert VehicleIdentity.from_dict(data) == vehicle


def test_to_dict_copies_the_public_key() -> None:
    data = VehicleIdentity(VIN, "GW-1", ecus()).to_dict()
    data["ecus"][0]["public_key"]["keyid"] = "tampered"
    assert KEY["keyid"] == "ab" * 32


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"primary_serial": "GW-1", "ecus": []}, id="no-vin"),
        pytest.param({"vin": VIN, "ecus": []}, id="no-primary"),
        pytest.param({"vin": VIN, "primary_serial": "GW-1"}, id="no-ecus"),
        pytest.param({"vin": VIN, "primary_serial": "GW-1", "ecus": [{"serial": "GW-1"}]}, id="ecu-fields"),
        pytest.param({"vin": VIN, "primary_serial": "GW-1", "ecus": 5}, id="ecus-not-a-list"),
    ],
)
def test_vehicle_from_malformed_dict(data: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="malformed vehicle record"):
        VehicleIdentity.from_dict(data)
