"""Health gates and fleet rollback: a campaign's gate, its verdicts, each vehicle's way back.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("gate", sa.JSON(), nullable=True))
    op.add_column("campaign_vehicles", sa.Column("previous_targets", sa.JSON(), nullable=True))
    op.add_column("campaign_vehicles", sa.Column("updated_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "campaign_vehicles", sa.Column("rollback_ordered_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "campaign_vehicles",
        sa.Column("rollback_assigned", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("campaign_vehicles", sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True))
    # Check-ins look a vehicle's campaign rows up by vehicle (reconciliation, rollbacks).
    op.create_index("ix_campaign_vehicles_vehicle", "campaign_vehicles", ["vehicle_id"])
    op.create_table(
        "health_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("look", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_health_verdicts_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_health_verdicts"),
    )
    op.create_index("ix_health_verdicts_campaign_at", "health_verdicts", ["campaign_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_health_verdicts_campaign_at", table_name="health_verdicts")
    op.drop_table("health_verdicts")
    op.drop_index("ix_campaign_vehicles_vehicle", table_name="campaign_vehicles")
    for column in (
        "rolled_back_at",
        "rollback_assigned",
        "rollback_ordered_at",
        "updated_since",
        "previous_targets",
    ):
        op.drop_column("campaign_vehicles", column)
    op.drop_column("campaigns", "gate")
