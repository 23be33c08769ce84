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

from course_lib import validation as V

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
        Divide each truncated row by its L2 norm (rows of norm 0 are left at 0), computed in float64, so
        rows of any finite magnitude come out of unit length. Without it, values float32 cannot hold (beyond
        its range, or non-zero but rounding to 0) are refused.

    Returns
    -------
    np.ndarray
        float32 (N, dim).

    >>> truncate(np.array([[0.6, 0.0, 0.8]], np.float32), 2).tolist()
    [[1.0, 0.0]]
    """
    x = V.check_matrix("emb", emb)
    dim = V.check_int("dim", dim, low=1, high=x.shape[1], what="the embedding size")
    V.check_bool("normalize", normalize)
    prefix = x[:, :dim]  # (N, dim), a view; the result is a copy
    if not normalize:
        V.check_fits_float32("emb", prefix, tiny=True)  # float32 out: refuse what it cannot hold
        return np.array(prefix, dtype=np.float32)
    p64 = prefix.astype(np.float64)  # (N, dim): re-normalized in float64, so no square overflows or underflows
    scale = np.abs(p64).max(axis=1, keepdims=True)  # (N, 1)
    np.divide(p64, scale, out=p64, where=scale > 0)
    norms = np.linalg.norm(p64, axis=1, keepdims=True)  # (N, 1), 0 only for an all-zero row
    np.divide(p64, norms, out=p64, where=norms > 0)
    return p64.astype(np.float32)


def _check_dims(dims, d: int) -> tuple[int, ...]:
    dims = tuple(V.check_sequence("dims", dims, "ints"))
    if not dims:
        raise ValueError("dims must hold at least one dim")
    for x in dims:
        V.check_int("dims entry", x, low=1, high=d, what="the embedding size")
    return tuple(int(x) for x in dims)


def ndcg_by_dim(query_emb: np.ndarray, corpus_emb: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str],
                qrels: Mapping[str, Mapping[str, int]], dims: Sequence[int] = MRL_DIMS,
                k: int | None = None) -> dict[int, float]:
    """nDCG@10 of exact cosine search with both sides truncated (and re-normalized) to each dim.

    ``k`` documents are retrieved per query, in [1, N]; None is 100, or N when the corpus is smaller.

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

    q = V.check_matrix("query_emb", query_emb)
    c = V.check_matrix("corpus_emb", corpus_emb)
    V.check_same_dims("query_emb", q, "corpus_emb", c)
    dims = _check_dims(dims, c.shape[1])
    k = V.default_depth(k, c.shape[0])
    query_ids, doc_ids = V.check_ids("query_ids", query_ids), V.check_ids("doc_ids", doc_ids)
    V.check_qrels("qrels", qrels, nonempty=True)
    out = {}
    for d in dims:
        s, i = topk(truncate(q, d), truncate(c, d), k)  # (Q, k) each
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

    c = V.check_matrix("corpus_emb", corpus_emb)
    shortlist_dim = V.check_int("shortlist_dim", shortlist_dim, low=1, high=c.shape[1], what="the embedding size")
    V.check_bool("binary", binary)
    if binary:  # signs need no norm: the prefix's own bits, in its own precision
        return quantize_binary(np.ascontiguousarray(c[:, :shortlist_dim]))
    return truncate(c, shortlist_dim)  # (N, shortlist_dim)


def funnel_search(query_emb: np.ndarray, corpus_emb: np.ndarray, k: int, *, shortlist_dim: int = 64,
                  shortlist: int = 100, binary: bool = False,
                  index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive retrieval: shortlist with the first ``shortlist_dim`` dims, rerank the shortlist with all dims.

    Stage 1 searches the whole corpus with truncated, re-normalized vectors (or, with ``binary``, the sign
    bits of the first ``shortlist_dim`` dims by Hamming distance: ``shortlist_dim / 8`` bytes a document);
    stage 2 scores only the ``shortlist`` candidates with the full vectors (the float query against the
    stored documents). ``index`` is the stage-1 store from :func:`funnel_index`; pass it to build it once
    rather than on every call. ``shortlist`` is a cut-off (at most the whole corpus) and ``k`` is in
    [1, min(shortlist, N)]. Returns float32 scores (float64 for float64 inputs) and int64 indices, (Q, k),
    best first.

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

    q = V.check_matrix("query_emb", query_emb)
    c = V.check_matrix("corpus_emb", corpus_emb)
    V.check_same_dims("query_emb", q, "corpus_emb", c)
    V.check_bool("binary", binary)
    shortlist_dim = V.check_int("shortlist_dim", shortlist_dim, low=1, high=c.shape[1], what="the embedding size")
    shortlist = min(V.check_cutoff("shortlist", shortlist), c.shape[0])  # a cut-off: at most the whole corpus
    n = c.shape[0]
    if not V.is_int(k) or not 1 <= k <= shortlist:
        raise ValueError(f"k must be an int in [1, min(shortlist, N)] = [1, {shortlist}], got {k!r}")
    k = int(k)
    if index is None:
        index = funnel_index(corpus_emb, shortlist_dim, binary=binary)
    want = (n, -(-shortlist_dim // 8)) if binary else (n, shortlist_dim)
    if not isinstance(index, np.ndarray) or index.shape != want or index.dtype != (np.uint8 if binary else np.float32):
        raise ValueError(f"index must be funnel_index(corpus_emb, {shortlist_dim}, binary={binary}): "
                         f"{'uint8' if binary else 'float32'} {want}, got {V.describe(index)}")
    if binary:  # stage 1: cand, int64 (Q, shortlist) corpus rows
        _, cand = hamming_topk(quantize_binary(np.ascontiguousarray(q[:, :shortlist_dim])), index, shortlist)
    else:
        _, cand = topk(truncate(q, shortlist_dim), index, shortlist)  # (Q, shortlist)
    return rescore(q, cand, c, k)  # (Q, k) each


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
    q = V.check_matrix("query_emb", query_emb)
    d = V.check_matrix("doc_emb", doc_emb)
    if q.shape != d.shape:
        raise ValueError(f"query_emb {q.shape} and doc_emb {d.shape} must both be (B, D)")
    dims = _check_dims(dims, q.shape[1])
    weights = [1.0] * len(dims) if weights is None else V.check_sequence("weights", weights, "numbers")
    if len(weights) != len(dims):
        raise ValueError(f"weights ({len(weights)}) must have one entry per dim ({len(dims)})")
    weights = [V.check_number("weights entry", w) for w in weights]
    scale = V.check_number("scale", scale, low=0, low_open=True)
    query_emb, doc_emb = q, d
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


def _check_pairs(pairs) -> list[tuple[str, str]]:
    pairs = V.check_sequence("pairs", pairs, "(query, document) str pairs")
    if not pairs:
        raise ValueError("pairs must not be empty")
    for i, p in enumerate(pairs):
        if not isinstance(p, (tuple, list)) or len(p) != 2 or not all(isinstance(t, str) for t in p):
            raise TypeError(f"pairs[{i}] must be a (query, document) pair of str, got {p!r:.60}")
    return [tuple(p) for p in pairs]


def _check_mrl_dims(dims, weights) -> tuple[int, ...]:
    dims = tuple(V.check_sequence("dims", dims, "ints"))
    if not dims or not all(V.is_int(x) and x >= 1 for x in dims) or sorted(dims, reverse=True) != list(dims) \
            or len(set(dims)) != len(dims):
        raise ValueError(f"dims must be decreasing positive ints, got {dims!r}")
    if weights is not None:
        weights = V.check_sequence("weights", weights, "numbers")
        if len(weights) != len(dims):
            raise ValueError(f"weights ({len(weights)}) must have one entry per dim ({len(dims)})")
        for w in weights:
            V.check_number("weights entry", w, low=0)
    return tuple(int(x) for x in dims)


def train_mrl(model, pairs: Sequence[tuple[str, str]], *, dims: Sequence[int] = MRL_DIMS,
              weights: Sequence[float] | None = None, epochs: float = 1.0, batch_size: int = 32,
              learning_rate: float = 2e-5, max_steps: int = -1, seed: int = 0,
              show_progress: bool = True, max_seq_length: int | None = None) -> list[dict]:
    """Fine-tune ``model`` in place with ``MatryoshkaLoss(MultipleNegativesRankingLoss)`` on (anchor, positive) pairs.

    The loss is the weighted sum over ``dims`` of the in-batch contrastive loss computed on the truncated,
    re-normalized embeddings. Runs through sentence-transformers' ``SentenceTransformerTrainer``, so the
    same call uses every GPU under ``torchrun``/``accelerate launch`` (data parallel). Returns the
    trainer's log history (losses per logging step).
    """
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    from course_lib.training import fit

    from course_lib.training import check_fit_args

    pairs = _check_pairs(pairs)
    dims = _check_mrl_dims(dims, weights)
    check_fit_args(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_steps=max_steps, seed=seed,
                   show_progress=show_progress, max_seq_length=max_seq_length)
    dim = model.get_embedding_dimension()
    if dims[0] > dim:
        raise ValueError(f"dims must be decreasing, within [1, {dim}], got {tuple(dims)}")
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=list(dims),
                          matryoshka_weights=None if weights is None else list(weights))
    columns = {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    return fit(model, columns, loss, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
               max_steps=max_steps, seed=seed, show_progress=show_progress, max_seq_length=max_seq_length)


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

    emb1, emb2 = V.check_matrix("emb1", emb1), V.check_matrix("emb2", emb2)
    gold = V.check_sequence("gold", gold, "numbers")
    if emb1.shape != emb2.shape or emb1.shape[0] != len(gold):
        raise ValueError(f"emb1 {emb1.shape}, emb2 {emb2.shape} and gold ({len(gold)}) must have the same rows")
    gold = [V.check_number("gold entry", g) for g in gold]
    if len(gold) < 2 or len(set(gold)) < 2:
        raise ValueError("gold must hold at least two different scores: a rank correlation needs them")
    dims = _check_dims(dims, emb1.shape[1])
    out = {}
    for d in dims:
        cos = np.einsum("ij,ij->i", truncate(emb1, d), truncate(emb2, d))  # (P,) one cosine per pair
        if np.ptp(cos) == 0:
            raise ValueError(f"the cosines at {d} dims are all equal: the rank correlation is undefined")
        out[int(d)] = float(spearmanr(gold, cos).statistic)
    return out


def sts_by_dim(model, sts, dims: Sequence[int] = MRL_DIMS) -> dict[int, float]:
    """Encode an STS-B split with ``model`` (cached on disk) and return its Spearman correlation at each dim."""
    from course_lib.embed import encode_queries

    for name in ("sentence1", "sentence2", "score"):
        if not hasattr(sts, name):
            raise TypeError(f"sts must be a course_lib.data.StsData (with {name}), got {type(sts).__name__}")
    V.check_texts("sts.sentence1", sts.sentence1)
    V.check_texts("sts.sentence2", sts.sentence2)
    _check_mrl_dims(dims, None)
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
    max_seq_length: int | None = None  # word pieces per training text; None: the model's own (256)

    def __post_init__(self):
        from course_lib.training import check_fit_args

        check_fit_args(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                       max_steps=self.max_steps, seed=self.seed, max_seq_length=self.max_seq_length)
        _check_mrl_dims(self.dims, self.weights)
        V.check_int("limit", self.limit, low=1, allow_none=True)


def mrl_recipe(cfg) -> MrlRecipe:
    """The course's Matryoshka run for a :class:`course_lib.config.Config`, one code path for every machine.

    - small mode: 8 steps of batch 16 (1-3 minutes on a 2-core CPU), to check the pipeline, not to learn much;
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
    V.check_config("cfg", cfg)
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
    from course_lib.models import cached_model, check_device, load_model
    from course_lib.training import recipe_key

    if not isinstance(recipe, MrlRecipe):
        raise TypeError(f"recipe must be a MrlRecipe (see mrl_recipe), got {type(recipe).__name__}")
    check_device(device)
    V.check_bool("small", small)
    V.check_bool("retrain", retrain)
    base = load_model(device=device)
    pairs = mrl_pairs(load_beir("scifact", "train", small=small), load_beir("scifact", "test", small=small))
    pairs = pairs[: recipe.limit]

    def train():
        start = time.perf_counter()
        history = train_mrl(base, pairs, dims=recipe.dims, weights=recipe.weights, epochs=recipe.epochs,
                            batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
                            max_steps=recipe.max_steps, seed=recipe.seed, show_progress=show_progress,
                            max_seq_length=recipe.max_seq_length)
        return base, {"recipe": dataclasses.asdict(recipe), "pairs": len(pairs),
                      "seconds": round(time.perf_counter() - start, 1), "device": str(base.device), "losses": history}

    return cached_model("mrl", [model_fingerprint(base), texts_fingerprint(*map(list, zip(*pairs))),
                                recipe_key(recipe)], train, device=device, retrain=retrain)
