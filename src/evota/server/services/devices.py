"""What vehicles do with the server: provisioning, check-in, step reports, telemetry.

Provisioning joins the two registries: the fleet registry (database: depot, energy state,
campaigns) and the director's (files: ECU keys it signs for). The vehicle must already be in
the fleet registry; its ECU public keys are stored on its ECU rows, the director registers
the same identity, and a device token is issued. Re-provisioning with the same keys is
harmless (the director keeps its record; a new token replaces the old ones); other keys are
refused, because the director would go on signing for ECUs the server no longer trusts.

A check-in carries the signed version manifest. It is verified against the stored keys and
counters (a replayed or forged manifest changes nothing), then the server records what each
ECU runs, the energy state, consents, and reconciles campaigns: a vehicle whose ECUs run
every image of a campaign's release is updated, whatever reports were lost on the way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, selectinload

from evota.domain.campaign import CampaignState
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.domain.gates import Gear
from evota.domain.identifiers import validate_name
from evota.domain.planner import DeviceStatus
from evota.domain.steps import Step, outcome
from evota.errors import InputError, NotFoundError
from evota.security.director import Director
from evota.security.errors import AuthenticationError, SecurityError
from evota.security.image_repo import ImageRepository
from evota.security.manifest import ManifestCounters, check_public_key, verify_vehicle_manifest
from evota.server.services.audit import record
from evota.server.services.controller import release_images
from evota.server.services.tokens import DEVICE_PREFIX, new_token, token_hash
from evota.server.store.db import Database
from evota.server.store.models import (
    CampaignRow,
    CampaignVehicleRow,
    DeviceStepRow,
    DeviceTokenRow,
    TelemetryRow,
    VehicleRow,
)

__all__ = [
    "CheckInResult",
    "Consent",
    "EnergyReport",
    "Sample",
    "authenticate_device",
    "check_in",
    "provision",
    "report_step",
    "store_telemetry",
]

MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_TELEMETRY_VALUES = 10_000  # per batch: a day of one-minute KPIs for a handful of signals
CHECK_IN_INTERVAL_S = 300
# Campaigns in these states still own their vehicles' offers and reports.
_LIVE = (CampaignState.RUNNING.value, CampaignState.PAUSED.value, CampaignState.HALTED.value)


@dataclasses.dataclass(frozen=True)
class EnergyReport:
    """The energy state a vehicle reports with its check-in."""

    soc_pct: float
    charging: bool
    plugged_in: bool
    gear: Gear
    ambient_c: float
    at: dt.datetime
    soh_pct: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.soc_pct <= 100:
            raise InputError(f"soc_pct {self.soc_pct} is not a percentage")
        if self.soh_pct is not None and not 0 <= self.soh_pct <= 100:
            raise InputError(f"soh_pct {self.soh_pct} is not a percentage")
        if not -60 <= self.ambient_c <= 80:
            raise InputError(f"ambient_c {self.ambient_c} is outside -60…80 °C (wrong unit?)")


@dataclasses.dataclass(frozen=True)
class Consent:
    """A user's consent to install `release` (who gave it, when)."""

    release: str
    by: str
    at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Sample:
    at: dt.datetime
    kpis: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class CheckInResult:
    vin: str
    manifest_counter: int
    updated: tuple[str, ...]  # campaigns this check-in showed complete on the vehicle
    assigned: tuple[str, ...]  # releases the vehicle is asked to install
    next_check_in_s: int = CHECK_IN_INTERVAL_S

    def to_json(self) -> dict[str, object]:
        return {
            "vin": self.vin,
            "manifest_counter": self.manifest_counter,
            "updated": list(self.updated),
            "assigned": list(self.assigned),
            "next_check_in_s": self.next_check_in_s,
            "director": f"/repo/director/{self.vin}/metadata/",
        }


# ---- provisioning ----------------------------------------------------------------------------------
def provision(
    db: Database, director: Director, identity: VehicleIdentity, *, actor: str, now: dt.datetime
) -> str:
    """Register `identity`'s keys for a vehicle of the fleet registry; returns its new token."""
    with db.sessions.begin() as session:
        vehicle = _vehicle(session, identity.vin, lock=True)
        _check_matches(vehicle, identity)
        # The director first: if this process dies before the commit, running provision again
        # finds the same identity there and goes on.
        if identity.vin in director.vehicles():
            registered = director.vehicle(identity.vin)
            if all(e.public_key is None for e in registered.ecus):
                director.add_keys(identity)  # registered by hand before the vehicle had keys
            elif registered != identity:
                raise InputError(
                    f"{identity.vin} is registered with the director under other keys; "
                    "replacing ECU keys is a key rotation, not a re-provisioning"
                )
        else:
            director.register_vehicle(identity)
        rows = {e.serial: e for e in vehicle.ecus}
        for ecu in identity.ecus:
            rows[ecu.serial].public_key = dict(ecu.public_key) if ecu.public_key else None
        vehicle.provisioned_at = vehicle.provisioned_at or now
        session.execute(
            update(DeviceTokenRow)
            .where(DeviceTokenRow.vehicle_id == vehicle.id, DeviceTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        token = new_token(DEVICE_PREFIX)
        session.add(DeviceTokenRow(token_hash=token_hash(token), vehicle_id=vehicle.id, created_at=now))
        record(
            session,
            actor=actor,
            action="vehicle.provision",
            subject=f"vehicle:{identity.vin}",
            details={"ecus": [e.serial for e in identity.ecus]},
            now=now,
        )
    return token


def _check_matches(vehicle: VehicleRow, identity: VehicleIdentity) -> None:
    if identity.primary_serial != vehicle.primary_serial:
        raise InputError(
            f"{vehicle.vin}: the registry's primary is {vehicle.primary_serial}, "
            f"not {identity.primary_serial}"
        )
    registered = {e.serial: (e.ecu_type, e.hardware_id) for e in vehicle.ecus}
    given = {e.serial: (e.ecu_type, e.hardware_id) for e in identity.ecus}
    if registered != given:
        raise InputError(
            f"{vehicle.vin}: the ECUs given {sorted(given.items())} differ from the registry's "
            f"{sorted(registered.items())}"
        )
    if missing := [e.serial for e in identity.ecus if e.public_key is None]:
        raise InputError(f"{vehicle.vin}: no public key for ECU {', '.join(missing)}")
    for ecu in identity.ecus:
        check_public_key(ecu)


def authenticate_device(db: Database, token: str) -> str:
    """The VIN a device token belongs to (SecurityError if unknown or revoked)."""
    with db.sessions() as session:
        vin = session.scalars(
            select(VehicleRow.vin)
            .join(DeviceTokenRow, DeviceTokenRow.vehicle_id == VehicleRow.id)
            .where(DeviceTokenRow.token_hash == token_hash(token), DeviceTokenRow.revoked_at.is_(None))
        ).one_or_none()
    if vin is None:
        raise AuthenticationError("unknown or revoked device token")
    return vin


# ---- check-in --------------------------------------------------------------------------------------
def check_in(
    db: Database,
    images: ImageRepository,
    vin: str,
    manifest: bytes,
    *,
    energy: EnergyReport | None,
    consents: Sequence[Consent] = (),
    now: dt.datetime,
) -> CheckInResult:
    """Verify and record a check-in (see the module docstring); one transaction."""
    with db.sessions.begin() as session:
        vehicle = _vehicle(session, vin, lock=True)  # check-ins of one vehicle queue up
        identity = _identity(vehicle)
        last = ManifestCounters(vehicle.manifest_counter, {e.serial: e.report_counter for e in vehicle.ecus})
        verified = verify_vehicle_manifest(
            manifest, identity, last=last, now=now, max_future_skew=MAX_CLOCK_SKEW
        )
        vehicle.manifest_counter = verified.counters.vehicle
        published = {i.path: i.meta for i in images.images()}
        for ecu in vehicle.ecus:
            report = verified.reports.get(ecu.serial)
            if report is None:
                continue
            ecu.report_counter = verified.counters.ecus.get(ecu.serial, ecu.report_counter)
            ecu.installed_target = report.installed_path
            meta = published.get(report.installed_path)
            if meta is not None:
                ecu.installed_version = meta.version
                if ecu.pending_version == meta.version:
                    ecu.pending_version = None  # arrived
        if energy is not None:
            if energy.at > now + MAX_CLOCK_SKEW:
                raise InputError(f"energy state is dated in the future ({energy.at.isoformat()})")
            vehicle.soc, vehicle.soh = energy.soc_pct, energy.soh_pct
            vehicle.charging, vehicle.plugged_in = energy.charging, energy.plugged_in
            vehicle.gear, vehicle.ambient_c = energy.gear.value, energy.ambient_c
            vehicle.energy_reported_at = min(energy.at, now)
        vehicle.last_contact_at = now
        if verified.attacks:
            record(
                session,
                actor=f"vehicle:{vin}",
                action="vehicle.attack_detected",
                subject=f"vehicle:{vin}",
                details={"attacks": dict(verified.attacks)},
                now=now,
            )
        _record_consents(session, vehicle.id, consents, now)
        session.flush()
        updated, assigned = _reconcile(session, images, vehicle, now)
        return CheckInResult(vin, vehicle.manifest_counter, updated, assigned)


def _identity(vehicle: VehicleRow) -> VehicleIdentity:
    if vehicle.provisioned_at is None:
        raise SecurityError(f"{vehicle.vin} is not provisioned: it has no registered keys")
    return VehicleIdentity(
        vehicle.vin,
        vehicle.primary_serial,
        tuple(EcuIdentity(e.serial, e.ecu_type, e.hardware_id, e.public_key) for e in vehicle.ecus),
    )


def _record_consents(
    session: Session, vehicle_id: int, consents: Sequence[Consent], now: dt.datetime
) -> None:
    for consent in consents:
        if consent.at > now + MAX_CLOCK_SKEW:
            raise InputError(f"consent for {consent.release} is dated in the future")
        if not consent.by.strip():
            raise InputError(f"consent for {consent.release} does not say who gave it")
        live = select(CampaignRow.id).where(
            CampaignRow.release == consent.release, CampaignRow.state.in_(_LIVE)
        )
        session.execute(
            update(CampaignVehicleRow)
            .where(
                CampaignVehicleRow.vehicle_id == vehicle_id,
                CampaignVehicleRow.campaign_id.in_(live),
                CampaignVehicleRow.consent_at.is_(None),
            )
            .values(consent_by=consent.by[:64], consent_at=min(consent.at, now))
        )


def _reconcile(
    session: Session, images: ImageRepository, vehicle: VehicleRow, now: dt.datetime
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Mark live campaigns whose release the vehicle runs completely as updated for it."""
    rows = session.execute(
        select(CampaignRow.id, CampaignRow.name, CampaignRow.release, CampaignVehicleRow.status)
        .join(CampaignVehicleRow, CampaignVehicleRow.campaign_id == CampaignRow.id)
        .where(CampaignVehicleRow.vehicle_id == vehicle.id, CampaignRow.state.in_(_LIVE))
        .order_by(CampaignRow.id)
    ).all()
    running = {e.installed_target for e in vehicle.ecus if e.installed_target}
    updated: list[str] = []
    assigned: list[str] = []
    for campaign_id, name, release, status in rows:
        images_of = release_images(images, release)
        if images_of is not None and {p for p, _ in images_of} <= running:
            if status != DeviceStatus.UPDATED.value:
                session.execute(
                    update(CampaignVehicleRow)
                    .where(
                        CampaignVehicleRow.campaign_id == campaign_id,
                        CampaignVehicleRow.vehicle_id == vehicle.id,
                    )
                    .values(
                        status=DeviceStatus.UPDATED.value,
                        reasons=None,
                        assigned=True,
                        updated_at=now,
                        updated_since=now,
                    )
                )
                updated.append(name)
        elif status == DeviceStatus.OFFERED.value:
            assigned.append(release)
    _confirm_rollbacks(session, vehicle, now)
    return tuple(updated), tuple(assigned)


def _confirm_rollbacks(session: Session, vehicle: VehicleRow, now: dt.datetime) -> None:
    """A vehicle ordered back by a rolled-back campaign is back once its ECUs run what they ran
    when offered (however the reports of the switch itself were lost)."""
    running = {e.serial: e.installed_target for e in vehicle.ecus}
    ordered = session.execute(
        select(CampaignVehicleRow.campaign_id, CampaignVehicleRow.previous_targets).where(
            CampaignVehicleRow.vehicle_id == vehicle.id,
            CampaignVehicleRow.rollback_ordered_at.is_not(None),
            CampaignVehicleRow.rolled_back_at.is_(None),
        )
    ).all()
    for campaign_id, previous in ordered:
        if previous and all(running.get(serial) == path for serial, path in previous.items()):
            session.execute(
                update(CampaignVehicleRow)
                .where(
                    CampaignVehicleRow.campaign_id == campaign_id,
                    CampaignVehicleRow.vehicle_id == vehicle.id,
                )
                .values(rolled_back_at=now, status=DeviceStatus.ROLLED_BACK.value, updated_at=now)
            )


# ---- steps and telemetry ----------------------------------------------------------------------------
def report_step(
    db: Database, vin: str, *, release: str, step: Step, reason: str | None, at: dt.datetime, now: dt.datetime
) -> str | None:
    """Store a step; an outcome or a wait updates the vehicle's live campaign of `release`.

    Returns the campaign's name, or None when no live campaign of that release holds the
    vehicle (the step is kept anyway: a manual assignment's history matters too).
    """
    validate_name(release)
    if at > now + MAX_CLOCK_SKEW:
        raise InputError(f"step is dated in the future ({at.isoformat()})")
    if step in (Step.WAITING, Step.FAILED, Step.ROLLED_BACK) and not (reason and reason.strip()):
        raise InputError(f"a {step.value} step must say why")
    with db.sessions.begin() as session:
        vehicle = _vehicle(session, vin)
        campaign = session.execute(
            select(CampaignRow.id, CampaignRow.name)
            .join(CampaignVehicleRow, CampaignVehicleRow.campaign_id == CampaignRow.id)
            .where(
                CampaignVehicleRow.vehicle_id == vehicle.id,
                CampaignRow.release == release,
                CampaignRow.state.in_(_LIVE),
            )
            .order_by(CampaignRow.id.desc())
            .limit(1)
        ).one_or_none()
        session.add(
            DeviceStepRow(
                vehicle_id=vehicle.id,
                campaign_id=campaign.id if campaign else None,
                release=release,
                step=step.value,
                reason=reason[:512] if reason else None,
                at=min(at, now),
                received_at=now,
            )
        )
        vehicle.last_contact_at = now
        if campaign is None:
            return None
        where = (CampaignVehicleRow.campaign_id == campaign.id, CampaignVehicleRow.vehicle_id == vehicle.id)
        status = outcome(step)
        if status is DeviceStatus.UPDATED:
            # A late success still counts, even after the install timeout marked it failed.
            expect = [DeviceStatus.OFFERED.value, DeviceStatus.FAILED.value]
        elif status is not None:
            expect = [DeviceStatus.OFFERED.value]
        if status is not None:
            # An outcome proves the director's targets reached the vehicle: the outbox flag is
            # set too, so it stays true even when the report beats the controller's own flag.
            since = {"updated_since": min(at, now)} if status is DeviceStatus.UPDATED else {}
            session.execute(
                update(CampaignVehicleRow)
                .where(*where, CampaignVehicleRow.status.in_(expect))
                .values(
                    status=status.value,
                    reasons=[reason] if reason else None,
                    assigned=True,
                    updated_at=now,
                    **since,
                )
            )
        elif step is Step.WAITING:
            session.execute(
                update(CampaignVehicleRow)
                .where(*where, CampaignVehicleRow.status == DeviceStatus.OFFERED.value)
                .values(reasons=[reason], updated_at=now)
            )
        return str(campaign.name)


def store_telemetry(db: Database, vin: str, samples: Sequence[Sample], *, now: dt.datetime) -> int:
    """Store a batch of KPI samples (all or nothing); returns how many values were stored."""
    values = [(s.at, name, value) for s in samples for name, value in s.kpis.items()]
    if len(values) > MAX_TELEMETRY_VALUES:
        raise InputError(
            f"a telemetry batch holds at most {MAX_TELEMETRY_VALUES} values ({len(values)} sent)"
        )
    for at, name, value in values:
        validate_name(name)
        if not math.isfinite(value):
            raise InputError(f"KPI {name} at {at.isoformat()} is not a finite number")
        if at > now + MAX_CLOCK_SKEW:
            raise InputError(f"KPI {name} is dated in the future ({at.isoformat()})")
    with db.sessions.begin() as session:
        vehicle = _vehicle(session, vin)
        if values:
            session.execute(
                insert(TelemetryRow),
                [
                    {"vehicle_id": vehicle.id, "at": at, "kpi": name, "value": value}
                    for at, name, value in values
                ],
            )
        vehicle.last_contact_at = now
    return len(values)


def _vehicle(session: Session, vin: str, *, lock: bool = False) -> VehicleRow:
    query = select(VehicleRow).where(VehicleRow.vin == vin).options(selectinload(VehicleRow.ecus))
    if lock:
        query = query.with_for_update()
    vehicle = session.scalars(query).one_or_none()
    if vehicle is None:
        raise NotFoundError(f"vehicle {vin} is not in the fleet registry")
    return vehicle
