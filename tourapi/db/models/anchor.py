from __future__ import annotations

from typing import Any

from advanced_alchemy.types import JsonB
from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, SyncedEntity
from tourapi.db.types import GeometryType


class Anchor(SyncedEntity, Base):
    """An AR anchor: a GeoPose (WGS-84 position + ENU scalar-last quaternion), content and visibility.

    The quaternion is stored normalised in four float columns (qx, qy, qz, qw). The position is a
    2D POINT (for PostGIS radius queries) plus plain lon/lat copies (the SQLite prefilter) and h.
    ``route_id``/``route_stop_index`` link to a route stop without a foreign key: the routes table
    lives in another migration branch.
    """

    __tablename__ = "anchors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), index=True)
    route_id: Mapped[str | None] = mapped_column(String(64), index=True)
    route_stop_index: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[Any] = mapped_column(GeometryType("POINT"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float, index=True)
    h: Mapped[float] = mapped_column(Float)
    qx: Mapped[float] = mapped_column(Float)
    qy: Mapped[float] = mapped_column(Float)
    qz: Mapped[float] = mapped_column(Float)
    qw: Mapped[float] = mapped_column(Float)
    altitude_mode: Mapped[str] = mapped_column(String(16))
    accuracy: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    assets: Mapped[list[dict[str, Any]]] = mapped_column(JsonB)
    scale: Mapped[float] = mapped_column(Float, default=1.0)
    caption: Mapped[dict[str, str]] = mapped_column(JsonB)
    narration: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    schedule: Mapped[str] = mapped_column(String(1000))
    radius_m: Mapped[float] = mapped_column(Float)
    localization: Mapped[list[dict[str, Any]]] = mapped_column(JsonB)
