"""Hybrid retrieval: fuse a dense and a sparse run.

- Reciprocal rank fusion (Cormack et al., 2009): ``RRF(d) = sum_r 1 / (k + rank_r(d))``, ranks from 1,
  a document absent from a run contributes nothing. Only ranks matter, so no score scaling is needed.
- Convex combination of normalized scores: ``alpha * norm(s_dense) + (1 - alpha) * norm(s_sparse)``
  with per-query min-max normalization to [0, 1]; a document missing from one run gets 0 there.

Rankings inside a run follow :func:`course_lib.metrics.rank` (score descending, ties by doc id descending).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from course_lib import validation as V
from course_lib.metrics import rank

Run = Mapping[str, Mapping[str, float]]


def rrf(runs: Sequence[Run], k: int = 60, depth: int | None = None) -> dict[str, dict[str, float]]:
    """Reciprocal rank fusion of several runs.

    Parameters
    ----------
    runs : sequence of run dicts
    k : int
        The damping constant (60 in the original paper).
    depth : int or None
        Use only each run's top ``depth`` documents (a cut-off: a positive int, which may exceed a run's
        length; None reads every document).

    >>> fused = rrf([{"q": {"a": 0.9, "b": 0.5}}, {"q": {"b": 12.0, "c": 3.0}}], k=60)
    >>> [d for d, _ in sorted(fused["q"].items(), key=lambda x: -x[1])]
    ['b', 'a', 'c']
    """
    runs = V.check_sequence("runs", runs, "run dicts")
    if not runs:
        raise ValueError("runs must hold at least one run")
    for i, run in enumerate(runs):
        V.check_run(f"runs[{i}]", run)
    k = V.check_int("k", k, low=0, what="the damping constant")
    depth = V.check_cutoff("depth", depth, allow_none=True)
    fused: dict[str, dict[str, float]] = {}
    for run in runs:
        for qid, scores in run.items():
            out = fused.setdefault(qid, {})
            for r, doc in enumerate(rank(scores)[:depth], start=1):
                out[doc] = out.get(doc, 0.0) + 1.0 / (k + r)
    return fused


def minmax(scores: Mapping[str, float]) -> dict[str, float]:
    """Scale one query's scores to [0, 1]; all-equal scores become 1.

    >>> minmax({"a": 2.0, "b": 4.0, "c": 3.0})
    {'a': 0.0, 'b': 1.0, 'c': 0.5}
    """
    V.check_scores_map("scores", scores)
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {d: 1.0 for d in scores}
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def convex(dense: Run, sparse: Run, alpha: float) -> dict[str, dict[str, float]]:
    """``alpha * minmax(dense) + (1 - alpha) * minmax(sparse)`` per query, over the union of documents."""
    V.check_run("dense", dense)
    V.check_run("sparse", sparse)
    try:
        V.check_number("alpha", alpha, low=0, high=1)
    except ValueError:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}") from None
    out: dict[str, dict[str, float]] = {}
    for qid in set(dense) | set(sparse):
        a, b = minmax(dense.get(qid, {})), minmax(sparse.get(qid, {}))
        out[qid] = {d: alpha * a.get(d, 0.0) + (1 - alpha) * b.get(d, 0.0) for d in set(a) | set(b)}
    return out
