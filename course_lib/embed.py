"""Encode corpora and queries once, cache the embeddings on disk, load them in well under a second.

The cache key (:mod:`course_lib.cache`) is a fingerprint of

- the model weights (every tensor of its ``state_dict``: names, dtypes, shapes, bytes),
- the texts themselves (ids and the exact strings the model reads), and
- the settings that change the output: max sequence length, text fields, prompt, normalization.

So a fine-tuned model, an edited document or a different max length never reads a stale cache.
Entries are written atomically, and one that fails to load is recomputed (see :mod:`course_lib.cache`).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from course_lib.cache import (CacheEntryError, cache_dir, cache_key, load_array, load_json, load_or_compute,
                              model_fingerprint, save_array, save_json, texts_fingerprint)
from course_lib import validation as V
from course_lib.data import document_text


def as_texts(items, fields: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``(ids, strings)`` of a dict (id -> text or BEIR document) or a list of texts (ids "0", "1", ...).

    >>> as_texts({"d1": {"title": "T", "text": "body"}}, ("title", "text"))
    (['d1'], ['T body'])
    """
    if isinstance(fields, str) or not isinstance(fields, (tuple, list)) or not all(isinstance(f, str) for f in fields):
        raise TypeError(f"fields must be a tuple of str field names, got {fields!r}")
    if isinstance(items, dict):
        ids = [V.check_id("texts key", k) for k in items]  # str ids: 1 and "1" would collide as "1"
        values = list(items.values())
    elif isinstance(items, (list, tuple)):
        ids = [str(i) for i in range(len(items))]
        values = list(items)
    else:
        raise TypeError(f"texts must be a dict (id -> text or document) or a list, got {type(items).__name__}")
    texts = []
    for k, v in zip(ids, values):
        if isinstance(v, str):
            texts.append(v)
        elif isinstance(v, dict):
            texts.append(document_text(v, fields))
        else:
            raise TypeError(f"item {k!r} must be a str or a dict with {fields}, got {type(v).__name__}")
    if not texts:
        raise ValueError("texts must not be empty")
    return ids, texts


def encoding_entry(model, ids, strings, kind, fields, prompt, extra: dict | None = None) -> tuple[dict, Path]:
    """The settings that change an encoding, and the cache file keyed on them, the weights and the texts."""
    V.check_texts("strings", strings)
    if len(V.check_sequence("ids", ids, "str ids")) != len(strings):
        raise ValueError(f"ids and strings must have the same length, got {len(ids)} and {len(strings)}")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty str, got {kind!r}")
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
    settings = {"kind": kind, "max_seq_length": int(model.max_seq_length), "fields": list(fields),
                "prompt": prompt, "normalize": True, "dtype": "float32", **(extra or {})}
    key = cache_key([model_fingerprint(model), texts_fingerprint(ids, strings), settings])
    return settings, cache_dir() / "embeddings" / f"{kind}-{key}.npy"


def default_batch_size(model, cpu: int = 64, accelerator: int = 256) -> int:
    """Encoding batch size for the model's device: ``cpu`` on a CPU, ``accelerator`` on CUDA or MPS."""
    V.check_int("cpu", cpu, low=1)
    V.check_int("accelerator", accelerator, low=1)
    return cpu if getattr(model, "device", None) is None or model.device.type == "cpu" else accelerator


@contextlib.contextmanager
def max_seq_length(model, length: int | None):
    """Within the block, ``model.max_seq_length`` is ``length`` (None: unchanged); the caller's value comes back after."""
    if length is None:
        yield model
        return
    if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
        raise ValueError(f"max_length must be a positive int or None, got {length!r}")
    before = model.max_seq_length
    model.max_seq_length = length
    try:
        yield model
    finally:
        model.max_seq_length = before


def _encode(model, texts, kind, *, batch_size, max_length, fields, prompt, cache, show_progress):
    V.check_int("batch_size", batch_size, low=1, allow_none=True)
    if max_length is not None and (not V.is_int(max_length) or max_length <= 0):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
    V.check_bool("cache", cache)
    V.check_bool("show_progress", show_progress)
    ids, strings = as_texts(texts, fields)  # before the model is touched: bad texts fail fast
    if batch_size is None:
        batch_size = default_batch_size(model)
    with max_seq_length(model, max_length):
        settings, path = encoding_entry(model, ids, strings, kind, fields, prompt)

        def load():
            emb = load_array(path)
            if emb.shape[0] != len(strings) or emb.dtype != np.float32 or not np.isfinite(emb).all():
                raise CacheEntryError(f"wrong shape or values: {emb.dtype} {emb.shape} for {len(strings)} texts")
            return emb, None

        def compute():
            start = time.perf_counter()
            emb = model.encode(strings, batch_size=batch_size, show_progress_bar=show_progress,
                               convert_to_numpy=True, normalize_embeddings=True, prompt=prompt)
            emb = np.ascontiguousarray(emb, dtype=np.float32)
            meta = {**settings, "n": len(strings), "dim": int(emb.shape[1]),
                    "encode_seconds": round(time.perf_counter() - start, 3), "device": str(model.device),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            return emb, meta

        def save(value, staged):
            save_json(staged[0], value[1])
            save_array(staged[1], value[0])

        (emb, _), _ = load_or_compute([path.with_suffix(".json"), path], load=load, compute=compute, save=save,
                                      enabled=cache, what="embedding cache")
    return emb


def cache_info(model, texts, kind: str = "corpus", fields: tuple[str, ...] = ("title", "text"),
               prompt: str | None = None) -> dict | None:
    """The metadata stored beside a cached encoding (encode time, device, date), or None if not cached."""
    ids, strings = as_texts(texts, fields)
    _, path = encoding_entry(model, ids, strings, kind, fields, prompt)
    meta = path.with_suffix(".json")
    return load_json(meta) if meta.is_file() and path.is_file() else None


def encode_corpus(model, corpus, *, batch_size: int | None = None, max_length: int | None = None,
                  fields: tuple[str, ...] = ("title", "text"), prompt: str | None = None,
                  cache: bool = True, show_progress: bool = True) -> np.ndarray:
    """Encode documents to L2-normalized float32 vectors, cached on disk.

    Parameters
    ----------
    model : SentenceTransformer
    corpus : dict[str, dict] or dict[str, str] or list[str]
        Documents; a dict value ``{"title", "text"}`` is read as ``" ".join(fields)`` (BEIR's "title text").
    batch_size : int or None
        None: 64 on a CPU, 256 on a GPU (:func:`default_batch_size`); the embeddings do not depend on it.
    max_length : int or None
        Word pieces per text for this call; longer texts are truncated. None keeps ``model.max_seq_length``
        (256 for MiniLM); the model's own setting is unchanged after the call.
    fields : tuple of str
        Document fields joined by one space.
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    np.ndarray
        float32 of shape (N, D), each row of unit L2 norm, in the order of ``corpus``.
    """
    return _encode(model, corpus, "corpus", batch_size=batch_size, max_length=max_length, fields=fields,
                   prompt=prompt, cache=cache, show_progress=show_progress)


def encode_queries(model, queries, *, batch_size: int | None = None, max_length: int | None = None,
                   prompt: str | None = None, cache: bool = True, show_progress: bool = False) -> np.ndarray:
    """Encode queries (``dict[str, str]`` or ``list[str]``) like :func:`encode_corpus`; float32 (Q, D)."""
    return _encode(model, queries, "queries", batch_size=batch_size, max_length=max_length, fields=("text",),
                   prompt=prompt, cache=cache, show_progress=show_progress)
