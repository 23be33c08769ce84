"""Domain fine-tuning: train pairs without leakage, hard-negative mining, contrastive training, a cached recipe.

The workflow (notebook 06):

1. **data**: (query, relevant document) pairs from SciFact's *train* qrels only
   (:func:`course_lib.training.train_examples`);
2. **leakage guard**: :func:`course_lib.training.check_no_leakage` refuses training data that holds a test
   query's id or text;
3. **baseline**: the base model's nDCG@10 on test;
4. **mining**: the base model ranks the corpus for each train query; the hardest non-positive documents become
   negatives, minus those too close to the positive to trust (likely unlabeled positives, "false negatives"):
   :func:`mine_hard_negatives`, equal to sentence-transformers' ``mine_hard_negatives`` on the same inputs;
5. **training**: ``MultipleNegativesRankingLoss`` (or ``CachedMultipleNegativesRankingLoss`` for a large effective
   batch in little memory) through ``SentenceTransformerTrainer`` (:func:`course_lib.training.fit`);
6. **evaluation** before and after, and a compression check of the tuned model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from course_lib import validation as V

NegativeMode = Literal["none", "mined", "filtered"]
LossName = Literal["mnrl", "cached_mnrl"]


def mine_hard_negatives(query_emb: np.ndarray, corpus_emb: np.ndarray, positives: Sequence[Sequence[int]],
                        num_negatives: int = 3, range_min: int = 0, range_max: int | None = None,
                        absolute_margin: float | None = None,
                        relative_margin: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The hardest negatives of each query: the top-scoring documents that are not its positives.

    For query :math:`q` with positives :math:`P_q` and the lowest positive score :math:`p = \\min_{d \\in P_q}
    \\cos(q, d)`, a document :math:`d \\notin P_q` among the ``range_max + max|P|`` nearest is a candidate unless

    - ``absolute_margin`` :math:`m`: :math:`\\cos(q, d) + m > p` (too close to the positive to trust);
    - ``relative_margin`` :math:`r`: :math:`\\cos(q, d) > p - |p|\\, r` (NV-Retriever's "TopK-PercPos": 0.05
      keeps negatives below 95% of the positive score).

    The surviving candidates are ranked by score; the first ``range_min`` are skipped and the next
    ``num_negatives`` kept. This is sentence-transformers' ``mine_hard_negatives`` with ``sampling_strategy="top"``
    on the same embeddings (the tests check it).

    Parameters
    ----------
    query_emb, corpus_emb : np.ndarray
        float32 (Q, D) and (N, D), L2-normalized.
    positives : sequence of sequences of int
        For each query, the corpus rows of its positives (at least one).

    Returns
    -------
    indices : np.ndarray
        int64 (Q, num_negatives) corpus rows, hardest first; -1 where too few candidates survived.
    scores : np.ndarray
        float32 (Q, num_negatives) cosine scores; -inf where the index is -1.

    Examples
    --------
    One query [1, 0] and five unit documents with cosines .8 (d0, the labelled positive), 1 (d1), .6 (d2),
    0 (d3) and -1 (d4). d1 scores above the positive, most likely an unlabelled positive: a margin drops it.

    >>> q = np.array([[1, 0]], np.float32)
    >>> c = np.array([[.8, .6], [1, 0], [.6, .8], [0, 1], [-1, 0]], np.float32)
    >>> idx, s = mine_hard_negatives(q, c, [[0]], num_negatives=2)
    >>> idx.tolist(), [round(float(x), 2) for x in s[0]]
    ([[1, 2]], [1.0, 0.6])
    >>> mine_hard_negatives(q, c, [[0]], 2, relative_margin=0.05)[0].tolist()  # keeps cos <= .8 - .8 * .05 = .76
    [[2, 3]]
    >>> mine_hard_negatives(q, c, [[0]], 4, relative_margin=0.05)[0].tolist()  # only 3 survive: -1 pads
    [[2, 3, 4, -1]]
    """
    from course_lib.search import topk

    query_emb, corpus_emb = V.check_matrix("query_emb", query_emb), V.check_matrix("corpus_emb", corpus_emb)
    V.check_same_dims("query_emb", query_emb, "corpus_emb", corpus_emb)
    q_n, n = query_emb.shape[0], corpus_emb.shape[0]
    positives = V.check_sequence("positives", positives, "lists of corpus rows")
    if len(positives) != q_n or any(isinstance(p, (str, bytes)) or not isinstance(p, (Sequence, np.ndarray))
                                    or len(p) == 0 for p in positives):
        raise ValueError(f"positives must hold a non-empty list of corpus rows for each of the {q_n} queries")
    for r, pos in enumerate(positives):
        for p in pos:
            V.check_int(f"positives[{r}] entry", p, low=0, high=n - 1, what="a corpus row")
    max_pos = max(len(p) for p in positives)
    num_negatives = V.check_int("num_negatives", num_negatives, low=1)
    range_min = V.check_int("range_min", range_min, low=0)
    range_max = V.check_cutoff("range_max", range_max, allow_none=True)
    V.check_number("absolute_margin", absolute_margin, allow_none=True)
    V.check_number("relative_margin", relative_margin, low=0, allow_none=True)
    if range_max is None:
        margins = absolute_margin is not None or relative_margin is not None
        range_max = range_min + num_negatives * (10 if margins else 1) + max_pos
    if range_min < 0 or range_min >= range_max:
        raise ValueError(f"need 0 <= range_min < range_max, got range_min={range_min}, range_max={range_max}")
    if num_negatives > range_max - range_min:
        raise ValueError(f"cannot mine {num_negatives} negatives from ranks {range_min}..{range_max}")
    depth = min(range_max + max_pos, n)
    scores, idx = topk(query_emb, corpus_emb, depth)  # (Q, depth), best first
    scores = scores.astype(np.float32, copy=True)  # (Q, depth), positives and filtered ones set to -inf below
    for r, pos in enumerate(positives):
        scores[r, np.isin(idx[r], pos)] = -np.inf
    pos_score = np.array([min(float(query_emb[r] @ corpus_emb[p]) for p in pos) for r, pos in enumerate(positives)],
                         np.float32)  # (Q,) the lowest positive score of each query
    if absolute_margin is not None:
        scores[scores + np.float32(absolute_margin) > pos_score[:, None]] = -np.inf
    if relative_margin is not None:
        scores[scores > (pos_score - np.abs(pos_score) * np.float32(relative_margin))[:, None]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :range_max]  # survivors first, best first
    keep = order[:, range_min:range_min + num_negatives]  # (Q, <= num_negatives) columns of scores
    out_s = np.take_along_axis(scores, keep, axis=1)  # (Q, <= num_negatives)
    out_i = np.where(np.isfinite(out_s), np.take_along_axis(idx, keep, axis=1), -1)  # (Q, <= num_negatives)
    if out_i.shape[1] < num_negatives:  # a tiny corpus: pad
        pad = num_negatives - out_i.shape[1]
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_i.astype(np.int64), out_s


def make_loss(model, name: LossName = "mnrl", mini_batch_size: int = 16):
    """``MultipleNegativesRankingLoss`` or its gradient-cached twin (same loss, memory of a ``mini_batch_size`` batch)."""
    if not any(type(name) is str and name == c for c in ("mnrl", "cached_mnrl")):
        raise ValueError(f"loss must be 'mnrl' or 'cached_mnrl', got {name!r}")
    V.check_int("mini_batch_size", mini_batch_size, low=1)
    if model is None:
        raise TypeError("model must be a SentenceTransformer, got None")
    from sentence_transformers.sentence_transformer.losses import (CachedMultipleNegativesRankingLoss,
                                                                   MultipleNegativesRankingLoss)

    if name == "mnrl":
        return MultipleNegativesRankingLoss(model)
    return CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size, show_progress_bar=False)



@dataclass(frozen=True)
class FinetuneRecipe:
    """One fine-tuning run. ``negatives``: "none" (in-batch only), "mined" (hardest non-positives), or
    "filtered" (mined, minus those within ``relative_margin`` of the positive's score)."""

    negatives: NegativeMode = "none"
    num_negatives: int = 1
    range_min: int = 0
    range_max: int = 50
    relative_margin: float = 0.05
    loss: LossName = "mnrl"
    mini_batch_size: int = 16
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    max_steps: int = -1
    limit: int | None = None
    seed: int = 0
    max_seq_length: int | None = None  # word pieces per training text; None: the model's own (256)

    def __post_init__(self):
        from course_lib.training import check_fit_args

        V.check_choice("negatives", self.negatives, ("none", "mined", "filtered"))
        V.check_int("num_negatives", self.num_negatives, low=1)
        V.check_int("range_min", self.range_min, low=0)
        V.check_int("range_max", self.range_max, low=self.range_min + self.num_negatives,
                    what="range_min + num_negatives or more")
        V.check_number("relative_margin", self.relative_margin, low=0)
        V.check_choice("loss", self.loss, ("mnrl", "cached_mnrl"))
        V.check_int("mini_batch_size", self.mini_batch_size, low=1)
        check_fit_args(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                       max_steps=self.max_steps, seed=self.seed, max_seq_length=self.max_seq_length)
        V.check_int("limit", self.limit, low=1, allow_none=True)


def finetune_recipe(cfg, negatives: NegativeMode = "none") -> FinetuneRecipe:
    """The course's run for a :class:`course_lib.config.Config`: 6 steps in small mode, 2 epochs of batch 32 on a
    CPU, 4 epochs of batch 128 with the gradient-cached loss on a GPU (``cfg.full``)."""
    V.check_config("cfg", cfg)
    V.check_choice("negatives", negatives, ("none", "mined", "filtered"))
    if cfg.small:
        return FinetuneRecipe(negatives=negatives, epochs=1.0, batch_size=8, max_steps=6, limit=96, seed=cfg.seed)
    if cfg.full:
        return FinetuneRecipe(negatives=negatives, epochs=4.0, batch_size=128, loss="cached_mnrl", seed=cfg.seed)
    return FinetuneRecipe(negatives=negatives, seed=cfg.seed)


def training_columns(model, train_ds, test_ds, recipe: FinetuneRecipe,
                     show_progress: bool = True) -> tuple[dict[str, list[str]], dict]:
    """The training table for ``recipe``: anchors, positives and (for mined recipes) ``negative_1..n``.

    The pairs come through the leakage guard against ``test_ds`` (:func:`course_lib.training.guarded_examples`),
    and the guard runs again on the final table, negatives included. Negatives are mined with ``model`` over
    the whole train corpus (embeddings cached on disk). Rows whose query has too few surviving candidates are
    dropped, as sentence-transformers does. Returns ``(columns, stats)``.
    """
    from course_lib.data import document_text
    from course_lib.embed import encode_corpus, encode_queries
    from course_lib.training import check_no_leakage, guarded_examples

    if not isinstance(recipe, FinetuneRecipe):
        raise TypeError(f"recipe must be a FinetuneRecipe (see finetune_recipe), got {type(recipe).__name__}")
    V.check_bool("show_progress", show_progress)
    examples, guard = guarded_examples(train_ds, test_ds)
    examples = examples[: recipe.limit]
    columns = {"anchor": [e.query for e in examples], "positive": [e.document for e in examples]}
    stats = {"pairs": len(examples), "train_queries_duplicating_test": guard["train_queries_duplicating_test"]}
    if recipe.negatives != "none":
        doc_ids = list(train_ds.corpus)
        row = {d: i for i, d in enumerate(doc_ids)}
        qids = list(dict.fromkeys(e.query_id for e in examples))
        positives = [[row[d] for d, r in train_ds.qrels[q].items() if r > 0 and d in row] for q in qids]
        q_emb = encode_queries(model, {q: train_ds.queries[q] for q in qids})  # (Q, D)
        c_emb = encode_corpus(model, train_ds.corpus, show_progress=show_progress)  # (N, D)
        margin = recipe.relative_margin if recipe.negatives == "filtered" else None
        neg, _ = mine_hard_negatives(q_emb, c_emb, positives, recipe.num_negatives, recipe.range_min,
                                     recipe.range_max, relative_margin=margin)  # (Q, num_negatives) rows
        by_query = dict(zip(qids, neg))
        keep = [i for i, e in enumerate(examples) if (by_query[e.query_id] >= 0).all()]
        texts = [document_text(train_ds.corpus[d]) for d in doc_ids]
        columns = {k: [v[i] for i in keep] for k, v in columns.items()}
        for j in range(recipe.num_negatives):
            columns[f"negative_{j + 1}"] = [texts[by_query[examples[i].query_id][j]] for i in keep]
        stats.update(rows=len(keep), dropped=len(examples) - len(keep))
    stats["leakage_check"] = check_no_leakage([e.query_id for e in examples],
                                              [t for col in columns.values() for t in col], test_ds)
    return columns, stats


def finetuned_model(recipe: FinetuneRecipe, device: str | None = None, small: bool = False, retrain: bool = False,
                    show_progress: bool = True):
    """The packaged MiniLM fine-tuned on SciFact train by ``recipe``, trained once and cached on disk.

    Runs the leakage guard against SciFact test before training. Returns ``(model, info)``; ``info`` holds the
    recipe, the table's statistics, the seconds trained and the loss log.
    """
    import dataclasses
    import time

    from course_lib.cache import model_fingerprint, texts_fingerprint
    from course_lib.data import load_beir
    from course_lib.models import cached_model, check_device, load_model
    from course_lib.training import fit, recipe_key

    if not isinstance(recipe, FinetuneRecipe):
        raise TypeError(f"recipe must be a FinetuneRecipe (see finetune_recipe), got {type(recipe).__name__}")
    check_device(device)
    V.check_bool("small", small)
    V.check_bool("retrain", retrain)
    V.check_bool("show_progress", show_progress)
    base = load_model(device=device)
    train_ds, test_ds = load_beir("scifact", "train", small=small), load_beir("scifact", "test", small=small)
    columns, stats = training_columns(base, train_ds, test_ds, recipe, show_progress)
    flat = [t for col in columns.values() for t in col]

    def train():
        start = time.perf_counter()
        history = fit(base, columns, make_loss(base, recipe.loss, recipe.mini_batch_size), epochs=recipe.epochs,
                      batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, max_steps=recipe.max_steps,
                      seed=recipe.seed, show_progress=show_progress, max_seq_length=recipe.max_seq_length)
        return base, {"recipe": dataclasses.asdict(recipe), **stats, "seconds": round(time.perf_counter() - start, 1),
                      "device": str(base.device), "losses": history}

    key = [model_fingerprint(base), texts_fingerprint(list(map(str, range(len(flat)))), flat), sorted(columns),
           recipe_key(recipe)]
    return cached_model(f"ft-{recipe.negatives}", key, train, device=device, retrain=retrain)


def compression_check(ret, truncate_dim: int = 64, multiplier: int = 4) -> list[dict]:
    """How well one model's embeddings survive the course's compressions: nDCG@10 and retention of fp32.

    ``ret`` is a :class:`course_lib.compression.Retrieval` task (notebook 06 checks the tuned model with it).

    int8 (min-max over the corpus, query and documents both quantized), binary by Hamming distance, binary
    with a ``10 x multiplier`` shortlist rescored against int8 documents, and truncation to ``truncate_dim``
    dims (re-normalized; what an MRL-trained model is good at).

    Examples
    --------
    The toy task of :class:`course_lib.compression.Retrieval` with its documents' negatives added as d5..d9 (the shortlist of 10
    needs 10 documents); they score at most 0 and change no float ranking. Their sign bits are 0000, two bits
    from q2's 0011 like d2's 1111, and they win the tie by id: d2 is 7th, (1 + 1 + 1 / log2(8)) / 3. The
    shortlist of 10 is the whole corpus, so the int8 rescoring is exact. In 3 dims q2 = [0, 0, 1] is d3.

    >>> from course_lib.compression import Retrieval, markdown_table
    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, np.vstack([c, -c]), ["q0", "q1", "q2"], [f"d{i}" for i in range(10)],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> print(markdown_table(compression_check(ret, truncate_dim=3, multiplier=1)))
    | representation | bytes/doc | ndcg@10 | retention |
    |---|---|---|---|
    | fp32 | 16 | 1.0 | 1.0 |
    | int8 | 4 | 1.0 | 1.0 |
    | binary (Hamming) | 1 | 0.7778 | 0.7778 |
    | binary + int8 rescore x1 | 5 | 1.0 | 1.0 |
    | first 3 dims (fp32) | 12 | 0.877 | 0.877 |
    """
    from course_lib import quantization as Q
    from course_lib.binary import binary_search
    from course_lib.compression import hamming_ndcg, scalar_scores
    from course_lib.matryoshka import ndcg_by_dim
    from course_lib.metrics import evaluate
    from course_lib.compression import Retrieval
    from course_lib.search import run_from_topk

    if not isinstance(ret, Retrieval):
        raise TypeError(f"ret must be a course_lib.compression.Retrieval, got {type(ret).__name__}")
    c = ret.corpus_emb
    V.check_int("truncate_dim", truncate_dim, low=1, high=c.shape[1], what="the embedding size")
    V.check_int("multiplier", multiplier, low=1)
    if c.shape[0] < 10:
        raise ValueError(f"ret must hold at least 10 documents (the binary search returns the top 10), got "
                         f"{c.shape[0]}")
    r8 = Q.calibrate(c)
    s, i = binary_search(ret.query_emb, Q.quantize_binary(c), 10, multiplier=multiplier,
                         rescore_corpus=Q.quantize_scalar(c, r8, "int8"), precision="int8", ranges=r8)  # (Q, 10)
    rows = [("fp32", 4 * c.shape[1], ret.fp32_ndcg),
            ("int8", c.shape[1], scalar_scores(ret, r8, 8)["sym"]),
            ("binary (Hamming)", -(-c.shape[1] // 8), hamming_ndcg(ret)),
            (f"binary + int8 rescore x{multiplier}", -(-c.shape[1] // 8) + c.shape[1],
             evaluate(run_from_topk(s, i, ret.query_ids, ret.doc_ids), ret.qrels)["ndcg@10"]),
            (f"first {truncate_dim} dims (fp32)", 4 * truncate_dim,
             ndcg_by_dim(ret.query_emb, c, ret.query_ids, ret.doc_ids, ret.qrels, (truncate_dim,))[truncate_dim])]
    return [{"representation": n, "bytes/doc": b, "ndcg@10": round(v, 4), "retention": round(v / ret.fp32_ndcg, 4)}
            for n, b, v in rows]
