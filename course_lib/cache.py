"""The course's one on-disk cache: content-keyed entries, atomic writes, load-or-compute.

Everything slow that the notebooks do once (corpus and query embeddings, token vectors, trained models,
the ColBERT-style projection) goes through :func:`load_or_compute`:

- **the folder**: ``$COURSE_CACHE_DIR``, else ``<repo>/.cache`` (:func:`cache_dir`);
- **the key**: a sha256 of everything that changes the result (:func:`cache_key`), e.g. the model's weights
  (:func:`model_fingerprint`), the exact texts (:func:`texts_fingerprint`) and the settings. A fine-tuned
  model, an edited document or another setting never reads a stale entry;
- **atomic writes**: an entry's files (or its folder) are written under temporary names and renamed into
  place, the last file last, so a run killed mid-write leaves no half-written entry;
- **corrupt entries**: an entry that fails to load warns once (:class:`CacheWarning`) and is recomputed;
- **sharing**: two processes that fill the same key at once (learners sharing ``COURSE_CACHE_DIR`` on a
  JupyterHub) both compute it and both publish a complete copy by rename: the folder ends with one valid
  entry and neither fails. A read-only cache folder whose entries exist is read without any write; where
  an entry is missing and the folder is not writable, the result is computed, used and not kept (a warning
  says so);
- **read-only by intent**: with ``COURSE_CACHE_READONLY=1`` (:func:`read_only`) entries are read and never
  written, and a missing entry is computed and used without a warning. The grader sets it in its sandbox,
  where the instructor's cache is mounted read-only and a warning printed inside a test cell would cost the
  student that cell's points.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from course_lib.paths import CACHE_ROOT, env_flag

T = TypeVar("T")


class CacheWarning(UserWarning):
    """A cache entry was unreadable (and is recomputed), or a result could not be written to the cache."""


class CacheEntryError(ValueError):
    """Raised by a loader when an entry exists but is not what its key promises (wrong shape, bad values)."""


# What a damaged entry raises while loading: a truncated .npy (ValueError, EOFError), a missing sibling
# (OSError), bad JSON (ValueError), a missing field (KeyError), or a loader's own verdict (CacheEntryError).
CORRUPT = (CacheEntryError, ValueError, OSError, EOFError, KeyError)


def read_only() -> bool:
    """True where ``COURSE_CACHE_READONLY=1``: the cache is read and never written (see the module's docstring).

    >>> os.environ["COURSE_CACHE_READONLY"] = "1"; read_only()
    True
    >>> del os.environ["COURSE_CACHE_READONLY"]; read_only()
    False
    """
    return bool(env_flag("COURSE_CACHE_READONLY"))


def cache_dir() -> Path:
    """The cache folder: ``$COURSE_CACHE_DIR``, else ``CACHE_ROOT`` (``<clone>/.cache`` in a clone); created on first use if missing.

    >>> os.environ["COURSE_CACHE_DIR"] = "/tmp/course-cache-doctest"
    >>> str(cache_dir())
    '/tmp/course-cache-doctest'
    >>> del os.environ["COURSE_CACHE_DIR"]
    """
    path = Path(os.environ.get("COURSE_CACHE_DIR") or CACHE_ROOT)
    if not path.is_dir() and not read_only():  # never touch an existing (possibly read-only, shared) folder
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(parts, length: int = 24) -> str:
    """The first ``length`` hex digits of the sha256 of ``parts`` as sorted-key JSON.

    >>> cache_key(["a", {"b": 1, "c": 2}]) == cache_key(["a", {"c": 2, "b": 1}])
    True
    >>> len(cache_key([1], length=16))
    16
    """
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 64:
        raise ValueError(f"length must be an int in [1, 64] (hex digits of a sha256), got {length!r}")
    try:
        text = json.dumps(parts, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"parts must be JSON-serializable (str, numbers, lists, dicts; no NaN): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def model_fingerprint(model) -> str:
    """sha256 over every tensor of ``model.state_dict()`` (name, dtype, shape, bytes) and its module list."""
    import torch

    if not callable(getattr(model, "state_dict", None)) or not hasattr(model, "__iter__"):
        raise TypeError(f"model must be a SentenceTransformer (a module list with a state_dict), got "
                        f"{type(model).__name__}")
    digest = hashlib.sha256()
    digest.update(repr([type(m).__name__ for m in model]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def texts_fingerprint(ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 over the (id, text) pairs, in order.

    >>> texts_fingerprint(["a"], ["x"]) != texts_fingerprint(["a"], ["y"])
    True
    """
    for name, seq in (("ids", ids), ("texts", texts)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a list or tuple of str, got {type(seq).__name__}")
        bad = next((x for x in seq if not isinstance(x, str)), None)
        if bad is not None:
            raise TypeError(f"{name} must hold only str, got {type(bad).__name__} {bad!r}")
    if len(ids) != len(texts):
        raise ValueError(f"ids and texts must have the same length, got {len(ids)} and {len(texts)}")
    digest = hashlib.sha256()
    for i, t in zip(ids, texts):
        digest.update(i.encode("utf-8") + b"\x00" + t.encode("utf-8") + b"\x01")
    return digest.hexdigest()


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` without pickles, closing the file before returning."""
    _check_path("path", path)
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise TypeError(f"array must be a numpy array without Python objects, got {type(array).__name__}")
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def load_array(path: Path) -> np.ndarray:
    """``np.load`` without pickles (a damaged file raises ``ValueError``/``EOFError``/``OSError``)."""
    _check_path("path", path)
    return np.load(path, allow_pickle=False)


def _check_path(name: str, path) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"{name} must be a str or Path, got {type(path).__name__}")


def save_json(path: Path, data) -> None:
    """Write ``data`` as JSON (NaN and non-JSON values are refused, not written as invalid JSON)."""
    _check_path("path", path)
    try:
        text = json.dumps(data, indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"data must be JSON-serializable (no NaN): {err}") from None
    Path(path).write_text(text)


def load_json(path: Path):
    _check_path("path", path)
    return json.loads(Path(path).read_text())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _publish_one(staged: Path, final: Path, token: str) -> None:
    """Rename ``staged`` to ``final``, replacing what is there (a file atomically; a folder by moving it aside)."""
    if not staged.is_dir():
        os.replace(staged, final)
        return
    for _ in range(10):
        try:
            os.rename(staged, final)
            return
        except OSError:
            if not final.exists():
                continue  # another process moved it aside between our two calls: try again
            aside = final.with_name(f".{final.name}.{token}.old")
            try:
                os.rename(final, aside)
            except FileNotFoundError:
                continue
            _remove(aside)
    raise OSError(f"could not publish {final}: it kept reappearing while being replaced")


def _check_paths(paths) -> None:
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence) or not paths:
        raise TypeError(f"paths must be a non-empty list of paths, got {type(paths).__name__}")
    for p in paths:
        _check_path("paths entry", p)


def publish(paths: Sequence[Path], write: Callable[[list[Path]], None]) -> None:
    """Write an entry atomically: ``write(staged)`` fills one temporary path per final path (a file or a folder),
    then each is renamed into place in order, so the last path appears last. Temporary paths never outlive
    the call."""
    _check_paths(paths)
    if not callable(write):
        raise TypeError(f"write must be callable (write(staged) fills the staged paths), got {type(write).__name__}")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    paths = [Path(p) for p in paths]
    staged = [p.with_name(f".{p.name}.{token}.tmp") for p in paths]
    for p in paths:
        if not p.parent.is_dir():
            p.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(staged)
        for tmp, final in zip(staged, paths):
            _publish_one(tmp, final, token)
    finally:
        for tmp in staged:
            _remove(tmp)


def load_or_compute(paths: Sequence[Path], *, load: Callable[[], T], compute: Callable[[], T],
                    save: Callable[[T, list[Path]], None], enabled: bool = True, refresh: bool = False,
                    what: str = "cache entry") -> tuple[T, bool]:
    """The one cache rule of the course: load the entry if it is there and sound, else compute and publish it.

    Parameters
    ----------
    paths : sequence of Path
        The entry's files or folders; the entry exists when all of them do. They are published in this
        order, so put the one that marks a complete entry last.
    load : callable
        ``load() -> value``; raises one of :data:`CORRUPT` (e.g. :class:`CacheEntryError`) for a damaged entry.
    compute : callable
        ``compute() -> value``, run when there is no sound entry.
    save : callable
        ``save(value, staged)`` writes the value to the temporary paths ``staged`` (one per path).
    enabled : bool
        False computes and neither reads nor writes the cache.
    refresh : bool
        Compute and publish even where a sound entry exists (retraining on purpose).
    what : str
        The entry's name in warnings.

    Returns
    -------
    (value, cached)
        ``cached`` is True when the value was loaded.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> f = folder / "x.npy"
    >>> args = dict(load=lambda: load_array(f), compute=lambda: np.arange(3), save=lambda v, s: save_array(s[0], v))
    >>> load_or_compute([f], **args)[1], load_or_compute([f], **args)[1]
    (False, True)
    """
    _check_paths(paths)
    for name, fn in (("load", load), ("compute", compute), ("save", save)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    for name, flag in (("enabled", enabled), ("refresh", refresh)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    paths = [Path(p) for p in paths]
    if enabled and not refresh and all(p.exists() for p in paths):
        try:
            return load(), True
        except CORRUPT as err:
            warnings.warn(f"{what} at {paths[-1]} is unreadable or damaged ({type(err).__name__}: {err}); "
                          f"recomputing it", CacheWarning, stacklevel=2)
    value = compute()
    if enabled and not read_only():
        try:
            publish(paths, lambda staged: save(value, staged))
        except OSError as err:
            warnings.warn(f"could not write {what} to {paths[-1].parent} ({err}); the result is used but not "
                          f"cached. Fix: make the folder writable, or set COURSE_CACHE_DIR to one that is",
                          CacheWarning, stacklevel=2)
    return value, False
