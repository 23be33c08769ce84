"""Exact search straight on scalar-quantized codes (int8/uint8), without dequantizing the corpus.

A code ``c`` (:func:`course_lib.quantization.quantize_scalar`) stands for the value
``x_hat_j = lower_j + step_j (c_j + shift)``, with ``shift = 2**(bits-1)`` for int8 codes and 0 for uint8.

**Asymmetric: a float query against codes.** The inner product with a float query ``q`` splits into a
part that depends on the query only and a dot product with the raw codes:

.. math::

    q \\cdot \\hat{x} = \\underbrace{\\sum_j q_j\\,\\mathrm{lower}_j + \\mathrm{shift} \\sum_j q_j\\,\\mathrm{step}_j}_{b(q)}
    \\; + \\; \\sum_j \\underbrace{(q_j\\,\\mathrm{step}_j)}_{w_j(q)}\\, c_j .

The *folded query* ``w = q * step`` and the bias ``b`` are computed once per query (:func:`fold_query`);
every document then costs ``D`` multiply-adds on its ``D`` code bytes, a quarter of the bytes a float32
scan reads. The scores are those of dequantize-then-dot, up to float rounding.

**Symmetric: int8 query codes against int8 codes, int32 accumulation.** When every dimension has the
same step ``s`` (:func:`shared_step`), write ``u_j = lower_j + s * shift``; for a quantized query ``a``
and a document ``c``:

.. math::

    \\hat{a} \\cdot \\hat{x} = \\sum_j u_j^2 + s \\sum_j u_j a_j + s \\sum_j u_j c_j + s^2 \\sum_j a_j c_j .

The last sum is a dot product of integers, accumulated exactly in int32 (each product is at most
128 x 128 = 16,384 in magnitude, so 131,072 dims fit); ``sum_j u_j c_j`` is one float per document,
computed once when the index is built (:func:`symmetric_doc_terms`). With a different step per dimension
the last sum would carry a weight ``s_j**2`` per dimension and stop being an integer dot product: that is
why the symmetric kernel needs one shared step. ``int8 @ int8`` in NumPy or torch returns int8 and
wraps around: the kernel widens every product to int32 first.

Both kernels select the top ``k`` by score descending, **equal scores by lower corpus index first**
(:func:`course_lib.search.topk`'s rule), fused with the scan: each parallel task keeps a heap of its best
``k``, and the heaps are merged at the end. Each kernel (numba) has a NumPy twin (``*_reference``) that
the tests hold it to.
"""

from __future__ import annotations

import functools

import numpy as np

from course_lib import validation as V
from course_lib.quantization import Ranges
from course_lib.search import BLOCK_BYTES, _select_topk

INT32_SAFE_DIMS = (2 ** 31 - 1) // (128 * 128)
_NO_TERMS = np.zeros(1, np.float64)  # the asymmetric kernel has no per-document term  # int8 x int8 products summed in int32 cannot overflow below this
TILE = 512  # documents per tile: 512 x 384 B = 192 KiB of codes stays in L2 while the queries pass over it
QUERY_GROUP = 4  # queries scored per pass over a tile's codes


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------

def _check_int_codes(name: str, codes, dtypes=(np.int8, np.uint8)) -> np.ndarray:
    if not isinstance(codes, np.ndarray) or codes.dtype not in dtypes:
        want = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must be a 2-D {want} numpy array of codes (quantize_scalar), got {V.describe(codes)}")
    if codes.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of codes (rows, dims), got shape {codes.shape}")
    if 0 in codes.shape:
        raise ValueError(f"{name} must have at least one row and one dim, got shape {codes.shape}")
    return codes


def _check_bits_for(codes: np.ndarray, bits) -> int:
    bits = V.check_int("bits", bits, low=1, high=8)
    if bits < 8 and codes.size:  # codes of fewer bits are stored one per byte: check they are in range
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if codes.dtype == np.int8 else (0, 2 ** bits - 1)
        cmin, cmax = int(codes.min()), int(codes.max())
        if cmin < lo or cmax > hi:
            raise ValueError(f"codes out of range for {bits}-bit {codes.dtype.name} codes: found {cmin}..{cmax}, "
                             f"expected {lo}..{hi}")
    return bits


def _shift(dtype, bits: int) -> int:
    return 2 ** (bits - 1) if np.dtype(dtype) == np.int8 else 0


# ---------------------------------------------------------------------------------------------
# Folding and shared steps
# ---------------------------------------------------------------------------------------------

def fold_query(query_emb: np.ndarray, ranges: Ranges, dtype: str = "int8", bits: int = 8
               ) -> tuple[np.ndarray, np.ndarray]:
    """Fold float queries with the quantization ranges, so that ``codes @ w.T + b`` equals dequantize-then-dot.

    Parameters
    ----------
    query_emb : np.ndarray
        float (Q, D), finite.
    ranges : Ranges
        the corpus's calibration, ``ranges.dim == D``.
    dtype : {"int8", "uint8"}
        the codes' dtype (it sets ``shift``: 2**(bits-1) for int8, 0 for uint8).
    bits : int
        1 to 8, as given to :func:`~course_lib.quantization.quantize_scalar`.

    Returns
    -------
    w : np.ndarray
        float32 (Q, D), ``q_j * step_j``.
    b : np.ndarray
        float32 (Q,), ``sum_j q_j * lower_j + shift * sum_j w_j`` (computed in float64).

    Examples
    --------
    >>> r = Ranges(np.array([-1.0, 0.0], np.float32), np.array([1.0, 2.0], np.float32))
    >>> w, b = fold_query(np.array([[1.0, 0.5]], np.float32), r, "uint8")
    >>> codes = np.array([[0, 255], [255, 0]], np.uint8)     # dequantized: [-1, 2] and [1, 0]
    >>> (codes @ w.T + b).ravel().round(4).tolist()
    [0.0, 1.0]
    """
    q = V.check_matrix("query_emb", query_emb)
    V.check_ranges(ranges, q.shape[1])
    V.check_choice("dtype", dtype, ("int8", "uint8"))
    bits = V.check_int("bits", bits, low=1, high=8)
    q64 = q.astype(np.float64)
    step = ranges.step(bits).astype(np.float64)  # (D,)
    w = q64 * step  # (Q, D)
    b = q64 @ ranges.lower.astype(np.float64) + _shift(dtype, bits) * w.sum(axis=1)  # (Q,)
    V.check_fits_float32("query_emb times the ranges' steps (the folded query)", w)
    return w.astype(np.float32), b.astype(np.float32)


def shared_step(ranges: Ranges, bits: int = 8) -> Ranges:
    """Widen every dimension's range to the widest one, keeping its centre: one step for all dimensions.

    The symmetric kernel needs it (see the module's formula). The price: narrow dimensions get fewer
    distinct levels, so the codes carry less; ``benchmarks/int8_scan_quality.py`` measures it in nDCG@10.

    >>> r = shared_step(Ranges(np.array([-1.0, 0.0], np.float32), np.array([1.0, 0.5], np.float32)))
    >>> r.lower.tolist(), r.upper.tolist()
    ([-1.0, -0.75], [1.0, 1.25])
    """
    V.check_ranges(ranges)
    bits = V.check_int("bits", bits, low=1, high=8)
    lower, upper = ranges.lower.astype(np.float64), ranges.upper.astype(np.float64)
    width = float((upper - lower).max())
    new_lower = ((lower + upper) / 2 - width / 2).astype(np.float32)  # (D,)
    new_upper = (new_lower + np.float32(width)).astype(np.float32)  # (D,) so that upper - lower is the same float
    return V.check_ranges(Ranges(new_lower, new_upper, f"{ranges.method}+shared-step", ranges.n_rows))


def _common_step(ranges: Ranges, bits: int) -> float:
    step = ranges.step(bits).astype(np.float64)  # (D,)
    s = float(np.median(step))
    spread = float(np.abs(step - s).max() / s)
    if spread > 1e-4:
        raise ValueError(
            f"symmetric scoring needs one step for every dimension, but these ranges have steps from "
            f"{step.min():.6g} to {step.max():.6g}; build them with shared_step(ranges) and quantize the corpus and "
            "the queries with those")
    return s


def _symmetric_constants(ranges: Ranges, bits: int) -> tuple[float, np.ndarray]:
    s = _common_step(ranges, bits)
    u = ranges.lower.astype(np.float64) + s * 2 ** (bits - 1)  # (D,) x_hat_j = u_j + s c_j
    return s, u


def symmetric_doc_terms(codes: np.ndarray, ranges: Ranges, bits: int = 8) -> np.ndarray:
    """The per-document part of the symmetric score, ``s * sum_j u_j c_j``: float64 (N,), computed once per index.

    ``codes``: int8 (N, D) made with ranges that share one step (:func:`shared_step`).
    """
    codes = _check_int_codes("codes", codes, (np.int8,))
    V.check_ranges(ranges, codes.shape[1])
    bits = _check_bits_for(codes, bits)
    s, u = _symmetric_constants(ranges, bits)
    out = np.empty(codes.shape[0], np.float64)  # (N,)
    rows = max(1, BLOCK_BYTES // (8 * codes.shape[1]))
    for start in range(0, codes.shape[0], rows):  # blocked: the float64 copy of all codes would be 8x their size
        out[start:start + rows] = codes[start:start + rows].astype(np.float64) @ u
    return s * out


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

@functools.cache
def _kernels():
    """Compile on first use: a scan over tiles of documents fused with a per-task heap of the best k."""
    import numba

    @numba.njit(inline="always")
    def push(hs, hi, qi, size, s, i):  # hs/hi (Q, k): a min-heap by (score, -index), root = the worst kept
        k = hs.shape[1]
        if size < k:  # not full: append and sift up
            pos = size
            while pos > 0:
                parent = (pos - 1) // 2
                if hs[qi, parent] < s or (hs[qi, parent] == s and hi[qi, parent] > i):
                    break
                hs[qi, pos], hi[qi, pos] = hs[qi, parent], hi[qi, parent]
                pos = parent
            hs[qi, pos], hi[qi, pos] = s, i
            return size + 1
        # full, and the caller checked s > root (documents come in index order, so an equal score loses):
        pos = 0
        while True:  # replace the root and sift down
            left = 2 * pos + 1
            if left >= k:
                break
            child = left
            right = left + 1
            if right < k and (hs[qi, right] < hs[qi, left] or (hs[qi, right] == hs[qi, left] and hi[qi, right] > hi[qi, left])):
                child = right
            if s < hs[qi, child] or (s == hs[qi, child] and i > hi[qi, child]):
                break
            hs[qi, pos], hi[qi, pos] = hs[qi, child], hi[qi, child]
            pos = child
        hs[qi, pos], hi[qi, pos] = s, i
        return size

    fast = {"reassoc", "contract", "nsz"}  # reassociation lets LLVM vectorize the sums over dimensions

    # The two kernels differ only in how a document's raw sum is made and finished into a score:
    # asymmetric: float sums of w_j * c_j, score = sum + bias (per query);
    # symmetric: int32 sums of a_j * c_j (each product widened first: no int8 wrap-around), score =
    # base (per query) + doc_term (per document) + s^2 * sum.

    @numba.njit(inline="always", fastmath=fast)
    def float_sums(w, qi, codes, r0, r1, r2, r3, four_queries):
        # four queries against row r0, or one query against rows r0..r3: four independent sums in flight
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        if four_queries:
            for j in range(w.shape[1]):
                x = np.float32(codes[r0, j])
                a0 += w[qi, j] * x
                a1 += w[qi + 1, j] * x
                a2 += w[qi + 2, j] * x
                a3 += w[qi + 3, j] * x
        else:
            for j in range(w.shape[1]):
                wj = w[qi, j]
                a0 += wj * np.float32(codes[r0, j])
                a1 += wj * np.float32(codes[r1, j])
                a2 += wj * np.float32(codes[r2, j])
                a3 += wj * np.float32(codes[r3, j])
        return a0, a1, a2, a3

    @numba.njit(inline="always", fastmath=fast)
    def int_sums(a, qi, codes, r0, r1, r2, r3, four_queries):
        # numba widens int32 arithmetic to int64: cast back, so the sums stay int32 (they fit: INT32_SAFE_DIMS)
        d0 = np.int32(0)
        d1 = np.int32(0)
        d2 = np.int32(0)
        d3 = np.int32(0)
        if four_queries:
            for j in range(a.shape[1]):
                x = np.int32(codes[r0, j])
                d0 = np.int32(d0 + np.int32(a[qi, j]) * x)
                d1 = np.int32(d1 + np.int32(a[qi + 1, j]) * x)
                d2 = np.int32(d2 + np.int32(a[qi + 2, j]) * x)
                d3 = np.int32(d3 + np.int32(a[qi + 3, j]) * x)
        else:
            for j in range(a.shape[1]):
                y = np.int32(a[qi, j])
                d0 = np.int32(d0 + y * np.int32(codes[r0, j]))
                d1 = np.int32(d1 + y * np.int32(codes[r1, j]))
                d2 = np.int32(d2 + y * np.int32(codes[r2, j]))
                d3 = np.int32(d3 + y * np.int32(codes[r3, j]))
        return d0, d1, d2, d3

    @numba.njit(inline="always")
    def float_score(total, query_const, doc_terms, i, scale2):
        return total + query_const

    @numba.njit(inline="always")
    def int_score(total, query_const, doc_terms, i, scale2):
        return np.float32(query_const + doc_terms[i] + scale2 * total)

    def make_scan(sums, score):
        @numba.njit(parallel=True, fastmath=fast, cache=True)
        def scan(queries, query_const, codes, doc_terms, scale2, bounds, tile, out_s, out_i):
            # queries (Q, D), codes (N, D); task t scans rows bounds[t]:bounds[t+1]
            # -> out_s/out_i (T, Q, k): each task's best k per query (unsorted; -inf/-1 where it saw fewer than k)
            nq = queries.shape[0]
            k = out_s.shape[2]
            for t in numba.prange(bounds.shape[0] - 1):
                hs, hi = out_s[t], out_i[t]
                sizes = np.zeros(nq, np.int64)
                for lo in range(bounds[t], bounds[t + 1], tile):  # a tile of codes stays in cache for all queries
                    end = min(bounds[t + 1], lo + tile)
                    qi = 0
                    while qi + 4 <= nq:  # four queries per load of a document's codes
                        for i in range(lo, end):
                            for g, total in enumerate(sums(queries, qi, codes, i, i, i, i, True)):
                                s = score(total, query_const[qi + g], doc_terms, i, scale2)
                                if sizes[qi + g] < k or s > hs[qi + g, 0]:
                                    sizes[qi + g] = push(hs, hi, qi + g, sizes[qi + g], s, i)
                        qi += 4
                    while qi < nq:  # a lone query: four documents at a time
                        for i in range(lo, end, 4):
                            # past the tile's end the last row is scored again and not kept: every document takes
                            # the same code path, so equal codes get bit-equal scores and ties stay exact
                            last = end - 1
                            totals = sums(queries, qi, codes, i, min(i + 1, last), min(i + 2, last),
                                          min(i + 3, last), False)
                            for g, total in enumerate(totals):
                                if i + g < end:
                                    s = score(total, query_const[qi], doc_terms, i + g, scale2)
                                    if sizes[qi] < k or s > hs[qi, 0]:
                                        sizes[qi] = push(hs, hi, qi, sizes[qi], s, i + g)
                        qi += 1
        return scan

    asymmetric = make_scan(float_sums, float_score)
    symmetric = make_scan(int_sums, int_score)
    return asymmetric, symmetric


def _tasks(n: int, k: int) -> np.ndarray:
    """Row bounds of the parallel tasks: a few per core, each at least ``k`` rows (and ``TILE`` where N allows)."""
    import numba

    ntasks = max(1, min(4 * numba.get_num_threads(), n // max(k, TILE)))
    return np.linspace(0, n, ntasks + 1).astype(np.int64)  # (T + 1,)


def _merge(cand_s: np.ndarray, cand_i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the tasks' heaps (T, Q, k) into the top k per query: score descending, lower index first."""
    t, nq, _ = cand_s.shape
    s = cand_s.transpose(1, 0, 2).reshape(nq, -1)  # (Q, T k)
    i = cand_i.transpose(1, 0, 2).reshape(nq, -1)  # (Q, T k)
    order = np.lexsort((i, -s.astype(np.float64)), axis=1)[:, :k]  # (Q, k); -1/-inf slots sort last
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)


def _scan_all(kernel, queries, query_const, codes, doc_terms, scale2: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Run a scan kernel over all documents, in blocks of queries whose (T, Q, k) heaps stay near BLOCK_BYTES."""
    c = np.ascontiguousarray(codes)
    bounds = _tasks(c.shape[0], k)
    nq = queries.shape[0]
    per = max(1, BLOCK_BYTES // (12 * k * (bounds.size - 1)))  # 12 bytes a heap slot: float32 score, int64 index
    out_s = np.empty((nq, k), np.float32)  # (Q, k)
    out_i = np.empty((nq, k), np.int64)  # (Q, k)
    for start in range(0, nq, per):
        rows = slice(start, start + per)
        b = queries[rows].shape[0]
        heap_s = np.full((bounds.size - 1, b, k), -np.inf, np.float32)  # (T, b, k)
        heap_i = np.full((bounds.size - 1, b, k), -1, np.int64)  # (T, b, k)
        kernel(queries[rows], query_const[rows], c, doc_terms, scale2, bounds, TILE, heap_s, heap_i)
        out_s[rows], out_i[rows] = _merge(heap_s, heap_i, k)
    return out_s, out_i


def _asymmetric_inputs(query_emb, codes, ranges, k, bits):
    codes = _check_int_codes("codes", codes)
    q = V.check_matrix("query_emb", query_emb)
    V.check_same_dims("query_emb", q, "codes", codes)
    k = V.check_k(k, codes.shape[0])
    bits = _check_bits_for(codes, bits)
    w, b = fold_query(q, ranges, codes.dtype.name, bits)  # (Q, D), (Q,)
    _check_bound(float((np.abs(b.astype(np.float64)) + 255 * np.abs(w.astype(np.float64)).sum(axis=1)).max()))
    return codes, k, w, b


def _check_bound(bound: float) -> None:
    """Refuse before scanning when some score (or partial sum) could overflow float32: the kernels keep only the
    top k, so an inf among the others would pass unseen. ``bound``: the largest magnitude any sum can reach."""
    if not bound <= V.FLOAT32_MAX:
        raise ValueError(f"scores could overflow float32 (up to {bound:.3g} in magnitude): the query_emb values or the "
                         "ranges are far too large; scale the embeddings down")


def int8_topk(query_emb: np.ndarray, codes: np.ndarray, ranges: Ranges, k: int, bits: int = 8
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of float queries against int8/uint8 codes, scored on the codes (the asymmetric kernel).

    Parameters
    ----------
    query_emb : np.ndarray
        float (Q, D), finite.
    codes : np.ndarray
        int8 or uint8 (N, D), from :func:`~course_lib.quantization.quantize_scalar` with ``ranges``.
    ranges : Ranges
        the calibration the codes were made with.
    k : int
        1 <= k <= N.
    bits : int
        the codes' bits (8 unless they were made with fewer).

    Returns
    -------
    scores : np.ndarray
        float32 (Q, k), descending: the inner products with the dequantized documents, up to float rounding.
    indices : np.ndarray
        int64 (Q, k); equal scores by lower index first.

    Examples
    --------
    >>> from course_lib.quantization import calibrate, quantize_scalar
    >>> x = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    >>> r = calibrate(x)
    >>> s, i = int8_topk(np.array([[0.8, 0.6]], np.float32), quantize_scalar(x, r), r, k=2)
    >>> i.tolist(), [round(float(v), 2) for v in s[0]]
    ([[2, 0]], [0.96, 0.8])
    """
    codes, k, w, b = _asymmetric_inputs(query_emb, codes, ranges, k, bits)  # w (Q, D), b (Q,)
    return _scan_all(_kernels()[0], w, b, codes, _NO_TERMS, 0.0, k)


def int8_topk_reference(query_emb: np.ndarray, codes: np.ndarray, ranges: Ranges, k: int, bits: int = 8
                        ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`int8_topk` in readable NumPy: fold the query, ``codes @ w.T + b`` over all documents, select."""
    codes, k, w, b = _asymmetric_inputs(query_emb, codes, ranges, k, bits)  # w (Q, D), b (Q,)
    scores = codes.astype(np.float32) @ w.T + b  # (N, Q): the documents' codes, never dequantized
    return _select_topk(np.ascontiguousarray(scores.T), k)


def _symmetric_inputs(query_codes, codes, ranges, k, bits, doc_terms):
    codes = _check_int_codes("codes", codes, (np.int8,))
    query_codes = _check_int_codes("query_codes", query_codes, (np.int8,))
    V.check_same_dims("query_codes", query_codes, "codes", codes)
    if codes.shape[1] > INT32_SAFE_DIMS:
        raise ValueError(f"codes have {codes.shape[1]} dims: an int32 sum of int8 products can overflow past "
                         f"{INT32_SAFE_DIMS} dims")
    k = V.check_k(k, codes.shape[0])
    V.check_ranges(ranges, codes.shape[1])
    bits = _check_bits_for(codes, bits)
    _check_bits_for(query_codes, bits)
    s, u = _symmetric_constants(ranges, bits)
    if doc_terms is None:
        doc_terms = symmetric_doc_terms(codes, ranges, bits)
    else:
        doc_terms = V.check_array("doc_terms", doc_terms, ndim=1, shape="(N,)")
        if doc_terms.shape[0] != codes.shape[0]:
            raise ValueError(f"doc_terms must have one value per code row ({codes.shape[0]}), got {doc_terms.shape[0]}"
                             " (symmetric_doc_terms(codes, ranges) makes them)")
    base = float(u @ u) + s * (query_codes.astype(np.float64) @ u)  # (Q,) the query's part
    _check_bound(float(np.abs(base).max() + np.abs(doc_terms).max() + s * s * codes.shape[1] * 128 * 128))
    return query_codes, codes, k, s, np.asarray(doc_terms, np.float64), base


def symmetric_topk(query_codes: np.ndarray, codes: np.ndarray, ranges: Ranges, k: int, bits: int = 8,
                   doc_terms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of int8 query codes against int8 codes: int32 dot products (the symmetric kernel).

    Parameters
    ----------
    query_codes, codes : np.ndarray
        int8 (Q, D) and (N, D), both quantized with ``ranges``.
    ranges : Ranges
        with one step for every dimension (:func:`shared_step`); others raise ``ValueError``.
    k : int
        1 <= k <= N.
    doc_terms : np.ndarray, optional
        :func:`symmetric_doc_terms` of ``codes``, computed once per index (else computed here, one pass).

    Returns
    -------
    scores : np.ndarray
        float32 (Q, k): the inner products of the dequantized queries and documents, up to float rounding.
    indices : np.ndarray
        int64 (Q, k); equal scores by lower index first.

    Examples
    --------
    >>> from course_lib.quantization import calibrate, quantize_scalar
    >>> x = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    >>> r = shared_step(calibrate(x))
    >>> s, i = symmetric_topk(quantize_scalar(np.array([[0.8, 0.6]], np.float32), r), quantize_scalar(x, r), r, 2)
    >>> i.tolist()
    [[2, 0]]
    """
    query_codes, codes, k, s, doc_terms, base = _symmetric_inputs(query_codes, codes, ranges, k, bits, doc_terms)
    return _scan_all(_kernels()[1], np.ascontiguousarray(query_codes), base, codes, doc_terms, s * s, k)


def symmetric_topk_reference(query_codes: np.ndarray, codes: np.ndarray, ranges: Ranges, k: int, bits: int = 8,
                             doc_terms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`symmetric_topk` in readable NumPy: an int64 matrix product of the codes, then the float terms."""
    query_codes, codes, k, s, doc_terms, base = _symmetric_inputs(query_codes, codes, ranges, k, bits, doc_terms)
    dots = query_codes.astype(np.int64) @ codes.astype(np.int64).T  # (Q, N), exact: widened before multiplying
    scores = (base[:, None] + doc_terms[None, :] + (s * s) * dots).astype(np.float32)  # (Q, N)
    return _select_topk(scores, k)
