"""Devices and operators: provisioning, manifest counters, outbox flag, consent, API tokens,
device step reports and telemetry.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vehicles", sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("vehicles", sa.Column("manifest_counter", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("ecus", sa.Column("report_counter", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "campaign_vehicles",
        sa.Column("assigned", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("campaign_vehicles", sa.Column("consent_by", sa.String(64), nullable=True))
    op.add_column("campaign_vehicles", sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "user_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_user_tokens"),
    )
    op.create_index("ix_user_tokens_user_id", "user_tokens", ["user_id"])
    op.create_table(
        "device_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicles.id"],
            name="fk_device_tokens_vehicle_id_vehicles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_device_tokens"),
    )
    op.create_index("ix_device_tokens_vehicle_id", "device_tokens", ["vehicle_id"])
    op.create_table(
        "device_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("release", sa.String(64), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicles.id"],
            name="fk_device_steps_vehicle_id_vehicles",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_device_steps_campaign_id_campaigns",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_device_steps"),
    )
    op.create_index("ix_device_steps_vehicle_at", "device_steps", ["vehicle_id", "received_at"])
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kpi", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["vehicles.id"],
            name="fk_telemetry_vehicle_id_vehicles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry"),
    )
    op.create_index("ix_telemetry_vehicle_at", "telemetry", ["vehicle_id", "at"])
    op.create_index("ix_telemetry_kpi_at", "telemetry", ["kpi", "at"])


def downgrade() -> None:
    op.drop_table("telemetry")
    op.drop_table("device_steps")
    op.drop_table("device_tokens")
    op.drop_table("user_tokens")
    op.drop_table("users")
    with op.batch_alter_table("campaign_vehicles") as batch:
        batch.drop_column("consent_at")
        batch.drop_column("consent_by")
        batch.drop_column("assigned")
    with op.batch_alter_table("ecus") as batch:
        batch.drop_column("report_counter")
    with op.batch_alter_table("vehicles") as batch:
        batch.drop_column("manifest_counter")
        batch.drop_column("provisioned_at")
