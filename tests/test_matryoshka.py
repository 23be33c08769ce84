"""Matryoshka truncation, funnel search and the training command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib.matryoshka import funnel_search, truncate
from course_lib.search import topk


def test_truncate_renormalizes_and_copies():
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    t = truncate(x, 4)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t * np.linalg.norm(x[:, :4], axis=1, keepdims=True), x[:, :4], rtol=1e-5)
    t[0, 0] = 99.0
    assert x[0, 0] != 99.0  # a copy
    np.testing.assert_array_equal(truncate(x, 4, normalize=False), x[:, :4])
    assert truncate(np.zeros((1, 3), np.float32), 2).tolist() == [[0.0, 0.0]]  # no division by zero
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ValueError, match=r"dim must be an int in \[1, 16\]"):
            truncate(x, bad)
    with pytest.raises(TypeError, match="2-D float numpy array"):
        truncate(x.astype(np.int32), 2)


def test_truncate_equals_sentence_transformers_truncate_dim(model):
    texts = ["Matryoshka embeddings nest.", "The first dims carry the most.", "Renormalize after truncation.",
             "A tokenizer splits words into pieces."]
    full = model.encode(texts, normalize_embeddings=True)
    ours = truncate(full, 64)
    theirs = model.encode(texts, normalize_embeddings=True, truncate_dim=64)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert (np.argsort(-(ours @ ours.T), axis=1) == np.argsort(-(theirs @ theirs.T), axis=1)).all()


def test_funnel_search_with_a_full_shortlist_is_exact_and_binary_works():
    rng = np.random.default_rng(1)
    c = rng.standard_normal((300, 128)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    q = c[:10] + 0.1 * rng.standard_normal((10, 128)).astype(np.float32)
    exact_s, exact_i = topk(q, c, 10)
    s, i = funnel_search(q, c, 10, shortlist_dim=16, shortlist=300)
    np.testing.assert_array_equal(i, exact_i)
    _, bi = funnel_search(q, c, 10, shortlist_dim=64, shortlist=100, binary=True)
    assert (bi[:, 0] == np.arange(10)).all()  # each query's own document survives the binary funnel
    with pytest.raises(ValueError, match=r"k must be an int in \[1, min\(shortlist, N\)\] = \[1, 5\]"):
        funnel_search(q, c, 10, shortlist=5)


def _run(cmd, tmp_path):
    env = {**os.environ, "COURSE_SMALL": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.mark.parametrize("launcher", ["python", "torchrun"])
def test_training_command_line_runs_on_one_cpu_process(launcher, tmp_path, model):
    out = tmp_path / "mrl"
    args = ["-m", "course_lib.train", "mrl", "--output", str(out), "--max-steps", "2", "--limit", "16",
            "--batch-size", "4", "--dims", "384,64"]
    cmd = [sys.executable, *args] if launcher == "python" else \
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "1", *args]
    _run(cmd, tmp_path)
    info = json.loads((out / "course_training.json").read_text())
    assert info["pairs"] == 16 and info["losses"] and info["world_size"] == 1
    from course_lib.models import load_model

    tuned = load_model(device="cpu", path=out)
    text = ["a claim about gene expression"]
    a, b = tuned.encode(text), model.encode(text)
    assert a.shape == (1, 384) and not np.allclose(a, b, atol=1e-6)  # two steps of training moved the weights
