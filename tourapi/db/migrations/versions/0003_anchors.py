"""AR anchors

Revision ID: 0003_anchors
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_anchors"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table(
        "anchors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        # No foreign key to routes on purpose: that table lives in another migration branch.
        sa.Column("route_id", sa.String(length=64), nullable=True),
        sa.Column("route_stop_index", sa.Integer(), nullable=True),
        sa.Column("position", geoalchemy2.Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("h", sa.Float(), nullable=False),
        sa.Column("qx", sa.Float(), nullable=False),
        sa.Column("qy", sa.Float(), nullable=False),
        sa.Column("qz", sa.Float(), nullable=False),
        sa.Column("qw", sa.Float(), nullable=False),
        sa.Column("altitude_mode", sa.String(length=16), nullable=False),
        sa.Column("accuracy", postgresql.JSONB(), nullable=True),
        sa.Column("assets", postgresql.JSONB(), nullable=False),
        sa.Column("scale", sa.Float(), nullable=False),
        sa.Column("caption", postgresql.JSONB(), nullable=False),
        sa.Column("narration", postgresql.JSONB(), nullable=True),
        sa.Column("schedule", sa.String(length=1000), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("localization", postgresql.JSONB(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_anchors_poi_id_pois")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchors")),
    )
    # Defence in depth: the API validates first and answers 422 naming the field.
    op.create_check_constraint(
        "position_in_range",
        "anchors",
        "ST_X(position) BETWEEN -180 AND 180 AND ST_Y(position) BETWEEN -90 AND 90 "
        "AND h BETWEEN -500 AND 9000",
    )
    op.create_check_constraint(
        "altitude_mode_known", "anchors", "altitude_mode IN ('ellipsoid', 'terrain', 'rooftop')"
    )
    op.create_check_constraint(
        "quaternion_is_unit", "anchors", "abs(qx * qx + qy * qy + qz * qz + qw * qw - 1) < 1e-6"
    )
    op.create_geospatial_index(
        "idx_anchors_position",
        "anchors",
        ["position"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_anchors_lat"), "anchors", ["lat"], unique=False)
    op.create_index(op.f("ix_anchors_poi_id"), "anchors", ["poi_id"], unique=False)
    op.create_index(op.f("ix_anchors_route_id"), "anchors", ["route_id"], unique=False)
    op.create_index(op.f("ix_anchors_sync_seq"), "anchors", ["sync_seq"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_anchors_sync_seq"), table_name="anchors")
    op.drop_index(op.f("ix_anchors_route_id"), table_name="anchors")
    op.drop_index(op.f("ix_anchors_poi_id"), table_name="anchors")
    op.drop_index(op.f("ix_anchors_lat"), table_name="anchors")
    op.drop_geospatial_index(
        "idx_anchors_position", table_name="anchors", postgresql_using="gist", column_name="position"
    )
    op.drop_geospatial_table("anchors")
