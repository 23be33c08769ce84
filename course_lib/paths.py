"""Where the course keeps its data and caches.

- data: ``$COURSE_DATA_DIR/<name>`` first, then ``DATA_ROOT/<name>`` (filled by ``make data``);
- caches (embeddings, trained models): ``$COURSE_CACHE_DIR``, else ``CACHE_ROOT`` (see :mod:`course_lib.cache`);
- the data sets' sha256 manifest ships inside the package (``course_lib/manifest.json``).

``DATA_ROOT`` and ``CACHE_ROOT`` are ``<clone>/data`` and ``<clone>/.cache`` when the package runs from a clone
of the course (``make setup`` and the Colab and Binder set-ups install it editable), and per-user folders
otherwise (``pip install`` of the package alone): ``$XDG_DATA_HOME/embeddings-course/data`` (default
``~/.local/share/...``) and ``$XDG_CACHE_HOME/embeddings-course`` (default ``~/.cache/...``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
MANIFEST_PATH = PACKAGE_ROOT / "manifest.json"
APP_NAME = "embeddings-course"


def in_clone(root: Path = REPO_ROOT) -> bool:
    """True when ``root`` is a clone of the course (its pyproject.toml and data/README.md sit beside the package).

    >>> in_clone(Path("/nonexistent"))
    False
    """
    if not isinstance(root, (str, os.PathLike)) or not str(root):
        raise TypeError(f"root must be a str or Path (a folder), got {root!r}")
    root = Path(root)
    return (root / "pyproject.toml").is_file() and (root / "data" / "README.md").is_file()


def _user_dir(xdg_var: str, default: str) -> Path:
    base = os.environ.get(xdg_var) or str(Path.home() / default)
    return Path(base) / APP_NAME


_CLONE = in_clone()
DATA_ROOT = REPO_ROOT / "data" if _CLONE else _user_dir("XDG_DATA_HOME", ".local/share") / "data"
CACHE_ROOT = REPO_ROOT / ".cache" if _CLONE else _user_dir("XDG_CACHE_HOME", ".cache")


def env_flag(name: str) -> bool | None:
    """Read a boolean environment variable: 1/true/yes/on, 0/false/no/off, or unset (None)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str (an environment variable), got {name!r}")
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"environment variable {name} must be 1/0/true/false/yes/no/on/off, got {value!r}")


def small_mode() -> bool:
    """True when ``COURSE_SMALL`` is set to a true value (see README, 'Small mode')."""
    return bool(env_flag("COURSE_SMALL"))
