"""catalogue, accounts and keys

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_geospatial_table(
        "pois",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("name", postgresql.JSONB(), nullable=False),
        sa.Column("description", postgresql.JSONB(), nullable=False),
        sa.Column("location", geoalchemy2.Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column(
            "geofence", geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
        ),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("fence_min_lon", sa.Float(), nullable=False),
        sa.Column("fence_min_lat", sa.Float(), nullable=False),
        sa.Column("fence_max_lon", sa.Float(), nullable=False),
        sa.Column("fence_max_lat", sa.Float(), nullable=False),
        sa.Column("opening_hours", sa.String(length=1000), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("dwell_threshold_s", sa.Integer(), nullable=False),
        sa.Column("interest", sa.Float(), nullable=False),
        sa.Column("visit_minutes", sa.Integer(), nullable=False),
        sa.Column("tags", postgresql.JSONB(), nullable=False),
        sa.Column("media", postgresql.JSONB(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pois")),
    )
    # Defence in depth: the API validates with Shapely first and answers 422 with the reason.
    op.create_check_constraint(
        "geofence_is_valid_area",
        "pois",
        "ST_IsValid(geofence) AND NOT ST_IsEmpty(geofence) AND GeometryType(geofence) IN ('POLYGON', 'MULTIPOLYGON')",
    )
    op.create_check_constraint(
        "location_in_range",
        "pois",
        "ST_X(location) BETWEEN -180 AND 180 AND ST_Y(location) BETWEEN -90 AND 90",
    )
    op.create_geospatial_index(
        "idx_pois_geofence", "pois", ["geofence"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_geospatial_index(
        "idx_pois_location", "pois", ["location"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_pois_category"), "pois", ["category"], unique=False)
    op.create_index(op.f("ix_pois_fence_min_lat"), "pois", ["fence_min_lat"], unique=False)
    op.create_index(op.f("ix_pois_lat"), "pois", ["lat"], unique=False)
    op.create_index(op.f("ix_pois_sync_seq"), "pois", ["sync_seq"], unique=False)
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(op.f("ix_signing_keys_purpose"), "signing_keys", ["purpose"], unique=False)
    op.create_table(
        "sync_counters",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("purged_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_counters")),
    )
    op.execute("INSERT INTO sync_counters (name, value, purged_through) VALUES ('catalog', 0, 0)")
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "user_venues",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("poi_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["poi_id"], ["pois.id"], name=op.f("fk_user_venues_poi_id_pois")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_venues_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "poi_id", name=op.f("pk_user_venues")),
    )


def downgrade() -> None:
    op.drop_table("user_venues")
    op.drop_table("users")
    op.drop_table("sync_counters")
    op.drop_index(op.f("ix_signing_keys_purpose"), table_name="signing_keys")
    op.drop_table("signing_keys")
    op.drop_index(op.f("ix_pois_sync_seq"), table_name="pois")
    op.drop_index(op.f("ix_pois_lat"), table_name="pois")
    op.drop_index(op.f("ix_pois_fence_min_lat"), table_name="pois")
    op.drop_index(op.f("ix_pois_category"), table_name="pois")
    op.drop_geospatial_index(
        "idx_pois_location", table_name="pois", postgresql_using="gist", column_name="location"
    )
    op.drop_geospatial_index(
        "idx_pois_geofence", table_name="pois", postgresql_using="gist", column_name="geofence"
    )
    op.drop_geospatial_table("pois")
