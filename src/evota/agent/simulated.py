"""A simulated secondary ECU: flash as files in a folder, two slots per partition, a boot
environment, a boot loader with a boot counter, and a self-test with hooks to make it fail.

The folder is the ECU: another process (the fleet simulator, a test, a restarted agent)
opening the same folder sees the same flash. Layout:

    ecu.json                   identity and boot limit
    key.pem                    the ECU's own Ed25519 key (it signs its version reports)
    boot.json                  the boot environment (written atomically, like U-Boot's
                               redundant environment): per partition the active slot and each
                               slot's health and image; the boot counter; the reported partition
    <partition>-<slot>.bin     slot contents, written in place block by block (a cut leaves
                               half a slot, which the environment marks EMPTY before the erase)
    settings.json              the user's settings (charge limit, departure time)
    faults.json                optional test hooks: {"self_test": "reason"} fails the self-test,
                               {"corrupt_write": true} flips a byte in the next write,
                               {"block_delay_s": 0.02} and {"self_test_delay_s": 0.5} make the
                               flash and the self-test take as long as a real ECU's

An image whose bytes contain `SELF_TEST_FAIL_MARKER` followed by a reason and a newline fails
its self-test on every vehicle: that is how a simulated bad release behaves.

`faults` is called with a label at every point where power could be lost (before and after
each durable write, after each block); the power-cut tests raise from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

from evota.agent.errors import EcuError, FlashError
from evota.agent.secondary import (
    BootHealth,
    EcuStatus,
    ImageRef,
    Partition,
    PartitionStatus,
    Progress,
    SelfTestResult,
    SlotName,
    SlotStatus,
    version_report_of,
)
from evota.fsutil import atomic_write
from evota.security.manifest import sign_ecu_report

__all__ = ["BLOCK_SIZE", "SELF_TEST_FAIL_MARKER", "FaultHook", "SimulatedEcu", "create_simulated_ecu"]

BLOCK_SIZE = 4096
SELF_TEST_FAIL_MARKER = b"EVOTA-SIM-SELF-TEST-FAIL:"
ENV_FORMAT = 1
FaultHook = Callable[[str], None]


def _no_faults(label: str) -> None:
    return None


def _sha256_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    length = 0
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            h.update(chunk)
            length += len(chunk)
    return length, h.hexdigest()


def create_simulated_ecu(
    folder: Path,
    *,
    serial: str,
    ecu_type: str,
    hardware_id: str,
    factory: Mapping[Partition, tuple[ImageRef, bytes]],
    boot_limit: int = 3,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make a new ECU folder with its factory images in slot A (GOOD) and a new key.

    Returns the ECU's public key as a TUF key dict (with its key id) for provisioning.
    """
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} already holds an ECU")
    if set(factory) != set(Partition):
        raise ValueError("a factory image is needed for every partition")
    folder.mkdir(parents=True, exist_ok=True)
    signer = CryptoSigner.generate_ed25519()
    atomic_write(folder / "key.pem", signer.private_bytes, mode=0o600)
    identity = {"serial": serial, "ecu_type": ecu_type, "hardware_id": hardware_id, "boot_limit": boot_limit}
    atomic_write(folder / "ecu.json", json.dumps(identity, indent=1).encode())
    partitions: dict[str, Any] = {}
    for partition, (ref, data) in factory.items():
        if len(data) != ref.length or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ValueError(f"factory image {ref.path} does not match its reference")
        atomic_write(folder / f"{partition}-a.bin", data)
        partitions[partition.value] = {
            "active": "a",
            "slots": {"a": {"health": "good", "image": ref.to_dict()}, "b": {"health": "empty"}},
        }
    env = {"format": ENV_FORMAT, "partitions": partitions, "reported": "firmware", "boot_attempts": 0}
    env |= {"reported_before": "firmware", "state_resets": 0}
    atomic_write(folder / "boot.json", json.dumps(env, indent=1).encode())
    atomic_write(folder / "settings.json", json.dumps(dict(settings or {})).encode())
    key = signer.public_key
    return {"keyid": key.keyid, **key.to_dict()}


class SimulatedEcu:
    """One simulated ECU over its folder (see the module docstring); implements Secondary."""

    def __init__(self, folder: Path, *, faults: FaultHook | None = None) -> None:
        self.folder = folder
        try:
            identity = json.loads((folder / "ecu.json").read_text())
            self._serial = str(identity["serial"])
            self._ecu_type = str(identity["ecu_type"])
            self._hardware_id = str(identity["hardware_id"])
            self._boot_limit = int(identity.get("boot_limit", 3))
        except (OSError, ValueError, KeyError) as e:
            raise EcuError(f"{folder} is not a simulated ECU: {e}") from e
        self._faults = faults or _no_faults
        self._signer: CryptoSigner | None = None  # the ECU's key is written once, at creation

    # ---- identity ---------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        return self._serial

    @property
    def ecu_type(self) -> str:
        return self._ecu_type

    @property
    def hardware_id(self) -> str:
        return self._hardware_id

    # ---- the boot environment ----------------------------------------------------------------
    def _env(self) -> dict[str, Any]:
        try:
            env: dict[str, Any] = json.loads((self.folder / "boot.json").read_text())
        except (OSError, ValueError) as e:
            raise EcuError(f"ECU {self.serial}: boot environment unreadable: {e}") from e
        if env.get("format") != ENV_FORMAT:
            raise EcuError(f"ECU {self.serial}: unknown boot environment format {env.get('format')!r}")
        return env

    def _write_env(self, env: dict[str, Any], label: str) -> None:
        self._faults(f"{self.serial}:{label}:before")
        atomic_write(self.folder / "boot.json", json.dumps(env, indent=1).encode())
        self._faults(f"{self.serial}:{label}:after")

    def _slot_file(self, partition: Partition, slot: SlotName) -> Path:
        return self.folder / f"{partition.value}-{slot.value}.bin"

    def running_bytes(self, partition: Partition) -> bytes | None:
        """The image in the active slot of `partition`: what this ECU boots (and, for the
        fleet simulator's battery models, the calibration it runs)."""
        active = self._env()["partitions"][partition.value]["active"]
        path = self._slot_file(partition, SlotName(active))
        return path.read_bytes() if path.is_file() else None

    def status(self) -> EcuStatus:
        env = self._env()
        partitions = {}
        for name, p in env["partitions"].items():
            slots = {
                SlotName(s): SlotStatus(
                    BootHealth(v["health"]), ImageRef.from_dict(v["image"]) if v.get("image") else None
                )
                for s, v in p["slots"].items()
            }
            partitions[Partition(name)] = PartitionStatus(SlotName(p["active"]), slots)
        return EcuStatus(self.serial, partitions, Partition(env["reported"]), int(env["boot_attempts"]))

    # ---- the moves --------------------------------------------------------------------------
    def write_inactive(
        self, partition: Partition, image: ImageRef, source: Path, *, progress: Progress | None = None
    ) -> None:
        env = self._env()
        if self.status().on_trial:
            raise EcuError(f"ECU {self.serial}: a partition is on trial; its other slot is the fallback")
        part = env["partitions"][partition.value]
        inactive = SlotName(part["active"]).other
        slot = part["slots"][inactive.value]
        if slot.get("image") == image.to_dict() and slot["health"] in ("staged", "good"):
            return
        part["slots"][inactive.value] = {"health": "empty"}
        self._write_env(env, f"erase-{partition.value}")  # the slot is unbootable before it is touched
        target = self._slot_file(partition, inactive)
        corrupt = bool(self._hooks().get("corrupt_write"))
        if corrupt:
            self.set_fault("corrupt_write", None)  # once
        written = 0
        delay = float(self._hooks().get("block_delay_s", 0))
        with open(source, "rb") as src, open(target, "wb") as dst:
            while block := src.read(BLOCK_SIZE):
                if corrupt and written == 0:
                    block = bytes([block[0] ^ 0xFF]) + block[1:]
                dst.write(block)
                written += len(block)
                if delay:
                    time.sleep(delay)
                if progress:
                    progress(written, image.length)
                self._faults(f"{self.serial}:write-{partition.value}:{written}")
            dst.flush()
            os.fsync(dst.fileno())
        length, digest = _sha256_file(target)
        if length != image.length or digest != image.sha256:
            raise FlashError(
                f"ECU {self.serial}: {image.path} failed its check after writing "
                f"({length} bytes, sha256 {digest[:12]}…; expected {image.length}, {image.sha256[:12]}…)"
            )
        part["slots"][inactive.value] = {"health": "staged", "image": image.to_dict()}
        self._write_env(env, f"staged-{partition.value}")

    def activate(self, slots: Mapping[Partition, SlotName]) -> None:
        env = self._env()
        changed = False
        for partition, slot in slots.items():
            part = env["partitions"][partition.value]
            state = part["slots"][slot.value]
            if part["active"] == slot.value and state["health"] == "trial":
                continue
            if state["health"] not in ("staged", "good"):
                raise FlashError(
                    f"ECU {self.serial}: {partition.value} slot {slot.value} is {state['health']}"
                )
            part["active"], state["health"], changed = slot.value, "trial", True
        if not changed:
            return
        last = Partition.FIRMWARE if Partition.FIRMWARE in slots else next(iter(slots))
        env["reported_before"], env["reported"] = env["reported"], last.value
        env["boot_attempts"] = 1  # the reset below boots the trial slots once
        self._write_env(env, "activate")

    def mark_good(self) -> None:
        env = self._env()
        trial = [p for p in env["partitions"].values() if p["slots"][p["active"]]["health"] == "trial"]
        if not trial:
            return
        for p in trial:
            p["slots"][p["active"]]["health"] = "good"
        env["boot_attempts"] = 0
        self._write_env(env, "mark-good")
        if self.status().on_trial:  # read back every mark (rauc/rauc#1140)
            raise EcuError(f"ECU {self.serial}: mark-good did not stick")

    def revert(self) -> None:
        env = self._env()
        if not self._revert_env(env):
            return
        self._write_env(env, "revert")

    def _revert_env(self, env: dict[str, Any]) -> bool:
        changed = False
        for p in env["partitions"].values():
            active = p["slots"][p["active"]]
            if active["health"] not in ("trial", "bad"):
                continue
            other = SlotName(p["active"]).other.value
            if p["slots"][other]["health"] != "good":
                raise EcuError(f"ECU {self.serial}: no good slot to go back to")
            active["health"], p["active"], changed = "bad", other, True
        if changed:
            env["reported"] = env.get("reported_before", env["reported"])
            env["boot_attempts"] = 0
        return changed

    def power_on(self) -> None:
        """The boot loader, at every power-on: count a boot on trial; past the limit, fall back
        to the good slot by itself (U-Boot's bootcount / altbootcmd)."""
        env = self._env()
        if not self.status().on_trial:
            return
        env["boot_attempts"] = int(env["boot_attempts"]) + 1
        if env["boot_attempts"] > self._boot_limit:
            self._revert_env(env)
        self._write_env(env, "boot")

    def self_test(self) -> SelfTestResult:
        if delay := float(self._hooks().get("self_test_delay_s", 0)):
            time.sleep(delay)
        status = self.status()
        checks: dict[str, bool] = {}
        reason = ""
        for partition, p in status.partitions.items():
            ref = p.running
            length, digest = _sha256_file(self._slot_file(partition, p.active))
            checks[f"{partition.value} image intact"] = ref is not None and (length, digest) == (
                ref.length,
                ref.sha256,
            )
            if not checks[f"{partition.value} image intact"]:
                reason = reason or f"{partition.value} slot {p.active.value} does not hold its image"
            marker = self._marker(self._slot_file(partition, p.active))
            checks[f"{partition.value} application"] = marker is None
            if marker is not None:
                reason = reason or marker
        hook = self._hooks().get("self_test")
        checks["plausibility"] = not hook
        if hook:
            reason = reason or str(hook)
        return SelfTestResult(all(checks.values()), reason, checks)

    @staticmethod
    def _marker(path: Path) -> str | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return "slot file missing"
        at = data.find(SELF_TEST_FAIL_MARKER)
        if at < 0:
            return None
        end = data.find(b"\n", at)
        return data[at + len(SELF_TEST_FAIL_MARKER) : end if end > 0 else None].decode(errors="replace")

    def reset_state(self) -> None:
        env = self._env()
        env["state_resets"] = int(env.get("state_resets", 0)) + 1
        self._write_env(env, "state-reset")

    @property
    def state_resets(self) -> int:
        """How many times the ECU's state machine was reset (for tests and the simulator)."""
        return int(self._env().get("state_resets", 0))

    def user_settings(self) -> dict[str, Any]:
        try:
            settings = json.loads((self.folder / "settings.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise EcuError(f"ECU {self.serial}: user settings unreadable: {e}") from e
        if not isinstance(settings, dict):
            raise EcuError(f"ECU {self.serial}: user settings are not an object")
        return settings

    def write_user_settings(self, settings: Mapping[str, Any]) -> None:
        self._faults(f"{self.serial}:settings:before")
        atomic_write(self.folder / "settings.json", json.dumps(dict(settings), sort_keys=True).encode())
        if self.user_settings() != dict(settings):
            raise EcuError(f"ECU {self.serial}: user settings did not stick")
        self._faults(f"{self.serial}:settings:after")

    def version_report(self, *, counter: int, time: dt.datetime, attacks: str = "") -> dict[str, Any]:
        installed = self.status().installed
        if installed is None:
            raise EcuError(f"ECU {self.serial} runs no verified image")
        if self._signer is None:
            key = load_pem_private_key((self.folder / "key.pem").read_bytes(), password=None)
            self._signer = CryptoSigner(key)
        report = version_report_of(self.serial, installed, time=time, counter=counter, attacks=attacks)
        return sign_ecu_report(report, self._signer)

    def close(self) -> None:
        return None

    # ---- test hooks ---------------------------------------------------------------------------
    def _hooks(self) -> dict[str, Any]:
        try:
            hooks = json.loads((self.folder / "faults.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return hooks if isinstance(hooks, dict) else {}

    def _save_hooks(self, hooks: Mapping[str, Any]) -> None:
        atomic_write(self.folder / "faults.json", json.dumps(dict(hooks)).encode())

    def set_fault(self, name: str, value: Any) -> None:
        """Arm a test hook ("self_test": reason, "corrupt_write": True); None disarms it."""
        hooks = self._hooks()
        if value is None:
            hooks.pop(name, None)
        else:
            hooks[name] = value
        self._save_hooks(hooks)

    def slot_digest(self, partition: Partition, slot: SlotName) -> tuple[int, str]:
        """Length and SHA-256 of what the slot file holds now (the invariant checker reads it)."""
        return _sha256_file(self._slot_file(partition, slot))
