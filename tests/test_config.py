from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

import course_lib
from course_lib.config import pick_device


def test_setup_seeds_python_numpy_and_torch():
    course_lib.setup(seed=123, verbose=False)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    course_lib.setup(seed=123, verbose=False)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    course_lib.setup(seed=124, verbose=False)
    c = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert all(x != y for x, y in zip(a, c))


def test_setup_picks_cuda_then_mps_then_cpu_and_says_so(capsys):
    cfg = course_lib.setup(seed=0, small=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert cfg.device == expected == pick_device()[0]
    assert f"device={expected}" in capsys.readouterr().out
    assert cfg.full == (expected == "cuda")


def test_apple_mps_runs_the_cpu_recipes_on_its_device(monkeypatch, capsys):
    monkeypatch.setattr(course_lib.config, "pick_device", lambda: ("mps", "Apple GPU (MPS)"))
    cfg = course_lib.setup(seed=0, small=False)
    assert cfg.device == "mps" and not cfg.full
    assert "mode=standard (the CPU recipes on mps)" in capsys.readouterr().out
    monkeypatch.setattr(course_lib.config, "pick_device", lambda: ("cuda", "NVIDIA GPU"))
    assert course_lib.setup(seed=0, small=False, verbose=False).full


def test_setup_reads_course_small_and_goes_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_SMALL", "1")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cfg = course_lib.setup(seed=0, verbose=False)
    assert cfg.small and not cfg.full
    assert cfg.cache_dir == tmp_path / "c" and cfg.cache_dir.is_dir()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("COURSE_SMALL", "0")
    assert not course_lib.setup(seed=0, verbose=False).small
    assert course_lib.setup(seed=0, small=True, verbose=False).small


def test_setup_rejects_bad_values(monkeypatch):
    monkeypatch.setenv("COURSE_SMALL", "maybe")
    with pytest.raises(ValueError, match="COURSE_SMALL"):
        course_lib.setup(seed=0, verbose=False)
    monkeypatch.delenv("COURSE_SMALL")
    with pytest.raises(TypeError, match="seed"):
        course_lib.setup(seed="0", verbose=False)
