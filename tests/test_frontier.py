"""course_lib.frontier: measuring configurations, the Pareto front, the choice under a budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import frontier

ROW = st.fixed_dictionaries({"bytes/doc": st.integers(1, 8).map(float), "nDCG@10": st.integers(0, 6).map(lambda g: g / 6),
                             "ms/query": st.integers(1, 4).map(float)})


def _dominates(a, b):
    return (a["bytes/doc"] <= b["bytes/doc"] and a["nDCG@10"] >= b["nDCG@10"]
            and (a["bytes/doc"] < b["bytes/doc"] or a["nDCG@10"] > b["nDCG@10"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=15))
def test_pareto_front_keeps_exactly_the_undominated_rows_in_cost_order(rows):
    front = frontier.pareto_front(rows)
    assert front, "some row is always undominated"
    for i, row in enumerate(rows):
        dominated = any(_dominates(other, row) for other in rows)
        assert (i in front) != dominated, (i, row)
    keys = [(rows[i]["bytes/doc"], -rows[i]["nDCG@10"], i) for i in front]
    assert keys == sorted(keys)


def test_pareto_front_on_a_worked_example_and_another_gain_column():
    rows = [{"bytes/doc": 1536, "nDCG@10": 0.65, "u": 0.60}, {"bytes/doc": 48, "nDCG@10": 0.58, "u": 0.61},
            {"bytes/doc": 768, "nDCG@10": 0.64, "u": 0.62}, {"bytes/doc": 96, "nDCG@10": 0.50, "u": 0.40}]
    assert frontier.pareto_front(rows) == [1, 2, 0]
    assert frontier.pareto_front(rows, gain="u") == [1, 2]
    with pytest.raises(ValueError, match=r"row 0 .* has no \['v'\]"):
        frontier.pareto_front(rows, gain="v")
    with pytest.raises(ValueError, match="at least one"):
        frontier.pareto_front([])


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=12), st.integers(1, 9), st.one_of(st.none(), st.integers(1, 4)))
def test_pick_config_is_the_best_row_that_fits(rows, budget, max_ms):
    choice = frontier.pick_config(rows, budget, max_ms)
    fits = [i for i, r in enumerate(rows) if r["bytes/doc"] <= budget and (max_ms is None or r["ms/query"] <= max_ms)]
    if not fits:
        assert choice is None
        return
    assert choice in fits
    best = max(rows[i]["nDCG@10"] for i in fits)
    assert rows[choice]["nDCG@10"] == best
    ties = [i for i in fits if rows[i]["nDCG@10"] == best]
    assert rows[choice]["bytes/doc"] == min(rows[i]["bytes/doc"] for i in ties)
    if max_ms is None:  # nothing that fits beats it, so nothing at all dominates it
        assert choice in frontier.pareto_front(rows)


@pytest.mark.parametrize("budget", [0, -1, float("nan"), "100", True, None])
def test_pick_config_refuses_a_budget_that_is_not_a_positive_number(budget):
    with pytest.raises(ValueError, match="budget must be a positive number"):
        frontier.pick_config([{"bytes/doc": 1, "nDCG@10": 0.5}], budget)


def test_pick_config_needs_a_latency_column_only_with_max_ms():
    rows = [{"bytes/doc": 10, "nDCG@10": 0.5}]
    assert frontier.pick_config(rows, 10) == 0
    with pytest.raises(ValueError, match=r"has no \['ms/query'\]"):
        frontier.pick_config(rows, 10, max_ms=1.0)


def test_tradeoff_numbers_and_bad_indices():
    rows = [{"bytes/doc": 1536, "nDCG@10": 0.64}, {"bytes/doc": 48, "nDCG@10": 0.576}, {"bytes/doc": 56000, "nDCG@10": 0.72}]
    t = frontier.tradeoff(rows, 1)
    assert t["times smaller"] == pytest.approx(32) and t["retention"] == pytest.approx(0.9)
    assert t["gap to best"] == pytest.approx(0.144)
    assert frontier.tradeoff(rows, 2, reference=1)["times smaller"] == pytest.approx(48 / 56000)
    for bad in (3, -1, 1.0, None):
        with pytest.raises(ValueError, match="choice must be a row index"):
            frontier.tradeoff(rows, bad)


def test_budget_per_document():
    assert frontier.budget_per_document(1000, 10, reserve=0) == 100
    assert frontier.budget_per_document(1000, 10) == 75
    with pytest.raises(ValueError, match="reserve"):
        frontier.budget_per_document(1000, 10, reserve=1)
    with pytest.raises(ValueError, match="n_docs"):
        frontier.budget_per_document(1000, 0)


QIDS, DIDS = ["q1", "q2"], ["d0", "d1", "d2"]
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_measure_scores_the_run_and_each_subset():
    perfect = (np.array([[2.0, 1.0], [2.0, 1.0]]), np.array([[1, 0], [2, 0]]))
    row = frontier.measure("perfect", "toy", 12, lambda: perfect, QIDS, DIDS, QRELS, {"q2 only": {"q2": {"d2": 1}}})
    assert row["nDCG@10"] == 1.0 and row["nDCG@10 q2 only"] == 1.0 and row["bytes/doc"] == 12.0
    assert row["name"] == "perfect" and row["family"] == "toy" and row["ms/query"] >= 0
    swapped = (np.array([[2.0, 1.0], [2.0, 1.0]]), np.array([[1, 0], [0, 2]]))  # q2's document second
    row = frontier.measure("half", "toy", 12, lambda: swapped, QIDS, DIDS, QRELS, {"q2 only": {"q2": {"d2": 1}}})
    assert row["nDCG@10 q2 only"] == pytest.approx(1 / np.log2(3), abs=1e-4)
    assert row["nDCG@10"] == pytest.approx((1 + 1 / np.log2(3)) / 2, abs=1e-4)


def test_measure_repeats_fast_searches_only_and_checks_shapes():
    calls = []

    def fast():
        calls.append(1)
        return np.zeros((2, 1)), np.zeros((2, 1), np.int64)

    frontier.measure("x", "toy", 1, fast, QIDS, DIDS, QRELS, repeat=3)
    assert len(calls) == 3
    calls.clear()
    frontier.measure("x", "toy", 1, fast, QIDS, DIDS, QRELS, repeat=3, slow_s=-1)  # every call counts as slow
    assert len(calls) == 1
    with pytest.raises(ValueError, match=r"search of 'x' must return \(Q, k\)"):
        frontier.measure("x", "toy", 1, lambda: (np.zeros((1, 1)), np.zeros((1, 1), np.int64)), QIDS, DIDS, QRELS)
    with pytest.raises(ValueError, match="bytes_per_doc of 'x' must be > 0"):
        frontier.measure("x", "toy", 0, fast, QIDS, DIDS, QRELS)
