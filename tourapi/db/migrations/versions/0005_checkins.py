"""QR check-ins: checkpoints (signed posters) and check-in records

Revision ID: 0005_checkins
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_checkins"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("label", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("manual_code", sa.String(length=8), nullable=False),
        sa.Column("require_proximity", sa.Boolean(), nullable=False),
        sa.Column("proximity_margin_m", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_checkpoints_poi_id_pois")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint("manual_code", name=op.f("uq_checkpoints_manual_code")),
        sa.UniqueConstraint("poi_id", "slug", name="uq_checkpoints_poi_id_slug"),
    )
    op.create_index(op.f("ix_checkpoints_poi_id"), "checkpoints", ["poi_id"], unique=False)
    # Defence in depth: the API validates first and answers 422 naming the field.
    op.create_check_constraint("version_positive", "checkpoints", "version >= 1")
    op.create_check_constraint(
        "proximity_margin_in_range", "checkpoints", "proximity_margin_m >= 0 AND proximity_margin_m <= 1000"
    )
    op.create_table(
        "checkins",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_version", sa.Integer(), nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("route_id", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"], ["checkpoints.id"], name=op.f("fk_checkins_checkpoint_id_checkpoints")
        ),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_checkins_poi_id_pois")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkins")),
        sa.UniqueConstraint(
            "session_id", "checkpoint_id", "night", name="uq_checkins_session_checkpoint_night"
        ),
        sa.UniqueConstraint("session_id", "idempotency_key", name="uq_checkins_session_idempotency_key"),
    )
    op.create_index(op.f("ix_checkins_checkpoint_id"), "checkins", ["checkpoint_id"], unique=False)
    op.create_index(op.f("ix_checkins_counted"), "checkins", ["counted"], unique=False)
    op.create_index(op.f("ix_checkins_night"), "checkins", ["night"], unique=False)
    op.create_index(op.f("ix_checkins_poi_id"), "checkins", ["poi_id"], unique=False)
    op.create_check_constraint("method_known", "checkins", "method IN ('qr', 'manual')")


def downgrade() -> None:
    op.drop_index(op.f("ix_checkins_poi_id"), table_name="checkins")
    op.drop_index(op.f("ix_checkins_night"), table_name="checkins")
    op.drop_index(op.f("ix_checkins_counted"), table_name="checkins")
    op.drop_index(op.f("ix_checkins_checkpoint_id"), table_name="checkins")
    op.drop_table("checkins")
    op.drop_index(op.f("ix_checkpoints_poi_id"), table_name="checkpoints")
    op.drop_table("checkpoints")
