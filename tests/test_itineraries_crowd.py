"""The planner's crowd forecast (pure): live level, recent trend, same night of the week in past weeks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tourapi.domain.itineraries.crowd import CrowdInputs, Forecast, level_of

NOW = 1_784_379_600.0  # 2026-07-18 21:00 +08:00, a multiple of 300 s
WEEK = 7 * 86400


def inputs(**kw) -> CrowdInputs:
    base = {"now": NOW, "interval_s": 300, "capacity": {"g": 100}, "live": {"g": 50}}
    base.update(kw)
    return CrowdInputs(**base)


def test_levels_follow_the_live_crowd_tiers() -> None:
    assert [level_of(r) for r in (0.0, 0.79, 0.8, 0.89, 0.9, 0.999, 1.0, 1.7)] == [
        "comfortable",
        "comfortable",
        "busy",
        "busy",
        "crowded",
        "crowded",
        "full",
        "full",
    ]


def test_live_occupancy_without_snapshots_has_no_trend() -> None:
    f = Forecast(inputs(live={"g": 95}))
    assert f.expected("g", NOW).ratio == pytest.approx(0.95)
    assert f.expected("g", NOW + 7200).ratio == pytest.approx(0.95)  # no snapshot rows: no trend
    assert f.expected("g", NOW).level == "crowded"


def test_live_state_only_applies_near_now() -> None:
    f = Forecast(inputs(live={"g": 100}))
    assert f.expected("g", NOW + 3 * 3600).level == "full"
    assert f.expected("g", NOW + 3 * 3600 + 1).ratio == 0  # too far ahead: history only (none here)
    assert f.expected("g", NOW - 31 * 60).ratio == 0
    assert Forecast(inputs(live=None)).expected("g", NOW).live is None


def test_rising_trend_is_extrapolated_for_an_hour_and_bounded() -> None:
    # Completed buckets 45..5 min ago rising 2 visitors per bucket (52..68), 70 now.
    recent = {"g": {NOW - 300 * k: 52 + 2 * (9 - k) for k in range(1, 10)}}
    f = Forecast(inputs(live={"g": 70}, recent=recent, recent_recorded=True))
    xs = [NOW - 300 * k for k in range(9, 0, -1)] + [NOW]
    ys = [recent["g"][x] / 100 for x in xs[:-1]] + [0.70]
    slope = np.polyfit(xs, ys, 1)[0]
    assert slope > 0
    assert f.expected("g", NOW + 600).ratio == pytest.approx(0.70 + slope * 600)
    assert f.expected("g", NOW + 7200).ratio == pytest.approx(0.70 + min(slope * 3600, 0.25))


def test_a_bucket_without_a_row_counts_as_zero_when_snapshots_were_written() -> None:
    recent = {"g": {NOW - 300 * k: 60 for k in range(1, 9)}}  # 45 min ago: no row, so 0
    f = Forecast(inputs(live={"g": 60}, recent=recent, recent_recorded=True))
    xs = [NOW - 300 * k for k in range(9, 0, -1)] + [NOW]
    ys = [0.0] + [0.6] * 9
    slope = np.polyfit(xs, ys, 1)[0]
    assert f.expected("g", NOW + 1200).ratio == pytest.approx(0.6 + slope * 1200)


def test_steep_trend_is_capped_at_a_quarter_of_capacity() -> None:
    recent = {"g": {NOW - 300 * k: 0 for k in range(1, 10)}}
    f = Forecast(inputs(live={"g": 60}, recent=recent, recent_recorded=True))
    assert f.expected("g", NOW + 3600).ratio == pytest.approx(0.85)


def test_falling_trend_lowers_the_forecast_but_not_below_zero() -> None:
    recent = {"g": {NOW - 300 * k: 10 + 10 * k for k in range(10)}}
    f = Forecast(inputs(live={"g": 10}, recent=recent, recent_recorded=True))
    assert f.expected("g", NOW + 3600).ratio == 0.0


def test_history_is_the_average_of_recorded_weeks_missing_rows_count_as_zero() -> None:
    t = NOW + 1800  # 21:30; its bucket in weeks 1..4 before
    history = {"g": {t - WEEK: 100, t - 2 * WEEK: 80, t - 3 * WEEK + 120: 0}}
    f = Forecast(inputs(live=None, history=history, history_weeks=(1, 2, 3)))
    # weeks 1 and 2: 100 and 80; week 3 recorded (another venue had rows) but not this one: 0
    assert f.expected("g", t).ratio == pytest.approx(60 / 100)
    assert f.expected("g", t + 299).ratio == pytest.approx(0.6)  # same five-minute bucket
    assert f.expected("g", t + 300).ratio == 0


def test_the_forecast_is_the_larger_of_live_and_history() -> None:
    t = NOW + 600
    history = {"g": {t - WEEK: 95}}
    f = Forecast(inputs(live={"g": 20}, history=history, history_weeks=(1,)))
    assert f.expected("g", t).ratio == pytest.approx(0.95) and f.expected("g", t).level == "crowded"
    f = Forecast(inputs(live={"g": 100}, history=history, history_weeks=(1,)))
    assert f.expected("g", t).level == "full"


def every_second_matches(f: Forecast, poi: str, first: int, last: int) -> list[tuple[int, int, str]]:
    spans = f.timeline(poi, first, last)
    assert spans[0][0] == first and spans[-1][1] == last
    for (_, b, la), (a, _, lb) in itertools.pairwise(spans):
        assert a == b + 1 and la != lb  # contiguous, and cut only where the level changes
    for a, b, level in spans:
        assert all(f.expected(poi, t).level == level for t in range(a, b + 1))
    return spans


def test_timeline_is_exact_to_the_second_with_a_rising_trend() -> None:
    # 0 in every completed bucket, 70 % now: steep rise, capped at +25 % an hour ahead
    recent = {"g": {NOW - 300 * k: 0 for k in range(1, 10)}}
    f = Forecast(inputs(live={"g": 70}, recent=recent, recent_recorded=True))
    start = int(NOW) - 40 * 60
    spans = every_second_matches(f, "g", start, int(NOW) + 4 * 3600)
    assert [level for _, _, level in spans] == ["comfortable", "busy", "crowded", "comfortable"]
    assert spans[-1][0] == int(NOW) + 3 * 3600 + 1  # live state no longer applies


def test_timeline_follows_the_history_buckets() -> None:
    t = int(NOW) + 1800
    history = {"g": {t - WEEK: 100, t - WEEK + 300: 95, t - WEEK + 600: 20}}
    f = Forecast(inputs(live=None, history=history, history_weeks=(1,)))
    spans = every_second_matches(f, "g", t - 17, t + 1200)
    assert spans == [
        (t - 17, t - 1, "comfortable"),
        (t, t + 299, "full"),
        (t + 300, t + 599, "crowded"),
        (t + 600, t + 1200, "comfortable"),
    ]


def test_timeline_with_live_trend_and_history_together() -> None:
    rng = np.random.default_rng(7)
    start = int(NOW) - 20 * 60
    history = {
        "g": {float(b - WEEK): int(rng.choice([0, 85, 95, 100])) for b in range(start, start + 4 * 3600, 300)}
    }
    recent = {"g": {NOW - 300 * k: 40 for k in range(1, 10)}}
    f = Forecast(
        inputs(live={"g": 75}, recent=recent, recent_recorded=True, history=history, history_weeks=(1,))
    )
    spans = every_second_matches(f, "g", start + 7, start + 4 * 3600)
    assert {level for _, _, level in spans} >= {"busy", "crowded", "full"}
