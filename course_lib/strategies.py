"""Fine-tuning strategies side by side: what to train, on what, and what it costs (notebook 06, section 8).

Ways to adapt MiniLM to SciFact, on the same data and budget, the supervised ones through the same leakage guard:

- **full fine-tuning** (:func:`course_lib.finetune.finetuned_model`): every weight moves; the reference;
- **LoRA** (:func:`lora_model`): the backbone is frozen and each attention and feed-forward projection
  :math:`W` gains a low-rank update, :math:`W + \\frac{\\gamma}{r} B A` (Hu et al., 2021; :math:`\\gamma` is peft's
  ``lora_alpha``), trained with the same loss and mined negatives as full fine-tuning. Only :math:`A` and
  :math:`B` are trained and shipped; they can be merged into :math:`W` for serving (no query-time cost) or kept
  apart, one per domain, on one backbone;
- **a linear adapter on frozen embeddings** (:func:`train_linear_adapter`): a (D, D) matrix :math:`W`, started at
  the identity, applied to the query embeddings (``side="query"``: the document index is untouched) or to both
  sides (``"both"``: the index is re-computed, not re-encoded). It trains on cached embeddings in seconds;
- **distillation from a stronger ranker** (:func:`distill_model`): the course's hybrid of BM25 and the base
  model (notebook 01, nDCG@10 0.7124 against the dense 0.6451) teaches the dense model through
  ``MarginMSELoss`` (Hofstaetter et al., 2020): for a (query, positive, negative) triple the student's margin
  :math:`s(q, p) - s(q, n)` is pulled toward the teacher's :func:`teacher_margins`. The teacher needs no labels
  for its scores, only for choosing which documents to compare;
- **distillation with no labels at all** (``DistillRecipe(queries="titles")``): the same teacher and loss, with
  corpus titles as the queries and each title's document as its positive;
- **corpus-only adaptation, no labels**: the Matryoshka-Adaptor of notebook 07
  (:func:`course_lib.adaptor.adaptor_model`), trained on the corpus embeddings alone.

:func:`compare` evaluates them all the same way (``benchmarks/finetune_strategies.py`` prints the table).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from course_lib import validation as V
from course_lib.finetune import FinetuneRecipe

LORA_TARGETS = ("query", "key", "value", "output.dense", "intermediate.dense")  # every projection but the pooler's
ADAPTER_SIDES = ("query", "both")


# ---------------------------------------------------------------------------------------------------------------
# The teacher: hybrid scores and MarginMSE margins
# ---------------------------------------------------------------------------------------------------------------


def hybrid_teacher(dense: np.ndarray, sparse: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The hybrid teacher's scores over each query's candidates: ``alpha * minmax(dense) + (1 - alpha) * minmax(sparse)``.

    ``dense`` and ``sparse`` are float (Q, K): query ``i``'s scores for the same K candidate documents by each
    retriever. Each row is min-max scaled to [0, 1] on its own (a row whose K scores are all equal becomes 1, as
    :func:`course_lib.hybrid.minmax` does), so a cosine and a BM25 score, on different scales, can be added.
    Returns float32 (Q, K).

    >>> hybrid_teacher(np.array([[0.8, 0.6, 0.4]]), np.array([[10.0, 30.0, 20.0]])).round(3).tolist()
    [[0.5, 0.75, 0.25]]
    """
    dense = V.check_matrix("dense", dense)
    sparse = V.check_matrix("sparse", sparse)
    if dense.shape != sparse.shape:
        raise ValueError(f"dense {dense.shape} and sparse {sparse.shape} must score the same (Q, K) candidates")
    alpha = V.check_number("alpha", alpha, low=0, high=1)

    def minmax(x):
        x = x.astype(np.float64)
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        span = hi - lo
        return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 1.0)

    return (alpha * minmax(dense) + (1 - alpha) * minmax(sparse)).astype(np.float32)


def teacher_margins(dense: np.ndarray, sparse: np.ndarray, positive: np.ndarray, negatives: np.ndarray,
                    alpha: float = 0.5) -> np.ndarray:
    """MarginMSE targets: the hybrid teacher's score of each query's positive minus its score of each negative.

    ``dense``, ``sparse``: float (Q, K) candidate scores (:func:`hybrid_teacher`); ``positive``: int (Q,) the
    positive's column; ``negatives``: int (Q, n) the negatives' columns. Returns float32 (Q, n), the ``label``
    column of ``MarginMSELoss`` with n negatives (one value per row when n = 1). A negative margin says the teacher
    ranks the "negative" above the labelled positive: likely an unlabelled positive, and the student is taught so.

    >>> d, s = np.array([[0.8, 0.6, 0.4]]), np.array([[10.0, 30.0, 20.0]])
    >>> teacher_margins(d, s, np.array([0]), np.array([[1, 2]])).round(3).tolist()
    [[-0.25, 0.25]]
    """
    h = hybrid_teacher(dense, sparse, alpha)  # (Q, K)
    q_n, k = h.shape
    positive = V.check_indices("positive", positive, k, ndim=1, what="candidate columns")
    negatives = V.check_indices("negatives", negatives, k, ndim=2, what="candidate columns")
    if positive.shape[0] != q_n or negatives.shape[0] != q_n:
        raise ValueError(f"positive {positive.shape} and negatives {negatives.shape} need one row per query ({q_n})")
    rows = np.arange(q_n)
    return (h[rows, positive][:, None] - h[rows[:, None], negatives]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraRecipe(FinetuneRecipe):
    """Full fine-tuning's recipe (mined negatives, MNRL) with a frozen backbone and LoRA adapters of rank ``rank``
    on ``LORA_TARGETS``. The adapters start at zero (B = 0), so training starts from the base model; they take a
    larger learning rate than full fine-tuning, as is usual for LoRA."""

    negatives: str = "mined"
    learning_rate: float = 5e-4
    rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        V.check_int("rank", self.rank, low=1)
        V.check_int("lora_alpha", self.lora_alpha, low=1)
        V.check_number("lora_dropout", self.lora_dropout, low=0, high=1, high_open=True)


@dataclass(frozen=True)
class DistillRecipe(FinetuneRecipe):
    """MarginMSE distillation from the hybrid teacher: each train pair's positive against a hard non-positive of
    the teacher's candidates (dense top ``depth`` and BM25 top ``depth``, together), labelled with
    :func:`teacher_margins` at weight ``alpha``. The whole backbone trains, as in full fine-tuning.

    ``queries="titles"`` needs no labels at all: the titles of ``title_docs`` corpus documents (a sample drawn
    with ``seed``) are the queries and each title's own document its positive, in the spirit of GPL (Wang et al.,
    2022, which generates the queries with a T5 model). It adapts to every document of the corpus, including
    those no train claim cites.

    The negative is the teacher's 4th-best non-positive (``range_min=3``): on SciFact train the teacher ranks its
    best non-positive above the labelled positive for 44% of the pairs (most are unlabelled positives), its 4th
    for 21%."""

    negatives: str = "mined"
    range_min: int = 3
    alpha: float = 0.5
    depth: int = 100
    queries: str = "train"  # "train": the labelled train claims; "titles": corpus titles as queries, no labels
    title_docs: int = 1000  # with queries="titles": how many corpus documents (a seeded sample) give their title

    def __post_init__(self):
        super().__post_init__()
        V.check_number("alpha", self.alpha, low=0, high=1)
        V.check_int("depth", self.depth, low=2)
        V.check_choice("queries", self.queries, ("train", "titles"))
        V.check_int("title_docs", self.title_docs, low=1)


def _budget(cfg) -> dict:
    """The course's training budget for a config, as :func:`course_lib.finetune.finetune_recipe` sets it."""
    V.check_config("cfg", cfg)
    if cfg.small:
        return {"epochs": 1.0, "batch_size": 8, "max_steps": 6, "limit": 96, "seed": cfg.seed}
    if cfg.full:
        return {"epochs": 4.0, "batch_size": 128, "seed": cfg.seed}
    return {"seed": cfg.seed}


def lora_recipe(cfg, seed: int | None = None) -> LoraRecipe:
    """LoRA on the budget of notebook 06's fine-tunings (6 steps in small mode; 2 epochs of batch 32 on a CPU)."""
    return LoraRecipe(**{**_budget(cfg), **({} if seed is None else {"seed": seed})})


def distill_recipe(cfg, seed: int | None = None) -> DistillRecipe:
    """Distillation on the budget of notebook 06's fine-tunings."""
    return DistillRecipe(**{**_budget(cfg), **({} if seed is None else {"seed": seed})})


# ---------------------------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------------------------


def add_lora(model, rank: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.1,
             targets: Sequence[str] = LORA_TARGETS, seed: int = 0) -> int:
    """Freeze ``model``'s transformer and add trainable LoRA adapters to its ``targets``; return their parameter count.

    The adapters go in with peft's ``inject_adapter_in_model``. (sentence-transformers' own ``add_adapter``
    calls transformers', which with transformers 5.24 asks for peft >= 0.22, a release the package index does not
    have yet; the injection underneath is the same.) peft draws each A matrix at random from torch's global
    generator; here it draws from ``seed`` (and the caller's generator state is left as it was), so the same
    seed gives the same adapters whatever ran before in the process.
    """
    from peft import LoraConfig, inject_adapter_in_model

    from course_lib.config import seeded_torch

    V.check_int("rank", rank, low=1)
    V.check_int("lora_alpha", lora_alpha, low=1)
    V.check_number("lora_dropout", lora_dropout, low=0, high=1, high_open=True)
    V.check_int("seed", seed, low=0)
    inner = _transformer(model)
    with seeded_torch(seed):
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                           target_modules=list(targets)), inner)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_model(model) -> None:
    if model is None or not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must be a SentenceTransformer, got {type(model).__name__}")


def _transformer(model):
    inner = getattr(model, "transformers_model", None)
    if inner is None:
        raise TypeError(f"model must be a SentenceTransformer with a transformers backbone, got {type(model).__name__}")
    return inner


def lora_state(model) -> dict:
    """The LoRA weights of ``model`` alone (what is shipped): name -> tensor."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(_transformer(model))


def merge_lora(model) -> None:
    """Fold every LoRA update into its base weight, ``W <- W + (alpha / r) B A``, and put the plain layer back:
    the model is then an ordinary SentenceTransformer (it saves, loads and encodes at the base model's cost)."""
    from peft.tuners.lora import LoraLayer

    inner = _transformer(model)
    for name, module in list(inner.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent = inner.get_submodule(name.rsplit(".", 1)[0]) if "." in name else inner
            setattr(parent, name.rsplit(".", 1)[-1], module.get_base_layer())
    for p in model.parameters():
        p.requires_grad_(True)


def _bytes_of(tensors: dict) -> int:
    """The size of ``tensors`` saved as one safetensors file."""
    import tempfile
    from pathlib import Path

    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adapter.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
        return path.stat().st_size


def _start(recipe, cls, maker: str, device, small, retrain, show_progress):
    """A trainer's common start: its arguments checked, then the base model and SciFact's train and test splits."""
    from course_lib.data import load_beir
    from course_lib.models import check_device, load_model

    if not isinstance(recipe, cls):
        raise TypeError(f"recipe must be a {cls.__name__} (see {maker}), got {type(recipe).__name__}")
    check_device(device)
    for name, value in (("small", small), ("retrain", retrain), ("show_progress", show_progress)):
        V.check_bool(name, value)
    return (load_model(device=device), load_beir("scifact", "train", small=small),
            load_beir("scifact", "test", small=small))


def _train_cached(base, prefix: str, recipe, columns: dict, stats: dict, make_loss, prepare, finish, device, retrain,
                  show_progress, version: str | None = None):
    """Train ``base`` (the packaged model, untouched so far) on ``columns`` with ``make_loss(model)`` after
    ``prepare(model) -> info`` and before ``finish(model)``, once: the result is cached under
    ``<cache>/models/<prefix>-<key>``. A ``version`` joins the key when the training itself changed, so that a
    model trained by the older code is not loaded."""
    from course_lib.cache import model_fingerprint, texts_fingerprint
    from course_lib.models import cached_model
    from course_lib.training import fit, recipe_key

    flat = [t for name, col in columns.items() if name != "label" for t in col]
    labels = [float(x) for row in columns.get("label", []) for x in (row if isinstance(row, list) else [row])]

    def train():
        extra = prepare(base)
        start = time.perf_counter()
        history = fit(base, columns, make_loss(base), epochs=recipe.epochs, batch_size=recipe.batch_size,
                      learning_rate=recipe.learning_rate, max_steps=recipe.max_steps, seed=recipe.seed,
                      show_progress=show_progress, max_seq_length=recipe.max_seq_length)
        seconds = round(time.perf_counter() - start, 1)
        extra.update(finish(base))
        return base, {"recipe": dataclasses.asdict(recipe), **stats, **extra, "seconds": seconds,
                      "device": str(base.device), "losses": history}

    settings = recipe_key(recipe)
    if getattr(recipe, "queries", None) == "train":  # the default table keeps the key it had before the field
        settings = {k: v for k, v in settings.items() if k not in ("queries", "title_docs")}
    key = [model_fingerprint(base), texts_fingerprint(list(map(str, range(len(flat)))), flat), sorted(columns),
           [round(x, 6) for x in labels], settings] + ([version] if version else [])
    return cached_model(prefix, key, train, device=device, retrain=retrain)


def lora_model(recipe: LoraRecipe, device: str | None = None, small: bool = False, retrain: bool = False,
               show_progress: bool = True):
    """MiniLM with LoRA adapters trained on SciFact train by ``recipe`` (MNRL, mined negatives), cached on disk.

    The training table is full fine-tuning's (:func:`course_lib.finetune.training_columns`, leakage guard
    included). The adapters are merged after training, so the returned model encodes at the base model's cost;
    ``info`` holds ``trainable`` (adapter parameters) and ``adapter_bytes`` (their safetensors file).
    """
    from course_lib.finetune import make_loss, training_columns

    base, train_ds, test_ds = _start(recipe, LoraRecipe, "lora_recipe", device, small, retrain, show_progress)
    columns, stats = training_columns(base, train_ds, test_ds, recipe, show_progress)

    def prepare(model):
        return {"trainable": add_lora(model, recipe.rank, recipe.lora_alpha, recipe.lora_dropout, seed=recipe.seed)}

    def finish(model):
        size = _bytes_of(lora_state(model))
        merge_lora(model)
        return {"adapter_bytes": size}

    return _train_cached(base, f"lora-r{recipe.rank}", recipe, columns, stats,
                         lambda m: make_loss(m, recipe.loss, recipe.mini_batch_size), prepare, finish, device,
                         retrain, show_progress, version="seeded adapters")


# ---------------------------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------------------------


def distill_columns(model, train_ds, test_ds, recipe: DistillRecipe,
                    show_progress: bool = True) -> tuple[dict[str, list], dict]:
    """The MarginMSE table: ``anchor``, ``positive``, ``negative_1..n`` and ``label`` (the teacher's margins).

    For each guarded train pair, the candidates are the union of ``model``'s dense top ``recipe.depth`` and BM25's
    top ``recipe.depth`` over the train corpus; the teacher (:func:`hybrid_teacher`) scores them; the negatives are
    its highest-scoring non-positives from rank ``recipe.range_min`` on; the labels are :func:`teacher_margins`.
    """
    from course_lib import sparse
    from course_lib.data import document_text
    from course_lib.embed import encode_corpus, encode_queries
    from course_lib.search import topk_scores
    from course_lib.training import check_no_leakage, guarded_examples

    if not isinstance(recipe, DistillRecipe):
        raise TypeError(f"recipe must be a DistillRecipe (see distill_recipe), got {type(recipe).__name__}")
    V.check_bool("show_progress", show_progress)
    _check_model(model)
    examples, guard = guarded_examples(train_ds, test_ds)
    queries, qrels = train_ds.queries, train_ds.qrels
    if recipe.queries == "titles":
        from course_lib.training import Example

        titled = [d for d, doc in train_ds.corpus.items() if str(doc.get("title", "")).strip()]
        pick = np.random.default_rng(recipe.seed).permutation(len(titled))[:recipe.title_docs]
        sample = [titled[i] for i in sorted(pick)]
        queries = {f"title:{d}": str(train_ds.corpus[d]["title"]).strip() for d in sample}
        qrels = {f"title:{d}": {d: 1} for d in sample}
        examples = [Example(f"title:{d}", queries[f"title:{d}"], d, document_text(train_ds.corpus[d])) for d in sample]
    examples = examples[: recipe.limit]
    doc_ids = list(train_ds.corpus)
    row = {d: i for i, d in enumerate(doc_ids)}
    texts = [document_text(train_ds.corpus[d]) for d in doc_ids]
    qids = list(dict.fromkeys(e.query_id for e in examples))
    q_emb = encode_queries(model, {q: queries[q] for q in qids})  # (Q, D)
    c_emb = encode_corpus(model, train_ds.corpus, show_progress=show_progress)  # (N, D)
    dense = q_emb @ c_emb.T  # (Q, N)
    bm25 = sparse.BM25Index.build(texts).score([queries[q] for q in qids]).astype(np.float32)  # (Q, N)
    depth = min(recipe.depth, len(doc_ids))
    n_neg = recipe.num_negatives
    columns: dict[str, list] = {"anchor": [], "positive": [], **{f"negative_{j + 1}": [] for j in range(n_neg)},
                                "label": []}
    by_query: dict[str, list] = {}
    for e in examples:
        by_query.setdefault(e.query_id, []).append(e)
    dropped = 0
    for qi, q in enumerate(qids):
        cand = np.union1d(topk_scores(dense[qi:qi + 1], depth)[1][0], topk_scores(bm25[qi:qi + 1], depth)[1][0])
        h = hybrid_teacher(dense[qi:qi + 1, cand], bm25[qi:qi + 1, cand], recipe.alpha)[0]  # (K,)
        positives = {row[d] for d, r in qrels[q].items() if r > 0 and d in row}
        order = [j for j in np.argsort(-h, kind="stable") if cand[j] not in positives]
        negs = np.array(order[recipe.range_min:recipe.range_min + n_neg], np.int64)  # candidate columns
        column = {int(c): j for j, c in enumerate(cand)}  # corpus row -> candidate column
        # a positive the teacher does not rank in its top depth has no score to compare: the row is dropped
        kept = [e for e in by_query[q] if len(negs) == n_neg and row[e.doc_id] in column]
        dropped += len(by_query[q]) - len(kept)
        if not kept:
            continue
        margins = teacher_margins(np.repeat(dense[qi:qi + 1, cand], len(kept), axis=0),
                                  np.repeat(bm25[qi:qi + 1, cand], len(kept), axis=0),
                                  np.array([column[row[e.doc_id]] for e in kept]), np.tile(negs, (len(kept), 1)),
                                  recipe.alpha)  # (P, n): one row per kept pair
        for e, margin in zip(kept, margins):
            columns["anchor"].append(e.query)
            columns["positive"].append(e.document)
            for j, c in enumerate(negs):
                columns[f"negative_{j + 1}"].append(texts[cand[c]])
            columns["label"].append(float(margin[0]) if n_neg == 1 else [float(m) for m in margin])
    flat = [t for name, col in columns.items() if name != "label" for t in col]
    margins = np.array(columns["label"], np.float64)
    stats = {"pairs": len(examples), "rows": len(columns["anchor"]), "dropped": dropped,
             "train_queries_duplicating_test": guard["train_queries_duplicating_test"],
             "teacher": f"hybrid alpha={recipe.alpha}, dense and BM25 top {depth}",
             "mean_margin": round(float(margins.mean()), 4) if margins.size else None,
             "negative_margins": int((margins < 0).sum()),
             "leakage_check": check_no_leakage([e.query_id for e in examples], flat, test_ds)}
    return columns, stats


def distill_model(recipe: DistillRecipe, device: str | None = None, small: bool = False, retrain: bool = False,
                  show_progress: bool = True):
    """MiniLM distilled from the hybrid teacher with ``MarginMSELoss`` on SciFact train, cached on disk."""
    base, train_ds, test_ds = _start(recipe, DistillRecipe, "distill_recipe", device, small, retrain, show_progress)
    columns, stats = distill_columns(base, train_ds, test_ds, recipe, show_progress)

    def make_loss(model):
        from sentence_transformers.sentence_transformer.losses import MarginMSELoss

        return MarginMSELoss(model)

    prefix = "distill" if recipe.queries == "train" else f"distill-{recipe.queries}"
    return _train_cached(base, prefix, recipe, columns, stats, make_loss, lambda m: {}, lambda m: {}, device, retrain,
                         show_progress)


# ---------------------------------------------------------------------------------------------------------------
# The linear adapter on frozen embeddings
# ---------------------------------------------------------------------------------------------------------------


def train_linear_adapter(query_emb: np.ndarray, doc_emb: np.ndarray, negative_emb: np.ndarray | None = None, *,
                         side: str = "query", steps: int = 300, batch_size: int = 64, learning_rate: float = 1e-3,
                         identity_weight: float = 0.01, scale: float = 20.0, seed: int = 0) -> dict:
    """Train a (D, D) matrix W on cached embeddings: query ``i``'s positive is ``doc_emb[i]``.

    The loss is MNRL (notebook 06) on cosines times ``scale``: each query against every positive of its batch
    and, if given, every row of ``negative_emb`` of its batch (float (P, D), one mined negative per pair), plus
    ``identity_weight * ||W - I||^2`` (W starts at, and is pulled toward, the identity: with 900 pairs and
    147,456 entries, an unanchored W memorizes the train queries). ``side="query"`` maps queries only (the
    document index stays as it is); ``"both"`` maps documents too. Adam, ``steps`` batches of ``batch_size`` drawn
    with ``seed``. Returns ``{"weight": float32 (D, D), "side", "seconds", "losses"}``.
    """
    import torch

    q = V.check_matrix("query_emb", query_emb)
    d = V.check_matrix("doc_emb", doc_emb)
    if q.shape != d.shape:
        raise ValueError(f"query_emb {q.shape} and doc_emb {d.shape} must be aligned pairs of the same shape")
    if negative_emb is not None:
        n = V.check_matrix("negative_emb", negative_emb)
        if n.shape != q.shape:
            raise ValueError(f"negative_emb must have the shape of query_emb {q.shape}, got {n.shape}")
    V.check_choice("side", side, ADAPTER_SIDES)
    steps = V.check_int("steps", steps, low=1)
    batch_size = V.check_int("batch_size", batch_size, low=2)
    V.check_number("learning_rate", learning_rate, low=0, low_open=True)
    V.check_number("identity_weight", identity_weight, low=0)
    V.check_number("scale", scale, low=0, low_open=True)
    V.check_int("seed", seed, low=0)
    gen = torch.Generator().manual_seed(seed)
    dim = q.shape[1]
    eye = torch.eye(dim)
    w = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([w], lr=learning_rate)
    tq, td = torch.from_numpy(q.astype(np.float32)), torch.from_numpy(d.astype(np.float32))
    tn = None if negative_emb is None else torch.from_numpy(negative_emb.astype(np.float32))
    norm = torch.nn.functional.normalize
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        idx = torch.randperm(len(tq), generator=gen)[:batch_size]
        qb = norm(tq[idx] @ w, dim=-1)
        docs = td[idx] if tn is None else torch.cat([td[idx], tn[idx]])
        db = norm(docs @ w if side == "both" else docs, dim=-1)
        loss = torch.nn.functional.cross_entropy(scale * qb @ db.T, torch.arange(len(idx)))
        total = loss + identity_weight * ((w - eye) ** 2).sum()
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 4))
    return {"weight": w.detach().numpy().astype(np.float32), "side": side,
            "seconds": round(time.perf_counter() - start, 2), "losses": losses}


def apply_linear_adapter(emb: np.ndarray, adapter: dict) -> np.ndarray:
    """``emb @ W``, re-normalized: float32 (N, D). With ``side="query"`` apply it to queries only.

    >>> apply_linear_adapter(np.array([[3.0, 4.0]]), {"weight": np.eye(2, dtype=np.float32)}).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    from course_lib.matryoshka import truncate

    x = V.check_matrix("emb", emb)
    if not isinstance(adapter, dict) or "weight" not in adapter:
        raise TypeError("adapter must be the dict train_linear_adapter returns (with 'weight')")
    w = V.check_matrix("adapter['weight']", adapter["weight"])
    if w.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"adapter['weight'] is {w.shape}, but emb has {x.shape[1]} dims")
    return truncate(x.astype(np.float32) @ w, x.shape[1])


# ---------------------------------------------------------------------------------------------------------------
# One comparison
# ---------------------------------------------------------------------------------------------------------------

STRATEGY_NAMES = ("base", "full fine-tuning", "LoRA", "linear adapter (queries)", "linear adapter (both sides)",
                  "distillation (hybrid teacher)", "distillation, corpus titles (no labels)", "corpus-only adaptor")


def _retrieval_scores(q_emb, c_emb, test, unseen) -> tuple[dict, dict]:
    from course_lib.metrics import evaluate, evaluate_per_query
    from course_lib.search import run_from_topk, topk

    s, i = topk(q_emb, c_emb, min(100, c_emb.shape[0]))
    run = run_from_topk(s, i, list(test.queries), list(test.corpus))
    per = {q: v["ndcg@10"] for q, v in evaluate_per_query({q: run[q] for q in unseen}, unseen, (10,)).items()}
    return {"ndcg": evaluate(run, test.qrels)["ndcg@10"], "unseen": evaluate({q: run[q] for q in unseen},
                                                                            unseen)["ndcg@10"]}, per


def _query_ms(model, texts, repeats: int = 3) -> float:
    """Milliseconds per query to encode ``texts`` in one batch: the best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(texts)


def _transform_ms(transform, emb: np.ndarray, repeats: int = 20) -> float:
    """Milliseconds per query that ``transform`` adds on top of the encoder, on ``emb`` (Q, D): the best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        transform(emb)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(emb)


def _param_bytes(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def linear_adapter_data(model, train_ds, test_ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear adapter's training data: ``model``'s embeddings of the guarded train pairs (query, positive) and of
    each pair's mined hard negative (the hardest non-positive, as in full fine-tuning). Each (P, D) float32."""
    from course_lib.embed import encode_corpus, encode_queries
    from course_lib.finetune import mine_hard_negatives
    from course_lib.training import guarded_examples

    _check_model(model)
    examples, _ = guarded_examples(train_ds, test_ds)
    doc_ids = list(train_ds.corpus)
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = list(dict.fromkeys(e.query_id for e in examples))
    q_emb = encode_queries(model, {q: train_ds.queries[q] for q in qids})  # (Q, D)
    c_emb = encode_corpus(model, train_ds.corpus, show_progress=False)  # (N, D)
    positives = [[row[d] for d, r in train_ds.qrels[q].items() if r > 0 and d in row] for q in qids]
    neg, _ = mine_hard_negatives(q_emb, c_emb, positives, 1, 0, 50)  # (Q, 1)
    qrow = {q: i for i, q in enumerate(qids)}
    keep = [e for e in examples if neg[qrow[e.query_id], 0] >= 0]
    return (q_emb[[qrow[e.query_id] for e in keep]], c_emb[[row[e.doc_id] for e in keep]],
            c_emb[[int(neg[qrow[e.query_id], 0]) for e in keep]])


def compare(cfg, backbone_seeds: Sequence[int] = (0,), adapter_seeds: Sequence[int] = (0, 1, 2),
            full_seeds: Sequence[int] | None = None, title_distillation: bool = True, show_progress: bool = True) -> dict:
    """Every strategy of this module, trained (or loaded from the cache) and evaluated the same way.

    For each strategy and seed: nDCG@10 on SciFact test (all queries, and the queries whose relevant documents
    are no train positive, :func:`course_lib.eval.unseen_document_qrels`), per-query wins and losses against the
    base model on those (:func:`course_lib.eval.paired_comparison`), STS-B test Spearman (an adapter is applied to
    both sentences: the encoder a query would see), trainable parameters, training seconds, the bytes to ship, and
    milliseconds per query to embed the 300 test queries (measured in this call, so the strategies' costs are
    comparable). Full fine-tuning (notebook 06's mined-negative recipe) runs with ``full_seeds`` (default:
    ``cfg.seed``, the model notebook 06 trains), LoRA and distillation with ``backbone_seeds``, the adapters with
    ``adapter_seeds``; the no-label distillation on corpus titles runs with the first backbone seed only, and
    ``title_distillation=False`` leaves it out (about 25 minutes of training on a 2-core CPU). Returns ``{"rows", "per_seed", "base", "unseen_queries"}``; a row
    averages its seeds and gives their range.
    """
    from course_lib.adaptor import PARAMS, adapt, adaptor_model
    from course_lib.data import load_beir, load_sts
    from course_lib.embed import encode_corpus, encode_queries
    from course_lib.eval import paired_comparison, unseen_document_qrels
    from course_lib.finetune import finetune_recipe, finetuned_model
    from course_lib.matryoshka import sts_spearman_by_dim
    from course_lib.models import load_model

    V.check_config("cfg", cfg)
    full_seeds = [cfg.seed] if full_seeds is None else full_seeds
    seed_lists = {}
    for name, value in (("backbone_seeds", backbone_seeds), ("adapter_seeds", adapter_seeds), ("full_seeds", full_seeds)):
        seed_lists[name] = [V.check_int(f"{name} entry", s, low=0) for s in V.check_sequence(name, value)]
        if not seed_lists[name]:
            raise ValueError(f"{name} must hold at least one seed")
    backbone_seeds, adapter_seeds, full_seeds = (seed_lists[n] for n in ("backbone_seeds", "adapter_seeds",
                                                                         "full_seeds"))
    V.check_bool("show_progress", show_progress)
    V.check_bool("title_distillation", title_distillation)
    test = load_beir("scifact", "test", small=cfg.small)
    train = load_beir("scifact", "train", small=cfg.small)
    unseen = unseen_document_qrels(test.qrels, train.qrels)
    sts = load_sts("test")
    base = load_model(device=cfg.device)
    texts = list(test.queries.values())
    per_seed: list[dict] = []

    def embed(model):
        return (encode_queries(model, test.queries), encode_corpus(model, test.corpus, show_progress=show_progress),
                encode_queries(model, list(sts.sentence1)), encode_queries(model, list(sts.sentence2)))

    base_q, base_c, base_s1, base_s2 = embed(base)
    base_scores, base_per = _retrieval_scores(base_q, base_c, test, unseen)

    def record(name, seed, q, c, s1, s2, **cost):
        scores, per = _retrieval_scores(q, c, test, unseen)
        cmp = paired_comparison(base_per, per, tol=1e-6)
        per_seed.append({"strategy": name, "seed": seed, "nDCG@10": round(scores["ndcg"], 4),
                         "unseen nDCG@10": round(scores["unseen"], 4), "wins": cmp["wins"], "losses": cmp["losses"],
                         "STS-B": round(sts_spearman_by_dim(s1, s2, sts.score, (s1.shape[1],))[s1.shape[1]], 4),
                         **cost})

    n_all, all_bytes = _param_bytes(base)
    base_ms = _query_ms(base, texts)
    record("base", 0, base_q, base_c, base_s1, base_s2, trainable=0, train_s=0.0, ship_bytes=0, query_ms=base_ms)
    for seed in full_seeds:  # notebook 06's best setting: the reference
        model, info = finetuned_model(dataclasses.replace(finetune_recipe(cfg, "mined"), seed=seed), device=cfg.device,
                                      small=cfg.small, show_progress=show_progress)
        record("full fine-tuning", seed, *embed(model), trainable=n_all, train_s=info["seconds"],
               ship_bytes=all_bytes, query_ms=_query_ms(model, texts))
    for seed in backbone_seeds:
        model, info = lora_model(lora_recipe(cfg, seed), device=cfg.device, small=cfg.small, show_progress=show_progress)
        record("LoRA", seed, *embed(model), trainable=info["trainable"], train_s=info["seconds"],
               ship_bytes=info["adapter_bytes"], query_ms=_query_ms(model, texts))
        titles = title_distillation and seed == backbone_seeds[0]  # one seed: it costs 25 minutes and lost 12 points
        for queries, name in (("train", "distillation (hybrid teacher)"),
                              ("titles", "distillation, corpus titles (no labels)"))[:2 if titles else 1]:
            recipe = dataclasses.replace(distill_recipe(cfg, seed), queries=queries)
            model, info = distill_model(recipe, device=cfg.device, small=cfg.small, show_progress=show_progress)
            record(name, seed, *embed(model), trainable=n_all, train_s=info["seconds"], ship_bytes=all_bytes,
                   query_ms=_query_ms(model, texts))
    pairs = linear_adapter_data(base, train, test)
    for seed in adapter_seeds:
        for side, name in (("query", "linear adapter (queries)"), ("both", "linear adapter (both sides)")):
            ad = train_linear_adapter(*pairs, side=side, seed=seed)
            docs = (lambda x: apply_linear_adapter(x, ad)) if side == "both" else (lambda x: x)
            record(name, seed, apply_linear_adapter(base_q, ad), docs(base_c), apply_linear_adapter(base_s1, ad),
                   apply_linear_adapter(base_s2, ad), trainable=ad["weight"].size, train_s=ad["seconds"],
                   ship_bytes=ad["weight"].nbytes,
                   query_ms=base_ms + _transform_ms(lambda e, ad=ad: apply_linear_adapter(e, ad), base_q))
        ad = adaptor_model(base_c, seed=seed, show_progress=show_progress)
        record("corpus-only adaptor", seed, adapt(base_q, ad), adapt(base_c, ad), adapt(base_s1, ad),
               adapt(base_s2, ad), trainable=sum(np.asarray(ad[k]).size for k in ("w1", "b1", "w2", "b2")),
               train_s=ad.get("seconds", float("nan")), ship_bytes=sum(np.asarray(ad[k]).nbytes for k in PARAMS),
               query_ms=base_ms + _transform_ms(lambda e, ad=ad: adapt(e, ad), base_q))
    rows = []
    for name in STRATEGY_NAMES:
        runs = [r for r in per_seed if r["strategy"] == name]
        if not runs:
            continue
        row = {"strategy": name, "seeds": len(runs)}
        for col in ("nDCG@10", "unseen nDCG@10", "wins", "losses", "STS-B", "train_s", "query_ms"):
            vals = np.array([r[col] for r in runs], np.float64)
            row[col] = round(float(vals.mean()), 4 if "nDCG" in col or col in ("STS-B", "query_ms") else 1)
            if len(runs) > 1 and col in ("nDCG@10", "unseen nDCG@10", "STS-B"):
                row[f"{col} range"] = round(float(vals.max() - vals.min()), 4)
        row.update(trainable=runs[0]["trainable"], ship_bytes=runs[0]["ship_bytes"])
        rows.append(row)
    return {"rows": rows, "per_seed": per_seed, "base": base_scores, "unseen_queries": len(unseen)}


def plot_strategies(result: dict, ax=None):
    """Unseen-document nDCG@10 against training time (log scale) for :func:`compare`'s ``result``: one point per
    strategy at its mean over seeds, a bar over its seeds' range, and the base model and base + 2 points as lines.
    Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    if not isinstance(result, dict) or not {"rows", "per_seed", "unseen_queries"} <= set(result):
        raise TypeError("result must be the dict compare() returns (with rows, per_seed and unseen_queries)")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    base = next(r for r in result["rows"] if r["strategy"] == "base")
    markers = "osD^vP*Xh"  # a marker per strategy as well as a colour, so points that sit close stay apart
    for i, r in enumerate(r for r in result["rows"] if r["strategy"] != "base"):
        x = max(r["train_s"], 0.1)
        vals = [p["unseen nDCG@10"] for p in result["per_seed"] if p["strategy"] == r["strategy"]]
        ax.errorbar([x], [r["unseen nDCG@10"]], yerr=[[r["unseen nDCG@10"] - min(vals)], [max(vals) - r["unseen nDCG@10"]]],
                    fmt=markers[i % len(markers)], capsize=3,
                    label=f"{r['strategy']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})")
    ax.axhline(base["unseen nDCG@10"], color="k", lw=1, label="base model")
    ax.axhline(base["unseen nDCG@10"] + 0.02, color="k", ls="--", lw=1, label="base + 2 points")
    ax.set_xscale("log")
    ax.set_xlim(0.1, 1e4)
    ax.set(xlabel="training time (s, log scale)", ylabel=f"nDCG@10, {result['unseen_queries']} unseen-doc queries",
           title="What each strategy buys on documents no training query cited")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the axes: labels never cover points
    ax.figure.tight_layout()
    return ax
