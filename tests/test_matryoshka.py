"""Matryoshka truncation, funnel search and the training command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib.matryoshka import (MrlRecipe, funnel_index, funnel_search, matryoshka_loss, mrl_model, mrl_recipe,
                                   sts_spearman_by_dim, truncate)
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
    with pytest.raises(TypeError, match="emb must be a float16/float32/float64 array, got dtype int32"):
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
    index = funnel_index(c, 64, binary=True)
    assert index.shape == (300, 8) and index.dtype == np.uint8  # 8 bytes a document
    np.testing.assert_array_equal(funnel_search(q, c, 10, shortlist_dim=64, binary=True, index=index)[1], bi)
    with pytest.raises(ValueError, match=r"index must be funnel_index\(corpus_emb, 64, binary=False\)"):
        funnel_search(q, c, 10, shortlist_dim=64, index=index)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, min\(shortlist, N\)\] = \[1, 5\]"):
        funnel_search(q, c, 10, shortlist=5)


def _run(cmd, tmp_path):
    env = {**os.environ, "COURSE_SMALL": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.mark.slow
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


def test_matryoshka_loss_equals_sentence_transformers(model):
    import torch
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    from course_lib.data import load_beir
    from course_lib.matryoshka import mrl_pairs

    pairs = mrl_pairs(load_beir("scifact", "train", small=True), load_beir("scifact", "test", small=True))[:6]
    queries, docs = [q for q, _ in pairs], [d for _, d in pairs]
    dims, weights = (384, 128, 32), (1.0, 0.5, 2.0)
    theirs_fn = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=list(dims),
                               matryoshka_weights=list(weights))
    model.eval()
    with torch.no_grad():
        theirs = float(theirs_fn([model.preprocess(queries), model.preprocess(docs)], None))
    q, d = model.encode(queries), model.encode(docs)
    assert matryoshka_loss(q, d, dims, weights) == pytest.approx(theirs, rel=1e-4)
    assert matryoshka_loss(q, d, (384,)) < matryoshka_loss(q, d[::-1].copy(), (384,))  # wrong pairs cost more
    with pytest.raises(ValueError, match="one entry per dim"):
        matryoshka_loss(q, d, dims, (1.0,))


def test_sts_by_dim_equals_embedding_similarity_evaluator(model):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from course_lib.data import load_sts

    sts = load_sts("test")
    s1, s2, gold = sts.sentence1[:200], sts.sentence2[:200], sts.score[:200]
    ours = sts_spearman_by_dim(model.encode(s1), model.encode(s2), gold, dims=(384, 32))
    for dim in (384, 32):
        res = EmbeddingSimilarityEvaluator(s1, s2, gold, truncate_dim=dim if dim < 384 else None)(model)
        theirs = next(v for k, v in res.items() if k.endswith("spearman_cosine"))
        assert ours[dim] == pytest.approx(theirs, abs=1e-6), dim
    assert ours[32] < ours[384]  # the base model is not Matryoshka-trained: 32 dims lose rank agreement


@pytest.mark.slow
def test_mrl_model_trains_once_then_loads_from_the_cache(tmp_cache, model):
    recipe = MrlRecipe(epochs=1.0, batch_size=4, max_steps=2, limit=8, dims=(384, 64))
    tuned, info = mrl_model(recipe, device="cpu", small=True, show_progress=False)
    assert not info["cached"] and info["pairs"] == 8 and info["losses"]
    again, info2 = mrl_model(recipe, device="cpu", small=True, show_progress=False)
    assert info2["cached"] and info2["recipe"] == info["recipe"]
    text = ["a claim about gene expression"]
    np.testing.assert_array_equal(again.encode(text), tuned.encode(text))
    assert not np.allclose(again.encode(text), model.encode(text), atol=1e-6)
    assert len(list((tmp_cache / "models").glob("mrl-*"))) == 1  # no .tmp folder left behind


def test_mrl_recipe_scales_with_the_machine():
    from course_lib.config import Config

    def cfg(small, full):
        return Config(device="cuda" if full else "cpu", small=small, full=full, cache_dir=Path("."), seed=3)

    small, cpu, gpu = mrl_recipe(cfg(True, False)), mrl_recipe(cfg(False, False)), mrl_recipe(cfg(False, True))
    assert small.max_steps > 0 and cpu.max_steps == gpu.max_steps == -1
    assert gpu.epochs > cpu.epochs and gpu.batch_size > cpu.batch_size and cpu.seed == 3


def test_training_at_a_shorter_length_cuts_the_training_texts_and_keeps_the_models_length(model):
    import copy

    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from course_lib.training import fit, recipe_key

    class Recording(MultipleNegativesRankingLoss):
        lengths: list[int] = []

        def forward(self, sentence_features, labels=None):
            self.lengths.extend(int(f["input_ids"].shape[1]) for f in sentence_features)
            return super().forward(sentence_features, labels)

    tuned = copy.deepcopy(model)
    long = ["Smoking increases the risk of lung cancer and of heart disease in adults. " * 20 + str(i) for i in range(4)]
    columns = {"anchor": [f"claim {i}" for i in range(4)], "positive": long}
    fit(tuned, columns, Recording(tuned), batch_size=4, max_steps=1, show_progress=False, max_seq_length=32)
    assert max(Recording.lengths) == 32  # the positives were cut at 32 word pieces (untruncated: over 300)
    assert tuned.max_seq_length == model.max_seq_length == 256  # encoding keeps the model's own length
    assert "max_seq_length" not in recipe_key(MrlRecipe())  # the models cached before the field keep their keys
    assert recipe_key(MrlRecipe(max_seq_length=128))["max_seq_length"] == 128
