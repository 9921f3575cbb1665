"""The statistics and the decision rules, on counts (no Prometheus): the correction for repeated
looks keeps its promise, a metric needs significance and an effect size to fail, thin data is
never a pass, and the decision resumes from what git recorded."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from generator.canary.checks import Check
from generator.canary.decision import Kind, Previous, Window, decide, next_weight
from generator.canary.queries import percentile_bound
from generator.canary.stats import Counts, Verdict, judge, look_alpha
from generator.config import CanaryAnalysis

POLICY = CanaryAnalysis(minRequests=100, failuresToAbort=2, warmupSeconds=10, bakeSeconds=60, intervalSeconds=30)


def test_the_looks_of_a_step_spend_at_most_alpha_in_all():
    spent = sum(look_alpha(0.05, k) for k in range(1, 100_000))
    assert spent < 0.05 and math.isclose(spent, 0.05, rel_tol=1e-4)
    assert look_alpha(0.05, 2) == pytest.approx(look_alpha(0.05, 1) / 4)
    with pytest.raises(ValueError):
        look_alpha(0.05, 0)


def _judge(canary: tuple[int, int], stable: tuple[int, int], *, alpha: float = 0.01, increase: float = 0.005):
    return judge(Counts(*canary), Counts(*stable), max_increase=increase, cap=0.05, alpha=alpha, min_requests=100)


def test_a_canary_worse_than_stable_fails_only_with_significance_and_effect():
    assert _judge((10, 160), (0, 480)).verdict is Verdict.FAIL  # 1 in 16 against none
    significant_but_small = _judge((30, 10_000), (0, 10_000), increase=0.005)  # +0.3 points
    assert significant_but_small.p_vs_stable < 1e-6 and significant_but_small.verdict is Verdict.PASS
    large_but_chance = _judge((2, 100), (0, 100))  # +2 points on two errors
    assert large_but_chance.effect > 0.005 and large_but_chance.verdict is Verdict.PASS


def test_the_p_value_is_scipys_one_sided_fisher_exact_test():
    result = _judge((7, 200), (2, 600))
    expected = stats.fisher_exact([[7, 193], [2, 598]], alternative="greater").pvalue
    assert result.p_vs_stable == pytest.approx(expected)


def test_a_canary_above_the_cap_fails_even_when_stable_is_as_bad():
    result = _judge((100, 1000), (100, 1000))
    assert result.p_vs_stable > 0.5 and result.verdict is Verdict.FAIL and "above the cap" in result.why


def test_a_test_without_its_threshold_is_not_made():
    only_cap = judge(Counts(100, 1000), Counts(0, 1000), max_increase=None, cap=0.05, alpha=0.01, min_requests=100)
    assert math.isnan(only_cap.p_vs_stable) and only_cap.verdict is Verdict.FAIL and "above the cap" in only_cap.why
    only_stable = judge(Counts(60, 1000), Counts(0, 1000), max_increase=0.01, cap=None, alpha=0.01, min_requests=100)
    assert math.isnan(only_stable.p_vs_cap) and only_stable.verdict is Verdict.FAIL


def test_stables_p99_is_the_first_bucket_holding_99_percent():
    buckets = [("0.005", 900.0), ("0.01", 985.0), ("0.025", 995.0), ("+Inf", 1000.0), ("0.05", 1000.0)]
    assert percentile_bound(buckets, 0.99) == "0.025"
    assert percentile_bound(buckets, 0.9) == "0.005"
    assert percentile_bound([], 0.99) == "+Inf" and percentile_bound([("+Inf", 0.0)], 0.99) == "+Inf"


def test_too_few_requests_are_insufficient_never_a_pass():
    assert _judge((0, 99), (0, 5000)).verdict is Verdict.INSUFFICIENT
    assert _judge((50, 99), (0, 5000)).verdict is Verdict.INSUFFICIENT
    assert _judge((0, 5000), (0, 0)).verdict is Verdict.INSUFFICIENT


def _result(verdict: Verdict):
    counts = {Verdict.PASS: (0, 500), Verdict.FAIL: (60, 500), Verdict.INSUFFICIENT: (0, 5)}[verdict]
    return _judge(counts, (0, 1500))


OK = [Check("targets", True, ""), Check("bake", True, "")]
WINDOW = Window.of(1000, 1000 + 10 + 90, POLICY)  # look 3


def test_the_window_ends_at_the_last_look():
    assert (WINDOW.start, WINDOW.look, WINDOW.end) == (1010, 3, 1100)
    assert Window.of(1000, 1000 + 10 + 89, POLICY).end == 1070  # running more often adds no look
    assert Window.of(1000, 1005, POLICY).look == 0


def test_all_metrics_passing_steps_to_the_next_weight_and_the_last_promotes():
    decision = decide(POLICY, 25, WINDOW, OK, [("error_ratio", _result(Verdict.PASS))], None)
    assert (decision.kind, decision.weight, decision.record) == (Kind.STEP, 50, True)
    assert next_weight(POLICY.steps, 50) == 100 and next_weight(POLICY.steps, 30) == 50


def test_failing_evaluations_abort_after_failures_to_abort_in_a_row():
    failing = [("error_ratio", _result(Verdict.FAIL))]
    first = decide(POLICY, 25, WINDOW, OK, failing, None)
    assert (first.kind, first.failures, first.record) == (Kind.HOLD, 1, True)
    second = decide(POLICY, 25, WINDOW, OK, failing, Previous("HOLD", first.reason, first.failures))
    assert (second.kind, second.weight) == (Kind.ABORT, 0)


def test_a_hold_records_only_a_new_reason_and_never_the_expected_wait():
    short = [("error_ratio", _result(Verdict.INSUFFICIENT))]
    first = decide(POLICY, 25, WINDOW, OK, short, Previous("STEP", "every metric passes", 0))
    assert (first.kind, first.record) == (Kind.HOLD, True) and first.reason.startswith("insufficient data")
    again = decide(POLICY, 25, WINDOW, OK, short, Previous("HOLD", first.reason, 0))
    assert (again.kind, again.record) == (Kind.HOLD, False)
    baking = [Check("targets", True, ""), Check("bake", False, "")]
    assert decide(POLICY, 25, WINDOW, baking, short, None).record is False
    broken = [Check("targets", False, ""), Check("bake", True, "")]
    held = decide(POLICY, 25, WINDOW, broken, [("error_ratio", _result(Verdict.FAIL))], None)
    assert (held.kind, held.reason, held.record) == (Kind.HOLD, "pre-check failed: targets", True)


def test_a_hold_past_max_hold_aborts():
    late = Window.of(1000, 1000 + 10 + POLICY.bake_seconds + POLICY.max_hold_seconds + 1, POLICY)
    decision = decide(POLICY, 25, late, OK, [("error_ratio", _result(Verdict.INSUFFICIENT))], None)
    assert (decision.kind, decision.weight) == (Kind.ABORT, 0) and "maxHoldSeconds" in decision.reason
