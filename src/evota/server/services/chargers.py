"""The charger registry's use cases: add chargers, set their passwords, authenticate, list.

A charger is added by an operator with its charge point id, site, time zone and tags; evota
generates its basic-auth password, returns it once, and stores only its scrypt hash. What
the charger says about itself (vendor, model, firmware) arrives with its BootNotification
(`services/csms.py`), never from the operator.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hmac
import secrets
import threading
import zoneinfo
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from evota.domain.chargers import validate_charge_point_id, validate_site
from evota.domain.identifiers import validate_name
from evota.errors import InputError, NotFoundError
from evota.security.errors import AuthenticationError
from evota.security.passwords import hash_password, new_password, verify_password
from evota.server.services.audit import record
from evota.server.store.charger_models import ChargerRow, ChargerTagRow
from evota.server.store.db import Database

__all__ = [
    "ChargerView",
    "VerifiedPasswords",
    "add_charger",
    "authenticate_charger",
    "get_charger",
    "list_chargers",
    "load_charger",
    "reset_password",
]


@dataclasses.dataclass(frozen=True)
class ChargerView:
    charge_point_id: str
    site: str
    time_zone: str
    tags: tuple[str, ...]
    vendor: str | None
    model: str | None
    firmware_version: str | None
    last_good_firmware: str | None
    protocol: str | None
    connected: bool
    boot_reason: str | None
    booted_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    signed_updates: bool
    connectors: tuple[dict[str, object], ...]

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["tags"] = list(self.tags)
        out["connectors"] = list(self.connectors)
        for key in ("booted_at", "last_seen_at"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value else None
        return out


def _view(row: ChargerRow) -> ChargerView:
    return ChargerView(
        charge_point_id=row.charge_point_id,
        site=row.site,
        time_zone=row.time_zone,
        tags=tuple(t.tag for t in row.tags),
        vendor=row.vendor,
        model=row.model,
        firmware_version=row.firmware_version,
        last_good_firmware=row.last_good_firmware,
        protocol=row.protocol,
        connected=row.connected,
        boot_reason=row.boot_reason,
        booted_at=row.booted_at,
        last_seen_at=row.last_seen_at,
        signed_updates=row.signed_updates,
        connectors=tuple(
            {"evse": c.evse_id, "connector": c.connector_id, "status": c.status, "error_code": c.error_code}
            for c in row.connectors
        ),
    )


def _check_time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from None
    return name


def add_charger(
    db: Database,
    *,
    charge_point_id: str,
    site: str,
    time_zone: str,
    tags: Sequence[str] = (),
    signed_updates: bool = True,
    actor: str,
    now: dt.datetime,
) -> str:
    """Register a charger; returns its generated password (shown once, stored hashed)."""
    validate_charge_point_id(charge_point_id)
    validate_site(site)
    _check_time_zone(time_zone)
    for tag in tags:
        validate_name(tag)
    password = new_password()
    with db.sessions.begin() as session:
        row = ChargerRow(
            charge_point_id=charge_point_id,
            site=site,
            time_zone=time_zone,
            password_hash=hash_password(password),
            connected=False,
            signed_updates=signed_updates,
            accepts_downgrade=True,
            created_at=now,
            tags=[ChargerTagRow(tag=t) for t in sorted(set(tags))],
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(f"charger {charge_point_id} is already registered") from None
        record(
            session,
            actor=actor,
            action="charger.add",
            subject=f"charger:{charge_point_id}",
            details={"site": site, "time_zone": time_zone, "tags": sorted(set(tags))},
            now=now,
        )
    return password


def reset_password(db: Database, charge_point_id: str, *, actor: str, now: dt.datetime) -> str:
    """A new password for a charger (the old one stops working); returns it once."""
    password = new_password()
    with db.sessions.begin() as session:
        row = load_charger(session, charge_point_id)
        row.password_hash = hash_password(password)
        record(
            session,
            actor=actor,
            action="charger.password",
            subject=f"charger:{charge_point_id}",
            details={},
            now=now,
        )
    return password


class VerifiedPasswords:
    """The (charger, stored hash, password) triples that verified lately, so that a fleet
    reconnecting at once (a CSMS restart, a network outage) costs one scrypt per charger
    rather than one per connection. The password is kept only as an HMAC under a key that
    lives in this process; a new password (a new stored hash) misses the cache."""

    def __init__(self, size: int = 100_000) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: collections.OrderedDict[tuple[str, str, bytes], None] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _entry(self, charge_point_id: str, stored: str, password: str) -> tuple[str, str, bytes]:
        return charge_point_id, stored, hmac.digest(self._key, password.encode("utf-8"), "sha256")

    def known(self, charge_point_id: str, stored: str, password: str) -> bool:
        entry = self._entry(charge_point_id, stored, password)
        with self._lock:
            if entry in self._seen:
                self._seen.move_to_end(entry)
                return True
        return False

    def remember(self, charge_point_id: str, stored: str, password: str) -> None:
        with self._lock:
            self._seen[self._entry(charge_point_id, stored, password)] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


def authenticate_charger(
    db: Database, charge_point_id: str, password: str, *, verified: VerifiedPasswords | None = None
) -> None:
    """AuthenticationError unless `password` is this registered charger's."""
    with db.sessions() as session:
        stored = session.scalars(
            select(ChargerRow.password_hash).where(ChargerRow.charge_point_id == charge_point_id)
        ).one_or_none()
    if stored is not None and verified is not None and verified.known(charge_point_id, stored, password):
        return
    if stored is None or not verify_password(password, stored):
        raise AuthenticationError(f"charger {charge_point_id}: unknown charger or wrong password")
    if verified is not None:
        verified.remember(charge_point_id, stored, password)


def load_charger(session: Session, charge_point_id: str, *, lock: bool = False) -> ChargerRow:
    query = select(ChargerRow).where(ChargerRow.charge_point_id == charge_point_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFoundError(f"no charger {charge_point_id} in the registry")
    return row


def get_charger(db: Database, charge_point_id: str) -> ChargerView:
    with db.sessions() as session:
        row = session.scalars(
            select(ChargerRow)
            .where(ChargerRow.charge_point_id == charge_point_id)
            .options(selectinload(ChargerRow.tags), selectinload(ChargerRow.connectors))
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no charger {charge_point_id} in the registry")
        return _view(row)


def list_chargers(db: Database, *, site: str | None = None) -> list[ChargerView]:
    query = select(ChargerRow).options(selectinload(ChargerRow.tags), selectinload(ChargerRow.connectors))
    if site:
        query = query.where(ChargerRow.site == site)
    with db.sessions() as session:
        return [_view(r) for r in session.scalars(query.order_by(ChargerRow.charge_point_id))]
