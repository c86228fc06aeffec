"""Writing TUF metadata: a root history and a targets → snapshot → timestamp chain.

Both Uptane repositories are built from these two pieces. The image repository is one root
history and one chain in the same folder; the director has one root history shared by all
vehicles and one chain per vehicle. Files follow the TUF layout with consistent snapshots
(`N.root.json`, `N.snapshot.json`, `N.targets.json`, `timestamp.json`), so any TUF client
can read them. Writes are atomic and ordered so that a reader following timestamp →
snapshot → targets never sees a file that is not there yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from evota.fsutil import atomic_write
from evota.security.keys import KeyStore, require_signers, sign_as

log = logging.getLogger(__name__)

__all__ = ["METADATA_NAME", "ChainExpiry", "RootHistory", "SignedChain", "expiry_from"]

# The only names a metadata folder serves; anything else is refused before touching disk.
METADATA_NAME = re.compile(r"^(?:[1-9][0-9]{0,9}\.)?(?:root|timestamp|snapshot|targets)\.json$")

_SERIALIZER = JSONSerializer(compact=False)


def expiry_from(now: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    """TUF stores expiry to the second; drop microseconds so a round trip is exact."""
    return (now + lifetime).replace(microsecond=0)


def _write(path: Path, md: Metadata[Any]) -> None:
    atomic_write(path, md.to_bytes(_SERIALIZER))


class RootHistory:
    """`N.root.json` files in a folder; the highest N is the current root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._memo: tuple[tuple[str, int, int], Metadata[Root]] | None = None

    def versions(self) -> list[int]:
        found = [int(p.name.split(".", 1)[0]) for p in self.folder.glob("*.root.json")]
        return sorted(v for v in found if v > 0)

    def current(self) -> Metadata[Root]:
        """The current root (memoised per file; treat it as read-only)."""
        versions = self.versions()
        if not versions:
            raise FileNotFoundError(f"no root metadata in {self.folder}")
        path = self.folder / f"{versions[-1]}.root.json"
        st = path.stat()
        key = (path.name, st.st_mtime_ns, st.st_size)
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, Metadata[Root].from_file(str(path)))
        return self._memo[1]

    def current_bytes(self) -> bytes:
        return (self.folder / f"{self.versions()[-1]}.root.json").read_bytes()

    def write(self, md: Metadata[Root]) -> None:
        _write(self.folder / f"{md.signed.version}.root.json", md)


@dataclasses.dataclass(frozen=True)
class _Versions:
    """The versions of a chain as it stands: the next write of each role is one above."""

    timestamp: int
    snapshot: int
    targets: int


_NEW_CHAIN = _Versions(0, 0, 0)


@dataclasses.dataclass(frozen=True)
class ChainExpiry:
    targets: dt.timedelta
    snapshot: dt.timedelta
    timestamp: dt.timedelta


class SignedChain:
    """targets → snapshot → timestamp for one TUF repository (or one vehicle's director view).

    `root` is called for the current root each time, so a key rotation is picked up at once.
    """

    def __init__(
        self,
        folder: Path,
        root: Callable[[], Root],
        store: KeyStore,
        expiry: ChainExpiry,
        label: str,
        *,
        targets_online: bool,
    ) -> None:
        self.folder = folder
        self._targets_online = targets_online
        self._root = root
        self._store = store
        self._expiry = expiry
        self._label = label

    # ---- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.folder / "timestamp.json").is_file()

    def timestamp(self) -> Metadata[Timestamp]:
        return Metadata[Timestamp].from_file(str(self.folder / "timestamp.json"))

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return Metadata[Snapshot].from_file(str(self.folder / f"{version}.snapshot.json"))

    def targets(self) -> Metadata[Targets]:
        version = self.snapshot().signed.meta["targets.json"].version
        return Metadata[Targets].from_file(str(self.folder / f"{version}.targets.json"))

    # ---- writing (callers hold the home's write lock) --------------------------------------
    def create(self, now: dt.datetime, targets: Targets | None = None) -> None:
        """Write version 1 of the chain (an empty targets role unless one is given)."""
        t = targets or Targets(version=1)
        self.commit_targets(Metadata(t), now, first=True)

    def commit_targets(self, md: Metadata[Targets], now: dt.datetime, *, first: bool = False) -> None:
        """Sign `md` as the next targets version, then a new snapshot and timestamp."""
        self.check_keys()
        v = _NEW_CHAIN if first else self._versions()
        md.signed.version = v.targets + 1
        md.signed.expires = expiry_from(now, self._expiry.targets)
        sign_as(md, Targets.type, self._root(), self._store, what=f"{self._label} targets")
        _write(self.folder / f"{md.signed.version}.targets.json", md)
        self._write_snapshot(now, md.signed.version, v)

    def refresh(self, now: dt.datetime) -> bool:
        """Re-sign online roles that have used half their lifetime; True if anything changed.

        Targets of the image repository are signed offline and cannot be refreshed here: a
        repository whose targets expire must be re-signed by an operator, and a warning says so.
        """
        ts = self.timestamp().signed
        snap = self.snapshot().signed
        targets = self.targets()
        v = _Versions(ts.version, snap.version, targets.signed.version)
        if _half_spent(targets.signed.expires, self._expiry.targets, now):
            if self._targets_online:
                self.commit_targets(targets, now)
                return True
            log.warning(
                "%s targets expire at %s and are signed offline: re-sign them (any publish does)",
                self._label,
                targets.signed.expires.isoformat(),
            )
        if _half_spent(snap.expires, self._expiry.snapshot, now):
            self._write_snapshot(now, v.targets, v)
            return True
        if _half_spent(ts.expires, self._expiry.timestamp, now):
            self._write_timestamp(now, v.snapshot, v)
            return True
        return False

    def refresh_due(self, now: dt.datetime) -> bool:
        """Cheap check (no lock): has any online role used half its lifetime?"""
        ts = self.timestamp().signed
        if _half_spent(ts.expires, self._expiry.timestamp, now):
            return True
        snap = self.snapshot().signed
        if _half_spent(snap.expires, self._expiry.snapshot, now):
            return True
        return self._targets_online and _half_spent(self.targets().signed.expires, self._expiry.targets, now)

    def resign_online(self, now: dt.datetime) -> None:
        """New snapshot and timestamp versions (after an online key rotation)."""
        v = self._versions()
        self._write_snapshot(now, v.targets, v)

    def check_keys(self) -> None:
        """KeyUnavailableError unless every key a new targets version needs is at hand.

        Called before the first write, so that a refusal writes nothing.
        """
        root = self._root()
        for role in (Targets.type, Snapshot.type, Timestamp.type):
            require_signers(role, root, self._store, what=f"{self._label} {role}")

    def _versions(self) -> _Versions:
        ts = self.timestamp().signed
        snap_version = ts.snapshot_meta.version
        snap = Metadata[Snapshot].from_file(str(self.folder / f"{snap_version}.snapshot.json")).signed
        return _Versions(ts.version, snap_version, snap.meta["targets.json"].version)

    def _write_snapshot(self, now: dt.datetime, targets_version: int, v: _Versions) -> None:
        snap = Snapshot(
            version=v.snapshot + 1,
            expires=expiry_from(now, self._expiry.snapshot),
            meta={"targets.json": MetaFile(version=targets_version)},
        )
        md = Metadata(snap)
        sign_as(md, Snapshot.type, self._root(), self._store, what=f"{self._label} snapshot")
        _write(self.folder / f"{snap.version}.snapshot.json", md)
        self._write_timestamp(now, snap.version, v)

    def _write_timestamp(self, now: dt.datetime, snapshot_version: int, v: _Versions) -> None:
        ts = Timestamp(
            version=v.timestamp + 1,
            expires=expiry_from(now, self._expiry.timestamp),
            snapshot_meta=MetaFile(version=snapshot_version),
        )
        md = Metadata(ts)
        sign_as(md, Timestamp.type, self._root(), self._store, what=f"{self._label} timestamp")
        _write(self.folder / "timestamp.json", md)


def _half_spent(expires: dt.datetime, lifetime: dt.timedelta, now: dt.datetime) -> bool:
    return expires - now < lifetime / 2
