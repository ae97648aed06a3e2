"""JWTs via Litestar's JWTAuth, signed with rotating kids from the keyring.

Two token types share the middleware: account access tokens (``typ=access``)
and visitor session tokens (``typ=session``, scoped to one live session).
Only HS256 is accepted, so ``alg=none`` and RS/HS confusion are refused by PyJWT.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from tourapi.security.keys import Keyring, UnknownKey
from tourapi.security.principal import Principal, Role

ALGORITHM = "HS256"
OPENAPI_PATH = "/schema"
AUDIENCE = "tourapi"
# Verified tokens by token string: phones send the same session token with every ping, and the
# signature and claims checks were ~14 % of a ping's CPU. The key is looked up on every hit, so a
# retired key still refuses its tokens at once; expiry is rechecked on every hit.
VERIFIED_CACHE_SIZE = 10_000


def make_token_class(keyring: Keyring) -> type[Token]:
    verified: dict[str, tuple[str | None, bytes, tuple[Any, ...], float, Token]] = {}

    class KeyedToken(Token):
        @classmethod
        def decode(  # type: ignore[override]
            cls,
            encoded_token: str,
            secret: str,
            algorithm: str,
            audience: Any = None,
            issuer: Any = None,
            require_claims: Any = None,
            verify_exp: bool = True,
            verify_nbf: bool = True,
            strict_audience: bool = False,
        ) -> Token:
            context = (
                repr(audience),
                repr(issuer),
                repr(require_claims),
                verify_exp,
                verify_nbf,
                strict_audience,
            )
            hit = verified.get(encoded_token)
            if hit is not None:
                kid, key, hit_context, expires, token = hit
                try:
                    still_valid = keyring.verifier("jwt", kid) == key  # a retired key refuses at once
                except UnknownKey:
                    still_valid = False
                if still_valid and hit_context == context and expires > time.time():
                    return token
            token = super().decode(
                encoded_token,
                secret,
                algorithm,
                audience=audience,
                issuer=issuer,
                require_claims=require_claims,
                verify_exp=verify_exp,
                verify_nbf=verify_nbf,
                strict_audience=strict_audience,
            )
            # Verified with the key of this kid (decode_payload accepts no other), so cache under it.
            kid = jwt.get_unverified_header(encoded_token).get("kid")
            try:
                key = keyring.verifier("jwt", kid)
            except UnknownKey:  # retired since the check a moment ago: valid for this request only
                return token
            if len(verified) >= VERIFIED_CACHE_SIZE:
                verified.clear()
            verified[encoded_token] = (kid, key, context, token.exp.timestamp(), token)
            return token

        @classmethod
        def decode_payload(
            cls,
            encoded_token: str,
            secret: str,
            algorithms: list[str],
            issuer: Any = None,
            audience: Any = None,
            options: Any = None,
        ) -> Any:
            kid = jwt.get_unverified_header(encoded_token).get("kid")
            try:
                key = keyring.verifier("jwt", kid)
            except UnknownKey as exc:
                raise jwt.InvalidTokenError(str(exc)) from None
            return jwt.decode(
                encoded_token,
                key=key,
                algorithms=[ALGORITHM],
                issuer=issuer,
                audience=audience,
                options=options,
            )

        def encode(self, secret: str, algorithm: str) -> str:
            kid, key = keyring.signer("jwt")
            payload = {k: v for k, v in asdict(self).items() if v is not None}
            payload.update(payload.pop("extras", {}))
            return jwt.encode(payload, key=key, algorithm=ALGORITHM, headers={"kid": kid})

    return KeyedToken


def principal_from_token(token: Token) -> Principal | None:
    extras = token.extras
    typ = extras.get("typ")
    if typ == "access":
        try:
            role = Role(extras["role"])
        except (KeyError, ValueError):
            return None
        if role is Role.VISITOR:
            return None
        return Principal(
            subject=token.sub,
            role=role,
            username=extras.get("name"),
            venues=frozenset(extras.get("venues", ())),
            scope=extras.get("scope"),
        )
    if typ == "session" and token.sub.startswith("session:"):
        return Principal(
            subject=token.sub,
            role=Role.VISITOR,
            session_id=token.sub.removeprefix("session:"),
            route_id=extras.get("route") or None,
            install_hash=extras.get("inst") or None,
        )
    return None


async def _retrieve_principal(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Principal | None:
    return principal_from_token(token)


def make_jwt_auth(keyring: Keyring, issuer: str, access_ttl: timedelta) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        retrieve_user_handler=_retrieve_principal,
        token_secret="unused: keys come from the keyring",
        token_cls=make_token_class(keyring),
        algorithm=ALGORITHM,
        default_token_expiration=access_ttl,
        accepted_issuers=[issuer],
        accepted_audiences=[AUDIENCE],
        require_claims=["exp", "sub", "typ"],
        exclude_opt_key="exclude_from_auth",
        exclude=[f"^{OPENAPI_PATH}(/|$)"],  # the OpenAPI document and its viewers are public
        openapi_security_scheme_name="BearerToken",
        description="Account access tokens from POST /v1/auth/token, or visitor session tokens from POST /v1/sessions.",
    )


def issue_token(
    auth: JWTAuth[Principal, Token], subject: str, ttl: timedelta, issuer: str, **claims: Any
) -> tuple[str, datetime]:
    expires = datetime.now(UTC) + ttl
    token = auth.token_cls(exp=expires, sub=subject, iss=issuer, aud=AUDIENCE, extras=claims)
    return token.encode(secret="", algorithm=ALGORITHM), expires
