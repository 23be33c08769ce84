"""Exact top-k: equal to a full sort and to faiss IndexFlatIP, deterministic on ties."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from course_lib.search import run_from_topk, topk


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("k", [1, 7, 100, 500])
def test_topk_equals_full_sort_and_faiss(k):
    rng = np.random.default_rng(k)
    corpus, queries = _unit(rng, 500, 64), _unit(rng, 37, 64)
    scores, idx = topk(queries, corpus, k)
    full = queries @ corpus.T
    ref = np.argsort(-full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(full, ref, axis=1), rtol=1e-6)
    index = faiss.IndexFlatIP(64)
    index.add(corpus)
    f_scores, f_idx = index.search(queries, k)
    np.testing.assert_allclose(scores, f_scores, atol=1e-5)
    assert (idx == f_idx).mean() > 0.99  # ids may differ only where scores tie to float precision


def test_ties_are_broken_by_lower_index_across_blocks(monkeypatch):
    import course_lib.search as search

    monkeypatch.setattr(search, "BLOCK_BYTES", 4 * 50 * 3)  # three queries a block: exercise blocking
    corpus = np.repeat(np.eye(4, dtype=np.float32), [5, 10, 20, 15], axis=0)  # (50, 4), many exact ties
    queries = np.eye(4, dtype=np.float32)[[2, 0, 1, 3, 2, 2, 1]]
    scores, idx = topk(queries, corpus, 12)
    for q, (row_s, row_i) in zip(queries, zip(scores, idx)):
        ref = np.argsort(-(corpus @ q), kind="stable")[:12]
        assert row_i.tolist() == ref.tolist()
        assert (np.diff(row_s) <= 0).all()


def test_k_equal_to_n_returns_everything_sorted():
    corpus = np.zeros((5, 3), dtype=np.float32)  # all equal: pure tie-breaking
    scores, idx = topk(np.ones((2, 3), dtype=np.float32), corpus, 5)
    assert idx.tolist() == [[0, 1, 2, 3, 4]] * 2 and idx.dtype == np.int64 and scores.dtype == np.float32


def test_bad_input_is_named():
    c = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]"):
        topk(c, c, 5)
    with pytest.raises(ValueError, match="same dims, got 2 and 3"):
        topk(np.ones((1, 2), dtype=np.float32), c, 1)
    with pytest.raises(ValueError, match="query_emb contains NaN"):
        topk(np.full((1, 3), np.nan, dtype=np.float32), c, 1)
    for bad in (np.nan, np.inf, -np.inf):
        d = c.copy()
        d[2, 1] = bad
        with pytest.raises(ValueError, match=r"corpus_emb contains NaN or inf: .* the first at row 2"):
            topk(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32), d, 1)  # even where the query's dim is 0
    with pytest.raises(TypeError, match="corpus_emb must be a float16/float32/float64 array, got dtype int64"):
        topk(c, np.ones((4, 3), dtype=np.int64), 1)
    with pytest.raises(ValueError, match="must be 2-D"):
        topk(c[0], c, 1)


def test_run_from_topk_maps_ids_and_checks_shapes():
    run = run_from_topk(np.array([[0.9, 0.1], [0.5, 0.4]]), np.array([[2, 0], [1, 2]]), ["qa", "qb"],
                        ["x", "y", "z"])
    assert run == {"qa": {"z": 0.9, "x": 0.1}, "qb": {"y": 0.5, "z": 0.4}}
    with pytest.raises(ValueError, match="indices must lie in"):
        run_from_topk(np.array([[0.9]]), np.array([[3]]), ["q"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="one id per row"):
        run_from_topk(np.array([[0.9]]), np.array([[0]]), ["q", "r"], ["x"])


def test_hamming_distances_equal_faiss_binary_flat():
    from course_lib.binary import hamming_distances

    rng = np.random.default_rng(3)
    corpus = rng.integers(0, 256, (300, 48), dtype=np.uint8)
    queries = rng.integers(0, 256, (9, 48), dtype=np.uint8)
    d = hamming_distances(queries, corpus)
    bits = np.unpackbits(queries, axis=1)[:, None, :] != np.unpackbits(corpus, axis=1)[None, :, :]
    np.testing.assert_array_equal(d, bits.sum(axis=2))
    index = faiss.IndexBinaryFlat(48 * 8)
    index.add(corpus)
    f_d, f_i = index.search(queries, 300)
    np.testing.assert_array_equal(np.sort(d, axis=1), f_d)  # the same distance multiset per query
    np.testing.assert_array_equal(np.take_along_axis(d, f_i, axis=1), f_d)
    with pytest.raises(ValueError, match="same bytes per code, got 48 and 47"):
        hamming_distances(queries, corpus[:, :47])
