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
# # 05 · Matryoshka embeddings and adaptive retrieval
#
# **You will learn to**
# - truncate an embedding to its first $m$ dimensions and re-normalize it, and see why a plain model falls apart
#   when you do;
# - write the Matryoshka loss: one in-batch contrastive loss per nested size, weighted and summed;
# - train a Matryoshka (MRL) model with sentence-transformers' `MatryoshkaLoss` on SciFact train pairs, from this
#   notebook or from the command line on one CPU or several GPUs;
# - measure it against plain truncation at every size, on retrieval (SciFact) and on general similarity (STS-B);
# - build funnel search (shortlist with 64 dims or 8-byte binary codes, rerank with all 384) and serve it with faiss.
#
# **Prerequisites:** notebooks 01-03 (nDCG@10, binary codes, rescoring); softmax cross-entropy.
#
# **Expected time on a laptop CPU:** 60 minutes of work. Running it takes about 12.5 minutes the first time on a
# 2-core CPU (9-15 minutes of training, then encoding the corpus with the new model; both are cached) and about
# 11 seconds after that; `COURSE_SMALL=1` trains for 8 steps and uses the 1,500-document sub-corpus (about 3
# minutes the first time).
#
# **Data:** BEIR SciFact, CC BY-NC 2.0 (non-commercial use only), and the STS Benchmark. Cite Wadden et al.
# (2020), Thakur et al. (2021), Cer et al. (2017), and for Matryoshka Representation Learning, Kusupati et al.
# (2022).

# %%
import course_lib

cfg = course_lib.setup(seed=0)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from course_lib import binary, matryoshka, metrics, quantization, search
from course_lib.compression import Retrieval, markdown_table
from course_lib.data import load_beir, load_sts
from course_lib.eval import unseen_document_qrels
from course_lib.models import load_model
from course_lib.tools.report import record

base = load_model(device=cfg.device)
test = load_beir("scifact", "test", small=cfg.small)
train = load_beir("scifact", "train")
sts = load_sts("test")
base_task = Retrieval.from_dataset(base, test)  # cached corpus and query embeddings, float32 (N, 384), (Q, 384)
DIMS = matryoshka.MRL_DIMS
print(f"{len(base_task.doc_ids):,} documents, {len(base_task.query_ids)} test queries; dims studied: {DIMS}")

# %% [markdown]
# ## 1. Nested dimensions
#
# A Matryoshka embedding is trained so that its first $m$ dimensions, for every $m$ in a set of nested sizes
# $384 > 256 > 128 > 64 > 32 > 16$, are themselves a usable embedding. You choose the size at query time:
# one model, one index of full vectors, and as many speed/quality operating points as sizes.
#
# Using a prefix takes two steps: keep $e_{1:m}$, then **re-normalize**,
# $$\tilde e = \frac{e_{1:m}}{\lVert e_{1:m} \rVert_2}.$$
# The prefix of a unit vector is shorter than 1, by a different amount for every text, so dot products of raw
# prefixes are not cosines: a text whose meaning sits in its first dimensions would win every comparison.
#
# ### Exercise 1 (2 points): truncate and re-normalize
#
# `truncate_renormalize(emb, dim)` for a float array (N, D): the first `dim` columns of each row divided by that
# prefix's L2 norm, float32 (N, dim). Leave all-zero rows at zero. Raise `ValueError` unless `1 <= dim <= D`.

# %% nbgrader={"grade": false, "grade_id": "truncate", "locked": false, "schema_version": 3, "solution": true}
def truncate_renormalize(emb, dim):
    """First `dim` dims of each row, re-normalized to unit length: float32 (N, dim)."""
    ### BEGIN SOLUTION
    if not 1 <= dim <= emb.shape[1]:
        raise ValueError(f"dim must be in [1, {emb.shape[1]}], got {dim}")
    out = np.array(emb[:, :dim], dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "truncate_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_t = truncate_renormalize(np.array([[0.6, 0.0, 0.8], [0.0, 3.0, 4.0]]), 2)
assert np.allclose(_t, [[1.0, 0.0], [0.0, 1.0]]), _t
### BEGIN HIDDEN TESTS
assert np.asarray(_t).dtype == np.float32
_x = base_task.corpus_emb[:50]
for _d in (1, 16, 64, 384):
    assert np.allclose(truncate_renormalize(_x, _d), matryoshka.truncate(_x, _d), atol=1e-6), _d
assert np.allclose(truncate_renormalize(np.zeros((2, 4), np.float32), 3), 0.0)
for _bad in (0, 385):
    try:
        truncate_renormalize(_x, _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"dim={_bad} should raise ValueError")
_copy = _x.copy()
truncate_renormalize(_x, 8)
assert np.array_equal(_x, _copy), "the input must not be modified"
### END HIDDEN TESTS

# %% [markdown]
# The base model was trained at 384 dims only. Here is what its prefixes are worth on SciFact
# (`matryoshka.ndcg_by_dim` truncates both sides, re-normalizes, and runs exact search at each size):

# %%
base_by_dim = matryoshka.ndcg_by_dim(base_task.query_emb, base_task.corpus_emb, base_task.query_ids,
                                     base_task.doc_ids, base_task.qrels, DIMS)
for d in DIMS:
    print(f"base model, {d:3d} dims: nDCG@10 {base_by_dim[d]:.4f} ({base_by_dim[d] / base_by_dim[384]:6.1%} of 384)")

# %% [markdown]
# Truncating a plain model to 64 dims loses about a quarter of its quality: its information is spread over all
# 384 dimensions in no particular order. (Truncation is the one compression that needs training to work;
# quantization in notebook 02 cost almost nothing without it.)
#
# ## 2. The Matryoshka loss
#
# Training pairs are (query, relevant document). For a batch of $B$ pairs, in-batch negatives
# (`MultipleNegativesRankingLoss`, InfoNCE) ask each query to pick its own document among the $B$:
# $$\ell(Q, D) = \frac{1}{B}\sum_{i=1}^{B} -\log \frac{\exp(s \cos(q_i, d_i))}{\sum_{j=1}^{B} \exp(s \cos(q_i, d_j))},
# \qquad s = 20.$$
# `MatryoshkaLoss` applies it to every prefix and sums with weights:
# $$L = \sum_{m \in \mathcal M} w_m\, \ell\big(Q_{1:m}, D_{1:m}\big).$$
# Every size is trained at once, and all share the same first dimensions; the gradients of the small sizes push
# the most useful directions to the front. The weights trade the sizes off (all 1 by default).
#
# ### Exercise 2 (3 points): the loss
#
# `mrl_loss(query_emb, doc_emb, dims, weights, scale=20.0)` for float arrays (B, D): the weighted sum above, as a
# Python float. Use your `truncate_renormalize`. Subtract each row's maximum before `exp` so that large scores do
# not overflow.

# %% nbgrader={"grade": false, "grade_id": "mrl_loss", "locked": false, "schema_version": 3, "solution": true}
def mrl_loss(query_emb, doc_emb, dims, weights, scale=20.0):
    """Weighted sum over dims of the in-batch softmax cross-entropy of scaled cosines: float."""
    ### BEGIN SOLUTION
    total = 0.0
    for d, w in zip(dims, weights):
        logits = scale * (truncate_renormalize(query_emb, d).astype(np.float64)
                          @ truncate_renormalize(doc_emb, d).astype(np.float64).T)  # (B, B)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total += w * -np.mean(np.diag(log_p))
    return float(total)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mrl_loss_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
_q = np.array([[1.0, 0.0], [0.6, 0.8]])  # cosines 1 and 0.6 at 2 dims; at 1 dim both rows become [1.0]
assert abs(mrl_loss(_q, _q, (2,), (1.0,)) - np.log(1 + np.exp(-8.0))) < 1e-9
assert abs(mrl_loss(_q, _q, (2, 1), (1.0, 0.5)) - (np.log(1 + np.exp(-8.0)) + 0.5 * np.log(2))) < 1e-9
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(0)
_a, _b = _rng.standard_normal((16, 384)), _rng.standard_normal((16, 384))
for _dims, _w in [(DIMS, (1,) * 6), ((384, 64, 16), (1.0, 0.5, 2.0)), ((32,), (3.0,))]:
    assert abs(mrl_loss(_a, _b, _dims, _w) - matryoshka.matryoshka_loss(_a, _b, _dims, _w)) < 1e-6, _dims
_qe, _de = base_task.query_emb[:8], base_task.corpus_emb[:8]
assert abs(mrl_loss(_qe, _de, DIMS, (1,) * 6, scale=50.0) - matryoshka.matryoshka_loss(_qe, _de, DIMS, None, 50.0)) < 1e-6
assert np.isfinite(mrl_loss(_a, _b, (384,), (1.0,), scale=1e4)), "overflow: subtract the row maximum"
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.matryoshka.matryoshka_loss` is the same function, and the course's tests check it against
# sentence-transformers' `MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), dims, weights)` on real
# embeddings. Two things the library adds: it runs the model once per batch and truncates the cached output for
# each size, and it can sample `n_dims_per_step` sizes per step to save time with many sizes.
#
# ## 3. Training
#
# `matryoshka.train_mrl` wraps sentence-transformers' trainer: the 917 (claim, cited abstract) pairs of SciFact's
# **train** split (two train claims repeat test claims word for word and are left out; notebook 06),
# `MatryoshkaLoss` over `MultipleNegativesRankingLoss`, batches without duplicate texts (a duplicate would be a
# false in-batch negative). `matryoshka.mrl_recipe(cfg)` picks the size of the run for this
# machine with one code path: 8 steps in small mode, 3 epochs of batch 32 on a CPU, 10 epochs of batch 128 on a GPU
# (`cfg.full`). `matryoshka.mrl_model` trains once and caches the model under `.cache/models/`.
#
# The same training runs from a terminal, on one CPU or data-parallel on several GPUs:
#
# ```bash
# python -m course_lib.train mrl --output .cache/models/mrl --epochs 3 --lr 1e-4
# torchrun --nproc_per_node 4 -m course_lib.train mrl --output .cache/models/mrl --batch-size 128
# accelerate launch -m course_lib.train mrl --output .cache/models/mrl
# ```

# %%
recipe = matryoshka.mrl_recipe(cfg)
print(recipe)
mrl, info = matryoshka.mrl_model(recipe, device=cfg.device, small=cfg.small)
print(f"{'loaded from the cache' if info['cached'] else 'trained'}: {info['pairs']} pairs, "
      f"{info['seconds']} s on {info['device']}")
steps = [row["step"] for row in info["losses"]]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, [row["loss"] for row in info["losses"]], "o-")
ax.set(xlabel="training step", ylabel="Matryoshka loss (sum over 6 sizes)", title="Training loss")
plt.show()

# %% [markdown]
# ## 4. Plain truncation against Matryoshka, at every size
#
# Encode the test corpus with the trained model (cached too) and score both models at each size, on SciFact and on
# STS-B, a general-domain similarity task neither model saw in this course (Spearman correlation between gold
# similarity and cosine).

# %%
mrl_task = Retrieval.from_dataset(mrl, test)
mrl_by_dim = matryoshka.ndcg_by_dim(mrl_task.query_emb, mrl_task.corpus_emb, mrl_task.query_ids,
                                    mrl_task.doc_ids, mrl_task.qrels, DIMS)
sts_base, sts_mrl = matryoshka.sts_by_dim(base, sts, DIMS), matryoshka.sts_by_dim(mrl, sts, DIMS)
print(markdown_table([{"dims": d, "base nDCG@10": round(base_by_dim[d], 4), "MRL nDCG@10": round(mrl_by_dim[d], 4),
                       "base STS-B": round(sts_base[d], 4), "MRL STS-B": round(sts_mrl[d], 4)} for d in DIMS]))
for d in DIMS:
    record(f"nDCG@10 at {d} dims, base", base_by_dim[d])
    record(f"nDCG@10 at {d} dims, MRL", mrl_by_dim[d])
    record(f"STS-B Spearman at {d} dims, base", sts_base[d])
    record(f"STS-B Spearman at {d} dims, MRL", sts_mrl[d])
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (title, ylabel, b, m) in zip(axes, [("SciFact test", "nDCG@10", base_by_dim, mrl_by_dim),
                                            ("STS-B test", "Spearman", sts_base, sts_mrl)]):
    ax.plot(DIMS, [b[d] for d in DIMS], "o--", label="base, truncated")
    ax.plot(DIMS, [m[d] for d in DIMS], "s-", label="Matryoshka-trained")
    ax.set(xscale="log", xlabel="dimensions kept (log scale)", ylabel=ylabel, title=title)
    ax.set_xticks(DIMS, [str(d) for d in DIMS])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend()
plt.show()

# %% [markdown]
# Read the two curves separately:
#
# - **Shape.** The MRL curve is flatter: its small prefixes keep far more of its own 384-dim quality. That is what
#   the loss asks for, and it is the property you use in production.
# - **Height.** On SciFact the MRL model is also better at 384 dims, because it was trained on SciFact pairs. Part of
#   that is less general than it looks: train and test claims often cite the same abstracts. The cell below scores
#   only the test queries none of whose relevant documents appears in training.
# - **STS-B** shows the cost: tuning on scientific claims moves the model away from general sentence similarity.
#   Hugging Face's Matryoshka post reports, for a model trained on general data, 98.37% of STS-B Spearman kept at 64
#   of 768 dims against 96.46% for a plain model; compare the retention of each curve here.

# %%
unseen = unseen_document_qrels(test.qrels, train.qrels)
keep = [i for i, q in enumerate(base_task.query_ids) if q in unseen]
for name, task in [("base", base_task), ("MRL", mrl_task)]:
    sub = matryoshka.ndcg_by_dim(task.query_emb[keep], task.corpus_emb, [task.query_ids[i] for i in keep],
                                 task.doc_ids, unseen, (384, 64))
    print(f"{name:4s} on the {len(keep)} queries with unseen documents: nDCG@10 {sub[384]:.4f} at 384, "
          f"{sub[64]:.4f} at 64 ({sub[64] / sub[384]:.1%})")
    record(f"nDCG@10 at 384 dims, {name}, {len(keep)} unseen-document queries", sub[384])
    record(f"nDCG@10 at 64 dims, {name}, {len(keep)} unseen-document queries", sub[64])

# %% [markdown]
# ## 5. Funnel search
#
# Adaptive retrieval uses two sizes of the same vectors: a cheap first stage over the whole corpus with the first 64
# dimensions, then an exact rerank of a short list with all 384:
#
# 1. shortlist = top-$C$ of $\cos(q_{1:64}, d_{1:64})$ over all $N$ documents ($N \times 64$ floats read);
# 2. result = top-$k$ of $q \cdot d$ over the $C$ candidates ($C \times 384$ floats read).
#
# With $C \ll N$ the cost is about that of 64-dim search, and the quality is nearly that of 384-dim search whenever
# the 64-dim prefix ranks the right documents into the top $C$: which is exactly what MRL training improves.
#
# ### Exercise 3 (2 points): funnel search
#
# `funnel(query_emb, corpus_emb, k, shortlist_dim, shortlist)`: shortlist the `shortlist` best documents per query
# by the cosine of re-normalized `shortlist_dim` prefixes, then rerank them by the dot product of the full
# vectors. Return (scores (Q, k), indices (Q, k)), best first. (`search.topk(q, c, k)` returns the exact top-k of
# `q @ c.T` as (scores, indices).)

# %% nbgrader={"grade": false, "grade_id": "funnel", "locked": false, "schema_version": 3, "solution": true}
def funnel(query_emb, corpus_emb, k, shortlist_dim, shortlist):
    """Shortlist with truncated re-normalized prefixes, rerank with full vectors: (scores, indices), (Q, k) each."""
    ### BEGIN SOLUTION
    _, cand = search.topk(truncate_renormalize(query_emb, shortlist_dim),
                          truncate_renormalize(corpus_emb, shortlist_dim), shortlist)  # (Q, C)
    scores = np.einsum("qd,qcd->qc", query_emb, corpus_emb[cand])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(cand, order, axis=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "funnel_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_c = np.array([[1.0, 0.0, 0.0], [0.9, 0.0, 0.436], [0.0, 1.0, 0.0], [0.8, 0.0, -0.6]], np.float32)
_s, _i = funnel(np.array([[1.0, 0.0, 0.5]], np.float32), _c, 1, 1, 3)
assert np.asarray(_i).tolist() == [[1]], _i  # 1 dim ties documents 0, 1, 3; the full vectors prefer 1
### BEGIN HIDDEN TESTS
_q, _cc = mrl_task.query_emb[:25], mrl_task.corpus_emb
for _dim, _short in [(64, 100), (16, 30), (384, 10)]:
    _s, _i = funnel(_q, _cc, 10, _dim, _short)
    _rs, _ri = matryoshka.funnel_search(_q, _cc, 10, shortlist_dim=_dim, shortlist=_short)
    assert np.allclose(np.asarray(_s), _rs, atol=1e-5), _dim
    assert np.mean(np.asarray(_i) == _ri) > 0.99, _dim
_s, _i = funnel(_q, _cc, 10, 32, len(_cc))
assert np.array_equal(np.asarray(_i), search.topk(_q, _cc, 10)[1]), "a full shortlist must give exact search"
### END HIDDEN TESTS

# %% [markdown]
# `matryoshka.funnel_search` is the course version; it also takes a prebuilt first-stage index
# (`matryoshka.funnel_index`) and can shortlist with the **sign bits** of the 64-dim prefix: 8 bytes a document,
# searched by Hamming distance (notebook 03). The quality of every first stage, on both models:

# %%
rows = []
for name, task in [("base", base_task), ("MRL", mrl_task)]:
    def ndcg(s, i):
        return metrics.evaluate(search.run_from_topk(s, i, task.query_ids, task.doc_ids), task.qrels)["ndcg@10"]

    q, c = task.query_emb, task.corpus_emb
    rows.append({"model": name, "first stage": "none (exact, 384 fp32)", "bytes/doc": 1536,
                 "nDCG@10": round(task.fp32_ndcg, 4)})
    for dim, signs, nbytes in [(64, False, 256), (64, True, 8), (128, True, 16)]:
        index = matryoshka.funnel_index(c, dim, binary=signs)
        if signs:  # the first stage alone: Hamming distance, smaller is better
            d, i = binary.hamming_topk(quantization.quantize_binary(np.ascontiguousarray(q[:, :dim])), index, 10)
            s = -d.astype(np.float32)
        else:
            s, i = search.topk(matryoshka.truncate(q, dim), index, 10)
        kind = f"{dim} dims {'binary' if signs else 'fp32'}"
        rows.append({"model": name, "first stage": f"{kind} alone", "bytes/doc": nbytes, "nDCG@10": round(ndcg(s, i), 4)})
        s, i = matryoshka.funnel_search(q, c, 10, shortlist_dim=dim, shortlist=100, binary=signs,
                                         index=index)
        rows.append({"model": name, "first stage": f"{kind} -> top 100 -> 384", "bytes/doc": nbytes,
                     "nDCG@10": round(ndcg(s, i), 4)})
print(markdown_table(rows))
for row in rows:
    record(f"nDCG@10, {row['model']}, {row['first stage']}", row["nDCG@10"])

# %% [markdown]
# ("alone" is the first stage's own top 10; "-> top 100 -> 384" is the funnel: the first stage's top 100 reranked
# with the full vectors.) Binary codes of the first 64 MRL dimensions take **8 bytes a document**, 192x less than the
# float vectors, and a rerank of the top 100 with the full vectors recovers most of the 384-dim quality.
#
# Now latency. On 5,183 documents everything is fast; the differences grow with $N$
# (`benchmarks/bench_funnel.py` measures a million documents; the README has its figures).

# %%
def per_query_ms(fn, queries, repeat=3):
    fn(queries[:1])
    start = time.perf_counter()
    for _ in range(repeat):
        for i in range(len(queries)):
            fn(queries[i:i + 1])
    return 1e3 * (time.perf_counter() - start) / repeat / len(queries)


q, c = mrl_task.query_emb[:50], mrl_task.corpus_emb
idx64, codes64 = matryoshka.funnel_index(c, 64), matryoshka.funnel_index(c, 64, binary=True)
for name, fn in [("exact 384 fp32", lambda v: search.topk(v, c, 10)),
                 ("64 fp32 -> top 100 -> 384", lambda v: matryoshka.funnel_search(v, c, 10, shortlist_dim=64, index=idx64)),
                 ("64 binary -> top 100 -> 384", lambda v: matryoshka.funnel_search(v, c, 10, shortlist_dim=64,
                                                                                          binary=True, index=codes64))]:
    record(f"latency, {name}", per_query_ms(fn, q), "ms/query")

# %% [markdown]
# At this size the funnel is no faster than exact search: fixed costs per call dominate. At a million documents
# it is about 3x faster with a 64-dim float first stage and about 44x with 8-byte codes (README, measured with
# `benchmarks/bench_funnel.py` on a 2-core CPU).
#
# ## 6. Production notes
#
# **Store full vectors, choose the size at query time.** Index the full 384-dim vectors (or their int8 codes) once.
# A cheaper first stage is a *view* of them: the first 64 columns re-normalized, or their sign bits. You can change
# the operating point without re-encoding the corpus.
#
# **Or index truncated vectors.** When memory is the constraint, index only the first $m$ dims (or their bits) in RAM
# and keep the full vectors on disk for the rerank, which reads only $C$ rows per query.
#
# **Always re-normalize** a truncated vector before cosine or inner-product search (both query and documents), and
# truncate both sides to the same size. sentence-transformers does it with `model.encode(..., truncate_dim=64,
# normalize_embeddings=True)`; the course's tests check that it equals `matryoshka.truncate`.
#
# **Choose dims for a latency budget.** Exact search reads $N \cdot m \cdot 4$ bytes per query (or $N \cdot m / 8$ for
# bits): at a memory bandwidth of about 40 GB/s, a 10 ms budget allows about $10^8$ float dimensions, e.g. 1M
# documents at 64 dims but not at 384. Measure the quality you keep at each size on your own evaluation set (the
# curve above), pick the smallest size that keeps enough, and the shortlist length that recovers the rest.
#
# **Serve with faiss.** The same two stages, with faiss indexes over the prefix:

# %%
import faiss  # noqa: E402

first = faiss.IndexFlatIP(64)  # exact; IndexHNSWFlat(64, 32, faiss.METRIC_INNER_PRODUCT) for large N
first.add(matryoshka.funnel_index(mrl_task.corpus_emb, 64))
_, cand = first.search(matryoshka.truncate(mrl_task.query_emb, 64), 100)  # stage 1: 64 dims
s, i = binary.rescore(mrl_task.query_emb, cand, mrl_task.corpus_emb, 10)  # stage 2: 384 dims, 100 rows a query
bits = faiss.IndexBinaryFlat(64)  # 64-bit codes: 8 bytes a document
bits.add(matryoshka.funnel_index(mrl_task.corpus_emb, 64, binary=True))
_, cand_b = bits.search(quantization.quantize_binary(np.ascontiguousarray(mrl_task.query_emb[:, :64])), 100)
sb, ib = binary.rescore(mrl_task.query_emb, cand_b, mrl_task.corpus_emb, 10)
for name, (s_, i_) in [("faiss IndexFlatIP(64) -> rerank", (s, i)), ("faiss IndexBinaryFlat(64) -> rerank", (sb, ib))]:
    run = search.run_from_topk(s_, i_, mrl_task.query_ids, mrl_task.doc_ids)
    print(f"{name:36s} nDCG@10 {metrics.evaluate(run, mrl_task.qrels)['ndcg@10']:.4f}")

# %% [markdown]
# **Take-aways.** Plain truncation of a model trained at one size throws away quality fast; the Matryoshka loss,
# one contrastive loss per nested size, makes the first dimensions carry the most and costs one training run.
# Truncate, re-normalize, and use the small sizes as a first stage: 64-dim floats or 8-byte binary codes to
# shortlist, the full vectors to rerank. Judge a trained model on data it did not see, and check what it cost on a
# general task.
