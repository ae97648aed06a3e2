"""Request bodies for AR anchor writes. Responses are plain dicts built in services.py.

Pose numbers (``geopose.position.*``, ``geopose.quaternion.*``) carry no msgspec range
constraints on purpose: the service checks them (finite, in range, unit quaternion) and answers
422 with the exact field, e.g. ``geopose.position.h``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from tourapi.domain.pois.schemas import Sha256, Slug, Texts
from tourapi.geo.crs import Crs

AltitudeMode = Literal["ellipsoid", "terrain", "rooftop"]
ALTITUDE_MODES: tuple[str, ...] = AltitudeMode.__args__  # type: ignore[attr-defined]
MAX_ASSET_BYTES = 500_000_000  # a detailed scene model for a whole garden stays far below this
MAX_VISIBILITY_RADIUS_M = 2000.0
MediaType = Annotated[
    str,
    Meta(
        pattern=r"^(model/gltf-binary|model/vnd\.usdz\+zip|image/[a-z0-9.+-]+|audio/[a-z0-9.+-]+)$",
        description="model/gltf-binary, model/vnd.usdz+zip, image/* or audio/*",
    ),
]
ProviderName = Annotated[
    str, Meta(pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$", description="e.g. easyar, sensetime")
]


class Position(Struct, forbid_unknown_fields=True):
    """WGS-84 (or the request ``crs``) latitude and longitude in degrees; h in metres."""

    lat: float
    lon: float
    h: Annotated[float, Meta(description="metres, -500..9000; meaning set by altitude_mode")]


class Quaternion(Struct, forbid_unknown_fields=True):
    """Scalar-last unit quaternion, body frame to East-North-Up."""

    x: float
    y: float
    z: float
    w: float


class GeoPose(Struct, forbid_unknown_fields=True):
    """OGC GeoPose 1.0 Basic-Quaternion."""

    position: Position
    quaternion: Quaternion


class Accuracy(Struct, forbid_unknown_fields=True, omit_defaults=True):
    horizontal_m: Annotated[float, Meta(gt=0, le=1000)] | None = None
    vertical_m: Annotated[float, Meta(gt=0, le=1000)] | None = None
    heading_deg: Annotated[float, Meta(ge=0, le=180)] | None = None


class Asset(Struct, forbid_unknown_fields=True, omit_defaults=True):
    uri: Annotated[str, Meta(max_length=2000, description="https://... or /media/<sha256> served by us")]
    media_type: MediaType
    sha256: Sha256
    bytes: Annotated[int, Meta(ge=1, le=MAX_ASSET_BYTES)]
    lod: Annotated[int, Meta(ge=0, le=8, description="level of detail, 0 = full")] | None = None
    platform: Literal["android", "ios"] | None = None


class RouteStop(Struct, forbid_unknown_fields=True):
    route_id: Slug
    stop_index: Annotated[int, Meta(ge=0, le=999, description="0-based position of the stop")]


class Visibility(Struct, forbid_unknown_fields=True):
    schedule: Annotated[str, Meta(max_length=1000, description="OSM opening_hours, Asia/Shanghai")]
    radius_m: Annotated[float, Meta(gt=0, le=MAX_VISIBILITY_RADIUS_M)]


class GeospatialMethod(Struct, tag="geospatial", tag_field="method", forbid_unknown_fields=True):
    """The platform geospatial API (ARCore Geospatial, ARKit geo tracking)."""


class ImageMethod(Struct, tag="image", tag_field="method", forbid_unknown_fields=True, omit_defaults=True):
    """An image marker: the content is placed relative to the detected image."""

    marker: Asset
    physical_width_m: Annotated[float, Meta(gt=0, le=20)]
    marker_geopose: GeoPose | None = None  # where the printed marker is; absent: at the anchor


class VpsMethod(Struct, tag="vps", tag_field="method", forbid_unknown_fields=True):
    provider: ProviderName
    map_id: Annotated[str, Meta(min_length=1, max_length=200, description="provider map or block id")]


class GpsMethod(Struct, tag="gps", tag_field="method", forbid_unknown_fields=True, omit_defaults=True):
    """GPS position plus compass heading, with the error the scene tolerates."""

    error_m: Annotated[float, Meta(gt=0, le=500)]
    heading_error_deg: Annotated[float, Meta(gt=0, le=180)] | None = None


Localization = GeospatialMethod | ImageMethod | VpsMethod | GpsMethod


class AnchorWrite(Struct, forbid_unknown_fields=True):
    """Create or replace an anchor. Positions are in ``crs`` (default wgs84) and stored as WGS-84."""

    poi_id: Slug
    geopose: GeoPose
    altitude_mode: AltitudeMode
    assets: Annotated[list[Asset], Meta(min_length=1, max_length=20)]
    caption: Texts
    visibility: Visibility
    localization: Annotated[list[Localization], Meta(min_length=1, max_length=8)]
    accuracy: Accuracy | None = None
    scale: Annotated[float, Meta(gt=0, le=1000)] = 1.0
    narration: Asset | None = None
    route_stop: RouteStop | None = None
    crs: Crs = Crs.WGS84


class AnchorCreate(AnchorWrite, forbid_unknown_fields=True):
    id: Slug = ""


class AnchorPatch(Struct, forbid_unknown_fields=True):
    """Change some fields; absent fields stay as they are (nested objects are replaced whole)."""

    poi_id: Slug | UnsetType = UNSET
    geopose: GeoPose | UnsetType = UNSET
    altitude_mode: AltitudeMode | UnsetType = UNSET
    assets: Annotated[list[Asset], Meta(min_length=1, max_length=20)] | UnsetType = UNSET
    caption: Texts | UnsetType = UNSET
    visibility: Visibility | UnsetType = UNSET
    localization: Annotated[list[Localization], Meta(min_length=1, max_length=8)] | UnsetType = UNSET
    accuracy: Accuracy | UnsetType | None = UNSET
    scale: Annotated[float, Meta(gt=0, le=1000)] | UnsetType = UNSET
    narration: Asset | UnsetType | None = UNSET
    route_stop: RouteStop | UnsetType | None = UNSET
    crs: Crs = Crs.WGS84
