"""Prometheus metrics: HTTP metrics with bounded labels, ping counters, and business gauges.

* HTTP (``tourapi_requests_total``, ``tourapi_request_duration_seconds``, ``tourapi_requests_in_progress``,
  ``tourapi_requests_error_total``): counted by tourapi.web.edge.EdgeMiddleware; the ``path`` label is
  the route template (``/v1/sessions/{session_id}/pings``), never a raw path. Requests for unknown
  paths are answered by the router before any middleware and are not counted, so label values are
  bounded by the number of routes. ``/metrics`` itself is excluded.
* Pings (``tourapi_pings_processed_total{result}``): counted in the request path by each worker
  process; in multiprocess mode (``tourapi serve --workers N``) /metrics adds up every worker's files.
* Business gauges: computed when /metrics is scraped, from the state every worker shares (Redis
  and the database), so any worker answers the same numbers however many workers there are.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from litestar import Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import func, select

from tourapi.db.models import Alert
from tourapi.domain.live import services as live_services
from tourapi.domain.sessions.schemas import PingResult
from tourapi.live.crowd import LEVELS
from tourapi.observability.multiproc import multiprocess_dir
from tourapi.security.policies import SCRAPE_SCOPE
from tourapi.security.principal import Role
from tourapi.security.tokens import issue_token

if TYPE_CHECKING:
    from tourapi.runtime import Runtime

log = logging.getLogger("tourapi.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.removesuffix("; charset=utf-8")  # Litestar appends the charset
METRICS_PATH = "/metrics"
SOURCE_TIMEOUT_S = 3.0  # a scrape must answer even when Redis or the database hangs
ALERT_LEVELS = LEVELS[1:]  # alerts are raised at busy, crowded and full

APP_NAME = "tourapi"
_HTTP_LABELS = ["method", "path", "status_code", "app_name"]
REQUESTS = Counter("tourapi_requests_total", "Total requests", _HTTP_LABELS)
ERRORS = Counter("tourapi_requests_error_total", "Total errors in requests", _HTTP_LABELS)
DURATION = Histogram("tourapi_request_duration_seconds", "Request duration, in seconds", _HTTP_LABELS)
IN_PROGRESS = Gauge(
    "tourapi_requests_in_progress",
    "Total requests currently in progress",
    ["method", "path", "app_name"],
    multiprocess_mode="livesum",
)
PINGS_PROCESSED = Counter(
    "tourapi_pings_processed",
    "Location pings received on POST /v1/sessions/{id}/pings, by result (accepted or rejected). "
    "Counted by each worker process; summed over the workers in multiprocess mode.",
    ["result"],
)
for _result in ("accepted", "rejected"):
    PINGS_PROCESSED.labels(_result)  # present (at 0) before the first ping


async def count_pings(response: Response[Any]) -> Response[Any]:
    """App-level after_request hook: count the pings of every answered ping batch."""
    content = response.content
    if isinstance(content, PingResult):
        if content.accepted:
            PINGS_PROCESSED.labels("accepted").inc(content.accepted)
        if content.rejected:
            PINGS_PROCESSED.labels("rejected").inc(len(content.rejected))
    return response


# ---- who may scrape --------------------------------------------------------------------------------------
# /metrics has the OPERATOR policy: the live numbers are the operators' (like /v1/live). Prometheus cannot
# renew short-lived login tokens, so `tourapi metrics-token` mints a long-lived access token with the
# scope "metrics"; the policy guard makes such a token useless anywhere but GET /metrics.


def mint_scrape_token(runtime: Runtime, days: int) -> tuple[str, datetime]:
    return issue_token(
        runtime.jwt,
        "service:metrics-scraper",
        timedelta(days=days),
        runtime.settings.jwt_issuer,
        typ="access",
        role=Role.OPERATOR.value,
        name="metrics-scraper",
        scope=SCRAPE_SCOPE,
    )


# ---- business gauges, computed at scrape time ----------------------------------------------------------------


async def _transitions_and_leader(runtime: Runtime) -> tuple[int, bool]:
    """Total transitions ever appended to the shard streams (XINFO entries-added), and the leader lease."""
    keys = runtime.live.keys
    pipe = runtime.redis.pipeline(transaction=False)
    for shard in keys.all_shards():
        pipe.xinfo_stream(keys.transitions(shard))
    pipe.exists(keys.global_key("leader"))
    results = await pipe.execute(raise_on_error=False)
    *streams, leader = results
    total = 0
    for info in streams:
        if isinstance(info, dict):  # a shard that never saw a transition has no stream yet (an error here)
            total += int(info.get("entries-added", info.get("length", 0)))
    if isinstance(leader, Exception):
        raise leader
    return total, bool(leader)


async def _open_alerts(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Alert.level, func.count()).where(Alert.acked_at.is_(None)).group_by(Alert.level)
            )
        ).all()
    counts = dict.fromkeys(ALERT_LEVELS, 0)
    for level, n in rows:
        counts[str(level)] = int(n)
    return counts


def _gauge(name: str, doc: str, value: float | None = None, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=list(labels) or None)


async def business_metrics(runtime: Runtime) -> list[Metric]:
    families: list[Metric] = []
    up = _gauge(
        "tourapi_live_metrics_up", "1 if the source answered during this scrape, else 0", labels=["source"]
    )
    try:
        summary = await asyncio.wait_for(live_services.summary(runtime), SOURCE_TIMEOUT_S)
        transitions, leader = await asyncio.wait_for(_transitions_and_leader(runtime), SOURCE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001  (a scrape must not fail because Redis is down: it says so)
        log.warning("metrics: live state unavailable: %s", type(exc).__name__)
        up.add_metric(["redis"], 0)
    else:
        up.add_metric(["redis"], 1)
        families += _live_families(summary, transitions, leader)
    try:
        alerts = await asyncio.wait_for(_open_alerts(runtime), SOURCE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001  (likewise for the database)
        log.warning("metrics: database unavailable: %s", type(exc).__name__)
        up.add_metric(["database"], 0)
    else:
        up.add_metric(["database"], 1)
        open_alerts = _gauge(
            "tourapi_alerts_open", "Crowd alerts not yet acknowledged, by level", labels=["level"]
        )
        for level, n in alerts.items():
            open_alerts.add_metric([level], n)
        families.append(open_alerts)
    families.append(up)
    return families


def _live_families(summary: dict[str, Any], transitions: int, leader: bool) -> list[Metric]:
    active = summary["active_sessions"]
    by_route = _gauge(
        "tourapi_route_active_sessions",
        "Active visitor sessions following each published route",
        labels=["route_id"],
    )
    for route_id, n in sorted(active["by_route"].items()):
        by_route.add_metric([route_id], n)
    occupancy = _gauge(
        "tourapi_venue_occupancy", "Visitors inside the venue's geofence now", labels=["poi_id"]
    )
    capacity = _gauge("tourapi_venue_capacity", "The venue's capacity", labels=["poi_id"])
    level = _gauge(
        "tourapi_venue_crowd_level",
        "Crowd level of the venue: 0 comfortable, 1 busy (>=80%), 2 crowded (>=90%), 3 full (>=100%)",
        labels=["poi_id"],
    )
    entries = checkins = 0
    for poi in summary["pois"]:
        occupancy.add_metric([poi["poi_id"]], poi["occupancy"])
        capacity.add_metric([poi["poi_id"]], poi["capacity"])
        level.add_metric([poi["poi_id"]], LEVELS.index(poi["level"]))
        entries += poi["entries_tonight"]
        checkins += poi["checkins_tonight"]
    transitions_total = CounterMetricFamily(
        "tourapi_transitions",
        "Enter, exit, dwell and check-in transitions appended to the live transition streams "
        "(Redis XINFO entries-added over all shards)",
        value=transitions,
    )
    return [
        _gauge("tourapi_active_sessions", "Visitor sessions active now (all shards)", active["total"]),
        by_route,
        _gauge(
            "tourapi_entries_tonight",
            "Venue entries since noon (nights run noon to noon, Asia/Shanghai)",
            entries,
        ),
        _gauge(
            "tourapi_checkins_tonight",
            "QR check-ins since noon (nights run noon to noon, Asia/Shanghai)",
            checkins,
        ),
        occupancy,
        capacity,
        level,
        transitions_total,
        _gauge(
            "tourapi_live_leader_present",
            "1 if an API worker holds the live-state leader lease "
            "(the aggregator behind the event stream and alerts runs)",
            1 if leader else 0,
        ),
    ]


class _Fixed:
    """A collector that yields families computed beforehand (prometheus_client collectors are sync)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _process_metrics() -> bytes:
    """This process's metrics, or every worker's in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def render(runtime: Runtime) -> bytes:
    families = await business_metrics(runtime)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))  # type: ignore[arg-type]
    return _process_metrics() + generate_latest(registry)


def mark_worker_dead() -> None:
    """On worker shutdown in multiprocess mode: drop this process's live gauges (requests in progress)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
