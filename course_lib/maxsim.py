"""ColBERT MaxSim, the late-interaction score: one vector per token on each side.

.. math::

    s(q, d) = \\sum_{i \\in \\mathrm{valid}(q)} \\max_{j \\in \\mathrm{valid}(d)} \\; q_i \\cdot d_j

Padding is excluded by setting padded document similarities to ``-inf`` before the max, never by
multiplying with the mask: multiplying makes a padded position score 0, and 0 wins the max whenever
every real similarity of a query token is negative (PyLate 1.6's ``colbert_scores`` does this; the
tests pin the difference). Padded query tokens are left out of the sum.

Shapes: queries ``(Bq, Lq, D)`` with mask ``(Bq, Lq)``; documents ``(Bd, Ld, D)`` with mask ``(Bd, Ld)``;
scores ``(Bq, Bd)``. Masks are boolean (True = a real token). The token vectors themselves, and the
course's trained ColBERT-style projection, are in :mod:`course_lib.colbert`.
"""

from __future__ import annotations

import numpy as np


def _check_side(name: str, x, mask):
    import torch

    is_torch = isinstance(x, torch.Tensor)
    if not (is_torch or isinstance(x, np.ndarray)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{name} must be 3-D (batch, tokens, dims), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point if is_torch else x.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool) if is_torch else np.ones(x.shape[:2], dtype=bool)  # (B, L)
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{name}_mask must have shape {tuple(x.shape[:2])} (batch, tokens), got {tuple(mask.shape)}")
    mask = mask.bool() if is_torch else np.asarray(mask).astype(bool)
    empty = (~mask.any(1)).nonzero()  # rows with no valid token
    empty = empty[0] if not is_torch else empty[:, 0]
    if len(empty):
        raise ValueError(f"{name} row {int(empty[0])} has no valid token (its mask is all False): MaxSim is undefined; "
                         f"drop empty texts before scoring ({len(empty)} such row(s))")
    return is_torch, mask


def maxsim(q, q_mask, d, d_mask, chunk_size: int = 256):
    """ColBERT MaxSim scores of every query against every document, chunked over documents.

    Parameters
    ----------
    q : np.ndarray or torch.Tensor
        float (Bq, Lq, D) query token vectors.
    q_mask : array or None
        bool (Bq, Lq); None means every token is valid.
    d : np.ndarray or torch.Tensor
        float (Bd, Ld, D) document token vectors, the same library as ``q``.
    d_mask : array or None
        bool (Bd, Ld).
    chunk_size : int
        Documents per chunk: the (Bq, chunk, Lq, Ld) similarity block is the memory peak.

    Returns
    -------
    np.ndarray or torch.Tensor
        float32 (Bq, Bd), in the library of the inputs.

    Examples
    --------
    >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    >>> d = np.array([[[-1.0, 0.0], [0.0, -1.0], [5.0, 5.0]]])
    >>> maxsim(q, None, d, np.array([[True, True, False]])).tolist()  # padding never wins
    [[0.0]]
    >>> maxsim(q, None, d, None).tolist()
    [[10.0]]
    """
    q_torch, q_mask = _check_side("q", q, q_mask)
    d_torch, d_mask = _check_side("d", d, d_mask)
    if q_torch != d_torch:
        raise TypeError("q and d must both be numpy arrays or both torch tensors")
    if q.shape[2] != d.shape[2]:
        raise ValueError(f"q and d must have the same dims, got {q.shape[2]} and {d.shape[2]}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return (_maxsim_torch if q_torch else _maxsim_numpy)(q, q_mask, d, d_mask, chunk_size)


def _maxsim_numpy(q, q_mask, d, d_mask, chunk_size):
    q = q.astype(np.float32, copy=False)  # (Bq, Lq, D)
    out = np.empty((q.shape[0], d.shape[0]), np.float32)  # (Bq, Bd)
    qm = q_mask[:, None, :]  # (Bq, 1, Lq)
    for start in range(0, d.shape[0], chunk_size):
        dc = d[start:start + chunk_size].astype(np.float32, copy=False)  # (c, Ld, D)
        sim = np.einsum("qid,cjd->qcij", q, dc, optimize=True)  # (Bq, c, Lq, Ld)
        sim = np.where(d_mask[None, start:start + chunk_size, None, :], sim, -np.inf)  # padding can never win
        best = sim.max(axis=3)  # (Bq, c, Lq)
        out[:, start:start + chunk_size] = np.where(qm, best, 0.0).sum(axis=2)  # (Bq, c): over valid query tokens
    return out


def _maxsim_torch(q, q_mask, d, d_mask, chunk_size):
    import torch

    q = q.float()  # (Bq, Lq, D)
    out = torch.empty((q.shape[0], d.shape[0]), dtype=torch.float32, device=q.device)  # (Bq, Bd)
    qm = q_mask[:, None, :].to(q.device)  # (Bq, 1, Lq)
    for start in range(0, d.shape[0], chunk_size):
        dc = d[start:start + chunk_size].float()  # (c, Ld, D)
        sim = torch.einsum("qid,cjd->qcij", q, dc)  # (Bq, c, Lq, Ld)
        sim = sim.masked_fill(~d_mask[None, start:start + chunk_size, None, :].to(q.device), float("-inf"))
        best = sim.amax(dim=3)  # (Bq, c, Lq)
        out[:, start:start + chunk_size] = best.masked_fill(~qm, 0.0).sum(dim=2)  # (Bq, c)
    return out


def maxsim_loop(q: np.ndarray, q_mask, d: np.ndarray, d_mask) -> np.ndarray:
    """MaxSim written as loops over one query, one document and one query token at a time (for reading)."""
    _, q_mask = _check_side("q", q, q_mask)
    _, d_mask = _check_side("d", d, d_mask)
    out = np.zeros((q.shape[0], d.shape[0]), np.float32)  # (Bq, Bd)
    for a in range(q.shape[0]):
        for b in range(d.shape[0]):
            doc = d[b][d_mask[b]]  # (valid Ld, D): padding is dropped, not zeroed
            for i in np.flatnonzero(q_mask[a]):
                out[a, b] += float((doc @ q[a, i]).max())
    return out



def rank_maxsim(q: np.ndarray, q_mask: np.ndarray, d: np.ndarray, d_mask: np.ndarray, k: int = 100,
                candidates: np.ndarray | None = None, query_block: int = 8):
    """Top-k documents per query by MaxSim (torch on CPU), over the whole corpus or a shortlist.

    ``candidates``: optional int (Q, C) shortlist per query (two-stage retrieval); only those documents are
    read and scored. Returns float32 scores and int64 indices, (Q, k), best first.

    Examples
    --------
    Two queries of 2 tokens (query 1's second is padding) and three documents (d0 and d2 have one real token);
    the padded vectors are [5, 5] and never count. MaxSim, summed over query tokens of the best document token:
    q0 = {[1, 0], [0, 1]} scores d0 = {[1, 0]} 1 + 0, d1 = {[0, 1], [.5, 0]} .5 + 1, d2 = {[.25, .5]} .25 + .5;
    q1 = {[1, 0]} scores them 1, .5 and .25.

    >>> q = np.array([[[1, 0], [0, 1]], [[1, 0], [5, 5]]], np.float32)  # (Q, Lq, D) = (2, 2, 2)
    >>> q_mask = np.array([[True, True], [True, False]])
    >>> d = np.array([[[1, 0], [5, 5]], [[0, 1], [.5, 0]], [[.25, .5], [5, 5]]], np.float32)  # (N, Ld, D) = (3, 2, 2)
    >>> d_mask = np.array([[True, False], [True, True], [True, False]])
    >>> s, i = rank_maxsim(q, q_mask, d, d_mask, k=2)
    >>> i.tolist(), s.tolist()
    ([[1, 0], [0, 1]], [[1.5, 1.0], [1.0, 0.5]])

    With a shortlist, only its documents are scored, and the indices are still rows of ``d``:

    >>> s, i = rank_maxsim(q, q_mask, d, d_mask, k=1, candidates=np.array([[2, 0], [2, 1]]))
    >>> i.tolist(), s.tolist()
    ([[0], [1]], [[1.0], [0.5]])
    """
    import torch

    if not np.asarray(d_mask).any(axis=1).all():
        raise ValueError(f"d row {int(np.flatnonzero(~np.asarray(d_mask).any(axis=1))[0])} has no valid token")
    scores_out, idx_out = [], []
    if candidates is None:
        dt, dmt = torch.from_numpy(np.asarray(d, np.float32)), torch.from_numpy(d_mask)  # (N, Ld, D), (N, Ld) once
    for s in range(0, q.shape[0], query_block):
        qt = torch.from_numpy(np.asarray(q[s:s + query_block], np.float32))  # (b, Lq, D)
        qmt = torch.from_numpy(q_mask[s:s + query_block])  # (b, Lq)
        if candidates is None:
            sc = maxsim(qt, qmt, dt, dmt)  # (b, N)
            cand = None
        else:
            cand = np.asarray(candidates[s:s + query_block], np.int64)  # (b, C)
            dc = torch.from_numpy(np.asarray(d[cand], np.float32))  # (b, C, Ld, D): the shortlist only
            sim = torch.einsum("qid,qcjd->qcij", qt, dc)  # (b, C, Lq, Ld)
            sim = sim.masked_fill(~torch.from_numpy(d_mask[cand])[:, :, None, :], float("-inf"))  # (b, C, Lq, Ld)
            sc = sim.amax(dim=3).masked_fill(~qmt[:, None, :], 0.0).sum(dim=2)  # (b, C)
        top = torch.topk(sc, min(k, sc.shape[1]), dim=1)  # (b, k) values and indices
        scores_out.append(top.values.numpy())
        idx = top.indices.numpy()  # (b, k) columns of sc: corpus rows, or positions in the shortlist
        idx_out.append(idx if cand is None else np.take_along_axis(cand, idx, axis=1))
    return np.concatenate(scores_out).astype(np.float32), np.concatenate(idx_out).astype(np.int64)  # (Q, k) each
