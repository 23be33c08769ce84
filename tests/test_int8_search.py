"""Search on int8/uint8 codes: the kernels against their NumPy twins, dequantize-then-dot and faiss's scalar quantizer."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from course_lib import int8_search as S
from course_lib.quantization import Ranges, calibrate, dequantize_scalar, quantize_scalar


def _data(n=3000, d=96, nq=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    return x, q / np.linalg.norm(q, axis=1, keepdims=True)


def _ranking(scores: np.ndarray, k: int) -> np.ndarray:
    """Score descending, lower index first: the course's tie rule, in float64."""
    n = scores.shape[1]
    return np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores.astype(np.float64)), axis=1)[:, :k]


def _assert_same_ranking(s, i, full, k, tol=1e-5):
    """The kernel's top-k equals the exact ranking of ``full``, up to rounding: same values in the same order,
    each the score of its document, and the same document wherever its score stands clear of its neighbours."""
    want = _ranking(full, k)
    np.testing.assert_allclose(s, np.take_along_axis(full, i, axis=1), atol=tol)  # each score is its document's
    np.testing.assert_allclose(s, np.take_along_axis(full, want, axis=1), atol=tol)  # and the right values
    assert (np.diff(s, axis=1) <= 0).all()
    ranked = np.sort(full, axis=1)[:, ::-1][:, :k + 1]  # (Q, k + 1): the top k and the first one left out
    gap = np.abs(np.diff(ranked, axis=1))  # (Q, k)
    before = np.concatenate([np.full((len(s), 1), np.inf), gap[:, :-1]], axis=1)  # gap to the one above
    clear = (gap > 4 * tol) & (before > 4 * tol)  # (Q, k) isolated places
    assert clear.mean() > 0.5, "the test data has too many near-ties to say anything"
    np.testing.assert_array_equal(i[clear], want[clear])
    return clear


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("method", ["minmax", "percentile"])
@pytest.mark.parametrize("k", [1, 10, 700])
def test_asymmetric_equals_dequantize_then_dot_and_its_reference(dtype, method, k):
    x, q = _data()
    r = calibrate(x, method, 99.0)
    codes = quantize_scalar(x, r, dtype)
    full = q @ dequantize_scalar(codes, r).T  # (Q, N) what a float scan over the dequantized corpus scores
    for queries, f in ((q, full), (q[:1], full[:1])):  # 9 queries: groups of four and the rest; one query
        s, i = S.int8_topk(queries, codes, r, k)
        assert s.dtype == np.float32 and i.dtype == np.int64 and s.shape == i.shape == (len(queries), k)
        clear = _assert_same_ranking(s, i, f, k)
        rs, ri = S.int8_topk_reference(queries, codes, r, k)  # BLAS sums in another order: compare clear places
        np.testing.assert_array_equal(i[clear], ri[clear])
        np.testing.assert_allclose(s, rs, atol=1e-5)


def test_fold_query_is_the_algebra():
    x, q = _data(200, 16, 3)
    r = calibrate(x)
    for dtype in ("int8", "uint8"):
        for bits in (8, 4):
            codes = quantize_scalar(x, r, dtype, bits)
            w, b = S.fold_query(q, r, dtype, bits)
            assert w.shape == q.shape and b.shape == (3,) and w.dtype == b.dtype == np.float32
            np.testing.assert_allclose((codes.astype(np.float64) @ w.T + b).T,
                                       q @ dequantize_scalar(codes, r, bits).T, atol=1e-5)
            s, i = S.int8_topk(q, codes, r, 5, bits=bits)
            _assert_same_ranking(s, i, q @ dequantize_scalar(codes, r, bits).T, 5)


@pytest.mark.parametrize("method", ["minmax", "percentile"])
@pytest.mark.parametrize("k", [1, 10, 700])
def test_symmetric_equals_dequantize_both_then_dot(method, k):
    x, q = _data()
    r = S.shared_step(calibrate(x, method, 99.0))
    steps = r.step()
    assert np.ptp(steps) <= 1e-6 * steps.max()
    codes, qcodes = quantize_scalar(x, r, "int8"), quantize_scalar(q, r, "int8")
    full = dequantize_scalar(qcodes, r) @ dequantize_scalar(codes, r).T  # (Q, N)
    terms = S.symmetric_doc_terms(codes, r)
    for qc, f in ((qcodes, full), (qcodes[:1], full[:1])):
        s, i = S.symmetric_topk(qc, codes, r, k, doc_terms=terms)
        _assert_same_ranking(s, i, f, k)
        rs, ri = S.symmetric_topk_reference(qc, codes, r, k)
        np.testing.assert_array_equal(i, ri)  # integer dot products and the same float terms: the same scores
        np.testing.assert_allclose(s, rs, atol=1e-6)


def test_shared_step_keeps_centres_and_widens_to_the_widest():
    r = Ranges(np.array([-1.0, 0.0, 2.0], np.float32), np.array([1.0, 0.5, 2.25], np.float32))
    w = S.shared_step(r)
    np.testing.assert_allclose(w.upper - w.lower, 2.0)
    np.testing.assert_allclose((w.upper + w.lower) / 2, (r.upper + r.lower) / 2)
    assert w.method == "minmax+shared-step"


def test_symmetric_needs_one_shared_step():
    x, q = _data(100, 8, 2)
    r = calibrate(x)
    with pytest.raises(ValueError, match="shared_step"):
        S.symmetric_topk(quantize_scalar(q, r), quantize_scalar(x, r), r, 3)


def test_int8_products_do_not_wrap_around():
    """All codes -128: every product is +16,384. ``int8 @ int8`` wraps to 0; the kernel sums exactly in int32."""
    d = 384
    r = Ranges(np.full(d, -1.0, np.float32), np.full(d, 1.0, np.float32))
    codes = np.full((5, d), -128, np.int8)
    codes[3, 0] = 127  # one document differs: a wrapped sum would not see it
    q = np.full((1, d), -128, np.int8)
    assert (q @ codes.T)[0, 0] == 0  # the naive product overflows (NumPy keeps int8: 384 x 16,384 mod 256 = 0)
    assert (q.astype(np.int32) @ codes.T.astype(np.int32))[0, 0] == d * 128 * 128
    s, i = S.symmetric_topk(q, codes, r, 5)
    full = dequantize_scalar(q, r).astype(np.float64) @ dequantize_scalar(codes, r).T.astype(np.float64)
    np.testing.assert_allclose(s, np.take_along_axis(full, i, axis=1), rtol=1e-6)
    assert i[0, -1] == 3 and i[0, :4].tolist() == [0, 1, 2, 4]  # the one that differs ranks last, ties by index
    with pytest.raises(ValueError, match="overflow"):
        S.symmetric_topk(np.zeros((1, S.INT32_SAFE_DIMS + 1), np.int8), np.zeros((2, S.INT32_SAFE_DIMS + 1), np.int8),
                         Ranges(np.full(S.INT32_SAFE_DIMS + 1, -1, np.float32), np.ones(S.INT32_SAFE_DIMS + 1, np.float32)), 1)


@pytest.mark.parametrize("kernel", ["asymmetric", "symmetric"])
def test_ties_go_to_the_lower_index_across_tasks(kernel):
    x, q = _data(400, 32, 5)
    r = S.shared_step(calibrate(x))
    base = quantize_scalar(x, r, "int8")
    rng = np.random.default_rng(1)
    codes = base[rng.integers(0, 40, 5000)]  # 40 distinct rows over 5,000: every score is tied many times
    for k in (1, 7, 130, 5000):  # 130: the k-th place falls inside a run of ties; 5000 = N
        if kernel == "asymmetric":
            s, i = S.int8_topk(q, codes, r, k)
            rs, ri = S.int8_topk_reference(q, codes, r, k)
        else:
            qc = quantize_scalar(q, r, "int8")
            s, i = S.symmetric_topk(qc, codes, r, k)
            rs, ri = S.symmetric_topk_reference(qc, codes, r, k)
        np.testing.assert_array_equal(i, ri)
        for row_s, row_i in zip(s, i):  # within each run of equal scores the indices ascend
            same = row_s[1:] == row_s[:-1]
            assert (row_i[1:][same] > row_i[:-1][same]).all()


def test_k_larger_than_the_corpus_is_refused_and_k_equal_works():
    x, q = _data(50, 8, 2)
    r = calibrate(x)
    codes = quantize_scalar(x, r)
    with pytest.raises(ValueError, match="k"):
        S.int8_topk(q, codes, r, 51)
    s, i = S.int8_topk(q, codes, r, 50)
    assert sorted(i[0].tolist()) == list(range(50)) and (np.diff(s, axis=1) <= 0).all()


def test_equals_faiss_scalar_quantizer_on_the_same_codes():
    """faiss's QT_8bit decodes ``vmin + (c + 0.5) / 255 * vdiff``: set vmin = lower - step / 2, vdiff = 255 step
    and it decodes our uint8 codes to our values, so both must return the same top k."""
    x, q = _data(4000, 64, 20, seed=3)
    r = calibrate(x, "percentile", 99.0)
    codes = quantize_scalar(x, r, "uint8")
    index = faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    step = r.step()
    faiss.copy_array_to_vector(np.concatenate([r.lower - step / 2, 255 * step]).astype(np.float32), index.sq.trained)
    index.is_trained = True
    dequantized = dequantize_scalar(codes, r)
    np.testing.assert_array_equal(index.sa_encode(dequantized), codes)  # faiss holds the very same codes
    index.add(dequantized)
    fd, fi = index.search(q, 25)
    s, i = S.int8_topk(q, codes, r, 25)
    np.testing.assert_allclose(s, fd, atol=2e-5)
    full = q @ dequantized.T
    _assert_same_ranking(s, i, full, 25)
    gaps = np.abs(np.diff(fd, axis=1)).min(axis=1)
    clear = gaps > 1e-4  # rows without a near-tie, where faiss's order is the exact one
    assert clear.sum() >= 5
    np.testing.assert_array_equal(i[clear], fi[clear])
    # and the signed codes of the same values: the kernel folds the shift of 128 into the bias
    s8, i8 = S.int8_topk(q, quantize_scalar(x, r, "int8"), r, 25)
    np.testing.assert_array_equal(i8[clear], fi[clear])


@pytest.mark.parametrize("call", [
    lambda c, r, q: S.int8_topk(q, c.astype(np.int16), r, 3),
    lambda c, r, q: S.int8_topk(q, c.astype(np.float32), r, 3),
    lambda c, r, q: S.int8_topk(q, c[0], r, 3),
    lambda c, r, q: S.int8_topk(q, c[:0], r, 3),
    lambda c, r, q: S.symmetric_topk(quantize_scalar(q, r, "uint8"), c, r, 3),
])
def test_bad_codes_are_named(call):
    x, q = _data(20, 8, 2)
    r = S.shared_step(calibrate(x))
    with pytest.raises((TypeError, ValueError), match="codes"):
        call(quantize_scalar(x, r), r, q)


def test_codes_outside_their_bits_are_refused():
    x, q = _data(20, 8, 2)
    r = calibrate(x)
    with pytest.raises(ValueError, match="4-bit"):
        S.int8_topk(q, quantize_scalar(x, r, "int8", 8), r, 3, bits=4)


def test_doc_terms_must_match_the_codes():
    x, q = _data(20, 8, 2)
    r = S.shared_step(calibrate(x))
    codes = quantize_scalar(x, r)
    with pytest.raises(ValueError, match="doc_terms"):
        S.symmetric_topk(quantize_scalar(q, r), codes, r, 3, doc_terms=np.zeros(19))
