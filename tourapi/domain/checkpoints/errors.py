"""Refusals of a scanned code or a check-in: each has its own problem type (slug), status and title.

They are ApiError instances, so the one exception table in tourapi/errors.py renders them as
problem+json; apps switch on ``type`` (``urn:tourapi:problem:<slug>``), people read ``detail``.
"""

from __future__ import annotations

from tourapi.errors import ApiError

REFUSALS: dict[str, tuple[int, str]] = {
    "invalid-token": (422, "Invalid check-in code"),
    "unknown-key": (422, "Unknown signing key"),
    "retired-key": (422, "Retired signing key"),
    "checkpoint-not-found": (404, "Checkpoint not found"),
    "checkpoint-inactive": (422, "Checkpoint no longer in use"),
    "checkpoint-revoked": (422, "Poster replaced"),
    "unknown-manual-code": (422, "Unknown manual code"),
    "session-mismatch": (403, "Wrong session"),
    "session-not-active": (409, "Session not active"),
    "implausible-scanned-at": (422, "Implausible scan time"),
    "wrong-venue": (422, "Wrong venue"),
    "position-required": (422, "Position required"),
    "position-too-inaccurate": (422, "Position too inaccurate"),
    "too-far": (422, "Too far from the venue"),
    "not-your-venue": (403, "Not your venue"),
}


class Refused(ApiError):
    def __init__(self, slug: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field, slug=slug)
        self.status, self.title = REFUSALS[slug]
