"""Custom schemathesis check, loaded with SCHEMATHESIS_HOOKS=tests.schemathesis_hooks."""

import schemathesis


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    """Every 4xx/5xx is an RFC 9457 problem+json that says what went wrong."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered with {content_type!r}, not application/problem+json")
    body = response.json()
    for member in ("type", "title", "status", "detail"):
        if member not in body:
            raise AssertionError(f"problem+json without {member!r}: {body}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} != HTTP status {response.status_code}")
    return None
