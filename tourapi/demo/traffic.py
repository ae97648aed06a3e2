"""Demo traffic: a simulated evening of visitors, sent to a running tourapi over HTTP.

Visitors arrive through the evening, follow the fixture routes' stops or wander between nearby
venues, ping like a phone (a GPS fix every ~20 s of simulated time with realistic accuracy and
jitter, uploaded in batches), dwell in venues, sometimes check in by scanning a poster's QR code,
and leave. One venue (the hotspot, a small teahouse by default) hosts a performance that fills it,
so the operators' console shows crowd colours and raises alerts.

Simulated time runs ``speed`` times faster than real time, but every ping carries the real moment
it was taken: timestamps are never in the future and always within the server's accepted window.
Only the visitors' plans are compressed.

Check-ins need the posters' tokens, which staff print from GET /v1/pois/{id}/checkpoints: the
simulator reads them with an operator account (``--username/--password``). Without one it sends
pings only; everything else works the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import shapely
from shapely.geometry import Point, shape

from tourapi.geo.geometry import M_PER_DEG

NOMINAL_EVENING_S = 5 * 3600  # 18:30 to 23:30: plans are built for this and compressed to the run
SIM_START_CLOCK = 18 * 3600 + 30 * 60
PING_EVERY_SIM_S = 20.0
UPLOAD_EVERY_SIM_S = 60.0
MIN_PING_GAP_S = 0.25  # real seconds between two fixes of one phone, whatever the speed
MIN_UPLOAD_GAP_S = 1.0  # real seconds between two uploads of one phone
WALK_MPS = (1.0, 1.4)
TAXI_AFTER_M = 1500.0
TAXI_MPS = 7.0
CHECKIN_CHANCE = 0.55
CHECKIN_FIX_ACCURACY_M = 30.0  # the app waits for a fix this good before it sends a check-in
ROUTE_SHARE = 0.6
AUDIENCE_SHARE = 0.45  # at most this share of the visitors go to the hotspot's performance
AUDIENCE_FILL = 0.95  # the performance fills the hotspot to this share of its capacity
DEFAULT_HOTSPOT = "pipayu-pingtan-teahouse"


@dataclass
class DemoConfig:
    base_url: str = "http://127.0.0.1:8000"
    visitors: int = 200
    speed: float = 30.0
    duration: float = 600.0  # real seconds
    hotspot: str | None = DEFAULT_HOTSPOT
    username: str | None = None
    password: str | None = None
    seed: int | None = None
    end_sessions: bool = True
    report_every: float = 10.0


@dataclass
class DemoReport:
    sessions: int = 0
    route_sessions: int = 0
    pings_sent: int = 0
    pings_accepted: int = 0
    pings_rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    checkins: int = 0
    checkin_refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    paced_starts: int = 0  # session starts the server asked to retry later (429): see start_session
    peak_inside: dict[str, int] = field(default_factory=dict)
    checkins_enabled: bool = False


# ---- the world: venues, routes and posters, read from the API -------------------------------------------------


@dataclass
class Venue:
    id: str
    name: str
    capacity: int
    visit_minutes: float
    interest: float
    fence: shapely.Geometry
    inner: shapely.Geometry  # the fence shrunk a few metres: where people stand and sit
    centre: tuple[float, float]
    posters: list[str] = field(default_factory=list)  # QR tokens (poster URLs)


@dataclass
class World:
    venues: dict[str, Venue]
    routes: dict[str, list[str]]  # route id -> stop POI ids, in order
    fences: shapely.Geometry  # every fence widened, to place people outside all of them


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (b[0] - a[0]) * M_PER_DEG * math.cos(math.radians((a[1] + b[1]) / 2))
    dy = (b[1] - a[1]) * M_PER_DEG
    return math.hypot(dx, dy)


def offset(point: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    return (
        point[0] + east_m / (M_PER_DEG * math.cos(math.radians(point[1]))),
        point[1] + north_m / M_PER_DEG,
    )


def random_inside(rng: random.Random, area: shapely.Geometry) -> tuple[float, float]:
    minx, miny, maxx, maxy = area.bounds
    for _ in range(200):
        candidate = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if area.contains(candidate):
            return candidate.x, candidate.y
    point = area.representative_point()
    return point.x, point.y


def random_outside(
    rng: random.Random, world: World, near: tuple[float, float], low_m: float, high_m: float
) -> tuple[float, float]:
    """A spot ``low_m``..``high_m`` from ``near`` that is clear of every geofence."""
    for _ in range(200):
        angle = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(low_m, high_m)
        spot = offset(near, distance * math.cos(angle), distance * math.sin(angle))
        if not world.fences.contains(Point(spot)):
            return spot
    return offset(near, high_m * 3, 0)


def build_world(pois: dict[str, Any], routes: dict[str, Any], posters: dict[str, list[str]]) -> World:
    venues: dict[str, Venue] = {}
    widened = []
    for feature in pois["features"]:
        p = feature["properties"]
        fence = shape(p["geofence"])
        inset = 4.0 / M_PER_DEG
        inner = fence.buffer(-inset)
        if inner.is_empty or inner.area < fence.area * 0.15:
            inner = fence.buffer(-inset / 3)
        if inner.is_empty:
            inner = fence
        centre = fence.representative_point()
        venues[feature["id"]] = Venue(
            id=feature["id"],
            name=p.get("name") or feature["id"],
            capacity=int(p.get("capacity") or 0),
            visit_minutes=float(p.get("visit_minutes") or 45),
            interest=float(p.get("interest") or 0.5),
            fence=fence,
            inner=inner,
            centre=(centre.x, centre.y),
            posters=list(posters.get(feature["id"], [])),
        )
        widened.append(fence.buffer(45.0 / M_PER_DEG))
    stops = {}
    for route in routes.get("routes", []):
        ids = [poi for poi in route.get("poi_ids", []) if poi in venues]
        if len(ids) >= 2:
            stops[route["id"]] = ids
    return World(venues, stops, shapely.union_all(widened) if widened else shapely.GeometryCollection())


# ---- plans: where a visitor is at any simulated moment ---------------------------------------------------------


@dataclass
class Leg:
    start: float  # simulated seconds since the evening began
    end: float
    a: tuple[float, float]
    b: tuple[float, float]
    venue: str | None = None  # set while staying inside a venue


@dataclass
class Plan:
    arrive: float
    legs: list[Leg]
    route_id: str | None
    kind: str  # "route", "wander" or "audience"
    checkins: list[tuple[float, str]] = field(default_factory=list)  # (when, venue): scans a poster

    @property
    def leave(self) -> float:
        return self.legs[-1].end

    def leg_at(self, t: float) -> Leg | None:
        for leg in self.legs:
            if leg.start <= t < leg.end:
                return leg
        return None

    def position(self, t: float) -> tuple[tuple[float, float], str | None]:
        leg = self.leg_at(t) or self.legs[-1]
        span = max(leg.end - leg.start, 1e-9)
        f = min(1.0, max(0.0, (t - leg.start) / span))
        return (leg.a[0] + (leg.b[0] - leg.a[0]) * f, leg.a[1] + (leg.b[1] - leg.a[1]) * f), leg.venue


class Planner:
    """Builds visitors' evenings, compressed by ``scale`` (simulated span / nominal evening)."""

    def __init__(
        self, world: World, rng: random.Random, span: float, hotspot: str | None, checkins: bool
    ) -> None:
        self.world = world
        self.rng = rng
        self.span = span
        self.scale = min(1.0, span / NOMINAL_EVENING_S)
        self.hotspot = hotspot if hotspot in world.venues else None
        self.checkins = checkins
        # The performance at the hotspot: from 35% to 65% of the evening.
        self.show = (0.35 * span, 0.65 * span)

    def audience_size(self, visitors: int) -> int:
        if not self.hotspot:
            return 0
        venue = self.world.venues[self.hotspot]
        return min(math.ceil(venue.capacity * AUDIENCE_FILL), int(visitors * AUDIENCE_SHARE))

    def plans(self, visitors: int) -> list[Plan]:
        audience = self.audience_size(visitors)
        plans = [self.audience_plan() for _ in range(audience)]
        for _ in range(visitors - audience):
            use_route = self.world.routes and self.rng.random() < ROUTE_SHARE
            plans.append(self.route_plan() if use_route else self.wander_plan())
        self.rng.shuffle(plans)
        return plans

    def arrival(self) -> float:
        # Arrivals build up after dusk and thin out late in the evening.
        return self.rng.betavariate(2.0, 3.2) * 0.7 * self.span

    def stay_seconds(self, venue: Venue) -> float:
        minutes = min(venue.visit_minutes, 120) * self.rng.uniform(0.45, 1.0)
        return max(60.0, minutes * 60) * self.scale

    def route_plan(self) -> Plan:
        route_id = self.rng.choice(sorted(self.world.routes))
        return self.walk(self.arrival(), list(self.world.routes[route_id]), "route", route_id)

    def wander_plan(self) -> Plan:
        venues = list(self.world.venues.values())
        first = self.rng.choices(
            venues, weights=[v.interest * math.sqrt(max(v.capacity, 1)) for v in venues]
        )[0]
        nearby = sorted(
            (v for v in venues if v.id != first.id), key=lambda v: metres(first.centre, v.centre)
        )[:6]
        more = self.rng.sample(nearby, k=min(len(nearby), self.rng.randint(1, 3)))
        return self.walk(self.arrival(), [first.id] + [v.id for v in more], "wander", None)

    def audience_plan(self) -> Plan:
        assert self.hotspot is not None
        begin, end = self.show
        arrive = max(0.0, begin - self.rng.uniform(0.02, 0.12) * self.span)
        plan = self.walk(
            arrive, [self.hotspot], "audience", None, hold_until=end + self.rng.uniform(0, 0.04) * self.span
        )
        return plan

    def walk(
        self,
        arrive: float,
        stops: list[str],
        kind: str,
        route_id: str | None,
        hold_until: float | None = None,
    ) -> Plan:
        rng, world = self.rng, self.world
        first = world.venues[stops[0]]
        here = random_outside(rng, world, first.centre, 150, 350)
        t = arrive
        legs: list[Leg] = []
        checkins: list[tuple[float, str]] = []
        for n, poi in enumerate(stops):
            venue = world.venues[poi]
            target = random_inside(rng, venue.inner)
            distance = metres(here, target)
            pace = TAXI_MPS if distance > TAXI_AFTER_M else rng.uniform(*WALK_MPS)
            duration = max(30.0, distance / pace) * self.scale
            legs.append(Leg(t, t + duration, here, target))
            t += duration
            stay = self.stay_seconds(venue)
            if hold_until is not None and n == len(stops) - 1:
                stay = max(stay, hold_until - t)
            # Inside: a slow stroll between a few spots (or sitting still for a performance).
            stay_start, here = t, target
            spots = 1 if kind == "audience" else max(1, int(stay / (240 * self.scale)))
            for k in range(spots):
                nxt = here if kind == "audience" else random_inside(rng, venue.inner)
                seg_end = stay_start + stay * (k + 1) / spots
                legs.append(Leg(t, seg_end, here, nxt, venue=poi))
                t, here = seg_end, nxt
            if self.checkins and venue.posters and rng.random() < CHECKIN_CHANCE:
                checkins.append((stay_start + stay * rng.uniform(0.05, 0.5), poi))
        last = world.venues[stops[-1]]
        exit_to = random_outside(rng, world, last.centre, 180, 320)
        legs.append(Leg(t, t + max(30.0, metres(here, exit_to) / 1.2) * self.scale, here, exit_to))
        return Plan(arrive, legs, route_id, kind, checkins)


def gps_fix(rng: random.Random, true: tuple[float, float], indoors: bool) -> tuple[float, float, float]:
    """A phone's fix: position with Gaussian error and the accuracy (68% radius) it reports."""
    if rng.random() < 0.04:
        accuracy = rng.uniform(60.0, 150.0)  # a poor fix; the server will not let it end a visit
    else:
        accuracy = min(45.0, max(3.0, rng.lognormvariate(math.log(9.0 if indoors else 7.0), 0.35)))
    sigma = accuracy / 1.5
    lon, lat = offset(true, rng.gauss(0, sigma), rng.gauss(0, sigma))
    return lon, lat, round(accuracy, 1)


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


# ---- running the evening ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.real_start = time.monotonic()

    def sim(self) -> float:
        return (time.monotonic() - self.real_start) * self.speed

    async def until(self, sim_t: float) -> None:
        wait = (sim_t - self.sim()) / self.speed
        if wait > 0:
            await asyncio.sleep(wait)


class Demo:
    def __init__(self, config: DemoConfig, client: httpx.AsyncClient, say: Callable[[str], None]) -> None:
        self.config = config
        self.client = client
        self.say = say
        self.rng = random.Random(config.seed)
        self.report = DemoReport()
        self.inside: dict[str, int] = defaultdict(int)  # our own view: visitors staying in each venue
        self.active = 0
        self.route_refused: set[str] = set()
        self.sessions: dict[str, dict[str, str]] = {}
        self.world: World | None = None

    # -- set-up --

    async def load_world(self) -> World:
        pois = await self.get_json("/v1/pois", params={"limit": 500, "lang": "en"})
        try:
            routes = await self.get_json("/v1/routes", params={"limit": 200, "lang": "en"})
        except httpx.HTTPError:
            routes = {"routes": []}
        posters = await self.load_posters([f["id"] for f in pois["features"]])
        return build_world(pois, routes, posters)

    async def load_posters(self, poi_ids: list[str]) -> dict[str, list[str]]:
        if not (self.config.username and self.config.password):
            self.say(
                "no operator credentials: visitors will ping but not check in "
                "(pass --username/--password to read the venues' QR checkpoints)"
            )
            return {}
        response = await self.client.post(
            "/v1/auth/token", json={"username": self.config.username, "password": self.config.password}
        )
        if response.status_code != 200:
            self.say(f"sign-in as {self.config.username!r} failed ({response.status_code}): no check-ins")
            return {}
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        posters: dict[str, list[str]] = {}
        for poi in poi_ids:
            listed = await self.client.get(f"/v1/pois/{poi}/checkpoints", headers=headers)
            if listed.status_code == 200:
                posters[poi] = [c["url"] for c in listed.json() if c.get("active", True)]
        self.report.checkins_enabled = any(posters.values())
        return posters

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        response = await self.client.get(path, **kwargs)
        response.raise_for_status()
        return response.json()

    # -- one visitor --

    async def start_session(self, plan: Plan, clock: Clock, span: float) -> tuple[str, dict[str, str]] | None:
        body: dict[str, Any] = {
            "install_id": f"demo-{uuid.uuid4()}",
            "locale": self.rng.choice(["zh-Hans", "en"]),
        }
        if plan.route_id and plan.route_id not in self.route_refused:
            body["route_id"] = plan.route_id
        failures = 0
        while failures < 3 and clock.sim() < min(plan.leave, span):
            response = await self.request("POST", "/v1/sessions", json=body, expected=(429,))
            if response is not None and response.status_code == 429:
                # Every simulated phone shares this machine's address, and the server limits new sessions per
                # address (a real crowd comes from many): a burst of arrivals is paced, not lost.
                self.report.paced_starts += 1
                await asyncio.sleep(retry_after_s(response))
                continue
            if response is not None and response.status_code == 422 and "route_id" in body:
                route_id = body.pop("route_id")  # not running tonight: walk its stops anyway
                if route_id not in self.route_refused:
                    self.route_refused.add(route_id)
                    self.say(
                        f"route {route_id} does not run tonight: its walkers follow its stops without "
                        "joining it (the console counts visitors per route only on routes that run)"
                    )
                continue
            if response is not None and response.status_code == 201:
                data = response.json()
                self.report.sessions += 1
                self.report.route_sessions += 1 if "route_id" in body else 0
                headers = {"Authorization": f"Bearer {data['token']}"}
                self.sessions[data["session_id"]] = headers
                return data["session_id"], headers
            if response is not None and 400 <= response.status_code < 500:
                self.report.errors[f"sessions HTTP {response.status_code}"] += 1
            failures += 1
            await asyncio.sleep(0.5)
        return None

    async def request(
        self, method: str, path: str, expected: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response | None:
        """The response (None after a network error); 5xx and 429 count as errors unless ``expected``."""
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.report.errors[type(exc).__name__] += 1
            return None
        if (
            response.status_code >= 500 or response.status_code == 429
        ) and response.status_code not in expected:
            self.report.errors[f"HTTP {response.status_code}"] += 1
        return response

    async def upload(self, sid: str, headers: dict[str, str], pings: list[dict[str, Any]]) -> bool:
        """Send a batch; False if the session is gone (the caller starts a new one)."""
        response = await self.request(
            "POST", f"/v1/sessions/{sid}/pings", json={"pings": pings}, headers=headers
        )
        self.report.pings_sent += len(pings)
        if response is None:
            return True
        if response.status_code == 404:
            return False
        if response.status_code == 200:
            body = response.json()
            self.report.pings_accepted += body["accepted"]
            self.report.pings_rejected += len(body["rejected"])
            for item in body["rejected"]:
                self.report.rejected_reasons[item["reason"]] += 1
            for transition in body["transitions"]:
                self.report.transitions[transition["type"]] += 1
        else:
            self.report.errors[f"pings HTTP {response.status_code}"] += 1
        return True

    async def check_in(
        self, sid: str, headers: dict[str, str], venue: Venue, where: tuple[float, float]
    ) -> None:
        lon, lat, accuracy = gps_fix(self.rng, where, indoors=True)
        while accuracy > CHECKIN_FIX_ACCURACY_M:  # honest: a poor fix's error is as large as it says
            lon, lat, accuracy = gps_fix(self.rng, where, indoors=True)
        response = await self.request(
            "POST",
            "/v1/checkins",
            json={
                "session_id": sid,
                "token": self.rng.choice(venue.posters),
                "lon": lon,
                "lat": lat,
                "accuracy": accuracy,
                "poi_id": venue.id,
            },
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        if response is None:
            return
        if response.status_code in (200, 201):
            self.report.checkins += 1
        else:
            try:
                slug = response.json().get("type", "").rsplit(":", 1)[-1]
            except ValueError:
                slug = ""
            self.report.checkin_refusals[slug or f"HTTP {response.status_code}"] += 1

    async def visitor(self, plan: Plan, clock: Clock, span: float) -> None:
        await clock.until(plan.arrive)
        started = await self.start_session(plan, clock, span)
        if started is None:
            return
        sid, headers = started
        self.active += 1
        assert self.world is not None
        batch: list[dict[str, Any]] = []
        staying: str | None = None
        scans = list(plan.checkins)
        ping_gap = max(MIN_PING_GAP_S, PING_EVERY_SIM_S / clock.speed)
        upload_gap = max(MIN_UPLOAD_GAP_S, UPLOAD_EVERY_SIM_S / clock.speed)
        last_upload = time.monotonic()
        try:
            while (now := clock.sim()) < min(plan.leave, span):  # the run ends on time
                where, venue = plan.position(now)
                if venue != staying:
                    if staying:
                        self.inside[staying] -= 1
                    if venue:
                        self.inside[venue] += 1
                        self.report.peak_inside[venue] = max(
                            self.report.peak_inside.get(venue, 0), self.inside[venue]
                        )
                    staying = venue
                lon, lat, accuracy = gps_fix(self.rng, where, indoors=venue is not None)
                batch.append(
                    {
                        "lon": round(lon, 7),
                        "lat": round(lat, 7),
                        "accuracy": accuracy,
                        "timestamp": stamp(time.time()),
                    }
                )
                if scans and now >= scans[0][0]:
                    _, poi = scans.pop(0)
                    await self.upload_batch(sid, headers, batch)  # the app sends its fixes first
                    batch = []
                    await self.check_in(sid, headers, self.world.venues[poi], where)
                if time.monotonic() - last_upload >= upload_gap and batch:
                    if not await self.upload_batch(sid, headers, batch):
                        started = await self.start_session(plan, clock, span)
                        if started is None:
                            return
                        sid, headers = started
                    batch = []
                    last_upload = time.monotonic()
                await asyncio.sleep(ping_gap)
            if batch:
                await self.upload_batch(sid, headers, batch)
            # Most visitors close the app's tour; the others just walk off and their session expires.
            if self.config.end_sessions and self.rng.random() < 0.7:
                await self.end(sid)
        finally:
            if staying:
                self.inside[staying] -= 1
            self.active -= 1

    async def upload_batch(self, sid: str, headers: dict[str, str], batch: list[dict[str, Any]]) -> bool:
        ok = True
        for i in range(0, len(batch), 100):
            ok = await self.upload(sid, headers, batch[i : i + 100]) and ok
        return ok

    async def end(self, sid: str) -> None:
        headers = self.sessions.pop(sid, None)
        if headers is not None:
            await self.request("DELETE", f"/v1/sessions/{sid}", headers=headers)

    # -- the evening --

    async def run(self) -> DemoReport:
        config = self.config
        self.world = await self.load_world()
        span = config.duration * config.speed
        planner = Planner(self.world, self.rng, span, config.hotspot, bool(self.report.checkins_enabled))
        plans = planner.plans(config.visitors)
        if config.hotspot and planner.hotspot is None:
            self.say(f"hotspot {config.hotspot!r} is not a venue here: no performance tonight")
        elif planner.hotspot:
            venue = self.world.venues[planner.hotspot]
            self.say(
                f"performance at {venue.name} (capacity {venue.capacity}) for "
                f"{planner.audience_size(config.visitors)} visitors, "
                f"{clock_text(planner.show[0], span)}-{clock_text(planner.show[1], span)}"
            )
        clock = Clock(config.speed)
        reporter = asyncio.create_task(self.progress(clock, span))
        try:
            await asyncio.gather(*(self.visitor(plan, clock, span) for plan in plans))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            if config.end_sessions:
                await asyncio.gather(*(self.end(sid) for sid in list(self.sessions)))
        self.progress_line(clock, span)
        return self.report

    async def progress(self, clock: Clock, span: float) -> None:
        while True:
            await asyncio.sleep(self.config.report_every)
            self.progress_line(clock, span)

    def progress_line(self, clock: Clock, span: float) -> None:
        assert self.world is not None
        busiest = sorted(((n, poi) for poi, n in self.inside.items() if n > 0), reverse=True)[:3]
        top = (
            ", ".join(
                f"{self.world.venues[poi].name} {n}/{self.world.venues[poi].capacity}" for n, poi in busiest
            )
            or "-"
        )
        r = self.report
        notes = (
            f" · session starts paced by the server's per-address limit: {r.paced_starts}"
            if r.paced_starts
            else ""
        )
        if r.errors:
            notes += f" · errors: {', '.join(f'{k} x{n}' for k, n in r.errors.most_common())}"
        self.say(
            f"[{clock_text(min(clock.sim(), span), span)}] visitors out {self.active:>4} · sessions {r.sessions}"
            f" · pings {r.pings_accepted} accepted, {r.pings_rejected} rejected · check-ins {r.checkins}"
            f" · busiest: {top}{notes}"
        )


def retry_after_s(response: httpx.Response) -> float:
    """The server's Retry-After (seconds), within reason; 1 s if it gave none."""
    try:
        return min(30.0, max(0.2, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def clock_text(sim_t: float, span: float) -> str:
    """The simulated wall clock: the run covers 18:30-23:30 however long it is."""
    seconds = SIM_START_CLOCK + sim_t / max(span, 1e-9) * NOMINAL_EVENING_S
    return f"{int(seconds // 3600) % 24:02d}:{int(seconds % 3600 // 60):02d}"


async def run_demo(
    config: DemoConfig, client: httpx.AsyncClient | None = None, say: Callable[[str], None] = print
) -> DemoReport:
    """Run the evening against ``config.base_url`` (or the given client, e.g. an in-process app)."""
    if client is not None:
        return await Demo(config, client, say).run()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=config.base_url, timeout=15.0, limits=limits) as http:
        return await Demo(config, http, say).run()


def local_demo_password(username: str) -> str | None:
    """The embedded default's demo password, derived from the local secret file if it exists."""
    from tourapi.bootstrap import demo_password
    from tourapi.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError:
        return None
    if settings.secret_key is None and not settings.secret_file.exists():
        return None
    if not settings.embedded_database:
        return None  # production accounts have real passwords
    return demo_password(settings.resolved_secret(), username)
