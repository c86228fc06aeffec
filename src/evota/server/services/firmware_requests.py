"""Firmware requests to chargers: queue, claim for sending, and record what comes back.

The database holds every request and every step; the CSMS's sessions only carry them. One
transaction per event, each under the request's row lock, and each event goes through the
pure table of `domain/firmware.py`:

- `queue_request` adds a QUEUED request (the outbox) and cancels the charger's older open
  ones; the dispatcher (`server/ocpp/firmware.py`) claims it (`claim`) when the charger is
  connected to this process, sends it and stores the answer (`record_answer`).
- `record_status` stores every (Signed)FirmwareStatusNotification as a step and moves the
  request; `record_boot` judges a reboot (the target version: installed; another: lost).
- `sweep` times out requests that went silent.

The dispatcher's side (claim, answer) is `firmware_outbox.py`, the read side (a charger's
history, the request to reconcile, each campaign's timeouts) `firmware_queries.py`.

A lost request (interrupted: a reboot on the old version, a call with no answer, silence, an
Idle status while active) is followed by a new attempt with a fresh requestId, while the
timeouts' `max_attempts` allows; then it fails. A charger offline when its request is queued
gets it when it connects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evota.domain.chargers import Protocol
from evota.domain.firmware import (
    ACTIVE,
    TERMINAL,
    FirmwareStatus,
    FirmwareTimeouts,
    RequestEvent,
    RequestState,
    apply_event,
    choose_message,
    deadline,
    event_for_status,
    retry_after_interruption,
)
from evota.errors import InputError
from evota.server.services.chargers import load_charger
from evota.server.store.charger_models import (
    ChargerCampaignMemberRow,
    ChargerFirmwareRow,
    ChargerRow,
    FirmwareRequestRow,
    FirmwareStepRow,
)
from evota.server.store.db import Database

__all__ = [
    "add_step",
    "after_interruption",
    "move_request",
    "queue_request",
    "record_boot",
    "record_status",
    "request_update",
    "sweep",
]

TimeoutsOf = Callable[[int | None], FirmwareTimeouts]  # campaign id → its timeouts
_OPEN = [s.value for s in RequestState if s not in TERMINAL]


def add_step(
    session: Session, charger_id: int, request_id: int | None, status: str, source: str, now: dt.datetime
) -> None:
    session.add(
        FirmwareStepRow(
            charger_id=charger_id, request_id=request_id, status=status[:64], source=source, received_at=now
        )
    )


def queue_request(
    session: Session,
    charger: ChargerRow,
    firmware: ChargerFirmwareRow,
    *,
    purpose: str,
    campaign_id: int | None,
    retries: int,
    retry_interval_s: int,
    now: dt.datetime,
    install_at: dt.datetime | None = None,
    attempt: int = 1,
) -> FirmwareRequestRow:
    """Queue a request in the caller's transaction; the charger's older open requests are
    cancelled (the new one supersedes them on the wire too: AcceptedCanceled)."""
    if retries < 1 or retry_interval_s < 1:
        raise InputError("a firmware request sends retries ≥ 1 and a retry interval ≥ 1 s")
    for old in session.scalars(
        select(FirmwareRequestRow)
        .where(FirmwareRequestRow.charger_id == charger.id, FirmwareRequestRow.state.in_(_OPEN))
        .with_for_update()
    ):
        move_request(session, old, RequestEvent.SUPERSEDED, now, reason="superseded by a newer request")
    protocol = Protocol(charger.protocol) if charger.protocol else Protocol.V201
    row = FirmwareRequestRow(
        charger_id=charger.id,
        firmware_id=firmware.id,
        campaign_id=campaign_id,
        purpose=purpose,
        retries=retries,
        retry_interval_s=retry_interval_s,
        download_failures=0,
        attempt=attempt,
        install_at=install_at,
        message=choose_message(protocol, signed_updates=charger.signed_updates).value,
        created_at=now,
        state=RequestState.QUEUED.value,
    )
    session.add(row)
    session.flush()
    return row


def request_update(
    db: Database,
    charge_point_id: str,
    firmware_id: int,
    *,
    purpose: str = "update",
    retries: int = 3,
    retry_interval_s: int = 60,
    now: dt.datetime,
) -> int:
    """Queue one request outside any campaign (an operator's single update); returns its id."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id, lock=True)
        firmware = session.get(ChargerFirmwareRow, firmware_id)
        if firmware is None:
            raise InputError(f"no charger firmware with id {firmware_id}")
        row = queue_request(
            session,
            charger,
            firmware,
            purpose=purpose,
            campaign_id=None,
            retries=retries,
            retry_interval_s=retry_interval_s,
            now=now,
        )
        return row.id


def move_request(
    session: Session,
    row: FirmwareRequestRow,
    event: RequestEvent,
    now: dt.datetime,
    *,
    reason: str | None = None,
) -> bool:
    outcome = apply_event(RequestState(row.state), event)
    if not outcome.changed:
        return False
    row.state = outcome.state.value
    if outcome.state in TERMINAL:
        row.finished_at = now
        if reason and outcome.state is not RequestState.INSTALLED:
            row.reason = reason[:512]
    return True


def after_interruption(
    session: Session, row: FirmwareRequestRow, why: str, timeouts: FirmwareTimeouts, now: dt.datetime
) -> None:
    """After an attempt was lost: the next attempt, or failure once they are used up."""
    row.reason = why[:512]
    if not retry_after_interruption(row.attempt, timeouts):
        row.state = RequestState.FAILED.value
        row.reason = f"{why} (attempt {row.attempt} of {timeouts.max_attempts})"[:512]
        return
    charger = session.get(ChargerRow, row.charger_id)
    firmware = session.get(ChargerFirmwareRow, row.firmware_id)
    assert charger is not None and firmware is not None  # foreign keys
    queue_request(
        session,
        charger,
        firmware,
        purpose=row.purpose,
        campaign_id=row.campaign_id,
        retries=row.retries,
        retry_interval_s=row.retry_interval_s,
        now=now,
        install_at=row.install_at,
        attempt=row.attempt + 1,
    )


def _open_request(session: Session, charger_id: int, request_id: int | None) -> FirmwareRequestRow | None:
    query = select(FirmwareRequestRow).where(FirmwareRequestRow.charger_id == charger_id)
    if request_id is not None:
        query = query.where(FirmwareRequestRow.id == request_id)
    else:  # 1.6 core, or a triggered Idle: the charger's newest open request
        query = (
            query.where(FirmwareRequestRow.state.in_(_OPEN)).order_by(FirmwareRequestRow.id.desc()).limit(1)
        )
    return session.scalars(query.with_for_update()).first()


def record_status(
    db: Database,
    charge_point_id: str,
    *,
    status: FirmwareStatus,
    request_id: int | None,
    timeouts: TimeoutsOf,
    now: dt.datetime,
) -> None:
    """Store a status notification as a step, and move the request it belongs to (a status
    for a request evota does not know, or one finished, is stored and changes nothing)."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        charger.last_seen_at = now
        row = _open_request(session, charger.id, request_id)
        add_step(
            session,
            charger.id,
            request_id if request_id is not None else (row.id if row else None),
            status,
            "charger",
            now,
        )
        if row is None:
            return
        tries = 0
        if status is FirmwareStatus.DOWNLOAD_FAILED and RequestState(row.state) in ACTIVE:
            row.download_failures += 1
            tries = (
                session.scalar(
                    select(func.count())
                    .select_from(FirmwareStepRow)
                    .where(FirmwareStepRow.request_id == row.id, FirmwareStepRow.status == "Downloading")
                )
                or 0
            )
        event = event_for_status(
            status, download_failures=max(row.download_failures, tries), retries=row.retries
        )
        if status is not FirmwareStatus.IDLE or RequestState(row.state) in ACTIVE:
            row.last_status, row.last_status_at = status.value, now
        if event is RequestEvent.LOST:
            if move_request(session, row, event, now):
                after_interruption(
                    session,
                    row,
                    "the charger reports no update in progress (Idle)",
                    timeouts(row.campaign_id),
                    now,
                )
            return
        why = status.value
        if status is FirmwareStatus.DOWNLOAD_FAILED:
            why += f" after {max(row.download_failures, tries)} of {row.retries} tries"
        move_request(session, row, event, now, reason=why)


def record_boot(
    db: Database,
    charge_point_id: str,
    *,
    firmware_version: str | None,
    timeouts: TimeoutsOf,
    now: dt.datetime,
) -> None:
    """A charger booted: on the target version its open request is installed (even if
    Installed never comes); on another version an active one was lost, and a queued one
    waits. A charger validating a new firmware counts the boot (the loop guard)."""
    with db.sessions.begin() as session:
        charger = load_charger(session, charge_point_id)
        session.execute(
            update(ChargerCampaignMemberRow)
            .where(
                ChargerCampaignMemberRow.charger_id == charger.id,
                ChargerCampaignMemberRow.status == "validating",
            )
            .values(boots=ChargerCampaignMemberRow.boots + 1)
        )
        row = _open_request(session, charger.id, None)
        if row is None:
            return
        firmware = session.get(ChargerFirmwareRow, row.firmware_id)
        assert firmware is not None
        if firmware_version == firmware.version:
            add_step(session, charger.id, row.id, "Boot:target", "csms", now)
            move_request(session, row, RequestEvent.INSTALLED, now)
            return
        state = RequestState(row.state)
        if state in ACTIVE:
            add_step(session, charger.id, row.id, "Boot:other", "csms", now)
            if move_request(session, row, RequestEvent.LOST, now):
                version = firmware_version or "an unknown version"
                why = f"rebooted on {version} while {state.value.replace('_', ' ')}"
                after_interruption(session, row, why, timeouts(row.campaign_id), now)


def sweep(db: Database, *, timeouts: TimeoutsOf, now: dt.datetime) -> list[int]:
    """Time out every active request silent past its deadline; returns their ids."""
    with db.sessions() as session:
        rows = session.execute(
            select(
                FirmwareRequestRow.id,
                FirmwareRequestRow.state,
                FirmwareRequestRow.last_status_at,
                FirmwareRequestRow.sent_at,
                FirmwareRequestRow.install_at,
                FirmwareRequestRow.campaign_id,
            ).where(FirmwareRequestRow.state.in_([s.value for s in ACTIVE]))
        ).all()
    late = []
    for rid, state, last, sent, install_at, campaign_id in rows:
        news = last or sent
        due = deadline(
            RequestState(state),
            last_news_at=news or now,
            install_at=install_at,
            timeouts=timeouts(campaign_id),
        )
        if due is not None and now > due:
            late.append((rid, campaign_id, state))
    timed_out = []
    for rid, campaign_id, state in late:
        with db.sessions.begin() as session:
            row = session.scalars(
                select(FirmwareRequestRow).where(FirmwareRequestRow.id == rid).with_for_update()
            ).one()
            if row.state != state:
                continue  # news arrived meanwhile
            add_step(session, row.charger_id, row.id, "Timeout", "csms", now)
            if move_request(session, row, RequestEvent.TIMED_OUT, now):
                limits = timeouts(campaign_id)
                minutes = (limits.scheduled if "scheduled" in state else limits.silence).total_seconds() / 60
                after_interruption(
                    session, row, f"silent for {minutes:g} min while {state.replace('_', ' ')}", limits, now
                )
                timed_out.append(rid)
    return timed_out
