"""Property-based fuzzing of the whole API from its own OpenAPI document, with schemathesis.

Runs against `tourapi serve` (a separate process) on both storage set-ups, over every operation of
the document except the endless SSE stream. Requirements: no 5xx, every response conforms to the
documented schema, status codes and content types, and every 4xx/5xx is problem+json
(tests/schemathesis_hooks.py). Three calls in four go out as the admin, visitor endpoints with a real
visitor session, and with path ids that exist (see the hooks), so requests get past 401/404; the
fourth goes out as generated.

The time budget per set-up is TOURAPI_FUZZ_SECONDS (default 80: about 3.5 minutes for both set-ups,
server start included); the seed is fixed, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from pathlib import Path

import httpx
from conftest import SECRET

from tourapi.bootstrap import demo_password

FUZZ_SECONDS = os.environ.get("TOURAPI_FUZZ_SECONDS", "120")  # one worker: longer than with two
SEED = "20261128"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def _ids(payload: object) -> list[str]:
    """The ``id`` of every item of a list answer (bare list, ``items``, ``features``, ...)."""
    if isinstance(payload, dict):
        lists = [v for k, v in payload.items() if isinstance(v, list) and k != "links"]
        payload = lists[0] if lists else []
    return [str(item["id"]) for item in payload if isinstance(item, dict) and "id" in item][:5]


async def known_ids(http: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, list[str]]:
    async def ids(url: str) -> list[str]:
        response = await http.get(url, headers=admin)
        return _ids(response.json()) if response.status_code == 200 else []

    pois = await ids("/v1/pois")
    found = {
        "poi_id": pois,
        "feature_id": pois,
        "route_id": await ids("/v1/manage/routes"),
        "collection_id": await ids("/ogc/collections"),
        "anchor_id": [a for poi in pois for a in await ids(f"/v1/pois/{poi}/anchors")][:5],
        "checkpoint_id": [c for poi in pois for c in await ids(f"/v1/pois/{poi}/checkpoints")][:5],
    }
    return {name: values for name, values in found.items() if values}


async def test_schemathesis_finds_nothing(served: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=10) as http:
        login = await http.post(
            "/v1/auth/token", json={"username": "admin", "password": demo_password(SECRET, "admin")}
        )
        token = login.json()["access_token"]
        ids = await known_ids(http, {"Authorization": f"Bearer {token}"})
        started = (await http.post("/v1/sessions", json={"install_id": f"fuzz-{uuid.uuid4()}"})).json()
    assert {"poi_id", "route_id", "collection_id"} <= set(ids), ids
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{served}/schema/openapi.json",
        "--checks",
        f"{CHECKS},errors_are_problem_json",
        "--max-time",
        FUZZ_SECONDS,
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: two threads make Hypothesis parse lambda sources concurrently, and CPython 3.11's
        # ast.parse is not thread-safe ("AST constructor recursion depth mismatch", a crash of the tool).
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--exclude-path",
        "/v1/live/stream",
        "--suppress-health-check",
        "all",
        "--seed",
        SEED,
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "PYTHONPATH": str(Path.cwd()),
        "TOURAPI_FUZZ_ADMIN_TOKEN": token,
        "TOURAPI_FUZZ_IDS": json.dumps(ids),
        "TOURAPI_FUZZ_VISITOR": json.dumps({"session_id": started["session_id"], "token": started["token"]}),
    }
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await process.communicate()
    report = out.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(report)
    assert process.returncode == 0, report[-20000:]
    # Every operation of the document was exercised; only the stream is left out.
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected and tested, report[-3000:]
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) - 1, report[-3000:]
