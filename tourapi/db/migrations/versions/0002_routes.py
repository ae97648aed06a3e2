"""night routes and the media store

Revision ID: 0002_routes
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_routes"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_media_files")),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", postgresql.JSONB(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=False),
        sa.Column("theme", sa.String(length=32), nullable=False),
        sa.Column("difficulty", sa.String(length=16), nullable=False),
        sa.Column("accessibility", postgresql.JSONB(), nullable=False),
        sa.Column("cover", postgresql.JSONB(), nullable=True),
        sa.Column("schedule", sa.String(length=1000), nullable=False),
        sa.Column("tags", postgresql.JSONB(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
    )
    op.create_index(op.f("ix_routes_status"), "routes", ["status"], unique=False)
    op.create_index(op.f("ix_routes_sync_seq"), "routes", ["sync_seq"], unique=False)
    op.create_table(
        "route_stops",
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.Column("dwell_minutes", sa.Integer(), nullable=False),
        sa.Column("events", postgresql.JSONB(), nullable=False),
        sa.Column("note", postgresql.JSONB(), nullable=False),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_route_stops_poi_id_pois")),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_route_stops_route_id_routes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("route_id", "position", name=op.f("pk_route_stops")),
    )
    op.create_index(op.f("ix_route_stops_poi_id"), "route_stops", ["poi_id"], unique=False)
    op.create_geospatial_table(
        "route_legs",
        sa.Column("route_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("path", geoalchemy2.Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("note", postgresql.JSONB(), nullable=False),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_route_legs_route_id_routes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("route_id", "position", name=op.f("pk_route_legs")),
    )
    # Defence in depth: the API validates with Shapely first and answers 422 naming the leg.
    op.create_check_constraint(
        "path_is_valid_line",
        "route_legs",
        "path IS NULL OR (ST_IsValid(path) AND NOT ST_IsEmpty(path) AND ST_NPoints(path) >= 2)",
    )


def downgrade() -> None:
    op.drop_geospatial_table("route_legs")
    op.drop_index(op.f("ix_route_stops_poi_id"), table_name="route_stops")
    op.drop_table("route_stops")
    op.drop_index(op.f("ix_routes_sync_seq"), table_name="routes")
    op.drop_index(op.f("ix_routes_status"), table_name="routes")
    op.drop_table("routes")
    op.drop_table("media_files")
