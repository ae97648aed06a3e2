"""Property-based fuzzing of the whole API from its own OpenAPI document, with schemathesis.

Runs against `tourapi serve` (a separate process) on both storage set-ups. Requirements: no 5xx,
every response conforms to the documented schema and status codes, every 4xx/5xx is problem+json.
The time budget per set-up is TOURAPI_FUZZ_SECONDS (default 120).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from conftest import SECRET
from tourapi.bootstrap import demo_password

FUZZ_SECONDS = os.environ.get("TOURAPI_FUZZ_SECONDS", "120")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def test_schemathesis_finds_nothing(served: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=served) as http:
        login = await http.post("/v1/auth/token",
                                json={"username": "admin", "password": demo_password(SECRET, "admin")})
        token = login.json()["access_token"]
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{served}/schema/openapi.json",
        "--checks", f"{CHECKS},errors_are_problem_json",
        "--header", f"Authorization: Bearer {token}",
        "--max-time", FUZZ_SECONDS,
        "--phases", "examples,coverage,fuzzing",
        "--workers", "2",
        "--request-timeout", "10",
        "--exclude-path", "/v1/live/stream",
        "--suppress-health-check", "all",
        "--seed", "20261128",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(Path.cwd())}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await process.communicate()
    report = out.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(report)
    assert process.returncode == 0, report[-20000:]
