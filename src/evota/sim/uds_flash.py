"""The simulated ECU's flash and boot loader, persisted to a folder.

A real ECU keeps its slots and its boot flags in flash across power cycles; this store
keeps them in a state folder, so a simulator killed and restarted finds what a real ECU
would. Layout of the folder:

    ecu.json          identity, slot sizes and the ECU's public key (written once)
    ecu-key.pem       the ECU's Ed25519 private key (signs its version reports), 0600
    security.secret   the seed/key secret, hex, 0600
    state.json        every slot's health and image, active slots, boot attempts, settings
    <partition>-<slot>.bin   a slot's bytes

Every change to `state.json` is an atomic, fsynced replace (`evota.fsutil.atomic_write`).
The ordering is what makes cuts safe: an erase marks the slot EMPTY durably *before* it
destroys the bytes, and a slot becomes STAGED only after its bytes are fsynced, so a cut at
any instant leaves at worst an EMPTY slot, never one that claims an image it lacks.

The boot loader (`boot`) runs at every power-on and ECUReset: a partition on TRIAL counts
a boot; past the limit it falls back to the GOOD slot and marks the trial BAD.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey

from evota.agent.errors import ProvisioningError
from evota.agent.secondary import (
    BootHealth,
    EcuStatus,
    ImageRef,
    Partition,
    PartitionStatus,
    SlotName,
    SlotStatus,
)
from evota.agent.uds_records import SlotRegion
from evota.domain.fleet import EcuIdentity
from evota.fsutil import atomic_write

__all__ = ["DEFAULT_SLOT_SIZES", "FlashStore", "provision_flash"]

DEFAULT_SLOT_SIZES = {Partition.FIRMWARE: 1 << 20, Partition.PARAMS: 64 << 10}
_BASE_ADDRESS = 0x0010_0000
_FORMAT = 1


@dataclasses.dataclass
class _Part:
    active: SlotName
    health: dict[SlotName, BootHealth]
    image: dict[SlotName, ImageRef | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active.value,
            "slots": {s.value: self._slot(s) for s in SlotName},
        }

    def _slot(self, slot: SlotName) -> dict[str, Any]:
        image = self.image[slot]
        return {"health": self.health[slot].value, "image": image.to_dict() if image else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Part:
        slots = data["slots"]
        return cls(
            SlotName(data["active"]),
            {s: BootHealth(slots[s.value]["health"]) for s in SlotName},
            {s: ImageRef.from_dict(i) if (i := slots[s.value]["image"]) else None for s in SlotName},
        )


def _layout(sizes: Mapping[Partition, int]) -> dict[Partition, dict[SlotName, SlotRegion]]:
    """Slots laid out one after the other from a base address, each 64 KiB aligned."""
    out: dict[Partition, dict[SlotName, SlotRegion]] = {}
    address = _BASE_ADDRESS
    for partition in Partition:
        out[partition] = {}
        for slot in SlotName:
            out[partition][slot] = SlotRegion(address, sizes[partition])
            address += -(-sizes[partition] // 0x10000) * 0x10000
    return out


def provision_flash(
    folder: Path,
    *,
    identity: EcuIdentity,
    security_secret: bytes,
    factory: Mapping[Partition, tuple[ImageRef, bytes]],
    slot_sizes: Mapping[Partition, int] | None = None,
) -> dict[str, Any]:
    """Create a state folder: the factory images in slot A (GOOD), a new Ed25519 key.

    Returns the public key as `EcuIdentity.public_key` holds it. Refuses a folder that
    already holds an ECU, so a typo cannot wipe one.
    """
    if (folder / "ecu.json").exists():
        raise ProvisioningError(f"{folder} already holds an ECU")
    sizes = {**DEFAULT_SLOT_SIZES, **(slot_sizes or {})}
    if set(factory) != set(Partition):
        raise ValueError("a factory image is needed for every partition")
    folder.mkdir(parents=True, exist_ok=True)
    signer = CryptoSigner.generate_ed25519()
    public_key = {"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}
    EcuIdentity(identity.serial, identity.ecu_type, identity.hardware_id, public_key)  # validates
    parts: dict[str, Any] = {}
    for partition, (ref, data) in factory.items():
        if len(data) != ref.length or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ValueError(f"factory {partition} image does not match its reference")
        if ref.length > sizes[partition]:
            raise ValueError(f"factory {partition} image is larger than its slot")
        atomic_write(folder / f"{partition.value}-a.bin", data)
        atomic_write(folder / f"{partition.value}-b.bin", b"")
        health = {SlotName.A: BootHealth.GOOD, SlotName.B: BootHealth.EMPTY}
        parts[partition.value] = _Part(SlotName.A, health, {SlotName.A: ref, SlotName.B: None}).to_dict()
    atomic_write(folder / "ecu-key.pem", signer.private_bytes, mode=0o600)
    atomic_write(folder / "security.secret", security_secret.hex().encode(), mode=0o600)
    state = {"format": _FORMAT, "partitions": parts, "reported": Partition.FIRMWARE.value}
    state |= {"boot_attempts": 0, "user_settings": {}, "state_resets": 0}
    atomic_write(folder / "state.json", json.dumps(state, indent=1).encode())
    ecu = {"format": _FORMAT, **identity.to_dict(), "public_key": public_key}
    ecu["slot_sizes"] = {p.value: sizes[p] for p in Partition}
    atomic_write(folder / "ecu.json", json.dumps(ecu, indent=1).encode())  # last: marks it complete
    return public_key


class FlashStore:
    """The persisted slots of one simulated ECU, and the boot loader that reads them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            ecu = json.loads((folder / "ecu.json").read_bytes())
            state = json.loads((folder / "state.json").read_bytes())
            if ecu["format"] != _FORMAT or state["format"] != _FORMAT:
                raise ValueError("unknown format")
            self.identity = EcuIdentity.from_dict(ecu)
            self.layout = _layout({Partition(p): int(n) for p, n in ecu["slot_sizes"].items()})
            self.secret = bytes.fromhex((folder / "security.secret").read_text().strip())
            key_dict = dict(ecu["public_key"])
            key = SSlibKey.from_dict(key_dict.pop("keyid"), key_dict)
            self.signer = CryptoSigner(load_pem_private_key((folder / "ecu-key.pem").read_bytes(), None), key)
            self._parts = {Partition(p): _Part.from_dict(d) for p, d in state["partitions"].items()}
            self.reported = Partition(state["reported"])
            self.boot_attempts = int(state["boot_attempts"])
            self.user_settings: dict[str, Any] = dict(state["user_settings"])
            self.state_resets = int(state["state_resets"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ProvisioningError(f"{folder} is not a provisioned ECU state folder: {e!r}") from e

    def _commit(self) -> None:
        state = {
            "format": _FORMAT,
            "partitions": {p.value: part.to_dict() for p, part in self._parts.items()},
            "reported": self.reported.value,
            "boot_attempts": self.boot_attempts,
            "user_settings": self.user_settings,
            "state_resets": self.state_resets,
        }
        atomic_write(self.folder / "state.json", json.dumps(state, indent=1).encode())

    def slot_path(self, partition: Partition, slot: SlotName) -> Path:
        return self.folder / f"{partition.value}-{slot.value}.bin"

    def status(self) -> EcuStatus:
        parts = {
            p: PartitionStatus(part.active, {s: SlotStatus(part.health[s], part.image[s]) for s in SlotName})
            for p, part in self._parts.items()
        }
        return EcuStatus(self.identity.serial, parts, self.reported, self.boot_attempts)

    def health(self, partition: Partition, slot: SlotName) -> BootHealth:
        return self._parts[partition].health[slot]

    def active(self, partition: Partition) -> SlotName:
        return self._parts[partition].active

    def on_trial(self) -> bool:
        return any(part.health[part.active] is BootHealth.TRIAL for part in self._parts.values())

    def erase(self, partition: Partition, slot: SlotName) -> None:
        """Mark the slot EMPTY durably, then destroy its bytes (the order is the point)."""
        part = self._parts[partition]
        part.health[slot], part.image[slot] = BootHealth.EMPTY, None
        self._commit()
        with self.slot_path(partition, slot).open("wb") as f:
            os.fsync(f.fileno())

    def writer(self, partition: Partition, slot: SlotName) -> BinaryIO:
        """Append-only access to an erased slot, as a flash driver writes page after page."""
        if self.health(partition, slot) is not BootHealth.EMPTY:
            raise RuntimeError("only an erased slot can be written")
        return self.slot_path(partition, slot).open("ab")

    def digest(self, partition: Partition, slot: SlotName) -> tuple[int, str]:
        """Length and SHA-256 of what the slot's bytes are now."""
        digest, length = hashlib.sha256(), 0
        with self.slot_path(partition, slot).open("rb") as f:
            while chunk := f.read(1 << 16):
                digest.update(chunk)
                length += len(chunk)
        return length, digest.hexdigest()

    def stage(self, partition: Partition, slot: SlotName, image: ImageRef) -> None:
        with self.slot_path(partition, slot).open("rb") as f:
            os.fsync(f.fileno())
        part = self._parts[partition]
        part.health[slot], part.image[slot] = BootHealth.STAGED, image
        self._commit()

    def activate(self, slots: Mapping[Partition, SlotName]) -> None:
        """Named slots become active on TRIAL (an active GOOD or TRIAL one stays as it is)."""
        for partition, slot in slots.items():
            part = self._parts[partition]
            if part.active is slot and part.health[slot] in (BootHealth.TRIAL, BootHealth.GOOD):
                continue
            part.active, part.health[slot] = slot, BootHealth.TRIAL
            self.boot_attempts = 0
        self.reported = list(slots)[-1]
        self._commit()

    def mark_good(self) -> None:
        for part in self._parts.values():
            if part.health[part.active] is BootHealth.TRIAL:
                part.health[part.active] = BootHealth.GOOD
        self.boot_attempts = 0
        self._commit()

    def revert(self) -> None:
        """Every TRIAL or BAD active slot becomes BAD; its partition goes back to GOOD."""
        for part in self._parts.values():
            if part.health[part.active] in (BootHealth.TRIAL, BootHealth.BAD):
                part.health[part.active] = BootHealth.BAD
                part.active = part.active.other
        self.boot_attempts = 0
        self._commit()

    def revertible(self) -> bool:
        """Every partition that would revert has a GOOD slot to go back to."""
        return all(
            part.health[part.active.other] is BootHealth.GOOD
            for part in self._parts.values()
            if part.health[part.active] in (BootHealth.TRIAL, BootHealth.BAD)
        )

    def boot(self, limit: int) -> None:
        """The boot loader: count a boot on trial; past `limit`, fall back to GOOD."""
        if not self.on_trial():
            return
        if self.boot_attempts < limit:
            self.boot_attempts += 1
            self._commit()
            return
        for part in self._parts.values():
            trial, fallback = part.health[part.active], part.health[part.active.other]
            if trial is BootHealth.TRIAL and fallback is BootHealth.GOOD:
                part.health[part.active] = BootHealth.BAD
                part.active = part.active.other
        self.boot_attempts = 0
        self._commit()

    def set_user_settings(self, settings: Mapping[str, Any]) -> None:
        self.user_settings = dict(settings)
        self._commit()

    def reset_state(self) -> None:
        self.state_resets += 1
        self._commit()
