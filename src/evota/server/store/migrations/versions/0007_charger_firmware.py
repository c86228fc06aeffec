"""Charger firmware campaigns, their members, and charger certifications.

Firmware requests now belong to a charger campaign (they pointed at the vehicle campaigns'
table, which charger campaigns do not use): the foreign key is moved, in batch mode so that
SQLite rebuilds the table. A firmware step's status widens to 64 characters, for the
longest security event (InvalidFirmwareSigningCertificate).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_REQUESTS = "charger_firmware_requests"


def _ts(name: str, nullable: bool = True) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(column: str, table: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "charger_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("firmware_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("waves", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_wave", sa.Integer(), nullable=False),
        _ts("wave_started_at"),
        sa.Column("session_watermark", sa.Integer(), nullable=False),
        sa.Column("halt_reason", sa.String(512), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _fk("firmware_id", "charger_campaigns", "charger_firmware", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_charger_campaigns"),
        sa.UniqueConstraint("name", name="uq_charger_campaigns_name"),
    )
    op.create_table(
        "charger_campaign_members",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("charger_id", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("from_version", sa.String(50), nullable=True),
        sa.Column("rollback_version", sa.String(50), nullable=True),
        _ts("status_at", nullable=False),
        sa.Column("boots", sa.Integer(), nullable=False),
        _ts("updated_at", nullable=False),
        _fk("campaign_id", "charger_campaign_members", "charger_campaigns", "CASCADE"),
        _fk("charger_id", "charger_campaign_members", "chargers", "CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "charger_id", name="pk_charger_campaign_members"),
    )
    op.create_index(
        "ix_charger_campaign_members_status", "charger_campaign_members", ["campaign_id", "status"]
    )
    op.create_table(
        "charger_certifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capability", sa.String(64), nullable=False),
        sa.Column("vendor", sa.String(50), nullable=False),
        sa.Column("model", sa.String(50), nullable=False),
        sa.Column("versions", sa.String(128), nullable=False),
        sa.Column("note", sa.String(256), nullable=True),
        sa.Column("added_by", sa.String(64), nullable=False),
        _ts("added_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_charger_certifications"),
        sa.UniqueConstraint(
            "capability", "vendor", "model", "versions", name="uq_charger_certifications_capability_model"
        ),
    )
    op.create_index("ix_charger_certifications_capability", "charger_certifications", ["capability"])
    with op.batch_alter_table(_REQUESTS) as batch:
        batch.drop_constraint(f"fk_{_REQUESTS}_campaign_id_campaigns", type_="foreignkey")
        batch.create_foreign_key(
            f"fk_{_REQUESTS}_campaign_id_charger_campaigns",
            "charger_campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("charger_firmware_steps") as batch:
        batch.alter_column(
            "status", type_=sa.String(64), existing_type=sa.String(32), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("charger_firmware_steps") as batch:
        batch.alter_column(
            "status", type_=sa.String(32), existing_type=sa.String(64), existing_nullable=False
        )
    with op.batch_alter_table(_REQUESTS) as batch:
        batch.drop_constraint(f"fk_{_REQUESTS}_campaign_id_charger_campaigns", type_="foreignkey")
        batch.create_foreign_key(
            f"fk_{_REQUESTS}_campaign_id_campaigns", "campaigns", ["campaign_id"], ["id"], ondelete="SET NULL"
        )
    op.drop_table("charger_certifications")
    op.drop_table("charger_campaign_members")
    op.drop_table("charger_campaigns")
