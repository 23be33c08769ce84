"""BM25 as a sparse matrix equals the bm25s library on the same tokens; fusion rules are exact."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest

from course_lib import hybrid, sparse
from course_lib.data import document_text, load_beir


@pytest.fixture(scope="module")
def scifact_small():
    return load_beir("scifact", "test", small=True)


@pytest.mark.parametrize("k1,b", [(0.9, 0.4), (1.5, 0.75)])
def test_bm25_scores_equal_bm25s(scifact_small, k1, b):
    texts = [document_text(d) for d in scifact_small.corpus.values()]
    ours = sparse.BM25Index.build(texts, k1=k1, b=b)
    ref = bm25s.BM25(k1=k1, b=b)  # method "lucene", the same formula
    ref.index([sparse.tokenize(t) for t in texts], show_progress=False)
    queries = list(scifact_small.queries.values())[:80] + ["cancer cancer risk of cancer", "p53 p53"]
    got = ours.score(queries)
    want = np.stack([ref.get_scores(sparse.tokenize(q)) for q in queries])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-6)
    assert (got > 0).any(axis=1).all()


def test_bm25_weight_formula_and_errors():
    w = sparse.bm25_term_weight(tf=np.array([0, 1, 2]), df=10, doc_len=100, avg_doc_len=100, n_docs=1000)
    idf = np.log(1 + 990.5 / 10.5)
    np.testing.assert_allclose(w, idf * np.array([0, 1 / 1.9, 2 / 2.9]))
    with pytest.raises(ValueError, match=r"df must lie in \[1, n_docs=1000\]"):
        sparse.bm25_term_weight(1, 0, 10, 10, 1000)
    with pytest.raises(ValueError, match="texts must not be empty"):
        sparse.BM25Index.build([])
    with pytest.raises(TypeError, match="text must be a str"):
        sparse.tokenize(None)


def test_sparse_matrix_shape_and_query_vectors():
    idx = sparse.BM25Index.build(["a b b", "b c", "d"])
    assert idx.matrix.shape == (3, 4) and idx.matrix.nnz == 5 and idx.nnz_per_doc().tolist() == [2, 2, 1]
    q = idx.encode_queries(["b b zzz"]).toarray()
    assert q[0, idx.vocab["b"]] == 2 and q.sum() == 2  # counts; unknown tokens dropped


def test_rrf_and_convex_by_hand():
    dense = {"q": {"a": 0.9, "b": 0.8, "c": 0.1}}
    bm25 = {"q": {"c": 20.0, "d": 10.0}}
    fused = hybrid.rrf([dense, bm25], k=60)["q"]
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62})
    assert hybrid.rrf([dense], k=0, depth=1)["q"] == {"a": 1.0}
    conv = hybrid.convex(dense, bm25, alpha=0.25)["q"]
    assert conv == pytest.approx({"a": 0.25, "b": 0.25 * 0.875, "c": 0.75, "d": 0.0})
    assert hybrid.convex(dense, bm25, 1.0)["q"]["a"] == 1.0
    with pytest.raises(ValueError, match="alpha must lie in"):
        hybrid.convex(dense, bm25, 1.5)
    with pytest.raises(ValueError, match="runs must hold at least one run"):
        hybrid.rrf([])
