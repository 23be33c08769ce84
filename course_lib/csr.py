"""Learned sparse codes over a frozen model: Contrastive Sparse Representation, CSR ("Beyond Matryoshka",
Wen et al., ICML 2025), with sentence-transformers' ``SparseEncoder``, ``SparseAutoEncoder`` and ``CSRLoss``.

A TopK sparse autoencoder maps a dense embedding :math:`e \\in \\mathbb{R}^D` to a wide code
:math:`z \\in \\mathbb{R}^H` (:math:`H \\gg D`) with at most ``k`` non-zero ("active") dimensions:

.. math::

    z = \\mathrm{relu}(\\mathrm{TopK}_k(W (e - b_{pre}) + b_{lat})), \\qquad \\hat e = W^\\top z + b_{pre}

(the decoder is the encoder's transpose). Documents are scored by the dot product of their codes,
:math:`s(q, d) = z_q \\cdot z_d`, which only touches the dimensions active in both: an inverted index over the
``H`` dimensions (one posting list of (document, value) per dimension) finds them without a scan of dense rows.
``CSRLoss`` trains the autoencoder with a reconstruction loss (top-k, top-4k and an auxiliary term that revives
dead dimensions), plus, weighted by ``gamma``, a contrastive loss (in-batch MNRL over the codes) on
(query, relevant document) pairs.

The backbone stays frozen, so training runs on cached embeddings: the loss's model is a ``SparseEncoder`` holding
the autoencoder alone (:func:`csr_setup`), fed ``{"sentence_embedding": e}`` batches (:func:`train_csr`). The
same trained module, appended to the packaged MiniLM (:func:`csr_encoder`), encodes text end to end;
``tests/test_csr.py`` checks that both give the same codes, that every code has exactly ``k`` active dimensions,
and that the inverted index (:func:`build_index`, :func:`search`) ranks as a dense dot product of the same codes
and as ``SparseEncoder.similarity``.
"""

from __future__ import annotations

import time

import numpy as np

from course_lib import validation as V


def _check_sae(sae):
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    if not isinstance(sae, SparseAutoEncoder):
        raise TypeError(f"sae must be a sentence_transformers SparseAutoEncoder module, got {V.describe(sae)}")
    return sae


def _check_loss(loss):
    from sentence_transformers.sparse_encoder.losses import CSRLoss

    if not isinstance(loss, CSRLoss):
        raise TypeError(f"loss must be a sentence_transformers CSRLoss, got {V.describe(loss)}")
    modules = list(loss.model)
    if len(modules) != 1:
        raise ValueError("loss.model must be a SparseEncoder holding the SparseAutoEncoder alone (it trains on "
                         f"cached embeddings, not text), got modules {[type(m).__name__ for m in modules]}")
    return loss, _check_sae(modules[0])


def csr_setup(input_dim: int = 384, hidden_dim: int = 1536, k: int = 32, *, k_aux: int | None = None,
              beta: float = 0.1, gamma: float = 0.0, seed: int = 0):
    """A fresh CSR head and its loss: ``SparseEncoder(modules=[SparseAutoEncoder(...)])`` and ``CSRLoss``.

    ``hidden_dim`` is the code's width H, ``k`` its active dimensions, ``k_aux`` the auxiliary loss's width
    (default ``min(512, hidden_dim)``);
    ``beta`` weights the auxiliary reconstruction term and ``gamma`` the contrastive term (0: reconstruction
    only, no pairs needed). ``seed`` seeds the autoencoder's initial weights. Returns ``(head, loss)``.

    >>> head, loss = csr_setup(384, 64, 4, k_aux=8)
    >>> [type(m).__name__ for m in head], head[0].k, type(loss).__name__
    (['SparseAutoEncoder'], 4, 'CSRLoss')
    """
    import torch
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.losses import CSRLoss
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    V.check_int("input_dim", input_dim, low=1)
    V.check_int("hidden_dim", hidden_dim, low=1)
    V.check_int("k", k, low=1, high=hidden_dim, what="hidden_dim")
    if 4 * k > hidden_dim:
        raise ValueError(f"hidden_dim must be at least 4 * k (CSRLoss also reconstructs from the top 4k), "
                         f"got hidden_dim={hidden_dim}, k={k}")
    k_aux = min(512, hidden_dim) if k_aux is None else V.check_int("k_aux", k_aux, low=0, high=hidden_dim,
                                                                   what="hidden_dim")
    V.check_number("beta", beta, low=0)
    V.check_number("gamma", gamma, low=0)
    V.check_int("seed", seed, low=0)
    torch.manual_seed(seed)
    sae = SparseAutoEncoder(input_dim=input_dim, hidden_dim=hidden_dim, k=k, k_aux=k_aux)
    head = SparseEncoder(modules=[sae], device="cpu")
    return head, CSRLoss(head, beta=beta, gamma=gamma)


def train_csr(loss, corpus_emb: np.ndarray, *, pairs: tuple | None = None, steps: int = 1000,
              batch_size: int = 512, pair_batch: int = 64, lr: float = 4e-4, seed: int = 0,
              show_progress: bool = True) -> dict:
    """Train the autoencoder of ``loss`` (from :func:`csr_setup`) on frozen embeddings; returns what it did.

    Each step reconstructs a random batch of ``batch_size`` rows of ``corpus_emb`` (float (N, D)); with
    ``pairs = (query_emb, doc_emb)`` (two aligned float (P, D) arrays of (query, relevant document) rows, from the
    leakage guard) it also adds ``CSRLoss`` on ``pair_batch`` of them: reconstruction of both sides and, weighted by
    the loss's ``gamma``, in-batch MNRL over the codes. Adam at ``lr``. The module is trained in place and left in
    eval mode. Returns ``{"losses": [...], "seconds", "steps", ...settings}``.
    """
    import torch
    from tqdm.auto import tqdm

    loss, sae = _check_loss(loss)
    x = V.check_matrix("corpus_emb", corpus_emb)
    if x.shape[1] != sae.input_dim:
        raise ValueError(f"corpus_emb has {x.shape[1]} dims, the autoencoder expects input_dim={sae.input_dim}")
    if pairs is not None:
        if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
            raise TypeError("pairs must be (query_emb, doc_emb), two arrays of aligned rows")
        qp, dp = V.check_matrix("pairs[0]", pairs[0]), V.check_matrix("pairs[1]", pairs[1])
        if qp.shape != dp.shape or qp.shape[1] != x.shape[1] or len(qp) < 2:
            raise ValueError(f"pairs must be two (P, {x.shape[1]}) arrays with P >= 2, got {qp.shape} and {dp.shape}")
    V.check_int("steps", steps, low=1)
    V.check_int("batch_size", batch_size, low=2)
    V.check_int("pair_batch", pair_batch, low=2)
    V.check_number("lr", lr, low=0, low_open=True)
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)

    g = torch.Generator().manual_seed(seed)
    corpus = torch.from_numpy(np.asarray(x, np.float32))  # (N, D)
    if pairs is not None:
        qt, dt = (torch.from_numpy(np.asarray(a, np.float32)) for a in (qp, dp))  # (P, D) each
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    sae.train()
    losses = []
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="training CSR", disable=not show_progress):
        rows = torch.randperm(len(corpus), generator=g)[:batch_size]  # (b,)
        out = loss.model({"sentence_embedding": corpus[rows]})
        parts = loss.reconstruction_loss.compute_loss_from_embeddings([out])
        total = sum(parts.values())
        if pairs is not None:
            b = torch.randperm(len(qt), generator=g)[:pair_batch]  # (b,)
            total = total + sum(loss([{"sentence_embedding": qt[b]}, {"sentence_embedding": dt[b]}]).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    sae.eval()
    return {"losses": losses, "seconds": round(time.perf_counter() - start, 2), "steps": steps,
            "batch_size": batch_size, "lr": lr, "k": sae.k, "hidden_dim": sae.hidden_dim,
            "beta": loss.beta, "gamma": loss.gamma, "supervised": pairs is not None}


def encode_codes(emb: np.ndarray, sae, k: int | None = None):
    """The sparse codes of frozen embeddings ``emb`` (float (N, D)), as a ``scipy.sparse.csr_matrix`` float32
    (N, H) with at most ``k`` (default: the module's ``k``) non-zeros per row, the ones the autoencoder keeps;
    the same values as the ``SparseEncoder`` output for the texts behind ``emb``."""
    import scipy.sparse as sp
    import torch

    sae = _check_sae(sae)
    x = V.check_matrix("emb", emb)
    if x.shape[1] != sae.input_dim:
        raise ValueError(f"emb has {x.shape[1]} dims, the autoencoder expects input_dim={sae.input_dim}")
    k = sae.k if k is None else V.check_int("k", k, low=1, high=sae.hidden_dim, what="hidden_dim")
    rows = []
    with torch.inference_mode():
        for start in range(0, len(x), 4096):
            chunk = torch.from_numpy(np.asarray(x[start:start + 4096], np.float32))  # (b, D)
            z = sae({"sentence_embedding": chunk}, max_active_dims=k)["sentence_embedding"]  # (b, H)
            rows.append(sp.csr_matrix(z.numpy()))
    return sp.vstack(rows, format="csr")


def csr_encoder(sae, base=None):
    """The end-to-end ``SparseEncoder``: the packaged MiniLM's modules (or ``base``'s), then ``sae``. Its
    ``encode`` turns text into codes, its ``similarity`` is the dot product."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    from course_lib.models import load_model

    sae = _check_sae(sae)
    base = load_model(device="cpu") if base is None else base
    return SparseEncoder(modules=[*base, sae], device="cpu")


def build_index(codes):
    """An inverted index of document codes ``codes`` (a scipy sparse (N, H) matrix): the transpose in CSR layout,
    shape (H, N), whose row ``h`` is dimension ``h``'s posting list (the documents active there, with values)."""
    import scipy.sparse as sp

    if not sp.issparse(codes) or codes.ndim != 2:
        raise TypeError(f"codes must be a 2-D scipy sparse matrix (documents, code dims), got {V.describe(codes)}")
    if codes.shape[0] < 1:
        raise ValueError("codes must hold at least one document")
    codes = codes.tocsr().astype(np.float32)
    if not np.isfinite(codes.data).all():
        raise ValueError("codes hold NaN or inf values")
    return codes.T.tocsr()  # (H, N)


def search(index, query_codes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents by dot product of sparse codes through the inverted ``index`` (:func:`build_index`).

    ``query_codes``: scipy sparse (Q, H). Only the posting lists of each query's active dimensions are read
    (a sparse (Q, H) x (H, N) product). Returns ``(scores, indices)``, float32 and int64 (Q, k), best first,
    ties by lower index: the same as a dense dot product of the codes (:func:`course_lib.search.topk`).
    """
    import scipy.sparse as sp

    from course_lib.search import topk_scores

    if not sp.issparse(index) or index.ndim != 2:
        raise TypeError(f"index must be the scipy sparse matrix of build_index, got {V.describe(index)}")
    if not sp.issparse(query_codes) or query_codes.ndim != 2:
        raise TypeError(f"query_codes must be a 2-D scipy sparse matrix (queries, code dims), "
                        f"got {V.describe(query_codes)}")
    if query_codes.shape[1] != index.shape[0]:
        raise ValueError(f"query_codes have {query_codes.shape[1]} code dims, the index has {index.shape[0]}")
    if query_codes.shape[0] < 1:
        raise ValueError("query_codes must hold at least one query")
    q = query_codes.tocsr().astype(np.float32)
    if not np.isfinite(q.data).all():
        raise ValueError("query_codes hold NaN or inf values")
    scores = (q @ index).toarray()  # (Q, N)
    s, i = topk_scores(scores, k)
    return s.astype(np.float32), i.astype(np.int64)


def code_bytes(k: int, hidden_dim: int) -> int:
    """Bytes to store one code of ``k`` active dimensions out of ``hidden_dim``: a float32 value and an index per
    active dimension (uint16 up to 65,536 dimensions, else uint32).

    >>> code_bytes(32, 1536), code_bytes(32, 100_000)
    (192, 256)
    """
    V.check_int("hidden_dim", hidden_dim, low=1)
    V.check_int("k", k, low=1, high=hidden_dim, what="hidden_dim")
    return k * (4 + (2 if hidden_dim <= 65536 else 4))


def csr_head(corpus_emb: np.ndarray, *, pairs: tuple | None = None, k: int = 32, hidden_dim: int = 1536,
             gamma: float = 0.0, steps: int = 1000, seed: int = 0, retrain: bool = False,
             show_progress: bool = True):
    """:func:`csr_setup` + :func:`train_csr`, cached: the trained head is saved under ``<cache>/models/csr-<key>``
    (the key hashes the embeddings, the pairs and the settings) and loaded from there afterwards.
    Returns ``(sae, info)``, ``info`` being :func:`train_csr`'s dict with ``"cached"``."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    from course_lib.adaptor import arrays_fingerprint
    from course_lib.cache import CacheEntryError, cache_dir, cache_key, load_json, load_or_compute, save_json

    x = V.check_matrix("corpus_emb", corpus_emb)
    V.check_bool("retrain", retrain)
    if pairs is not None and (not isinstance(pairs, (tuple, list)) or len(pairs) != 2):
        raise TypeError("pairs must be (query_emb, doc_emb), two arrays of aligned rows")
    V.check_int("hidden_dim", hidden_dim, low=1)
    V.check_int("k", k, low=1, high=hidden_dim, what="hidden_dim")
    V.check_number("gamma", gamma, low=0)
    V.check_int("steps", steps, low=1)
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)
    digest = arrays_fingerprint([x, *(pairs or ())])
    settings = {"k": k, "hidden_dim": hidden_dim, "gamma": gamma, "steps": steps, "seed": seed}
    path = cache_dir() / "models" / f"csr-{cache_key([digest, settings], length=16)}"

    def load():
        info = load_json(path / "course_training.json")
        try:
            head = SparseEncoder(str(path), device="cpu", local_files_only=True)
        except Exception as err:
            raise CacheEntryError(f"the saved CSR head does not load: {type(err).__name__}: {err}") from err
        return head, info

    def compute():
        head, loss = csr_setup(x.shape[1], hidden_dim, k, gamma=gamma, seed=seed)
        return head, train_csr(loss, x, pairs=pairs, steps=steps, seed=seed, show_progress=show_progress)

    def save(value, staged):
        head, info = value
        head.save(str(staged[0]), create_model_card=False)
        save_json(staged[0] / "course_training.json", info)

    (head, info), cached = load_or_compute([path], load=load, compute=compute, save=save, refresh=retrain,
                                           what="CSR head")
    head[0].eval()
    return head[0], {**info, "cached": cached}


def frozen_recipe(cfg) -> dict:
    """Training steps of the frozen-backbone methods for a :class:`course_lib.config.Config`: the adaptors'
    (:func:`course_lib.adaptor.adaptor_model`) and the CSR heads' (:func:`csr_head`).

    >>> from types import SimpleNamespace as NS
    >>> for small, full in ((True, False), (False, False), (False, True)):
    ...     print(frozen_recipe(NS(small=small, full=full, seed=0)))
    {'adaptor_steps': 100, 'csr_steps': 300}
    {'adaptor_steps': 300, 'csr_steps': 1000}
    {'adaptor_steps': 600, 'csr_steps': 3000}
    """
    V.check_config("cfg", cfg)
    if cfg.small:
        return {"adaptor_steps": 100, "csr_steps": 300}
    if cfg.full:
        return {"adaptor_steps": 600, "csr_steps": 3000}
    return {"adaptor_steps": 300, "csr_steps": 1000}


def active_dims(codes) -> np.ndarray:
    """The number of non-zero dimensions of each row of a sparse or dense code matrix, int64 (N,)."""
    import scipy.sparse as sp

    if sp.issparse(codes):
        if codes.ndim != 2:
            raise ValueError(f"codes must be 2-D (rows, code dims), got shape {codes.shape}")
        z = codes.tocsr(copy=True)
        z.eliminate_zeros()
        return np.diff(z.indptr).astype(np.int64)
    z = V.check_matrix("codes", codes)
    return (z != 0).sum(axis=1).astype(np.int64)

