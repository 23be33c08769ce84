"""Fine-tuning: train pairs only, the leakage guard, hard-negative mining against sentence-transformers, training."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import finetune as F
from course_lib import training as T
from course_lib.data import load_beir


@pytest.fixture(scope="module")
def train():
    return load_beir("scifact", "train", small=True)


@pytest.fixture(scope="module")
def test_ds():
    return load_beir("scifact", "test", small=True)


def test_examples_come_from_train_qrels_only(train, test_ds):
    ex = T.train_examples(train)
    assert len(ex) == sum(1 for rel in train.qrels.values() for r in rel.values() if r > 0)
    assert all(train.qrels[e.query_id][e.doc_id] > 0 and e.query == train.queries[e.query_id] for e in ex)
    with pytest.raises(ValueError, match="must come from the train split, got 'test'"):
        T.train_examples(test_ds)


def test_leakage_guard_catches_ids_and_texts(train, test_ds):
    raw = T.train_examples(train)
    with pytest.raises(T.LeakageError, match=r"2 test query text\(s\) found in the training data, e.g. test query '870'"):
        T.check_no_leakage([e.query_id for e in raw], [e.query for e in raw], test_ds)  # SciFact's own duplicates
    assert T.duplicate_queries(train, test_ds) == {"871": "870", "1291": "1292"}
    ex = T.train_examples(train, test_ds)
    assert len(raw) - len(ex) == sum(1 for e in raw if e.query_id in ("871", "1291")) > 0
    texts = [e.query for e in ex] + [e.document for e in ex]
    stats = T.check_no_leakage([e.query_id for e in ex], texts, test_ds)
    assert stats["test_queries"] == len(test_ds.queries)
    tid, ttext = next(iter(test_ds.queries.items()))
    with pytest.raises(T.LeakageError, match=rf"1 test query id\(s\) are in the training data, e.g. '{tid}'"):
        T.check_no_leakage([e.query_id for e in ex] + [tid], texts, test_ds)
    padded = "  " + ttext.upper().replace(" ", "   ") + " and more words"
    with pytest.raises(T.LeakageError, match=rf"test query '{tid}'"):
        T.check_no_leakage([e.query_id for e in ex], texts + [padded], test_ds)  # case, spacing, inside a text


def test_every_training_starts_from_guarded_examples(train, test_ds):
    """MRL (05), fine-tuning (06) and the ColBERT projection (04) all take their pairs from guarded_examples."""
    import copy

    from course_lib.matryoshka import mrl_pairs

    ex, stats = T.guarded_examples(train, test_ds)
    assert stats["train_queries_duplicating_test"] == ["1291", "871"] and stats["test_queries"] == len(test_ds.queries)
    assert [(e.query, e.document) for e in ex] == mrl_pairs(train, test_ds)
    with pytest.raises(ValueError, match="test_ds is required"):
        T.guarded_examples(train, None)
    leaky = copy.deepcopy(train)
    first = ex[0]
    leaky.corpus[first.doc_id] = {"title": "", "text": "Background. " + next(iter(test_ds.queries.values()))}
    with pytest.raises(T.LeakageError, match="test query text"):  # a test claim inside a training document
        mrl_pairs(leaky, test_ds)


@pytest.mark.slow
def test_mining_equals_sentence_transformers(model, train, tmp_path):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from course_lib.data import document_text

    ex = T.train_examples(train)[:40]
    docs = [document_text(d) for d in list(train.corpus.values())[:600]]
    data = Dataset.from_dict({"anchor": [e.query for e in ex], "positive": [e.document for e in ex]})
    corpus = list(dict.fromkeys(docs + [e.document for e in ex]))  # the corpus sentence-transformers builds
    queries = list(dict.fromkeys(e.query for e in ex))
    c_emb = model.encode(corpus, batch_size=32, normalize_embeddings=True)
    q_emb = model.encode(queries, batch_size=32, normalize_embeddings=True)
    row = {t: i for i, t in enumerate(corpus)}
    positives = [[row[e.document] for e in ex if e.query == q] for q in queries]
    for settings in [dict(num_negatives=3), dict(num_negatives=2, range_min=5, range_max=30),
                     dict(num_negatives=3, range_max=40, relative_margin=0.05),
                     dict(num_negatives=1, range_max=20, absolute_margin=0.02)]:
        theirs = mine_hard_negatives(data, model, corpus=docs, output_format="n-tuple", batch_size=32,
                                     verbose=False, cache_folder=str(tmp_path), **settings)  # encodes once
        idx, scores = F.mine_hard_negatives(q_emb, c_emb, positives, **settings)
        ours = {}
        for q, (ii, ss) in zip(queries, zip(idx, scores)):
            if (ii >= 0).all():
                ours[q] = [corpus[i] for i in ii]
            assert not set(ii[ii >= 0]) & set(positives[queries.index(q)])  # never a positive
            assert np.all(np.diff(ss[np.isfinite(ss)]) <= 0)  # hardest first
        negs = [c for c in theirs.column_names if c.startswith("negative_")]
        theirs_by_q = {r["anchor"]: [r[c] for c in negs] for r in theirs}
        assert theirs_by_q == ours, settings
    idx, scores = F.mine_hard_negatives(q_emb, c_emb, positives, 3, relative_margin=0.0)
    lowest_positive = np.array([min(q_emb[r] @ c_emb[p] for p in pos) for r, pos in enumerate(positives)])
    assert (scores[idx >= 0] <= np.repeat(lowest_positive, 3).reshape(idx.shape)[idx >= 0]).all()
    with pytest.raises(ValueError, match="non-empty list of corpus rows"):
        F.mine_hard_negatives(q_emb, c_emb, positives[:-1])
    with pytest.raises(ValueError, match="cannot mine 5 negatives from ranks 0..3"):
        F.mine_hard_negatives(q_emb, c_emb, positives, 5, range_max=3)


def test_margin_filter_drops_likely_false_negatives():
    q = np.array([[1.0, 0.0]], np.float32)
    angles = np.array([0.0, 0.1, 0.2, 0.6, 0.9])  # doc 0 is the positive; doc 1 is nearly as close
    c = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    idx, _ = F.mine_hard_negatives(q, c, [[0]], num_negatives=2, range_max=4)
    assert idx.tolist() == [[1, 2]]
    idx, _ = F.mine_hard_negatives(q, c, [[0]], num_negatives=2, range_max=4, relative_margin=0.05)
    assert idx.tolist() == [[3, 4]]  # cos 0.995 and 0.980 are within 5% of the positive's 1.0
    idx, s = F.mine_hard_negatives(q, c, [[0]], num_negatives=2, range_max=4, absolute_margin=0.5)
    assert idx.tolist() == [[-1, -1]] and np.isinf(s).all()  # nothing is 0.5 below the positive


@pytest.mark.slow
def test_training_columns_and_cached_training(tmp_cache, train, model):
    from course_lib.config import Config

    small = F.finetune_recipe(Config("cpu", True, False, tmp_cache, 0), "filtered")
    cols, stats = F.training_columns(model, train, load_beir("scifact", "test", small=True), small,
                                     show_progress=False)
    assert list(cols) == ["anchor", "positive", "negative_1"] and stats["rows"] + stats["dropped"] == 96
    assert stats["train_queries_duplicating_test"] == ["1291", "871"]
    assert all(n != p for n, p in zip(cols["negative_1"], cols["positive"]))
    assert stats["leakage_check"]["train_queries"] > 0
    recipe = F.FinetuneRecipe(negatives="mined", batch_size=4, max_steps=2, limit=8, loss="cached_mnrl",
                              mini_batch_size=2)
    tuned, info = F.finetuned_model(recipe, device="cpu", small=True, show_progress=False)
    assert not info["cached"] and info["rows"] == 8 and info["losses"]
    again, info2 = F.finetuned_model(recipe, device="cpu", small=True, show_progress=False)
    assert info2["cached"]
    text = ["a claim about gene expression"]
    np.testing.assert_array_equal(again.encode(text), tuned.encode(text))
    assert not np.allclose(tuned.encode(text), model.encode(text), atol=1e-6)
    with pytest.raises(ValueError, match="loss must be 'mnrl' or 'cached_mnrl'"):
        F.make_loss(model, "triplet")


def test_cached_mnrl_gives_the_loss_and_gradients_of_mnrl(train):
    from course_lib.models import load_model

    model = load_model(device="cpu")
    model.eval()  # no dropout: both passes see the same network
    ex = T.train_examples(train)[:8]
    grads = {}
    for name, mini in [("mnrl", 16), ("cached_mnrl", 3)]:  # 3 does not divide 8: a ragged last mini-batch
        model.zero_grad()
        docs = [e.document[:400] for e in ex]  # the loss does not care about length; short texts keep it quick
        feats = [model.preprocess([e.query for e in ex]), model.preprocess(docs)]
        loss = F.make_loss(model, name, mini_batch_size=mini)(feats, None)
        loss.backward()
        w = next(p for n, p in model.named_parameters() if n.endswith("query.weight"))
        grads[name] = (float(loss.detach()), w.grad.detach().clone())
    assert grads["cached_mnrl"][0] == pytest.approx(grads["mnrl"][0], rel=1e-5)
    assert grads["mnrl"][1].abs().sum() > 0
    np.testing.assert_allclose(grads["cached_mnrl"][1].numpy(), grads["mnrl"][1].numpy(), rtol=1e-3, atol=1e-6)
