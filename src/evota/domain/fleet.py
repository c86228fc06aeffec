"""Vehicles and their ECUs as the security layer knows them: identities and public keys.

The campaign server's registry (energy state, depot, tags) builds on these; here a vehicle
is what the director needs to sign for it and what the server needs to check its manifests.
Public keys are kept as TUF key dictionaries (with their key id) so this module stays pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from evota.domain.identifiers import (
    validate_ecu_serial,
    validate_ecu_type,
    validate_hardware_id,
    validate_vin,
)
from evota.errors import InputError

__all__ = ["EcuIdentity", "VehicleIdentity"]


@dataclasses.dataclass(frozen=True)
class EcuIdentity:
    serial: str
    ecu_type: str
    hardware_id: str
    public_key: Mapping[str, Any] | None = None  # {"keyid": …, "keytype": …, "scheme": …, "keyval": …}

    def __post_init__(self) -> None:
        validate_ecu_serial(self.serial)
        validate_ecu_type(self.ecu_type)
        validate_hardware_id(self.hardware_id)
        if self.public_key is not None and "keyid" not in self.public_key:
            raise InputError(f"public key of ECU {self.serial} has no keyid")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serial": self.serial,
            "ecu_type": self.ecu_type,
            "hardware_id": self.hardware_id,
        }
        if self.public_key is not None:
            out["public_key"] = dict(self.public_key)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EcuIdentity:
        return cls(
            serial=str(data["serial"]),
            ecu_type=str(data["ecu_type"]),
            hardware_id=str(data["hardware_id"]),
            public_key=data.get("public_key"),
        )


@dataclasses.dataclass(frozen=True)
class VehicleIdentity:
    """A vehicle: its VIN, its ECUs, and which of them is the primary (gateway)."""

    vin: str
    primary_serial: str
    ecus: tuple[EcuIdentity, ...]

    def __post_init__(self) -> None:
        validate_vin(self.vin)
        serials = [e.serial for e in self.ecus]
        if len(set(serials)) != len(serials):
            raise InputError(f"vehicle {self.vin} lists an ECU serial twice")
        if self.primary_serial not in serials:
            raise InputError(f"primary {self.primary_serial} is not among the ECUs of {self.vin}")

    def ecu(self, serial: str) -> EcuIdentity | None:
        return next((e for e in self.ecus if e.serial == serial), None)

    @property
    def primary(self) -> EcuIdentity:
        ecu = self.ecu(self.primary_serial)
        assert ecu is not None  # checked in __post_init__
        return ecu

    def to_dict(self) -> dict[str, Any]:
        return {
            "vin": self.vin,
            "primary_serial": self.primary_serial,
            "ecus": [e.to_dict() for e in self.ecus],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehicleIdentity:
        try:
            return cls(
                vin=str(data["vin"]),
                primary_serial=str(data["primary_serial"]),
                ecus=tuple(EcuIdentity.from_dict(e) for e in data["ecus"]),
            )
        except (KeyError, TypeError) as e:
            raise InputError(f"malformed vehicle record: {e}") from e
