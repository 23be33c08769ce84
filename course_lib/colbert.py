"""The course's ColBERT-style model: frozen MiniLM token vectors and a trained linear projection 384 -> 128.

The backbone's token embeddings are computed once and cached (:func:`token_embeddings`), so training
and evaluation are cheap on a CPU. Queries are padded with [MASK] tokens to ``QUERY_LENGTH`` (ColBERT's
query augmentation). :func:`train_projection` learns the projection with a MaxSim contrastive loss;
:func:`colbert_projection` trains it once on SciFact *train* pairs, through the leakage guard of
:mod:`course_lib.training`, and caches it. MaxSim itself is in :mod:`course_lib.maxsim`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from course_lib import validation as V
from course_lib.cache import (CacheEntryError, cache_dir, cache_key, load_array, load_json, load_or_compute,
                              model_fingerprint, save_array, save_json, texts_fingerprint)
from course_lib.embed import as_texts, default_batch_size, encoding_entry
from course_lib.maxsim import maxsim

QUERY_LENGTH = 32  # ColBERT's query length: queries are padded with [MASK] to this many tokens
DOC_LENGTH = 256  # MiniLM's max sequence length, as for the dense model


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
                        padding="max_length" if augment else "longest", return_tensors="pt")  # ids, mask (b, L)
        if augment:  # ColBERT query augmentation: the padding becomes [MASK] tokens the model attends to
            enc["input_ids"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, tokenizer.mask_token_id)
            enc["attention_mask"] = torch.ones_like(enc["attention_mask"])
        with torch.inference_mode():
            hidden = backbone(**{k: v.to(device) for k, v in enc.items()}).last_hidden_state  # (b, L, 384)
        e = np.zeros((hidden.shape[0], max_length, hidden.shape[2]), np.float16)  # half the memory of float32
        m = np.zeros((hidden.shape[0], max_length), bool)  # (b, max_length)
        e[:, :hidden.shape[1]] = hidden.float().cpu().numpy()
        m[:, :hidden.shape[1]] = enc["attention_mask"].bool().numpy()
        out_e.append(e)
        out_m.append(m)
    emb, mask = np.concatenate(out_e), np.concatenate(out_m)  # (B, max_length, 384), (B, max_length)
    width = int(mask.any(0).nonzero()[0].max()) + 1  # trim columns that are padding in every row
    return emb[:, :width], mask[:, :width]  # (B, L, 384), (B, L) with L = width


def token_embeddings(model, texts, is_query: bool, *, query_augment: bool = True, max_length: int | None = None,
                     batch_size: int | None = None, cache: bool = True,
                     show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The frozen backbone's token vectors, cached on disk as float16: (B, L, 384) and a bool mask (B, L).

    ``texts``: a dict (id -> text or BEIR document) or a list of str. Queries are padded with [MASK]
    to ``QUERY_LENGTH`` tokens when ``query_augment``; documents are cut at ``DOC_LENGTH``. ``batch_size``
    None is 32 on a CPU and 128 on a GPU.
    """
    V.check_bool("is_query", is_query)
    V.check_bool("query_augment", query_augment)
    V.check_int("max_length", max_length, low=1, allow_none=True)
    V.check_int("batch_size", batch_size, low=1, allow_none=True)
    V.check_bool("cache", cache)
    V.check_bool("show_progress", show_progress)
    fields = ("text",) if is_query else ("title", "text")
    ids, strings = as_texts(texts, fields)  # before the model is touched: bad texts fail fast
    batch_size = batch_size or default_batch_size(model, cpu=32, accelerator=128)
    max_length = max_length or (QUERY_LENGTH if is_query else DOC_LENGTH)
    kind = "tokens-queries" if is_query else "tokens-corpus"
    extra = {"max_length": max_length, "query_augment": bool(query_augment and is_query), "dtype": "float16"}
    settings, path = encoding_entry(model, ids, strings, kind, fields, None, extra)
    mask_path = path.with_name(path.stem + "-mask.npy")

    def load():
        emb, mask = load_array(path), load_array(mask_path)
        if not (emb.shape[0] == len(strings) == mask.shape[0] and emb.shape[:2] == mask.shape):
            raise CacheEntryError(f"shapes {emb.shape} and {mask.shape} do not fit {len(strings)} texts")
        return emb, mask, None

    def compute():
        start = time.perf_counter()
        emb, mask = _backbone_tokens(model, strings, is_query, query_augment, max_length, batch_size, show_progress)
        meta = {**settings, "n": len(strings), "tokens": int(mask.sum()),
                "encode_seconds": round(time.perf_counter() - start, 3), "device": str(model.device)}
        return emb.astype(np.float16), mask, meta

    def save(value, staged):
        save_json(staged[0], value[2])
        save_array(staged[1], value[1])
        save_array(staged[2], value[0])

    (emb, mask, _), _ = load_or_compute([path.with_suffix(".json"), mask_path, path], load=load, compute=compute,
                                        save=save, enabled=cache, what="token-vector cache")
    return emb, mask


def project(emb: np.ndarray, mask: np.ndarray, weight: np.ndarray | None = None,
            dtype=np.float16, chunk: int = 256) -> np.ndarray:
    """Apply a linear projection (D, D') to every token, then L2-normalize each token vector.

    ``weight=None`` keeps the backbone's dims (zero-shot). Padded positions are set to 0 (their mask
    keeps them out of MaxSim). Returns (B, L, D') in ``dtype``.
    """
    import torch

    V.check_tokens("emb", emb, mask, numpy_only=True)
    mask = V.check_mask("mask", mask, emb.shape[:2])
    V.check_finite("emb", emb)
    if weight is not None:
        V.check_matrix("weight", weight)
        if weight.shape[0] != emb.shape[2]:
            raise ValueError(f"weight must have shape (D={emb.shape[2]}, D'), got {weight.shape}")
    if not (isinstance(dtype, type) and np.dtype(dtype) in V.FLOAT_DTYPES):
        raise TypeError(f"dtype must be np.float16, np.float32 or np.float64, got {dtype!r}")
    chunk = V.check_int("chunk", chunk, low=1)
    dim = emb.shape[2] if weight is None else weight.shape[1]
    out = np.zeros(emb.shape[:2] + (dim,), dtype)  # (B, L, D')
    w = None if weight is None else torch.from_numpy(np.asarray(weight, np.float32))  # (D, D')
    for s in range(0, emb.shape[0], chunk):
        x = torch.from_numpy(np.asarray(emb[s:s + chunk], np.float32))  # (c, L, D)
        if w is not None:
            x = x @ w  # (c, L, D')
        x = torch.nn.functional.normalize(x, dim=-1) * torch.from_numpy(mask[s:s + chunk])[..., None]  # (c, L, D')
        out[s:s + chunk] = x.numpy().astype(dtype)
    return out


def encode_multivector(model, texts, is_query: bool, projection: np.ndarray | None = None,
                       query_augment: bool = True, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings of ``texts``, projected (optional) and L2-normalized per token.

    Returns ``(emb, mask)``: float16 (B, L, D') with padding zeroed, and bool (B, L).
    """
    if projection is not None:
        V.check_matrix("projection", projection)
    emb, mask = token_embeddings(model, texts, is_query, query_augment=query_augment, **kwargs)
    return project(emb, mask, projection), mask


def train_projection(q_emb: np.ndarray, q_mask: np.ndarray, d_emb: np.ndarray, d_mask: np.ndarray,
                     pairs: Sequence[tuple[int, int]], *, hard_negatives: Sequence[Sequence[int]] | None = None,
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

    from course_lib.config import seeded_torch

    V.check_tokens("q_emb", q_emb, q_mask, numpy_only=True)
    V.check_tokens("d_emb", d_emb, d_mask, numpy_only=True)
    q_mask, d_mask = V.check_mask("q_mask", q_mask, q_emb.shape[:2]), V.check_mask("d_mask", d_mask, d_emb.shape[:2])
    V.check_finite("q_emb", q_emb)
    V.check_finite("d_emb", d_emb)
    V.check_same_dims("q_emb", q_emb, "d_emb", d_emb)
    pairs = V.check_sequence("pairs", pairs, "(query row, document row) pairs")
    if not pairs:
        raise ValueError("pairs must not be empty")
    for i, p in enumerate(pairs):
        if not isinstance(p, (tuple, list)) or len(p) != 2 or not V.is_int(p[0]) or not V.is_int(p[1]) \
                or not 0 <= p[0] < len(q_emb) or not 0 <= p[1] < len(d_emb):
            raise ValueError(f"pairs[{i}] must be (query row in [0, {len(q_emb)}), document row in [0, {len(d_emb)})), "
                             f"got {p!r}")
    if hard_negatives is not None:
        hard_negatives = V.check_sequence("hard_negatives", hard_negatives, "lists of document rows")
        if len(hard_negatives) != len(q_emb):
            raise ValueError(f"hard_negatives must hold one list per query row ({len(q_emb)}), got {len(hard_negatives)}")
        for i, hs in enumerate(hard_negatives):
            for h in V.check_sequence(f"hard_negatives[{i}]", hs, "document rows"):
                V.check_int(f"hard_negatives[{i}] entry", h, low=0, high=len(d_emb) - 1, what="a document row")
    dim = V.check_int("dim", dim, low=1, high=d_emb.shape[2], what="at most the token dims")
    V.check_int("epochs", epochs, low=1)
    V.check_int("batch_size", batch_size, low=1)
    V.check_number("lr", lr, low=0, low_open=True)
    V.check_number("temperature", temperature, low=0, low_open=True)
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(d_emb), min(len(d_emb), 200), replace=False)  # (<= 200,) document rows
    tokens = torch.from_numpy(d_emb[rows][d_mask[rows]].astype(np.float32))  # (tokens, D)
    with seeded_torch(seed):  # pca_lowrank draws its random projection from torch's global generator
        _, _, v = torch.pca_lowrank(tokens, q=dim, center=False)  # v: (D, dim)
    weight = torch.nn.Parameter(v[:, :dim].clone())  # (D, dim)
    opt = torch.optim.Adam([weight], lr=lr)
    pairs = np.asarray(pairs, np.int64)  # (P, 2): (query row, document row)
    losses = []
    start = time.perf_counter()
    steps = range(epochs)
    for _ in tqdm(steps, desc="training projection", disable=not show_progress):
        order = torch.randperm(len(pairs), generator=g).numpy()
        for s in range(0, len(order), batch_size):
            batch = pairs[order[s:s + batch_size]]  # (b, 2)
            docs = list(batch[:, 1])  # b positives, then h hard negatives: b + h document rows
            if hard_negatives is not None:
                docs += [int(h) for qi in batch[:, 0] for h in hard_negatives[qi]]
            qx = torch.from_numpy(q_emb[batch[:, 0]].astype(np.float32)) @ weight  # (b, Lq, dim)
            dx = torch.from_numpy(d_emb[docs].astype(np.float32)) @ weight  # (b + h, Ld, dim)
            qx, dx = torch.nn.functional.normalize(qx, dim=-1), torch.nn.functional.normalize(dx, dim=-1)
            qm, dm = torch.from_numpy(q_mask[batch[:, 0]]), torch.from_numpy(d_mask[docs])  # (b, Lq), (b + h, Ld)
            scores = maxsim(qx, qm, dx, dm, chunk_size=len(docs))  # (b, b + h)
            scores = scores / (qm.sum(1, keepdim=True) * temperature)  # (b, b + h) / ((b, 1) query lengths)
            labels = torch.arange(len(batch))  # (b,): query i's positive is column i
            # a document that is the positive of two queries in one batch is not a negative for either
            same = torch.from_numpy(np.asarray(docs)[None, :] == batch[:, 1][:, None])  # (b, b + h)
            same[labels, labels] = False
            loss = torch.nn.functional.cross_entropy(scores.masked_fill(same, float("-inf")), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return {"weight": weight.detach().numpy().astype(np.float32), "losses": losses,
            "seconds": time.perf_counter() - start}


def training_pairs(train_ds, test_ds, doc_ids: Sequence[str]) -> tuple[list[str], list[tuple[int, int]], dict]:
    """The projection's training data: SciFact *train* pairs through the leakage guard, as row indices.

    Returns ``(query_ids, pairs, stats)``: the train queries in first-seen order, (query row, document row)
    pairs for each guarded example whose document is in ``doc_ids``, and the guard's counts
    (:func:`course_lib.training.guarded_examples`).
    """
    from course_lib.training import guarded_examples

    doc_ids = V.check_ids("doc_ids", doc_ids, nonempty=True)
    examples, stats = guarded_examples(train_ds, test_ds)
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = list(dict.fromkeys(e.query_id for e in examples if e.doc_id in row))
    q_row = {q: i for i, q in enumerate(qids)}
    pairs = [(q_row[e.query_id], row[e.doc_id]) for e in examples if e.doc_id in row]
    return qids, pairs, stats


def colbert_projection(model, train_ds, test_ds, corpus_tokens: tuple[np.ndarray, np.ndarray],
                       doc_ids: Sequence[str], *, epochs: int = 10, dim: int = 128, retrain: bool = False,
                       show_progress: bool = True) -> dict:
    """The course's ColBERT-style model: a 384 -> ``dim`` projection trained on SciFact train pairs, cached.

    The pairs pass the leakage guard against ``test_ds`` (:func:`training_pairs`). The cache key hashes the
    backbone's weights, the texts of the documents and of the training queries, and the settings, so an edited
    text or another backbone never loads a stale projection. ``corpus_tokens`` are the token vectors of
    ``doc_ids`` (rows in that order), whose texts come from ``train_ds.corpus``. Returns ``{"weight",
    "losses", "seconds", "epochs", "pairs", "cached", ...}``.
    """
    from course_lib.data import document_text

    doc_ids = V.check_ids("doc_ids", doc_ids, nonempty=True)
    if not isinstance(corpus_tokens, tuple) or len(corpus_tokens) != 2:
        raise TypeError(f"corpus_tokens must be a tuple (emb, mask), got {type(corpus_tokens).__name__}")
    V.check_tokens("corpus_tokens[0]", corpus_tokens[0], corpus_tokens[1], numpy_only=True)
    V.check_int("epochs", epochs, low=1)
    V.check_int("dim", dim, low=1, high=corpus_tokens[0].shape[2], what="at most the token dims")
    V.check_bool("retrain", retrain)
    V.check_bool("show_progress", show_progress)
    qids, pairs, stats = training_pairs(train_ds, test_ds, doc_ids)
    if not pairs:
        raise ValueError("no training pair has its document in doc_ids")
    d_emb, d_mask = corpus_tokens
    if d_emb.shape[0] != len(doc_ids) or d_mask.shape != d_emb.shape[:2]:
        raise ValueError(f"corpus_tokens must hold one row per doc id ({len(doc_ids)}), got {d_emb.shape} "
                         f"and mask {d_mask.shape}")
    key = cache_key([model_fingerprint(model),
                     texts_fingerprint(list(doc_ids), [document_text(train_ds.corpus[d]) for d in doc_ids]),
                     texts_fingerprint(qids, [train_ds.queries[q] for q in qids]), pairs, epochs, dim], length=16)
    path = cache_dir() / "models" / f"colbert-proj-{dim}-{key}.npy"

    def load():
        weight, info = load_array(path), load_json(path.with_suffix(".json"))
        if weight.shape != (d_emb.shape[2], dim) or not np.isfinite(weight).all():
            raise CacheEntryError(f"weight has shape {weight.shape}, expected {(d_emb.shape[2], dim)}")
        return weight, info

    def compute():
        q_emb, q_mask = token_embeddings(model, {q: train_ds.queries[q] for q in qids}, True,
                                         show_progress=show_progress)
        res = train_projection(q_emb, q_mask, d_emb, d_mask, pairs, dim=dim, epochs=epochs,
                               show_progress=show_progress)
        info = {"losses": res["losses"], "seconds": round(res["seconds"], 1), "epochs": epochs, "pairs": len(pairs),
                "leakage_check": stats}
        return res["weight"], info

    def save(value, staged):
        save_array(staged[0], value[0])
        save_json(staged[1], value[1])

    (weight, info), cached = load_or_compute([path, path.with_suffix(".json")], load=load, compute=compute,
                                             save=save, refresh=retrain, what="ColBERT projection")
    return {"weight": weight, **info, "cached": cached}
