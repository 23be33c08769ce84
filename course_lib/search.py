"""Exact nearest-neighbour search by inner product, and the bridge from top-k arrays to a run dict.

For L2-normalized embeddings the inner product is the cosine similarity. Search over binary codes
(Hamming distance) and the rescoring of a shortlist are in :mod:`course_lib.binary`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Scores of one query block against the whole corpus are materialized; keep a block near 256 MiB.
BLOCK_BYTES = 256 * 1024 * 1024


def _check_matrix(name: str, x, finite: bool = True) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dims), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64, np.float16):
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {x.shape}")
    if finite and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _select_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row of ``scores`` (B, N): by score descending, ties by lower index first."""
    b, n = scores.shape
    if k == n:
        cand = np.broadcast_to(np.arange(n), (b, n))  # (B, N): every column is a candidate
    else:
        cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (B, k), unordered, boundary ties arbitrary
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
    vals = np.take_along_axis(scores, cand, axis=1)  # (B, k)
    order = np.lexsort((cand, -vals), axis=1)  # (B, k) primary: score desc; secondary: index asc
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(cand, order, axis=1).astype(np.int64)


def topk_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of a precomputed (Q, N) score matrix (e.g. BM25), same rules as :func:`topk`.

    >>> s, i = topk_scores(np.array([[0.1, 0.7, 0.7, 0.2]]), 2)
    >>> i.tolist()
    [[1, 2]]
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"scores must be 2-D (queries, docs) with docs > 0, got shape {scores.shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be an int in [1, {scores.shape[1]}] (the corpus size), got {k!r}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contains NaN or inf")
    return _select_topk(scores, int(k))


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
        float32 (Q, k), each row descending.
    indices : np.ndarray
        int64 (Q, k) row indices into ``corpus_emb``; equal scores are ordered by lower index first.

    Examples
    --------
    >>> c = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    >>> s, i = topk(np.array([[0.8, 0.6]], dtype=np.float32), c, k=2)
    >>> i.tolist(), [round(float(x), 2) for x in s[0]]
    ([[2, 0]], [0.96, 0.8])
    """
    q = _check_matrix("query_emb", query_emb)
    c = _check_matrix("corpus_emb", corpus_emb, finite=False)  # checked through the scores: no extra O(N D) pass
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"query_emb and corpus_emb must have the same dims, got {q.shape[1]} and {c.shape[1]}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= c.shape[0]:
        raise ValueError(f"k must be an int in [1, {c.shape[0]}] (the corpus size), got {k!r}")
    k = int(k)
    q = q.astype(np.float32, copy=False)
    c = c.astype(np.float32, copy=False)
    block = max(1, BLOCK_BYTES // (4 * c.shape[0]))
    out_s = np.empty((q.shape[0], k), dtype=np.float32)  # (Q, k)
    out_i = np.empty((q.shape[0], k), dtype=np.int64)  # (Q, k)
    for start in range(0, q.shape[0], block):
        with np.errstate(invalid="ignore", over="ignore"):  # reported below, with the row
            scores = q[start:start + block] @ c.T  # (B, N)
        if not np.isfinite(scores).all():  # a NaN or inf in a document (or an overflow) makes its scores non-finite
            bad = np.flatnonzero(~np.isfinite(scores).all(axis=0))
            raise ValueError(f"corpus_emb contains NaN or inf: the scores of {bad.size} document(s) are not finite, "
                             f"the first at row {bad[0]}")
        out_s[start:start + block], out_i[start:start + block] = _select_topk(scores, k)
    return out_s, out_i


def run_from_topk(scores: np.ndarray, indices: np.ndarray, query_ids: Sequence[str],
                  doc_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Turn top-k arrays into a run ``{query_id: {doc_id: score}}`` for :func:`course_lib.metrics.evaluate`.

    >>> run_from_topk(np.array([[0.9, 0.5]]), np.array([[1, 0]]), ["q1"], ["d0", "d1"])
    {'q1': {'d1': 0.9, 'd0': 0.5}}
    """
    scores = np.asarray(scores)
    indices = np.asarray(indices)
    if scores.shape != indices.shape or scores.ndim != 2:
        raise ValueError(f"scores and indices must be 2-D with the same shape, got {scores.shape} and {indices.shape}")
    if len(query_ids) != scores.shape[0]:
        raise ValueError(f"query_ids must have one id per row ({scores.shape[0]}), got {len(query_ids)}")
    if indices.size and (indices.min() < 0 or indices.max() >= len(doc_ids)):
        raise ValueError(f"indices must lie in [0, {len(doc_ids)}) (len(doc_ids)), got {indices.min()}..{indices.max()}")
    docs = list(doc_ids)
    return {str(qid): {docs[j]: float(s) for j, s in zip(row_i, row_s)}
            for qid, row_s, row_i in zip(query_ids, scores.tolist(), indices.tolist())}
