"""Quality against bytes: score every compressed form of a corpus on one retrieval task.

A :class:`Retrieval` holds one fixed task (query and corpus embeddings, ids, qrels) and scores any
(Q, N) similarity matrix with course_lib's trec_eval-exact metrics. :func:`precision_table` runs every
precision of :mod:`course_lib.quantization` through it; :func:`calibration_study` compares where the
int8 ranges come from. The benchmark ``benchmarks/quantization_quality.py``, notebook 02 and the
capstone all use these, so their figures are computed one way.

Two ways to score quantized vectors:

- **asymmetric**: the float query against dequantized documents (only the index is compressed);
- **symmetric**: query and documents both quantized with the same ranges, then both dequantized
  (equal to an integer dot product with the per-dimension scale and offset put back).

The **naive** integer score ``codes_q . codes_d`` ignores the scale and offset: every dimension is
then weighted by ``1 / step_j`` and shifted by the range midpoint, which the tables show is costly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from course_lib import quantization as Q
from course_lib import validation as V
from course_lib.metrics import evaluate
from course_lib.binary import hamming_distances
from course_lib.search import run_from_topk, topk_scores

PERCENTILE_GRID = (99.99, 99.9, 99.5, 99.0, 98.0, 95.0)


@dataclass
class Retrieval:
    """One retrieval task: float32 embeddings (Q, D) and (N, D), their ids, and the qrels.

    ``depth``: documents ranked per query when scoring, in [1, N]; None is 100, or N when the corpus is smaller.

    Examples
    --------
    The toy task of this module's examples: 3 queries, 5 documents, 4 dims, one relevant document a query
    (``q0 -> d0``, ``q1 -> d1``, ``q2 -> d2``). ``d2 = [.5, .5, 1, 1]`` holds q2's two dims and half of q0's
    and q1's; ``d3 = [0, 0, 1, 0]`` holds one of q2's dims; ``d4 = [.5, .5, 0, 0]`` is half q0, half q1.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> ret.fp32_ndcg  # the inner product ranks every query's document first (q2: d2 scores 2, d3 1)
    1.0
    >>> m = ret.metrics(np.eye(3, 5) + [0, 0, 0, 0, 2])  # (Q, N) scores: d4 first, the relevant document 2nd
    >>> round(m["ndcg@10"], 4), m["mrr@10"]  # 1 / log2(3) and 1 / 2 for every query
    (0.6309, 0.5)
    """

    query_emb: np.ndarray
    corpus_emb: np.ndarray
    query_ids: Sequence[str]
    doc_ids: Sequence[str]
    qrels: Mapping[str, Mapping[str, int]]
    depth: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        q = V.check_matrix("query_emb", self.query_emb)
        c = V.check_matrix("corpus_emb", self.corpus_emb)
        V.check_same_dims("query_emb", q, "corpus_emb", c)
        if len(V.check_ids("query_ids", self.query_ids)) != q.shape[0]:
            raise ValueError(f"query_ids must have one id per row of query_emb ({q.shape[0]}), got {len(self.query_ids)}")
        if len(V.check_ids("doc_ids", self.doc_ids)) != c.shape[0]:
            raise ValueError(f"doc_ids must have one id per row of corpus_emb ({c.shape[0]}), got {len(self.doc_ids)}")
        V.check_qrels("qrels", self.qrels, nonempty=True)
        self.depth = V.default_depth(self.depth, c.shape[0], name="depth")

    @classmethod
    def from_dataset(cls, model, ds, depth: int | None = None) -> Retrieval:
        """Encode (or load from the cache) ``ds``'s corpus and queries with ``model``."""
        from course_lib.embed import encode_corpus, encode_queries

        return cls(encode_queries(model, ds.queries), encode_corpus(model, ds.corpus),
                   list(ds.queries), list(ds.corpus), ds.qrels, depth)

    def metrics(self, scores: np.ndarray) -> dict[str, float]:
        """Rank each row of a (Q, N) score matrix (top ``depth``) and evaluate it against the qrels."""
        V.check_array("scores", scores, ndim=2, kind="real", shape="(queries, docs)")
        if scores.shape != (len(self.query_ids), len(self.doc_ids)):
            raise ValueError(f"scores must have shape (Q, N) = {(len(self.query_ids), len(self.doc_ids))}, "
                             f"got {scores.shape}")
        s, i = topk_scores(scores.astype(np.float64), self.depth)  # (Q, depth)
        return evaluate(run_from_topk(s, i, self.query_ids, self.doc_ids), self.qrels)

    def ndcg(self, scores: np.ndarray) -> float:
        """nDCG@10 of a (Q, N) score matrix."""
        return self.metrics(scores)["ndcg@10"]

    def dot_ndcg(self, q: np.ndarray, d: np.ndarray) -> float:
        """nDCG@10 of the inner product of two float matrices."""
        V.check_matrix("q", q)
        V.check_matrix("d", d)
        V.check_same_dims("q", q, "d", d)
        return self.ndcg(q.astype(np.float32) @ d.astype(np.float32).T)  # (Q, D) @ (D, N) -> (Q, N)

    @property
    def fp32_ndcg(self) -> float:
        """nDCG@10 of the float32 embeddings themselves (computed once): the reference of every retention."""
        if "fp32" not in self._cache:
            self._cache["fp32"] = self.dot_ndcg(self.query_emb, self.corpus_emb)
        return self._cache["fp32"]


def _check_ret(ret, name: str = "ret") -> Retrieval:
    if not isinstance(ret, Retrieval):
        raise TypeError(f"{name} must be a course_lib.compression.Retrieval, got {type(ret).__name__}")
    return ret


def _check_bits_list(bits) -> tuple[int, ...]:
    bits = tuple(V.check_sequence("bits", bits, "ints"))
    if not bits:
        raise ValueError("bits must hold at least one bit width")
    return tuple(V.check_int("bits entry", b, low=1, high=8) for b in bits)


def _row(name: str, ret: Retrieval, bytes_: int, sym: float, asym: float | None = None,
         recon: np.ndarray | None = None, calibration: str = "", ) -> dict:
    row = {"representation": name, "calibration": calibration, "bytes": bytes_,
           "ndcg@10 asym": None if asym is None else round(asym, 4), "ndcg@10 sym": round(sym, 4),
           "retention": round(max(sym, asym or 0.0) / ret.fp32_ndcg, 4), "mse": None, "cosine": None}
    if recon is not None:
        row.update(Q.reconstruction_error(ret.corpus_emb, recon))
    return row


def scalar_scores(ret: Retrieval, ranges: Q.Ranges, bits: int) -> dict[str, object]:
    """Quantize corpus and queries with ``ranges`` at ``bits``; nDCG@10 asymmetric and symmetric.

    Returns ``{"asym", "sym", "recon"}``: the two nDCG@10 and the dequantized corpus, float32 (N, D).

    Examples
    --------
    The toy task of :class:`Retrieval`, whose min-max ranges are [0, 1] in every dim:

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> r = Q.calibrate(c)
    >>> res = scalar_scores(ret, r, 8)
    >>> res["asym"], res["sym"], (res["recon"][2] * 255).round().tolist()  # d2 = [.5, .5, 1, 1]: levels of 0..255
    (1.0, 1.0, [128.0, 128.0, 255.0, 255.0])

    With 1 bit (two levels, 0 and 1) d2 and d4 round to [1, 1, 1, 1] and [1, 1, 0, 0]: q0 then scores d0, d2
    and d4 alike, trec_eval's tie rule (doc id descending) puts d0 3rd, and the same for q1: (1/2 + 1/2 + 1) / 3.

    >>> res = scalar_scores(ret, r, 1)
    >>> res["recon"][[2, 4]].tolist(), round(res["sym"], 4)
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], 0.6667)
    """
    _check_ret(ret)
    d_hat = Q.dequantize_scalar(Q.quantize_scalar(ret.corpus_emb, ranges, "uint8", bits), ranges, bits)  # (N, D)
    q_hat = Q.dequantize_scalar(Q.quantize_scalar(ret.query_emb, ranges, "uint8", bits), ranges, bits)  # (Q, D)
    return {"asym": ret.dot_ndcg(ret.query_emb, d_hat), "sym": ret.dot_ndcg(q_hat, d_hat), "recon": d_hat}


def naive_code_ndcg(ret: Retrieval, ranges: Q.Ranges, dtype: Q.CodeDtype) -> float:
    """nDCG@10 of the raw integer dot product of 8-bit codes, ignoring scale and offset.

    Examples
    --------
    The toy task of :class:`Retrieval`: every lower bound is 0, so uint8 codes are ``round(255 x)``, the
    values scaled, and their dot product ranks as the floats do. int8 codes are shifted by -128, so a 0
    becomes -128 and two zeros add 16384: q2 = [0, 0, 1, 1] (codes [-128, -128, 127, 127]) scores
    d3 = [0, 0, 1, 0] 32641 and d2 = [.5, .5, 1, 1] (codes [0, 0, 127, 127]) 32258, so d2 drops to 2nd.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> r = Q.calibrate(c)
    >>> naive_code_ndcg(ret, r, "uint8"), round(naive_code_ndcg(ret, r, "int8"), 4)  # (1 + 1 + 1 / log2(3)) / 3
    (1.0, 0.877)
    """
    _check_ret(ret)
    cq = Q.quantize_scalar(ret.query_emb, ranges, dtype).astype(np.int32)  # (Q, D); upcast: int8 @ int8 overflows
    cd = Q.quantize_scalar(ret.corpus_emb, ranges, dtype).astype(np.int32)  # (N, D)
    return ret.ndcg((cq @ cd.T).astype(np.float64))  # (Q, N)


def hamming_ndcg(ret: Retrieval) -> float:
    """nDCG@10 of binary codes ranked by Hamming distance, no rescoring (ties: trec_eval's rule).

    Examples
    --------
    The toy task of :class:`Retrieval`: the sign bits of q2 = [0, 0, 1, 1] are 0011, one bit from
    d3's 0010 and two from d2's 1111, so d2 is 2nd; q0 and q1 find their documents' bits exactly.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> round(hamming_ndcg(ret), 4)  # (1 + 1 + 1 / log2(3)) / 3
    0.877
    """
    _check_ret(ret)
    dist = hamming_distances(Q.quantize_binary(ret.query_emb), Q.quantize_binary(ret.corpus_emb))  # (Q, N) int32
    return ret.ndcg(-dist.astype(np.float64))


def select_percentile(dev: Retrieval, bits: int, grid: Sequence[float] = PERCENTILE_GRID) -> tuple[float, dict]:
    """The calibration percentile with the best symmetric nDCG@10 on a *development* task (never the test).

    Returns ``(best percentile, {percentile: nDCG@10})``; equal scores go to the higher percentile (less clipping).

    Examples
    --------
    The toy task of :class:`Retrieval` as the development task: 8 bits lose nothing there at any percentile
    of the grid, so all tie and the highest wins.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> best, scores = select_percentile(ret, 8)
    >>> best, sorted(set(scores.values()))
    (99.99, [1.0])
    """
    _check_ret(dev, "dev")
    bits = V.check_int("bits", bits, low=1, high=8)
    grid = V.check_sequence("grid", grid, "percentiles")
    if not grid:
        raise ValueError("grid must hold at least one percentile")
    for p in grid:
        V.check_number("grid entry", p, low=50, high=100, low_open=True)
    scores = {p: scalar_scores(dev, Q.calibrate(dev.corpus_emb, "percentile", p), bits)["sym"] for p in grid}
    return max(scores, key=lambda p: (scores[p], p)), scores


def precision_table(ret: Retrieval, percentiles: Mapping[int, float] | None = None,
                    bits: Sequence[int] = (8, 4, 2)) -> list[dict]:
    """Every precision of the course on one task: nDCG@10, retention of fp32, bytes per vector, error.

    Scalar codes are calibrated on the corpus, min-max and percentile (``percentiles[bits]``, default 99).

    Examples
    --------
    The toy task of :class:`Retrieval` (4 dims: 16 bytes in fp32, 4 in int8, 1 in binary). The naive int8 dot
    product and Hamming distance both put q2's document 2nd (see :func:`naive_code_ndcg`, :func:`hamming_ndcg`).

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> rows = precision_table(ret, bits=(8,))
    >>> print(markdown_table(rows, ["representation", "calibration", "bytes", "ndcg@10 sym"]))
    | representation | calibration | bytes | ndcg@10 sym |
    |---|---|---|---|
    | fp32 |  | 16 | 1.0 |
    | fp16 |  | 8 | 1.0 |
    | bf16 |  | 8 | 1.0 |
    | int8 | min-max | 4 | 1.0 |
    | int8 | percentile 99 | 4 | 1.0 |
    | uint8 | min-max (same values as int8) | 4 | 1.0 |
    | int8 raw codes (naive dot) | min-max | 4 | 0.877 |
    | uint8 raw codes (naive dot) | min-max | 4 | 1.0 |
    | binary (Hamming, no rescoring) | sign | 1 | 0.877 |
    """
    _check_ret(ret)
    bits = _check_bits_list(bits)
    if percentiles is not None and not isinstance(percentiles, Mapping):
        raise TypeError(f"percentiles must be a dict {{bits: percentile}} or None, got {type(percentiles).__name__}")
    percentiles = dict(percentiles or {})
    for b, p in percentiles.items():
        V.check_int("percentiles key", b, low=1, high=8)
        V.check_number(f"percentiles[{b}]", p, low=50, high=100, low_open=True)
    c, q = ret.corpus_emb, ret.query_emb
    dim = c.shape[1]
    rows = [_row("fp32", ret, Q.bytes_per_vector(dim, 32), ret.fp32_ndcg, recon=c)]
    c16 = Q.to_float16(c).astype(np.float32)  # (N, D) float16 values, held as float32
    rows.append(_row("fp16", ret, Q.bytes_per_vector(dim, 16), ret.dot_ndcg(Q.to_float16(q), c16),
                     ret.dot_ndcg(q, c16), c16))
    cb = Q.from_bfloat16(Q.to_bfloat16(c))  # (N, D) bfloat16 values, held as float32
    rows.append(_row("bf16", ret, Q.bytes_per_vector(dim, 16), ret.dot_ndcg(Q.from_bfloat16(Q.to_bfloat16(q)), cb),
                     ret.dot_ndcg(q, cb), cb))
    for b in bits:
        for method in ("minmax", "percentile"):
            p = percentiles.get(b, 99.0)
            r = Q.calibrate(c, method, p)
            res = scalar_scores(ret, r, b)
            rows.append(_row(f"int{b}", ret, Q.bytes_per_vector(dim, b), res["sym"], res["asym"], res["recon"],
                             "min-max" if method == "minmax" else f"percentile {p:g}"))
    r8 = Q.calibrate(c)
    rows.append(_row("uint8", ret, dim, scalar_scores(ret, r8, 8)["sym"], calibration="min-max (same values as int8)"))
    rows.append(_row("int8 raw codes (naive dot)", ret, dim, naive_code_ndcg(ret, r8, "int8"), calibration="min-max"))
    rows.append(_row("uint8 raw codes (naive dot)", ret, dim, naive_code_ndcg(ret, r8, "uint8"), calibration="min-max"))
    rows.append(_row("binary (Hamming, no rescoring)", ret, Q.bytes_per_vector(dim, 1), hamming_ndcg(ret),
                     calibration="sign"))
    return rows


def calibration_study(ret: Retrieval, samples: Mapping[str, np.ndarray], bits: Sequence[int] = (8, 4),
                      batch_sizes: Sequence[int] = (64, 2)) -> list[dict]:
    """Symmetric nDCG@10 with ranges calibrated on each named sample, and on each batch by itself.

    ``samples`` maps a label to a float (n, D) calibration sample (the corpus, a held-out set, ...).
    The "per batch" rows quantize every batch of ``batch_size`` corpus rows (and every batch of queries)
    with ranges from that batch alone: usable if each batch is dequantized with its own ranges, wrong if
    raw codes from different batches are compared; and the ranges (8 D bytes a batch) must be stored
    too, which for tiny batches costs more than the codes save (a batch of 2 stores its rows as ranges).

    Examples
    --------
    The toy task of :class:`Retrieval`: 4 code bytes a document, plus 8 x 4 = 32 bytes of ranges shared by
    the 5 documents (10.4) or by each batch of 2 (20.0). Dequantized batch by batch, nothing is lost; raw
    codes from batches with different ranges mean different values, and one query's document falls to 4th.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> print(markdown_table(calibration_study(ret, {"corpus": c}, bits=(8,), batch_sizes=(2,))))
    | bits | calibrated on | rows | bytes/doc incl. ranges | ndcg@10 sym |
    |---|---|---|---|---|
    | 8 | corpus | 5 | 10.4 | 1.0 |
    | 8 | each batch of 2 (dequantized per batch) | 2 | 20.0 | 1.0 |
    | 8 | each batch of 2 (raw codes compared) | 2 | 20.0 | 0.8102 |
    """
    _check_ret(ret)
    bits = _check_bits_list(bits)
    if not isinstance(samples, Mapping) or not samples:
        raise TypeError(f"samples must be a non-empty dict {{label: (n, D) float array}}, got {type(samples).__name__}")
    for label, sample in samples.items():
        V.check_matrix(f"samples[{label!r}]", sample)
        V.check_same_dims(f"samples[{label!r}]", sample, "ret.corpus_emb", ret.corpus_emb)
    batch_sizes = tuple(V.check_int("batch_sizes entry", b, low=2)
                        for b in V.check_sequence("batch_sizes", batch_sizes, "ints"))
    rows = []
    n, dim = ret.corpus_emb.shape  # ranges: 2 x D float32 = 8 D bytes, shared by the docs they cover
    for b in bits:
        for label, sample in samples.items():
            r = Q.calibrate(sample)
            rows.append({"bits": b, "calibrated on": label, "rows": int(sample.shape[0]),
                         "bytes/doc incl. ranges": round(Q.bytes_per_vector(dim, b) + 8 * dim / n, 1),
                         "ndcg@10 sym": round(scalar_scores(ret, r, b)["sym"], 4)})
        for size in batch_sizes:
            d_hat, d_codes = _per_batch(ret.corpus_emb, b, size)  # (N, D) each
            q_hat, q_codes = _per_batch(ret.query_emb, b, size)  # (Q, D) each
            per_doc = round(Q.bytes_per_vector(dim, b) + 8 * dim / size, 1)
            rows.append({"bits": b, "calibrated on": f"each batch of {size} (dequantized per batch)",
                         "rows": size, "bytes/doc incl. ranges": per_doc,
                         "ndcg@10 sym": round(ret.dot_ndcg(q_hat, d_hat), 4)})
            shift = 2 ** (b - 1)
            raw = ret.ndcg(((q_codes - shift) @ (d_codes - shift).T).astype(np.float64))  # (Q, N) scores
            rows.append({"bits": b, "calibrated on": f"each batch of {size} (raw codes compared)",
                         "rows": size, "bytes/doc incl. ranges": per_doc, "ndcg@10 sym": round(raw, 4)})
    return rows


def _per_batch(x: np.ndarray, bits: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantize each batch of ``size`` rows with ranges calibrated on that batch alone.

    Returns the dequantized values (float32) and the uint8 level codes (int32). A dimension that is
    constant within a batch gets a tiny range around its value (its codes then carry nothing).
    """
    x_hat, codes = np.empty_like(x), np.empty(x.shape, np.int32)  # (R, D) each
    for start in range(0, len(x), size):
        rows = slice(start, min(start + size, len(x)))
        # a final batch of one row has no range to calibrate: borrow the row before it, but write only its own row
        calib = x[rows] if rows.stop - rows.start >= 2 else x[max(0, start - 1):rows.stop]
        lower, upper = calib.min(axis=0), calib.max(axis=0)  # (D,) each
        upper = np.maximum(upper, lower + np.float32(1e-6)).astype(np.float32)  # a floor on the width
        r = Q.Ranges(lower, upper, "minmax", len(calib))
        c = Q.quantize_scalar(x[rows], r, "uint8", bits)  # (b, D) uint8
        x_hat[rows], codes[rows] = Q.dequantize_scalar(c, r, bits), c
    return x_hat, codes


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """Render dict rows as a GitHub markdown table (None as an empty cell).

    >>> print(markdown_table([{"a": 1, "b": None}]))
    | a | b |
    |---|---|
    | 1 |  |
    """
    rows = V.check_sequence("rows", rows, "dicts")
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise TypeError(f"rows[{i}] must be a dict, got {type(r).__name__}")
    if columns is None and not rows:
        raise ValueError("rows must hold at least one row when columns are not given")
    columns = list(rows[0].keys()) if columns is None else V.check_texts("columns", columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def binary_rescore_curve(ret: Retrieval, multipliers: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20),
                         k: int = 10) -> list[dict]:
    """nDCG@10 of binary retrieval with rescoring, for each shortlist multiplier and rescoring store.

    The shortlist is the exact Hamming top ``k * multiplier`` (:func:`course_lib.binary.hamming_topk`); it is
    then rescored with the float query against: int8 codes (calibrated min-max on the corpus, dequantized),
    the float32 documents, or the binary codes themselves (+-1). Retention is over fp32 nDCG@10.

    Examples
    --------
    The toy task of :class:`Retrieval`, top 1: a shortlist of 1 is the Hamming top 1, which for q2 is d3
    (see :func:`hamming_ndcg`), whatever the store; a shortlist of 2 holds d2, and every store ranks it first.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> rows = binary_rescore_curve(ret, (1, 2), k=1)
    >>> print(markdown_table(rows, ["multiplier", "shortlist", "ndcg@10 int8", "ndcg@10 float32", "ndcg@10 ubinary"]))
    | multiplier | shortlist | ndcg@10 int8 | ndcg@10 float32 | ndcg@10 ubinary |
    |---|---|---|---|---|
    | 1 | 1 | 0.6667 | 0.6667 | 0.6667 |
    | 2 | 2 | 1.0 | 1.0 | 1.0 |
    """
    from course_lib.binary import binary_search

    _check_ret(ret)
    k = V.check_k(k, ret.corpus_emb.shape[0])
    multipliers = tuple(V.check_int("multipliers entry", m, low=1)
                        for m in V.check_sequence("multipliers", multipliers, "ints"))
    codes = Q.quantize_binary(ret.corpus_emb)  # (N, ceil(D / 8)) uint8
    r = Q.calibrate(ret.corpus_emb)
    stores = {"int8": (Q.quantize_scalar(ret.corpus_emb, r, "int8"), r),  # (N, D) int8
              "float32": (ret.corpus_emb, None), "ubinary": (codes, None)}
    rows = []
    for m in multipliers:
        row = {"multiplier": m, "shortlist": k * m}
        for name, (store, ranges) in stores.items():
            s, i = binary_search(ret.query_emb, codes, k, multiplier=m, rescore_corpus=store, precision=name,
                                     ranges=ranges)  # (Q, k) each
            ndcg = evaluate(run_from_topk(s, i, ret.query_ids, ret.doc_ids), ret.qrels)["ndcg@10"]
            row[f"ndcg@10 {name}"], row[f"retention {name}"] = round(ndcg, 4), round(ndcg / ret.fp32_ndcg, 4)
        rows.append(row)
    return rows


def binary_scoring_variants(ret: Retrieval) -> list[dict]:
    """Whole-corpus scoring of binary documents: the right ways and the classic mistakes, nDCG@10 each.

    - Hamming distance (symmetric, both binary);
    - float query against +-1 documents (asymmetric, no shortlist), and against {0, 1} documents (the same
      ranking: the offset ``sum(q)`` is constant per query);
    - {0, 1} query against {0, 1} documents by dot product: counts shared ones, so it favours documents
      with many ones (the "forgotten offset": +-1 codes would give Hamming's ranking);
    - float query against raw uint8 codes without dequantizing (each dimension weighted by 1 / step).

    Examples
    --------
    The toy task of :class:`Retrieval`. As +-1 vectors, d2 = 1111 and d4 = 1100 score q0 = [1, 0, 0, 0] and
    q1 as high as their own documents do, and the tie rule puts those 3rd: (1/2 + 1/2 + 1) / 3. The toy's
    lower bounds are 0, so raw uint8 codes are the values times 255, harmless here.

    >>> q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    >>> c = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
    >>> ret = Retrieval(q, c, ["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"],
    ...                 {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
    >>> print(markdown_table(binary_scoring_variants(ret), ["scoring", "ndcg@10"]))
    | scoring | ndcg@10 |
    |---|---|
    | Hamming (binary query, binary docs) | 0.877 |
    | float query . +-1 docs (asymmetric) | 0.6667 |
    | float query . {0,1} docs (asymmetric) | 0.6667 |
    | {0,1} query . {0,1} docs (offset forgotten) | 0.6667 |
    | float query . raw uint8 codes (not dequantized) | 1.0 |
    | float query . dequantized uint8 | 1.0 |
    """
    _check_ret(ret)
    q, c = ret.query_emb, ret.corpus_emb  # (Q, D), (N, D)
    d = c.shape[1]
    qb, cb = Q.quantize_binary(q), Q.quantize_binary(c)  # (Q, ceil(D / 8)), (N, ceil(D / 8)) uint8
    r = Q.calibrate(c)
    u8 = Q.quantize_scalar(c, r, "uint8").astype(np.float32)  # (N, D) codes in [0, 255], not dequantized
    variants = {  # name -> (Q, N) scores
        "Hamming (binary query, binary docs)": -hamming_distances(qb, cb).astype(np.float64),
        "float query . +-1 docs (asymmetric)": q @ Q.unpack_binary(cb, d, signed=True).T,
        "float query . {0,1} docs (asymmetric)": q @ Q.unpack_binary(cb, d).astype(np.float32).T,
        "{0,1} query . {0,1} docs (offset forgotten)": (Q.unpack_binary(qb, d).astype(np.float32)
                                                        @ Q.unpack_binary(cb, d).astype(np.float32).T),
        "float query . raw uint8 codes (not dequantized)": q @ u8.T,
        "float query . dequantized uint8": q @ Q.dequantize_scalar(u8.astype(np.uint8), r).T,
    }
    return [{"scoring": name, "ndcg@10": round(ret.ndcg(s), 4), "retention": round(ret.ndcg(s) / ret.fp32_ndcg, 4)}
            for name, s in variants.items()]
