"""check-ins: a partial index of the rows not yet counted, instead of an index of the counted flag

The repair job asks every 30 s for the oldest rows with ``NOT counted``: a handful of recent rows among
millions. A partial index holds just those; the old boolean index held every row.

Revision ID: 0006_checkins_uncounted
Revises: 0005_checkins
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_checkins_uncounted"
down_revision: str | None = "0005_checkins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY: check-ins keep being written while a large table is indexed. A concurrent build that
    # failed halfway leaves an invalid index and no version stamp, so a second run drops it first.
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_checkins_uncounted", table_name="checkins", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            "ix_checkins_uncounted",
            "checkins",
            ["id"],
            postgresql_where=sa.text("NOT counted"),
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_checkins_counted", table_name="checkins", postgresql_concurrently=True, if_exists=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_checkins_counted", "checkins", ["counted"], postgresql_concurrently=True)
        op.drop_index("ix_checkins_uncounted", table_name="checkins", postgresql_concurrently=True)
