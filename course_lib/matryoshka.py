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
    out = np.array(emb[:, :dim], dtype=np.float32)  # a copy: never a view into the caller's array
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
    return out


def ndcg_by_dim(query_emb: np.ndarray, corpus_emb: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str],
                qrels: Mapping[str, Mapping[str, int]], dims: Sequence[int] = MRL_DIMS, k: int = 100) -> dict[int, float]:
    """nDCG@10 of exact cosine search with both sides truncated (and re-normalized) to each dim."""
    from course_lib.metrics import evaluate
    from course_lib.search import run_from_topk, topk

    out = {}
    for d in dims:
        s, i = topk(truncate(query_emb, d), truncate(corpus_emb, d), min(k, corpus_emb.shape[0]))
        out[int(d)] = evaluate(run_from_topk(s, i, query_ids, doc_ids), qrels)["ndcg@10"]
    return out


def funnel_search(query_emb: np.ndarray, corpus_emb: np.ndarray, k: int, shortlist_dim: int = 64,
                  shortlist: int = 100, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive retrieval: shortlist with the first ``shortlist_dim`` dims, rerank the shortlist with all dims.

    Stage 1 searches the whole corpus with truncated, re-normalized vectors (or, with ``binary``, the sign
    bits of the first ``shortlist_dim`` dims by Hamming distance: ``shortlist_dim / 8`` bytes a document);
    stage 2 scores only the ``shortlist`` candidates with the full vectors. Returns float32 scores and int64
    indices, (Q, k), best first.
    """
    from course_lib.quantization import quantize_binary
    from course_lib.search import hamming_topk, rescore, topk

    n = corpus_emb.shape[0]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= min(shortlist, n):
        raise ValueError(f"k must be an int in [1, min(shortlist, N)] = [1, {min(shortlist, n)}], got {k!r}")
    shortlist = min(int(shortlist), n)
    if binary:
        _, cand = hamming_topk(quantize_binary(query_emb[:, :shortlist_dim]),
                               quantize_binary(corpus_emb[:, :shortlist_dim]), shortlist)
    else:
        _, cand = topk(truncate(query_emb, shortlist_dim), truncate(corpus_emb, shortlist_dim), shortlist)
    return rescore(np.asarray(query_emb, np.float32), cand, np.asarray(corpus_emb, np.float32), k)


def mrl_pairs(train_ds) -> list[tuple[str, str]]:
    """(query text, relevant document text) pairs from a BEIR *train* split (never test)."""
    from course_lib.data import document_text

    if getattr(train_ds, "split", None) != "train":
        raise ValueError(f"MRL training pairs must come from the train split, got {getattr(train_ds, 'split', None)!r}")
    return [(train_ds.queries[q], document_text(train_ds.corpus[d]))
            for q, rel in train_ds.qrels.items() for d, r in rel.items() if r > 0 and d in train_ds.corpus]


def train_mrl(model, pairs: Sequence[tuple[str, str]], dims: Sequence[int] = MRL_DIMS,
              weights: Sequence[float] | None = None, epochs: float = 1.0, batch_size: int = 32,
              learning_rate: float = 2e-5, output_dir: str | None = None, max_steps: int = -1, seed: int = 0,
              show_progress: bool = True) -> list[dict]:
    """Fine-tune ``model`` in place with ``MatryoshkaLoss(MultipleNegativesRankingLoss)`` on (anchor, positive) pairs.

    The loss is the weighted sum over ``dims`` of the in-batch contrastive loss computed on the truncated,
    re-normalized embeddings. Runs through sentence-transformers' ``SentenceTransformerTrainer``, so the
    same call uses every GPU under ``torchrun``/``accelerate launch`` (data parallel). Returns the
    trainer's log history (losses per logging step).
    """
    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    if not pairs:
        raise ValueError("pairs must not be empty")
    dim = model.get_embedding_dimension()
    if sorted(dims, reverse=True) != list(dims) or dims[0] > dim or dims[-1] < 1:
        raise ValueError(f"dims must be decreasing, within [1, {dim}], got {tuple(dims)}")
    data = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=list(dims),
                          matryoshka_weights=None if weights is None else list(weights))
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=output_dir or tmp, num_train_epochs=epochs, max_steps=max_steps,
            per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=0.1,
            batch_sampler=BatchSamplers.NO_DUPLICATES, report_to="none", save_strategy="no",
            logging_steps=max(1, min(5, max_steps)) if max_steps > 0 else 5, seed=seed,
            dataloader_pin_memory=torch.cuda.is_available(),  # pinning needs an accelerator; on CPU it only warns
            disable_tqdm=not show_progress)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
        trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row]
