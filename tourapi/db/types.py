"""Column types that behave the same on PostgreSQL/PostGIS and on SQLite.

Geometries are Shapely objects in Python on both backends. On PostgreSQL they
are PostGIS ``geometry(<type>, 4326)`` columns (GeoAlchemy2, with a GiST
index); on SQLite, which cannot load SpatiaLite from a pip-installed Python,
they are WKB blobs and spatial predicates run in Shapely (see geo/backend.py).
"""

from __future__ import annotations

from typing import Any

import shapely
from geoalchemy2 import Geometry
from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SRID = 4326


class GeometryType(TypeDecorator[Any]):
    """A WGS-84 geometry column holding Shapely geometries."""

    impl = Geometry
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY", spatial_index: bool = True) -> None:
        super().__init__(geometry_type=geometry_type, srid=SRID, spatial_index=spatial_index)

    def load_dialect_impl(self, dialect: Dialect | None) -> TypeEngine[Any]:
        # GeoAlchemy2 calls this with dialect=None while inspecting tables.
        if dialect is None:
            return self.impl_instance
        if dialect.name == "sqlite":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(self.impl_instance)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return shapely.to_wkb(value)
        return from_shape(value, srid=SRID)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return shapely.from_wkb(value)
        return to_shape(value)
