"""The compression-quality frontier: measure retrieval configurations, find the Pareto front, choose one.

A *configuration* is one way to store and search a corpus (fp32 vectors, binary codes with rescoring, MRL
prefixes, token vectors, BM25 postings ...). Each is measured on the same task as one row::

    {"name": str, "family": str, "bytes/doc": float, "nDCG@10": float, "ms/query": float, ...}

``bytes/doc`` is what the index stores per document, ``nDCG@10`` its quality, ``ms/query`` the search time
(query encoding excluded). A row is on the **Pareto front** if no other row is at most as large and at least
as good, and strictly better in one of the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from course_lib import validation as V

COST, GAIN, LATENCY = "bytes/doc", "nDCG@10", "ms/query"


def measure(name: str, family: str, bytes_per_doc: float, search: Callable[[], tuple[np.ndarray, np.ndarray]],
            query_ids: Sequence[str], doc_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]],
            subsets: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None, repeat: int = 3,
            slow_s: float = 2.0) -> dict:
    """Run one configuration's search over all queries, time it, and score it.

    Parameters
    ----------
    search : callable
        ``search() -> (scores, indices)``, each (Q, k), best first, rows of ``doc_ids``; the whole query
        set in one call. Timed ``repeat`` times (once if the first call takes over ``slow_s`` s); the best
        time divided by Q is ``ms/query``.
    subsets : mapping, optional
        ``label -> qrels`` of query subsets, scored from the same run (``"nDCG@10 <label>"`` columns).

    Returns
    -------
    dict
        ``name, family, bytes/doc, nDCG@10, ms/query`` (and one column per subset).

    Examples
    --------
    A search that ranks d0 above d1 for both queries: q0's document is 1st, q1's 2nd (1 / log2(3)).

    >>> search = lambda: (np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([[0, 1], [0, 1]]))  # (Q, k) each
    >>> row = measure("toy", "float", 16, search, ["q0", "q1"], ["d0", "d1"], {"q0": {"d0": 1}, "q1": {"d1": 1}},
    ...               subsets={"q1 only": {"q1": {"d1": 1}}})
    >>> {k: v for k, v in row.items() if k != "ms/query"}  # (1 + 1 / log2(3)) / 2, and q1 alone
    {'name': 'toy', 'family': 'float', 'bytes/doc': 16.0, 'nDCG@10': 0.8155, 'nDCG@10 q1 only': 0.6309}
    >>> row["ms/query"] >= 0
    True
    """
    from course_lib.metrics import evaluate
    from course_lib.search import run_from_topk

    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not isinstance(family, str):
        raise TypeError(f"family must be a str, got {type(family).__name__}")
    try:
        V.check_number("bytes_per_doc", bytes_per_doc, low=0, low_open=True)
    except ValueError:
        raise ValueError(f"bytes_per_doc of {name!r} must be > 0, got {bytes_per_doc!r}") from None
    V.check_callable("search", search)
    query_ids = V.check_ids("query_ids", query_ids, nonempty=True)
    doc_ids = V.check_ids("doc_ids", doc_ids, nonempty=True)
    V.check_qrels("qrels", qrels, nonempty=True)
    for label, sub in (subsets or {}).items():
        V.check_qrels(f"subsets[{label!r}]", sub, nonempty=True)
        if set(sub) - set(query_ids):
            raise ValueError(f"subsets[{label!r}] holds query ids not in query_ids, e.g. "
                             f"{sorted(set(sub) - set(query_ids))[0]!r}")
    repeat = V.check_int("repeat", repeat, low=1)
    V.check_number("slow_s", slow_s)  # <= 0: every call counts as slow (one run)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        scores, indices = search()  # (Q, k) each
        times.append(time.perf_counter() - start)
        if times[0] > slow_s:
            break
    if not isinstance(scores, np.ndarray) or not isinstance(indices, np.ndarray) or scores.shape != indices.shape \
            or scores.ndim != 2 or scores.shape[0] != len(query_ids):
        raise ValueError(f"search of {name!r} must return (Q, k) scores and indices for Q={len(query_ids)} "
                         f"queries, got {V.describe(scores)} and {V.describe(indices)}")
    run = run_from_topk(scores, indices, query_ids, doc_ids)
    row = {"name": name, "family": family, COST: round(float(bytes_per_doc), 1),
           GAIN: round(evaluate(run, qrels)["ndcg@10"], 4), LATENCY: round(1e3 * min(times) / len(query_ids), 4)}
    for label, sub in (subsets or {}).items():
        row[f"{GAIN} {label}"] = round(evaluate({q: run[q] for q in sub}, sub)["ndcg@10"], 4)
    return row


def _check_rows(rows: Sequence[Mapping], keys: Sequence[str]) -> None:
    """Rows: a non-empty list of dicts whose ``keys`` hold finite numbers (NaN would win or lose silently)."""
    rows = V.check_sequence("rows", rows, "row dicts")
    if not rows:
        raise ValueError("rows must hold at least one configuration")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}] must be a dict, got {type(row).__name__}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"row {i} ({row.get('name', '?')!r}) has no {missing}")
        for k in keys:
            try:
                V.check_number(f"row {i} ({row.get('name', '?')!r}) {k!r}", row[k])
            except ValueError as err:
                raise ValueError(f"rows[{i}][{k!r}]: {err}") from None


def pareto_front(rows: Sequence[Mapping], cost: str = COST, gain: str = GAIN) -> list[int]:
    """Indices of the rows no other row dominates, ordered by increasing cost.

    Row ``j`` dominates row ``i`` if ``cost[j] <= cost[i]`` and ``gain[j] >= gain[i]`` with at least one
    strict. Equal rows do not dominate each other.

    >>> rows = [{"bytes/doc": 1536, "nDCG@10": 0.65}, {"bytes/doc": 48, "nDCG@10": 0.58},
    ...         {"bytes/doc": 768, "nDCG@10": 0.64}, {"bytes/doc": 96, "nDCG@10": 0.50}]
    >>> pareto_front(rows)
    [1, 2, 0]
    """
    _check_rows(rows, (cost, gain))
    c = np.array([float(r[cost]) for r in rows])  # (R,)
    g = np.array([float(r[gain]) for r in rows])  # (R,)
    keep = [i for i in range(len(rows))
            if not np.any((c <= c[i]) & (g >= g[i]) & ((c < c[i]) | (g > g[i])))]
    return sorted(keep, key=lambda i: (c[i], -g[i], i))


def pick_config(rows: Sequence[Mapping], budget: float, max_ms: float | None = None, cost: str = COST,
                gain: str = GAIN) -> int | None:
    """The best row that fits: highest ``gain`` with ``cost <= budget`` (and ``ms/query <= max_ms``).

    Ties go to the smaller row, then the faster one, then the first. Returns None if no row fits.

    >>> rows = [{"bytes/doc": 1536, "nDCG@10": 0.65, "ms/query": 1.0},
    ...         {"bytes/doc": 432, "nDCG@10": 0.64, "ms/query": 0.3}]
    >>> pick_config(rows, budget=1000), pick_config(rows, budget=2000), pick_config(rows, budget=100)
    (1, 0, None)
    """
    try:
        V.check_number("budget", budget, low=0, low_open=True)
    except ValueError:
        raise ValueError(f"budget must be a positive number of bytes per document, got {budget!r}") from None
    try:
        V.check_number("max_ms", max_ms, low=0, low_open=True, allow_none=True)
    except ValueError:
        raise ValueError(f"max_ms must be a positive number of milliseconds or None, got {max_ms!r}") from None
    _check_rows(rows, (cost, gain) + ((LATENCY,) if max_ms is not None else ()))
    fits = [i for i, r in enumerate(rows)
            if float(r[cost]) <= budget and (max_ms is None or float(r[LATENCY]) <= max_ms)]
    if not fits:
        return None
    return min(fits, key=lambda i: (-float(rows[i][gain]), float(rows[i][cost]),
                                    float(rows[i].get(LATENCY, 0.0)), i))


def tradeoff(rows: Sequence[Mapping], choice: int, reference: int = 0, cost: str = COST,
             gain: str = GAIN) -> dict[str, float]:
    """The numbers that justify a choice, against a reference row (fp32) and the best row of all.

    Returns ``{"times smaller", "retention", "gap to best"}``: reference cost / choice cost, choice gain /
    reference gain, and the best gain of all rows minus the choice's gain.

    >>> rows = [{"bytes/doc": 1536, "nDCG@10": 0.64}, {"bytes/doc": 48, "nDCG@10": 0.576},
    ...         {"bytes/doc": 56000, "nDCG@10": 0.72}]
    >>> {k: round(v, 3) for k, v in tradeoff(rows, 1).items()}
    {'times smaller': 32.0, 'retention': 0.9, 'gap to best': 0.144}
    """
    _check_rows(rows, (cost, gain))
    for label, i in (("choice", choice), ("reference", reference)):
        if not V.is_int(i) or not 0 <= i < len(rows):
            raise ValueError(f"{label} must be a row index in [0, {len(rows)}), got {i!r}")
    for label, i, key in (("choice", choice, cost), ("reference", reference, gain)):
        if not float(rows[i][key]) > 0:
            raise ValueError(f"the {label} row's {key!r} must be > 0 for a ratio, got {rows[i][key]!r}")
    best = max(float(r[gain]) for r in rows)
    return {"times smaller": float(rows[reference][cost]) / float(rows[choice][cost]),
            "retention": float(rows[choice][gain]) / float(rows[reference][gain]),
            "gap to best": best - float(rows[choice][gain])}


def budget_per_document(memory_bytes: float, n_docs: int, reserve: float = 0.25) -> float:
    """Bytes per document that fit ``n_docs`` into ``memory_bytes``, keeping ``reserve`` for everything else.

    >>> round(budget_per_document(64 * 2**30, 100_000_000), 1)  # 100M documents in 64 GiB
    515.4
    """
    V.check_number("memory_bytes", memory_bytes, low=0, low_open=True)
    V.check_int("n_docs", n_docs, low=1)
    V.check_number("reserve", reserve, low=0, high=1, high_open=True)
    return memory_bytes * (1 - reserve) / n_docs
