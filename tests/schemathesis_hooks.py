"""Schemathesis hooks, loaded with SCHEMATHESIS_HOOKS=tests.schemathesis_hooks (see tests/test_fuzz.py).

* ``errors_are_problem_json``: every 4xx/5xx is an RFC 9457 problem+json.
* ``before_call``: random path ids almost always answer 404 and a missing token 401, which stops the
  fuzzer at the door. On three calls in four, the call carries the admin's token
  (TOURAPI_FUZZ_ADMIN_TOKEN) and a path id is swapped for one that exists (TOURAPI_FUZZ_IDS, JSON:
  parameter -> ids); the visitor endpoints get a real visitor session and its token
  (TOURAPI_FUZZ_VISITOR, JSON), so the bodies of pings and check-ins are fuzzed past the guard. The
  fourth call goes out as generated (anonymous, random ids). DELETE keeps its random ids: deleting the
  fixtures early would send every later call back to 404.
"""

import itertools
import json
import os

import schemathesis

KNOWN_IDS: dict[str, list[str]] = json.loads(os.environ.get("TOURAPI_FUZZ_IDS", "{}"))
VISITOR: dict[str, str] = json.loads(os.environ.get("TOURAPI_FUZZ_VISITOR", "{}"))
ADMIN_TOKEN = os.environ.get("TOURAPI_FUZZ_ADMIN_TOKEN", "")
VISITOR_PATHS = ("/v1/sessions/{session_id}", "/v1/checkins")
_turn = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    turn = next(_turn)
    if turn % 4 == 3:
        return  # keep what was generated: unknown ids must answer 404 problem+json
    method = case.operation.method.upper()
    path = case.operation.path
    if VISITOR and path.startswith(VISITOR_PATHS) and method != "DELETE":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {VISITOR['token']}"}
        if case.path_parameters and "session_id" in case.path_parameters:
            case.path_parameters["session_id"] = VISITOR["session_id"]
        return
    if ADMIN_TOKEN:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
    if method == "DELETE" or not case.path_parameters:
        return
    for name in case.path_parameters:
        if KNOWN_IDS.get(name):
            case.path_parameters[name] = KNOWN_IDS[name][turn % len(KNOWN_IDS[name])]


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    """Every 4xx/5xx is an RFC 9457 problem+json that says what went wrong."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(
            f"{response.status_code} answered with {content_type!r}, not application/problem+json"
        )
    body = response.json()
    for member in ("type", "title", "status", "detail"):
        if member not in body:
            raise AssertionError(f"problem+json without {member!r}: {body}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} != HTTP status {response.status_code}")
    return
