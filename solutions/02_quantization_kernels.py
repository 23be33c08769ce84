# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (embeddings-course)
#     language: python
#     name: embeddings-course
# ---

# %% [markdown]
# # 02 · Quantization kernels: float16, int8, int4, 2-bit and binary
#
# **You will learn to**
# - read the value distribution of an embedding model, dimension by dimension, and see why it decides how to quantize;
# - write scalar quantization (calibrate a range, clip, round to the nearest of 256 levels) and its inverse, and bound its error;
# - pack sign bits eight to a byte in a stated bit order, the format of binary indexes;
# - measure what each precision costs in retrieval quality (nDCG@10) against what it saves in bytes per vector;
# - avoid the two classic mistakes: a dot product of raw integer codes, and calibrating on a single query.
#
# **Prerequisites:** notebook 01 (dense retrieval, nDCG@10); NumPy broadcasting and dtypes.
#
# **Expected time on a laptop CPU:** 45 minutes of work. Running it takes under a minute once notebook 01
# has cached the corpus embeddings (about 4 minutes otherwise); `COURSE_SMALL=1` uses the 1,500-document sub-corpus.
#
# **Data:** BEIR SciFact, CC BY-NC 2.0 (non-commercial use only). Cite Wadden et al. (2020) and Thakur et al. (2021).

# %%
import course_lib

cfg = course_lib.setup(seed=0)

# %%
import numpy as np
import matplotlib.pyplot as plt
from sentence_transformers.util import quantize_embeddings

from course_lib import compression, quantization
from course_lib.data import load_beir
from course_lib.models import load_model
from course_lib.tools.report import record

model = load_model(device=cfg.device)
test = load_beir("scifact", "test", small=cfg.small)
task = compression.Retrieval.from_dataset(model, test)  # cached float32 embeddings + qrels
corpus_emb = task.corpus_emb  # (N, 384)
print(f"{corpus_emb.shape[0]:,} documents x {corpus_emb.shape[1]} dims; fp32 nDCG@10 = {task.fp32_ndcg:.4f}")

# %% [markdown]
# ## 1. What the values look like
#
# Every embedding has unit length, so with 384 dimensions a typical value is about $1/\sqrt{384} \approx 0.05$.
# But dimensions are not alike: some spread wide, a few carry rare large outliers. A quantizer spends its
# levels over a range per dimension; an outlier that stretches the range wastes levels on values that
# almost never occur.

# %%
lo, p1, p99, hi = np.percentile(corpus_emb, [0, 1, 99, 100], axis=0)  # each (384,)
order = np.argsort(hi - lo)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].hist(corpus_emb.ravel(), bins=200, color="tab:blue")
axes[0].set(xlabel="embedding value", ylabel="count (all documents, all dims)", yscale="log",
            title="All values")
x = np.arange(len(order))
axes[1].fill_between(x, lo[order], hi[order], color="tab:orange", alpha=0.4, label="min to max")
axes[1].fill_between(x, p1[order], p99[order], color="tab:blue", alpha=0.6, label="1st to 99th percentile")
axes[1].set(xlabel="dimension (sorted by min-max width)", ylabel="value", title="Per-dimension ranges")
axes[1].legend()
plt.tight_layout()
plt.show()
widest = order[-1]
print(f"widest dim {widest}: min {lo[widest]:.3f}, max {hi[widest]:.3f}; "
      f"its 1-99% range is only {p99[widest] - p1[widest]:.3f} of {hi[widest] - lo[widest]:.3f}")

# %% [markdown]
# ## 2. Scalar quantization
#
# With $b$ bits there are $L = 2^b$ levels. Calibrate a range $[\ell_j, u_j]$ per dimension $j$, then
#
# $$\mathrm{step}_j = \frac{u_j - \ell_j}{L - 1}, \qquad
# c_j = \operatorname{clip}\!\Big(\big\lfloor \tfrac{x_j - \ell_j}{\mathrm{step}_j} + \tfrac12 \big\rfloor,\ 0,\ L - 1\Big),
# \qquad \hat x_j = \ell_j + c_j\,\mathrm{step}_j .$$
#
# For int8, store $c_j - 128 \in [-128, 127]$. Rounding to the nearest level bounds the error inside the
# range by half a step: $|x_j - \hat x_j| \le \mathrm{step}_j / 2$. (sentence-transformers floors instead of
# rounding, so its error reaches a whole step; the course's tests pin both behaviours.) Values outside the
# range are **clipped** to the nearer end; without clipping they would wrap around (a value just past the
# top would become -128).
#
# ### Exercise 1 (3 points): calibrate and quantize to int8
#
# Write `calibrate_minmax(emb)`, returning per-dimension `(lower, upper)`, and `quantize_int8(emb, lower, upper)`
# with the formula above (clip, then round to nearest; int8 codes).

# %% nbgrader={"grade": false, "grade_id": "quantize_int8", "locked": false, "schema_version": 3, "solution": true}
def calibrate_minmax(emb):
    """Per-dimension range of ``emb`` (N, D): two float arrays of shape (D,)."""
    ### BEGIN SOLUTION
    return emb.min(axis=0), emb.max(axis=0)
    ### END SOLUTION


def quantize_int8(emb, lower, upper):
    """Clip ``emb`` (N, D) to [lower, upper] per dimension and round to the nearest of 256 levels.

    Returns int8 (N, D) codes c - 128, where c in [0, 255] is the level index.
    """
    ### BEGIN SOLUTION
    step = (upper - lower) / 255.0
    levels = np.floor((np.clip(emb, lower, upper) - lower) / step + 0.5)
    return (np.clip(levels, 0, 255) - 128).astype(np.int8)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "quantize_int8_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
_lo, _hi = calibrate_minmax(np.array([[0.0, -1.0], [1.0, 1.0], [0.5, 0.0]]))
assert np.allclose(_lo, [0.0, -1.0]) and np.allclose(_hi, [1.0, 1.0])
_codes = quantize_int8(np.array([[0.0, -1.0], [1.0, 1.0], [0.5, 0.0], [2.0, -5.0]]), _lo, _hi)
assert _codes.dtype == np.int8, _codes.dtype
assert _codes.tolist() == [[-128, -128], [127, 127], [0, 0], [127, -128]], _codes.tolist()
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(7)
_x = _rng.standard_normal((300, 24)).astype(np.float32)
_r = quantization.calibrate(_x[:200])
_mine = np.asarray(quantize_int8(_x, *calibrate_minmax(_x[:200]))).astype(np.int16)
_ref = quantization.quantize_scalar(_x, _r, "int8").astype(np.int16)
assert np.abs(_mine - _ref).max() <= 1 and (_mine != _ref).mean() < 1e-3  # equal up to float rounding at .5
assert (np.asarray(quantize_int8(_x * 100, *calibrate_minmax(_x[:200]))) != 0).all()  # clipped, no wrap-around
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (2 points): dequantize, and check the error bound
#
# Write `dequantize_int8(codes, lower, upper)` returning float32 $\hat x = \ell + (c + 128)\,\mathrm{step}$.
# Then the test checks the bound $|x - \hat x| \le \mathrm{step}/2$ inside the range.

# %% nbgrader={"grade": false, "grade_id": "dequantize_int8", "locked": false, "schema_version": 3, "solution": true}
def dequantize_int8(codes, lower, upper):
    """Inverse of ``quantize_int8``: float32 (N, D) reconstructions."""
    ### BEGIN SOLUTION
    step = (upper - lower) / 255.0
    return (lower + (codes.astype(np.float32) + 128) * step).astype(np.float32)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "dequantize_int8_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_x_hat = dequantize_int8(np.array([[-128, 127, 0]], dtype=np.int8), np.zeros(3), np.full(3, 2.55))
assert _x_hat.dtype == np.float32 and np.allclose(_x_hat, [[0.0, 2.55, 1.28]]), _x_hat
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(8)
_x = _rng.standard_normal((200, 16)).astype(np.float32)
_lo, _hi = _x.min(0), _x.max(0)
_r = quantization.Ranges(_lo, _hi)
_c = quantization.quantize_scalar(_x, _r, "int8")
_mine = np.asarray(dequantize_int8(_c, _lo, _hi))
assert np.allclose(_mine, quantization.dequantize_scalar(_c, _r), atol=1e-6)
assert (np.abs(_mine - _x) <= (_hi - _lo) / 255 / 2 + 1e-6).all()
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.quantization` does the same with a compiled kernel (numba, parallel over rows, vectorized over
# dimensions), near the machine's memory bandwidth and many times faster than sentence-transformers'
# `quantize_embeddings` (`benchmarks/bench_quantization.py` measures both; the README has the figures).
# Its int8 codes are within one step of sentence-transformers' (floor against round):

# %%
ranges = quantization.calibrate(corpus_emb)  # min-max over the corpus
ours = quantization.quantize_scalar(corpus_emb, ranges, "int8")
theirs = quantize_embeddings(corpus_emb, "int8", ranges=ranges.as_array())
diff = ours.astype(np.int16) - theirs
print("course_lib - sentence-transformers:", {int(v): int((diff == v).sum()) for v in np.unique(diff)})

# %% [markdown]
# ## 3. Error against bits
#
# The same formula works for any $b$: int4 has 16 levels (two codes a byte), 2-bit has 4. Fewer levels mean a
# larger step, and the error grows about fourfold with each bit removed (the step doubles; the squared error
# quadruples). Percentile calibration (here the 1st to 99th) clips the rare outliers to spend the levels where
# the values are: at low bit widths that matters a lot.

# %%
bits_list = [1, 2, 3, 4, 5, 6, 8]
curves = {}
for method, pct in [("minmax", 100.0), ("percentile", 99.0)]:
    r = quantization.calibrate(corpus_emb, method, pct)
    curves[method] = [quantization.reconstruction_error(
        corpus_emb, quantization.dequantize_scalar(quantization.quantize_scalar(corpus_emb, r, "uint8", b), r, b))
        for b in bits_list]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for method, errs in curves.items():
    axes[0].plot(bits_list, [e["mse"] for e in errs], "o-", label=method)
    axes[1].plot(bits_list, [e["cosine"] for e in errs], "o-", label=method)
axes[0].set(xlabel="bits per dimension", ylabel="MSE per value", yscale="log", title="Reconstruction error")
axes[1].set(xlabel="bits per dimension", ylabel="mean cosine(x, x_hat)", title="Direction kept")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Binary: one bit a dimension
#
# Keep only the sign: bit $j$ is $[x_j > 0]$. Pack eight bits to a byte, **big-endian within a byte**: dimension
# $8i$ is the most significant bit of byte $i$, dimension $8i+7$ the least. This is the layout of `np.packbits`,
# sentence-transformers' `"ubinary"` and faiss' binary indexes, so codes move between them unchanged. When $D$ is
# not a multiple of 8, the last byte is padded with zeros at its low end. 384 dims become 48 bytes: 32x smaller.
#
# ### Exercise 3 (2 points): pack signs
#
# Write `pack_signs(emb)` for any $D$: uint8 of shape (N, ceil(D/8)), in that bit order. Try it without `np.packbits`
# (reshape to (N, bytes, 8) and weight the bits by 128, 64, ..., 1).

# %% nbgrader={"grade": false, "grade_id": "pack_signs", "locked": false, "schema_version": 3, "solution": true}
def pack_signs(emb):
    """Bits [emb > 0], packed big-endian within each byte: uint8 (N, ceil(D / 8))."""
    ### BEGIN SOLUTION
    n, d = emb.shape
    bits = np.zeros((n, -(-d // 8) * 8), dtype=np.uint8)
    bits[:, :d] = emb > 0
    weights = np.array([128, 64, 32, 16, 8, 4, 2, 1], dtype=np.uint8)
    return (bits.reshape(n, -1, 8) * weights).sum(axis=2).astype(np.uint8)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pack_signs_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_p = pack_signs(np.array([[1.0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0.5]]))
assert np.asarray(_p).dtype == np.uint8 and np.asarray(_p).tolist() == [[128, 1]], _p
### BEGIN HIDDEN TESTS
for _d in (1, 7, 9, 384, 385):
    _x = np.random.default_rng(_d).standard_normal((5, _d))
    _x[0, 0] = 0.0  # not > 0
    assert np.array_equal(np.asarray(pack_signs(_x)), quantization.quantize_binary(_x)), _d
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Quality against bytes
#
# Now every precision on the retrieval task. Two ways to score quantized vectors: **asymmetric** (float query
# against dequantized documents: only the index is compressed) and **symmetric** (both quantized with the same
# ranges). The calibration percentile is a hyperparameter: choose it for each bit width on SciFact *train*
# queries (a development set), never on the test queries you report.

# %%
train = load_beir("scifact", "train", small=cfg.small)
dev = compression.Retrieval.from_dataset(model, train)  # same corpus, the 809 train queries
percentiles = {b: compression.select_percentile(dev, b)[0] for b in (8, 4, 2)}
print("percentile chosen on train queries:", percentiles)
table = compression.precision_table(task, percentiles)
print(compression.markdown_table(table, ["representation", "calibration", "bytes", "ndcg@10 asym",
                                         "ndcg@10 sym", "retention"]))
for row in table:
    name = row["representation"] + (f" ({row['calibration']})" if row["calibration"] else "")
    record(f"nDCG@10 (symmetric), {name}", row["ndcg@10 sym"])
    record(f"retention of fp32 nDCG@10 (best of symmetric and asymmetric), {name}", 100 * row["retention"], "%")

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
for row in table:
    best = max(v for v in (row["ndcg@10 asym"], row["ndcg@10 sym"]) if v is not None)
    naive = "naive" in row["representation"]
    ax.scatter(row["bytes"], best, marker="x" if naive else "o", color="tab:red" if naive else "tab:blue")
    ax.annotate(f"{row['representation'].split(' (')[0]} {row['calibration'].split(' (')[0]}", (row["bytes"], best),
                fontsize=7, xytext=(4, 2), textcoords="offset points")
ax.axhline(task.fp32_ndcg, color="gray", ls="--", lw=1, label="fp32")
ax.set(xscale="log", xlabel="bytes per vector (log scale)", ylabel="nDCG@10 (best of asym / sym)",
       title="SciFact test: quality against memory")
ax.legend()
plt.show()

# %% [markdown]
# Read the table:
# - **fp16, bf16, int8** cost nothing measurable; **int4** keeps essentially all of it at 8x compression.
# - **2-bit** needs percentile calibration; min-max wastes its 4 levels on outliers.
# - On the full corpus, the percentile rows chosen on train queries even score a little *above* fp32 (see the
#   README). Clipping tames a few outlier dimensions that dominate the dot product but carry little of the
#   relevance signal on SciFact. Treat gains of a point or two on 300 queries as a hint, not a law.
# - **Raw integer codes** (`codes_q @ codes_d`) ignore the per-dimension step and the offset: each dimension
#   is weighted by $1/\mathrm{step}_j$ and shifted by its midpoint, so dimensions with narrow ranges dominate.
#   uint8 is worse still, since every code is positive and the offset swamps the signal. Always put the scale
#   back (dequantize, or fold scale and offset into the integer product).
# - **Binary** without rescoring loses about a tenth: notebook 03 wins most of it back by rescoring.

# %% [markdown]
# ## 6. Where the ranges come from
#
# Calibrate once, on many rows, and store the ranges with the index: 2 x 384 float32 = 3 KB, shared by the
# whole corpus. Queries are quantized with *those* ranges. The classic bug is calibrating on the data being
# quantized right now: a batch, or a single query.

# %%
one_query = task.query_emb[:1]
try:
    quantization.calibrate(one_query)
except ValueError as err:
    print("course_lib:", err)
st_codes = quantize_embeddings(one_query, "int8", ranges=np.stack([one_query[0], one_query[0]]))
print("sentence-transformers, ranges from the query itself:", np.unique(st_codes), "(every dimension the same code)")

# %% [markdown]
# With one row, min = max in every dimension: the step is zero and every code is the same, so the query carries
# no information at all. With a small batch it is subtler: the ranges are noisy, and codes from different
# batches are on different scales. Compare calibrating on the corpus, on held-out queries, and on each batch:

# %%
study = compression.calibration_study(task, {
    "the corpus": corpus_emb,
    "held-out: SciFact train queries": dev.query_emb,
}, bits=(8,), batch_sizes=(64, 2))
print(compression.markdown_table(study))

# %% [markdown]
# Per-batch calibration works only if each batch is dequantized with its own ranges, and then those ranges
# must be stored too: for a batch of 2 they are as large as the float vectors themselves (the "codes" of a
# 2-row batch are just "min or max", and the ranges *are* the data). Comparing raw codes across batches is
# meaningless. Held-out calibration data works well as long as it comes from a similar distribution.
#
# **Take-aways.** Store full-precision vectors only if you must; int8 (or int4 with percentile calibration) is
# free on this task. Calibrate once on a large sample, keep the ranges with the index, and never compare raw codes.
# The full-corpus figures are in the README; `python benchmarks/quantization_quality.py` reproduces them.
