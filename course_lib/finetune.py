"""Domain fine-tuning: train pairs without leakage, hard-negative mining, contrastive training, a cached recipe.

The workflow (notebook 06):

1. **data**: (query, relevant document) pairs from SciFact's *train* qrels only (:func:`train_examples`);
2. **leakage guard**: :func:`check_no_leakage` refuses training data that holds a test query's id or text;
3. **baseline**: the base model's nDCG@10 on test;
4. **mining**: the base model ranks the corpus for each train query; the hardest non-positive documents become
   negatives, minus those too close to the positive to trust (likely unlabeled positives, "false negatives"):
   :func:`mine_hard_negatives`, equal to sentence-transformers' ``mine_hard_negatives`` on the same inputs;
5. **training**: ``MultipleNegativesRankingLoss`` (or ``CachedMultipleNegativesRankingLoss`` for a large effective
   batch in little memory) through ``SentenceTransformerTrainer`` (:func:`fit`);
6. **evaluation** before and after, and a compression check of the tuned model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

NegativeMode = Literal["none", "mined", "filtered"]
LossName = Literal["mnrl", "cached_mnrl"]


class LeakageError(ValueError):
    """Training data contains test queries (by id or by text)."""


@dataclass(frozen=True)
class Example:
    """One training pair: a train query and one of its relevant documents."""

    query_id: str
    query: str
    doc_id: str
    document: str


def train_examples(train_ds, test_ds=None) -> list[Example]:
    """Every (query, relevant document) pair of a BEIR *train* split, in qrels order.

    With ``test_ds``, train queries whose text duplicates a test query (:func:`duplicate_queries`) are left
    out: SciFact has two such claims. Raises ``ValueError`` for any split but train.
    """
    from course_lib.data import document_text

    if getattr(train_ds, "split", None) != "train":
        raise ValueError(f"training pairs must come from the train split, got {getattr(train_ds, 'split', None)!r}")
    drop = duplicate_queries(train_ds, test_ds) if test_ds is not None else {}
    return [Example(q, train_ds.queries[q], d, document_text(train_ds.corpus[d]))
            for q, rel in train_ds.qrels.items() if q not in drop
            for d, r in rel.items() if r > 0 and d in train_ds.corpus]


def duplicate_queries(train_ds, test_ds) -> dict[str, str]:
    """Train query id -> test query id, for train queries whose text equals a test query's (case and spaces aside).

    >>> from types import SimpleNamespace
    >>> duplicate_queries(SimpleNamespace(queries={"a": "Obesity  decreases life quality.", "b": "Other."}),
    ...                   SimpleNamespace(queries={"t": "obesity decreases life quality."}))
    {'a': 't'}
    """
    test_text = {_normalize(t): q for q, t in test_ds.queries.items()}
    return {q: test_text[_normalize(t)] for q, t in train_ds.queries.items() if _normalize(t) in test_text}


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def check_no_leakage(train_query_ids: Sequence[str], train_texts: Sequence[str], test_ds) -> dict:
    """Refuse training data that contains a test query, by id or by text.

    ``train_texts`` are every text that goes into training (queries, positives, negatives). A test query's text
    is found when a training text equals it, or contains it, after case folding and whitespace collapsing.
    Returns counts for the record; raises :class:`LeakageError` naming the first leak.

    >>> from types import SimpleNamespace
    >>> test = SimpleNamespace(queries={"t1": "Aspirin lowers fever."})
    >>> check_no_leakage(["q1"], ["Vitamin C cures colds."], test)["test_queries"]
    1
    >>> check_no_leakage(["q1"], ["aspirin  lowers fever."], test)
    Traceback (most recent call last):
    ...
    course_lib.finetune.LeakageError: 1 test query text(s) found in the training data, e.g. test query 't1': 'Aspirin lowers fever.'
    """
    test_ids = set(test_ds.queries)
    shared_ids = sorted(test_ids & set(map(str, train_query_ids)))
    if shared_ids:
        raise LeakageError(f"{len(shared_ids)} test query id(s) are in the training data, e.g. {shared_ids[0]!r}")
    haystack = "\x00".join(_normalize(t) for t in train_texts)
    leaked = [(q, t) for q, t in test_ds.queries.items() if _normalize(t) and _normalize(t) in haystack]
    if leaked:
        raise LeakageError(f"{len(leaked)} test query text(s) found in the training data, e.g. test query "
                           f"{leaked[0][0]!r}: {leaked[0][1]!r}")
    return {"test_queries": len(test_ids), "train_queries": len(set(train_query_ids)), "train_texts": len(train_texts)}


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
    """
    from course_lib.search import topk

    q_n, n = query_emb.shape[0], corpus_emb.shape[0]
    if len(positives) != q_n or any(len(p) == 0 for p in positives):
        raise ValueError(f"positives must hold a non-empty list of corpus rows for each of the {q_n} queries")
    max_pos = max(len(p) for p in positives)
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
    if range_max is None:
        margins = absolute_margin is not None or relative_margin is not None
        range_max = range_min + num_negatives * (10 if margins else 1) + max_pos
    if range_min < 0 or range_min >= range_max:
        raise ValueError(f"need 0 <= range_min < range_max, got range_min={range_min}, range_max={range_max}")
    if num_negatives > range_max - range_min:
        raise ValueError(f"cannot mine {num_negatives} negatives from ranks {range_min}..{range_max}")
    depth = min(range_max + max_pos, n)
    scores, idx = topk(query_emb, corpus_emb, depth)  # (Q, depth), best first
    scores = scores.astype(np.float32, copy=True)
    for r, pos in enumerate(positives):
        scores[r, np.isin(idx[r], pos)] = -np.inf
    pos_score = np.array([min(float(query_emb[r] @ corpus_emb[p]) for p in pos) for r, pos in enumerate(positives)],
                         np.float32)  # (Q,) the lowest positive score of each query
    if absolute_margin is not None:
        scores[scores + np.float32(absolute_margin) > pos_score[:, None]] = -np.inf
    if relative_margin is not None:
        scores[scores > (pos_score - np.abs(pos_score) * np.float32(relative_margin))[:, None]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :range_max]  # survivors first, best first
    keep = order[:, range_min:range_min + num_negatives]
    out_s = np.take_along_axis(scores, keep, axis=1)
    out_i = np.where(np.isfinite(out_s), np.take_along_axis(idx, keep, axis=1), -1)
    if out_i.shape[1] < num_negatives:  # a tiny corpus: pad
        pad = num_negatives - out_i.shape[1]
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
        out_s = np.pad(out_s, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_i.astype(np.int64), out_s


def fit(model, columns: dict[str, list[str]], loss, epochs: float = 1.0, batch_size: int = 32,
        learning_rate: float = 2e-5, max_steps: int = -1, seed: int = 0, show_progress: bool = True) -> list[dict]:
    """Train ``model`` in place on a table of texts with one sentence-transformers loss; return the loss log.

    ``columns`` maps column names to equal-length lists (``anchor``, ``positive``, then any ``negative_*``), the
    order the contrastive losses read them in. Runs ``SentenceTransformerTrainer`` (so the same call is data
    parallel under ``torchrun``/``accelerate launch``) with batches free of duplicate texts (a duplicate would
    be a false in-batch negative), 10% linear warm-up, no checkpoints and no reporting.
    """
    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    lengths = {k: len(v) for k, v in columns.items()}
    if not lengths or len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise ValueError(f"columns must be non-empty lists of equal length, got lengths {lengths}")
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=epochs, max_steps=max_steps,
            per_device_train_batch_size=batch_size, learning_rate=learning_rate,
            warmup_steps=0.1,  # a float: the warm-up share of all steps
            batch_sampler=BatchSamplers.NO_DUPLICATES, report_to="none", save_strategy="no",
            logging_steps=max(1, min(5, max_steps)) if max_steps > 0 else 5, seed=seed,
            dataloader_pin_memory=torch.cuda.is_available(),  # pinning needs an accelerator; on CPU it only warns
            disable_tqdm=not show_progress)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
        trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row]


def make_loss(model, name: LossName = "mnrl", mini_batch_size: int = 16):
    """``MultipleNegativesRankingLoss`` or its gradient-cached twin (same loss, memory of a ``mini_batch_size`` batch)."""
    from sentence_transformers.sentence_transformer.losses import (CachedMultipleNegativesRankingLoss,
                                                                   MultipleNegativesRankingLoss)

    if name == "mnrl":
        return MultipleNegativesRankingLoss(model)
    if name == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size, show_progress_bar=False)
    raise ValueError(f"loss must be 'mnrl' or 'cached_mnrl', got {name!r}")


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


def finetune_recipe(cfg, negatives: NegativeMode = "none") -> FinetuneRecipe:
    """The course's run for a :class:`course_lib.config.Config`: 6 steps in small mode, 2 epochs of batch 32 on a
    CPU, 4 epochs of batch 128 with the gradient-cached loss on a GPU (``cfg.full``)."""
    if cfg.small:
        return FinetuneRecipe(negatives=negatives, epochs=1.0, batch_size=8, max_steps=6, limit=96, seed=cfg.seed)
    if cfg.full:
        return FinetuneRecipe(negatives=negatives, epochs=4.0, batch_size=128, loss="cached_mnrl", seed=cfg.seed)
    return FinetuneRecipe(negatives=negatives, seed=cfg.seed)


def training_columns(model, train_ds, recipe: FinetuneRecipe, test_ds=None,
                     show_progress: bool = True) -> tuple[dict[str, list[str]], dict]:
    """The training table for ``recipe``: anchors, positives and (for mined recipes) ``negative_1..n``.

    Negatives are mined with ``model`` over the whole train corpus (embeddings cached on disk). Rows whose
    query has too few surviving candidates are dropped, as sentence-transformers does. With ``test_ds``, train
    queries that duplicate a test query are left out and the leakage guard runs on the final table. Returns
    ``(columns, stats)``.
    """
    from course_lib.embed import encode_corpus, encode_queries

    examples = train_examples(train_ds, test_ds)[: recipe.limit]
    columns = {"anchor": [e.query for e in examples], "positive": [e.document for e in examples]}
    stats = {"pairs": len(examples)}
    if test_ds is not None:
        stats["train_queries_duplicating_test"] = sorted(duplicate_queries(train_ds, test_ds))
    if recipe.negatives != "none":
        doc_ids = list(train_ds.corpus)
        row = {d: i for i, d in enumerate(doc_ids)}
        qids = list(dict.fromkeys(e.query_id for e in examples))
        positives = [[row[d] for d, r in train_ds.qrels[q].items() if r > 0 and d in row] for q in qids]
        q_emb = encode_queries(model, {q: train_ds.queries[q] for q in qids})
        c_emb = encode_corpus(model, train_ds.corpus, show_progress=show_progress)
        margin = recipe.relative_margin if recipe.negatives == "filtered" else None
        neg, _ = mine_hard_negatives(q_emb, c_emb, positives, recipe.num_negatives, recipe.range_min,
                                     recipe.range_max, relative_margin=margin)
        by_query = dict(zip(qids, neg))
        keep = [i for i, e in enumerate(examples) if (by_query[e.query_id] >= 0).all()]
        from course_lib.data import document_text

        texts = [document_text(train_ds.corpus[d]) for d in doc_ids]
        columns = {k: [v[i] for i in keep] for k, v in columns.items()}
        for j in range(recipe.num_negatives):
            columns[f"negative_{j + 1}"] = [texts[by_query[examples[i].query_id][j]] for i in keep]
        stats.update(rows=len(keep), dropped=len(examples) - len(keep))
    if test_ds is not None:
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

    from course_lib.data import load_beir
    from course_lib.embed import model_fingerprint, texts_fingerprint
    from course_lib.models import cached_model, load_model

    base = load_model(device=device)
    train_ds, test_ds = load_beir("scifact", "train", small=small), load_beir("scifact", "test", small=small)
    columns, stats = training_columns(base, train_ds, recipe, test_ds, show_progress)
    flat = [t for col in columns.values() for t in col]

    def train():
        start = time.perf_counter()
        history = fit(base, columns, make_loss(base, recipe.loss, recipe.mini_batch_size), recipe.epochs,
                      recipe.batch_size, recipe.learning_rate, recipe.max_steps, recipe.seed, show_progress)
        return base, {"recipe": dataclasses.asdict(recipe), **stats, "seconds": round(time.perf_counter() - start, 1),
                      "device": str(base.device), "losses": history}

    return cached_model(f"ft-{recipe.negatives}", [model_fingerprint(base), texts_fingerprint(list(map(str, range(len(flat)))), flat),
                                                   sorted(columns), dataclasses.asdict(recipe)],
                        train, device=device, retrain=retrain)
