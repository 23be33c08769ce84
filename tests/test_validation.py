"""The input contract (course_lib.validation), and one test per bug of issue 16's sweep that it fixed.

The broad sweep over every public function is tests/test_bad_input.py; these pin the named bugs one by one.
"""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import binary, eval as ceval, frontier, hybrid, matryoshka, maxsim, metrics, quantization as Q, search
from course_lib import sparse, training, validation as V
from course_lib.compression import Retrieval

RNG = np.random.default_rng(0)


# --- the rules themselves -----------------------------------------------------------------------

def test_k_rule_is_the_same_everywhere():
    c = RNG.standard_normal((5, 4)).astype(np.float32)
    codes = np.packbits(c > 0, axis=1)
    tok = RNG.standard_normal((5, 3, 4)).astype(np.float32)
    calls = {"topk": lambda k: search.topk(c, c, k), "topk_scores": lambda k: search.topk_scores(c @ c.T, k),
             "hamming_topk": lambda k: binary.hamming_topk(codes, codes, k),
             "hamming_topk_reference": lambda k: binary.hamming_topk_reference(codes, codes, k),
             "binary_search": lambda k: binary.binary_search(c, codes, k),
             "rank_maxsim": lambda k: maxsim.rank_maxsim(tok, None, tok, None, k=k)}
    for name, call in calls.items():
        for bad in (0, -1, 6, True, 2.0, "2", None):
            with pytest.raises(ValueError, match=r"k must be an int in \[1, 5\] \(the corpus size\)"):
                call(bad)
        assert call(np.int64(5))[1].shape == (5, 5), name  # k = N: everything, ranked; never clamped


def test_cutoffs_may_exceed_the_ranking():
    run = {"q": {"a": 2.0, "b": 1.0}}
    assert hybrid.rrf([run], depth=1000) == hybrid.rrf([run])
    assert metrics.evaluate(run, {"q": {"b": 1}}, (1000,))["recall@1000"] == 1.0
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="depth must be an int >= 1"):
            hybrid.rrf([run], depth=bad)


def test_default_depth_is_100_or_the_whole_collection():
    assert V.default_depth(None, 7) == 7 and V.default_depth(None, 5000) == 100
    with pytest.raises(ValueError, match=r"depth must be an int in \[1, 7\]"):
        V.default_depth(8, 7, name="depth")


def test_ids_are_strings_without_surrounding_whitespace():
    assert V.check_ids("doc_ids", ["d1", "d2"]) == ["d1", "d2"]
    with pytest.raises(TypeError, match=r"doc_ids\[0\] must be a str, got int 1"):
        V.check_ids("doc_ids", [1, "2"])
    with pytest.raises(ValueError, match="without surrounding whitespace"):
        V.check_ids("doc_ids", ["d1 "])
    with pytest.raises(TypeError, match="doc_ids must be a list or tuple of str ids, got str"):
        V.check_ids("doc_ids", "d1")
    with pytest.raises(ValueError, match="must not repeat an id: 1 duplicate"):
        V.check_ids("doc_ids", ["d1", "d1"])


def test_messages_name_argument_expected_and_given():
    with pytest.raises(ValueError, match=r"^corpus_emb must be 2-D \(rows, dims\), got shape \(3,\)$"):
        V.check_matrix("corpus_emb", np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"^corpus_emb must be a numpy array, got list$"):
        V.check_matrix("corpus_emb", [[1.0]])
    with pytest.raises(ValueError, match=r"^x contains NaN or inf: 2 value\(s\), the first at row 1, dim 0 \(nan\)$"):
        V.check_matrix("x", np.array([[0.0, 1.0], [np.nan, np.inf]]))


# --- issue 16's bugs, one test each ---------------------------------------------------------------

def test_rank_maxsim_refuses_a_nan_document_instead_of_ranking_it_first():
    q, d = RNG.standard_normal((2, 3, 4)).astype(np.float32), RNG.standard_normal((6, 3, 4)).astype(np.float32)
    d[4, 1, 2] = np.nan
    with pytest.raises(ValueError, match="d contains NaN or inf in a valid token: row 4, token 1"):
        maxsim.rank_maxsim(q, None, d, None, k=2)
    mask = np.ones((6, 3), bool)
    mask[4, 1] = False  # the NaN is padding now: never read, and the ranking is the float64 one
    s, i = maxsim.rank_maxsim(q, None, d, mask, k=6)
    ref = np.array([[sum(max(float(qt @ dt) for dt, m in zip(doc, dm) if m) for qt in qq) for doc, dm in zip(d, mask)]
                    for qq in q.astype(np.float64)])
    np.testing.assert_array_equal(i, np.argsort(-ref, axis=1, kind="stable"))


def test_rrf_pareto_pick_and_paired_comparison_refuse_nan():
    with pytest.raises(ValueError, match=r"runs\[0\]\['q'\]\['a'\] must be a finite number, got nan"):
        hybrid.rrf([{"q": {"a": float("nan"), "b": 1.0}}])
    rows = [{"bytes/doc": 48, "nDCG@10": float("nan")}, {"bytes/doc": 96, "nDCG@10": 0.5}]
    for call in (lambda: frontier.pareto_front(rows), lambda: frontier.pick_config(rows, 1000)):
        with pytest.raises(ValueError, match=r"rows\[0\]\['nDCG@10'\].*got nan"):
            call()
    with pytest.raises(ValueError, match=r"after\['b'\] must be a finite number, got nan"):
        ceval.paired_comparison({"a": 0.5, "b": 0.2}, {"a": 0.7, "b": float("nan")})


@pytest.mark.parametrize("fn", [binary.hamming_topk, binary.hamming_topk_reference])
def test_hamming_topk_on_65600_bit_codes(fn):
    c = RNG.integers(0, 256, (9, 8200), dtype=np.uint8)  # 65,600 bits: distances past uint16
    q = np.vstack([~c[:1], c[5:6]]).astype(np.uint8)
    ref = np.unpackbits(q[:, None, :] ^ c[None], axis=2).sum(axis=2)  # (2, 9)
    d, i = fn(q, c, 9)
    np.testing.assert_array_equal(d, np.sort(ref, axis=1))
    assert d[0, -1] == 65600 and i[0, -1] == 0  # the complement: every bit differs, farthest of all
    np.testing.assert_array_equal(np.take_along_axis(ref, i, axis=1), d)


def test_quantize_binary_keeps_the_sign_of_tiny_float64_values():
    x = np.array([[1e-300, -1e-300, 5e-324, 0.0, 1e-46, -1e-46, 1.0, -1.0]])
    want = np.packbits(x > 0, axis=1)  # [[0b10100010]]
    np.testing.assert_array_equal(Q.quantize_binary(x), want)
    np.testing.assert_array_equal(Q.quantize_binary_reference(x), want)


def test_truncate_neither_overflows_nor_underflows():
    x = RNG.standard_normal((4, 6))
    for scale in (1e300, 1e-300, 1e30, 1e-30):
        t = matryoshka.truncate(x * scale, 3)
        want = x[:, :3] / np.linalg.norm(x[:, :3], axis=1, keepdims=True)
        np.testing.assert_allclose(t, want, rtol=1e-6)
    with pytest.raises(ValueError, match="emb holds values beyond float32's range"):
        matryoshka.truncate(x * 1e300, 3, normalize=False)
    with pytest.raises(ValueError, match="emb holds non-zero values too small for float32"):
        matryoshka.truncate(x * 1e-300, 3, normalize=False)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_topk_scores_orders_unsigned_scores(dtype):
    s = np.array([[3, 250, 0, 7, 250, 1]], dtype)
    scores, idx = search.topk_scores(s, 4)
    assert idx.tolist() == [[1, 4, 3, 0]] and scores.tolist() == [[250, 250, 7, 3]] and scores.dtype == dtype


def test_bytes_per_vector_refuses_negative_dims():
    with pytest.raises(ValueError, match="dim must be an int >= 1, got -8"):
        Q.bytes_per_vector(-8, 8)
    with pytest.raises(ValueError, match="bits must be a finite number > 0"):
        Q.bytes_per_vector(8, -8)


def test_evaluate_refuses_ids_that_differ_by_type_or_whitespace():
    with pytest.raises(TypeError, match="run query id must be a str, got int 1"):
        metrics.evaluate({1: {"d": 1.0}}, {"1": {"d": 1}})
    with pytest.raises(TypeError, match=r"run\['1'\] doc id must be a str, got int 7"):
        metrics.evaluate({"1": {7: 1.0}}, {"1": {"7": 1}})
    with pytest.raises(ValueError, match="qrels\\['q'\\] doc id must be a non-empty id without surrounding whitespace"):
        metrics.evaluate({"q": {"d1": 1.0}}, {"q": {"d1 ": 1}})
    with pytest.raises(ValueError, match="run and qrels share no query id"):
        metrics.evaluate({"q1": {"d1": 1.0}}, {"Q1": {"d1": 1}})
    assert metrics.evaluate({}, {"q": {"d": 1}}, (1,))["ndcg@1"] == 0.0  # an empty run still scores 0 (trec_eval -c)


def test_run_from_topk_refuses_duplicate_ids():
    s, i = np.array([[0.9, 0.5]]), np.array([[1, 0]])
    with pytest.raises(ValueError, match="doc_ids must not repeat an id"):
        search.run_from_topk(s, i, ["q"], ["d", "d"])
    with pytest.raises(ValueError, match="query_ids must not repeat an id"):
        search.run_from_topk(np.vstack([s, s]), np.vstack([i, i]), ["q", "q"], ["a", "b"])
    with pytest.raises(ValueError, match="indices row 0 repeats a document"):
        search.run_from_topk(s, np.array([[1, 1]]), ["q"], ["a", "b"])


def test_check_no_leakage_refuses_a_bare_string_and_int_ids():
    test = type("T", (), {"queries": {"t1": "Aspirin lowers fever."}})()
    with pytest.raises(TypeError, match="train_texts must be a list or tuple of str, got str"):
        training.check_no_leakage(["q1"], "aspirin lowers fever.", test)
    with pytest.raises(TypeError, match="train_query_ids must be a list or tuple of str ids, got str"):
        training.check_no_leakage("t1", ["x"], test)
    with pytest.raises(TypeError, match=r"train_query_ids\[0\] must be a str, got int 1"):
        training.check_no_leakage([1], ["x"], type("T", (), {"queries": {"1": "y"}})())
    with pytest.raises(training.LeakageError, match="test query id"):
        training.check_no_leakage(("t1",), ("x",), test)


def test_rank_maxsim_reads_minus_one_as_padding():
    q, d = RNG.standard_normal((1, 2, 3)).astype(np.float32), RNG.standard_normal((4, 2, 3)).astype(np.float32)
    d[3] = 100.0  # the last document would win if -1 read it
    s, i = maxsim.rank_maxsim(q, None, d, None, k=3, candidates=np.array([[0, -1, 1]]))
    assert i[0, -1] == -1 and np.isneginf(s[0, -1]) and set(i[0, :2]) == {0, 1}


def test_bm25_build_refuses_a_bare_string():
    with pytest.raises(TypeError, match="texts must be a list or tuple of str, got str"):
        sparse.BM25Index.build("aspirin lowers fever")
    index = sparse.BM25Index.build(["aspirin lowers fever"])
    for call in (index.encode_queries, index.score):
        with pytest.raises(TypeError, match="queries must be a list or tuple of str, got str"):
            call("aspirin")


def test_out_of_range_arguments_are_refused():
    run = {"q": {"a": 1.0}}
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        hybrid.rrf([run], depth=-1)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0, got -0.1"):
        ceval.paired_comparison({"a": 1.0}, {"a": 1.0}, tol=-0.1)
    c = np.eye(3, dtype=np.float32)
    for call in (lambda: search.topk(c, c, True), lambda: hybrid.rrf([run], k=True),
                 lambda: binary.hamming_topk(np.packbits(c > 0, axis=1), np.packbits(c > 0, axis=1), True)):
        with pytest.raises(ValueError, match="k must be an int.*got True"):
            call()


def test_float32_overflow_is_not_blamed_on_nan():
    q, c = np.full((1, 4), 1e20, np.float32), np.full((3, 4), 1e20, np.float32)
    with pytest.raises(ValueError, match="overflow float32.*both inputs are finite"):
        search.topk(q, c, 1)
    c[1, 2] = np.nan
    with pytest.raises(ValueError, match="corpus_emb contains NaN or inf.*the first at row 1"):
        search.topk(np.ones((1, 4), np.float32), c, 1)
    # float64 inputs are computed in float64: the same magnitudes rank exactly
    s, i = search.topk(q.astype(np.float64), np.array([[1e20] * 4, [2e20] * 4]), 2)
    assert i.tolist() == [[1, 0]] and s.dtype == np.float64 and np.isfinite(s).all()


def test_binary_search_reports_k_not_k_times_multiplier():
    c = RNG.standard_normal((5, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 5\] \(the corpus size\), got -1"):
        binary.binary_search(c, np.packbits(c > 0, axis=1), -1, multiplier=4)


def test_retrieval_depth_defaults_to_the_collection_on_a_toy_task():
    q, c = np.eye(2, 4, dtype=np.float32), np.eye(3, 4, dtype=np.float32)
    ret = Retrieval(q, c, ["q0", "q1"], ["d0", "d1", "d2"], {"q0": {"d0": 1}})
    assert ret.depth == 3
    with pytest.raises(ValueError, match=r"depth must be an int in \[1, 3\]"):
        Retrieval(q, c, ["q0", "q1"], ["d0", "d1", "d2"], {"q0": {"d0": 1}}, depth=100)
