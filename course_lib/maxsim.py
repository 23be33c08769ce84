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

from course_lib import validation as V


def _check_side(name: str, x, mask, numpy_only: bool = False):
    """(is_torch, mask): 3-D float token vectors (batch, tokens, dims), a bool mask (batch, tokens), no empty row."""
    return V.check_tokens(name, x, mask, numpy_only=numpy_only)


def _check_scores(scores, q, q_mask, d, d_mask, d_rows=None) -> None:
    """MaxSim scores are finite unless a valid token holds NaN or inf, or a product overflows: say which."""
    import torch

    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    if np.isfinite(s).all():
        return
    qi, di = np.argwhere(~np.isfinite(s))[0]
    di = int(di if d_rows is None else np.asarray(d_rows)[qi, di])

    def as_np(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    for name, x, m, r in (("q", q, q_mask, int(qi)), ("d", d, d_mask, di)):
        bad = ~np.isfinite(as_np(x[r])) & as_np(m[r]).astype(bool)[:, None]  # (L, D): NaN/inf in a valid token
        if bad.any():
            raise ValueError(f"{name} contains NaN or inf in a valid token: row {r}, token {int(np.argwhere(bad)[0][0])}")
    raise ValueError(f"the MaxSim score of q row {int(qi)} against d row {di} overflows float32 although both are "
                     f"finite: scale the token vectors down (normalize them)")


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
    V.check_same_dims("q", q, "d", d)
    chunk_size = V.check_int("chunk_size", chunk_size, low=1)
    out = (_maxsim_torch if q_torch else _maxsim_numpy)(q, q_mask, d, d_mask, chunk_size)
    if not (q_torch and out.requires_grad):  # training: the loss' own checks apply
        _check_scores(out, q, q_mask, d, d_mask)
    return out


def _maxsim_numpy(q, q_mask, d, d_mask, chunk_size):
    q = q.astype(np.float32, copy=False)  # (Bq, Lq, D)
    out = np.empty((q.shape[0], d.shape[0]), np.float32)  # (Bq, Bd)
    qm = q_mask[:, None, :]  # (Bq, 1, Lq)
    for start in range(0, d.shape[0], chunk_size):
        dc = d[start:start + chunk_size].astype(np.float32, copy=False)  # (c, Ld, D)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by maxsim, with its rows
            sim = np.einsum("qid,cjd->qcij", q, dc, optimize=True)  # (Bq, c, Lq, Ld)
        sim = np.where(d_mask[None, start:start + chunk_size, None, :], sim, -np.inf)  # padding can never win
        best = sim.max(axis=3)  # (Bq, c, Lq)
        with np.errstate(over="ignore", invalid="ignore"):
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
    _, q_mask = _check_side("q", q, q_mask, numpy_only=True)
    _, d_mask = _check_side("d", d, d_mask, numpy_only=True)
    V.check_same_dims("q", q, "d", d)
    out = np.zeros((q.shape[0], d.shape[0]), np.float32)  # (Bq, Bd)
    for a in range(q.shape[0]):
        for b in range(d.shape[0]):
            doc = d[b][d_mask[b]]  # (valid Ld, D): padding is dropped, not zeroed
            for i in np.flatnonzero(q_mask[a]):
                with np.errstate(over="ignore", invalid="ignore"):  # reported below
                    out[a, b] += float((doc.astype(np.float32) @ q[a, i].astype(np.float32)).max())
    _check_scores(out, q, q_mask, d, d_mask)
    return out



def rank_maxsim(q: np.ndarray, q_mask: np.ndarray, d: np.ndarray, d_mask: np.ndarray, k: int = 100,
                candidates: np.ndarray | None = None, query_block: int = 8):
    """Top-k documents per query by MaxSim (torch on CPU), over the whole corpus or a shortlist.

    ``candidates``: optional int (Q, C) shortlist per query (two-stage retrieval); only those documents are
    read and scored; -1 marks padding (it scores -inf, ranks last and keeps the index -1). ``k`` is in
    [1, N], or [1, C] with a shortlist. Returns float32 scores and int64 indices, (Q, k), best first.

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

    _, q_mask = _check_side("q", q, q_mask, numpy_only=True)
    _, d_mask = _check_side("d", d, d_mask, numpy_only=True)
    V.check_same_dims("q", q, "d", d)
    query_block = V.check_int("query_block", query_block, low=1)
    if candidates is None:
        k = V.check_k(k, d.shape[0])
    else:
        candidates = V.check_indices("candidates", candidates, d.shape[0], padding=True, what="rows of d")
        if candidates.shape[0] != q.shape[0] or candidates.shape[1] == 0:
            raise ValueError(f"candidates must have shape (Q={q.shape[0]}, C >= 1), got {candidates.shape}")
        k = V.check_k(k, candidates.shape[1], what="the shortlist length")
    scores_out, idx_out = [], []
    if candidates is None:
        dt, dmt = torch.from_numpy(np.asarray(d, np.float32)), torch.from_numpy(d_mask)  # (N, Ld, D), (N, Ld) once
    for s in range(0, q.shape[0], query_block):
        qt = torch.from_numpy(np.asarray(q[s:s + query_block], np.float32))  # (b, Lq, D)
        qmt = torch.from_numpy(q_mask[s:s + query_block])  # (b, Lq)
        if candidates is None:
            sc = maxsim(qt, qmt, dt, dmt)  # (b, N), checked finite by maxsim
            cand = None
        else:
            cand = np.asarray(candidates[s:s + query_block], np.int64)  # (b, C); -1 is padding
            pad = cand < 0  # (b, C)
            rows = np.where(pad, 0, cand)  # (b, C): padding reads row 0 and is masked out below
            dc = torch.from_numpy(np.asarray(d[rows], np.float32))  # (b, C, Ld, D): the shortlist only
            sim = torch.einsum("qid,qcjd->qcij", qt, dc)  # (b, C, Lq, Ld)
            sim = sim.masked_fill(~torch.from_numpy(d_mask[rows])[:, :, None, :], float("-inf"))  # (b, C, Lq, Ld)
            sc = sim.amax(dim=3).masked_fill(~qmt[:, None, :], 0.0).sum(dim=2)  # (b, C)
            _check_scores(np.where(pad, 0.0, sc.numpy()), q[s:s + query_block], q_mask[s:s + query_block], d, d_mask,
                          d_rows=rows)
            sc = sc.masked_fill(torch.from_numpy(pad), float("-inf"))  # padding ranks last
        top = torch.topk(sc, k, dim=1)  # (b, k) values and indices
        scores_out.append(top.values.numpy())
        idx = top.indices.numpy()  # (b, k) columns of sc: corpus rows, or positions in the shortlist
        idx_out.append(idx if cand is None else np.take_along_axis(cand, idx, axis=1))
    return np.concatenate(scores_out).astype(np.float32), np.concatenate(idx_out).astype(np.int64)  # (Q, k) each
