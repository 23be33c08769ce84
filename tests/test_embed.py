"""The embedding cache: right values, keyed on weights, texts and settings, fast to reload, never corrupt."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from course_lib import embed

DOCS = {
    "d1": {"title": "Aspirin", "text": "Aspirin lowers the risk of colorectal cancer."},
    "d2": {"title": "", "text": "Vitamin D deficiency is common in winter."},
    "d3": {"title": "Sleep", "text": "Short sleep is associated with obesity in children."},
}


def test_encode_corpus_returns_normalized_float32_equal_to_sentence_transformers(model, tmp_cache):
    emb = embed.encode_corpus(model, DOCS, show_progress=False)
    assert emb.dtype == np.float32 and emb.shape == (3, 384) and emb.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    texts = ["Aspirin Aspirin lowers the risk of colorectal cancer.", "Vitamin D deficiency is common in winter.",
             "Sleep Short sleep is associated with obesity in children."]
    np.testing.assert_allclose(emb, model.encode(texts, convert_to_numpy=True), atol=1e-5)


def test_second_call_comes_from_the_cache(model, tmp_cache, monkeypatch):
    first = embed.encode_corpus(model, DOCS, show_progress=False)
    monkeypatch.setattr(model, "encode", lambda *a, **k: pytest.fail("encoded again instead of using the cache"))
    second = embed.encode_corpus(model, DOCS, show_progress=False)
    np.testing.assert_array_equal(first, second)
    info = embed.cache_info(model, DOCS)
    assert info["n"] == 3 and info["dim"] == 384 and info["encode_seconds"] > 0


def test_cache_key_changes_with_texts_settings_and_weights(model, tmp_cache):
    embed.encode_corpus(model, DOCS, show_progress=False)
    keys = {p.name for p in (tmp_cache / "embeddings").glob("*.npy")}
    edited = {**DOCS, "d2": {"title": "", "text": "Vitamin D deficiency is rare in summer."}}
    embed.encode_corpus(model, edited, show_progress=False)
    embed.encode_corpus(model, DOCS, fields=("text",), show_progress=False)
    embed.encode_queries(model, {k: v["text"] for k, v in DOCS.items()})
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        next(tuned.parameters()).add_(1e-3)
    embed.encode_corpus(tuned, DOCS, show_progress=False)
    short = copy.deepcopy(model)
    embed.encode_corpus(short, DOCS, max_length=8, show_progress=False)
    assert len({p.name for p in (tmp_cache / "embeddings").glob("*.npy")} - keys) == 5


def test_a_write_killed_midway_leaves_no_cache_file(model, tmp_cache, monkeypatch):
    def crash(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(embed.np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        embed.encode_corpus(model, DOCS, show_progress=False)
    assert list((tmp_cache / "embeddings").glob("*.npy")) == []
    assert [p.name for p in (tmp_cache / "embeddings").iterdir() if p.suffix != ".json"] == []


def test_an_unreadable_cache_file_is_recomputed(model, tmp_cache):
    good = embed.encode_corpus(model, DOCS, show_progress=False)
    (path,) = (tmp_cache / "embeddings").glob("*.npy")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        again = embed.encode_corpus(model, DOCS, show_progress=False)
    np.testing.assert_allclose(again, good, atol=1e-6)


def test_bad_input_is_named(model, tmp_cache):
    with pytest.raises(ValueError, match="texts must not be empty"):
        embed.encode_corpus(model, {}, show_progress=False)
    with pytest.raises(TypeError, match="texts must be a dict"):
        embed.encode_corpus(model, "one string", show_progress=False)
    with pytest.raises(TypeError, match="item 'd1' must be a str or a dict"):
        embed.encode_corpus(model, {"d1": 3}, show_progress=False)
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        embed.encode_corpus(model, DOCS, max_length=0, show_progress=False)


def test_default_batch_size_scales_with_the_device():
    from types import SimpleNamespace

    import torch

    from course_lib.embed import default_batch_size

    assert default_batch_size(SimpleNamespace(device=torch.device("cpu"))) == 64
    assert default_batch_size(SimpleNamespace(device=torch.device("cuda", 0))) == 256
    assert default_batch_size(SimpleNamespace(device=torch.device("mps")), cpu=32, accelerator=128) == 128


def test_max_length_applies_to_the_call_and_leaves_the_model_as_it_was(model, tmp_cache):
    before = model.max_seq_length
    short = embed.encode_corpus(model, DOCS, max_length=8, show_progress=False)
    assert model.max_seq_length == before == 256
    full = embed.encode_corpus(model, DOCS, show_progress=False)
    assert not np.allclose(short, full, atol=1e-3)  # the cut was applied to that call only
    np.testing.assert_allclose(full, model.encode([embed.as_texts(DOCS, ("title", "text"))[1][i] for i in range(3)]),
                               atol=1e-5)
