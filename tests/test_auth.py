"""Auth: every endpoint x every kind of caller, generated from the route table, and token hygiene."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from tourapi.security.policies import Policy
from tourapi.security.tokens import AUDIENCE, OPENAPI_PATH

OWN_VENUE, OTHER_VENUE = "master-of-the-nets-garden", "lion-grove-garden"
STREAMING = {"/v1/live/stream"}  # an allowed request would stream forever; only refusals are checked
CALLERS = ("anonymous", "visitor", "other-visitor", "staff", "staff-other-venue", "operator", "admin")


def _all_routes(app: Any) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        for method, handler in getattr(route, "route_handler_map", {}).items():
            if method in ("HEAD", "OPTIONS"):
                continue
            found.append((route.path, method, handler[0] if isinstance(handler, tuple) else handler))
    return found


def expected_refusal(policy: Policy, caller: str, venue_scoped: bool, session_scoped: bool) -> int | None:
    """401/403 that the caller must get, or None when the guard must let it through."""
    if policy is Policy.PUBLIC:
        return None
    if caller == "anonymous":
        return 401
    if policy is Policy.VISITOR:
        if caller == "other-visitor":
            return 403 if session_scoped else None  # a body-named session is checked by the service
        return None if caller == "visitor" else 403
    if caller in ("visitor", "other-visitor"):
        return 403
    allowed = {
        Policy.VENUE_READ: {"staff", "staff-other-venue", "operator", "admin"},
        Policy.VENUE_WRITE: {"staff", "staff-other-venue", "admin"},
        Policy.EDITOR: {"staff", "staff-other-venue", "operator", "admin"},
        Policy.OPERATOR: {"operator", "admin"},
        Policy.ADMIN: {"admin"},
    }[policy]
    if caller not in allowed:
        return 403
    if caller == "staff-other-venue" and venue_scoped:
        return 403
    return None


def routes(app: Any) -> list[tuple[str, str, Any]]:
    """Our routes; the OpenAPI document's own routes are public by the auth exclusion (tested below)."""
    return [r for r in _all_routes(app) if not r[0].startswith(OPENAPI_PATH)]


def test_every_route_declares_a_policy(app) -> None:
    missing = [f"{method} {path}" for path, method, handler in routes(app) if "policy" not in handler.opt]
    assert missing == [], f"routes without an access policy: {missing}"


async def test_openapi_document_is_public(client) -> None:
    response = await client.get(f"{OPENAPI_PATH}/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


async def test_auth_matrix(client, app, auth) -> None:
    started = await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})
    other = await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})
    own_sid, own_token = started.json()["session_id"], started.json()["token"]
    other_token = other.json()["token"]
    headers = {
        "anonymous": {},
        "visitor": {"Authorization": f"Bearer {own_token}"},
        "other-visitor": {"Authorization": f"Bearer {other_token}"},
        "staff": await auth("staff-nets"),
        "staff-other-venue": await auth("staff-nets"),
        "operator": await auth("operator"),
        "admin": await auth("admin"),
    }
    failures = []
    checked = 0
    # Mutating calls by the admin last, so earlier callers still find the resources.
    for caller in CALLERS:
        for path, method, handler in routes(app):
            policy: Policy = handler.opt["policy"]
            venue_param = handler.opt.get("venue_param")
            refusal = expected_refusal(
                policy, caller, venue_scoped=venue_param is not None, session_scoped="{session_id" in path
            )
            if path in STREAMING and refusal is None:
                continue
            url = fill(path, own_sid, OTHER_VENUE if caller == "staff-other-venue" else OWN_VENUE)
            body = {} if method in ("POST", "PUT", "PATCH") else None
            response = await client.request(method, url, json=body, headers=headers[caller])
            checked += 1
            got = response.status_code
            if refusal is None and got in (401, 403):
                failures.append(f"{caller} {method} {url}: got {got}, expected to pass the guard ({policy})")
            elif refusal is not None and got != refusal:
                failures.append(f"{caller} {method} {url}: got {got}, expected {refusal} ({policy})")
            if got in (401, 403):
                assert response.headers["content-type"].startswith("application/problem+json")
    assert failures == [], "\n".join(failures)
    assert checked > 100


def fill(path: str, session_id: str, venue: str) -> str:
    samples = {
        "session_id": session_id,
        "poi_id": venue,
        "alert_id": "1",
        "collection_id": "pois",
        "feature_id": OWN_VENUE,
    }

    def value(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        if name in samples:
            return samples[name]
        return "1" if kind == "int" else "no-such-thing"

    return re.sub(r"\{(\w+):(\w+)\}", value, path)


# ---- token hygiene ---------------------------------------------------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": "user:1",
        "typ": "access",
        "role": "admin",
        "name": "admin",
        "venues": [],
        "iss": "tourapi",
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


async def _status(client, token: str) -> int:
    return (await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_valid_token_reaches_me(client, runtime) -> None:
    kid, key = runtime.keyring.signer("jwt")
    token = jwt.encode(_claims(), key, algorithm="HS256", headers={"kid": kid})
    assert await _status(client, token) == 200


async def test_expired_token_is_refused(client, runtime) -> None:
    kid, key = runtime.keyring.signer("jwt")
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(_claims(exp=int(past.timestamp())), key, algorithm="HS256", headers={"kid": kid})
    response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["type"] == "urn:tourapi:problem:unauthorized"


async def test_forged_and_altered_tokens_are_refused(client, runtime) -> None:
    kid, key = runtime.keyring.signer("jwt")
    forged = jwt.encode(_claims(), b"not-the-server-key" * 2, algorithm="HS256", headers={"kid": kid})
    assert await _status(client, forged) == 401
    genuine = jwt.encode(_claims(role="staff"), key, algorithm="HS256", headers={"kid": kid})
    head, payload, signature = genuine.split(".")
    raised = base64.urlsafe_b64encode(json.dumps(_claims(role="admin")).encode()).rstrip(b"=").decode()
    assert await _status(client, f"{head}.{raised}.{signature}") == 401


@pytest.mark.parametrize("alg", ["none", "HS512", "HS384"])
# The forged tokens use our 32-byte HS256 key with a longer hash, which PyJWT warns about: that is the attack.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_algorithm_confusion_is_refused(client, runtime, alg: str) -> None:
    kid, key = runtime.keyring.signer("jwt")
    token = jwt.encode(_claims(), None if alg == "none" else key, algorithm=alg, headers={"kid": kid})
    assert await _status(client, token) == 401


async def test_unknown_and_retired_keys_are_refused(client, runtime) -> None:
    from tourapi.security.keys import retire, rotate

    old_kid, old_key = runtime.keyring.signer("jwt")
    unknown = jwt.encode(_claims(), old_key, algorithm="HS256", headers={"kid": "beef"})
    assert await _status(client, unknown) == 401
    old_token = jwt.encode(_claims(), old_key, algorithm="HS256", headers={"kid": old_kid})
    async with runtime.sessionmaker() as session:
        new_kid = await rotate(session, "jwt")
        await session.commit()
    await runtime.reload_keys()
    assert runtime.keyring.signer("jwt")[0] == new_kid
    assert await _status(client, old_token) == 200, "rotation keeps older keys valid"
    async with runtime.sessionmaker() as session:
        await retire(session, old_kid)
        await session.commit()
    await runtime.reload_keys()
    assert await _status(client, old_token) == 401
    new_token = jwt.encode(
        _claims(), runtime.keyring.material("jwt", new_kid), algorithm="HS256", headers={"kid": new_kid}
    )
    assert await _status(client, new_token) == 200


async def test_login_failures_do_not_say_which_part_was_wrong(client) -> None:
    wrong_password = await client.post(
        "/v1/auth/token", json={"username": "admin", "password": "nope-nope-nope"}
    )
    unknown_user = await client.post(
        "/v1/auth/token", json={"username": "ghost", "password": "nope-nope-nope"}
    )
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json()["detail"] == unknown_user.json()["detail"]


async def test_staff_token_lists_its_venues(client, auth) -> None:
    me = (await client.get("/v1/auth/me", headers=await auth("staff-nets"))).json()
    assert me["role"] == "staff" and OWN_VENUE in me["venues"]
