"""Exact nearest-neighbour search by inner product, and the bridge from top-k arrays to a run dict.

For L2-normalized embeddings the inner product is the cosine similarity. Search over binary codes
(Hamming distance) and the rescoring of a shortlist are in :mod:`course_lib.binary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_lib import validation as V

# Scores of one query block against the whole corpus are materialized; keep a block near 256 MiB.
BLOCK_BYTES = 256 * 1024 * 1024


def _select_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row of ``scores`` (B, N): by score descending, ties by lower index first.

    No score is negated, so unsigned integer scores rank correctly too.
    """
    b, n = scores.shape
    if k == n:
        cand = np.broadcast_to(np.arange(n), (b, n))  # (B, N): every column is a candidate
    else:
        cand = np.argpartition(scores, n - k, axis=1)[:, n - k:]  # (B, k), unordered, boundary ties arbitrary
        kth = np.take_along_axis(scores, cand, axis=1).min(axis=1)  # (B,) the k-th largest score
        n_tied = (scores == kth[:, None]).sum(axis=1)  # (B,)
        n_above = (scores > kth[:, None]).sum(axis=1)  # (B,)
        ambiguous = np.flatnonzero(n_above + n_tied > k)
        if ambiguous.size:
            cand = cand.copy()
            for r in ambiguous:  # make the boundary deterministic: lowest indices among the tied
                above = np.flatnonzero(scores[r] > kth[r])
                tied = np.flatnonzero(scores[r] == kth[r])[: k - above.size]
                cand[r] = np.concatenate([above, tied])
    cand = cand.astype(np.int64)
    vals = np.take_along_axis(scores, cand, axis=1)  # (B, k)
    order = np.lexsort((-cand, vals), axis=1)[:, ::-1]  # (B, k) score descending, then index ascending
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(cand, order, axis=1)


def topk_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of a precomputed (Q, N) score matrix (e.g. BM25), same rules as :func:`topk`.

    ``scores``: a finite real (float, int or unsigned int) numpy array; the values keep their dtype.

    >>> s, i = topk_scores(np.array([[0.1, 0.7, 0.7, 0.2]]), 2)
    >>> i.tolist()
    [[1, 2]]
    """
    scores = V.check_array("scores", scores, ndim=2, kind="real", shape="(queries, docs)")
    k = V.check_k(k, scores.shape[1])
    return _select_topk(scores, k)


def topk(query_emb: np.ndarray, corpus_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product, blocked over queries to bound memory.

    Parameters
    ----------
    query_emb : np.ndarray
        float array of shape (Q, D).
    corpus_emb : np.ndarray
        float array of shape (N, D).
    k : int
        1 <= k <= N.

    Returns
    -------
    scores : np.ndarray
        float32 (Q, k), each row descending; float64 when either input is float64 (computed in float64 then).
    indices : np.ndarray
        int64 (Q, k) row indices into ``corpus_emb``; equal scores are ordered by lower index first.

    Raises
    ------
    ValueError
        k outside [1, N] (see :mod:`course_lib.validation`), NaN or inf in either input, or scores that
        overflow the computing dtype (the message tells the two apart).

    Examples
    --------
    >>> c = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    >>> s, i = topk(np.array([[0.8, 0.6]], dtype=np.float32), c, k=2)
    >>> i.tolist(), [round(float(x), 2) for x in s[0]]
    ([[2, 0]], [0.96, 0.8])
    """
    q = V.check_matrix("query_emb", query_emb)
    c = V.check_matrix("corpus_emb", corpus_emb, finite=False)  # checked through the scores: no extra O(N D) pass
    V.check_same_dims("query_emb", q, "corpus_emb", c)
    k = V.check_k(k, c.shape[0])
    dtype = np.float64 if np.float64 in (q.dtype, c.dtype) else np.float32  # float64 stays float64
    q = q.astype(dtype, copy=False)
    c = c.astype(dtype, copy=False)
    block = max(1, BLOCK_BYTES // (np.dtype(dtype).itemsize * c.shape[0]))
    out_s = np.empty((q.shape[0], k), dtype=dtype)  # (Q, k)
    out_i = np.empty((q.shape[0], k), dtype=np.int64)  # (Q, k)
    for start in range(0, q.shape[0], block):
        qb = q[start:start + block]  # (B, D)
        with np.errstate(invalid="ignore", over="ignore"):  # reported below, with the row
            scores = qb @ c.T  # (B, N)
        if not np.isfinite(scores).all():  # a NaN or inf in a document, or an overflow: say which
            V.raise_nonfinite_products(scores, ("query_emb", qb), ("corpus_emb", corpus_emb),
                                       dtype=np.dtype(dtype).name)
        out_s[start:start + block], out_i[start:start + block] = _select_topk(scores, k)
    return out_s, out_i


def run_from_topk(scores: np.ndarray, indices: np.ndarray, query_ids: Sequence[str],
                  doc_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Turn top-k arrays into a run ``{query_id: {doc_id: score}}`` for :func:`course_lib.metrics.evaluate`.

    ``query_ids`` and ``doc_ids`` are lists of str ids without duplicates (a repeated id would silently
    merge two rows); an index of -1 marks padding and is left out of the run; a row that repeats a
    document is refused.

    >>> run_from_topk(np.array([[0.9, 0.5]]), np.array([[1, 0]]), ["q1"], ["d0", "d1"])
    {'q1': {'d1': 0.9, 'd0': 0.5}}
    """
    scores = V.check_array("scores", scores, ndim=2, kind="real", nonempty=False, finite=False)
    indices = V.check_indices("indices", indices, len(V.check_sequence("doc_ids", doc_ids, "str ids")),
                              padding=True, what="len(doc_ids)")
    if scores.shape != indices.shape:
        raise ValueError(f"scores and indices must have the same shape, got {scores.shape} and {indices.shape}")
    query_ids = V.check_ids("query_ids", query_ids)
    docs = V.check_ids("doc_ids", doc_ids)
    if len(query_ids) != scores.shape[0]:
        raise ValueError(f"query_ids must have one id per row ({scores.shape[0]}), got {len(query_ids)}")
    real = indices >= 0  # -1 marks padding (faiss' empty slots, a short shortlist): left out of the run
    if not np.isfinite(scores[real]).all():
        r, c = np.argwhere(real & ~np.isfinite(scores))[0]
        raise ValueError(f"scores contains NaN or inf at row {r}, column {c} ({scores[r, c]}), which is not padding")
    for r in range(indices.shape[0]):
        row = indices[r][real[r]]
        if np.unique(row).size != row.size:
            raise ValueError(f"indices row {r} repeats a document: a run holds each document once per query")
    return {qid: {docs[j]: float(s) for j, s in zip(row_i, row_s) if j >= 0}
            for qid, row_s, row_i in zip(query_ids, scores.tolist(), indices.tolist())}
