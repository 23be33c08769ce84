"""Where the course keeps its data and caches.

- data: ``$COURSE_DATA_DIR/<name>`` first, then ``<repo>/data/<name>`` (filled by ``make data``);
- caches (embeddings, trained models): ``$COURSE_CACHE_DIR``, else ``<repo>/.cache`` (see :mod:`course_lib.cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "data"


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
