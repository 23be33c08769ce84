"""The ColBERT-style model: token vectors equal sentence-transformers', the projection trains, and its training
passes the leakage guard and is keyed on texts."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import colbert as CB
from course_lib.maxsim import maxsim


def test_token_embeddings_equal_sentence_transformers_and_augment_queries(model, tmp_cache):
    texts = ["Late interaction keeps one vector per token.", "MaxSim sums the best match of each query token."]
    emb, mask = CB.token_embeddings(model, texts, is_query=False, show_progress=False)
    st = model.encode(texts, output_value="token_embeddings")
    for row, ref in enumerate(st):
        assert mask[row].sum() == len(ref)
        np.testing.assert_allclose(emb[row, :len(ref)].astype(np.float32), ref.cpu().numpy(), atol=2e-3)  # float16
    q, qm = CB.token_embeddings(model, ["what is maxsim"], is_query=True, show_progress=False)
    assert q.shape[:2] == (1, CB.QUERY_LENGTH) and qm.all()  # padded with [MASK], all attended
    again = CB.token_embeddings(model, ["what is maxsim"], is_query=True, show_progress=False)
    np.testing.assert_array_equal(again[0], q)  # from the cache
    proj, pm = CB.encode_multivector(model, texts, False, projection=np.eye(384, 16, dtype=np.float32))
    norms = np.linalg.norm(proj.astype(np.float32), axis=2)
    np.testing.assert_allclose(norms[pm], 1.0, atol=1e-2)
    np.testing.assert_array_equal(norms[~pm], 0.0)


def test_training_a_projection_lowers_the_loss_and_separates_pairs():
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((40, 32)).astype(np.float32)
    d = topics[:, None, :] + 0.8 * rng.standard_normal((40, 12, 32)).astype(np.float32)  # doc b is about topic b
    q = topics[:, None, :] + 0.8 * rng.standard_normal((40, 4, 32)).astype(np.float32)
    qm, dm = np.ones((40, 4), bool), np.ones((40, 12), bool)
    res = CB.train_projection(q, qm, d, dm, [(i, i) for i in range(40)], dim=8, epochs=30, batch_size=8,
                              show_progress=False)
    assert res["weight"].shape == (32, 8)
    assert np.mean(res["losses"][-5:]) < 0.5 * np.mean(res["losses"][:5])
    qe, de = CB.project(q, qm, res["weight"], np.float32), CB.project(d, dm, res["weight"], np.float32)
    assert (maxsim(qe, qm, de, dm).argmax(axis=1) == np.arange(40)).mean() > 0.9


def test_the_same_seed_trains_the_same_projection_whatever_ran_before():
    """torch.pca_lowrank, the projection's start, draws a random projection from torch's global generator: the
    same seed started elsewhere after other work in the process."""
    import torch

    rng = np.random.default_rng(3)
    q, d = rng.standard_normal((30, 4, 32)).astype(np.float32), rng.standard_normal((30, 10, 32)).astype(np.float32)
    qm, dm = np.ones((30, 4), bool), np.ones((30, 10), bool)
    weights = []
    for draws in (5, 1000):
        torch.manual_seed(11)
        torch.rand(draws)
        weights.append(CB.train_projection(q, qm, d, dm, [(i, i) for i in range(30)], dim=8, epochs=2, batch_size=8,
                                           show_progress=False)["weight"])
    np.testing.assert_array_equal(weights[0], weights[1])


def test_projection_training_passes_the_leakage_guard_and_is_keyed_on_texts(model, tmp_cache):
    import copy

    from course_lib.data import load_beir
    from course_lib.training import LeakageError

    train, test = load_beir("scifact", "train", small=True), load_beir("scifact", "test", small=True)
    qids, pairs, stats = CB.training_pairs(train, test, list(train.corpus))
    assert stats["train_queries_duplicating_test"] == ["1291", "871"]  # SciFact's repeated claims are left out
    assert not {"1291", "871"} & set(qids) and len(pairs) > len(qids) // 2
    leaky = copy.deepcopy(train)
    leaky.queries[qids[0]] = "Prefix. " + next(iter(test.queries.values()))  # a test claim inside a train query
    with pytest.raises(LeakageError, match="test query text"):
        CB.training_pairs(leaky, test, list(train.corpus))

    positives = {d for rel in train.qrels.values() for d in rel}
    doc_ids = [d for d in train.corpus if d in positives][:12]
    rng = np.random.default_rng(0)
    tokens = (rng.standard_normal((len(doc_ids), 20, 384)).astype(np.float16), np.ones((len(doc_ids), 20), bool))
    first = CB.colbert_projection(model, train, test, tokens, doc_ids, epochs=1, dim=8, show_progress=False)
    again = CB.colbert_projection(model, train, test, tokens, doc_ids, epochs=1, dim=8, show_progress=False)
    assert not first["cached"] and again["cached"] and first["weight"].shape == (384, 8)
    np.testing.assert_array_equal(first["weight"], again["weight"])
    assert first["leakage_check"]["test_queries"] == len(test.queries)
    edited = copy.deepcopy(train)
    edited.corpus[doc_ids[0]] = {**edited.corpus[doc_ids[0]], "text": edited.corpus[doc_ids[0]]["text"] + " Edited."}
    assert not CB.colbert_projection(model, edited, test, tokens, doc_ids, epochs=1, dim=8,
                                     show_progress=False)["cached"]  # the key hashes texts, not only ids
