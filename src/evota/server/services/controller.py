"""The rollout controller: each tick loads every running campaign, asks the pure planner what
to do, and applies the answer.

Each campaign is planned from a read without locks (at a million vehicles that read takes
most of a minute, and an operator's pause must not wait for it), then applied in one
transaction under its row lock (`FOR UPDATE` on PostgreSQL), and only if the campaign was not
moved meanwhile. The decisions are written with conditional updates (`… WHERE status =
'pending'`, so a device report that lands meanwhile is never overwritten), and one audit entry
says what changed and for which vehicles. Signing the director targets happens after that
commit, from an outbox: an offered row starts with `assigned = false` and is flipped once the
director has signed.
A process killed between the two leaves the flag false and the next tick (of this process or
of the next leader) signs it; the director's assignment is idempotent, so a signature that did
land before the kill is not repeated. Nothing is decided in memory that the database does not
hold, so a restart resumes exactly where the last commit left off.

Several server processes may share one PostgreSQL database: `Leadership` holds a session-level
advisory lock on a dedicated connection, and only its holder ticks. On SQLite one process
serves a home, so it always leads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from evota.domain.campaign import CampaignEvent, CampaignState, transition
from evota.domain.compat import hold_reason
from evota.domain.gates import EnergyState, Gear
from evota.domain.planner import (
    Advance,
    CampaignView,
    Complete,
    Decision,
    DeviceStatus,
    DeviceView,
    Halt,
    Hold,
    Offer,
    RollBack,
    TimeOut,
    Wait,
    plan,
    policy_from_dict,
)
from evota.domain.registry import EcuSpec
from evota.domain.release import ImageMeta, bundle_target_path
from evota.errors import EvotaError
from evota.security.director import Director
from evota.security.image_repo import ImageRepository
from evota.server.services import health
from evota.server.services.audit import record
from evota.server.services.certifications import depot_reasons
from evota.server.store.db import Database
from evota.server.store.models import CampaignRow, CampaignVehicleRow, EcuRow, VehicleRow

__all__ = ["ACTOR", "Leadership", "TickReport", "dispatch", "release_images", "tick"]

log = logging.getLogger("evota.controller")

ACTOR = "controller"
# The statuses the planner decides about, vehicle by vehicle; the others have finished.
_ACTIVE = (DeviceStatus.PENDING.value, DeviceStatus.HELD.value, DeviceStatus.OFFERED.value)
_LEADER_LOCK = 0x65766F7463  # "evotc": held by the process that runs the controller


@dataclasses.dataclass
class TickReport:
    """What one tick did, for logs, tests and benchmarks."""

    campaigns: int = 0
    offered: int = 0
    assigned: int = 0
    held: int = 0
    timed_out: int = 0
    advanced: list[str] = dataclasses.field(default_factory=list)
    halted: list[str] = dataclasses.field(default_factory=list)
    completed: list[str] = dataclasses.field(default_factory=list)
    rolled_back: list[str] = dataclasses.field(default_factory=list)
    verdicts: list[str] = dataclasses.field(default_factory=list)
    rollbacks_signed: int = 0


def release_images(images: ImageRepository, release: str) -> list[tuple[str, ImageMeta]] | None:
    """The (path, metadata) of each image of `release`, in install order; None if unpublished."""
    path = bundle_target_path(release)
    bundle = next((b for b in images.bundles() if b.path == path), None)
    if bundle is None:
        return None
    published = {i.path: i.meta for i in images.images()}
    if any(p not in published for p in bundle.meta.images):
        return None
    return [(p, published[p]) for p in bundle.meta.images]


def tick(db: Database, director: Director, now: dt.datetime) -> TickReport:
    """Plan and apply every running campaign, then sign the offers not yet signed."""
    report = TickReport()
    with db.sessions() as session:
        ids = session.scalars(
            select(CampaignRow.id)
            .where(CampaignRow.state == CampaignState.RUNNING.value)
            .order_by(CampaignRow.id)
        ).all()
    for campaign_id in ids:
        _tick_campaign(db, director, campaign_id, now, report)
        report.campaigns += 1
    report.assigned += dispatch(db, director, now)
    report.rollbacks_signed += dispatch_rollbacks(db, director, now)
    return report


def _tick_campaign(
    db: Database, director: Director, campaign_id: int, now: dt.datetime, report: TickReport
) -> None:
    # Plan without the campaign's lock: at a million vehicles loading takes most of a minute,
    # and an operator's pause or abort (which takes that lock) must not wait for it.
    with db.sessions() as session:
        campaign = session.scalars(select(CampaignRow).where(CampaignRow.id == campaign_id)).one()
        if campaign.state != CampaignState.RUNNING.value:
            return
        seen = (campaign.state, campaign.current_wave, campaign.updated_at)
        release = release_images(director.images, campaign.release)
        look = health.judge_campaign(session, campaign, now) if release is not None else None
        if release is not None:
            view, reasons = _load_view(session, campaign, release)
            if look is not None:  # the planner acts on the look made now
                view = dataclasses.replace(view, health=look.health)
            decisions = plan(view, now)
    # Apply under the lock, and only if nobody moved the campaign meanwhile; device reports that
    # landed meanwhile are safe anyway (every row update is conditional on the status planned on).
    with db.sessions.begin() as session:
        campaign = session.scalars(
            select(CampaignRow).where(CampaignRow.id == campaign_id).with_for_update()
        ).one()
        if (campaign.state, campaign.current_wave, campaign.updated_at) != seen:
            return  # an operator (or another leader) moved it: the next tick plans afresh
        if release is None:
            _halt(session, campaign, f"release {campaign.release} is not in the image repository", now)
            report.halted.append(campaign.name)
            return
        if look is not None:
            health.store_verdict(session, campaign, look, now)
            report.verdicts.append(f"{campaign.name}: {look.verdict.outcome.value}")
        _apply(session, campaign, decisions, reasons, now, report, {m.ecu_type for _, m in release})


def _load_view(
    session: Session, campaign: CampaignRow, release: Sequence[tuple[str, ImageMeta]]
) -> tuple[CampaignView, dict[str, tuple[int, list[str] | None]]]:
    """The planner's view of a campaign, and per VIN its vehicle id and stored reasons."""
    rows = session.execute(
        select(
            VehicleRow.id,
            VehicleRow.vin,
            VehicleRow.time_zone,
            VehicleRow.depot,
            VehicleRow.soc,
            VehicleRow.soh,
            VehicleRow.charging,
            VehicleRow.plugged_in,
            VehicleRow.gear,
            VehicleRow.ambient_c,
            VehicleRow.energy_reported_at,
            VehicleRow.provisioned_at,
            CampaignVehicleRow.wave,
            CampaignVehicleRow.status,
            CampaignVehicleRow.reasons,
            CampaignVehicleRow.offered_at,
            CampaignVehicleRow.consent_at,
        )
        .join(CampaignVehicleRow, CampaignVehicleRow.vehicle_id == VehicleRow.id)
        # Later waves cannot matter to the planner: it acts on the waves so far only. Finished
        # vehicles matter only by number, so they are counted below instead of loaded.
        .where(
            CampaignVehicleRow.campaign_id == campaign.id,
            CampaignVehicleRow.wave <= campaign.current_wave,
            CampaignVehicleRow.status.in_(_ACTIVE),
        )
    ).all()
    finished = {
        (wave, DeviceStatus(status)): n
        for wave, status, n in session.execute(
            select(CampaignVehicleRow.wave, CampaignVehicleRow.status, func.count())
            .where(
                CampaignVehicleRow.campaign_id == campaign.id,
                CampaignVehicleRow.wave <= campaign.current_wave,
                CampaignVehicleRow.status.not_in(_ACTIVE),
            )
            .group_by(CampaignVehicleRow.wave, CampaignVehicleRow.status)
        )
    }
    undecided = {DeviceStatus.PENDING.value, DeviceStatus.HELD.value}
    holds = _hold_reasons(
        session,
        campaign.id,
        campaign.current_wave,
        [r.id for r in rows if r.status in undecided],
        release,
    )
    policy = policy_from_dict(campaign.policy)
    if policy.charger_capability:
        _charger_holds(session, policy.charger_capability, [r for r in rows if r.status in undecided], holds)
    devices = []
    stored: dict[str, tuple[int, list[str] | None]] = {}
    for r in rows:
        stored[r.vin] = (r.id, r.reasons)
        # A held vehicle is judged again each tick: once its other ECUs are updated, it may go.
        status = DeviceStatus.PENDING if r.status in undecided else DeviceStatus(r.status)
        devices.append(
            DeviceView(
                vin=r.vin,
                wave=r.wave,
                status=status,
                time_zone=r.time_zone,
                energy=_energy(r),
                consent=r.consent_at is not None,
                incompatible=holds.get(r.id),
                offered_at=r.offered_at,
                provisioned=r.provisioned_at is not None,
            )
        )
    view = CampaignView(
        state=CampaignState(campaign.state),
        policy=policy,
        wave=campaign.current_wave,
        waves=len(campaign.waves),
        wave_started_at=campaign.wave_started_at or campaign.updated_at,
        devices=devices,
        finished=finished,
        gated=bool(campaign.gate),
        health=health.latest_health(session, campaign),
    )
    return view, stored


def _energy(r: Any) -> EnergyState | None:
    """The energy state in a loaded row (None when the vehicle never reported a usable one)."""
    if r.energy_reported_at is None or r.soc is None:
        return None
    try:
        gear = Gear(r.gear or "")
    except ValueError:
        return None  # an unknown gear cannot show the vehicle is parked: treat as no state
    return EnergyState(
        soc_pct=float(r.soc),
        charging=bool(r.charging),
        plugged_in=bool(r.plugged_in),
        gear=gear,
        ambient_c=float(r.ambient_c or 0.0),
        reported_at=r.energy_reported_at,
        soh_pct=r.soh,
    )


def _hold_reasons(
    session: Session,
    campaign_id: int,
    wave: int,
    vehicle_ids: Sequence[int],
    release: Sequence[tuple[str, ImageMeta]],
) -> dict[int, str]:
    """Vehicle id → why the release is incompatible with it, for the undecided vehicles.

    Fleets have few ECU configurations, so the matrix is judged once per configuration.
    """
    if not vehicle_ids:
        return {}
    wanted = set(vehicle_ids)
    ecus: dict[int, list[EcuSpec]] = {}
    query = (
        select(
            EcuRow.vehicle_id, EcuRow.serial, EcuRow.ecu_type, EcuRow.hardware_id, EcuRow.installed_version
        )
        .join(CampaignVehicleRow, CampaignVehicleRow.vehicle_id == EcuRow.vehicle_id)
        .where(
            CampaignVehicleRow.campaign_id == campaign_id,
            CampaignVehicleRow.wave <= wave,
            CampaignVehicleRow.status.in_([DeviceStatus.PENDING.value, DeviceStatus.HELD.value]),
        )
        .order_by(EcuRow.vehicle_id, EcuRow.serial)
    )
    for vid, serial, ecu_type, hardware, version in session.execute(query):
        if vid in wanted:
            ecus.setdefault(vid, []).append(EcuSpec(serial, ecu_type, hardware, version))
    judged: dict[tuple[tuple[str, str, str | None], ...], str | None] = {}
    out: dict[int, str] = {}
    for vid in wanted:
        specs = ecus.get(vid, [])
        key = tuple((e.ecu_type, e.hardware_id, e.installed_version) for e in specs)
        if key not in judged:
            judged[key] = hold_reason(specs, release)
        if (reason := judged[key]) is not None:
            out[vid] = reason.removeprefix("incompatible (").removesuffix(")")
    return out


def _charger_holds(session: Session, capability: str, rows: Sequence[Any], holds: dict[int, str]) -> None:
    """Add, for each undecided vehicle whose depot chargers are not all certified for the
    release's charger capability, that reason to its holds (`domain/charger_compat.py`)."""
    depots = {r.id: r.depot for r in rows}
    reasons = depot_reasons(session, capability, depots.values())
    for vid, depot in depots.items():
        if (reason := reasons[depot]) is not None:
            holds[vid] = f"{holds[vid]}; {reason}" if vid in holds else reason


def _apply(
    session: Session,
    campaign: CampaignRow,
    decisions: Iterable[Decision],
    stored: dict[str, tuple[int, list[str] | None]],
    now: dt.datetime,
    report: TickReport,
    ecu_types: set[str],
) -> None:
    rows = CampaignVehicleRow
    offered: list[str] = []
    held: list[str] = []
    timed_out: list[str] = []
    done: dict[str, object] = {}

    def set_row(vin: str, expect: Iterable[str], **values: object) -> bool:
        vid = stored[vin][0]
        result = session.execute(
            update(rows)
            .where(rows.campaign_id == campaign.id, rows.vehicle_id == vid, rows.status.in_(list(expect)))
            .values(updated_at=now, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    undecided = (DeviceStatus.PENDING.value, DeviceStatus.HELD.value)
    policy = policy_from_dict(campaign.policy)
    waits: list[dict[str, object]] = []  # many per tick on a big wave: written in one executemany
    for d in decisions:
        match d:
            case TimeOut(vin):
                hours = policy.install_timeout.total_seconds() / 3600
                if set_row(
                    vin,
                    [DeviceStatus.OFFERED.value],
                    status=DeviceStatus.FAILED.value,
                    reasons=[f"timeout: no result {hours:g} h after the offer"],
                ):
                    timed_out.append(vin)
            case Offer(vin):
                if set_row(
                    vin,
                    undecided,
                    status=DeviceStatus.OFFERED.value,
                    offered_at=now,
                    assigned=False,
                    reasons=None,
                ):
                    offered.append(vin)
            case Hold(vin, reason):
                if stored[vin][1] != [reason] and set_row(
                    vin, undecided, status=DeviceStatus.HELD.value, reasons=[reason]
                ):
                    held.append(vin)
            case Wait(vin, reasons):
                if stored[vin][1] != list(reasons):
                    waits.append({"vid": stored[vin][0], "new_reasons": list(reasons)})
            case Advance(to_wave):
                campaign.current_wave, campaign.wave_started_at = to_wave, now
                done["advanced_to_wave"] = to_wave + 1
                report.advanced.append(campaign.name)
            case Halt(reason):
                _halt(session, campaign, reason, now, record_entry=False)
                done["halted"] = reason
                report.halted.append(campaign.name)
            case Complete():
                campaign.state = transition(CampaignState(campaign.state), CampaignEvent.COMPLETE).value
                done["completed"] = True
                report.completed.append(campaign.name)
            case RollBack(reason):
                done["rolled_back"] = reason
                done["rollback_ordered"] = order_rollback(session, campaign, reason, now)
                report.rolled_back.append(campaign.name)
    if waits:
        session.connection().execute(
            update(rows)
            .where(
                rows.campaign_id == campaign.id,
                rows.vehicle_id == bindparam("vid"),
                # Not IN (…): expanding parameters cannot be used with executemany.
                or_(rows.status == undecided[0], rows.status == undecided[1]),
            )
            .values(status=DeviceStatus.PENDING.value, reasons=bindparam("new_reasons"), updated_at=now),
            waits,
        )
    if offered:
        _remember_previous(session, campaign, [stored[vin][0] for vin in offered], ecu_types)
    report.offered += len(offered)
    report.held += len(held)
    report.timed_out += len(timed_out)
    if offered or held or timed_out or done:
        campaign.updated_at = now
        details: dict[str, object] = {"release": campaign.release, "wave": campaign.current_wave + 1}
        for key, vins in (("offered", offered), ("held", held), ("timed_out", timed_out)):
            if vins:
                details[key] = vins
        details.update(done)
        record(
            session,
            actor=ACTOR,
            action="campaign.tick",
            subject=f"campaign:{campaign.name}",
            details=details,
            now=now,
        )


def _remember_previous(
    session: Session, campaign: CampaignRow, vehicle_ids: Sequence[int], ecu_types: set[str]
) -> None:
    """Keep what the offered vehicles' ECUs of the release's types run now: the way back."""
    previous: dict[int, dict[str, str]] = {}
    for start in range(0, len(vehicle_ids), 500):
        for vid, serial, target in session.execute(
            select(EcuRow.vehicle_id, EcuRow.serial, EcuRow.installed_target).where(
                EcuRow.vehicle_id.in_(vehicle_ids[start : start + 500]),
                EcuRow.ecu_type.in_(sorted(ecu_types)),
                EcuRow.installed_target.is_not(None),
            )
        ):
            previous.setdefault(vid, {})[serial] = str(target)
    for vid, targets in previous.items():
        session.execute(
            update(CampaignVehicleRow)
            .where(CampaignVehicleRow.campaign_id == campaign.id, CampaignVehicleRow.vehicle_id == vid)
            .values(previous_targets=targets)
        )


# The statuses of vehicles a fleet rollback concerns: offered (may have installed by now),
# updated, or back on their own after a failed self-test (their director assignment must still
# stop naming the release).
_EXPOSED = (
    DeviceStatus.OFFERED.value,
    DeviceStatus.UPDATED.value,
    DeviceStatus.FAILED.value,
    DeviceStatus.ROLLED_BACK.value,
)


def order_rollback(session: Session, campaign: CampaignRow, reason: str, now: dt.datetime) -> int:
    """Roll the campaign back: it ends, and every vehicle it reached is to be sent back to what
    it ran when offered (signed by `dispatch_rollbacks` after this transaction commits).

    Vehicles not offered yet are untouched: they never left their last known good release.
    Returns how many vehicles are ordered back.
    """
    campaign.state = transition(CampaignState(campaign.state), CampaignEvent.ROLL_BACK).value
    campaign.updated_at = now
    result = session.execute(
        update(CampaignVehicleRow)
        .where(
            CampaignVehicleRow.campaign_id == campaign.id,
            CampaignVehicleRow.status.in_(_EXPOSED),
            CampaignVehicleRow.previous_targets.is_not(None),
            CampaignVehicleRow.rollback_ordered_at.is_(None),
        )
        .values(rollback_ordered_at=now, rollback_assigned=False)
    )
    log.warning("campaign %s rolled back: %s", campaign.name, reason)
    return int(result.rowcount)  # type: ignore[attr-defined]


def dispatch_rollbacks(db: Database, director: Director, now: dt.datetime) -> int:
    """Sign each ordered rollback not signed yet (the outbox of `order_rollback`)."""
    with db.sessions() as session:
        pending = session.execute(
            select(
                CampaignVehicleRow.campaign_id,
                CampaignVehicleRow.vehicle_id,
                VehicleRow.vin,
                CampaignVehicleRow.previous_targets,
            )
            .join(VehicleRow, VehicleRow.id == CampaignVehicleRow.vehicle_id)
            .where(
                CampaignVehicleRow.rollback_ordered_at.is_not(None),
                CampaignVehicleRow.rollback_assigned.is_(False),
            )
            .order_by(CampaignVehicleRow.campaign_id, VehicleRow.vin)
        ).all()
    count = 0
    for campaign_id, vehicle_id, vin, targets in pending:
        reasons = None
        try:
            director.assign(vin, dict(targets or {}))
            count += 1
        except EvotaError as e:
            # e.g. a factory image that was never published: the director cannot name it, so
            # this vehicle needs a republished image (or a workshop); say so, do not retry.
            log.error("cannot roll %s back: %s", vin, e)
            reasons = [f"rollback: {e}"]
        with db.sessions.begin() as session:
            values: dict[str, object] = {"rollback_assigned": True}
            if reasons:
                values["reasons"] = reasons
            session.execute(
                update(CampaignVehicleRow)
                .where(
                    CampaignVehicleRow.campaign_id == campaign_id,
                    CampaignVehicleRow.vehicle_id == vehicle_id,
                )
                .values(**values)
            )
    return count


def _halt(
    session: Session, campaign: CampaignRow, reason: str, now: dt.datetime, *, record_entry: bool = True
) -> None:
    campaign.state = transition(CampaignState(campaign.state), CampaignEvent.HALT).value
    campaign.updated_at = now
    if record_entry:
        record(
            session,
            actor=ACTOR,
            action="campaign.halt",
            subject=f"campaign:{campaign.name}",
            details={"reason": reason},
            now=now,
        )


def dispatch(db: Database, director: Director, now: dt.datetime) -> int:
    """Sign the director targets of every offer not signed yet (the outbox); returns how many.

    Offers of campaigns no longer running stay unsigned: an operator who paused or aborted
    a campaign between the decision and the signature has the last word.
    """
    with db.sessions() as session:
        pending = session.execute(
            select(
                CampaignVehicleRow.campaign_id,
                CampaignVehicleRow.vehicle_id,
                VehicleRow.vin,
                CampaignRow.release,
            )
            .join(VehicleRow, VehicleRow.id == CampaignVehicleRow.vehicle_id)
            .join(CampaignRow, CampaignRow.id == CampaignVehicleRow.campaign_id)
            .where(
                CampaignVehicleRow.status == DeviceStatus.OFFERED.value,
                CampaignVehicleRow.assigned.is_(False),
                CampaignRow.state == CampaignState.RUNNING.value,
            )
            .order_by(CampaignVehicleRow.campaign_id, VehicleRow.vin)
        ).all()
    count = 0
    for campaign_id, vehicle_id, vin, release in pending:
        where = (
            CampaignVehicleRow.campaign_id == campaign_id,
            CampaignVehicleRow.vehicle_id == vehicle_id,
            CampaignVehicleRow.status == DeviceStatus.OFFERED.value,
        )
        try:
            signed = director.assign_release(vin, release)
        except EvotaError as e:
            # The director refuses what the registry let through (e.g. keys re-registered with
            # other ECUs): the vehicle is held with the director's reason, not failed.
            log.warning("director refused %s for %s: %s", release, vin, e)
            with db.sessions.begin() as session:
                session.execute(
                    update(CampaignVehicleRow)
                    .where(*where)
                    .values(status=DeviceStatus.HELD.value, reasons=[f"director: {e}"], updated_at=now)
                )
            continue
        versions = {i.path: i.meta.version for i in director.images.images()}
        with db.sessions.begin() as session:
            session.execute(update(CampaignVehicleRow).where(*where).values(assigned=True))
            # What each ECU is to run next, for the registry's view until the vehicle reports it.
            for serial, path in signed.items():
                session.execute(
                    update(EcuRow)
                    .where(EcuRow.vehicle_id == vehicle_id, EcuRow.serial == serial)
                    .values(pending_version=versions.get(path))
                )
        count += 1
    return count


class Leadership:
    """Who runs the controller among the server processes sharing a database.

    PostgreSQL: a session-level advisory lock on a connection kept for the purpose; if that
    connection dies the lock is gone, so each check pings it and campaigns for the lock
    again. SQLite: one process per home, always the leader.
    """

    def __init__(self, db: Database, key: int = _LEADER_LOCK) -> None:
        self.db = db
        self.key = key  # one lock per controller (vehicles; chargers have their own)
        self._connection: Connection | None = None
        self._backend_pid: int | None = None

    def is_leader(self) -> bool:
        if self.db.engine.dialect.name != "postgresql":
            return True
        try:
            if self._connection is not None:
                # The same server session must still be there: SQLAlchemy reconnects an
                # invalidated connection silently, and a new session does not hold the lock.
                pid = self._connection.execute(text("SELECT pg_backend_pid()")).scalar()
                self._connection.commit()
                if pid == self._backend_pid:
                    return True
                log.warning("the controller's database session was replaced; leadership lost")
                self.release()
                return False
            connection = self.db.engine.connect()
            won = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            connection.commit()
            if won:
                self._connection, self._backend_pid = connection, int(pid or 0)
            else:
                connection.close()
            return won
        except DBAPIError as e:
            log.warning("lost the controller lock: %s", e)
            self.release()
            return False

    def release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(DBAPIError):  # if the connection is gone, so is the lock
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            # Invalidate rather than return it to the pool: a pooled session would keep the lock.
            connection.invalidate()
            connection.close()
