"""live state: five-minute occupancy snapshots and crowd alerts

Revision ID: 0004_live
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_live"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "occupancy_snapshots",
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occupancy", sa.Integer(), nullable=False),
        sa.Column("entries_tonight", sa.Integer(), nullable=False),
        sa.Column("checkins_tonight", sa.Integer(), nullable=False),
        sa.Column("unique_tonight", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_occupancy_snapshots_poi_id_pois")),
        sa.PrimaryKeyConstraint("poi_id", "bucket", name=op.f("pk_occupancy_snapshots")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("occupancy", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_alerts_poi_id_pois")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_poi_id"), "alerts", ["poi_id"], unique=False)
    op.create_index(op.f("ix_alerts_raised_at"), "alerts", ["raised_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_raised_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_poi_id"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("occupancy_snapshots")
