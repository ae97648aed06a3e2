"""In-memory geofence index: answers "which geofences contain this point" without the database.

Each worker process holds one immutable ``GeofenceIndex`` built from the live
(non-deleted) POIs. It is rebuilt off the event loop when the catalogue's
change sequence moves (see ``IndexHolder``), and swapped in atomically.

For hysteresis the index also keeps every fence widened by a margin in metres:
a visitor enters when a ping is inside the fence itself and leaves only when a
ping is outside the widened fence, so GPS jitter at the boundary cannot flap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from tourapi.geo.geometry import from_local_metric, haversine_many, local_metric


@dataclass(frozen=True, slots=True)
class FenceSource:
    poi_id: str
    geofence: Any  # Shapely (Multi)Polygon, WGS-84
    opening_hours: str | None
    capacity: int
    dwell_threshold_s: int


@dataclass(frozen=True, slots=True)
class Circle:
    poi_id: str
    lon: float
    lat: float
    radius_m: float
    distance_m: float


class GeofenceIndex:
    """Immutable; build with ``GeofenceIndex.build`` (CPU-heavy: call it in a worker thread)."""

    def __init__(
        self,
        version: int,
        margin_m: float,
        sources: list[FenceSource],
        fences: np.ndarray,
        outer: np.ndarray,
        widths_m: np.ndarray,
        circles: np.ndarray,
    ) -> None:
        self.version = version
        self.margin_m = margin_m
        self.sources = sources
        self.ids = [s.poi_id for s in sources]
        self.position = {poi_id: i for i, poi_id in enumerate(self.ids)}
        self.fences = fences
        self.outer = outer
        self.widths_m = widths_m
        self.circles = circles  # columns: lon, lat, radius_m
        self._fence_tree = STRtree(fences)
        self._outer_tree = STRtree(outer)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, sources: Iterable[FenceSource], version: int, margin_m: float) -> GeofenceIndex:
        items = sorted(sources, key=lambda s: s.poi_id)
        if not items:
            empty = np.array([], dtype=object)
            return cls(version, margin_m, [], empty, empty, np.zeros(0), np.zeros((0, 3)))
        fences = np.array([s.geofence for s in items], dtype=object)
        metric, lon0, lat0 = local_metric(fences)
        outer = (
            from_local_metric(shapely.buffer(metric, margin_m, quad_segs=4), lon0, lat0)
            if margin_m
            else fences
        )
        inscribed = shapely.maximum_inscribed_circle(metric, 0.5)
        widths = 2 * shapely.length(inscribed)
        enclosing = shapely.minimum_bounding_circle(metric)
        centres = from_local_metric(shapely.centroid(enclosing), lon0, lat0)
        circles = np.column_stack(
            (shapely.get_x(centres), shapely.get_y(centres), shapely.minimum_bounding_radius(metric))
        )
        shapely.prepare(fences)
        shapely.prepare(outer)
        return cls(version, margin_m, items, fences, outer, widths, circles)

    def containing(self, lon: float, lat: float) -> list[str]:
        """POI ids whose geofence contains the point (boundary counts as inside), sorted."""
        hits = self._fence_tree.query(shapely.Point(lon, lat), predicate="intersects")
        return sorted(self.ids[i] for i in hits.tolist())

    def classify(self, lons: np.ndarray, lats: np.ndarray) -> tuple[list[set[int]], list[set[int]]]:
        """For a batch of points: fence indices strictly inside, and inside the widened fence.

        One bounding-box query against the widened fences serves both answers (a fence lies inside its
        widened fence), then the exact tests on the (prepared) candidates with ``intersects_xy``, which
        needs no Point objects."""
        lons, lats = np.asarray(lons, float), np.asarray(lats, float)
        inside: list[set[int]] = [set() for _ in range(len(lons))]
        near: list[set[int]] = [set() for _ in range(len(lons))]
        if not len(self.ids) or not len(lons):
            return inside, near
        points, fences = self._outer_tree.query(shapely.points(lons, lats))
        lons, lats = lons[points], lats[points]
        in_outer = shapely.intersects_xy(self.outer[fences], lons, lats)
        points, fences, lons, lats = points[in_outer], fences[in_outer], lons[in_outer], lats[in_outer]
        in_fence = (
            shapely.intersects_xy(self.fences[fences], lons, lats)
            if self.margin_m
            else np.ones(len(points), bool)
        )
        for p, f, core in zip(points.tolist(), fences.tolist(), in_fence.tolist()):
            near[p].add(f)
            if core:
                inside[p].add(f)
        return inside, near

    def nearest_circles(self, lon: float, lat: float) -> list[Circle]:
        """Every fence as its minimum enclosing circle, nearest edge first."""
        if not len(self.ids):
            return []
        centre_d = haversine_many(self.circles[:, 0], self.circles[:, 1], lon, lat)
        edge_d = np.maximum(centre_d - self.circles[:, 2], 0.0)
        order = np.lexsort((np.arange(len(edge_d)), edge_d))
        return [
            Circle(
                self.ids[i],
                float(self.circles[i, 0]),
                float(self.circles[i, 1]),
                float(self.circles[i, 2]),
                float(edge_d[i]),
            )
            for i in order
        ]


def next_change(opening_hours: str | None, moment: datetime) -> datetime | None:
    from tourapi.timeutil import parse_schedule

    return parse_schedule(opening_hours).next_change(moment) if opening_hours else None


def circle_radius(radius_m: float, minimum_m: float) -> float:
    return float(max(math.ceil(radius_m), minimum_m))
