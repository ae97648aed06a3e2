"""The itinerary planner service: validate the request, load what it needs, plan in a worker thread."""

from __future__ import annotations

import functools
import math
import weakref
from datetime import date, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.itineraries import planner
from tourapi.domain.itineraries.catalogue import Catalogue, load_catalogue
from tourapi.domain.itineraries.crowd import Forecast, load_inputs
from tourapi.domain.itineraries.schemas import Place, PlanRequest
from tourapi.domain.pois.schemas import CATEGORIES
from tourapi.errors import Unprocessable
from tourapi.geo.crs import Crs, to_wgs84
from tourapi.i18n import check_lang_param, preference
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, night_of

MAX_BUDGET_MINUTES = 12 * 60
MAX_WEIGHT = 10.0
YEARS = (2000, 2100)  # opening hours and the holiday calendar are meaningful in this range
CACHED_NIGHTS = 16
# Per worker: the catalogue (venues, shows, boats) by night, valid for one catalogue change sequence.
_catalogues: weakref.WeakKeyDictionary[Runtime, tuple[int, dict[tuple[date, ...], Catalogue]]] = (
    weakref.WeakKeyDictionary()
)


async def catalogue_for(runtime: Runtime, session: AsyncSession, nights: list[date]) -> Catalogue:
    """The catalogue, cached until this worker sees the change sequence move (after a local write at
    once, after another worker's within the one-second poll)."""
    seq = runtime.catalog_seq
    if seq < 0:  # not started: no version to check against
        return await load_catalogue(session, nights)
    cached_seq, by_nights = _catalogues.get(runtime, (-1, {}))
    if cached_seq != seq:
        by_nights = {}
        _catalogues[runtime] = (seq, by_nights)
    key = tuple(nights)
    found = by_nights.get(key)
    if found is None:
        found = await load_catalogue(session, nights)
        if len(by_nights) >= CACHED_NIGHTS:
            by_nights.clear()
        by_nights[key] = found
    return found


def _moment(value: datetime, field: str) -> datetime:
    moment = value.replace(tzinfo=TZ) if value.tzinfo is None else value
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise Unprocessable(f"must be a date-time between {YEARS[0]} and {YEARS[1]}", field=field)
    return moment.astimezone(TZ).replace(microsecond=0)


def _place(place: Place, field: str) -> tuple[float, float]:
    for name, value, bound in (("lon", place.lon, 180.0), ("lat", place.lat, 90.0)):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise Unprocessable(f"{name} must be a number in -{bound:g}..{bound:g}", field=f"{field}.{name}")
    if place.crs is Crs.WGS84:
        return place.lon, place.lat
    return to_wgs84(place.lon, place.lat, place.crs)


def _window(data: PlanRequest) -> tuple[datetime, datetime, str]:
    t0 = _moment(data.start_time, "start_time")
    if (data.end_time is None) == (data.budget_minutes is None):
        detail = (
            "give end_time or budget_minutes, not both"
            if data.end_time
            else "give end_time or budget_minutes"
        )
        raise Unprocessable(detail, field="budget_minutes")
    if data.budget_minutes is not None:
        if data.budget_minutes <= 0:
            raise Unprocessable("the budget must be at least 1 minute", field="budget_minutes")
        if data.budget_minutes > MAX_BUDGET_MINUTES:
            raise Unprocessable(
                f"the budget is at most {MAX_BUDGET_MINUTES} minutes (one night)", field="budget_minutes"
            )
        return t0, t0 + timedelta(minutes=data.budget_minutes), "budget_minutes"
    assert data.end_time is not None
    t1 = _moment(data.end_time, "end_time")
    if t1 <= t0:
        raise Unprocessable("end_time must be after start_time", field="end_time")
    if t1 - t0 > timedelta(minutes=MAX_BUDGET_MINUTES):
        raise Unprocessable(
            f"end_time is at most {MAX_BUDGET_MINUTES // 60} hours after start_time (one night)",
            field="end_time",
        )
    return t0, t1, "end_time"


def _weights(interests: dict[str, float]) -> dict[str, float]:
    for category, weight in interests.items():
        if category not in CATEGORIES:
            raise Unprocessable(
                f"unknown category {category!r}; one of: {', '.join(CATEGORIES)}",
                field=f"interests.{category}",
            )
        if not math.isfinite(weight) or not 0 <= weight <= MAX_WEIGHT:
            raise Unprocessable(f"a weight is a number in 0..{MAX_WEIGHT:g}", field=f"interests.{category}")
    if not interests:
        return dict.fromkeys(CATEGORIES, 1.0)
    return {c: float(interests.get(c, 0.0)) for c in CATEGORIES}


def validate(data: PlanRequest, accept_language: str | None) -> planner.PlanInput:
    """Everything that can be checked without the database, with the offending field named."""
    start = _place(data.start, "start")
    end = _place(data.end, "end") if data.end is not None else None
    t0, t1, window_field = _window(data)
    weights = _weights(data.interests)
    chain = preference(check_lang_param(data.lang, "lang"), accept_language)
    must = tuple(dict.fromkeys(data.must_include))
    exclude = frozenset(data.exclude)
    for i, pid in enumerate(must):
        if pid in exclude:
            raise Unprocessable(f"{pid!r} is both in must_include and in exclude", field=f"must_include[{i}]")
    return planner.PlanInput(
        start=start,
        end=end,
        t0=t0,
        t1=t1,
        pace=data.pace,
        weights=weights,
        interests_given=bool(data.interests),
        must=must,
        exclude=exclude,
        avoid_crowds=data.avoid_crowds,
        chain=chain,
        crs=data.crs,
        window_field=window_field,
    )


class PlannerService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session

    async def plan(self, data: PlanRequest, accept_language: str | None) -> tuple[dict[str, Any], float]:
        """The itinerary body, and the seconds the solver took (for the Server-Timing header)."""
        inp = validate(data, accept_language)
        nights = sorted({night_of(inp.t0), night_of(inp.t1 - timedelta(seconds=1))})
        catalogue = await catalogue_for(self.runtime, self.session, nights)
        prepared = await anyio.to_thread.run_sync(planner.prepare, inp, catalogue)
        capacity = {pid: catalogue.venues[pid].capacity for pid in prepared.poi_ids}
        inputs = await load_inputs(self.runtime, self.session, capacity, inp.t0, inp.t1)
        run = functools.partial(planner.plan, prepared, Forecast(inputs), time_cap_s=planner.TIME_CAP_S)
        body = await anyio.to_thread.run_sync(run)
        elapsed = float(body.pop("elapsed_s", 0.0))
        body = {
            "timezone": str(TZ),
            "crs": str(inp.crs),
            "lang": inp.chain[0],
            "requested": {
                "start_time": inp.t0.isoformat(),
                "end_time": inp.t1.isoformat(),
                "avoid_crowds": inp.avoid_crowds,
                "interests": {c: w for c, w in inp.weights.items() if w > 0},
                "must_include": list(inp.must),
                "exclude": sorted(inp.exclude),
            },
            **body,
        }
        return body, elapsed
