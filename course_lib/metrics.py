"""Retrieval metrics that agree with trec_eval (checked against ``pytrec_eval`` to 1e-6).

A *run* is ``{query_id: {doc_id: score}}``; *qrels* are ``{query_id: {doc_id: relevance}}``.

Definitions (``rel(d)`` is the judged relevance, 0 when unjudged; a document is *relevant* when
``rel(d) >= 1``; ``R`` is the number of relevant documents of the query; ranks start at 1):

- ``ndcg@k  = DCG@k / IDCG@k`` with ``DCG@k = sum_{i<=k} rel(d_i) / log2(i + 1)`` (linear gain, as
  trec_eval's ``ndcg_cut``), IDCG from the judged relevances sorted in decreasing order;
- ``recall@k = |relevant in top k| / R``;
- ``precision@k = |relevant in top k| / k`` (k, even when fewer documents were retrieved);
- ``map@k = (1/R) * sum over relevant d_i with i <= k of precision@i`` (trec_eval's ``map_cut``);
- ``mrr@k = 1 / rank of the first relevant document in the top k``, 0 if none.

Tie-breaking (trec_eval's rule): documents are ranked by score, descending; equal scores are
ordered by document id in *descending* string order. So a run's ranking depends only on its scores
and ids, never on dict order.

Averaging: over every query in ``qrels``. A query missing from the run, or with an empty ranking,
scores 0 on every metric (``trec_eval -c``). A query whose judgements are all 0 has ``R = 0`` and
scores 0 too. Ids are str (:mod:`course_lib.validation`): ``1`` and ``"1"``, or ``"d1 "`` and ``"d1"``, are
refused rather than silently never matched, and a run that retrieved documents for none of the qrels'
queries is an error, not a score of 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from course_lib import validation as V

METRICS = ("ndcg", "recall", "mrr", "map", "precision")


def _check_k_values(k_values: Iterable[int]) -> tuple[int, ...]:
    """Cut-offs: a non-empty list or tuple of positive ints (they may exceed a ranking's length)."""
    ks = tuple(V.check_sequence("k_values", k_values, "positive ints"))
    if not ks:
        raise ValueError("k_values must not be empty")
    for k in ks:
        if not V.is_int(k) or k < 1:
            raise ValueError(f"k_values must be positive ints, got {k!r}")
    return tuple(int(k) for k in ks)


def _check_inputs(run: Mapping, qrels: Mapping) -> None:
    V.check_run("run", run)
    V.check_qrels("qrels", qrels)
    V.check_run_matches_qrels(run, qrels)


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids ranked by score descending, ties by doc id descending (trec_eval's order).

    >>> rank({"a": 1.0, "b": 2.0, "c": 1.0})
    ['b', 'c', 'a']
    """
    V.check_scores_map("scores", scores)
    return [d for d, _ in sorted(scores.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def query_metrics(ranking: list[str], rels: Mapping[str, int], k_values: Iterable[int]) -> dict[str, float]:
    """All metrics of one query, given its ranked doc ids (no repeats) and its judgements."""
    ks = _check_k_values(k_values)
    ranking = V.check_ids("ranking", ranking)
    V.check_qrels("rels", {"query": rels})
    n_rel = sum(1 for r in rels.values() if r >= 1)
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)
    gains = [max(rels.get(d, 0), 0) for d in ranking]
    out: dict[str, float] = {}
    for k in ks:
        top = gains[:k]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(top) if g > 0)
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal[:k]))
        hits, first, ap = 0, 0.0, 0.0
        for i, g in enumerate(top, start=1):
            if g >= 1:
                hits += 1
                ap += hits / i
                if not first:
                    first = 1.0 / i
        out[f"ndcg@{k}"] = dcg / idcg if idcg > 0 else 0.0
        out[f"recall@{k}"] = hits / n_rel if n_rel else 0.0
        out[f"mrr@{k}"] = first
        out[f"map@{k}"] = ap / n_rel if n_rel else 0.0
        out[f"precision@{k}"] = hits / k
    return out


def evaluate_per_query(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                       k_values: Iterable[int] = (1, 3, 5, 10, 100)) -> dict[str, dict[str, float]]:
    """Metrics for every query in ``qrels``: ``{query_id: {"ndcg@10": ..., ...}}``."""
    _check_inputs(run, qrels)
    ks = _check_k_values(k_values)
    return {qid: query_metrics(rank(run.get(qid, {})), rels, ks) for qid, rels in qrels.items()}


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             k_values: Iterable[int] = (1, 3, 5, 10, 100)) -> dict[str, float]:
    """Mean ndcg@k, recall@k, mrr@k, map@k and precision@k over the queries in ``qrels``.

    Parameters
    ----------
    run : dict[str, dict[str, float]]
        query id -> {doc id -> score}; higher is better.
    qrels : dict[str, dict[str, int]]
        query id -> {doc id -> relevance}.
    k_values : iterable of int
        Cut-offs.

    Returns
    -------
    dict[str, float]
        Keys ``"ndcg@k"``, ``"recall@k"``, ``"mrr@k"``, ``"map@k"``, ``"precision@k"`` for each k.

    Examples
    --------
    >>> run = {"q1": {"d1": 0.9, "d2": 0.8}, "q2": {"d3": 0.1}}
    >>> qrels = {"q1": {"d2": 1}, "q2": {"d4": 1}}
    >>> m = evaluate(run, qrels, k_values=(1, 10))
    >>> m["mrr@10"], m["recall@1"], round(m["ndcg@10"], 4)
    (0.25, 0.0, 0.3155)
    """
    V.check_qrels("qrels", qrels, nonempty=True)
    per_query = evaluate_per_query(run, qrels, k_values)
    keys = next(iter(per_query.values())).keys()
    n = len(per_query)
    return {key: sum(m[key] for m in per_query.values()) / n for key in keys}
