"""What chargers tell the CSMS, recorded: boots, heartbeats, connector states, sessions.

One transaction per message. The OCPP handlers (`server/ocpp/v16.py`, `v201.py`) parse the
version-specific payloads and call these with plain values, so both versions share one
meaning: a 1.6 StartTransaction and a 2.0.1 TransactionEvent(Started) open the same kind of
session row, and a session's success is judged by `domain.chargers.session_succeeded`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlalchemy import select, update

from evota.domain.chargers import ConnectorStatus, session_succeeded
from evota.server.services.chargers import load_charger
from evota.server.store.charger_models import (
    ChargerConnectorRow,
    ChargerRow,
    ChargerSessionRow,
    FirmwareStepRow,
)
from evota.server.store.db import Database

__all__ = [
    "Boot",
    "is_booted",
    "record_boot",
    "record_connection",
    "record_connector",
    "record_security_event",
    "record_seen",
    "start_session",
    "stop_session",
]

MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Boot:
    vendor: str
    model: str
    firmware_version: str | None
    serial_number: str | None
    reason: str  # 2.0.1 BootReasonEnumType; 1.6 has none and reports "Unknown"


def _when(at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """A charger's timestamp, trusted only as far as our own clock allows."""
    return now if at is None or at > now + MAX_CLOCK_SKEW else at


def record_connection(
    db: Database, charge_point_id: str, *, connected: bool, protocol: str | None, now: dt.datetime
) -> None:
    with db.sessions.begin() as session:
        values: dict[str, object] = {"connected": connected, "last_seen_at": now}
        if protocol is not None:
            values["protocol"] = protocol
        session.execute(
            update(ChargerRow).where(ChargerRow.charge_point_id == charge_point_id).values(**values)
        )


def is_booted(db: Database, charge_point_id: str) -> bool:
    """Has this charger ever had a BootNotification accepted? Before that, OCPP allows it no
    other message (1.6 §4.2, 2.0.1 B02.FR.09)."""
    with db.sessions() as session:
        at = session.scalars(
            select(ChargerRow.booted_at).where(ChargerRow.charge_point_id == charge_point_id)
        ).one_or_none()
    return at is not None


def record_boot(db: Database, charge_point_id: str, boot: Boot, *, now: dt.datetime) -> None:
    """Store what the charger says it is and runs. The first firmware it ever boots with is its
    last known good one (the one a failed update rolls back to)."""
    with db.sessions.begin() as session:
        row = load_charger(session, charge_point_id, lock=True)
        row.vendor, row.model = boot.vendor, boot.model
        row.serial_number = boot.serial_number
        row.firmware_version = boot.firmware_version
        row.boot_reason, row.booted_at, row.last_seen_at = boot.reason, now, now
        if row.last_good_firmware is None:
            row.last_good_firmware = boot.firmware_version


def record_seen(db: Database, charge_point_id: str, *, now: dt.datetime) -> None:
    with db.sessions.begin() as session:
        session.execute(
            update(ChargerRow).where(ChargerRow.charge_point_id == charge_point_id).values(last_seen_at=now)
        )


def record_connector(
    db: Database,
    charge_point_id: str,
    *,
    evse_id: int,
    connector_id: int,
    status: ConnectorStatus,
    error_code: str | None,
    now: dt.datetime,
) -> None:
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        charger.last_seen_at = now
        row = session.get(ChargerConnectorRow, (charger.id, evse_id, connector_id))
        if row is None:
            session.add(
                ChargerConnectorRow(
                    charger_id=charger.id,
                    evse_id=evse_id,
                    connector_id=connector_id,
                    status=status.value,
                    error_code=error_code,
                    updated_at=now,
                )
            )
        else:
            row.status, row.error_code, row.updated_at = status.value, error_code, now


def start_session(
    db: Database,
    charge_point_id: str,
    *,
    transaction_id: str | None,
    evse_id: int,
    id_tag: str | None,
    meter_start_wh: float,
    at: dt.datetime | None,
    now: dt.datetime,
) -> str:
    """Open a session; returns its transaction id (1.6: evota assigns it, `transaction_id`
    None; 2.0.1: the charger's). A repeated start of a known transaction changes nothing."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        charger.last_seen_at = now
        if transaction_id is not None:
            existing = session.scalars(
                select(ChargerSessionRow).where(
                    ChargerSessionRow.charger_id == charger.id,
                    ChargerSessionRow.transaction_id == transaction_id,
                )
            ).one_or_none()
            if existing is not None:
                return transaction_id
        row = ChargerSessionRow(
            charger_id=charger.id,
            transaction_id=transaction_id or f"pending-{uuid.uuid4().hex}",
            evse_id=evse_id,
            id_tag=id_tag,
            started_at=_when(at, now),
            meter_start_wh=meter_start_wh,
            firmware_version=charger.firmware_version,
        )
        session.add(row)
        session.flush()
        if transaction_id is None:
            row.transaction_id = str(row.id)  # 1.6 transaction ids are integers the CSMS assigns
        return row.transaction_id


def stop_session(
    db: Database,
    charge_point_id: str,
    *,
    transaction_id: str,
    meter_stop_wh: float | None,
    reason: str | None,
    at: dt.datetime | None,
    now: dt.datetime,
    evse_id: int = 0,
) -> bool:
    """Close a session; False if evota never saw it start (it is then recorded as it ends,
    since a charger that started it offline still delivered, or failed, a session)."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        charger.last_seen_at = now
        row = session.scalars(
            select(ChargerSessionRow).where(
                ChargerSessionRow.charger_id == charger.id,
                ChargerSessionRow.transaction_id == transaction_id,
            )
        ).one_or_none()
        known = row is not None
        if row is None:
            row = ChargerSessionRow(
                charger_id=charger.id,
                transaction_id=transaction_id,
                evse_id=evse_id,
                started_at=_when(at, now),
                meter_start_wh=meter_stop_wh or 0.0,
                firmware_version=charger.firmware_version,
            )
            session.add(row)
        if row.stopped_at is not None:
            return known  # a repeated stop: the first one counts
        row.stopped_at, row.stop_reason = _when(at, now), reason
        row.meter_stop_wh = meter_stop_wh if meter_stop_wh is not None else row.meter_start_wh
        row.succeeded = session_succeeded(row.meter_stop_wh - row.meter_start_wh, reason)
        return known


def record_security_event(db: Database, charge_point_id: str, *, event: str, now: dt.datetime) -> None:
    """Keep a SecurityEventNotification beside the firmware steps (FirmwareUpdated,
    InvalidFirmwareSignature and InvalidFirmwareSigningCertificate belong to that story)."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        charger.last_seen_at = now
        session.add(
            FirmwareStepRow(
                charger_id=charger.id,
                request_id=None,
                status=event[:64],
                source="security_event",
                received_at=now,
            )
        )
