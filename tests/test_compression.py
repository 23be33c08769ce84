"""The quality-against-bytes measurements, on the real small-mode task (the 1,500-document SciFact sub-corpus)."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import compression as C
from course_lib import quantization as Q
from course_lib.data import load_beir
from course_lib.finetune import compression_check


@pytest.fixture(scope="module")
def task(model):
    return C.Retrieval.from_dataset(model, load_beir("scifact", "test", small=True))


@pytest.fixture(scope="module")
def table(task):
    return {(r["representation"], r["calibration"]): r for r in C.precision_table(task, {8: 99.9, 4: 99.0, 2: 98.0})}


def test_retrieval_scores_a_score_matrix_like_a_dense_search(task):
    direct = task.dot_ndcg(task.query_emb, task.corpus_emb)
    assert direct == task.fp32_ndcg and 0.7 < direct < 0.85  # small mode: fewer distractors than the full 0.6451
    shuffled = task.ndcg(np.random.default_rng(0).standard_normal((len(task.query_ids), len(task.doc_ids))))
    assert shuffled < 0.05  # random scores find almost nothing


def test_precision_table_orders_precisions_as_theory_says(table):
    fp32 = table[("fp32", "")]["ndcg@10 sym"]
    assert abs(table[("fp16", "")]["ndcg@10 sym"] - fp32) < 0.002
    assert table[("int8", "min-max")]["retention"] > 0.995
    assert table[("int4", "percentile 99")]["retention"] > 0.99
    int2_mm, int2_p = table[("int2", "min-max")], table[("int2", "percentile 98")]
    assert int2_p["ndcg@10 sym"] > int2_mm["ndcg@10 sym"]  # percentile calibration matters at 4 levels
    assert int2_mm["mse"] > 10 * table[("int4", "min-max")]["mse"] > 10 * table[("int8", "min-max")]["mse"]
    naive_u8 = table[("uint8 raw codes (naive dot)", "min-max")]["ndcg@10 sym"]
    assert naive_u8 < table[("uint8", "min-max (same values as int8)")]["ndcg@10 sym"] - 0.02
    binary = table[("binary (Hamming, no rescoring)", "sign")]
    assert binary["bytes"] == 48 and 0.8 < binary["retention"] < 0.97


def test_hamming_ranking_equals_the_signed_dot_product(task):
    # For +-1 vectors, q . d = D - 2 * hamming(q, d): the two rankings are the same.
    q = Q.unpack_binary(Q.quantize_binary(task.query_emb), 384, signed=True)
    d = Q.unpack_binary(Q.quantize_binary(task.corpus_emb), 384, signed=True)
    assert C.hamming_ndcg(task) == pytest.approx(task.dot_ndcg(q, d), abs=1e-12)


def test_calibration_study_shows_raw_codes_across_batches_break(task):
    rows = C.calibration_study(task, {"corpus": task.corpus_emb}, bits=(8,), batch_sizes=(2,))
    by = {r["calibrated on"]: r for r in rows}
    assert by["corpus"]["ndcg@10 sym"] > 0.99 * task.fp32_ndcg
    assert by["each batch of 2 (raw codes compared)"]["ndcg@10 sym"] < 0.5 * task.fp32_ndcg
    assert by["each batch of 2 (dequantized per batch)"]["bytes/doc incl. ranges"] > 1536  # ranges cost more than fp32


def test_select_percentile_picks_the_best_on_the_dev_task(task):
    best, scores = C.select_percentile(task, 2, grid=(99.9, 95.0))
    assert scores[best] == max(scores.values()) and set(scores) == {99.9, 95.0}


def test_binary_rescoring_curve_and_scoring_variants(task):
    curve = {r["multiplier"]: r for r in C.binary_rescore_curve(task, multipliers=(1, 4, 20))}
    hamming = C.hamming_ndcg(task)
    assert hamming < curve[1]["ndcg@10 int8"] <= curve[20]["ndcg@10 int8"]  # rescoring re-orders, then recovers
    assert curve[20]["retention float32"] > 0.99 and curve[4]["retention int8"] > 0.97
    v = {r["scoring"]: r["ndcg@10"] for r in C.binary_scoring_variants(task)}
    assert v["float query . +-1 docs (asymmetric)"] == v["float query . {0,1} docs (asymmetric)"]  # offset is per query
    assert v["{0,1} query . {0,1} docs (offset forgotten)"] < v["Hamming (binary query, binary docs)"] - 0.03
    assert abs(v["Hamming (binary query, binary docs)"] - hamming) < 1e-4  # rounded to 4 places
    # with the whole corpus shortlisted, rescoring with the bits is the asymmetric float . +-1 full scan
    assert abs(curve[20]["ndcg@10 ubinary"] - v["float query . +-1 docs (asymmetric)"]) < 0.01


def test_compression_check_matches_the_precision_table(task, table):
    rows = {r["representation"]: r for r in compression_check(task)}
    assert rows["fp32"]["ndcg@10"] == round(task.fp32_ndcg, 4) and rows["fp32"]["bytes/doc"] == 1536
    assert rows["int8"]["ndcg@10"] == table[("int8", "min-max")]["ndcg@10 sym"]
    assert rows["binary (Hamming)"]["ndcg@10"] == round(C.hamming_ndcg(task), 4)
    assert rows["binary + int8 rescore x4"]["retention"] > rows["binary (Hamming)"]["retention"] + 0.03
    assert rows["first 64 dims (fp32)"]["bytes/doc"] == 256 and rows["first 64 dims (fp32)"]["retention"] < 0.9


@pytest.mark.parametrize("n", [5, 7, 1])
def test_per_batch_quantizes_every_row_with_its_own_batchs_ranges(n):
    """A final batch of one row borrows the row before it to calibrate, and must not overwrite that row."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x_hat, codes = C._per_batch(x, 8, 2)
    for start in range(0, n, 2):
        rows = slice(start, min(start + 2, n))
        calib = x[rows] if rows.stop - rows.start == 2 else x[max(0, start - 1):rows.stop]
        upper = np.maximum(calib.max(0), calib.min(0) + np.float32(1e-6)).astype(np.float32)
        r = Q.Ranges(calib.min(0), upper, "minmax", len(calib))
        want = Q.quantize_scalar(x[rows], r, "uint8", 8)
        np.testing.assert_array_equal(codes[rows], want)
        np.testing.assert_allclose(x_hat[rows], Q.dequantize_scalar(want, r, 8), atol=1e-6)
