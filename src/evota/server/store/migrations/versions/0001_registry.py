"""The fleet registry: vehicles, their ECUs and tags.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vehicles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("depot", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("climate_zone", sa.String(16), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("primary_serial", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("soc", sa.Float(), nullable=True),
        sa.Column("soh", sa.Float(), nullable=True),
        sa.Column("charging", sa.Boolean(), nullable=True),
        sa.Column("plugged_in", sa.Boolean(), nullable=True),
        sa.Column("gear", sa.String(1), nullable=True),
        sa.Column("ambient_c", sa.Float(), nullable=True),
        sa.Column("energy_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vehicles"),
        sa.UniqueConstraint("vin", name="uq_vehicles_vin"),
    )
    op.create_index("ix_vehicles_depot", "vehicles", ["depot"])
    op.create_index("ix_vehicles_region", "vehicles", ["region"])
    op.create_index("ix_vehicles_climate_zone", "vehicles", ["climate_zone"])
    op.create_table(
        "ecus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("ecu_type", sa.String(16), nullable=False),
        sa.Column("hardware_id", sa.String(64), nullable=False),
        sa.Column("installed_version", sa.String(64), nullable=True),
        sa.Column("installed_target", sa.String(512), nullable=True),
        sa.Column("pending_version", sa.String(64), nullable=True),
        sa.Column("public_key", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name="fk_ecus_vehicle_id_vehicles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ecus"),
        sa.UniqueConstraint("vehicle_id", "serial", name="uq_ecus_vehicle_serial"),
    )
    op.create_index("ix_ecus_hardware_id", "ecus", ["hardware_id"])
    op.create_table(
        "vehicle_tags",
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name="fk_vehicle_tags_vehicle_id_vehicles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("vehicle_id", "tag", name="pk_vehicle_tags"),
    )
    op.create_index("ix_vehicle_tags_tag", "vehicle_tags", ["tag"])


def downgrade() -> None:
    op.drop_table("vehicle_tags")
    op.drop_table("ecus")
    op.drop_table("vehicles")
