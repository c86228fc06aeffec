"""The charger tables: the registry, connectors, charging sessions, firmware and its requests.

Beside `models.py` (same `Base`, same naming rules) so that each file stays readable. A
charger is identified on the wire by its OCPP charge point id; rows refer to it by `id`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evota.server.store.models import Base, UtcDateTime

__all__ = [
    "ChargerCampaignMemberRow",
    "ChargerCampaignRow",
    "ChargerCertificationRow",
    "ChargerConnectorRow",
    "ChargerFirmwareRow",
    "ChargerRow",
    "ChargerSessionRow",
    "ChargerTagRow",
    "FirmwareRequestRow",
    "FirmwareStepRow",
]


class ChargerRow(Base):
    __tablename__ = "chargers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charge_point_id: Mapped[str] = mapped_column(String(48), unique=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    # scrypt hash of the basic-auth password (security profiles 1 and 2); None: cannot connect.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # What the charger last said about itself in a BootNotification.
    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(50), index=True)
    serial_number: Mapped[str | None] = mapped_column(String(50))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    boot_reason: Mapped[str | None] = mapped_column(String(32))
    booted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    protocol: Mapped[str | None] = mapped_column(String(8))  # "1.6" or "2.0.1", as negotiated
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The firmware profile: how updates are sent, and what the charger accepts.
    signed_updates: Mapped[bool] = mapped_column(Boolean, default=True)
    accepts_downgrade: Mapped[bool] = mapped_column(Boolean, default=True)
    hardware_revision: Mapped[str | None] = mapped_column(String(64))
    # The firmware version it last ran well: the first one it booted with, then each one
    # that passed a campaign's post-update validation. Rollbacks go back to it.
    last_good_firmware: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    tags: Mapped[list[ChargerTagRow]] = relationship(
        back_populates="charger", cascade="all, delete-orphan", order_by="ChargerTagRow.tag"
    )
    connectors: Mapped[list[ChargerConnectorRow]] = relationship(
        back_populates="charger",
        cascade="all, delete-orphan",
        order_by="(ChargerConnectorRow.evse_id, ChargerConnectorRow.connector_id)",
    )


class ChargerTagRow(Base):
    __tablename__ = "charger_tags"
    __table_args__ = (Index("ix_charger_tags_tag", "tag"),)

    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    charger: Mapped[ChargerRow] = relationship(back_populates="tags")


class ChargerConnectorRow(Base):
    """A connector's last reported state. OCPP 1.6 connector N is EVSE N, connector 1; its
    connector 0 (the charge point itself) is EVSE 0."""

    __tablename__ = "charger_connectors"

    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    charger: Mapped[ChargerRow] = relationship(back_populates="connectors")


class ChargerSessionRow(Base):
    """One charging session (a 1.6 transaction, a 2.0.1 TransactionEvent sequence)."""

    __tablename__ = "charger_sessions"
    __table_args__ = (
        UniqueConstraint("charger_id", "transaction_id", name="uq_charger_sessions_charger_transaction"),
        Index("ix_charger_sessions_charger_started", "charger_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"))
    transaction_id: Mapped[str] = mapped_column(String(64))
    evse_id: Mapped[int] = mapped_column(Integer)
    id_tag: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    meter_start_wh: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    meter_stop_wh: Mapped[float | None] = mapped_column(Float)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    succeeded: Mapped[bool | None] = mapped_column(Boolean)
    firmware_version: Mapped[str | None] = mapped_column(String(50))  # what the charger ran


class ChargerFirmwareRow(Base):
    """A charger firmware image evota holds, with the signature made by its signing key."""

    __tablename__ = "charger_firmware"
    __table_args__ = (
        UniqueConstraint("vendor", "model", "version", name="uq_charger_firmware_vendor_model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vendor: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(50))
    version: Mapped[str] = mapped_column(String(50))
    file_name: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(Text)  # Base64, over the whole file
    certificate_pem: Mapped[str] = mapped_column(Text)  # the signing certificate it was signed under
    certificate_serial: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class FirmwareRequestRow(Base):
    """One (Signed)UpdateFirmware sent to a charger: its requestId is this row's id, fresh
    per attempt, and every status the charger reports for it is matched back here."""

    __tablename__ = "charger_firmware_requests"
    __table_args__ = (Index("ix_charger_firmware_requests_charger", "charger_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"))
    firmware_id: Mapped[int] = mapped_column(ForeignKey("charger_firmware.id", ondelete="RESTRICT"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("charger_campaigns.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(String(16))  # update, rollback
    retries: Mapped[int] = mapped_column(Integer)  # tries in all, sent with the request (≥ 1)
    retry_interval_s: Mapped[int] = mapped_column(Integer)
    download_failures: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # re-sent after a reboot mid-update: +1
    install_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # installDateTime
    message: Mapped[str] = mapped_column(String(32))  # UpdateFirmware, SignedUpdateFirmware
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    response: Mapped[str | None] = mapped_column(String(32))  # Accepted, Rejected, … or a CallError code
    state: Mapped[str] = mapped_column(String(32))  # see domain.firmware.RequestState
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_status_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(512))


class FirmwareStepRow(Base):
    """Every (Signed)FirmwareStatusNotification a charger sent, and evota's own timeouts."""

    __tablename__ = "charger_firmware_steps"
    __table_args__ = (Index("ix_charger_firmware_steps_charger_at", "charger_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"))
    # Not a foreign key: a status with a requestId evota never sent is stored too.
    request_id: Mapped[int | None] = mapped_column(Integer)
    # A firmware status, an answer, or a security event (InvalidFirmwareSigningCertificate: 33).
    status: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # charger, csms (a timeout evota decided)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChargerCampaignRow(Base):
    """A firmware campaign for chargers: the lifecycle, approval and waves of vehicle campaigns
    (`domain/campaign.py`), with its own members and planner (`domain/charger_campaign.py`)."""

    __tablename__ = "charger_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    firmware_id: Mapped[int] = mapped_column(ForeignKey("charger_firmware.id", ondelete="RESTRICT"))
    selector: Mapped[dict[str, object]] = mapped_column(JSON)
    waves: Mapped[list[float]] = mapped_column(JSON)
    policy: Mapped[dict[str, object]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    current_wave: Mapped[int] = mapped_column(Integer)
    wave_started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The newest session id when the campaign started: the control cohort's sessions are newer.
    session_watermark: Mapped[int] = mapped_column(Integer, default=0)
    halt_reason: Mapped[str | None] = mapped_column(String(512))
    created_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChargerCampaignMemberRow(Base):
    """A charger in a campaign's scope. Its firmware requests are the rows of
    `charger_firmware_requests` with this campaign and charger (the newest one counts)."""

    __tablename__ = "charger_campaign_members"
    __table_args__ = (Index("ix_charger_campaign_members_status", "campaign_id", "status"),)

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("charger_campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    charger_id: Mapped[int] = mapped_column(ForeignKey("chargers.id", ondelete="CASCADE"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str] | None] = mapped_column(JSON)
    from_version: Mapped[str | None] = mapped_column(String(50))  # what it ran when scoped
    rollback_version: Mapped[str | None] = mapped_column(String(50))  # its last known good firmware
    status_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())  # when it entered `status`
    boots: Mapped[int] = mapped_column(Integer, default=0)  # boots since the install (loop guard)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChargerCertificationRow(Base):
    """A capability a charger model is certified for over a firmware version range (e.g.
    ISO 15118-20 bidirectional power transfer for Acme AC22 firmware >=2.1,<3)."""

    __tablename__ = "charger_certifications"
    __table_args__ = (
        UniqueConstraint(
            "capability", "vendor", "model", "versions", name="uq_charger_certifications_capability_model"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capability: Mapped[str] = mapped_column(String(64), index=True)
    vendor: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(50))
    versions: Mapped[str] = mapped_column(String(128))  # a version constraint, e.g. ">=2.1,<3"
    note: Mapped[str | None] = mapped_column(String(256))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
