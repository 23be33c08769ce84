"""course_lib.metrics agrees with trec_eval (through pytrec_eval) to 1e-6, ties and gaps included."""

from __future__ import annotations

import math

import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.metrics import evaluate, evaluate_per_query, rank

KS = (1, 3, 5, 10)
MEASURES = {"ndcg_cut." + ",".join(map(str, KS)), "recall." + ",".join(map(str, KS)),
            "P." + ",".join(map(str, KS)), "map_cut." + ",".join(map(str, KS)), "recip_rank"}
OURS_TO_TREC = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut"}

doc_ids = st.sampled_from([f"d{i}" for i in range(12)] + ["D1", "d10a", "a"])
# few distinct scores, so ties are common
scores = st.sampled_from([0.0, 0.25, 0.5, 0.5000001, 1.0, -1.0, 3.0])


@st.composite
def run_and_qrels(draw):
    qids = draw(st.lists(st.sampled_from([f"q{i}" for i in range(6)]), min_size=1, max_size=6, unique=True))
    qrels = {q: draw(st.dictionaries(doc_ids, st.integers(0, 3), min_size=1, max_size=8)) for q in qids}
    run_qids = draw(st.lists(st.sampled_from(qids + ["q_extra"]), unique=True, max_size=len(qids) + 1))
    run = {q: draw(st.dictionaries(doc_ids, scores, max_size=12)) for q in run_qids}  # may be empty
    return run, qrels


def trec(run, qrels):
    return pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)


@settings(max_examples=400, deadline=None)
@given(run_and_qrels())
def test_every_metric_matches_trec_eval(case):
    run, qrels = case
    if any(docs for docs in run.values()) and not any(docs and q in qrels for q, docs in run.items()):
        # a run that retrieved documents for none of the qrels' queries: the ids do not match (an error, not 0)
        with pytest.raises(ValueError, match="share no query id"):
            evaluate_per_query(run, qrels, KS)
        return
    ours = evaluate_per_query(run, qrels, KS)
    ref = trec(run, qrels)
    for qid in qrels:
        for k in KS:
            for name, trec_name in OURS_TO_TREC.items():
                want = ref.get(qid, {}).get(f"{trec_name}_{k}", 0.0)  # absent from trec_eval's answer: 0 (-c)
                assert math.isclose(ours[qid][f"{name}@{k}"], want, abs_tol=1e-6), (qid, name, k)
            # mrr@k is trec_eval's recip_rank of the run cut to its first k documents (same tie rule) ...
            cut = {qid: {d: run[qid][d] for d in rank(run[qid])[:k]}} if qid in run else {}
            want_rr = trec(cut, {qid: qrels[qid]}).get(qid, {}).get("recip_rank", 0.0)
            assert math.isclose(ours[qid][f"mrr@{k}"], want_rr, abs_tol=1e-6)
        # ... and, with k past the run's length, its full recip_rank (an independent check of the tie rule)
        k_all = max(len(run.get(qid, {})), 1)
        alone = {qid: run[qid]} if qid in run else {}  # this query's ranking only (an empty run scores 0)
        full = evaluate_per_query(alone, {qid: qrels[qid]}, (k_all,))[qid][f"mrr@{k_all}"]
        assert math.isclose(full, ref.get(qid, {}).get("recip_rank", 0.0), abs_tol=1e-6)
    means = evaluate(run, qrels, KS)
    for key, value in means.items():
        assert math.isclose(value, sum(ours[q][key] for q in qrels) / len(qrels), abs_tol=1e-12)


def test_tie_rule_is_score_then_doc_id_descending():
    assert rank({"d1": 0.5, "d3": 0.5, "d2": 0.9, "d10": 0.5}) == ["d2", "d3", "d10", "d1"]
    qrels = {"q": {"d1": 1}}
    run = {"q": {"d1": 0.5, "d2": 0.5, "d3": 0.5}}
    assert evaluate(run, qrels, (10,))["mrr@10"] == pytest.approx(1 / 3)
    assert trec(run, qrels)["q"]["recip_rank"] == pytest.approx(1 / 3)


def test_hand_computed_values():
    qrels = {"q1": {"a": 1, "b": 1, "c": 0}, "q2": {"x": 2}}
    run = {"q1": {"c": 3.0, "a": 2.0, "z": 1.0, "b": 0.5}}  # q2 missing: scores 0
    m = evaluate(run, qrels, (1, 4))
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@4"] == pytest.approx(dcg / idcg / 2)
    assert m["recall@4"] == pytest.approx(0.5) and m["recall@1"] == 0.0
    assert m["precision@4"] == pytest.approx(0.25)
    assert m["mrr@4"] == pytest.approx(0.25)
    assert m["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 2 / 2)


def test_empty_run_scores_zero():
    assert set(evaluate({}, {"q": {"d": 1}}, (1, 10)).values()) == {0.0}
    assert set(evaluate({"q": {}}, {"q": {"d": 1}}, (1,)).values()) == {0.0}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="qrels must hold at least one query"):
        evaluate({}, {})
    with pytest.raises(ValueError, match=r"run\['q'\]\['d'\] must be a finite number, got nan"):
        evaluate({"q": {"d": float("nan")}}, {"q": {"d": 1}})
    with pytest.raises(TypeError, match=r"qrels\['q'\]\['d'\] must be an int relevance"):
        evaluate({}, {"q": {"d": 1.0}})
    with pytest.raises(ValueError, match="k_values must be positive ints, got 0"):
        evaluate({}, {"q": {"d": 1}}, (0,))
    with pytest.raises(TypeError, match="run must be a dict"):
        evaluate([("q", "d")], {"q": {"d": 1}})
