"""course_lib.strategies: the hybrid teacher and its MarginMSE margins (against course_lib.hybrid and
sentence-transformers' MarginMSELoss), LoRA through peft (frozen backbone, merge = unmerged), the linear adapter,
and the distillation table built from SciFact train (small mode)."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import hybrid
from course_lib import strategies as S

RNG = np.random.default_rng(7)


def test_hybrid_teacher_equals_the_course_convex_combination():
    """On candidates that both runs score, the teacher's row is hybrid.convex of the two runs."""
    dense, sparse = RNG.random((4, 9)), 30 * RNG.random((4, 9))
    h = S.hybrid_teacher(dense, sparse, alpha=0.3)
    docs = [f"d{j}" for j in range(9)]
    for i in range(4):
        fused = hybrid.convex({"q": dict(zip(docs, dense[i]))}, {"q": dict(zip(docs, sparse[i]))}, 0.3)["q"]
        np.testing.assert_allclose(h[i], [fused[d] for d in docs], rtol=1e-6)


def test_hybrid_teacher_constant_row_is_one():
    h = S.hybrid_teacher(np.ones((1, 3)), np.array([[1.0, 2.0, 3.0]]), alpha=0.5)
    np.testing.assert_allclose(h[0], [0.5, 0.75, 1.0])


def test_teacher_margins_against_a_loop():
    dense, sparse = RNG.standard_normal((5, 12)), 10 * RNG.random((5, 12))
    pos = RNG.integers(0, 12, 5)
    neg = RNG.integers(0, 12, (5, 3))
    got = S.teacher_margins(dense, sparse, pos, neg, alpha=0.7)
    h = S.hybrid_teacher(dense, sparse, 0.7)
    want = [[h[i, pos[i]] - h[i, neg[i, j]] for j in range(3)] for i in range(5)]
    assert got.shape == (5, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.all(S.teacher_margins(dense, sparse, pos, pos[:, None]) == 0)  # a document against itself


@pytest.mark.parametrize("bad, name", [((np.array([0, 1]), np.array([[1], [2]]), 3), "positive"),
                                        ((np.array([0, 12]), np.array([[1], [2]]), None), "positive"),
                                        ((np.array([0, 1]), np.array([1, 2]), None), "negatives"),
                                        ((np.array([0, 1]), np.array([[1], [2]]).astype(float), None), "negatives")])
def test_teacher_margins_refuses_bad_columns(bad, name):
    pos, neg, rows = bad
    dense, sparse = RNG.random((rows or 2, 12)), RNG.random((rows or 2, 12))
    with pytest.raises((ValueError, TypeError), match=name):
        S.teacher_margins(dense, sparse, pos, neg)


def test_margins_are_the_labels_sentence_transformers_marginmse_reads():
    """MarginMSELoss on (query, positive, negative) with our label equals the mean of (s(q,p) - s(q,n) - label)^2
    computed from the model's own embeddings: the label is positive minus negative, on the cosine scale."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

    from course_lib.models import load_model

    model = load_model(device="cpu")
    q = ["Aspirin lowers fever.", "Zinc shortens colds."]
    p = ["Aspirin reduced body temperature in febrile patients.", "Zinc lozenges cut the duration of the common cold."]
    n = ["Vitamin D supplements and bone density.", "Statins lower cholesterol."]
    labels = S.teacher_margins(np.array([[0.6, 0.2], [0.5, 0.4]]), np.array([[9.0, 1.0], [3.0, 4.0]]),
                               np.array([0, 0]), np.array([[1], [1]]))[:, 0]  # (2,)
    emb = [model.encode(x, convert_to_numpy=True) for x in (q, p, n)]
    want = np.mean(((emb[0] * emb[1]).sum(1) - (emb[0] * emb[2]).sum(1) - labels) ** 2)
    loss = MarginMSELoss(model)
    model.eval()
    feats = [model.tokenize(x) for x in (q, p, n)]
    with torch.no_grad():
        got = float(loss(feats, torch.tensor(labels)))
    assert got == pytest.approx(float(want), rel=1e-4)


def test_lora_freezes_the_backbone_and_merging_changes_nothing():
    import torch

    from course_lib.models import load_model

    model = load_model(device="cpu")
    texts = ["A claim about aspirin.", "An abstract on zinc and colds."]
    before = model.encode(texts, convert_to_numpy=True)
    trainable = S.add_lora(model, rank=4, lora_alpha=8, lora_dropout=0.0)
    # 6 layers x (q, k, v, attention out 384x384; intermediate 384->1536; output 1536->384), r x (in + out) each
    assert trainable == 6 * 4 * (4 * (384 + 384) + 2 * (384 + 1536))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    np.testing.assert_allclose(model.encode(texts, convert_to_numpy=True), before, atol=1e-6)  # B = 0 at start
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    model.eval()
    unmerged = model.encode(texts, convert_to_numpy=True)
    state = S.lora_state(model)
    assert sum(v.numel() for v in state.values()) == trainable
    assert not np.allclose(unmerged, before, atol=1e-3)
    S.merge_lora(model)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    np.testing.assert_allclose(model.encode(texts, convert_to_numpy=True), unmerged, atol=2e-5)


def test_lora_adapters_are_drawn_from_the_seed_whatever_ran_before():
    """peft draws the A matrices from torch's global generator: without the seed, the same recipe trained after
    other work in the same process started from other adapters (a LoRA seed 0 retrained in notebook 06 scored
    0.6848 where the benchmark's scored 0.6734)."""
    import torch

    from course_lib.models import load_model

    def lora_a(seed, draws):
        torch.manual_seed(123)
        torch.rand(draws)  # whatever ran before in the process
        model = load_model(device="cpu")
        S.add_lora(model, rank=2, lora_alpha=4, lora_dropout=0.0, targets=("query",), seed=seed)
        after = torch.rand(1)  # the caller's generator goes on as if add_lora had drawn nothing
        torch.manual_seed(123)
        torch.rand(draws)
        assert torch.equal(after, torch.rand(1))
        return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_A" in n])

    first = lora_a(0, 5)
    assert torch.equal(first, lora_a(0, 1000))
    assert not torch.equal(first, lora_a(1, 5))


def test_linear_adapter_learns_and_sides():
    d = 16
    q = RNG.standard_normal((64, d)).astype(np.float32)
    docs = (q @ np.linalg.qr(RNG.standard_normal((d, d)))[0]).astype(np.float32)  # positives: a rotation of the query
    first = S.train_linear_adapter(q, docs, steps=1, learning_rate=1e-9, batch_size=64)
    ad = S.train_linear_adapter(q, docs, steps=300, learning_rate=1e-2, batch_size=64, identity_weight=0.0)
    assert ad["losses"][-1] < 0.5 * first["losses"][0]
    hits = (S.apply_linear_adapter(q, ad) @ S.apply_linear_adapter(docs, {"weight": np.eye(d, dtype=np.float32)}).T
            ).argmax(1)
    assert (hits == np.arange(64)).mean() > 0.9
    both = S.train_linear_adapter(q, docs, docs[::-1].copy(), side="both", steps=5)
    assert both["side"] == "both" and both["weight"].shape == (d, d)
    np.testing.assert_allclose(np.linalg.norm(S.apply_linear_adapter(q, both), axis=1), 1, rtol=1e-5)


def test_linear_adapter_identity_weight_pulls_to_identity():
    q = RNG.standard_normal((32, 8)).astype(np.float32)
    docs = RNG.standard_normal((32, 8)).astype(np.float32)
    free = S.train_linear_adapter(q, docs, steps=100, learning_rate=1e-2, identity_weight=0.0)
    held = S.train_linear_adapter(q, docs, steps=100, learning_rate=1e-2, identity_weight=10.0)
    assert np.abs(held["weight"] - np.eye(8)).max() < 0.1 * np.abs(free["weight"] - np.eye(8)).max()


def test_distill_columns_small_mode():
    """The MarginMSE table from SciFact train (small mode): the guard ran, labels are the teacher's margins."""
    from course_lib import sparse
    from course_lib.data import document_text, load_beir
    from course_lib.embed import encode_corpus, encode_queries
    from course_lib.models import load_model

    train, test = load_beir("scifact", "train", small=True), load_beir("scifact", "test", small=True)
    model = load_model(device="cpu")
    recipe = S.DistillRecipe(limit=24)
    cols, stats = S.distill_columns(model, train, test, recipe, show_progress=False)
    assert set(cols) == {"anchor", "positive", "negative_1", "label"}
    assert stats["rows"] == len(cols["label"]) == len(cols["anchor"]) and stats["rows"] + stats["dropped"] == 24
    assert stats["leakage_check"]["test_queries"] == len(test.queries)
    assert not set(cols["anchor"]) & set(test.queries.values())
    # recompute one row's label from scratch: the teacher over the union of the two top-100 lists
    doc_ids = list(train.corpus)
    texts = [document_text(train.corpus[d]) for d in doc_ids]
    qtext = cols["anchor"][0]
    qid = next(q for q, t in train.queries.items() if t == qtext)
    dense = (encode_queries(model, {qid: qtext}) @ encode_corpus(model, train.corpus, show_progress=False).T)[0]
    bm = sparse.BM25Index.build(texts).score([qtext])[0]
    cand = np.union1d(np.argsort(-dense, kind="stable")[:100], np.argsort(-bm, kind="stable")[:100])
    h = S.hybrid_teacher(dense[None, cand], bm[None, cand].astype(np.float32))[0]
    col = {texts[c]: j for j, c in enumerate(cand)}
    assert cols["label"][0] == pytest.approx(float(h[col[cols["positive"][0]]] - h[col[cols["negative_1"][0]]]),
                                             abs=1e-6)
    positives = {document_text(train.corpus[d]) for d, r in train.qrels[qid].items() if r > 0}
    assert cols["negative_1"][0] not in positives


def test_distill_columns_from_titles_needs_no_labels():
    """queries="titles": each anchor is a corpus title, its positive that title's document; no train claim."""
    from course_lib.data import document_text, load_beir
    from course_lib.models import load_model

    train, test = load_beir("scifact", "train", small=True), load_beir("scifact", "test", small=True)
    recipe = S.DistillRecipe(queries="titles", title_docs=12)
    cols, stats = S.distill_columns(load_model(device="cpu"), train, test, recipe, show_progress=False)
    assert stats["pairs"] == 12 and stats["rows"] + stats["dropped"] == 12 and stats["rows"] >= 10
    by_title = {str(d["title"]).strip(): document_text(d) for d in train.corpus.values()}
    assert all(by_title[a] == p for a, p in zip(cols["anchor"], cols["positive"]))
    assert not set(cols["anchor"]) & set(train.queries.values())
    assert all(n != p for n, p in zip(cols["negative_1"], cols["positive"]))
    again, _ = S.distill_columns(load_model(device="cpu"), train, test, recipe, show_progress=False)
    assert again["anchor"] == cols["anchor"]  # the sample is seeded


def test_recipes():
    from types import SimpleNamespace as NS

    small = NS(small=True, full=False, seed=3)
    assert S.lora_recipe(small).max_steps == 6 and S.lora_recipe(small).seed == 3
    assert S.distill_recipe(small, seed=5).seed == 5
    cpu = NS(small=False, full=False, seed=0)
    assert S.lora_recipe(cpu).epochs == 2.0 and S.lora_recipe(cpu).batch_size == 32
    with pytest.raises(ValueError, match="rank"):
        S.LoraRecipe(rank=0)
    with pytest.raises(ValueError, match="alpha"):
        S.DistillRecipe(alpha=1.5)


def test_plot_strategies_draws_one_point_per_strategy_with_its_seed_range():
    import matplotlib

    matplotlib.use("Agg")
    per_seed = [{"strategy": "base", "unseen nDCG@10": 0.6}, {"strategy": "a", "unseen nDCG@10": 0.61},
                {"strategy": "a", "unseen nDCG@10": 0.65}, {"strategy": "b", "unseen nDCG@10": 0.5}]
    rows = [{"strategy": "base", "unseen nDCG@10": 0.6, "train_s": 0.0, "seeds": 1},
            {"strategy": "a", "unseen nDCG@10": 0.63, "train_s": 2.0, "seeds": 2},
            {"strategy": "b", "unseen nDCG@10": 0.5, "train_s": 900.0, "seeds": 1}]
    ax = S.plot_strategies({"rows": rows, "per_seed": per_seed, "unseen_queries": 104})
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["base model", "base + 2 points", "a (2 seeds)", "b (1 seed)"]
    assert [round(line.get_ydata()[0], 2) for line in ax.lines if line.get_linestyle() in ("-", "--")
            and len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]][-2:] == [0.6, 0.62]
    bars = list(ax.containers)
    assert len(bars) == 2
    seg = bars[0].lines[2][0].get_segments()[0]  # the error bar of "a": from its lowest to its highest seed
    assert (round(seg[0][1], 2), round(seg[1][1], 2)) == (0.61, 0.65)
