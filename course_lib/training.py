"""One training path for every model the course trains: the pairs, the leakage guard, the trainer call.

- **pairs**: (query, relevant document) from a BEIR *train* split's qrels only (:func:`train_examples`);
- **leakage guard**: :func:`check_no_leakage` refuses training data that holds a test query's id or text,
  and :func:`guarded_examples` applies it to the pairs every course training starts from (Matryoshka in
  notebook 05, domain fine-tuning in 06, the ColBERT-style projection in 04);
- **the trainer call**: :func:`fit` runs sentence-transformers' ``SentenceTransformerTrainer`` with one loss,
  the call a practitioner writes, so the same code is data parallel under ``torchrun``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib import validation as V


class LeakageError(ValueError):
    """Training data contains test queries (by id or by text)."""


@dataclass(frozen=True)
class Example:
    """One training pair: a train query and one of its relevant documents."""

    query_id: str
    query: str
    doc_id: str
    document: str


def check_queries(name: str, ds) -> dict[str, str]:
    """``ds.queries``: a dict of str id -> str text (a BEIR split, or any object with such ``queries``)."""
    queries = getattr(ds, "queries", None)
    if not isinstance(queries, dict):
        raise TypeError(f"{name} must be a BeirDataset (with a dict of queries), got {type(ds).__name__}")
    for q, t in queries.items():
        V.check_id(f"{name}.queries id", q)
        if not isinstance(t, str):
            raise TypeError(f"{name}.queries[{q!r}] must be a str, got {type(t).__name__}")
    return queries


def check_fit_args(*, epochs=1.0, batch_size=32, learning_rate=2e-5, max_steps=-1, seed=0, show_progress=True,
                   max_seq_length=None):
    """The trainer's hyper-parameters, checked before anything is loaded or trained."""
    V.check_number("epochs", epochs, low=0, low_open=True)
    V.check_int("batch_size", batch_size, low=1)
    V.check_number("learning_rate", learning_rate, low=0, low_open=True)
    if not V.is_int(max_steps) or not (max_steps == -1 or max_steps >= 1):
        raise ValueError(f"max_steps must be -1 (no limit) or an int >= 1, got {max_steps!r}")
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)
    V.check_int("max_seq_length", max_seq_length, low=8, allow_none=True)


def recipe_key(recipe) -> dict:
    """A training recipe as the dict its cached model's key hashes. ``max_seq_length=None`` (the model's own
    length) is left out, so a model trained before recipes had that field keeps its key and its cache entry."""
    import dataclasses

    if not dataclasses.is_dataclass(recipe) or isinstance(recipe, type):
        raise TypeError(f"recipe must be a training recipe (MrlRecipe, FinetuneRecipe, ...), got {type(recipe).__name__}")
    key = dataclasses.asdict(recipe)
    if key.get("max_seq_length", 0) is None:
        del key["max_seq_length"]
    return key


def train_examples(train_ds, test_ds=None) -> list[Example]:
    """Every (query, relevant document) pair of a BEIR *train* split, in qrels order.

    With ``test_ds``, train queries whose text duplicates a test query (:func:`duplicate_queries`) are left
    out: SciFact has two such claims. Raises ``ValueError`` for any split but train.
    """
    from course_lib.data import document_text

    if getattr(train_ds, "split", None) != "train":
        raise ValueError(f"training pairs must come from the train split, got {getattr(train_ds, 'split', None)!r}")
    check_queries("train_ds", train_ds)
    V.check_qrels("train_ds.qrels", getattr(train_ds, "qrels", None))
    if not isinstance(getattr(train_ds, "corpus", None), dict):
        raise TypeError(f"train_ds must have a dict corpus, got {type(getattr(train_ds, 'corpus', None)).__name__}")
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
    train_q, test_q = check_queries("train_ds", train_ds), check_queries("test_ds", test_ds)
    test_text = {_normalize(t): q for q, t in test_q.items()}
    return {q: test_text[_normalize(t)] for q, t in train_q.items() if _normalize(t) in test_text}


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def check_no_leakage(train_query_ids: Sequence[str], train_texts: Sequence[str], test_ds) -> dict:
    """Refuse training data that contains a test query, by id or by text.

    ``train_query_ids`` (str ids) and ``train_texts`` are lists or tuples: a bare string is refused, not read
    character by character. ``train_texts`` are every text that goes into training (queries, positives, negatives). A test query's text
    is found when a training text equals it, or contains it, after case folding and whitespace collapsing.
    Returns counts for the record; raises :class:`LeakageError` naming the first leak.

    >>> from types import SimpleNamespace
    >>> test = SimpleNamespace(queries={"t1": "Aspirin lowers fever."})
    >>> check_no_leakage(["q1"], ["Vitamin C cures colds."], test)["test_queries"]
    1
    >>> check_no_leakage(["q1"], ["aspirin  lowers fever."], test)
    Traceback (most recent call last):
    ...
    course_lib.training.LeakageError: 1 test query text(s) found in the training data, e.g. test query 't1': 'Aspirin lowers fever.'
    """
    train_query_ids = V.check_ids("train_query_ids", train_query_ids, unique=False)
    train_texts = V.check_texts("train_texts", train_texts, nonempty=False)
    test_ids = set(check_queries("test_ds", test_ds))
    shared_ids = sorted(test_ids & set(train_query_ids))
    if shared_ids:
        raise LeakageError(f"{len(shared_ids)} test query id(s) are in the training data, e.g. {shared_ids[0]!r}")
    haystack = "\x00".join(_normalize(t) for t in train_texts)
    leaked = [(q, t) for q, t in test_ds.queries.items() if _normalize(t) and _normalize(t) in haystack]
    if leaked:
        raise LeakageError(f"{len(leaked)} test query text(s) found in the training data, e.g. test query "
                           f"{leaked[0][0]!r}: {leaked[0][1]!r}")
    return {"test_queries": len(test_ids), "train_queries": len(set(train_query_ids)), "train_texts": len(train_texts)}


def guarded_examples(train_ds, test_ds) -> tuple[list[Example], dict]:
    """The training pairs of ``train_ds`` with the leakage guard applied against ``test_ds``.

    Train queries that duplicate a test query are left out (:func:`duplicate_queries`), then
    :func:`check_no_leakage` checks the query ids and every text that remains (queries and documents) and
    raises :class:`LeakageError` if a test query is still in them. Returns ``(examples, stats)``: the
    guard's counts and the train query ids left out.
    """
    if test_ds is None:
        raise ValueError("test_ds is required: the leakage guard checks the training data against it")
    examples = train_examples(train_ds, test_ds)
    stats = check_no_leakage([e.query_id for e in examples], [e.query for e in examples] + [e.document for e in examples],
                             test_ds)
    return examples, {**stats, "train_queries_duplicating_test": sorted(duplicate_queries(train_ds, test_ds))}


def _check_labels(col) -> None:
    """A ``label`` column: a list of finite numbers, or of equal-length lists of finite numbers."""
    import math

    if not isinstance(col, (list, tuple)) or not col:
        raise TypeError(f"columns['label'] must be a non-empty list of numbers, got {type(col).__name__}")
    rows = [r if isinstance(r, (list, tuple)) else [r] for r in col]
    if len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError("columns['label'] rows must all hold the same number of values")
    for i, row in enumerate(rows):
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"columns['label'][{i}] must hold finite numbers, got {v!r}")


def fit(model, columns: dict[str, list[str]], loss, *, epochs: float = 1.0, batch_size: int = 32,
        learning_rate: float = 2e-5, max_steps: int = -1, seed: int = 0, show_progress: bool = True,
        max_seq_length: int | None = None) -> list[dict]:
    """Train ``model`` in place on a table of texts with one sentence-transformers loss; return the loss log.

    ``columns`` maps column names to equal-length lists (``anchor``, ``positive``, then any ``negative_*``), the
    order the contrastive losses read them in; a ``label`` column (finite floats, or one list of floats per row)
    is the teacher's targets of a distillation loss such as ``MarginMSELoss``. Runs ``SentenceTransformerTrainer`` (so the same call is data
    parallel under ``torchrun``/``accelerate launch``) with batches free of duplicate texts (a duplicate would
    be a false in-batch negative), 10% linear warm-up, no checkpoints and no reporting.

    ``max_seq_length`` cuts the training texts at that many word pieces (None: the model's own setting, which
    comes back unchanged after training either way). Attention costs grow with the square of the length, so
    training at 128 instead of 256 halves a CPU step or more; the model still encodes at its own maximum.
    """
    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    from course_lib import embed

    if not isinstance(columns, dict) or not columns:
        raise TypeError(f"columns must be a non-empty dict of column name -> list of str, got {type(columns).__name__}")
    for name, col in columns.items():
        if not isinstance(name, str):
            raise TypeError(f"columns keys must be str column names, got {name!r}")
        if name == "label":
            _check_labels(col)
        else:
            V.check_texts(f"columns[{name!r}]", col)
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"columns must be non-empty lists of equal length, got lengths {lengths}")
    check_fit_args(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_steps=max_steps, seed=seed,
                   show_progress=show_progress, max_seq_length=max_seq_length)
    if loss is None:
        raise TypeError("loss must be a sentence-transformers loss module, got None")
    with tempfile.TemporaryDirectory() as tmp, embed.max_seq_length(model, max_seq_length):
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=epochs, max_steps=max_steps,
            per_device_train_batch_size=batch_size, learning_rate=learning_rate,
            warmup_steps=0.1,  # a float: the warm-up share of all steps
            batch_sampler=BatchSamplers.NO_DUPLICATES, report_to="none", save_strategy="no",
            logging_steps=1 if 0 < max_steps <= 20 else 5, seed=seed,
            dataloader_pin_memory=torch.cuda.is_available(),  # pinning needs an accelerator; on CPU it only warns
            disable_tqdm=not show_progress)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
        trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row]
