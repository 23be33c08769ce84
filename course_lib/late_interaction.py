"""Multi-vector (late-interaction) retrieval: token embeddings, ColBERT MaxSim, and a trained projection.

A document is kept as one vector per token; a query too. The ColBERT score is MaxSim:

.. math::

    s(q, d) = \\sum_{i \\in \\mathrm{valid}(q)} \\max_{j \\in \\mathrm{valid}(d)} \\; q_i \\cdot d_j

Padding is excluded by setting padded document similarities to ``-inf`` before the max, never by
multiplying with the mask: multiplying makes a padded position score 0, and 0 wins the max whenever
every real similarity of a query token is negative (PyLate 1.6's ``colbert_scores`` does this; the
tests pin the difference). Padded query tokens are left out of the sum.

Shapes: queries ``(Bq, Lq, D)`` with mask ``(Bq, Lq)``; documents ``(Bd, Ld, D)`` with mask ``(Bd, Ld)``;
scores ``(Bq, Bd)``. Masks are boolean (True = a real token).

The course's ColBERT-style model is the packaged MiniLM (frozen) plus a trained linear projection
384 -> 128 (:func:`train_projection`): the backbone's token embeddings are computed once and cached, so
training and evaluation are cheap on a CPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from course_lib.embed import _as_texts, _atomic_write, _cache_path, default_batch_size
from course_lib.paths import cache_dir

QUERY_LENGTH = 32  # ColBERT's query length: queries are padded with [MASK] to this many tokens
DOC_LENGTH = 256  # MiniLM's max sequence length, as for the dense model


# ---------------------------------------------------------------------------------------------
# MaxSim
# ---------------------------------------------------------------------------------------------

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
        mask = torch.ones(x.shape[:2], dtype=torch.bool) if is_torch else np.ones(x.shape[:2], dtype=bool)
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{name}_mask must have shape {tuple(x.shape[:2])} (batch, tokens), got {tuple(mask.shape)}")
    mask = mask.bool() if is_torch else np.asarray(mask).astype(bool)
    empty = (~mask.any(1)).nonzero()
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
    q = q.astype(np.float32, copy=False)
    out = np.empty((q.shape[0], d.shape[0]), np.float32)
    qm = q_mask[:, None, :]  # (Bq, 1, Lq)
    for start in range(0, d.shape[0], chunk_size):
        dc = d[start:start + chunk_size].astype(np.float32, copy=False)  # (c, Ld, D)
        sim = np.einsum("qid,cjd->qcij", q, dc, optimize=True)  # (Bq, c, Lq, Ld)
        sim = np.where(d_mask[None, start:start + chunk_size, None, :], sim, -np.inf)  # padding can never win
        best = sim.max(axis=3)  # (Bq, c, Lq)
        out[:, start:start + chunk_size] = np.where(qm, best, 0.0).sum(axis=2)  # sum over valid query tokens
    return out


def _maxsim_torch(q, q_mask, d, d_mask, chunk_size):
    import torch

    q = q.float()
    out = torch.empty((q.shape[0], d.shape[0]), dtype=torch.float32, device=q.device)
    qm = q_mask[:, None, :].to(q.device)  # (Bq, 1, Lq)
    for start in range(0, d.shape[0], chunk_size):
        dc = d[start:start + chunk_size].float()  # (c, Ld, D)
        sim = torch.einsum("qid,cjd->qcij", q, dc)  # (Bq, c, Lq, Ld)
        sim = sim.masked_fill(~d_mask[None, start:start + chunk_size, None, :].to(q.device), float("-inf"))
        best = sim.amax(dim=3)  # (Bq, c, Lq)
        out[:, start:start + chunk_size] = best.masked_fill(~qm, 0.0).sum(dim=2)
    return out


def maxsim_loop(q: np.ndarray, q_mask, d: np.ndarray, d_mask) -> np.ndarray:
    """MaxSim written as loops over one query, one document and one query token at a time (for reading)."""
    _, q_mask = _check_side("q", q, q_mask)
    _, d_mask = _check_side("d", d, d_mask)
    out = np.zeros((q.shape[0], d.shape[0]), np.float32)
    for a in range(q.shape[0]):
        for b in range(d.shape[0]):
            doc = d[b][d_mask[b]]  # (valid Ld, D): padding is dropped, not zeroed
            for i in np.flatnonzero(q_mask[a]):
                out[a, b] += float((doc @ q[a, i]).max())
    return out


# ---------------------------------------------------------------------------------------------
# Token embeddings
# ---------------------------------------------------------------------------------------------

def _backbone_tokens(model, texts: list[str], is_query: bool, query_augment: bool, max_length: int,
                     batch_size: int, show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Last-layer token vectors of the transformer (before pooling), padded: float16 (B, L, 384), bool (B, L)."""
    import torch
    from tqdm.auto import tqdm

    tokenizer, backbone = model.tokenizer, model[0].auto_model
    device = next(backbone.parameters()).device
    augment = is_query and query_augment
    out_e, out_m = [], []
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="token embeddings", disable=not show_progress):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                        padding="max_length" if augment else "longest", return_tensors="pt")
        if augment:  # ColBERT query augmentation: the padding becomes [MASK] tokens the model attends to
            enc["input_ids"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, tokenizer.mask_token_id)
            enc["attention_mask"] = torch.ones_like(enc["attention_mask"])
        with torch.inference_mode():
            hidden = backbone(**{k: v.to(device) for k, v in enc.items()}).last_hidden_state  # (b, L, 384)
        e = np.zeros((hidden.shape[0], max_length, hidden.shape[2]), np.float16)  # half the memory of float32
        m = np.zeros((hidden.shape[0], max_length), bool)
        e[:, :hidden.shape[1]] = hidden.float().cpu().numpy()
        m[:, :hidden.shape[1]] = enc["attention_mask"].bool().numpy()
        out_e.append(e)
        out_m.append(m)
    emb, mask = np.concatenate(out_e), np.concatenate(out_m)
    width = int(mask.any(0).nonzero()[0].max()) + 1  # trim columns that are padding in every row
    return emb[:, :width], mask[:, :width]


def token_embeddings(model, texts, is_query: bool, *, query_augment: bool = True, max_length: int | None = None,
                     batch_size: int | None = None, cache: bool = True,
                     show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The frozen backbone's token vectors, cached on disk as float16: (B, L, 384) and a bool mask (B, L).

    ``texts``: a dict (id -> text or BEIR document) or a list of str. Queries are padded with [MASK]
    to ``QUERY_LENGTH`` tokens when ``query_augment``; documents are cut at ``DOC_LENGTH``. ``batch_size``
    None is 32 on a CPU and 128 on a GPU.
    """
    batch_size = batch_size or default_batch_size(model, cpu=32, accelerator=128)
    max_length = max_length or (QUERY_LENGTH if is_query else DOC_LENGTH)
    ids, strings = _as_texts(texts, ("text",) if is_query else ("title", "text"))
    kind = "tokens-queries" if is_query else "tokens-corpus"
    extra = {"max_length": max_length, "query_augment": bool(query_augment and is_query), "dtype": "float16"}
    settings, path = _cache_path(model, ids, strings, kind, ("text",) if is_query else ("title", "text"), None, extra)
    mask_path = path.with_name(path.stem + "-mask.npy")
    if cache and path.is_file() and mask_path.is_file():
        try:
            emb, mask = np.load(path), np.load(mask_path)
            if emb.shape[0] == len(strings) == mask.shape[0] and emb.shape[:2] == mask.shape:
                return emb, mask
        except (ValueError, OSError, EOFError):
            pass  # recompute below
    start = time.perf_counter()
    emb, mask = _backbone_tokens(model, strings, is_query, query_augment, max_length, batch_size, show_progress)
    emb = emb.astype(np.float16)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**settings, "n": len(strings), "tokens": int(mask.sum()), "encode_seconds":
                round(time.perf_counter() - start, 3), "device": str(model.device)}
        _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
        _atomic_write(mask_path, lambda tmp: np.save(open(tmp, "wb"), mask, allow_pickle=False))
        _atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), emb, allow_pickle=False))
    return emb, mask


def project(emb: np.ndarray, mask: np.ndarray, weight: np.ndarray | None = None,
            dtype=np.float16, chunk: int = 256) -> np.ndarray:
    """Apply a linear projection (D, D') to every token, then L2-normalize each token vector.

    ``weight=None`` keeps the backbone's dims (zero-shot). Padded positions are set to 0 (their mask
    keeps them out of MaxSim). Returns (B, L, D') in ``dtype``.
    """
    import torch

    dim = emb.shape[2] if weight is None else weight.shape[1]
    out = np.zeros(emb.shape[:2] + (dim,), dtype)
    w = None if weight is None else torch.from_numpy(np.asarray(weight, np.float32))
    for s in range(0, emb.shape[0], chunk):
        x = torch.from_numpy(np.asarray(emb[s:s + chunk], np.float32))  # (c, L, D)
        if w is not None:
            x = x @ w  # (c, L, D')
        x = torch.nn.functional.normalize(x, dim=-1) * torch.from_numpy(mask[s:s + chunk])[..., None]
        out[s:s + chunk] = x.numpy().astype(dtype)
    return out


def encode_multivector(model, texts, is_query: bool, projection: np.ndarray | None = None,
                       query_augment: bool = True, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings of ``texts``, projected (optional) and L2-normalized per token.

    Returns ``(emb, mask)``: float16 (B, L, D') with padding zeroed, and bool (B, L).
    """
    emb, mask = token_embeddings(model, texts, is_query, query_augment=query_augment, **kwargs)
    return project(emb, mask, projection), mask


# ---------------------------------------------------------------------------------------------
# Ranking and training
# ---------------------------------------------------------------------------------------------

def rank_maxsim(q: np.ndarray, q_mask: np.ndarray, d: np.ndarray, d_mask: np.ndarray, k: int = 100,
                candidates: np.ndarray | None = None, query_block: int = 8):
    """Top-k documents per query by MaxSim (torch on CPU), over the whole corpus or a shortlist.

    ``candidates``: optional int (Q, C) shortlist per query (two-stage retrieval); only those documents are
    read and scored. Returns float32 scores and int64 indices, (Q, k), best first.
    """
    import torch

    if not np.asarray(d_mask).any(axis=1).all():
        raise ValueError(f"d row {int(np.flatnonzero(~np.asarray(d_mask).any(axis=1))[0])} has no valid token")
    scores_out, idx_out = [], []
    if candidates is None:
        dt, dmt = torch.from_numpy(np.asarray(d, np.float32)), torch.from_numpy(d_mask)  # convert once
    for s in range(0, q.shape[0], query_block):
        qt = torch.from_numpy(np.asarray(q[s:s + query_block], np.float32))  # (b, Lq, D)
        qmt = torch.from_numpy(q_mask[s:s + query_block])
        if candidates is None:
            sc = maxsim(qt, qmt, dt, dmt)  # (b, N)
            cand = None
        else:
            cand = np.asarray(candidates[s:s + query_block], np.int64)  # (b, C)
            dc = torch.from_numpy(np.asarray(d[cand], np.float32))  # (b, C, Ld, D): the shortlist only
            sim = torch.einsum("qid,qcjd->qcij", qt, dc)  # (b, C, Lq, Ld)
            sim = sim.masked_fill(~torch.from_numpy(d_mask[cand])[:, :, None, :], float("-inf"))
            sc = sim.amax(dim=3).masked_fill(~qmt[:, None, :], 0.0).sum(dim=2)  # (b, C)
        top = torch.topk(sc, min(k, sc.shape[1]), dim=1)
        scores_out.append(top.values.numpy())
        idx = top.indices.numpy()
        idx_out.append(idx if cand is None else np.take_along_axis(cand, idx, axis=1))
    return np.concatenate(scores_out).astype(np.float32), np.concatenate(idx_out).astype(np.int64)


def train_projection(q_emb: np.ndarray, q_mask: np.ndarray, d_emb: np.ndarray, d_mask: np.ndarray,
                     pairs: Sequence[tuple[int, int]], hard_negatives: Sequence[Sequence[int]] | None = None,
                     dim: int = 128, epochs: int = 10, batch_size: int = 32, lr: float = 2e-3,
                     temperature: float = 0.05, seed: int = 0, show_progress: bool = True) -> dict:
    """Train a linear projection (D -> dim) of frozen token vectors with a MaxSim contrastive loss.

    For each (query row, positive document row) pair of a batch, the other positives of the batch (and the
    query's hard negatives, if given) are the negatives: cross-entropy over ``MaxSim / (Lq * temperature)``.

    Returns ``{"weight": float32 (D, dim), "losses": [...], "seconds": float}``. The projection starts from
    the principal directions of the document tokens, so training begins from a sensible 128-dim space.
    """
    import torch
    from tqdm.auto import tqdm

    if not pairs:
        raise ValueError("pairs must not be empty")
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(d_emb), min(len(d_emb), 200), replace=False)
    tokens = torch.from_numpy(d_emb[rows][d_mask[rows]].astype(np.float32))  # (tokens, D)
    _, _, v = torch.pca_lowrank(tokens, q=dim, center=False)
    weight = torch.nn.Parameter(v[:, :dim].clone())  # (D, dim)
    opt = torch.optim.Adam([weight], lr=lr)
    pairs = np.asarray(pairs, np.int64)
    losses = []
    start = time.perf_counter()
    steps = range(epochs)
    for _ in tqdm(steps, desc="training projection", disable=not show_progress):
        order = torch.randperm(len(pairs), generator=g).numpy()
        for s in range(0, len(order), batch_size):
            batch = pairs[order[s:s + batch_size]]
            docs = list(batch[:, 1])
            if hard_negatives is not None:
                docs += [int(h) for qi in batch[:, 0] for h in hard_negatives[qi]]
            qx = torch.from_numpy(q_emb[batch[:, 0]].astype(np.float32)) @ weight  # (b, Lq, dim)
            dx = torch.from_numpy(d_emb[docs].astype(np.float32)) @ weight  # (b + h, Ld, dim)
            qx, dx = torch.nn.functional.normalize(qx, dim=-1), torch.nn.functional.normalize(dx, dim=-1)
            qm, dm = torch.from_numpy(q_mask[batch[:, 0]]), torch.from_numpy(d_mask[docs])
            scores = maxsim(qx, qm, dx, dm, chunk_size=len(docs))  # (b, b + h)
            scores = scores / (qm.sum(1, keepdim=True) * temperature)
            labels = torch.arange(len(batch))
            # a document that is the positive of two queries in one batch is not a negative for either
            same = torch.from_numpy(np.asarray(docs)[None, :] == batch[:, 1][:, None])
            same[labels, labels] = False
            loss = torch.nn.functional.cross_entropy(scores.masked_fill(same, float("-inf")), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return {"weight": weight.detach().numpy().astype(np.float32), "losses": losses,
            "seconds": time.perf_counter() - start}


def save_projection(weight: np.ndarray, name: str, info: dict | None = None) -> Path:
    """Save a trained projection under the cache dir (``models/<name>.npy`` with a JSON of its settings)."""
    folder = cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npy"
    _atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), weight, allow_pickle=False))
    _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(info or {}, indent=1)))
    return path


def load_projection(name: str) -> np.ndarray | None:
    """A projection saved by :func:`save_projection`, or None if there is none."""
    path = cache_dir() / "models" / f"{name}.npy"
    return np.load(path) if path.is_file() else None


def training_pairs(train_ds, doc_ids: Sequence[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """(query ids, pairs of (query row, document row)) from a BEIR *train* split's qrels (relevance > 0)."""
    if getattr(train_ds, "split", "train") != "train":
        raise ValueError(f"training pairs must come from the train split, got {train_ds.split!r}")
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = list(train_ds.queries)
    pairs = [(qi, row[d]) for qi, q in enumerate(qids) for d, rel in train_ds.qrels.get(q, {}).items()
             if rel > 0 and d in row]
    return qids, pairs


def colbert_projection(model, train_ds, corpus_tokens: tuple[np.ndarray, np.ndarray], doc_ids: Sequence[str],
                       epochs: int = 10, dim: int = 128, retrain: bool = False, show_progress: bool = True) -> dict:
    """The course's ColBERT-style model: a 384 -> ``dim`` projection trained on SciFact train pairs, cached.

    Loads the projection saved in the cache dir under a name keyed on the backbone, the documents and the
    settings; trains and saves it if there is none (or ``retrain``). Returns ``{"weight", "losses",
    "seconds", "cached"}``.
    """
    import hashlib

    from course_lib.embed import model_fingerprint, texts_fingerprint

    key = hashlib.sha256(json.dumps([model_fingerprint(model), texts_fingerprint(list(doc_ids), list(doc_ids)),
                                     sorted(train_ds.queries), epochs, dim]).encode()).hexdigest()[:16]
    name = f"colbert-proj-{dim}-{key}"
    info_path = cache_dir() / "models" / f"{name}.json"
    weight = None if retrain else load_projection(name)
    if weight is not None and info_path.is_file():
        return {"weight": weight, **json.loads(info_path.read_text()), "cached": True}
    d_emb, d_mask = corpus_tokens
    qids, pairs = training_pairs(train_ds, doc_ids)
    q_emb, q_mask = token_embeddings(model, {q: train_ds.queries[q] for q in qids}, True, show_progress=show_progress)
    res = train_projection(q_emb, q_mask, d_emb, d_mask, pairs, dim=dim, epochs=epochs, show_progress=show_progress)
    info = {"losses": res["losses"], "seconds": round(res["seconds"], 1), "epochs": epochs, "pairs": len(pairs)}
    save_projection(res["weight"], name, info)
    return {"weight": res["weight"], **info, "cached": False}
