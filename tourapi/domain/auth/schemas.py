from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct


class TokenRequest(Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class TokenResponse(Struct):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class Me(Struct):
    subject: str
    role: str
    username: str | None
    venues: list[str]
