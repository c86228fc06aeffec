"""A vehicle's state folder: what the primary keeps between power cycles.

vehicle.json            VIN, primary, server URL, the ECUs and how each is reached
token                   the device token (mode 0600)
keys/primary.pem        the primary's Ed25519 key (signs the vehicle manifest)
trust/image-root.json   the trusted roots both repositories are verified from
trust/director-root.json
cache/image/, cache/director/   verified metadata between cycles (python-tuf's cache)
images/                 verified images by SHA-256 (evota.agent.images)
journal/                the install in flight and the last finished ones
outbox/                 step reports not yet delivered, in order
counters.json           manifest and report counters, raised before every use
known.json              release counter and version of every image ever installed
                        (installs refused as failed or rolled back are read from journal/history)
signals.json            the vehicle's energy state as its buses report it
consents.json           the user's consents: who, when, for which release
ecus/<serial>/          a simulated ECU's flash (evota.agent.simulated)
.lock                   one agent at a time
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from evota.agent.errors import ProvisioningError
from evota.agent.secondary import Secondary
from evota.agent.simulated import FaultHook, SimulatedEcu
from evota.fsutil import atomic_write

__all__ = ["FORMAT", "EcuConfig", "StateDir", "VehicleConfig"]

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class EcuConfig:
    serial: str
    ecu_type: str
    hardware_id: str
    kind: str = "simulated"  # "simulated" (a folder) or "uds" (ISO-TP over python-can)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "ecu_type": self.ecu_type,
            "hardware_id": self.hardware_id,
            "kind": self.kind,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EcuConfig:
        return cls(
            str(data["serial"]),
            str(data["ecu_type"]),
            str(data["hardware_id"]),
            str(data.get("kind", "simulated")),
            dict(data.get("options", {})),
        )


@dataclasses.dataclass(frozen=True)
class VehicleConfig:
    vin: str
    primary_serial: str
    primary_type: str
    primary_hardware_id: str
    primary_image: Mapping[str, Any]  # the gateway's own (factory) image: path, length, sha256
    server_url: str
    ecus: tuple[EcuConfig, ...]
    poll_interval_s: float = 300.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "vin": self.vin,
            "primary": {
                "serial": self.primary_serial,
                "ecu_type": self.primary_type,
                "hardware_id": self.primary_hardware_id,
                "image": dict(self.primary_image),
            },
            "server_url": self.server_url,
            "poll_interval_s": self.poll_interval_s,
            "ecus": [e.to_dict() for e in self.ecus],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehicleConfig:
        if data.get("format") != FORMAT:
            raise ProvisioningError(f"unknown vehicle.json format {data.get('format')!r}")
        try:
            p = data["primary"]
            return cls(
                vin=str(data["vin"]),
                primary_serial=str(p["serial"]),
                primary_type=str(p["ecu_type"]),
                primary_hardware_id=str(p["hardware_id"]),
                primary_image=dict(p["image"]),
                server_url=str(data["server_url"]),
                ecus=tuple(EcuConfig.from_dict(e) for e in data["ecus"]),
                poll_interval_s=float(data.get("poll_interval_s", 300.0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProvisioningError(f"vehicle.json is malformed: {e!r}") from e


class StateDir:
    """Paths and small durable records of one vehicle's state folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # ---- paths ---------------------------------------------------------------------------------
    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def ecu_folder(self, serial: str) -> Path:
        return self.path / "ecus" / serial

    # ---- records -------------------------------------------------------------------------------
    def config(self) -> VehicleConfig:
        try:
            data = json.loads((self.path / "vehicle.json").read_text())
        except FileNotFoundError:
            raise ProvisioningError(
                f"{self.path} is not a vehicle state folder (run `evota vehicle provision` first)"
            ) from None
        except ValueError as e:
            raise ProvisioningError(f"{self.path}/vehicle.json is not JSON: {e}") from e
        return VehicleConfig.from_dict(data)

    def token(self) -> str:
        try:
            return (self.path / "token").read_text().strip()
        except FileNotFoundError:
            raise ProvisioningError(f"{self.path} has no device token") from None

    def primary_signer(self) -> CryptoSigner:
        key = load_pem_private_key((self.path / "keys" / "primary.pem").read_bytes(), password=None)
        return CryptoSigner(key)

    def read_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.path / name).read_text())
        except FileNotFoundError:
            return default
        except ValueError as e:
            raise ProvisioningError(f"{self.path / name} is not JSON: {e}") from e

    def write_json(self, name: str, value: Any) -> None:
        atomic_write(self.path / name, json.dumps(value, indent=1, sort_keys=True).encode())

    def next_counters(self, serials: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Raise and persist the manifest counter and each ECU's report counter, then return
        them: a counter is stored before it is used, so a cut can never make one repeat."""
        counters = self.read_json("counters.json", {"vehicle": 0, "ecus": {}})
        counters["vehicle"] = int(counters["vehicle"]) + 1
        for s in serials:
            counters["ecus"][s] = int(counters["ecus"].get(s, 0)) + 1
        self.write_json("counters.json", counters)
        return counters["vehicle"], {s: counters["ecus"][s] for s in serials}

    def known(self) -> dict[str, dict[str, Any]]:
        """Target path -> {"version", "release_counter"} of every image ever installed."""
        known: dict[str, dict[str, Any]] = self.read_json("known.json", {})
        return known

    def remember(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        known = self.known()
        if all(known.get(k) == dict(v) for k, v in entries.items()):
            return
        self.write_json("known.json", {**known, **{k: dict(v) for k, v in entries.items()}})

    def consents(self) -> list[dict[str, str]]:
        consents: list[dict[str, str]] = self.read_json("consents.json", [])
        return consents

    def add_consent(self, release: str, by: str, at: dt.datetime) -> None:
        if not by.strip():
            raise ProvisioningError("a consent must say who gave it")
        kept = [c for c in self.consents() if c["release"] != release]
        self.write_json("consents.json", [*kept, {"release": release, "by": by, "at": at.isoformat()}])

    def open_secondaries(self, *, faults: FaultHook | None = None) -> dict[str, Secondary]:
        """Every secondary ECU of the vehicle, reached as its config says."""
        out: dict[str, Secondary] = {}
        for ecu in self.config().ecus:
            if ecu.kind == "simulated":
                folder = Path(ecu.options.get("folder") or self.ecu_folder(ecu.serial))
                out[ecu.serial] = SimulatedEcu(
                    folder if folder.is_absolute() else self.path / folder, faults=faults
                )
            elif ecu.kind == "uds":
                out[ecu.serial] = _open_uds(ecu)
            else:
                raise ProvisioningError(f"ECU {ecu.serial}: unknown kind {ecu.kind!r}")
        return out


def _open_uds(ecu: EcuConfig) -> Secondary:
    """A UDS secondary from its options: interface, channel, txid, rxid (ints or hex text),
    security_secret_hex, and optionally can_fd and tx_data_length."""
    from evota.agent.uds import UdsConfig, UdsEcu  # python-can loads only for UDS vehicles
    from evota.agent.uds_link import CanLink, Interface, IsoTpParams

    o = ecu.options
    try:
        can_fd = bool(o.get("can_fd", False))
        isotp = IsoTpParams(can_fd=can_fd, tx_data_length=int(o.get("tx_data_length", 64 if can_fd else 8)))
        link = CanLink(
            Interface(str(o["interface"])),
            str(o["channel"]),
            int(str(o["txid"]), 0),
            int(str(o["rxid"]), 0),
            isotp,
        )
        config = UdsConfig(link, security_secret=bytes.fromhex(str(o["security_secret_hex"])))
    except (KeyError, ValueError) as e:
        raise ProvisioningError(f"ECU {ecu.serial}: UDS options are incomplete or wrong: {e!r}") from e
    secondary = UdsEcu(config)
    if secondary.serial != ecu.serial:
        secondary.close()
        raise ProvisioningError(
            f"the ECU at {link.channel} 0x{link.txid:X} is {secondary.serial}, not {ecu.serial}"
        )
    return secondary
