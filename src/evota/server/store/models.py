"""The tables, as SQLAlchemy 2 typed mappings.

Tags live in their own table (vehicle, tag) rather than in a JSON column, so that a campaign
selector "tag = pilot" is an indexed join on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AuditRow",
    "Base",
    "CampaignRow",
    "CampaignVehicleRow",
    "DeviceStepRow",
    "DeviceTokenRow",
    "EcuRow",
    "HealthVerdictRow",
    "TelemetryRow",
    "UserRow",
    "UserTokenRow",
    "VehicleRow",
    "VehicleTagRow",
]

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and read back timezone-aware on every backend.

    SQLite keeps no offset and hands back naive values, PostgreSQL hands back the session's
    zone; the planner compares them with an aware `now`, so both are normalised here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} would be stored without its time zone")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class VehicleRow(Base):
    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    depot: Mapped[str] = mapped_column(String(64), index=True)
    region: Mapped[str] = mapped_column(String(64), index=True)
    climate_zone: Mapped[str] = mapped_column(String(16), index=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    primary_serial: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The latest energy state the vehicle reported (None until it reports).
    soc: Mapped[float | None] = mapped_column(Float)
    soh: Mapped[float | None] = mapped_column(Float)
    charging: Mapped[bool | None] = mapped_column(Boolean)
    plugged_in: Mapped[bool | None] = mapped_column(Boolean)
    gear: Mapped[str | None] = mapped_column(String(1))
    ambient_c: Mapped[float | None] = mapped_column(Float)
    energy_reported_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Set when the vehicle's keys are registered with the director and its token issued.
    provisioned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The counter of the last accepted version manifest; the next must exceed it (replay).
    manifest_counter: Mapped[int] = mapped_column(Integer, default=0)

    ecus: Mapped[list[EcuRow]] = relationship(
        back_populates="vehicle", cascade="all, delete-orphan", order_by="EcuRow.serial"
    )
    tags: Mapped[list[VehicleTagRow]] = relationship(
        back_populates="vehicle", cascade="all, delete-orphan", order_by="VehicleTagRow.tag"
    )


class EcuRow(Base):
    __tablename__ = "ecus"
    __table_args__ = (UniqueConstraint("vehicle_id", "serial", name="uq_ecus_vehicle_serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    serial: Mapped[str] = mapped_column(String(64))
    ecu_type: Mapped[str] = mapped_column(String(16))
    hardware_id: Mapped[str] = mapped_column(String(64), index=True)
    installed_version: Mapped[str | None] = mapped_column(String(64))
    installed_target: Mapped[str | None] = mapped_column(String(512))
    pending_version: Mapped[str | None] = mapped_column(String(64))
    public_key: Mapped[dict[str, object] | None] = mapped_column(JSON)
    report_counter: Mapped[int] = mapped_column(Integer, default=0)

    vehicle: Mapped[VehicleRow] = relationship(back_populates="ecus")


class VehicleTagRow(Base):
    __tablename__ = "vehicle_tags"
    __table_args__ = (Index("ix_vehicle_tags_tag", "tag"),)

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    vehicle: Mapped[VehicleRow] = relationship(back_populates="tags")


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    release: Mapped[str] = mapped_column(String(64))
    selector: Mapped[dict[str, object]] = mapped_column(JSON)
    waves: Mapped[list[float]] = mapped_column(JSON)
    policy: Mapped[dict[str, object]] = mapped_column(JSON)
    gate: Mapped[dict[str, object] | None] = mapped_column(JSON)  # the health gate; None: none
    state: Mapped[str] = mapped_column(String(16))
    current_wave: Mapped[int] = mapped_column(Integer)
    wave_started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class CampaignVehicleRow(Base):
    __tablename__ = "campaign_vehicles"
    __table_args__ = (
        Index("ix_campaign_vehicles_status", "campaign_id", "status"),
        Index("ix_campaign_vehicles_vehicle", "vehicle_id"),
    )

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str] | None] = mapped_column(JSON)
    offered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # False while an offer is decided but not yet signed by the director (the outbox): the
    # controller signs it after the deciding transaction commits, so a crash between the two
    # is finished by the next tick instead of losing the assignment.
    assigned: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_by: Mapped[str | None] = mapped_column(String(64))
    consent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # What its ECUs ran when it was offered (serial -> target path): the way back.
    previous_targets: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # Since when it runs the release: the health gate reads its telemetry from then on.
    updated_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # A fleet rollback: ordered (decided), signed by the director (outbox flag), confirmed.
    rollback_ordered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    rollback_assigned: Mapped[bool] = mapped_column(Boolean, default=False)
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class HealthVerdictRow(Base):
    """One look of a campaign's health gate: its outcome and the evidence behind it."""

    __tablename__ = "health_verdicts"
    __table_args__ = (Index("ix_health_verdicts_campaign_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    wave: Mapped[int] = mapped_column(Integer)
    look: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[dict[str, object]] = mapped_column(JSON)


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class UserTokenRow(Base):
    """An operator API token; only its SHA-256 is stored, so a database leak leaks no token."""

    __tablename__ = "user_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class DeviceTokenRow(Base):
    """A vehicle's API token, issued at provisioning (SHA-256 stored, as for users)."""

    __tablename__ = "device_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class DeviceStepRow(Base):
    """One step an agent reported (downloading … committed / rolled back), with its reason."""

    __tablename__ = "device_steps"
    __table_args__ = (Index("ix_device_steps_vehicle_at", "vehicle_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    release: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(512))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class TelemetryRow(Base):
    """One KPI sample of a vehicle (a row per value, so health gates query by KPI and time)."""

    __tablename__ = "telemetry"
    __table_args__ = (
        Index("ix_telemetry_vehicle_at", "vehicle_id", "at"),
        Index("ix_telemetry_kpi_at", "kpi", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    kpi: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
