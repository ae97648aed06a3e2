"""All tables, one module each. Importing this package registers them on Base.metadata."""

from tourapi.db.models.poi import Poi
from tourapi.db.models.signing_key import SigningKey
from tourapi.db.models.sync_counter import SyncCounter
from tourapi.db.models.user import User
from tourapi.db.models.user_venue import UserVenue

__all__ = ["Poi", "SigningKey", "SyncCounter", "User", "UserVenue"]
