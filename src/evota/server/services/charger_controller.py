"""The charger campaign controller: each tick loads every started charger campaign, asks the
pure planner (`domain/charger_planner.py`) what to do, and applies the answer.

As the vehicle controller does: plan from a read without locks, then apply in one
transaction under the campaign's row lock, only if nobody moved the campaign meanwhile,
with one audit entry saying what changed. A send is a queued request (the outbox the CSMS's
dispatcher sends from), so a kill between the decision and the wire repeats nothing. Ticks
run in the server's charger loop while it holds the charger controller's leadership.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evota.domain.campaign import CampaignEvent, CampaignState, transition
from evota.domain.charger_campaign import ChargerPolicy, MemberStatus, policy_from_dict
from evota.domain.charger_planner import (
    Advance,
    CampaignView,
    Cancel,
    Complete,
    Decision,
    Halt,
    Hold,
    Mark,
    MemberView,
    RollBack,
    Send,
    Wait,
    plan,
)
from evota.domain.firmware import RequestEvent, RequestState, apply_event
from evota.server.services.audit import record
from evota.server.services.charger_campaigns import SUBJECT, session_tallies
from evota.server.services.firmware_requests import queue_request
from evota.server.store.charger_models import (
    ChargerCampaignMemberRow,
    ChargerCampaignRow,
    ChargerConnectorRow,
    ChargerFirmwareRow,
    ChargerRow,
    ChargerSessionRow,
    FirmwareRequestRow,
)
from evota.server.store.db import Database

__all__ = ["ACTOR", "ChargerTickReport", "tick"]

log = logging.getLogger("evota.controller")

ACTOR = "controller"
_TRACKED = (
    CampaignState.RUNNING.value,
    CampaignState.PAUSED.value,
    CampaignState.HALTED.value,
    CampaignState.ROLLED_BACK.value,
    CampaignState.ABORTED.value,
)
_IN_FLIGHT = [s.value for s in MemberStatus if s.in_flight]


@dataclasses.dataclass
class ChargerTickReport:
    campaigns: int = 0
    sent: int = 0
    rolled_back: int = 0
    advanced: list[str] = dataclasses.field(default_factory=list)
    halted: list[str] = dataclasses.field(default_factory=list)
    completed: list[str] = dataclasses.field(default_factory=list)


def tick(db: Database, now: dt.datetime) -> ChargerTickReport:
    """Plan and apply every charger campaign that is running or still has chargers in flight."""
    report = ChargerTickReport()
    with db.sessions() as session:
        ids = session.scalars(
            select(ChargerCampaignRow.id)
            .where(
                ChargerCampaignRow.state.in_(_TRACKED),
                (ChargerCampaignRow.state == CampaignState.RUNNING.value)
                | ChargerCampaignRow.id.in_(
                    select(ChargerCampaignMemberRow.campaign_id).where(
                        ChargerCampaignMemberRow.status.in_(_IN_FLIGHT)
                    )
                ),
            )
            .order_by(ChargerCampaignRow.id)
        ).all()
    for campaign_id in ids:
        _tick_campaign(db, campaign_id, now, report)
        report.campaigns += 1
    return report


def _tick_campaign(db: Database, campaign_id: int, now: dt.datetime, report: ChargerTickReport) -> None:
    with db.sessions() as session:
        campaign = session.get(ChargerCampaignRow, campaign_id)
        assert campaign is not None
        seen = (campaign.state, campaign.current_wave, campaign.updated_at)
        view, ids = _load_view(session, campaign, now)
        decisions = plan(view, now)
    if not decisions:
        return
    with db.sessions.begin() as session:
        campaign = session.scalars(
            select(ChargerCampaignRow).where(ChargerCampaignRow.id == campaign_id).with_for_update()
        ).one()
        if (campaign.state, campaign.current_wave, campaign.updated_at) != seen:
            return  # moved meanwhile: the next tick plans afresh
        _apply(session, campaign, view, decisions, ids, now, report)


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _is_downgrade(current: str | None, target: str) -> bool:
    a, b = _version(current), _version(target)
    return a is not None and b is not None and b < a


def _load_view(
    session: Session, campaign: ChargerCampaignRow, now: dt.datetime
) -> tuple[CampaignView, dict[str, int]]:
    firmware = session.get(ChargerFirmwareRow, campaign.firmware_id)
    assert firmware is not None
    policy = policy_from_dict(campaign.policy)
    newest = (
        select(FirmwareRequestRow.charger_id, func.max(FirmwareRequestRow.id).label("rid"))
        .where(FirmwareRequestRow.campaign_id == campaign.id)
        .group_by(FirmwareRequestRow.charger_id)
        .subquery()
    )
    rows = session.execute(
        select(ChargerCampaignMemberRow, ChargerRow, FirmwareRequestRow.state, FirmwareRequestRow.reason)
        .join(ChargerRow, ChargerRow.id == ChargerCampaignMemberRow.charger_id)
        .outerjoin(newest, newest.c.charger_id == ChargerCampaignMemberRow.charger_id)
        .outerjoin(FirmwareRequestRow, FirmwareRequestRow.id == newest.c.rid)
        .where(ChargerCampaignMemberRow.campaign_id == campaign.id)
    ).all()
    charger_ids = [charger.id for _, charger, _, _ in rows]
    busy = set(
        session.scalars(
            select(ChargerSessionRow.charger_id).where(
                ChargerSessionRow.charger_id.in_(charger_ids), ChargerSessionRow.stopped_at.is_(None)
            )
        )
    )
    connectors: dict[int, list[tuple[str, dt.datetime]]] = {}
    for cid, status, at in session.execute(
        select(
            ChargerConnectorRow.charger_id, ChargerConnectorRow.status, ChargerConnectorRow.updated_at
        ).where(ChargerConnectorRow.charger_id.in_(charger_ids), ChargerConnectorRow.evse_id > 0)
    ):
        connectors.setdefault(cid, []).append((status, at))
    images = {
        v
        for (v,) in session.execute(
            select(ChargerFirmwareRow.version).where(
                ChargerFirmwareRow.vendor == firmware.vendor, ChargerFirmwareRow.model == firmware.model
            )
        )
    }
    members = []
    for member, charger, request_state, request_reason in rows:
        booted = charger.booted_at
        plugs = connectors.get(charger.id, [])
        available = bool(plugs) and all(
            s == "Available" and (booted is None or at >= booted) for s, at in plugs
        )
        back = member.rollback_version
        no_rollback = None
        if back is None or back not in images:
            no_rollback = f"no image of its last good firmware {back or '(unknown)'} is registered"
        elif not charger.accepts_downgrade and _is_downgrade(firmware.version, back):
            no_rollback = f"it refuses downgrades (to {back})"
        hold = None
        if not charger.accepts_downgrade and _is_downgrade(charger.firmware_version, firmware.version):
            hold = f"it refuses downgrades ({charger.firmware_version} to {firmware.version})"
        elif no_rollback:
            hold = f"no rollback: {no_rollback}"
        members.append(
            MemberView(
                charge_point_id=charger.charge_point_id,
                wave=member.wave,
                status=MemberStatus(member.status),
                site=charger.site,
                time_zone=charger.time_zone,
                status_at=member.status_at,
                connected=charger.connected,
                busy=charger.id in busy,
                plain=charger.protocol == "1.6" and not charger.signed_updates,
                firmware_version=charger.firmware_version,
                booted_at=booted,
                connectors_available=available,
                boots=member.boots,
                request=RequestState(request_state) if request_state else None,
                request_reason=request_reason,
                hold=hold,
                no_rollback=no_rollback,
            )
        )
    updated, control = session_tallies(session, campaign, firmware)
    view = CampaignView(
        state=CampaignState(campaign.state),
        policy=policy,
        target_version=firmware.version,
        wave=campaign.current_wave,
        waves=len(campaign.waves),
        wave_started_at=campaign.wave_started_at or campaign.updated_at,
        members=members,
        updated_sessions=updated,
        control_sessions=control,
    )
    return view, {charger.charge_point_id: charger.id for _, charger, _, _ in rows}


def _apply(
    session: Session,
    campaign: ChargerCampaignRow,
    view: CampaignView,
    decisions: Iterable[Decision],
    ids: dict[str, int],
    now: dt.datetime,
    report: ChargerTickReport,
) -> None:
    policy = view.policy
    target = session.get(ChargerFirmwareRow, campaign.firmware_id)
    assert target is not None
    changes: dict[str, list[str]] = {}
    done: dict[str, object] = {}

    def member(cpid: str) -> ChargerCampaignMemberRow:
        row = session.get(ChargerCampaignMemberRow, (campaign.id, ids[cpid]))
        assert row is not None
        return row

    def set_status(row: ChargerCampaignMemberRow, status: MemberStatus, reasons: list[str] | None) -> None:
        if row.status != status.value:
            row.status, row.status_at = status.value, now
            if status is MemberStatus.VALIDATING:
                row.boots = 0
        row.reasons, row.updated_at = reasons, now

    for d in decisions:
        match d:
            case Send(cpid):
                row = member(cpid)
                if row.status not in (MemberStatus.PENDING.value, MemberStatus.HELD.value):
                    continue
                _queue(session, ids[cpid], target, campaign, policy, "update", now)
                set_status(row, MemberStatus.UPDATING, None)
                changes.setdefault("sent", []).append(cpid)
                report.sent += 1
            case RollBack(cpid, reason):
                row = member(cpid)
                charger = session.get(ChargerRow, ids[cpid])
                image = session.scalars(
                    select(ChargerFirmwareRow).where(
                        ChargerFirmwareRow.vendor == target.vendor,
                        ChargerFirmwareRow.model == target.model,
                        ChargerFirmwareRow.version == row.rollback_version,
                    )
                ).first()
                if charger is None or image is None:
                    set_status(row, MemberStatus.FAILED, [f"{reason}; cannot roll back: no image"])
                    continue
                _queue(session, ids[cpid], image, campaign, policy, "rollback", now)
                set_status(row, MemberStatus.ROLLING_BACK, [reason])
                changes.setdefault("rolling_back", []).append(cpid)
                report.rolled_back += 1
            case Cancel(cpid, reason):
                for request in session.scalars(
                    select(FirmwareRequestRow)
                    .where(
                        FirmwareRequestRow.campaign_id == campaign.id,
                        FirmwareRequestRow.charger_id == ids[cpid],
                        FirmwareRequestRow.state == RequestState.QUEUED.value,
                    )
                    .with_for_update()
                ):
                    request.state = apply_event(RequestState.QUEUED, RequestEvent.SUPERSEDED).state.value
                    request.finished_at, request.reason = now, reason
                set_status(member(cpid), MemberStatus.PENDING, [reason])
                changes.setdefault("canceled", []).append(cpid)
            case Mark(cpid, status, reason):
                row = member(cpid)
                set_status(row, status, [reason] if reason else None)
                changes.setdefault(status.value, []).append(cpid)
            case Hold(cpid, reason):
                row = member(cpid)
                if row.status in (MemberStatus.PENDING.value, MemberStatus.HELD.value):
                    set_status(row, MemberStatus.HELD, [reason])
                    changes.setdefault("held", []).append(cpid)
            case Wait(cpid, reasons):
                row = member(cpid)
                if row.status in (
                    MemberStatus.PENDING.value,
                    MemberStatus.HELD.value,
                ) and row.reasons != list(reasons):
                    set_status(row, MemberStatus.PENDING, list(reasons))
            case Advance(to_wave):
                campaign.current_wave, campaign.wave_started_at = to_wave, now
                done["advanced_to_wave"] = to_wave + 1
                report.advanced.append(campaign.name)
            case Halt(reason, roll_back):
                state = transition(CampaignState(campaign.state), CampaignEvent.HALT)
                if roll_back:
                    state = transition(state, CampaignEvent.ROLL_BACK)
                campaign.state, campaign.halt_reason = state.value, reason[:512]
                done["halted"] = reason
                done["state"] = state.value
                report.halted.append(campaign.name)
            case Complete():
                campaign.state = transition(CampaignState(campaign.state), CampaignEvent.COMPLETE).value
                _promote(session, campaign, target.version)
                done["completed"] = True
                report.completed.append(campaign.name)
    if changes or done:
        campaign.updated_at = now
        details: dict[str, Any] = {
            "firmware": target.version,
            "wave": campaign.current_wave + 1,
            **changes,
            **done,
        }
        record(
            session,
            actor=ACTOR,
            action="charger_campaign.tick",
            subject=f"{SUBJECT}:{campaign.name}",
            details=details,
            now=now,
        )
        if done:
            log.info("charger campaign %s: %s", campaign.name, done)


def _queue(
    session: Session,
    charger_id: int,
    image: ChargerFirmwareRow,
    campaign: ChargerCampaignRow,
    policy: ChargerPolicy,
    purpose: str,
    now: dt.datetime,
) -> None:
    charger = session.get(ChargerRow, charger_id, with_for_update=True)
    assert charger is not None
    queue_request(
        session,
        charger,
        image,
        purpose=purpose,
        campaign_id=campaign.id,
        retries=policy.retries,
        retry_interval_s=max(1, int(policy.retry_interval.total_seconds())),
        now=now,
    )


def _promote(session: Session, campaign: ChargerCampaignRow, version: str) -> None:
    """A completed campaign's updated chargers run a known good firmware: the next campaign
    rolls them back to it."""
    for row in session.scalars(
        select(ChargerCampaignMemberRow).where(
            ChargerCampaignMemberRow.campaign_id == campaign.id,
            ChargerCampaignMemberRow.status == MemberStatus.UPDATED.value,
        )
    ):
        charger = session.get(ChargerRow, row.charger_id)
        if charger is not None and charger.firmware_version == version:
            charger.last_good_firmware = version
