"""All tables, one module each. Importing this package registers them on Base.metadata."""

from tourapi.db.models.alert import Alert
from tourapi.db.models.anchor import Anchor
from tourapi.db.models.checkin import Checkin
from tourapi.db.models.checkpoint import Checkpoint
from tourapi.db.models.media_file import MediaFile
from tourapi.db.models.occupancy_snapshot import OccupancySnapshot
from tourapi.db.models.poi import Poi
from tourapi.db.models.route import Route
from tourapi.db.models.route_leg import RouteLeg
from tourapi.db.models.route_stop import RouteStop
from tourapi.db.models.signing_key import SigningKey
from tourapi.db.models.sync_counter import SyncCounter
from tourapi.db.models.user import User
from tourapi.db.models.user_venue import UserVenue

__all__ = [
    "Alert",
    "Anchor",
    "Checkin",
    "Checkpoint",
    "MediaFile",
    "OccupancySnapshot",
    "Poi",
    "Route",
    "RouteLeg",
    "RouteStop",
    "SigningKey",
    "SyncCounter",
    "User",
    "UserVenue",
]
