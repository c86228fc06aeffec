"""Charger campaign use cases: create (scope, waves, pre-flight), four-eyes approval, lifecycle
moves, summary and members. The planning is `charger_controller.py`'s.

The scope is fixed at creation: the registered chargers of the image's vendor and model that
match the selector (every given kind must match; within a kind, any value) and do not run
the target already, split into waves by the vehicle campaigns' stratified assignment (sites
and current firmware versions first). Before anything is stored the image is checked as a
station would check it, with a certificate that must outlive the campaign's `max_duration`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evota.domain.campaign import CampaignEvent, CampaignState, approve, transition, validate_waves
from evota.domain.charger_campaign import (
    ChargerPolicy,
    MemberStatus,
    ScopedCharger,
    assign_charger_waves,
    policy_from_dict,
    policy_to_dict,
    quiet_window,
)
from evota.domain.charger_health import Tally, Validation, compare_sessions
from evota.domain.identifiers import validate_name
from evota.errors import InputError, NotFoundError
from evota.server.services.audit import record
from evota.server.services.firmware import check_image, load_firmware
from evota.server.store.charger_models import (
    ChargerCampaignMemberRow,
    ChargerCampaignRow,
    ChargerFirmwareRow,
    ChargerRow,
    ChargerSessionRow,
    ChargerTagRow,
    FirmwareRequestRow,
)
from evota.server.store.db import Database

__all__ = [
    "ChargerCampaignSummary",
    "ChargerSelector",
    "MemberRow",
    "campaign_members",
    "campaign_summary",
    "create_campaign",
    "list_campaigns",
    "load_campaign",
    "move_campaign",
    "session_tallies",
]

SUBJECT = "charger-campaign"
HISTORY = dt.timedelta(days=28)  # the sessions a low-utilisation window is learnt from


@dataclasses.dataclass(frozen=True)
class ChargerSelector:
    sites: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    firmware_versions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    charge_point_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChargerSelector:
        return cls(**{k: tuple(v) for k, v in data.items()})


@dataclasses.dataclass(frozen=True)
class ChargerCampaignSummary:
    name: str
    vendor: str
    model: str
    version: str
    state: str
    current_wave: int
    created_by: str
    approved_by: str | None
    halt_reason: str | None
    wave_sizes: tuple[int, ...]
    statuses: dict[str, int]
    selector: dict[str, list[str]]
    policy: dict[str, object]
    validation: Validation

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["wave_sizes"] = list(self.wave_sizes)
        v = self.validation
        out["validation"] = {
            "verdict": v.verdict.value,
            "reason": v.reason,
            "p_value": v.p_value,
            "updated": {"succeeded": v.updated.succeeded, "failed": v.updated.failed},
            "control": {"succeeded": v.control.succeeded, "failed": v.control.failed},
        }
        return out


@dataclasses.dataclass(frozen=True)
class MemberRow:
    charge_point_id: str
    site: str
    wave: int
    status: str
    reasons: tuple[str, ...]
    firmware_version: str | None
    request: str | None  # the newest request's state

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["reasons"] = list(self.reasons)
        return out


def _scope(session: Session, selector: ChargerSelector, firmware: ChargerFirmwareRow) -> list[ChargerRow]:
    query = select(ChargerRow).where(
        ChargerRow.vendor == firmware.vendor,
        ChargerRow.model == firmware.model,
        ChargerRow.firmware_version.is_not(None),
        ChargerRow.firmware_version != firmware.version,
    )
    for column, values in (
        (ChargerRow.site, selector.sites),
        (ChargerRow.model, selector.models),
        (ChargerRow.firmware_version, selector.firmware_versions),
        (ChargerRow.charge_point_id, selector.charge_point_ids),
    ):
        if values:
            query = query.where(column.in_(values))
    if selector.tags:
        query = query.where(
            ChargerRow.id.in_(select(ChargerTagRow.charger_id).where(ChargerTagRow.tag.in_(selector.tags)))
        )
    return list(session.scalars(query.order_by(ChargerRow.charge_point_id)))


def _quiet_windows(
    session: Session, chargers: Sequence[ChargerRow], hours: int, now: dt.datetime
) -> dict[str, tuple[Any, ...]]:
    """Each site's low-utilisation window, from when its sessions started in the last weeks."""
    zones = {c.site: c.time_zone for c in chargers}
    ids = {c.id: c.site for c in chargers}
    starts: dict[str, list[int]] = {site: [] for site in zones}
    for charger_id, started in session.execute(
        select(ChargerSessionRow.charger_id, ChargerSessionRow.started_at).where(
            ChargerSessionRow.charger_id.in_(list(ids)), ChargerSessionRow.started_at >= now - HISTORY
        )
    ):
        site = ids[charger_id]
        starts[site].append(started.astimezone(zoneinfo.ZoneInfo(zones[site])).hour)
    return {site: (quiet_window(hours_of, hours=hours),) for site, hours_of in sorted(starts.items())}


def create_campaign(
    db: Database,
    home: Path,
    root_pem: bytes,
    *,
    name: str,
    vendor: str | None,
    model: str,
    version: str,
    selector: ChargerSelector,
    waves: Sequence[float],
    policy: ChargerPolicy,
    created_by: str,
    now: dt.datetime,
    quiet_hours: int | None = None,
) -> ChargerCampaignSummary:
    """A draft campaign to `version` of the model's firmware (InputError if nothing is in scope;
    the security errors of `check_image` if the image would be refused).

    `quiet_hours` (e.g. 4) sets each site's window to its quietest span of that many hours,
    learnt from the last four weeks of its sessions, instead of `policy.windows`.
    """
    validate_name(name)
    wave_list = validate_waves(waves)
    if not created_by.strip():
        raise InputError("a campaign needs its creator's name")
    with db.sessions.begin() as session:
        firmware = load_firmware(session, vendor=vendor, model=model, version=version)
        check_image(home, firmware, root_pem, now=now, until=now + policy.max_duration)
        chargers = _scope(session, selector, firmware)
        if not chargers:
            raise InputError(
                f"the selector {selector.to_dict() or '(everything)'} finds no {firmware.vendor} "
                f"{firmware.model} charger that runs another firmware than {firmware.version}"
            )
        if quiet_hours is not None:
            policy = dataclasses.replace(
                policy, site_windows=_quiet_windows(session, chargers, quiet_hours, now)
            )
        campaign = ChargerCampaignRow(
            name=name,
            firmware_id=firmware.id,
            selector=selector.to_dict(),
            waves=list(wave_list),
            policy=policy_to_dict(policy),
            state=CampaignState.DRAFT.value,
            current_wave=0,
            session_watermark=0,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        session.add(campaign)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(f"a charger campaign named {name} already exists") from None
        scoped = [ScopedCharger(c.charge_point_id, c.site, c.firmware_version or "") for c in chargers]
        waves_of = assign_charger_waves(scoped, wave_list, seed=name)
        session.add_all(
            ChargerCampaignMemberRow(
                campaign_id=campaign.id,
                charger_id=c.id,
                wave=waves_of[c.charge_point_id],
                status=MemberStatus.PENDING.value,
                from_version=c.firmware_version,
                rollback_version=c.last_good_firmware or c.firmware_version,
                status_at=now,
                boots=0,
                updated_at=now,
            )
            for c in chargers
        )
        record(
            session,
            actor=created_by,
            action="charger_campaign.create",
            subject=f"{SUBJECT}:{name}",
            details={
                "firmware": f"{firmware.vendor}/{firmware.model}/{firmware.version}",
                "sha256": firmware.sha256,
                "selector": selector.to_dict(),
                "waves": list(wave_list),
                "chargers": len(chargers),
            },
            now=now,
        )
    return campaign_summary(db, name)


def move_campaign(
    db: Database, name: str, event: CampaignEvent, *, actor: str, now: dt.datetime
) -> ChargerCampaignSummary:
    """Apply a lifecycle event an operator asked for (approve enforces four eyes). Rolling a
    campaign back sends every charger that took the new firmware back to its last good one
    (the controller's next tick)."""
    with db.sessions.begin() as session:
        campaign = load_campaign(session, name, lock=True)
        state = CampaignState(campaign.state)
        if event is CampaignEvent.APPROVE:
            new = approve(state, created_by=campaign.created_by, approver=actor)
            campaign.approved_by = actor
        else:
            new = transition(state, event)
        if event is CampaignEvent.START:
            campaign.current_wave, campaign.wave_started_at = 0, now
            campaign.session_watermark = session.scalar(select(func.max(ChargerSessionRow.id))) or 0
        if event is CampaignEvent.RESUME:
            campaign.halt_reason = None
        record(
            session,
            actor=actor,
            action=f"charger_campaign.{event.value}",
            subject=f"{SUBJECT}:{name}",
            details={"from": state.value, "to": new.value},
            now=now,
        )
        campaign.state, campaign.updated_at = new.value, now
    return campaign_summary(db, name)


def load_campaign(session: Session, name: str, *, lock: bool = False) -> ChargerCampaignRow:
    query = select(ChargerCampaignRow).where(ChargerCampaignRow.name == name)
    if lock:
        query = query.with_for_update()
    campaign = session.scalars(query).one_or_none()
    if campaign is None:
        raise NotFoundError(f"no charger campaign named {name}")
    return campaign


def session_tallies(
    session: Session, campaign: ChargerCampaignRow, firmware: ChargerFirmwareRow
) -> tuple[Tally, Tally]:
    """Finished sessions since the campaign started: (on the target firmware, on chargers of
    the campaign; on the same vendor and model's other firmware, anywhere: the control)."""
    members = select(ChargerCampaignMemberRow.charger_id).where(
        ChargerCampaignMemberRow.campaign_id == campaign.id
    )
    base = (
        select(ChargerSessionRow.succeeded, func.count())
        .join(ChargerRow, ChargerRow.id == ChargerSessionRow.charger_id)
        .where(
            ChargerSessionRow.id > campaign.session_watermark,
            ChargerSessionRow.succeeded.is_not(None),
            ChargerRow.vendor == firmware.vendor,
            ChargerRow.model == firmware.model,
        )
        .group_by(ChargerSessionRow.succeeded)
    )

    def tally(query: Any) -> Tally:
        counts = {bool(ok): n for ok, n in session.execute(query)}
        return Tally(succeeded=counts.get(True, 0), failed=counts.get(False, 0))

    if campaign.state in (CampaignState.DRAFT.value, CampaignState.APPROVED.value):
        return Tally(), Tally()
    updated = tally(
        base.where(
            ChargerSessionRow.firmware_version == firmware.version, ChargerSessionRow.charger_id.in_(members)
        )
    )
    control = tally(base.where(ChargerSessionRow.firmware_version != firmware.version))
    return updated, control


def campaign_summary(db: Database, name: str) -> ChargerCampaignSummary:
    with db.sessions() as session:
        campaign = load_campaign(session, name)
        firmware = session.get(ChargerFirmwareRow, campaign.firmware_id)
        assert firmware is not None  # RESTRICT
        rows = session.execute(
            select(ChargerCampaignMemberRow.wave, ChargerCampaignMemberRow.status).where(
                ChargerCampaignMemberRow.campaign_id == campaign.id
            )
        ).all()
        updated, control = session_tallies(session, campaign, firmware)
    policy = policy_from_dict(campaign.policy)
    sizes = Counter(wave for wave, _ in rows)
    return ChargerCampaignSummary(
        name=campaign.name,
        vendor=firmware.vendor,
        model=firmware.model,
        version=firmware.version,
        state=campaign.state,
        current_wave=campaign.current_wave,
        created_by=campaign.created_by,
        approved_by=campaign.approved_by,
        halt_reason=campaign.halt_reason,
        wave_sizes=tuple(sizes.get(i, 0) for i in range(len(campaign.waves))),
        statuses=dict(sorted(Counter(status for _, status in rows).items())),
        selector=ChargerSelector.from_dict(campaign.selector).to_dict(),
        policy=campaign.policy,
        validation=compare_sessions(updated, control, policy.sessions),
    )


def campaign_members(db: Database, name: str) -> list[MemberRow]:
    with db.sessions() as session:
        campaign = load_campaign(session, name)
        newest = (
            select(FirmwareRequestRow.charger_id, func.max(FirmwareRequestRow.id).label("rid"))
            .where(FirmwareRequestRow.campaign_id == campaign.id)
            .group_by(FirmwareRequestRow.charger_id)
            .subquery()
        )
        rows = session.execute(
            select(
                ChargerRow.charge_point_id,
                ChargerRow.site,
                ChargerCampaignMemberRow.wave,
                ChargerCampaignMemberRow.status,
                ChargerCampaignMemberRow.reasons,
                ChargerRow.firmware_version,
                FirmwareRequestRow.state,
            )
            .join(ChargerRow, ChargerRow.id == ChargerCampaignMemberRow.charger_id)
            .outerjoin(newest, newest.c.charger_id == ChargerCampaignMemberRow.charger_id)
            .outerjoin(FirmwareRequestRow, FirmwareRequestRow.id == newest.c.rid)
            .where(ChargerCampaignMemberRow.campaign_id == campaign.id)
            .order_by(ChargerCampaignMemberRow.wave, ChargerRow.charge_point_id)
        ).all()
    return [MemberRow(r[0], r[1], r[2], r[3], tuple(r[4] or ()), r[5], r[6]) for r in rows]


def list_campaigns(db: Database) -> list[ChargerCampaignSummary]:
    with db.sessions() as session:
        names = session.scalars(select(ChargerCampaignRow.name).order_by(ChargerCampaignRow.id.desc())).all()
    return [campaign_summary(db, name) for name in names]
