"""Matryoshka Representation Learning: nested dimensions, truncation at query time, funnel search, training.

An MRL model is trained so that every prefix ``e[:m]`` of its embedding, for ``m`` in a set of nested dims
(384, 256, 128, 64, 32, 16), is itself a good embedding. Using one at size ``m``:

.. math::

    \\tilde e = \\frac{e_{1:m}}{\\lVert e_{1:m} \\rVert_2}

Truncation must be followed by re-normalization: the prefix of a unit vector is shorter than 1, and by a
different amount for every text, so dot products of unnormalized prefixes are not cosines.
sentence-transformers' ``truncate_dim`` (with ``normalize_embeddings=True``) does the same; the tests check it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MRL_DIMS = (384, 256, 128, 64, 32, 16)


def truncate(emb: np.ndarray, dim: int, normalize: bool = True) -> np.ndarray:
    """Keep the first ``dim`` dimensions of each row and (by default) re-normalize to unit length.

    Parameters
    ----------
    emb : np.ndarray
        float (N, D).
    dim : int
        1 <= dim <= D.
    normalize : bool
        Divide each truncated row by its L2 norm (rows of norm 0 are left at 0).

    Returns
    -------
    np.ndarray
        float32 (N, dim).

    >>> truncate(np.array([[0.6, 0.0, 0.8]], np.float32), 2).tolist()
    [[1.0, 0.0]]
    """
    if not isinstance(emb, np.ndarray) or emb.ndim != 2 or emb.dtype.kind != "f":
        raise TypeError(f"emb must be a 2-D float numpy array, got "
                        f"{getattr(emb, 'dtype', type(emb).__name__)} {getattr(emb, 'shape', '')}")
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not 1 <= dim <= emb.shape[1]:
        raise ValueError(f"dim must be an int in [1, {emb.shape[1]}] (the embedding size), got {dim!r}")
    out = np.array(emb[:, :dim], dtype=np.float32)  # (N, dim), a copy: never a view into the caller's array
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # (N, 1)
        np.divide(out, norms, out=out, where=norms > 0)
    return out


def ndcg_by_dim(query_emb: np.ndarray, corpus_emb: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str],
                qrels: Mapping[str, Mapping[str, int]], dims: Sequence[int] = MRL_DIMS, k: int = 100) -> dict[int, float]:
    """nDCG@10 of exact cosine search with both sides truncated (and re-normalized) to each dim.

    Examples
    --------
    The toy task of :class:`course_lib.compression.Retrieval`: with all 4 dims each query's document is
    first; cut to 3 dims, q2 = [0, 0, 1] is exactly d3 = [0, 0, 1] and above d2 = [.5, .5, 1] / |.|.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> out = ndcg_by_dim(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                   {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}}, dims=(4, 3))
    >>> {d: round(v, 4) for d, v in out.items()}  # 3 dims: (1 + 1 + 1 / log2(3)) / 3
    {4: 1.0, 3: 0.877}
    """
    from course_lib.metrics import evaluate
    from course_lib.search import run_from_topk, topk

    out = {}
    for d in dims:
        s, i = topk(truncate(query_emb, d), truncate(corpus_emb, d), min(k, corpus_emb.shape[0]))  # (Q, k) each
        out[int(d)] = evaluate(run_from_topk(s, i, query_ids, doc_ids), qrels)["ndcg@10"]
    return out


def funnel_index(corpus_emb: np.ndarray, shortlist_dim: int = 64, *, binary: bool = False) -> np.ndarray:
    """The stage-1 store of :func:`funnel_search`, built once per corpus.

    float32 (N, shortlist_dim) truncated, re-normalized vectors, or with ``binary`` the sign bits of the first
    ``shortlist_dim`` dims packed big-endian: uint8 (N, ceil(shortlist_dim / 8)), e.g. 8 bytes for 64 dims.

    Examples
    --------
    >>> c = np.array([[.5, .5, -.5, -.5], [.5, 0, .5, .5], [-.5, -.5, .5, .5]], np.float32)
    >>> funnel_index(c, 2).shape, funnel_index(c, 2)[1].tolist()  # d1's prefix [.5, 0], re-normalized
    ((3, 2), [1.0, 0.0])
    >>> funnel_index(c, 2, binary=True).tolist()  # sign bits 11, 10, 00 in the high end of one byte
    [[192], [128], [0]]
    """
    from course_lib.quantization import quantize_binary

    prefix = truncate(corpus_emb, shortlist_dim, normalize=not binary)  # (N, shortlist_dim); signs need no norm
    return quantize_binary(prefix) if binary else prefix


def funnel_search(query_emb: np.ndarray, corpus_emb: np.ndarray, k: int, *, shortlist_dim: int = 64,
                  shortlist: int = 100, binary: bool = False,
                  index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive retrieval: shortlist with the first ``shortlist_dim`` dims, rerank the shortlist with all dims.

    Stage 1 searches the whole corpus with truncated, re-normalized vectors (or, with ``binary``, the sign
    bits of the first ``shortlist_dim`` dims by Hamming distance: ``shortlist_dim / 8`` bytes a document);
    stage 2 scores only the ``shortlist`` candidates with the full vectors (the float query against the
    stored documents). ``index`` is the stage-1 store from :func:`funnel_index`; pass it to build it once
    rather than on every call. Returns float32 scores and int64 indices, (Q, k), best first.

    Examples
    --------
    The first 2 dims of q = [.5, .5, .5, .5] point exactly at d0's, whose last 2 cancel them (q . d0 = 0);
    d1 is 45 degrees off in 2 dims but scores .75 with all 4. A shortlist of 1 keeps only d0; one of 2 lets
    stage 2 put d1 first. The sign bits of the prefixes (q 11; d0 11, d1 10, d2 00) shortlist the same way.

    >>> c = np.array([[.5, .5, -.5, -.5], [.5, 0, .5, .5], [-.5, -.5, .5, .5]], np.float32)
    >>> q = np.array([[.5, .5, .5, .5]], np.float32)
    >>> funnel_search(q, c, 1, shortlist_dim=2, shortlist=1)[1].tolist()
    [[0]]
    >>> s, i = funnel_search(q, c, 2, shortlist_dim=2, shortlist=2)
    >>> i.tolist(), s.tolist()
    ([[1, 0]], [[0.75, 0.0]])
    >>> funnel_search(q, c, 1, shortlist_dim=2, shortlist=2, binary=True, index=funnel_index(c, 2, binary=True))
    (array([[0.75]], dtype=float32), array([[1]]))
    """
    from course_lib.quantization import quantize_binary
    from course_lib.binary import hamming_topk, rescore
    from course_lib.search import topk

    n = corpus_emb.shape[0]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= min(shortlist, n):
        raise ValueError(f"k must be an int in [1, min(shortlist, N)] = [1, {min(shortlist, n)}], got {k!r}")
    shortlist = min(int(shortlist), n)
    if index is None:
        index = funnel_index(corpus_emb, shortlist_dim, binary=binary)
    want = (n, -(-shortlist_dim // 8)) if binary else (n, shortlist_dim)
    if index.shape != want or index.dtype != (np.uint8 if binary else np.float32):
        raise ValueError(f"index must be funnel_index(corpus_emb, {shortlist_dim}, binary={binary}): "
                         f"{'uint8' if binary else 'float32'} {want}, got {index.dtype} {index.shape}")
    if binary:  # stage 1: cand, int64 (Q, shortlist) corpus rows
        _, cand = hamming_topk(quantize_binary(np.ascontiguousarray(query_emb[:, :shortlist_dim])), index, shortlist)
    else:
        _, cand = topk(truncate(query_emb, shortlist_dim), index, shortlist)  # (Q, shortlist)
    return rescore(np.asarray(query_emb, np.float32), cand, np.asarray(corpus_emb, np.float32), k)  # (Q, k) each


def matryoshka_loss(query_emb: np.ndarray, doc_emb: np.ndarray, dims: Sequence[int] = MRL_DIMS,
                    weights: Sequence[float] | None = None, scale: float = 20.0) -> float:
    """The Matryoshka in-batch contrastive loss of one batch of (query, positive document) embeddings, in NumPy.

    For each dim :math:`m` both sides are truncated and re-normalized, and row :math:`i`'s positive is
    document :math:`i` among all :math:`B` documents of the batch (the others are in-batch negatives):

    .. math::

        L = \\sum_m w_m \\cdot \\frac{1}{B} \\sum_i -\\log
            \\frac{\\exp(s\\,\\cos(q_i^{(m)}, d_i^{(m)}))}{\\sum_j \\exp(s\\,\\cos(q_i^{(m)}, d_j^{(m)}))}

    with scale :math:`s = 20` and weights :math:`w_m = 1` by default: sentence-transformers'
    ``MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), dims, weights)`` on the same embeddings
    (the tests check it). ``query_emb`` and ``doc_emb`` are float (B, D).

    >>> e = np.eye(3, dtype=np.float32)
    >>> round(matryoshka_loss(e, e, dims=(3,)), 6)  # each query is nearest its own document
    0.0
    """
    if query_emb.shape != doc_emb.shape or query_emb.ndim != 2:
        raise ValueError(f"query_emb {query_emb.shape} and doc_emb {doc_emb.shape} must both be (B, D)")
    weights = [1.0] * len(dims) if weights is None else list(weights)
    if len(weights) != len(dims):
        raise ValueError(f"weights ({len(weights)}) must have one entry per dim ({len(dims)})")
    total = 0.0
    for d, w in zip(dims, weights):
        logits = scale * (truncate(query_emb, d).astype(np.float64) @ truncate(doc_emb, d).astype(np.float64).T)
        logits -= logits.max(axis=1, keepdims=True)  # (B, B) scaled cosines, each row's max shifted to 0
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # (B, B)
        total += w * float(-np.mean(np.diag(log_softmax)))
    return total


def mrl_pairs(train_ds, test_ds) -> list[tuple[str, str]]:
    """(query text, relevant document text) pairs from a BEIR *train* split, through the leakage guard.

    Train queries whose text duplicates a test query are left out (two in SciFact), and
    :func:`course_lib.training.check_no_leakage` checks the rest (:func:`course_lib.training.guarded_examples`).

    Examples
    --------
    Two tiny splits as plain namespaces: train query ``b`` repeats the test query (case and spaces aside), so
    only ``a``'s pair is kept; a document's text is its title and text joined.

    >>> from types import SimpleNamespace as NS
    >>> train = NS(split="train", queries={"a": "Aspirin lowers fever.", "b": "Zinc shortens colds."},
    ...            corpus={"d1": {"title": "Aspirin", "text": "It reduces fever."},
    ...                    "d2": {"title": "", "text": "A zinc trial."}},
    ...            qrels={"a": {"d1": 1}, "b": {"d2": 1}})
    >>> mrl_pairs(train, NS(queries={"t": "zinc  shortens colds."}))
    [('Aspirin lowers fever.', 'Aspirin It reduces fever.')]
    """
    from course_lib.training import guarded_examples

    return [(e.query, e.document) for e in guarded_examples(train_ds, test_ds)[0]]


def train_mrl(model, pairs: Sequence[tuple[str, str]], *, dims: Sequence[int] = MRL_DIMS,
              weights: Sequence[float] | None = None, epochs: float = 1.0, batch_size: int = 32,
              learning_rate: float = 2e-5, max_steps: int = -1, seed: int = 0,
              show_progress: bool = True) -> list[dict]:
    """Fine-tune ``model`` in place with ``MatryoshkaLoss(MultipleNegativesRankingLoss)`` on (anchor, positive) pairs.

    The loss is the weighted sum over ``dims`` of the in-batch contrastive loss computed on the truncated,
    re-normalized embeddings. Runs through sentence-transformers' ``SentenceTransformerTrainer``, so the
    same call uses every GPU under ``torchrun``/``accelerate launch`` (data parallel). Returns the
    trainer's log history (losses per logging step).
    """
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    from course_lib.training import fit

    if not pairs:
        raise ValueError("pairs must not be empty")
    dim = model.get_embedding_dimension()
    if sorted(dims, reverse=True) != list(dims) or dims[0] > dim or dims[-1] < 1:
        raise ValueError(f"dims must be decreasing, within [1, {dim}], got {tuple(dims)}")
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=list(dims),
                          matryoshka_weights=None if weights is None else list(weights))
    columns = {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    return fit(model, columns, loss, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
               max_steps=max_steps, seed=seed, show_progress=show_progress)


def sts_spearman_by_dim(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float],
                        dims: Sequence[int] = MRL_DIMS) -> dict[int, float]:
    """STS Spearman rank correlation at each dim: gold scores against the cosine of truncated pairs.

    ``emb1[i]`` and ``emb2[i]`` embed the two sentences of pair ``i``; both are truncated to ``d`` dims and
    re-normalized, and the cosine of each pair is ranked against ``gold`` (scipy's ``spearmanr``, as in
    sentence-transformers' ``EmbeddingSimilarityEvaluator``).

    Examples
    --------
    Three pairs whose full cosines (.64, .36, -.28) follow the gold order, and whose 2-dim cosines
    (0, .6, 1: the first sentence's prefix is [.6, 0], i.e. [1, 0]) reverse it:

    >>> e1 = np.tile(np.array([[.6, 0, .8, 0]], np.float32), (3, 1))
    >>> e2 = np.array([[0, .6, .8, 0], [.6, .8, 0, 0], [.6, 0, -.8, 0]], np.float32)
    >>> {d: round(r, 4) for d, r in sts_spearman_by_dim(e1, e2, [5.0, 3.0, 0.0], dims=(4, 2)).items()}
    {4: 1.0, 2: -1.0}
    """
    from scipy.stats import spearmanr

    if emb1.shape != emb2.shape or emb1.shape[0] != len(gold):
        raise ValueError(f"emb1 {emb1.shape}, emb2 {emb2.shape} and gold ({len(gold)}) must have the same rows")
    out = {}
    for d in dims:
        cos = np.einsum("ij,ij->i", truncate(emb1, d), truncate(emb2, d))  # (P,) one cosine per pair
        out[int(d)] = float(spearmanr(gold, cos).statistic)
    return out


def sts_by_dim(model, sts, dims: Sequence[int] = MRL_DIMS) -> dict[int, float]:
    """Encode an STS-B split with ``model`` (cached on disk) and return its Spearman correlation at each dim."""
    from course_lib.embed import encode_queries

    return sts_spearman_by_dim(encode_queries(model, list(sts.sentence1)), encode_queries(model, list(sts.sentence2)),
                               sts.score, dims)


@dataclass(frozen=True)
class MrlRecipe:
    """Settings of one Matryoshka training run (see :func:`mrl_recipe` for the course's three)."""

    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    dims: tuple[int, ...] = MRL_DIMS
    weights: tuple[float, ...] | None = None
    max_steps: int = -1
    limit: int | None = None
    seed: int = 0


def mrl_recipe(cfg) -> MrlRecipe:
    """The course's Matryoshka run for a :class:`course_lib.config.Config`, one code path for every machine.

    - small mode: 8 steps of batch 16 (a minute on a laptop CPU), to check the pipeline, not to learn much;
    - standard (CPU): 3 epochs of batch 32 at learning rate 1e-4 over the 917 SciFact train pairs
      (87 steps, about 10 minutes on 2 cores);
    - full (GPU): 10 epochs of batch 128 (more in-batch negatives per step) at 2e-4.

    Examples
    --------
    Any object with ``small``, ``full`` and ``seed`` will do in place of a :class:`course_lib.config.Config`:

    >>> from types import SimpleNamespace as NS
    >>> for small, full in ((True, False), (False, False), (False, True)):
    ...     r = mrl_recipe(NS(small=small, full=full, seed=0))
    ...     print(r.epochs, r.batch_size, r.learning_rate, r.max_steps)
    1.0 16 0.0001 8
    3.0 32 0.0001 -1
    10.0 128 0.0002 -1
    """
    if cfg.small:
        return MrlRecipe(epochs=1.0, batch_size=16, max_steps=8, seed=cfg.seed)
    if cfg.full:
        return MrlRecipe(epochs=10.0, batch_size=128, learning_rate=2e-4, seed=cfg.seed)
    return MrlRecipe(seed=cfg.seed)


def mrl_model(recipe: MrlRecipe, device: str | None = None, small: bool = False, retrain: bool = False,
              show_progress: bool = True):
    """The packaged MiniLM trained with :func:`train_mrl` by ``recipe`` on SciFact train pairs, cached on disk.

    The model is saved under ``<cache>/models/mrl-<key>``, where the key hashes the base weights, the
    training pairs and the recipe; a later call with the same inputs loads it in seconds. Returns
    ``(model, info)``, ``info`` holding the recipe, the pair count, the seconds trained and the loss log.
    """
    import dataclasses
    import time

    from course_lib.data import load_beir
    from course_lib.cache import model_fingerprint, texts_fingerprint
    from course_lib.models import cached_model, load_model

    base = load_model(device=device)
    pairs = mrl_pairs(load_beir("scifact", "train", small=small), load_beir("scifact", "test", small=small))
    pairs = pairs[: recipe.limit]

    def train():
        start = time.perf_counter()
        history = train_mrl(base, pairs, dims=recipe.dims, weights=recipe.weights, epochs=recipe.epochs,
                            batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
                            max_steps=recipe.max_steps, seed=recipe.seed, show_progress=show_progress)
        return base, {"recipe": dataclasses.asdict(recipe), "pairs": len(pairs),
                      "seconds": round(time.perf_counter() - start, 1), "device": str(base.device), "losses": history}

    return cached_model("mrl", [model_fingerprint(base), texts_fingerprint(*map(list, zip(*pairs))),
                                dataclasses.asdict(recipe)], train, device=device, retrain=retrain)
