"""Single-route orienteering problem with time windows (OPTW).

Pure module: no web framework, no database.  Instance in, route out.

Model
-----
* A route leaves the start place (matrix index 0) at ``Instance.start_time``,
  visits a subset of the candidate ``nodes`` (matrix indices 1..n, in the order
  of ``Instance.nodes``) and must arrive at the end place (matrix index n+1) no
  later than ``Instance.end_time``.
* Travel time from matrix index i to j is ``Instance.travel[i][j]``.
* At a node, service may *start* no earlier than ``open`` (arriving early means
  waiting) and no later than ``close``; the visit then lasts ``service``.
* The goal is to maximise the summed ``score`` of the visited nodes; every node
  in ``must_include`` has to be visited (otherwise :class:`InfeasibleError`).
* Mutually exclusive groups (optional): nodes that share a ``Node.group`` are
  alternatives -- at most one of them is visited (the same venue in two
  opening intervals, the occurrences of one show, the departures of one boat
  line).  Exactly one node of every group in ``Instance.required_groups`` has
  to be visited.  Instances without groups are solved exactly as before.
* All times are plain floats in one unit of your choosing (minutes, seconds...),
  the same unit for travel, service, windows and start/end time.

Solvers
-------
``solve`` (the default) runs PyVRP's iterated local search on a
prize-collecting VRPTW model (one vehicle, optional clients with prize =
score); ``solve_ortools`` runs OR-Tools routing with disjunction penalties and
is kept as the comparison (see ``python -m bench.optw``; PyVRP won clearly:
about 0.2 % average gap on the Solomon-based OPTW instances against 4 % for
OR-Tools, at the same 1 s budget).  Both solve an integer model (exact when the
data is on a decimal grid, otherwise conservatively rounded) and return a
:class:`Solution` whose times are recomputed in floating point from the
instance: the earliest-start schedule of the chosen visit order.  Equal-score
routes are broken by total travel time.

Determinism: :func:`solve` stops PyVRP after a fixed number of iterations
(``max_iterations``, default :data:`DEFAULT_ITERATIONS`), so the same
instance and seed give the same route on any machine; ``time_limit`` is only
a safety cap.  If the cap fires first the route depends on machine speed and
load -- ``Solution.stopped_by`` then reads ``"time"`` instead of
``"iterations"``; if it fires before any feasible route was found,
:class:`SolverTimeout` is raised (nothing was proven infeasible).  Pick
``max_iterations`` so that it fits the time limit with
room to spare (about 0.4-0.5 ms per iteration for 60-100 candidates here, so
250 iterations for a ~150 ms budget).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_ITERATIONS",
    "DEFAULT_SOLVER",
    "SOLVERS",
    "InfeasibleError",
    "Instance",
    "Node",
    "Solution",
    "SolverTimeout",
    "Visit",
    "check_feasible",
    "default_iterations",
    "read_optw_file",
    "schedule_route",
    "solve",
    "solve_ortools",
    "solve_pyvrp",
]

EPS = 1e-6


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A candidate visit."""

    id: str
    score: float
    service: float  # visit duration, same unit as travel times
    open: float  # earliest service start
    close: float  # latest service start
    group: str | None = None  # nodes sharing a group are alternatives: at most one is visited


@dataclass(frozen=True)
class Instance:
    """An OPTW instance.

    ``travel`` is an (n+2) x (n+2) matrix (anything ``numpy.asarray`` accepts,
    or a callable ``travel(i, j) -> float``), indexed as: 0 = start place,
    1..n = ``nodes[0..n-1]``, n+1 = end place (may be the same location as the
    start; then use the same travel times).  It is stored as a read-only float
    numpy array.
    """

    nodes: Sequence[Node]
    travel: np.ndarray | Sequence[Sequence[float]] | Callable[[int, int], float]
    start_time: float
    end_time: float  # must be back at the end place by this time
    must_include: frozenset[str] = frozenset()
    required_groups: frozenset[str] = frozenset()  # exactly one node of each is visited

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        size = len(nodes) + 2
        if callable(self.travel):
            fn = self.travel
            mat = np.array([[float(fn(i, j)) for j in range(size)] for i in range(size)])
        else:
            mat = np.array(self.travel, dtype=float)  # copy: callers may mutate theirs
        if mat.shape != (size, size):
            raise ValueError(
                f"travel must be a {size}x{size} matrix (start, {len(nodes)} nodes, end); "
                f"got shape {mat.shape}"
            )
        if not np.all(np.isfinite(mat)) or np.any(mat < 0):
            raise ValueError("travel times must be finite and non-negative")
        mat.setflags(write=False)
        object.__setattr__(self, "travel", mat)
        object.__setattr__(self, "must_include", frozenset(self.must_include))
        ids = [nd.id for nd in nodes]
        if len(set(ids)) != len(ids):
            raise ValueError("node ids must be unique")
        unknown = sorted(set(self.must_include) - set(ids))
        if unknown:
            raise ValueError(f"must_include names unknown node ids: {unknown}")
        object.__setattr__(self, "required_groups", frozenset(self.required_groups))
        groups = {nd.group for nd in nodes if nd.group is not None}
        unknown = sorted(set(self.required_groups) - groups)
        if unknown:
            raise ValueError(f"required_groups names groups without nodes: {unknown}")
        grouped_must = sorted(nd.id for nd in nodes if nd.id in self.must_include and nd.group is not None)
        if grouped_must:
            raise ValueError(
                f"must-include nodes {grouped_must} belong to a group: require the group "
                "(required_groups) or take the node out of its group"
            )
        for nd in nodes:
            for name in ("score", "service", "open", "close"):
                if not math.isfinite(getattr(nd, name)):
                    raise ValueError(f"node {nd.id!r}: {name} must be finite")
            if nd.score < 0 or nd.service < 0:
                raise ValueError(f"node {nd.id!r}: score and service must be >= 0")
        if not (math.isfinite(self.start_time) and math.isfinite(self.end_time)):
            raise ValueError("start_time and end_time must be finite")
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")

    @property
    def n(self) -> int:
        return len(self.nodes)

    def group_members(self) -> dict[str, list[int]]:
        """Group name -> matrix indices (1..n) of its nodes, in node order."""
        members: dict[str, list[int]] = {}
        for k, nd in enumerate(self.nodes, start=1):
            if nd.group is not None:
                members.setdefault(nd.group, []).append(k)
        return members


@dataclass(frozen=True)
class Visit:
    node_id: str
    arrival: float  # when we get there
    start: float  # service start, after waiting for the node to open
    departure: float  # start + service


@dataclass(frozen=True)
class Solution:
    visits: list[Visit]  # in route order
    score: float
    end_arrival: float  # arrival at the end place
    travel_time: float  # total travel time of the route
    solver: str = ""
    seed: int = 0
    iterations: int = 0  # iterations actually run
    elapsed: float = 0.0  # wall seconds spent in solve()
    stopped_by: str = ""  # "iterations" (deterministic), "time" or "exact"

    @property
    def node_ids(self) -> list[str]:
        return [v.node_id for v in self.visits]


class InfeasibleError(ValueError):
    """The instance admits no route that visits every must-include node."""

    def __init__(self, reason: str, nodes: Sequence[str] = ()):
        super().__init__(reason)
        self.reason = reason
        self.nodes = tuple(nodes)


class SolverTimeout(RuntimeError):
    """The time limit fired before the solver had any feasible route (nothing was proven infeasible)."""


# --------------------------------------------------------------------------
# Scheduling and the independent feasibility checker
# --------------------------------------------------------------------------


def schedule_route(instance: Instance, node_ids: Sequence[str]) -> Solution | None:
    """Earliest-start schedule of a visit order; ``None`` if the order is infeasible.

    Does not check must-include nodes or required groups (use :func:`check_feasible`
    for that); two nodes of one group make the order infeasible.
    """
    index = {nd.id: k + 1 for k, nd in enumerate(instance.nodes)}
    T = instance.travel
    t = float(instance.start_time)
    prev = 0
    visits: list[Visit] = []
    total_travel = 0.0
    score = 0.0
    seen: set[str] = set()
    groups_seen: set[str] = set()
    for nid in node_ids:
        if nid in seen or nid not in index:
            return None
        seen.add(nid)
        k = index[nid]
        nd = instance.nodes[k - 1]
        if nd.group is not None:
            if nd.group in groups_seen:
                return None
            groups_seen.add(nd.group)
        arrival = t + T[prev, k]
        total_travel += T[prev, k]
        start = max(arrival, nd.open)
        if start > nd.close + EPS:
            return None
        t = start + nd.service
        visits.append(Visit(nid, arrival, start, t))
        score += nd.score
        prev = k
    end = t + T[prev, instance.n + 1]
    total_travel += T[prev, instance.n + 1]
    if end > instance.end_time + EPS:
        return None
    return Solution(visits=visits, score=score, end_arrival=end, travel_time=total_travel)


def check_feasible(instance: Instance, solution: Solution) -> list[str]:
    """List every constraint the solution violates (empty list = feasible).

    Independent of the solvers: it only reads the instance and the reported
    visits (ids and the arrival/start/departure times) and checks them directly.
    """
    problems: list[str] = []
    tol = 1e-6
    by_id = {nd.id: (k + 1, nd) for k, nd in enumerate(instance.nodes)}
    T = np.asarray(instance.travel, dtype=float)
    end_idx = len(instance.nodes) + 1
    prev_idx, prev_dep, prev_name = 0, float(instance.start_time), "start"
    seen: set[str] = set()
    in_group: dict[str, str] = {}
    total = 0.0
    for pos, v in enumerate(solution.visits):
        if v.node_id not in by_id:
            problems.append(f"visit {pos}: unknown node id {v.node_id!r}")
            continue
        if v.node_id in seen:
            problems.append(f"visit {pos}: node {v.node_id!r} visited twice")
        seen.add(v.node_id)
        k, nd = by_id[v.node_id]
        if nd.group is not None:
            if nd.group in in_group and in_group[nd.group] != v.node_id:
                problems.append(
                    f"{v.node_id}: group {nd.group!r} is visited twice "
                    f"(also by {in_group[nd.group]!r}); its nodes are alternatives"
                )
            in_group.setdefault(nd.group, v.node_id)
        earliest_arrival = prev_dep + T[prev_idx, k]
        if v.arrival < earliest_arrival - tol:
            problems.append(
                f"{v.node_id}: arrival {v.arrival:g} is before {prev_name} departure "
                f"{prev_dep:g} + travel {T[prev_idx, k]:g}"
            )
        if v.start < v.arrival - tol:
            problems.append(f"{v.node_id}: service starts {v.start:g} before arrival {v.arrival:g}")
        if v.start < nd.open - tol:
            problems.append(f"{v.node_id}: service starts {v.start:g} before opening {nd.open:g}")
        if v.start > nd.close + tol:
            problems.append(f"{v.node_id}: service starts {v.start:g} after closing {nd.close:g}")
        if v.departure < v.start + nd.service - tol:
            problems.append(
                f"{v.node_id}: departs {v.departure:g} before service of {nd.service:g} "
                f"started at {v.start:g} is over"
            )
        total += nd.score
        prev_idx, prev_dep, prev_name = k, v.departure, v.node_id
    back = prev_dep + T[prev_idx, end_idx]
    if back > instance.end_time + tol:
        problems.append(f"back at the end place at {back:g}, after end_time {instance.end_time:g}")
    if solution.end_arrival < back - tol:
        problems.append(f"reported end_arrival {solution.end_arrival:g} < earliest {back:g}")
    elif solution.end_arrival > instance.end_time + tol and back <= instance.end_time + tol:
        problems.append(
            f"reported end_arrival {solution.end_arrival:g} is after end_time {instance.end_time:g}"
        )
    missing = sorted(set(instance.must_include) - seen)
    if missing:
        problems.append(f"must-include nodes not visited: {missing}")
    missing = sorted(set(instance.required_groups) - set(in_group))
    if missing:
        problems.append(f"required groups not visited: {missing}")
    if abs(total - solution.score) > 1e-6 * max(1.0, abs(total)):
        problems.append(f"reported score {solution.score:g} != sum of visited scores {total:g}")
    return problems


# --------------------------------------------------------------------------
# Reading the Solomon-based OPTW benchmark files
# --------------------------------------------------------------------------


def read_optw_file(path: str | Path) -> Instance:
    """Read one OPTW benchmark file (Righini/Salani, Montemanni/Gambardella format).

    ``i x y d S f a [a numbers] O C`` per vertex; vertex 0 is start and end and
    its ``C`` is the budget Tmax.  Travel time is the Euclidean distance rounded
    *down* to one decimal.  Node ids are the vertex numbers as strings.
    """
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    n_customers = int(float(lines[0][2]))
    rows = lines[2 : 3 + n_customers]
    if len(rows) != n_customers + 1:
        raise ValueError(f"{path}: expected {n_customers + 1} vertex lines, got {len(rows)}")
    verts = []
    for r in rows:
        i, x, y, d, s = (float(v) for v in r[:5])
        o, c = float(r[-2]), float(r[-1])
        verts.append((int(i), x, y, d, s, o, c))
    xs = [v[1] for v in verts]
    ys = [v[2] for v in verts]
    m = len(verts)
    size = m + 1  # vertex 0 twice: as start (0) and as end (m)
    tenths = np.zeros((size, size), dtype=np.int64)
    integral = all(float(v).is_integer() for v in xs + ys)
    loc = list(range(m)) + [0]
    for a in range(size):
        for b in range(size):
            i, j = loc[a], loc[b]
            if i == j:
                continue
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if integral:  # exact: floor(10 * sqrt(q)) = isqrt(100 q)
                tenths[a, b] = math.isqrt(int(100 * (dx * dx + dy * dy)))
            else:
                tenths[a, b] = math.floor(10 * math.hypot(dx, dy) + 1e-9)
    travel = tenths / 10.0
    nodes = [Node(id=str(i), score=s, service=d, open=o, close=c) for (i, _, _, d, s, o, c) in verts[1:]]
    depot = verts[0]
    return Instance(nodes=nodes, travel=travel, start_time=depot[5], end_time=depot[6])


# --------------------------------------------------------------------------
# Shared preprocessing: integer model for the solver libraries
# --------------------------------------------------------------------------

# Integer time resolution.  Data that is exactly on a decimal grid (e.g. the
# benchmark's tenths) is scaled exactly; anything else is scaled so that the
# horizon is MAX_HORIZON_TICKS ticks and rounded conservatively (travel, service
# and opening up; closing and the end time down), so every route that is
# feasible in the integer model is feasible for the float instance.
MAX_HORIZON_TICKS = 20_000
# Scores that are not integers are scaled so that the largest is this many units.
FLOAT_SCORE_UNITS = 1_000
# PyVRP's time-warp penalty range (its defaults) was tuned against prizes of
# about BENCH_SCORE_UNITS score units; larger score units scale the range along.
BENCH_SCORE_UNITS = 50


@dataclass
class _Prep:
    inst: Instance
    cand: list[int]  # matrix indices (1..n) that can be visited at all
    must: list[int]  # matrix indices of must-include nodes
    scale: float  # ticks per time unit
    # integer data indexed by matrix index (0..n+1), times relative to start_time
    T: np.ndarray
    service: np.ndarray
    open: np.ndarray
    close: np.ndarray
    horizon: int
    units: np.ndarray  # integer score units per matrix index


def _ticks(values, scale: float, how: str) -> np.ndarray:
    """Scale to integer ticks: exact when the value is on the tick grid (up to
    float noise), otherwise rounded conservatively (``how`` = 'up' or 'down')."""
    x = np.asarray(values, dtype=float) * scale
    r = np.round(x)
    on_grid = np.abs(x - r) <= 1e-7 * np.maximum(1.0, np.abs(x))
    out = np.where(on_grid, r, np.ceil(x) if how == "up" else np.floor(x))
    return out.astype(np.int64)


def _choose_scale(values: np.ndarray, horizon: float) -> float:
    x = np.asarray(values, dtype=float).ravel()
    for s in (1, 10, 100, 1000):
        if horizon * s > 10 * MAX_HORIZON_TICKS:
            break
        y = x * s
        if np.all(np.abs(y - np.round(y)) <= 1e-7 * np.maximum(1.0, np.abs(y))):
            return float(s)
    return MAX_HORIZON_TICKS / horizon if horizon > 0 else 1.0


def _prepare(inst: Instance) -> _Prep:
    n = inst.n
    T = inst.travel
    t0 = float(inst.start_time)
    horizon_f = inst.end_time - t0
    if T[0, n + 1] > horizon_f + EPS:
        raise InfeasibleError(
            f"travelling from the start straight to the end place takes {T[0, n + 1]:g}, "
            f"more than the available {horizon_f:g}"
        )
    svc = np.array([0.0] + [nd.service for nd in inst.nodes] + [0.0])
    opn = np.array([0.0] + [nd.open - t0 for nd in inst.nodes] + [0.0])
    cls = np.array([0.0] + [nd.close - t0 for nd in inst.nodes] + [horizon_f])
    scale = _choose_scale(np.concatenate([T.ravel(), svc, opn, cls]), horizon_f)
    Ti = _ticks(T, scale, "up")
    svci = _ticks(svc, scale, "up")
    opni = np.maximum(_ticks(opn, scale, "up"), 0)
    horizon = int(_ticks([horizon_f], scale, "down")[0])
    clsi = np.minimum(_ticks(cls, scale, "down"), horizon)
    clsi[n + 1] = horizon

    scores = np.array([0.0] + [nd.score for nd in inst.nodes] + [0.0])
    if np.all(scores == np.round(scores)) and scores.max() <= 1e6:
        units = scores.astype(np.int64)
    else:
        top = scores.max()
        units = np.round(scores * (FLOAT_SCORE_UNITS / top if top > 0 else 1)).astype(np.int64)

    # a node is a candidate only if start -> node -> end is feasible (integer model)
    cand = []
    for k in range(1, n + 1):
        st = max(Ti[0, k], opni[k])
        if st <= clsi[k] and st + svci[k] + Ti[k, n + 1] <= horizon:
            cand.append(k)
    must = [k for k in range(1, n + 1) if inst.nodes[k - 1].id in inst.must_include]
    return _Prep(inst, cand, must, scale, Ti, svci, opni, clsi, horizon, units)


def _check_must_include(inst: Instance) -> None:
    """Raise InfeasibleError when the must-include nodes provably cannot all fit.

    Works on the float instance.  A required group counts as one item with its
    nodes as alternatives.  Exact for up to 12 items (dynamic programme over
    subsets of items keeping, per last node, the earliest finish time; exact
    because waiting is allowed); for more, only single-item checks, and the
    solver's result decides.
    """
    must = [k for k in range(1, inst.n + 1) if inst.nodes[k - 1].id in inst.must_include]
    members = inst.group_members()
    items: list[tuple[str, list[int]]] = [(inst.nodes[k - 1].id, [k]) for k in must]
    items += [(g, members[g]) for g in sorted(inst.required_groups)]
    if not items:
        return
    T = inst.travel
    nodes = inst.nodes
    end = inst.n + 1
    for name, alternatives in items:
        reasons = []
        for k in alternatives:
            nd = nodes[k - 1]
            arr = inst.start_time + T[0, k]
            st = max(arr, nd.open)
            if st > nd.close + EPS:
                reasons.append(f"it closes at {nd.close:g} but the earliest possible service start is {st:g}")
            elif st + nd.service + T[k, end] > inst.end_time + EPS:
                reasons.append(
                    f"even visiting it alone, the route is back at the end place at "
                    f"{st + nd.service + T[k, end]:g}, after {inst.end_time:g}"
                )
            else:
                break
        else:
            if len(alternatives) == 1:
                raise InfeasibleError(f"must-include node {name!r} cannot be visited: {reasons[0]}", [name])
            raise InfeasibleError(
                f"no node of the required group {name!r} can be visited: "
                + "; ".join(f"{nodes[k - 1].id}: {why}" for k, why in zip(alternatives, reasons)),
                [name],
            )
    m = len(items)
    if m < 2 or m > 12:
        return
    # best[S]: last node -> earliest finish having visited one node of every item in S
    best: list[dict[int, float]] = [{} for _ in range(1 << m)]
    for a, (_, alternatives) in enumerate(items):
        for k in alternatives:
            nd = nodes[k - 1]
            st = max(inst.start_time + T[0, k], nd.open)
            if st <= nd.close + EPS:
                best[1 << a][k] = min(best[1 << a].get(k, math.inf), st + nd.service)
    for S in range(1, 1 << m):
        for ka, t in best[S].items():
            for b in range(m):
                if S >> b & 1:
                    continue
                row = best[S | (1 << b)]
                for kb in items[b][1]:
                    nd = nodes[kb - 1]
                    st = max(t + T[ka, kb], nd.open)
                    if st <= nd.close + EPS and st + nd.service < row.get(kb, math.inf):
                        row[kb] = st + nd.service
    full = (1 << m) - 1
    if not any(t + T[k, end] <= inst.end_time + EPS for k, t in best[full].items()):
        names = [name for name, _ in items]
        raise InfeasibleError(
            f"the must-include nodes {names} cannot all be visited in one route: no visiting "
            f"order respects their time windows and the return by {inst.end_time:g}",
            names,
        )


def _no_route(p: _Prep) -> InfeasibleError:
    ids = [p.inst.nodes[k - 1].id for k in p.must] + sorted(p.inst.required_groups)
    return InfeasibleError(
        f"the solver found no feasible route that visits all must-include nodes {ids}", ids
    )


def _candidate_groups(p: _Prep) -> tuple[list[tuple[str, list[int]]], set[int]]:
    """Groups among the candidates.

    Returns the groups with at least two candidate nodes as (name, matrix
    indices in candidate order), and the matrix indices that are required on
    their own: must-include nodes, and the only candidate of a required group.
    """
    by_group: dict[str, list[int]] = {}
    for k in p.cand:
        g = p.inst.nodes[k - 1].group
        if g is not None:
            by_group.setdefault(g, []).append(k)
    required = set(p.must)
    multi = []
    for g in sorted(by_group):
        ks = by_group[g]
        if len(ks) >= 2:
            multi.append((g, ks))
        elif g in p.inst.required_groups:
            required.add(ks[0])
    return multi, required


def _prize_weight(p: _Prep) -> int:
    """One score unit is worth more than the travel of any route, so travel time
    only breaks ties between routes of equal score."""
    return int(p.T.max() * (len(p.cand) + 1) + 1)


def _finish(p: _Prep, order: Sequence[int], solver: str, **meta) -> Solution:
    """Build the float Solution (earliest-start schedule) for a visit order."""
    inst = p.inst
    ids = [inst.nodes[k - 1].id for k in order]
    sol = schedule_route(inst, ids)
    if sol is None:  # cannot happen thanks to the conservative integer model
        raise RuntimeError(f"{solver} returned a route that is infeasible: {ids}")
    missing = inst.must_include - set(ids)
    visited_groups = {inst.nodes[k - 1].group for k in order}
    if missing or not inst.required_groups <= visited_groups:
        raise _no_route(p)
    return Solution(
        visits=sol.visits,
        score=sol.score,
        end_arrival=sol.end_arrival,
        travel_time=sol.travel_time,
        solver=solver,
        **meta,
    )


# --------------------------------------------------------------------------
# PyVRP adapter (prize-collecting VRPTW, one vehicle) -- the default
# --------------------------------------------------------------------------

#: Iterations used by :func:`solve` when ``max_iterations`` is not given.  On the
#: first benchmark machine (AMD EPYC, 1 core per run) one PyVRP iteration took about
#: 0.4-0.5 ms for 60-100 candidates, so 1500 iterations took 0.5-0.8 s; on the
#: later Intel Xeon VM about 0.9 ms, so there the 1 s cap of the benchmark decides
#: (docs/performance.md).
DEFAULT_ITERATIONS = 1500
#: PyVRP ILS: iterations without improvement before restarting from the best.
NUM_ITERS_NO_IMPROVEMENT = 1500
#: PyVRP granular neighbourhood size (its default is 50).
NUM_NEIGHBOURS = 100


def default_iterations(n_candidates: int) -> int:
    """Deterministic iteration budget used by :func:`solve` when none is given."""
    return DEFAULT_ITERATIONS


def _pyvrp_params(p: _Prep):
    from pyvrp.IteratedLocalSearch import IteratedLocalSearchParams
    from pyvrp.PenaltyManager import PenaltyParams
    from pyvrp.search import NeighbourhoodParams
    from pyvrp.solve import SolveParams

    f = max(1.0, float(p.units.max()) / BENCH_SCORE_UNITS)
    defaults = PenaltyParams()
    return SolveParams(
        ils=IteratedLocalSearchParams(num_iters_no_improvement=NUM_ITERS_NO_IMPROVEMENT),
        neighbourhood=NeighbourhoodParams(num_neighbours=NUM_NEIGHBOURS),
        penalty=PenaltyParams(min_penalty=defaults.min_penalty * f, max_penalty=defaults.max_penalty * f),
    )


def solve_pyvrp(
    instance: Instance,
    *,
    seed: int = 0,
    time_limit: float = 1.0,
    max_iterations: int | None = None,
    params=None,
) -> Solution:
    """Solve with PyVRP's iterated local search (prize-collecting VRPTW).

    One vehicle from the start depot to the end depot with shift window
    [0, end_time - start_time]; each candidate is an optional client
    (``required=False``, must-include ones ``required=True``; a group of
    alternatives is a mutually exclusive ``ClientGroup``) with service
    duration and a time window on the service start; prize = score x weight,
    plus travel as distance cost, so the objective is "maximise score, then
    minimise travel".  Stops after ``max_iterations`` ILS iterations
    (deterministic) or after ``time_limit`` seconds, whichever comes first;
    ``max_iterations=None`` means "time limit only".  ``params`` may override
    PyVRP's ``SolveParams``.
    """
    import warnings

    from pyvrp import Client, ClientGroup, Depot, Location, ProblemData, VehicleType
    from pyvrp import solve as pyvrp_solve
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria

    t_start = time.perf_counter()
    _check_must_include(instance)
    p = _prepare(instance)
    n = instance.n
    cand = p.cand
    if not cand:
        return _finish(p, [], "pyvrp", seed=seed, elapsed=time.perf_counter() - t_start, stopped_by="exact")
    weight = _prize_weight(p)
    locs = [0, n + 1] + cand  # pyvrp location index -> matrix index
    M = np.ascontiguousarray(p.T[np.ix_(locs, locs)], dtype=np.int64)
    multi, must = _candidate_groups(p)
    position = {k: a for a, k in enumerate(cand)}  # matrix index -> PyVRP client index
    group_of = {k: gi for gi, (_, ks) in enumerate(multi) for k in ks}
    data = ProblemData(
        locations=[Location(0.0, 0.0) for _ in locs],
        clients=[
            Client(
                location=2 + a,
                service_duration=int(p.service[k]),
                tw_early=int(p.open[k]),
                tw_late=int(p.close[k]),
                prize=int(p.units[k]) * weight,
                required=k in must,
                group=group_of.get(k),
            )
            for a, k in enumerate(cand)
        ],
        groups=[
            ClientGroup([position[k] for k in ks], required=g in instance.required_groups) for g, ks in multi
        ],
        depots=[Depot(0, tw_early=0, tw_late=p.horizon), Depot(1, tw_early=0, tw_late=p.horizon)],
        vehicle_types=[
            VehicleType(
                num_available=1,
                start_depot=0,
                end_depot=1,
                tw_early=0,
                tw_late=p.horizon,
                unit_distance_cost=1,
            )
        ],
        distance_matrices=[M],
        duration_matrices=[M],
    )
    left = max(0.0, time_limit - (time.perf_counter() - t_start) - 0.005)
    crits = [MaxRuntime(left)]
    if max_iterations is not None:
        crits.insert(0, MaxIterations(max_iterations))
    with warnings.catch_warnings():
        # PyVRP warns when its time-warp penalty hits the cap; with prizes far
        # above travel costs that is expected and harmless (only feasible
        # solutions are ever returned as best).
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        res = pyvrp_solve(
            data,
            MultipleCriteria(crits),
            seed=seed,
            collect_stats=False,
            display=False,
            params=params if params is not None else _pyvrp_params(p),
        )
    best = res.best
    done = max_iterations is not None and res.num_iterations >= max_iterations
    if not best.is_feasible():
        if not done:
            raise SolverTimeout(
                f"no feasible route after {res.num_iterations} iterations, when the "
                f"{time_limit:g} s time limit fired"
            )
        raise _no_route(p)
    order = [cand[act.idx] for route in best.routes() for act in route if act.is_client()]
    return _finish(
        p,
        order,
        "pyvrp",
        seed=seed,
        iterations=res.num_iterations,
        elapsed=time.perf_counter() - t_start,
        stopped_by="iterations" if done else "time",
    )


# --------------------------------------------------------------------------
# OR-Tools adapter (routing with disjunction penalties) -- the comparison
# --------------------------------------------------------------------------


def solve_ortools(
    instance: Instance,
    *,
    seed: int = 0,
    time_limit: float = 1.0,
    max_iterations: int | None = None,
    metaheuristic: str = "TABU_SEARCH",
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION",
) -> Solution:
    """Solve with OR-Tools routing.

    Nodes 0 (start) and n+1 (end); each optional node sits in its own
    disjunction whose drop penalty is score x weight (a group of alternatives
    shares one disjunction); arc cost = travel (tie break); a "time" dimension with transit = travel + service at the origin,
    slack up to the horizon (waiting), cumul = service start restricted to the
    window, end cumul <= horizon.  Tabu search beat guided local search,
    simulated annealing and greedy descent here.  Stops at ``time_limit``;
    ``max_iterations`` maps to OR-Tools' ``solution_limit``.  ``seed`` is
    ignored: OR-Tools routing has none (it is deterministic except for the
    time limit).
    """
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    t_start = time.perf_counter()
    _check_must_include(instance)
    p = _prepare(instance)
    n = instance.n
    cand = p.cand
    if not cand:
        return _finish(p, [], "ortools", seed=seed, elapsed=time.perf_counter() - t_start, stopped_by="exact")
    locs = [0] + cand + [n + 1]
    size = len(locs)
    T = p.T[np.ix_(locs, locs)].astype(np.int64)
    transit = (T + p.service[locs][:, None]).tolist()
    weight = _prize_weight(p)

    multi, must = _candidate_groups(p)
    # A group is one disjunction (at most one node; penalty = the group's best
    # prize).  A member with a smaller prize pays the difference as a cost on
    # every arc into it, so the objective still maximises the score collected.
    cost = T.copy()
    grouped: set[int] = set()
    for _, ks in multi:
        top = max(int(p.units[k]) for k in ks)
        for k in ks:
            cost[:, locs.index(k)] += (top - int(p.units[k])) * weight
        grouped.update(ks)

    manager = pywrapcp.RoutingIndexManager(size, 1, [0], [size - 1])
    routing = pywrapcp.RoutingModel(manager)
    time_cb = routing.RegisterTransitMatrix(transit)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost.tolist()))
    routing.AddDimension(time_cb, p.horizon, p.horizon, True, "time")
    tdim = routing.GetDimensionOrDie("time")
    for a in range(1, size - 1):
        k = locs[a]
        idx = manager.NodeToIndex(a)
        tdim.CumulVar(idx).SetRange(int(p.open[k]), int(p.close[k]))
        if k not in must and k not in grouped:
            routing.AddDisjunction([idx], int(p.units[k]) * weight)
    for g, ks in multi:
        indices = [manager.NodeToIndex(locs.index(k)) for k in ks]
        if g in instance.required_groups:
            routing.AddDisjunction(indices)  # no penalty: exactly one of them
        else:
            routing.AddDisjunction(indices, max(int(p.units[k]) for k in ks) * weight, 1)
    tdim.CumulVar(routing.End(0)).SetMax(p.horizon)
    sp = pywrapcp.DefaultRoutingSearchParameters()
    sp.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, first_solution)
    sp.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, metaheuristic)
    left = max(0.001, time_limit - (time.perf_counter() - t_start) - 0.005)
    sp.time_limit.FromMicroseconds(int(left * 1e6))
    if max_iterations is not None:
        sp.solution_limit = max_iterations
    sol = routing.SolveWithParameters(sp)
    if sol is None:
        raise _no_route(p)
    order = []
    idx = routing.Start(0)
    while not routing.IsEnd(idx):
        node = manager.IndexToNode(idx)
        if 0 < node < size - 1:
            order.append(locs[node])
        idx = sol.Value(routing.NextVar(idx))
    elapsed = time.perf_counter() - t_start
    return _finish(
        p,
        order,
        "ortools",
        seed=seed,
        elapsed=elapsed,
        stopped_by="time" if elapsed >= 0.95 * time_limit else "search finished",
    )


# --------------------------------------------------------------------------
# Default entry point
# --------------------------------------------------------------------------

SOLVERS: dict[str, Callable[..., Solution]] = {
    "pyvrp": solve_pyvrp,
    "ortools": solve_ortools,
}
DEFAULT_SOLVER = "pyvrp"


def solve(
    instance: Instance,
    *,
    seed: int = 0,
    time_limit: float = 1.0,
    max_iterations: int | None = None,
) -> Solution:
    """Best route found for the instance by the default solver (PyVRP).

    Deterministic: stops after ``max_iterations`` iterations (default
    :data:`DEFAULT_ITERATIONS`), so the same instance and seed give the same
    route.  ``time_limit`` (seconds, wall) is a safety cap; if it fires first,
    the route may depend on machine load and ``Solution.stopped_by == "time"``.
    Raises :class:`InfeasibleError` if the must-include nodes cannot all be
    visited.
    """
    if max_iterations is None:
        max_iterations = default_iterations(instance.n)
    return solve_pyvrp(instance, seed=seed, time_limit=time_limit, max_iterations=max_iterations)
