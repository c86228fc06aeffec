"""The install journal: what the agent is doing, made durable before it does it.

`journal/current.json` holds the install in flight (or none); `journal/history.json` the last
finished ones. Every write goes through `atomic_write` (temp file, fsync, rename, fsync of
the folder), so after a power cut a reader finds the record before or after the write, never
half of it. Each file carries a format version and the journal's store counter, which rises
on every write and never repeats (Mender's StateData): the outbox names reports by it.

Finishing an install writes history first and clears `current` second; a cut between the two
leaves a terminal record in `current`, which recovery simply finishes again (idempotent by id).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evota.agent.errors import JournalError
from evota.agent.secondary import ImageRef, Partition, SlotName
from evota.domain.lifecycle import Phase
from evota.fsutil import atomic_write

__all__ = ["FORMAT", "HISTORY_KEPT", "InstallItem", "InstallRecord", "Journal"]

FORMAT = 1
HISTORY_KEPT = 20


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclasses.dataclass(frozen=True)
class InstallItem:
    """One image for one ECU partition: the slot it ran before and the slot it goes to."""

    ecu_serial: str
    partition: Partition
    image: ImageRef  # what `slot_to` holds (or will hold once staged)
    slot_from: SlotName
    slot_to: SlotName
    previous: ImageRef | None = None  # what `slot_from` holds (the image to go back to)
    release_counter: int = 0
    hashes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # every hash of the target

    def to_dict(self) -> dict[str, Any]:
        return {
            "ecu_serial": self.ecu_serial,
            "partition": self.partition.value,
            "image": self.image.to_dict(),
            "slot_from": self.slot_from.value,
            "slot_to": self.slot_to.value,
            "previous": self.previous.to_dict() if self.previous else None,
            "release_counter": self.release_counter,
            "hashes": dict(self.hashes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstallItem:
        return cls(
            str(data["ecu_serial"]),
            Partition(data["partition"]),
            ImageRef.from_dict(data["image"]),
            SlotName(data["slot_from"]),
            SlotName(data["slot_to"]),
            ImageRef.from_dict(data["previous"]) if data.get("previous") else None,
            int(data.get("release_counter", 0)),
            {str(k): str(v) for k, v in data.get("hashes", {}).items()},
        )


@dataclasses.dataclass(frozen=True)
class InstallRecord:
    """One install (or a user's rollback) of a bundle across its ECUs."""

    id: str
    kind: str  # "install" or "user_rollback"
    release: str
    items: tuple[InstallItem, ...]
    phase: Phase
    started_at: dt.datetime
    updated_at: dt.datetime
    resumes: int = 0  # restarts into the current phase (the loop guard)
    reason: str = ""  # why it failed or rolled back
    policy: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    settings_before: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    tests: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    committed_at: dt.datetime | None = None

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.ecu_serial for i in self.items))

    def items_of(self, serial: str) -> tuple[InstallItem, ...]:
        return tuple(i for i in self.items if i.ecu_serial == serial)

    def moved(self, phase: Phase, now: dt.datetime, **changes: Any) -> InstallRecord:
        """This record in `phase` (the resume count restarts when the phase changes)."""
        resumes = 0 if phase is not self.phase else self.resumes
        return dataclasses.replace(self, phase=phase, updated_at=now, resumes=resumes, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "release": self.release,
            "items": [i.to_dict() for i in self.items],
            "phase": self.phase.value,
            "started_at": _time(self.started_at),
            "updated_at": _time(self.updated_at),
            "resumes": self.resumes,
            "reason": self.reason,
            "policy": dict(self.policy),
            "settings_before": {k: dict(v) for k, v in self.settings_before.items()},
            "tests": {k: dict(v) for k, v in self.tests.items()},
            "committed_at": _time(self.committed_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstallRecord:
        started = _parse_time(data["started_at"])
        updated = _parse_time(data["updated_at"])
        if started is None or updated is None:
            raise ValueError("an install record needs its start and update times")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            release=str(data["release"]),
            items=tuple(InstallItem.from_dict(i) for i in data["items"]),
            phase=Phase(data["phase"]),
            started_at=started,
            updated_at=updated,
            resumes=int(data.get("resumes", 0)),
            reason=str(data.get("reason", "")),
            policy=dict(data.get("policy", {})),
            settings_before={str(k): dict(v) for k, v in data.get("settings_before", {}).items()},
            tests={str(k): dict(v) for k, v in data.get("tests", {}).items()},
            committed_at=_parse_time(data.get("committed_at")),
        )


class Journal:
    """The journal folder of one vehicle's state directory."""

    def __init__(self, folder: Path, *, faults: Any = None) -> None:
        self.folder = folder
        self._faults = faults or (lambda label: None)
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def _current(self) -> Path:
        return self.folder / "current.json"

    @property
    def _history(self) -> Path:
        return self.folder / "history.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            body = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise JournalError(f"{path} is not valid JSON: {e}") from e
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise JournalError(
                f"{path}: unknown journal format {body.get('format') if isinstance(body, dict) else body!r}"
            )
        return body

    def counter(self) -> int:
        """The store counter of the last write (0 for a new journal)."""
        counters = [int(b["counter"]) for p in (self._current, self._history) if (b := self._read(p))]
        return max(counters, default=0)

    def current(self) -> InstallRecord | None:
        body = self._read(self._current)
        if body is None or body.get("record") is None:
            return None
        try:
            return InstallRecord.from_dict(body["record"])
        except (KeyError, TypeError, ValueError) as e:
            raise JournalError(f"{self._current}: malformed install record: {e!r}") from e

    def history(self) -> list[InstallRecord]:
        body = self._read(self._history)
        if body is None:
            return []
        try:
            return [InstallRecord.from_dict(r) for r in body["records"]]
        except (KeyError, TypeError, ValueError) as e:
            raise JournalError(f"{self._history}: malformed record: {e!r}") from e

    def write(self, record: InstallRecord | None) -> int:
        """Make `record` the install in flight (None: none); returns the new store counter."""
        counter = self.counter() + 1
        body = {"format": FORMAT, "counter": counter, "record": record.to_dict() if record else None}
        label = f"journal:{record.phase.value if record else 'clear'}"
        self._faults(f"{label}:before")
        atomic_write(self._current, json.dumps(body, indent=1).encode())
        self._faults(f"{label}:after")
        return counter

    def finish(self, record: InstallRecord) -> None:
        """Move a finished record into the history, then clear the install in flight."""
        kept = [r for r in self.history() if r.id != record.id or r.kind != record.kind]
        records: Sequence[InstallRecord] = [*kept, record][-HISTORY_KEPT:]
        body = {"format": FORMAT, "counter": self.counter() + 1, "records": [r.to_dict() for r in records]}
        self._faults("journal:history:before")
        atomic_write(self._history, json.dumps(body, indent=1).encode())
        self._faults("journal:history:after")
        self.write(None)
