"""The OPTW solver's mutually exclusive groups (used by the itinerary planner).

Nodes sharing ``Node.group`` are alternatives (one venue in two opening intervals, the occurrences
of one show, the departures of one boat line): at most one is visited, exactly one for a group in
``Instance.required_groups``. Optima are found here by exhaustive search, independently of the solvers.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyvrp  # noqa: F401  (import cost at collection, not in the first test)
from ortools.constraint_solver import pywrapcp  # noqa: F401

from tourapi.itineraries.solver import (
    InfeasibleError,
    Instance,
    Node,
    Solution,
    Visit,
    check_feasible,
    solve_ortools,
    solve_pyvrp,
)

ITERS = 300


def brute_force(inst: Instance) -> float:
    """Best score over every feasible visit order, honouring groups and required groups."""
    T = np.asarray(inst.travel)
    n = len(inst.nodes)
    best = -1.0

    def dfs(last: int, t: float, visited: frozenset[int], groups: frozenset[str], score: float) -> None:
        nonlocal best
        if t + T[last, n + 1] <= inst.end_time + 1e-9 and inst.required_groups <= groups:
            best = max(best, score)
        for k in range(1, n + 1):
            nd = inst.nodes[k - 1]
            if k in visited or (nd.group is not None and nd.group in groups):
                continue
            start = max(t + T[last, k], nd.open)
            if start <= nd.close + 1e-9:
                extra = frozenset({nd.group}) if nd.group else frozenset()
                dfs(k, start + nd.service, visited | {k}, groups | extra, score + nd.score)

    dfs(0, inst.start_time, frozenset(), frozenset(), 0.0)
    return best


def grouped_instance(seed: int, required: frozenset[str] = frozenset()) -> Instance:
    """Eight nodes on a plane: three 'shows' (one group, fixed start times), two intervals of a
    'venue' (one group) and three plain nodes. Asymmetric travel: one node ends elsewhere (a boat)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 20, size=(9, 2))
    pts[0] = (10, 10)
    ends = pts.copy()
    ends[8] = rng.uniform(0, 20, size=2)  # node 8 is a "boat": it ends somewhere else
    start_of = np.vstack([pts, pts[:1]])
    end_of = np.vstack([ends, ends[:1]])
    travel = np.floor(np.sqrt(((end_of[:, None, :] - start_of[None, :, :]) ** 2).sum(-1)) * 10) / 10
    np.fill_diagonal(travel, 0)
    nodes = [
        Node("show-1", 6, 3, 15, 15, group="show"),
        Node("show-2", 6, 3, 30, 30, group="show"),
        Node("show-3", 6, 3, 45, 45, group="show"),
        Node("venue-am", 8, 10, 0, 20, group="venue"),
        Node("venue-pm", 8, 10, 35, 60, group="venue"),
        Node("a", float(rng.integers(1, 10)), 4, 0, 70),
        Node("b", float(rng.integers(1, 10)), 4, 10, 50),
        Node("boat", 3, 12, 25, 25),
    ]
    return Instance(nodes=nodes, travel=travel, start_time=0.0, end_time=80.0, required_groups=required)


@pytest.mark.parametrize("seed", range(5))
def test_groups_match_brute_force_with_pyvrp(seed: int) -> None:
    inst = grouped_instance(seed)
    sol = solve_pyvrp(inst, max_iterations=ITERS, time_limit=5.0)
    assert check_feasible(inst, sol) == []
    groups = [inst.nodes[[nd.id for nd in inst.nodes].index(v)].group for v in sol.node_ids]
    assert groups.count("show") <= 1 and groups.count("venue") <= 1
    assert sol.score == pytest.approx(brute_force(inst))


@pytest.mark.parametrize("seed", range(3))
def test_groups_match_brute_force_with_ortools(seed: int) -> None:
    inst = grouped_instance(seed)
    sol = solve_ortools(inst, time_limit=0.3)
    assert check_feasible(inst, sol) == []
    assert sol.score == pytest.approx(brute_force(inst))


@pytest.mark.parametrize("seed", range(3))
def test_required_group_is_visited_exactly_once(seed: int) -> None:
    inst = grouped_instance(seed, required=frozenset({"venue"}))
    best = brute_force(inst)
    for sol in (solve_pyvrp(inst, max_iterations=ITERS, time_limit=5.0), solve_ortools(inst, time_limit=0.3)):
        assert check_feasible(inst, sol) == []
        assert len([v for v in sol.node_ids if v.startswith("venue-")]) == 1
        assert sol.score <= best + 1e-9
    # PyVRP (the production solver) finds the optimum; OR-Tools, the comparison, may stop short.
    assert solve_pyvrp(inst, max_iterations=ITERS, time_limit=5.0).score == pytest.approx(best)


def test_unequal_scores_inside_a_group_pick_the_better_member() -> None:
    # Two occurrences of one show at the same place; the later one was penalised (crowded).
    nodes = [Node("early", 10, 5, 10, 10, group="g"), Node("late", 5, 5, 20, 20, group="g")]
    xs = np.array([0.0, 3.0, 3.0, 0.0])
    inst = Instance(nodes, np.abs(xs[:, None] - xs[None, :]), 0.0, 40.0)
    assert solve_pyvrp(inst, max_iterations=ITERS).node_ids == ["early"]
    assert solve_ortools(inst, time_limit=0.2).node_ids == ["early"]


def test_impossible_required_group_names_the_group() -> None:
    nodes = [Node("x1", 1, 0, 0, 2, group="x"), Node("x2", 1, 0, 0, 3, group="x"), Node("y", 1, 0, 0, 50)]
    xs = np.array([0.0, 5.0, 6.0, 1.0, 0.0])
    inst = Instance(nodes, np.abs(xs[:, None] - xs[None, :]), 0.0, 100.0, required_groups=frozenset({"x"}))
    with pytest.raises(InfeasibleError) as exc:
        solve_pyvrp(inst, max_iterations=ITERS)
    assert exc.value.nodes == ("x",)
    assert "x1" in str(exc.value) and "x2" in str(exc.value)


def test_required_group_and_must_node_that_cannot_both_fit() -> None:
    # m must start by 5 at +5; every member of group g must start by 6 at -5: no order works.
    nodes = [Node("m", 1, 0, 0, 5), Node("g1", 1, 0, 0, 6, group="g"), Node("g2", 1, 0, 0, 6, group="g")]
    xs = np.array([0.0, 5.0, -5.0, -5.0, 0.0])
    inst = Instance(
        nodes,
        np.abs(xs[:, None] - xs[None, :]),
        0.0,
        100.0,
        must_include=frozenset({"m"}),
        required_groups=frozenset({"g"}),
    )
    with pytest.raises(InfeasibleError) as exc:
        solve_pyvrp(inst, max_iterations=ITERS)
    assert set(exc.value.nodes) == {"m", "g"}


def test_instance_rejects_bad_group_declarations() -> None:
    xs = np.zeros((4, 4))
    with pytest.raises(ValueError, match="groups without nodes"):
        Instance([Node("a", 1, 0, 0, 5), Node("b", 1, 0, 0, 5)], xs, 0, 10, required_groups=frozenset({"zz"}))
    with pytest.raises(ValueError, match="belong to a group"):
        Instance(
            [Node("a", 1, 0, 0, 5, group="g"), Node("b", 1, 0, 0, 5)],
            xs,
            0,
            10,
            must_include=frozenset({"a"}),
        )


def test_check_feasible_reports_group_violations() -> None:
    nodes = [
        Node("a", 1, 1, 0, 50, group="g"),
        Node("b", 1, 1, 0, 50, group="g"),
        Node("c", 1, 1, 0, 50, group="h"),
    ]
    xs = np.array([0.0, 1.0, 1.0, 2.0, 0.0])
    inst = Instance(nodes, np.abs(xs[:, None] - xs[None, :]), 0.0, 100.0, required_groups=frozenset({"h"}))
    both = Solution(visits=[Visit("a", 1, 1, 2), Visit("b", 2, 2, 3)], score=2, end_arrival=4, travel_time=2)
    problems = "\n".join(check_feasible(inst, both))
    assert "group 'g' is visited twice" in problems
    assert "required groups not visited: ['h']" in problems


def test_groups_are_deterministic() -> None:
    inst = grouped_instance(7)
    a = solve_pyvrp(inst, seed=0, max_iterations=200, time_limit=5.0)
    b = solve_pyvrp(inst, seed=0, max_iterations=200, time_limit=5.0)
    assert a.stopped_by == b.stopped_by == "iterations"
    assert a.visits == b.visits
