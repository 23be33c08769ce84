"""Encode corpora and queries once, cache the embeddings on disk, load them in well under a second.

The cache key is a fingerprint of

- the model weights (every tensor of its ``state_dict``: names, dtypes, shapes, bytes),
- the texts themselves (ids and the exact strings the model reads), and
- the settings that change the output: max sequence length, text fields, prompt, normalization.

So a fine-tuned model, an edited document or a different max length never reads a stale cache.
Files are written to a temporary name and renamed into place, so a run killed mid-write leaves no
corrupt cache; a cache file that fails to load is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from course_lib.data import document_text
from course_lib.paths import cache_dir


def model_fingerprint(model) -> str:
    """sha256 over every tensor of ``model.state_dict()`` (name, dtype, shape, bytes) and its module list."""
    import torch

    digest = hashlib.sha256()
    digest.update(repr([type(m).__name__ for m in model]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def texts_fingerprint(ids: list[str], texts: list[str]) -> str:
    """sha256 over the (id, text) pairs, in order."""
    digest = hashlib.sha256()
    for i, t in zip(ids, texts):
        digest.update(i.encode("utf-8") + b"\x00" + t.encode("utf-8") + b"\x01")
    return digest.hexdigest()


def _as_texts(items, fields: tuple[str, ...]) -> tuple[list[str], list[str]]:
    if isinstance(items, dict):
        ids = [str(k) for k in items]
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


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cache_path(model, ids, strings, kind, fields, prompt, extra: dict | None = None) -> tuple[dict, Path]:
    """The settings that change an encoding, and the cache file keyed on them, the weights and the texts."""
    settings = {"kind": kind, "max_seq_length": int(model.max_seq_length), "fields": list(fields),
                "prompt": prompt, "normalize": True, "dtype": "float32", **(extra or {})}
    key = hashlib.sha256(json.dumps(
        [model_fingerprint(model), texts_fingerprint(ids, strings), settings], sort_keys=True).encode()
    ).hexdigest()[:24]
    return settings, cache_dir() / "embeddings" / f"{kind}-{key}.npy"


def default_batch_size(model, cpu: int = 64, accelerator: int = 256) -> int:
    """Encoding batch size for the model's device: ``cpu`` on a CPU, ``accelerator`` on CUDA or MPS."""
    return cpu if getattr(model, "device", None) is None or model.device.type == "cpu" else accelerator


def _encode(model, texts, kind, *, batch_size, max_length, fields, prompt, cache, show_progress):
    if batch_size is None:
        batch_size = default_batch_size(model)
    if max_length is not None:
        if not isinstance(max_length, int) or max_length <= 0:
            raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
        model.max_seq_length = max_length
    ids, strings = _as_texts(texts, fields)
    settings, path = _cache_path(model, ids, strings, kind, fields, prompt)
    folder, meta_path = path.parent, path.with_suffix(".json")
    if cache and path.is_file():
        try:
            emb = np.load(path, allow_pickle=False)
            if emb.shape[0] == len(strings) and emb.dtype == np.float32 and np.isfinite(emb).all():
                return emb
            warnings.warn(f"embedding cache {path} has the wrong shape or values; recomputing", stacklevel=3)
        except (ValueError, OSError, EOFError) as err:
            warnings.warn(f"embedding cache {path} is unreadable ({err}); recomputing", stacklevel=3)
    start = time.perf_counter()
    emb = model.encode(strings, batch_size=batch_size, show_progress_bar=show_progress,
                       convert_to_numpy=True, normalize_embeddings=True, prompt=prompt)
    seconds = time.perf_counter() - start
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {**settings, "n": len(strings), "dim": int(emb.shape[1]), "encode_seconds": round(seconds, 3),
                "device": str(model.device), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
        _atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), emb, allow_pickle=False))
    return emb


def cache_info(model, texts, kind: str = "corpus", fields: tuple[str, ...] = ("title", "text"),
               prompt: str | None = None) -> dict | None:
    """The metadata stored beside a cached encoding (encode time, device, date), or None if not cached."""
    ids, strings = _as_texts(texts, fields)
    _, path = _cache_path(model, ids, strings, kind, fields, prompt)
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else None


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
        Word pieces per text (``model.max_seq_length``, 256 for MiniLM); longer texts are truncated.
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
