"""The outbox of firmware requests, as the CSMS's dispatcher sees it: which queued requests
it may send, claiming one (so that two processes never send the same request), and storing
the charger's answer. The events' meanings are `domain/firmware.py`'s, their storage
`firmware_requests.py`'s."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select

from evota.domain.chargers import Protocol
from evota.domain.firmware import (
    FirmwareMessage,
    RequestEvent,
    RequestState,
    choose_message,
    event_for_response,
)
from evota.server.services.firmware_requests import TimeoutsOf, add_step, after_interruption, move_request
from evota.server.store.charger_models import ChargerFirmwareRow, ChargerRow, FirmwareRequestRow
from evota.server.store.db import Database

__all__ = ["Order", "claim", "pending_requests", "record_answer"]


@dataclasses.dataclass(frozen=True)
class Order:
    """What the dispatcher needs to send one request."""

    request_id: int
    charge_point_id: str
    message: FirmwareMessage
    path: str  # /charger-firmware/<sha256>/<name>, joined to the server's URL by the sender
    signature: str
    certificate_pem: str
    retries: int
    retry_interval_s: int
    install_at: dt.datetime | None


def pending_requests(db: Database, connected: list[str]) -> list[int]:
    """Queued requests of chargers connected here, oldest first."""
    if not connected:
        return []
    with db.sessions() as session:
        return list(
            session.scalars(
                select(FirmwareRequestRow.id)
                .join(ChargerRow, ChargerRow.id == FirmwareRequestRow.charger_id)
                .where(
                    FirmwareRequestRow.state == RequestState.QUEUED.value,
                    ChargerRow.charge_point_id.in_(connected),
                )
                .order_by(FirmwareRequestRow.id)
            )
        )


def claim(db: Database, request_id: int, protocol: Protocol, *, now: dt.datetime) -> Order | None:
    """Take a queued request for sending over a session of `protocol` (None if someone else
    took it, or it was superseded meanwhile)."""
    with db.sessions.begin() as session:
        row = session.scalars(
            select(FirmwareRequestRow).where(FirmwareRequestRow.id == request_id).with_for_update()
        ).one_or_none()
        if row is None or not move_request(session, row, RequestEvent.SEND, now):
            return None
        charger = session.get(ChargerRow, row.charger_id)
        firmware = session.get(ChargerFirmwareRow, row.firmware_id)
        assert charger is not None and firmware is not None
        message = choose_message(protocol, signed_updates=charger.signed_updates)
        row.message, row.sent_at, row.last_status_at = message.value, now, now
        return Order(
            request_id=row.id,
            charge_point_id=charger.charge_point_id,
            message=message,
            path=f"/charger-firmware/{firmware.sha256}/{firmware.file_name}",
            signature=firmware.signature,
            certificate_pem=firmware.certificate_pem,
            retries=row.retries,
            retry_interval_s=row.retry_interval_s,
            install_at=row.install_at,
        )


def record_answer(
    db: Database,
    request_id: int,
    *,
    status: str | None,
    error: str | None,
    timeouts: TimeoutsOf,
    now: dt.datetime,
) -> None:
    """Store the charger's answer to a sent request: `status` ("" for 1.6's empty answer), or
    `error` (a CALLERROR code, or None with `status` None: no answer at all)."""
    with db.sessions.begin() as session:
        row = session.scalars(
            select(FirmwareRequestRow).where(FirmwareRequestRow.id == request_id).with_for_update()
        ).one()
        row.response = (status if status is not None else (error or "NoAnswer"))[:32] or "Accepted"
        if status is not None:
            event = event_for_response(status)
            why = f"the charger answered {status}"
        elif error is not None:
            event, why = RequestEvent.REFUSED, f"the charger answered CALLERROR {error}"
        else:
            event, why = RequestEvent.NO_ANSWER, "no answer to the request"
        add_step(session, row.charger_id, row.id, row.response, "csms", now)
        if event is RequestEvent.NO_ANSWER:
            if move_request(session, row, event, now):
                after_interruption(session, row, why, timeouts(row.campaign_id), now)
        else:
            move_request(session, row, event, now, reason=why)
