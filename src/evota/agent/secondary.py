"""The port to a secondary ECU: what the primary asks of a BMS, a VCMS or a thermal ECU.

Two implementations stand behind it: `evota.agent.simulated.SimulatedEcu` (flash as files,
for the fleet simulator and the power-cut tests) and `evota.agent.uds.UdsEcu` (UDS over
ISO-TP on python-can, flashed with udsoncan). The primary's install flow sees only this.

The model follows RAUC: each ECU has partitions (firmware, and a parameter partition for
calibrations), each partition two slots, A and B. A slot's *role* (active or inactive) is
kept apart from its *health*:

    EMPTY    erased, or a write was cut: holds no verified image, never bootable
    STAGED   holds a complete image whose length and SHA-256 the ECU itself verified
    TRIAL    active, booted on trial: not yet marked good (U-Boot's upgrade_available)
    GOOD     marked good: the slot the ECU falls back to
    BAD      was on trial and failed; kept for diagnosis, never booted again

Moves (every method is idempotent, so a primary recovering from a power cut simply calls
again; every mark is read back before the method returns):

    write_inactive   inactive slot: any -> EMPTY -> (erase, transfer, ECU verifies) -> STAGED
    activate         named slots: STAGED or GOOD -> TRIAL, the ECU resets into them
    mark_good        every TRIAL slot -> GOOD (the commit)
    revert           every TRIAL (or BAD) active slot -> BAD, the ECU resets into the GOOD
                     slot of that partition (the rollback)

The ECU's own boot loader counts boots only while a slot is on TRIAL; past its limit it falls
back to the GOOD slot by itself and marks the trial slot BAD, so a cut during a trial can
never leave an ECU booting an image nobody verified. The GOOD slot's attempts are never
used up (rauc/rauc#683). No write is accepted while a partition is on trial: the inactive
slot is then the fallback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from evota.security.manifest import EcuReport

__all__ = [
    "BootHealth",
    "EcuStatus",
    "ImageRef",
    "Partition",
    "PartitionStatus",
    "Progress",
    "Secondary",
    "SelfTestResult",
    "SlotName",
    "SlotStatus",
    "version_report_of",
]


class Partition(enum.StrEnum):
    FIRMWARE = "firmware"
    PARAMS = "params"  # calibration / parameter sets (ImageKind.PARAMS)


class SlotName(enum.StrEnum):
    A = "a"
    B = "b"

    @property
    def other(self) -> SlotName:
        return SlotName.B if self is SlotName.A else SlotName.A


class BootHealth(enum.StrEnum):
    EMPTY = "empty"
    STAGED = "staged"
    TRIAL = "trial"
    GOOD = "good"
    BAD = "bad"

    @property
    def holds_image(self) -> bool:
        """The slot holds a complete image the ECU verified."""
        return self is not BootHealth.EMPTY


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An image as the ECU knows it: the target path (its name in both repositories), its
    length and SHA-256, and its version."""

    path: str
    length: int
    sha256: str
    version: str

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError("an image length cannot be negative")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.path}: sha256 must be 64 lowercase hex digits")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "length": self.length, "sha256": self.sha256, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRef:
        return cls(str(data["path"]), int(data["length"]), str(data["sha256"]), str(data["version"]))


@dataclasses.dataclass(frozen=True)
class SlotStatus:
    health: BootHealth
    image: ImageRef | None = None  # None exactly when health is EMPTY


@dataclasses.dataclass(frozen=True)
class PartitionStatus:
    active: SlotName
    slots: Mapping[SlotName, SlotStatus]

    @property
    def inactive(self) -> SlotName:
        return self.active.other

    @property
    def running(self) -> ImageRef | None:
        """The image the ECU boots from this partition now."""
        return self.slots[self.active].image

    @property
    def on_trial(self) -> bool:
        return self.slots[self.active].health is BootHealth.TRIAL


@dataclasses.dataclass(frozen=True)
class EcuStatus:
    """What an ECU says about itself, read from the ECU (never a cached copy)."""

    serial: str
    partitions: Mapping[Partition, PartitionStatus]
    # The partition activated last: its running image is the one the ECU reports as
    # installed in its Uptane version report (the director assigns one image per ECU).
    reported: Partition = Partition.FIRMWARE
    boot_attempts: int = 0  # boots on trial since the last activate (0 when nothing is on trial)

    @property
    def installed(self) -> ImageRef | None:
        return self.partitions[self.reported].running

    @property
    def on_trial(self) -> bool:
        return any(p.on_trial for p in self.partitions.values())


@dataclasses.dataclass(frozen=True)
class SelfTestResult:
    """The ECU's self-test after a trial boot: each named check and what it found."""

    passed: bool
    reason: str = ""  # why it failed, in an operator's words ("cell voltage plausibility")
    checks: Mapping[str, bool] = dataclasses.field(default_factory=dict)


Progress = Callable[[int, int], None]  # (bytes written so far, total bytes)


def version_report_of(
    serial: str, image: ImageRef, *, time: dt.datetime, counter: int, attacks: str
) -> EcuReport:
    """The Uptane version report an ECU signs for the image it reports installed."""
    return EcuReport(serial, image.path, image.length, {"sha256": image.sha256}, time, counter, attacks)


class Secondary(Protocol):
    """One secondary ECU, as the primary's install flow drives it.

    Every method raises an `evota.agent.errors.EcuError` subclass when the ECU refuses
    (`FlashError`: bad sequence, key, block or hash) or does not answer
    (`EcuUnreachableError`). None of them may leave an active slot without a verified image.
    """

    @property
    def serial(self) -> str: ...

    @property
    def ecu_type(self) -> str: ...

    @property
    def hardware_id(self) -> str: ...

    def status(self) -> EcuStatus:
        """Read the ECU's slots, their health and images, and its boot attempts."""
        ...

    def write_inactive(
        self, partition: Partition, image: ImageRef, source: Path, *, progress: Progress | None = None
    ) -> None:
        """Erase the inactive slot of `partition`, write `source` into it, and have the ECU
        verify its length and SHA-256 against `image` (the slot is then STAGED).

        Always restarts from the erase: a transfer cut half-way cannot be resumed (UDS has no
        resume), and a slot left EMPTY is simply written again. A slot already STAGED with
        exactly `image` is left as it is. Refused while any partition is on trial.
        """
        ...

    def activate(self, slots: Mapping[Partition, SlotName]) -> None:
        """Put each named slot (STAGED or GOOD, never EMPTY or BAD) on trial and reset the ECU
        into them, in one reset. A slot already active on trial is left as it is."""
        ...

    def self_test(self) -> SelfTestResult:
        """Run the ECU's self-test on what it booted (for a BMS: cell voltages and
        temperatures plausible, contactors answer, heartbeats, SoC within bounds)."""
        ...

    def mark_good(self) -> None:
        """Commit: every slot on trial becomes GOOD; boot attempts stop counting."""
        ...

    def revert(self) -> None:
        """Roll back: every partition whose active slot is on TRIAL or BAD goes back to its
        GOOD slot (the trial slot is marked BAD) and the ECU resets. No-op if none is."""
        ...

    def reset_state(self) -> None:
        """Reset the ECU's state machine and re-run its start-up checks (a BMS after an
        algorithm change: SoC, SoH and balancing state re-learnt; seed incident CS-15)."""
        ...

    def user_settings(self) -> dict[str, Any]:
        """The user's settings the ECU keeps outside its images (charge limit, departure
        time): a JSON object, empty if none."""
        ...

    def write_user_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace the user's settings (after a parameter migration); read back."""
        ...

    def version_report(self, *, counter: int, time: dt.datetime, attacks: str = "") -> dict[str, Any]:
        """The ECU's Uptane version report, signed by the ECU's own key
        (`evota.security.manifest.sign_ecu_report`), naming `status().installed`."""
        ...

    def close(self) -> None:
        """Release the connection (bus, files); the ECU keeps its state."""
        ...
