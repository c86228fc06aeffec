"""Reading firmware requests: a charger's history, the request to reconcile on a reconnect,
and each campaign's timeouts (`firmware_requests.py` writes them)."""

from __future__ import annotations

from sqlalchemy import select

from evota.domain.charger_campaign import policy_from_dict
from evota.domain.firmware import ACTIVE, FirmwareTimeouts, RequestState
from evota.server.services.chargers import load_charger
from evota.server.services.firmware_requests import TimeoutsOf
from evota.server.store.charger_models import (
    ChargerCampaignRow,
    ChargerFirmwareRow,
    ChargerRow,
    FirmwareRequestRow,
    FirmwareStepRow,
)
from evota.server.store.db import Database

__all__ = ["active_request", "charger_history", "timeouts_resolver"]


def active_request(db: Database, charge_point_id: str) -> int | None:
    """The charger's request that is past sending and not finished, if any (to reconcile with
    a TriggerMessage when the charger reconnects without rebooting)."""
    states = [s.value for s in ACTIVE if s is not RequestState.SENDING]
    with db.sessions() as session:
        return session.scalars(
            select(FirmwareRequestRow.id)
            .join(ChargerRow, ChargerRow.id == FirmwareRequestRow.charger_id)
            .where(ChargerRow.charge_point_id == charge_point_id, FirmwareRequestRow.state.in_(states))
            .order_by(FirmwareRequestRow.id.desc())
            .limit(1)
        ).first()


def timeouts_resolver(db: Database, default: FirmwareTimeouts) -> TimeoutsOf:
    """Campaign id → the timeouts in its policy (`default` outside campaigns). Policies do not
    change after a campaign is created, so each is read once."""
    cache: dict[int, FirmwareTimeouts] = {}

    def resolve(campaign_id: int | None) -> FirmwareTimeouts:
        if campaign_id is None:
            return default
        if campaign_id not in cache:
            with db.sessions() as session:
                policy = session.scalars(
                    select(ChargerCampaignRow.policy).where(ChargerCampaignRow.id == campaign_id)
                ).one_or_none()
            cache[campaign_id] = default if policy is None else policy_from_dict(policy).timeouts
        return cache[campaign_id]

    return resolve


def charger_history(
    db: Database, charge_point_id: str
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A charger's requests (newest first) and its steps (oldest first), as JSON-ready rows."""
    with db.sessions() as session:
        charger = load_charger(session, charge_point_id)
        requests: list[dict[str, object]] = [
            {
                "id": r.id,
                "version": version,
                "purpose": r.purpose,
                "message": r.message,
                "attempt": r.attempt,
                "state": r.state,
                "response": r.response,
                "reason": r.reason,
                "created_at": r.created_at.isoformat(),
                "campaign_id": r.campaign_id,
            }
            for r, version in session.execute(
                select(FirmwareRequestRow, ChargerFirmwareRow.version)
                .join(ChargerFirmwareRow, ChargerFirmwareRow.id == FirmwareRequestRow.firmware_id)
                .where(FirmwareRequestRow.charger_id == charger.id)
                .order_by(FirmwareRequestRow.id.desc())
            )
        ]
        steps: list[dict[str, object]] = [
            {
                "request_id": s.request_id,
                "status": s.status,
                "source": s.source,
                "at": s.received_at.isoformat(),
            }
            for s in session.scalars(
                select(FirmwareStepRow)
                .where(FirmwareStepRow.charger_id == charger.id)
                .order_by(FirmwareStepRow.id)
            )
        ]
    return requests, steps
