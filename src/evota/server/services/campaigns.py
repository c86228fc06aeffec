"""Campaign use cases: create (scope and waves), approve (four eyes), lifecycle moves, summary.

Each function is one transaction. The scope is fixed at creation: the registry's vehicles
matching the selector (every given kind must match; within a kind, any value), split into
waves by `domain.campaign.assign_waves` with the campaign's name as the seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evota.domain.campaign import (
    CampaignEvent,
    CampaignState,
    Scoped,
    approve,
    assign_waves,
    transition,
    validate_waves,
)
from evota.domain.health import GateConfig
from evota.domain.identifiers import validate_name
from evota.domain.planner import DeviceStatus, RolloutPolicy, policy_from_dict, policy_to_dict
from evota.errors import InputError, NotFoundError
from evota.server.services.audit import record
from evota.server.services.controller import order_rollback
from evota.server.store.db import Database
from evota.server.store.models import CampaignRow, CampaignVehicleRow, EcuRow, VehicleRow, VehicleTagRow

__all__ = [
    "CampaignSummary",
    "Selector",
    "campaign_summary",
    "create_campaign",
    "list_campaigns",
    "load_campaign",
    "move_campaign",
]


@dataclasses.dataclass(frozen=True)
class Selector:
    """Which registry vehicles a campaign targets (empty kinds do not filter)."""

    depots: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    climate_zones: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    hardware_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    vins: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selector:
        return cls(**{k: tuple(v) for k, v in data.items()})


@dataclasses.dataclass(frozen=True)
class CampaignSummary:
    name: str
    release: str
    state: str
    current_wave: int
    created_by: str
    approved_by: str | None
    wave_sizes: tuple[int, ...]
    statuses: dict[str, int]
    selector: dict[str, list[str]]
    policy: dict[str, object]

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["wave_sizes"] = list(self.wave_sizes)
        return out


def _scope(session: Session, selector: Selector) -> list[tuple[int, Scoped]]:
    query = select(VehicleRow.id, VehicleRow.vin, VehicleRow.depot, VehicleRow.climate_zone)
    for column, values in (
        (VehicleRow.depot, selector.depots),
        (VehicleRow.region, selector.regions),
        (VehicleRow.climate_zone, selector.climate_zones),
        (VehicleRow.model, selector.models),
        (VehicleRow.vin, selector.vins),
    ):
        if values:
            query = query.where(column.in_(values))
    if selector.tags:
        query = query.where(
            VehicleRow.id.in_(select(VehicleTagRow.vehicle_id).where(VehicleTagRow.tag.in_(selector.tags)))
        )
    if selector.hardware_ids:
        query = query.where(
            VehicleRow.id.in_(select(EcuRow.vehicle_id).where(EcuRow.hardware_id.in_(selector.hardware_ids)))
        )
    return [
        (vid, Scoped(vin, depot, zone))
        for vid, vin, depot, zone in session.execute(query.order_by(VehicleRow.vin))
    ]


def create_campaign(
    db: Database,
    *,
    name: str,
    release: str,
    selector: Selector,
    waves: Sequence[float],
    policy: RolloutPolicy,
    created_by: str,
    now: dt.datetime,
    gate: Mapping[str, Any] | None = None,
) -> CampaignSummary:
    """A draft campaign over the vehicles the selector finds (InputError if none).

    `gate` is the health gate (`domain/health.py` GateConfig.to_dict(), plus an optional
    `interval_s` between looks); None runs the campaign on install outcomes alone.
    """
    validate_name(name)
    wave_list = validate_waves(waves)
    if not created_by.strip():
        raise InputError("a campaign needs its creator's name")
    if gate is not None:
        body = dict(gate)
        body.pop("interval_s", None)
        GateConfig.from_dict(body)  # InputError now, not at the first look
    with db.sessions.begin() as session:
        scoped = _scope(session, selector)
        if not scoped:
            raise InputError(
                f"the selector {selector.to_dict() or '(everything)'} finds no vehicle in the registry"
            )
        campaign = CampaignRow(
            name=name,
            release=release,
            selector=selector.to_dict(),
            waves=list(wave_list),
            policy=policy_to_dict(policy),
            gate=dict(gate) if gate is not None else None,
            state=CampaignState.DRAFT.value,
            current_wave=0,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        session.add(campaign)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(f"a campaign named {name} already exists") from None
        assigned = assign_waves([s for _, s in scoped], wave_list, seed=name)
        record(
            session,
            actor=created_by,
            action="campaign.create",
            subject=f"campaign:{name}",
            details={
                "release": release,
                "selector": selector.to_dict(),
                "waves": list(wave_list),
                "vehicles": len(scoped),
            },
            now=now,
        )
        session.add_all(
            CampaignVehicleRow(
                campaign_id=campaign.id,
                vehicle_id=vid,
                wave=assigned[s.vin],
                status=DeviceStatus.PENDING.value,
                updated_at=now,
            )
            for vid, s in scoped
        )
    return campaign_summary(db, name)


def move_campaign(
    db: Database, name: str, event: CampaignEvent, *, actor: str, now: dt.datetime
) -> CampaignSummary:
    """Apply a lifecycle event an operator asked for (approve enforces four eyes)."""
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
        if event is CampaignEvent.ROLL_BACK:
            order_rollback(session, campaign, f"{actor} rolled the campaign back", now)
        record(
            session,
            actor=actor,
            action=f"campaign.{event.value}",
            subject=f"campaign:{name}",
            details={"from": state.value, "to": new.value},
            now=now,
        )
        campaign.state, campaign.updated_at = new.value, now
    return campaign_summary(db, name)


def campaign_summary(db: Database, name: str) -> CampaignSummary:
    with db.sessions() as session:
        campaign = load_campaign(session, name)
        rows = session.execute(
            select(CampaignVehicleRow.wave, CampaignVehicleRow.status).where(
                CampaignVehicleRow.campaign_id == campaign.id
            )
        ).all()
    sizes = Counter(wave for wave, _ in rows)
    policy_from_dict(campaign.policy)  # stored policies must stay readable
    return CampaignSummary(
        name=campaign.name,
        release=campaign.release,
        state=campaign.state,
        current_wave=campaign.current_wave,
        created_by=campaign.created_by,
        approved_by=campaign.approved_by,
        wave_sizes=tuple(sizes.get(i, 0) for i in range(len(campaign.waves))),
        statuses=dict(sorted(Counter(status for _, status in rows).items())),
        selector=Selector.from_dict(campaign.selector).to_dict(),
        policy=campaign.policy,
    )


def list_campaigns(db: Database) -> list[CampaignSummary]:
    """Every campaign, newest first."""
    with db.sessions() as session:
        names = session.scalars(select(CampaignRow.name).order_by(CampaignRow.id.desc())).all()
    return [campaign_summary(db, name) for name in names]


def load_campaign(session: Session, name: str, *, lock: bool = False) -> CampaignRow:
    """The campaign named `name` in this session (NotFoundError if none); `lock` takes its row."""
    query = select(CampaignRow).where(CampaignRow.name == name)
    if lock:
        query = query.with_for_update()  # PostgreSQL: concurrent approvals queue up
    campaign = session.scalars(query).one_or_none()
    if campaign is None:
        raise NotFoundError(f"no campaign named {name}")
    return campaign
