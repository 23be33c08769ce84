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
# # 04 · Multi-vector embeddings: ColBERT MaxSim
#
# **You will learn to**
# - keep one vector per token instead of one per text, and count what that costs in bytes;
# - write MaxSim, the late-interaction score, with masks that keep padding out (and see the bug that lets it in);
# - pad and batch variable-length token sequences;
# - train a small ColBERT-style model (a 384 -> 128 projection over the frozen MiniLM) with a MaxSim contrastive loss
#   and in-batch negatives, and compare it with the dense model;
# - compress token vectors (int8, binary) and build the two-stage pipeline: cheap candidates, MaxSim rerank.
#
# **Prerequisites:** notebooks 01-03; PyTorch tensors; softmax cross-entropy.
#
# **Expected time on a laptop CPU:** 60 minutes of work. Running it takes about 10 minutes the first time on
# a 2-core CPU (token embeddings of the corpus, then training the projection; both are cached) and about 4.5
# minutes after that (five MaxSim passes over the whole corpus);
# `COURSE_SMALL=1` uses the 1,500-document sub-corpus.
#
# **Data:** BEIR SciFact, CC BY-NC 2.0 (non-commercial use only). Cite Wadden et al. (2020), Thakur et al. (2021),
# and for ColBERT, Khattab and Zaharia (2020) and Santhanam et al. (2022).

# %%
import course_lib

cfg = course_lib.setup(seed=0)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import colbert, maxsim, metrics, quantization, search
from course_lib.data import load_beir
from course_lib.embed import encode_corpus, encode_queries
from course_lib.models import load_model
from course_lib.tools.report import record

model = load_model(device=cfg.device)
test = load_beir("scifact", "test", small=cfg.small)
train = load_beir("scifact", "train", small=cfg.small)
doc_ids, query_ids = list(test.corpus), list(test.queries)
doc_tok, doc_mask = colbert.token_embeddings(model, test.corpus, is_query=False)  # (N, L, 384) float16, cached
q_tok, q_mask = colbert.token_embeddings(model, test.queries, is_query=True)  # (Q, 32, 384): [MASK]-augmented
print(f"documents: {doc_tok.shape[0]:,} x up to {doc_tok.shape[1]} tokens; queries padded to {q_tok.shape[1]} tokens")


def ndcg(scores, idx):
    return metrics.evaluate(search.run_from_topk(scores, idx, query_ids, doc_ids), test.qrels)["ndcg@10"]


# %% [markdown]
# ## 1. One vector per token, and what it costs
#
# A dense model pools its token vectors into one. Late interaction keeps them all: a document of $L$ tokens is an
# $L \times D$ matrix. The price is storage: bytes per document $= L \times D \times$ bytes per value.

# %%
lengths = doc_mask.sum(axis=1)
plt.figure(figsize=(6, 3))
plt.hist(lengths, bins=50)
plt.xlabel("word pieces per document (title + abstract, cut at 256)")
plt.ylabel("documents")
plt.show()
mean_len = lengths.mean()
for label, dims, nbytes in [("dense fp32", 384, 4), ("tokens fp32, 384 dims", 384, 4), ("tokens fp16, 128 dims", 128, 2),
                            ("tokens int8, 128 dims", 128, 1), ("tokens binary, 128 dims", 128, 1 / 8)]:
    per_doc = (1 if label.startswith("dense") else mean_len) * dims * nbytes
    print(f"{label:26s} {per_doc:10,.0f} bytes per document")

# %% [markdown]
# ## 2. MaxSim
#
# Each query token finds its best match among the document's tokens; the score adds these best matches:
# $$s(q, d) = \sum_{i \in \text{valid}(q)} \max_{j \in \text{valid}(d)} q_i \cdot d_j .$$
# Documents have different lengths, so a batch is padded, and a mask says which positions are real. Padding must
# never take part: set padded similarities to $-\infty$ before the max. **Multiplying** by the mask instead makes a
# padded similarity 0, and 0 beats every real similarity of a query token that matches nothing (all negative).
# PyLate 1.6's `colbert_scores` multiplies; the course's tests run PyLate in a separate environment and pin the difference.
#
# ### Exercise 1 (3 points): MaxSim with masks
#
# `maxsim_scores(q, q_mask, d, d_mask)` with NumPy: `q` (Bq, Lq, D), `d` (Bd, Ld, D), boolean masks; return (Bq, Bd).

# %% nbgrader={"grade": false, "grade_id": "maxsim", "locked": false, "schema_version": 3, "solution": true}
def maxsim_scores(q, q_mask, d, d_mask):
    """ColBERT MaxSim: sum over valid query tokens of the max over valid document tokens."""
    ### BEGIN SOLUTION
    sim = np.einsum("qid,bjd->qbij", q, d)  # (Bq, Bd, Lq, Ld)
    sim = np.where(d_mask[None, :, None, :], sim, -np.inf)
    best = sim.max(axis=3)  # (Bq, Bd, Lq)
    return np.where(q_mask[:, None, :], best, 0.0).sum(axis=2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "maxsim_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
_q = np.array([[[1.0, 0.0], [0.0, 1.0]]])
_d = np.array([[[0.5, 0.5], [0.0, 2.0]], [[-1.0, 0.0], [9.0, 9.0]]])
_s = maxsim_scores(_q, np.array([[True, True]]), _d, np.array([[True, True], [True, False]]))
assert np.allclose(_s, [[2.5, -1.0]]), _s  # the padded [9, 9] never counts
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(5)
_q, _d = _rng.standard_normal((3, 6, 8)), _rng.standard_normal((9, 11, 8))
_qm = np.arange(6)[None, :] < np.array([[6], [2], [4]])
_dm = np.arange(11)[None, :] < _rng.integers(1, 12, 9)[:, None]
assert np.allclose(maxsim_scores(_q, _qm, _d, _dm), maxsim.maxsim(_q, _qm, _d, _dm), atol=1e-5)
_dneg = -np.abs(_d)
assert np.allclose(maxsim_scores(np.abs(_q), _qm, _dneg, _dm), maxsim.maxsim(np.abs(_q), _qm, _dneg, _dm), atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.maxsim.maxsim` is the same, for NumPy or torch, chunked over documents so the
# (Bq, chunk, Lq, Ld) similarity block stays small. The mask pitfall, on the smallest example:

# %%
q_ex = np.array([[[1.0, 0.0]]])
d_ex = np.array([[[-1.0, 0.0], [-0.5, 0.0], [9.0, 9.0]]])  # two real tokens, both opposed to the query, then padding
m_ex = np.array([[True, True, False]])
multiplied = (np.einsum("qid,bjd->qbij", q_ex, d_ex) * m_ex[None, :, None, :]).max(axis=3).sum(axis=2)
print("masked with -inf:", maxsim.maxsim(q_ex, None, d_ex, m_ex).item(), "| multiplied by the mask:", multiplied.item())

# %% [markdown]
# ## 3. Padding and batching
#
# Token sequences come in different lengths. To score them in one tensor operation, stack them into a padded
# block and carry a mask.
#
# ### Exercise 2 (2 points): pad a batch
#
# `pad_batch(seqs)`: a list of float arrays of shape $(L_i, D)$ to a zero-padded array $(B, \max_i L_i, D)$ and a
# boolean mask $(B, \max_i L_i)$, True on real tokens.

# %% nbgrader={"grade": false, "grade_id": "pad_batch", "locked": false, "schema_version": 3, "solution": true}
def pad_batch(seqs):
    """Stack variable-length (L_i, D) arrays into (B, L_max, D) with zeros, plus a bool mask (B, L_max)."""
    ### BEGIN SOLUTION
    width = max(len(s) for s in seqs)
    out = np.zeros((len(seqs), width, seqs[0].shape[1]), dtype=seqs[0].dtype)
    mask = np.zeros((len(seqs), width), dtype=bool)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
        mask[i, :len(s)] = True
    return out, mask
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pad_batch_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_x, _m = pad_batch([np.ones((2, 3)), np.full((4, 3), 2.0)])
assert _x.shape == (2, 4, 3) and _m.tolist() == [[True, True, False, False], [True] * 4]
assert _x[0, 2:].sum() == 0 and _x[1].sum() == 24
### BEGIN HIDDEN TESTS
_seqs = [np.random.default_rng(i).standard_normal((n, 5)).astype(np.float32) for i, n in enumerate((7, 1, 3))]
_x, _m = pad_batch(_seqs)
assert _x.dtype == np.float32 and _m.dtype == bool and _m.sum() == 11
for _i, _s in enumerate(_seqs):
    assert np.array_equal(_x[_i][_m[_i]], _s)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Zero-shot: MaxSim over MiniLM's own token vectors
#
# MiniLM was trained to be *mean-pooled*, not matched token by token. Still, its last-layer token vectors carry
# meaning. Score every document by MaxSim over the 384-dim token vectors (L2-normalized per token), and compare with
# the dense model:

# %%
dense_q, dense_d = encode_queries(model, test.queries), encode_corpus(model, test.corpus)
dense_s, dense_i = search.topk(dense_q, dense_d, 100)
results = {"dense (mean-pooled, 384 dims)": ndcg(dense_s, dense_i)}
zs_q, zs_d = colbert.project(q_tok, q_mask), colbert.project(doc_tok, doc_mask)  # normalize each token, no projection
zs_s, zs_i = maxsim.rank_maxsim(zs_q, q_mask, zs_d, doc_mask, k=100)
results["MaxSim, zero-shot tokens (384 dims)"] = ndcg(zs_s, zs_i)
for name, value in results.items():
    print(f"{name:40s} nDCG@10 = {value:.4f}")

# %% [markdown]
# ## 5. Training a ColBERT-style model
#
# ColBERT adds a linear layer that maps each token vector to 128 dimensions and trains the whole model with a
# contrastive loss on MaxSim. Here the MiniLM backbone stays frozen (its token vectors are computed once and
# cached) and only the projection $W \in \mathbb{R}^{384 \times 128}$ is trained, which takes a minute or two on a
# CPU. For a batch of (query, relevant document) pairs from SciFact's **train** split, each query's relevant
# document is its positive and the other documents of the batch are its negatives:
# $$\mathcal{L} = -\log \frac{\exp(s(q, d^+)/\tau)}{\sum_{d \in \text{batch}} \exp(s(q, d)/\tau)},
# \qquad s = \text{MaxSim}(qW, dW) / L_q .$$
# `cfg.full` (a GPU, small mode off) trains for more epochs with the same call.

# %%
proj = colbert.colbert_projection(model, train, test, (doc_tok, doc_mask), doc_ids, epochs=20 if cfg.full else 10)
print(f"{'loaded from the cache' if proj['cached'] else 'trained'}: {proj['pairs']} pairs, "
      f"{proj['epochs']} epochs, {proj['seconds']} s of training")
W = proj["weight"]  # (384, 128)
losses = np.array(proj["losses"])
plt.figure(figsize=(6, 3))
plt.plot(losses, alpha=0.3, label="per step")
plt.plot(np.convolve(losses, np.ones(20) / 20, mode="valid"), label="moving average (20 steps)")
plt.xlabel("training step")
plt.ylabel("contrastive loss")
plt.legend()
plt.show()

# %%
cb_q, cb_d = colbert.project(q_tok, q_mask, W), colbert.project(doc_tok, doc_mask, W)  # (Q, 32, 128), (N, L, 128) float16
_start = time.perf_counter()
cb_s, cb_i = maxsim.rank_maxsim(cb_q, q_mask, cb_d, doc_mask, k=100)
full_corpus_ms = 1e3 * (time.perf_counter() - _start) / len(cb_q)  # reported with the two-stage timings below
results["MaxSim, trained projection (128 dims)"] = ndcg(cb_s, cb_i)
for name, value in results.items():
    print(f"{name:40s} nDCG@10 = {value:.4f}")
    record(f"nDCG@10, {name}", value)

# %% [markdown]
# ### Is the gain real?
#
# SciFact's train and test claims were written from the same pool of abstracts: many test queries have a relevant
# document that was also a *training* positive. A projection trained on those pairs can learn to favour those
# documents, which helps on the test set without being a better retriever. Check it: score separately the test
# queries none of whose relevant documents was a training positive.

# %%
train_positives = {d for rel in train.qrels.values() for d, r in rel.items() if r > 0}
unseen = {q: rel for q, rel in test.qrels.items() if not set(rel) & train_positives}
for name, (s, i) in [("dense", (dense_s, dense_i)), ("MaxSim, trained", (cb_s, cb_i))]:
    run = search.run_from_topk(s, i, query_ids, doc_ids)
    seen = {q: rel for q, rel in test.qrels.items() if q not in unseen}
    print(f"{name:16s} nDCG@10: {len(seen)} queries with a train-positive document "
          f"{metrics.evaluate({q: run[q] for q in seen}, seen)['ndcg@10']:.4f} | {len(unseen)} without "
          f"{metrics.evaluate({q: run[q] for q in unseen}, unseen)['ndcg@10']:.4f}")

# %% [markdown]
# On the full corpus the trained model's whole lead comes from the first group; on the second it scores about the
# same as the dense model (the README has the figures). The late-interaction model is a real retriever, but the
# headline gain mixes in a document prior. Notebook 06 builds a leakage guard for the queries; documents shared
# between splits are the subtler leak.

# %% [markdown]
# ## 6. Compressing token vectors
#
# Multi-vector storage grows with the text, so every byte per value counts. The token vectors quantize like any
# embedding (notebook 02): int8 per dimension, calibrated on a sample of tokens, or one bit per dimension. ColBERTv2
# goes further with **residual compression**: cluster all token vectors (k-means, e.g. $2^{16}$ centroids), store each
# token as the id of its nearest centroid plus its residual quantized to 1 or 2 bits per dimension, so a 128-dim token
# costs about 20-36 bytes instead of 256 in fp16, with nearly no loss.

# %%
tokens_sample = cb_d[doc_mask][:: max(1, doc_mask.sum() // 20000)].astype(np.float32)
ranges = quantization.calibrate(tokens_sample)
flat = cb_d[doc_mask].astype(np.float32)  # (T, 128): only real tokens are stored
int8_tok = np.zeros_like(cb_d)
int8_tok[doc_mask] = quantization.dequantize_scalar(quantization.quantize_scalar(flat, ranges), ranges)
bin_tok = np.zeros_like(cb_d)
bin_tok[doc_mask] = quantization.unpack_binary(quantization.quantize_binary(flat), 128, signed=True) / np.sqrt(128)
storage = {}
for name, docs, per_value in [("fp16", cb_d, 2), ("int8", int8_tok, 1), ("binary", bin_tok, 1 / 8)]:
    s, i = (cb_s, cb_i) if name == "fp16" else maxsim.rank_maxsim(cb_q, q_mask, docs, doc_mask, k=100)  # fp16: ranked above
    storage[name] = (ndcg(s, i), doc_mask.sum() * 128 * per_value / len(doc_ids))
    print(f"trained MaxSim, {name:6s} tokens: nDCG@10 = {storage[name][0]:.4f}, "
          f"{storage[name][1]:8,.0f} bytes per document")
    record(f"nDCG@10, trained MaxSim, {name} tokens", storage[name][0])
    record(f"bytes per document, trained MaxSim, {name} tokens", storage[name][1], "bytes")

# %% [markdown]
# ## 7. Two stages: cheap candidates, MaxSim rerank
#
# MaxSim over the whole corpus is expensive. In production, a cheap first stage (the dense model, or binary codes)
# proposes candidates, and MaxSim reranks only those.
#
# ### Exercise 3 (2 points): rerank a shortlist
#
# `rerank(q, q_mask, d, d_mask, candidates, k)`: for each query row, score its candidate documents (an int array
# (Q, C) of document rows) with MaxSim (`maxsim.maxsim` or your `maxsim_scores`), and return the k best document indices
# per query, best first, as an int array (Q, k).

# %% nbgrader={"grade": false, "grade_id": "rerank", "locked": false, "schema_version": 3, "solution": true}
def rerank(q, q_mask, d, d_mask, candidates, k):
    """Top-k of each query's candidates by MaxSim: int (Q, k) document rows, best first."""
    ### BEGIN SOLUTION
    out = []
    for row, cand in enumerate(candidates):
        s = maxsim.maxsim(q[row:row + 1], q_mask[row:row + 1], d[cand], d_mask[cand])[0]  # (C,)
        out.append(cand[np.argsort(-s, kind="stable")[:k]])
    return np.array(out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rerank_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_q = np.array([[[1.0, 0.0]]])
_d = np.array([[[0.1, 0.0]], [[0.9, 0.0]], [[0.5, 0.0]], [[1.0, 0.0]]])
_r = rerank(_q, np.ones((1, 1), bool), _d, np.ones((4, 1), bool), np.array([[0, 1, 2]]), 2)
assert np.asarray(_r).tolist() == [[1, 2]], _r  # document 3 is best but not a candidate
### BEGIN HIDDEN TESTS
_cand = dense_i[:20, :30]
_mine = np.asarray(rerank(cb_q[:20].astype(np.float32), q_mask[:20], cb_d, doc_mask, _cand, 10))
_, _ref = maxsim.rank_maxsim(cb_q[:20], q_mask[:20], cb_d, doc_mask, k=10, candidates=_cand)
assert (_mine == _ref).mean() > 0.99
### END HIDDEN TESTS

# %%
for depth in (20, 50, 100):
    start = time.perf_counter()
    s, i = maxsim.rank_maxsim(cb_q, q_mask, cb_d, doc_mask, k=10, candidates=dense_i[:, :depth])
    ms = 1e3 * (time.perf_counter() - start) / len(query_ids)
    print(f"dense top {depth:3d} -> MaxSim rerank: nDCG@10 = {ndcg(s, i):.4f}, {ms:.1f} ms per query for the rerank")
    record(f"nDCG@10, dense top {depth} -> MaxSim rerank", ndcg(s, i))
print(f"MaxSim over the whole corpus (section 5): {full_corpus_ms:.1f} ms per query")
record("latency, MaxSim over the whole corpus", full_corpus_ms, "ms/query")

# %% [markdown]
# **Take-aways.** Late interaction scores token against token, so it keeps fine-grained matches that pooling blurs;
# a projection trained for MaxSim on a few hundred in-domain pairs makes it competitive with the dense model (and
# far ahead on test queries whose documents it saw in training: always check where a gain comes from). It pays in storage (hundreds of vectors a document), which int8 or binary tokens, ColBERTv2's residual
# compression and a dense first stage bring back under control. The full-corpus figures are in the README;
# `python benchmarks/late_interaction_quality.py` reproduces them.
