"""Binary codes: exact Hamming top-k (a numba kernel and its NumPy reference), rescoring a shortlist, faiss.

A binary code keeps one sign bit per dimension, packed big-endian into bytes
(:func:`course_lib.quantization.quantize_binary`): 48 bytes for 384 dims, 32x smaller than float32.
Two codes are compared by their Hamming distance, popcount(a XOR b), which for sign bits estimates the
angle between the vectors (:math:`E[d_H] / n = \\theta / \\pi`). Retrieval in two stages: a Hamming
shortlist of ``k * multiplier`` documents, then :func:`rescore` with the float query against what is stored
for them (:func:`binary_search`).
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from course_lib import validation as V
from course_lib.search import BLOCK_BYTES


def _check_pair(query_codes, corpus_codes) -> None:
    V.check_codes("query_codes", query_codes)
    V.check_codes("corpus_codes", corpus_codes)
    V.check_same_dims("query_codes", query_codes, "corpus_codes", corpus_codes, what="bytes per code")


def _check_codes(query_codes, corpus_codes, k) -> int:
    _check_pair(query_codes, corpus_codes)
    return V.check_k(k, corpus_codes.shape[0])


def hamming_distances(query_codes: np.ndarray, corpus_codes: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances between packed binary codes: popcount(q XOR d), summed over bytes.

    The readable reference: it materializes (Q, N, bytes), so keep Q x N modest.

    Parameters
    ----------
    query_codes : np.ndarray
        uint8 (Q, B) packed bits (``course_lib.quantization.quantize_binary``).
    corpus_codes : np.ndarray
        uint8 (N, B), the same B.

    Returns
    -------
    np.ndarray
        int32 (Q, N), each in [0, 8 * B].

    >>> hamming_distances(np.array([[0b1010_0000]], np.uint8), np.array([[0b1010_0000], [0b0101_0001]], np.uint8))
    array([[0, 5]], dtype=int32)
    """
    _check_pair(query_codes, corpus_codes)
    out = np.empty((query_codes.shape[0], corpus_codes.shape[0]), dtype=np.int32)  # (Q, N)
    block = max(1, BLOCK_BYTES // max(1, corpus_codes.size))
    for start in range(0, query_codes.shape[0], block):
        xor = query_codes[start:start + block, None, :] ^ corpus_codes[None, :, :]  # (b, N, B)
        out[start:start + block] = np.bitwise_count(xor).sum(axis=2, dtype=np.int32)  # (b, N)
    return out



HAMMING_CHUNK = 2048  # documents per parallel task: 2048 x 128 B = 256 KiB of 1024-bit codes stays in L2
HAMMING_QUERY_BLOCK = 32  # queries whose distance rows (uint16, or uint32 past 65,535 bits; N each) are held at once


def hamming_topk_reference(query_codes: np.ndarray, corpus_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hamming_topk` in readable NumPy: all distances, then a stable sort (slow; for teaching and tests)."""
    k = _check_codes(query_codes, corpus_codes, k)
    dist = hamming_distances(query_codes, corpus_codes)  # (Q, N) int32
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]  # distance ascending, ties: lower index first
    return np.take_along_axis(dist, idx, axis=1), idx.astype(np.int64)


@functools.cache
def _hamming_kernels():
    """Compile the numba kernels on first use: XOR + popcount over 64-bit words, then a counting selection."""
    import numba
    from numba.extending import intrinsic

    @intrinsic
    def popcount(typingctx, x):  # LLVM's ctpop: one POPCNT instruction per word on x86-64
        def codegen(context, builder, signature, args):
            fn = builder.module.declare_intrinsic("llvm.ctpop", [args[0].type])
            return builder.call(fn, args)
        return x(x), codegen

    @numba.njit(parallel=True, cache=True)
    def distances(q, c, out, chunk):  # q (B, W), c (N, W) uint64 or uint8 words -> out (B, N) uint16/32
        n, w = c.shape
        nq = q.shape[0]
        for ch in numba.prange((n + chunk - 1) // chunk):
            lo, hi = ch * chunk, min(n, (ch + 1) * chunk)  # the chunk of documents stays in cache across queries
            qi = 0
            while qi + 4 <= nq:  # four queries per document load: a quarter of the cache traffic
                for i in range(lo, hi):
                    # unsigned throughout: int64 + uint64 would become float64 in numba
                    d0, d1, d2, d3 = np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0)
                    for j in range(w):
                        x = c[i, j]
                        d0 += popcount(q[qi, j] ^ x)
                        d1 += popcount(q[qi + 1, j] ^ x)
                        d2 += popcount(q[qi + 2, j] ^ x)
                        d3 += popcount(q[qi + 3, j] ^ x)
                    out[qi, i], out[qi + 1, i], out[qi + 2, i], out[qi + 3, i] = d0, d1, d2, d3
                qi += 4
            while qi < nq:
                for i in range(lo, hi):
                    d = np.uint64(0)
                    for j in range(w):
                        d += popcount(q[qi, j] ^ c[i, j])
                    out[qi, i] = d
                qi += 1

    @numba.njit(parallel=True, cache=True)
    def select(dist, k, nbits, out_d, out_i):  # exact top-k per row by counting sort: (distance, index) ascending
        nq, n = dist.shape
        for qi in numba.prange(nq):
            hist = np.zeros(nbits + 1, np.int64)
            for i in range(n):
                hist[dist[qi, i]] += 1
            below, t = 0, 0
            while below + hist[t] < k:  # t: the distance of the k-th nearest
                below += hist[t]
                t += 1
            slot = np.empty(t + 1, np.int64)  # next output position for each distance <= t
            acc = 0
            for d in range(t + 1):
                slot[d] = acc
                acc += hist[d]
            for i in range(n):  # scanning in index order makes ties go to the lower index
                d = dist[qi, i]
                if d <= t and slot[d] < k:
                    out_d[qi, slot[d]] = d
                    out_i[qi, slot[d]] = i
                    slot[d] += 1

    @numba.njit(parallel=True, cache=True)
    def select_chunked(dist, k, nbits, out_d, out_i, nchunks):  # the same result, parallel within each row
        nq, n = dist.shape
        size = (n + nchunks - 1) // nchunks
        for qi in range(nq):
            hist = np.zeros((nchunks, nbits + 1), np.int64)
            for ch in numba.prange(nchunks):
                for i in range(ch * size, min(n, (ch + 1) * size)):
                    hist[ch, dist[qi, i]] += 1
            total = hist.sum(axis=0)
            below, t = 0, 0
            while below + total[t] < k:
                below += total[t]
                t += 1
            slot = np.empty((nchunks, t + 1), np.int64)  # where each chunk writes its codes at distance d
            acc = 0
            for d in range(t + 1):
                for ch in range(nchunks):  # chunk order, then index order within a chunk: lower index first
                    slot[ch, d] = acc
                    acc += hist[ch, d]
            for ch in numba.prange(nchunks):
                for i in range(ch * size, min(n, (ch + 1) * size)):
                    d = dist[qi, i]
                    if d <= t:
                        pos = slot[ch, d]
                        if pos < k:  # only ties at distance t can overflow k: the later ones are dropped
                            out_d[qi, pos] = d
                            out_i[qi, pos] = i
                        slot[ch, d] = pos + 1

    return distances, select, select_chunked


def hamming_topk(query_codes: np.ndarray, corpus_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest codes by Hamming distance.

    A compiled kernel (numba): XOR and popcount over 64-bit words, parallel over chunks of documents;
    then a counting selection (distances are small integers) instead of a sort, O(N) per query,
    parallel over queries, or within each query when there are fewer queries than cores.

    Parameters
    ----------
    query_codes : np.ndarray
        uint8 (Q, B) packed bits, as :func:`course_lib.quantization.quantize_binary` makes them.
    corpus_codes : np.ndarray
        uint8 (N, B), the same B.
    k : int
        1 <= k <= N.

    Returns
    -------
    distances : np.ndarray
        int32 (Q, k), ascending.
    indices : np.ndarray
        int64 (Q, k). **Tie rule:** equal distances are ordered by lower corpus index first, so the
        result is deterministic. faiss ``IndexBinaryFlat`` returns the same distances but may order
        (and, at the k-th place, choose) tied codes differently.

    Examples
    --------
    >>> c = np.array([[0b1111_0000], [0b1111_0001], [0b0000_1111], [0b1111_0000]], np.uint8)
    >>> d, i = hamming_topk(np.array([[0b1111_0000]], np.uint8), c, k=3)
    >>> d.tolist(), i.tolist()
    ([[0, 0, 1]], [[0, 3, 1]])
    """
    k = _check_codes(query_codes, corpus_codes, k)
    import numba

    distances, select, select_chunked = _hamming_kernels()
    threads = numba.get_num_threads()
    width = corpus_codes.shape[1]
    nbits = 8 * width
    if width % 8 == 0:  # 64-bit words: view, no copy
        q = np.ascontiguousarray(query_codes).view(np.uint64)  # (Q, B / 8)
        c = np.ascontiguousarray(corpus_codes).view(np.uint64)  # (N, B / 8)
    else:  # byte at a time: any width
        q, c = np.ascontiguousarray(query_codes), np.ascontiguousarray(corpus_codes)  # (Q, B), (N, B)
    nq, n = q.shape[0], c.shape[0]
    out_d = np.empty((nq, k), np.int32)  # (Q, k)
    out_i = np.empty((nq, k), np.int64)  # (Q, k)
    # (min(Q, 32), N), reused by every block: uint16 holds distances up to 65,535 bits, longer codes need uint32
    dist = np.empty((min(nq, HAMMING_QUERY_BLOCK), n), np.uint16 if nbits <= np.iinfo(np.uint16).max else np.uint32)
    for start in range(0, nq, HAMMING_QUERY_BLOCK):
        qb = q[start:start + HAMMING_QUERY_BLOCK]  # (b, words)
        block = dist[:qb.shape[0]]  # (b, N)
        distances(qb, c, block, HAMMING_CHUNK)
        rows = slice(start, start + qb.shape[0])
        if qb.shape[0] < threads:  # too few queries to keep every core busy: split each row instead
            select_chunked(block, k, nbits, out_d[rows], out_i[rows], 4 * threads)
        else:
            select(block, k, nbits, out_d[rows], out_i[rows])
    return out_d, out_i


RescorePrecision = Literal["float32", "int8", "uint8", "ubinary"]


def rescore(query_emb: np.ndarray, candidates: np.ndarray, corpus: np.ndarray, k: int,
            *, precision: RescorePrecision = "float32", ranges=None) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's shortlist by the float query's dot product with the candidates' stored vectors.

    Parameters
    ----------
    query_emb : np.ndarray
        float (Q, D): the query in full precision (asymmetric scoring).
    candidates : np.ndarray
        int (Q, C) corpus row indices, e.g. from :func:`hamming_topk`; -1 marks padding (faiss' empty slots).
    corpus : np.ndarray
        What is stored for the documents: ``"float32"``: float (N, D); ``"int8"``/``"uint8"``: scalar codes
        (N, D), dequantized with ``ranges`` before the dot product (never scored raw); ``"ubinary"``: packed
        bits (N, ceil(D/8)), unpacked to +-1.
    k : int
        1 <= k <= C.
    precision : {"float32", "int8", "uint8", "ubinary"}
    ranges : course_lib.quantization.Ranges
        The calibration the codes were made with (scalar precisions only).

    Returns
    -------
    scores : np.ndarray
        float32 (Q, k), descending; padding scores -inf.
    indices : np.ndarray
        int64 (Q, k); equal scores keep their shortlist order.

    Notes
    -----
    For ``"ubinary"``, +-1 and {0, 1} bits rank a query's candidates the same way: ``q . b = (q . s + sum(q)) / 2``
    with ``s = 2b - 1``, and ``sum(q)`` is constant per query (sentence-transformers scores {0, 1}).

    Examples
    --------
    >>> corpus = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    >>> s, i = rescore(np.array([[0, 1]], np.float32), np.array([[0, 1]]), corpus, k=2)
    >>> i.tolist(), [round(float(x), 2) for x in s[0]]
    ([[1, 0]], [0.8, 0.0])
    """
    from course_lib import quantization as Q

    q = V.check_matrix("query_emb", query_emb)
    if not isinstance(corpus, np.ndarray) or corpus.ndim != 2:
        raise TypeError(f"corpus must be a 2-D numpy array, got {V.describe(corpus)}")
    cand = V.check_indices("candidates", candidates, corpus.shape[0], padding=True, what="rows of corpus")  # (Q, C)
    if cand.shape[0] != q.shape[0] or cand.shape[1] == 0:
        raise ValueError(f"candidates must be an int array of shape (Q={q.shape[0]}, C >= 1), got "
                         f"{cand.dtype} {cand.shape}")
    k = V.check_k(k, cand.shape[1], what="the shortlist length")
    V.check_choice("precision", precision, ("float32", "int8", "uint8", "ubinary"))
    pad = cand < 0  # (Q, C)
    rows = corpus[np.where(pad, 0, cand)]  # (Q, C, D) or (Q, C, bytes): only the shortlist is touched
    flat = rows.reshape(-1, rows.shape[-1])  # (Q * C, D) or (Q * C, bytes)
    dtype = np.float32
    if precision == "float32":
        if corpus.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"corpus must be a float array for precision 'float32' (float16/float32/float64), "
                            f"got dtype {corpus.dtype}")
        if not np.isfinite(flat[~pad.reshape(-1)]).all():  # only the shortlist is read: a full scan costs O(N D)
            raise ValueError("corpus contains NaN or inf in a shortlisted row")
        dtype = np.float64 if np.float64 in (q.dtype, corpus.dtype) else np.float32  # float64 stays float64
        vecs = flat.astype(dtype, copy=False)  # (Q * C, D)
    elif precision in ("int8", "uint8"):
        if corpus.dtype != np.dtype(precision):
            raise TypeError(f"precision {precision!r} needs {precision} codes as corpus, got {corpus.dtype}")
        if ranges is None:
            raise ValueError("scalar codes need the ranges they were quantized with (ranges=...)")
        vecs = Q.dequantize_scalar(flat, ranges)  # (Q * C, D): the per-dimension scale and offset put back
    else:  # ubinary
        V.check_codes("corpus", corpus)
        if -(-q.shape[1] // 8) != corpus.shape[1]:
            raise ValueError(f"ubinary corpus must be uint8 (N, {-(-q.shape[1] // 8)}) for {q.shape[1]}-dim "
                             f"queries, got {corpus.dtype} {corpus.shape}")
        vecs = Q.unpack_binary(flat, q.shape[1], signed=True)  # (Q * C, D) of +-1
    if vecs.shape[1] != q.shape[1]:
        raise ValueError(f"corpus vectors have {vecs.shape[1]} dims but query_emb has {q.shape[1]}")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = np.einsum("qd,qcd->qc", q.astype(dtype, copy=False), vecs.reshape(cand.shape + (q.shape[1],)),
                           optimize=True)  # (Q, C)
    if not np.isfinite(scores[~pad]).all():
        raise ValueError(f"the scores of query_emb against the shortlisted rows of corpus overflow "
                         f"{np.dtype(dtype).name} although both are finite: scale the embeddings down")
    scores = np.where(pad, -np.inf, scores).astype(dtype)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (Q, k) columns of the shortlist
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(cand, order, axis=1).astype(np.int64)


def binary_search(query_emb: np.ndarray, corpus_codes: np.ndarray, k: int, *, multiplier: int = 4,
                  rescore_corpus: np.ndarray | None = None, precision: RescorePrecision = "ubinary",
                  ranges=None) -> tuple[np.ndarray, np.ndarray]:
    """Binary retrieval with rescoring: Hamming shortlist of ``k * multiplier``, then :func:`rescore` to ``k``.

    ``k`` is in [1, N]; the shortlist ``k * multiplier`` is a cut-off, so it reads at most the whole corpus.

    ``rescore_corpus`` is what the second stage reads (float32 documents, int8/uint8 codes with
    ``ranges``); by default the binary codes themselves, unpacked to +-1 (``precision="ubinary"``).
    With ``multiplier=1`` the result is the Hamming top-k re-ordered by the rescoring.

    >>> rng = np.random.default_rng(0)
    >>> docs = rng.standard_normal((100, 64)).astype(np.float32)
    >>> from course_lib.quantization import quantize_binary
    >>> s, i = binary_search(docs[:2], quantize_binary(docs), k=1, rescore_corpus=docs, precision="float32")
    >>> i.tolist()
    [[0], [1]]
    """
    from course_lib.quantization import quantize_binary

    q = V.check_matrix("query_emb", query_emb)
    V.check_codes("corpus_codes", corpus_codes)
    k = V.check_k(k, corpus_codes.shape[0])
    multiplier = V.check_int("multiplier", multiplier, low=1)
    if rescore_corpus is not None and (not isinstance(rescore_corpus, np.ndarray) or rescore_corpus.ndim != 2
                                       or rescore_corpus.shape[0] != corpus_codes.shape[0]):
        raise ValueError(f"rescore_corpus must be a 2-D numpy array with one row per code "
                         f"({corpus_codes.shape[0]}), got {V.describe(rescore_corpus)}")
    shortlist = min(corpus_codes.shape[0], k * multiplier)  # a cut-off: at most the whole corpus
    _, cand = hamming_topk(quantize_binary(q), corpus_codes, shortlist)  # (Q, shortlist)
    return rescore(q, cand, corpus_codes if rescore_corpus is None else rescore_corpus, k, precision=precision,
                   ranges=ranges)


def faiss_binary_index(codes: np.ndarray, kind: Literal["flat", "hnsw", "ivf"] = "flat", *, hnsw_m: int = 16,
                       ef_search: int = 64, nlist: int | None = None, nprobe: int = 8):
    """A faiss binary index over course_lib codes (uint8 (N, B), packed big-endian, as faiss expects).

    ``"flat"``: ``IndexBinaryFlat``, exact. ``"hnsw"``: ``IndexBinaryHNSW`` (graph; ``hnsw_m`` links,
    ``ef_search`` breadth at query time). ``"ivf"``: ``IndexBinaryIVF`` over a flat quantizer, trained on
    the codes (``nlist`` lists, default about 4 sqrt(N) but at least 39 codes a list; ``nprobe`` lists
    visited per query).
    """
    V.check_codes("codes", codes)
    V.check_choice("kind", kind, ("flat", "hnsw", "ivf"))
    V.check_int("hnsw_m", hnsw_m, low=2)
    V.check_int("ef_search", ef_search, low=1)
    V.check_int("nlist", nlist, low=1, high=codes.shape[0], what="at most one list per code", allow_none=True)
    V.check_int("nprobe", nprobe, low=1)
    import faiss

    nbits = 8 * codes.shape[1]
    codes = np.ascontiguousarray(codes)
    if kind == "flat":
        index = faiss.IndexBinaryFlat(nbits)
    elif kind == "hnsw":
        index = faiss.IndexBinaryHNSW(nbits, hnsw_m)
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = nlist or max(1, min(int(4 * np.sqrt(codes.shape[0])), codes.shape[0] // 39))  # faiss: >= 39 per list
        quantizer = faiss.IndexBinaryFlat(nbits)
        index = faiss.IndexBinaryIVF(quantizer, nbits, nlist)
        index.course_lib_quantizer = quantizer  # keep the quantizer alive as long as the index (faiss won't)
        index.train(codes)
        index.nprobe = nprobe
    index.add(codes)
    return index
