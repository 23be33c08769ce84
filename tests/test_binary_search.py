"""Binary Hamming search and rescoring against the NumPy reference, faiss and sentence-transformers."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from sentence_transformers.util import quantize_embeddings
from sentence_transformers.util.quantization import semantic_search_faiss

from course_lib import quantization as Q
from course_lib.binary import (binary_search, faiss_binary_index, hamming_distances, hamming_topk,
                               hamming_topk_reference, rescore)


def _codes(n, width, seed=0, distinct=None):
    rng = np.random.default_rng(seed)
    if distinct:  # few distinct codes: many exact ties
        return rng.integers(0, 256, (distinct, width), dtype=np.uint8)[rng.integers(0, distinct, n)]
    return rng.integers(0, 256, (n, width), dtype=np.uint8)


@pytest.mark.parametrize("width", [48, 13, 128, 1])
@pytest.mark.parametrize("k", [1, 10, 300])
def test_fast_kernel_equals_the_reference_including_ties(width, k):
    for corpus in (_codes(300, width, 1), _codes(300, width, 2, distinct=7)):
        queries = _codes(37, width, 3)  # 37 > one query block: exercises blocking
        for q in (queries, queries[:1]):  # one query: the selection splits the row across cores instead
            d, i = hamming_topk(q, corpus, k)
            rd, ri = hamming_topk_reference(q, corpus, k)
            np.testing.assert_array_equal(d, rd)
            np.testing.assert_array_equal(i, ri)  # same tie rule: lower index first
            assert d.dtype == np.int32 and i.dtype == np.int64


@pytest.mark.parametrize("width", [48, 128])
def test_distances_equal_faiss_binary_flat(width):
    corpus, queries = _codes(2000, width, 4), _codes(20, width, 5)
    d, i = hamming_topk(queries, corpus, 50)
    fd, fi = faiss_binary_index(corpus).search(queries, 50)
    np.testing.assert_array_equal(d, fd)  # the same sorted distances
    full = hamming_distances(queries, corpus)
    np.testing.assert_array_equal(np.take_along_axis(full, i, axis=1), d)  # our ids have our distances
    np.testing.assert_array_equal(np.take_along_axis(full, fi, axis=1), fd)  # faiss' ids may differ on ties


def test_adversarial_all_codes_equal_and_k_equal_n():
    corpus = np.full((64, 16), 0xAB, np.uint8)
    d, i = hamming_topk(corpus[:2], corpus, 64)
    assert (d == 0).all() and i.tolist() == [list(range(64))] * 2
    d, i = hamming_topk(corpus[:1], corpus, 5)
    assert (d == 0).all() and i.tolist() == [list(range(5))]
    far = np.full((1, 16), 0x54, np.uint8)  # the complement of 0xAB: every bit differs
    assert hamming_topk(far, corpus, 3)[0].tolist() == [[128, 128, 128]]


def test_bad_input_is_named():
    c = _codes(10, 8)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 10\] \(the corpus size\), got 11"):
        hamming_topk(c, c, 11)
    with pytest.raises(ValueError, match="same bytes per code, got 8 and 6"):
        hamming_topk(c, c[:, :6], 1)
    with pytest.raises(TypeError, match="query_codes must be a 2-D uint8 array"):
        hamming_topk(c.astype(np.int8), c, 1)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 5\] \(the shortlist length\)"):
        rescore(np.ones((10, 64), np.float32), np.zeros((10, 5), int), c, 6, precision="ubinary")
    with pytest.raises(ValueError, match="need the ranges"):
        rescore(np.ones((1, 8), np.float32), np.zeros((1, 2), int), c.view(np.int8), 1, precision="int8")
    docs = np.ones((4, 3), np.float32)
    docs[3, 0] = np.nan
    rescore(np.ones((1, 3), np.float32), np.array([[0, 2]]), docs, 1)  # a NaN outside the shortlist is never read
    with pytest.raises(ValueError, match="NaN or inf in a shortlisted row"):
        rescore(np.ones((1, 3), np.float32), np.array([[0, 3]]), docs, 1)
    with pytest.raises(TypeError, match="corpus must be a float array"):
        rescore(np.ones((1, 3), np.float32), np.array([[0]]), np.ones((4, 3), np.int32), 1)


@pytest.fixture(scope="module")
def emb():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 384)).astype(np.float32)
    x = centers[rng.integers(0, 20, 3200)] + 0.7 * rng.standard_normal((3200, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:2800], x[2800:]  # corpus, 400 queries


def test_rescoring_binary_matches_sentence_transformers_on_the_same_shortlist(emb):
    corpus, queries = emb
    codes = Q.quantize_binary(corpus)
    results, _ = semantic_search_faiss(queries, corpus_embeddings=codes, corpus_precision="ubinary",
                                       top_k=10, rescore_multiplier=4)
    _, shortlist = faiss_binary_index(codes).search(Q.quantize_binary(queries), 40)  # ST's shortlist
    _, ours = rescore(queries, shortlist, codes, 10, precision="ubinary")
    np.testing.assert_array_equal(ours, [[r["corpus_id"] for r in row] for row in results])


def test_rescoring_uint8_matches_sentence_transformers_which_dequantizes(emb):
    corpus, queries = emb
    r = Q.calibrate(corpus)
    codes = quantize_embeddings(corpus, "uint8", ranges=r.as_array())
    results, _ = semantic_search_faiss(queries, corpus_embeddings=codes, corpus_precision="uint8",
                                       ranges=r.as_array(), top_k=10, rescore_multiplier=3)
    flat = faiss.IndexFlatIP(384)
    flat.add(codes.astype(np.float32))  # ST's shortlist: raw uint8 codes, inner product
    _, shortlist = flat.search(quantize_embeddings(queries, "uint8", ranges=r.as_array()).astype(np.float32), 30)
    scores, ours = rescore(queries, shortlist, codes, 10, precision="uint8", ranges=r)
    np.testing.assert_array_equal(ours, [[x["corpus_id"] for x in row] for row in results])
    np.testing.assert_allclose(scores, [[x["score"] for x in row] for row in results], atol=1e-5)


def test_binary_search_end_to_end_matches_sentence_transformers_where_the_shortlist_is_untied(emb):
    corpus, queries = emb
    codes = Q.quantize_binary(corpus)
    results, _ = semantic_search_faiss(queries, corpus_embeddings=codes, corpus_precision="ubinary",
                                       top_k=5, rescore_multiplier=4)
    _, ours = binary_search(queries, codes, 5, multiplier=4)
    d = np.sort(hamming_distances(Q.quantize_binary(queries), codes), axis=1)
    untied = d[:, 19] < d[:, 20]  # the 20th and 21st nearest differ: both shortlists are the same set
    assert untied.sum() >= 20
    for row, ok in zip(range(len(queries)), untied):
        if ok:
            assert ours[row].tolist() == [x["corpus_id"] for x in results[row]]


def test_rescoring_recovers_quality_and_float_rescoring_is_exact_with_a_full_shortlist(emb):
    corpus, queries = emb
    codes = Q.quantize_binary(corpus)
    exact = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :10]
    _, full = binary_search(queries, codes, 10, multiplier=280, rescore_corpus=corpus, precision="float32")
    np.testing.assert_array_equal(full, exact)  # shortlist = whole corpus: exact float search
    recall = {}
    for m in (1, 4, 20):
        _, got = binary_search(queries, codes, 10, multiplier=m, rescore_corpus=corpus, precision="float32")
        recall[m] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])
    assert recall[1] < recall[4] < recall[20] and recall[20] > 0.9, recall  # a longer shortlist recovers more


def test_faiss_approximate_indexes_from_course_lib_codes(emb):
    corpus, queries = emb
    codes, qc = Q.quantize_binary(corpus), Q.quantize_binary(queries)
    exact_d, _ = hamming_topk(qc, codes, 10)
    for kind in ("hnsw", "ivf"):
        d, _ = faiss_binary_index(codes, kind, nprobe=16).search(qc, 10)
        assert (d >= exact_d).all()  # never closer than the exact answer
        assert (d[:, 0] == exact_d[:, 0]).mean() > 0.8, kind
    with pytest.raises(ValueError, match="kind must be 'flat', 'hnsw' or 'ivf'"):
        faiss_binary_index(codes, "lsh")
