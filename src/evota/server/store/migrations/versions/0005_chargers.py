"""Chargers: the registry, connectors, charging sessions, firmware, firmware requests and steps.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(column: str, table: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "chargers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.String(48), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("vendor", sa.String(50), nullable=True),
        sa.Column("model", sa.String(50), nullable=True),
        sa.Column("serial_number", sa.String(50), nullable=True),
        sa.Column("firmware_version", sa.String(50), nullable=True),
        sa.Column("boot_reason", sa.String(32), nullable=True),
        _ts("booted_at"),
        sa.Column("protocol", sa.String(8), nullable=True),
        sa.Column("connected", sa.Boolean(), nullable=False),
        _ts("last_seen_at"),
        sa.Column("signed_updates", sa.Boolean(), nullable=False),
        sa.Column("accepts_downgrade", sa.Boolean(), nullable=False),
        sa.Column("hardware_revision", sa.String(64), nullable=True),
        sa.Column("last_good_firmware", sa.String(50), nullable=True),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chargers"),
        sa.UniqueConstraint("charge_point_id", name="uq_chargers_charge_point_id"),
    )
    op.create_index("ix_chargers_site", "chargers", ["site"])
    op.create_index("ix_chargers_model", "chargers", ["model"])
    op.create_table(
        "charger_tags",
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        _fk("charger_id", "charger_tags", "chargers", "CASCADE"),
        sa.PrimaryKeyConstraint("charger_id", "tag", name="pk_charger_tags"),
    )
    op.create_index("ix_charger_tags_tag", "charger_tags", ["tag"])
    op.create_table(
        "charger_connectors",
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        _ts("updated_at", nullable=False),
        _fk("charger_id", "charger_connectors", "chargers", "CASCADE"),
        sa.PrimaryKeyConstraint("charger_id", "evse_id", "connector_id", name="pk_charger_connectors"),
    )
    op.create_table(
        "charger_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(64), nullable=True),
        _ts("started_at", nullable=False),
        sa.Column("meter_start_wh", sa.Float(), nullable=False),
        _ts("stopped_at"),
        sa.Column("meter_stop_wh", sa.Float(), nullable=True),
        sa.Column("stop_reason", sa.String(32), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=True),
        sa.Column("firmware_version", sa.String(50), nullable=True),
        _fk("charger_id", "charger_sessions", "chargers", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_charger_sessions"),
        sa.UniqueConstraint("charger_id", "transaction_id", name="uq_charger_sessions_charger_transaction"),
    )
    op.create_index("ix_charger_sessions_charger_started", "charger_sessions", ["charger_id", "started_at"])
    op.create_table(
        "charger_firmware",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor", sa.String(50), nullable=False),
        sa.Column("model", sa.String(50), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("certificate_serial", sa.String(64), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        _ts("published_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_charger_firmware"),
        sa.UniqueConstraint("sha256", name="uq_charger_firmware_sha256"),
        sa.UniqueConstraint("vendor", "model", "version", name="uq_charger_firmware_vendor_model_version"),
    )
    op.create_table(
        "charger_firmware_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("firmware_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_interval_s", sa.Integer(), nullable=False),
        sa.Column("download_failures", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("install_at"),
        sa.Column("message", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("sent_at"),
        sa.Column("response", sa.String(32), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("last_status", sa.String(32), nullable=True),
        _ts("last_status_at"),
        _ts("finished_at"),
        sa.Column("reason", sa.String(512), nullable=True),
        _fk("charger_id", "charger_firmware_requests", "chargers", "CASCADE"),
        _fk("firmware_id", "charger_firmware_requests", "charger_firmware", "RESTRICT"),
        _fk("campaign_id", "charger_firmware_requests", "campaigns", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_charger_firmware_requests"),
    )
    op.create_index(
        "ix_charger_firmware_requests_charger",
        "charger_firmware_requests",
        ["charger_id", "created_at"],
    )
    op.create_table(
        "charger_firmware_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        _ts("received_at", nullable=False),
        _fk("charger_id", "charger_firmware_steps", "chargers", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_charger_firmware_steps"),
    )
    op.create_index(
        "ix_charger_firmware_steps_charger_at", "charger_firmware_steps", ["charger_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_table("charger_firmware_steps")
    op.drop_table("charger_firmware_requests")
    op.drop_table("charger_firmware")
    op.drop_table("charger_sessions")
    op.drop_table("charger_connectors")
    op.drop_table("charger_tags")
    op.drop_table("chargers")
