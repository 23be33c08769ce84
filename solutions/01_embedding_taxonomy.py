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
# # 01 · The embedding taxonomy: dense, sparse and hybrid retrieval
#
# **You will learn to**
# - build the dense baseline: encode SciFact with all-MiniLM-L6-v2, rank by cosine similarity, score nDCG@10;
# - build a sparse lexical embedding (BM25) as a `scipy.sparse` document-term matrix and score by sparse dot product;
# - see, on real queries, what lexical signals keep (exact terms, numbers, rare entities) that dense vectors blur;
# - fuse the two (reciprocal rank fusion and a convex combination of normalized scores) and measure the gain;
# - place every representation of this course on one axis: bytes per document.
#
# **Prerequisites:** Python and NumPy; cosine similarity; what a retrieval metric such as nDCG@10 measures.
#
# **Expected time on a laptop CPU:** 45 minutes of work. Running it takes about 4 minutes the first time
# (the corpus is encoded once and cached) and under a minute afterwards; `COURSE_SMALL=1` uses a
# 1,500-document sub-corpus.
#
# **Data:** BEIR SciFact, CC BY-NC 2.0 (non-commercial use only). Cite Wadden et al. (2020) and Thakur et al. (2021).

# %%
import course_lib

cfg = course_lib.setup(seed=0)

# %%
import numpy as np
import matplotlib.pyplot as plt

from course_lib import hybrid, metrics, search, sparse
from course_lib.data import document_text, load_beir
from course_lib.embed import encode_corpus, encode_queries
from course_lib.models import load_model
from course_lib.tools.report import record

test = load_beir("scifact", "test", small=cfg.small)
train = load_beir("scifact", "train", small=cfg.small)
doc_ids = list(test.corpus)
doc_texts = [document_text(test.corpus[d]) for d in doc_ids]
print(test)
print("a query:", next(iter(test.queries.values())))

# %% [markdown]
# ## 1. Dense embeddings: the baseline
#
# A dense model maps a text to one vector $e \in \mathbb{R}^{384}$ with $\lVert e \rVert_2 = 1$.
# Relevance is the cosine similarity $\cos(q, d) = \frac{q \cdot d}{\lVert q\rVert \lVert d\rVert}$, which for
# unit vectors is just the dot product. Ranking a corpus is one matrix product and a top-k.

# %%
model = load_model(device=cfg.device)
corpus_emb = encode_corpus(model, test.corpus)  # (N, 384) float32, cached on disk
query_emb = encode_queries(model, test.queries)  # (Q, 384)
print(corpus_emb.shape, corpus_emb.dtype, "norms:", np.linalg.norm(corpus_emb[:3], axis=1).round(4))


# %% [markdown]
# ### Exercise 1 (2 points): cosine top-k
#
# Write `cosine_topk(query_emb, corpus_emb, k)`. The inputs need **not** be normalized. Return the
# `k` best cosine similarities of each query, in decreasing order, and their corpus row indices.
# Where scores tie, the lower index comes first (hint: `np.argsort(..., kind="stable")` on the negated scores).

# %% nbgrader={"grade": false, "grade_id": "cosine_topk", "locked": false, "schema_version": 3, "solution": true}
def cosine_topk(query_emb, corpus_emb, k):
    """Exact cosine top-k.

    Parameters
    ----------
    query_emb : np.ndarray, float (Q, D)
    corpus_emb : np.ndarray, float (N, D)
    k : int, 1 <= k <= N

    Returns
    -------
    scores : np.ndarray, float (Q, k), each row decreasing
    indices : np.ndarray, int (Q, k)
    """
    ### BEGIN SOLUTION
    q = query_emb / np.linalg.norm(query_emb, axis=1, keepdims=True)
    c = corpus_emb / np.linalg.norm(corpus_emb, axis=1, keepdims=True)
    sims = q @ c.T  # (Q, N)
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, idx, axis=1), idx
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cosine_topk_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_c = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
_s, _i = cosine_topk(np.array([[1.0, 0.2]]), _c, k=2)
assert _i.tolist() == [[0, 2]], _i
assert np.allclose(_s, [[0.98058068, 0.83205029]])
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(1)
_q, _x = _rng.standard_normal((5, 8)), _rng.standard_normal((40, 8)) * 7
_s, _i = cosine_topk(_q, _x, 40)
_ref_s, _ref_i = search.topk(_q / np.linalg.norm(_q, axis=1, keepdims=True),
                             _x / np.linalg.norm(_x, axis=1, keepdims=True), 40)
assert np.array_equal(np.asarray(_i), _ref_i) and np.allclose(_s, _ref_s, atol=1e-6)
_s, _i = cosine_topk(np.ones((1, 2)), np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 1.0]]), 2)
assert np.asarray(_i).tolist() == [[0, 1]]  # tie: lower index first
### END HIDDEN TESTS

# %% [markdown]
# The course library's `search.topk` does the same, blocked over queries so it never holds a
# huge score matrix. We use it from here on, so this notebook runs even before you solve the exercise.

# %%
K = 100
scores, idx = search.topk(query_emb, corpus_emb, K)
dense_run = search.run_from_topk(scores, idx, list(test.queries), doc_ids)
dense_m = metrics.evaluate(dense_run, test.qrels)
print(f"dense  nDCG@10 = {dense_m['ndcg@10']:.4f}   Recall@100 = {dense_m['recall@100']:.4f}")

# %% [markdown]
# ## 2. Sparse embeddings: BM25 as a vector
#
# A sparse embedding lives in vocabulary space: one dimension per term, almost all zero. BM25 puts
# on term $t$ of document $d$ the weight
#
# $$w(t,d) = \mathrm{idf}(t)\,\frac{\mathrm{tf}(t,d)}{\mathrm{tf}(t,d) + k_1\left(1 - b + b\,\frac{|d|}{\mathrm{avgdl}}\right)},
# \qquad \mathrm{idf}(t) = \ln\!\left(1 + \frac{N - \mathrm{df}(t) + 0.5}{\mathrm{df}(t) + 0.5}\right)$$
#
# and a query is the vector of its term counts, so $\mathrm{score}(q,d) = \sum_t \mathrm{count}(t,q)\,w(t,d)$:
# a sparse dot product. Term frequency saturates (controlled by $k_1$), long documents are
# discounted (controlled by $b$), and rare terms weigh more (idf).
#
# ### Exercise 2 (2 points): a BM25 term weight
#
# Implement the formula. It must work on numbers and, elementwise, on NumPy arrays.

# %% nbgrader={"grade": false, "grade_id": "bm25_weight", "locked": false, "schema_version": 3, "solution": true}
def bm25_weight(tf, df, doc_len, avg_doc_len, n_docs, k1=0.9, b=0.4):
    """BM25 weight w(t, d) of a term with frequency ``tf`` in a document of ``doc_len`` tokens."""
    ### BEGIN SOLUTION
    tf = np.asarray(tf, dtype=float)
    idf = np.log(1 + (n_docs - np.asarray(df, dtype=float) + 0.5) / (np.asarray(df, dtype=float) + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * np.asarray(doc_len, dtype=float) / avg_doc_len))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "bm25_weight_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
assert abs(float(bm25_weight(tf=2, df=10, doc_len=100, avg_doc_len=120, n_docs=1000)) - 3.20942) < 1e-4
assert float(bm25_weight(tf=0, df=10, doc_len=100, avg_doc_len=120, n_docs=1000)) == 0.0
### BEGIN HIDDEN TESTS
_tf, _df, _dl = np.array([1, 3, 10]), np.array([1, 50, 999]), np.array([30, 200, 80])
assert np.allclose(bm25_weight(_tf, _df, _dl, 100.0, 1000), sparse.bm25_term_weight(_tf, _df, _dl, 100.0, 1000))
assert np.allclose(bm25_weight(_tf, _df, _dl, 100.0, 1000, k1=1.5, b=0.75),
                   sparse.bm25_term_weight(_tf, _df, _dl, 100.0, 1000, k1=1.5, b=0.75))
_w = [float(bm25_weight(t, 5, 100, 100, 1000)) for t in (1, 2, 4, 8, 1000)]
assert all(a < b for a, b in zip(_w, _w[1:])) and _w[-1] < 1.001 * float(np.log(1 + 995.5 / 5.5))
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.sparse.BM25Index` builds the whole (documents x vocabulary) matrix with these weights.
# Its scores equal those of the `bm25s` library on the same tokens (the course's tests check this to 1e-5).

# %%
bm25 = sparse.BM25Index.build(doc_texts)
print(f"BM25 matrix: {bm25.matrix.shape[0]:,} docs x {bm25.matrix.shape[1]:,} terms, "
      f"{bm25.matrix.nnz:,} non-zeros ({100 * bm25.matrix.nnz / np.prod(bm25.matrix.shape):.3f}% dense)")
bm25_scores = bm25.score(list(test.queries.values()))  # (Q, N)
s, i = search.topk_scores(bm25_scores, K)
bm25_run = search.run_from_topk(s, i, list(test.queries), doc_ids)
bm25_m = metrics.evaluate(bm25_run, test.qrels)
print(f"BM25   nDCG@10 = {bm25_m['ndcg@10']:.4f}   Recall@100 = {bm25_m['recall@100']:.4f}")

# %% [markdown]
# ### Where each wins
#
# Averages hide the interesting part. Per query, compare nDCG@10. Where BM25 wins, look for exact
# strings a dense model smooths over: numbers, gene and drug names, abbreviations. Where dense wins,
# look for paraphrase: the claim and the abstract say the same thing in different words.

# %%
per_dense = metrics.evaluate_per_query(dense_run, test.qrels, (10,))
per_bm25 = metrics.evaluate_per_query(bm25_run, test.qrels, (10,))
diff = {q: per_bm25[q]["ndcg@10"] - per_dense[q]["ndcg@10"] for q in test.qrels}
idf = bm25.idf  # (V,)


def show(qid):
    terms = [t for t in dict.fromkeys(sparse.tokenize(test.queries[qid])) if t in bm25.vocab]
    rare = sorted(terms, key=lambda t: -idf[bm25.vocab[t]])[:3]
    rel = next(iter(test.qrels[qid]))
    print(f"  [{qid}] {test.queries[qid]}")
    print(f"      nDCG@10 dense {per_dense[qid]['ndcg@10']:.2f}, BM25 {per_bm25[qid]['ndcg@10']:.2f}; "
          f"rarest terms {rare}; relevant: {test.corpus[rel]['title'][:70]!r}")


order = sorted(diff, key=diff.get)
print(f"BM25 better on {sum(v > 0 for v in diff.values())} queries, dense better on "
      f"{sum(v < 0 for v in diff.values())}, tied on {sum(v == 0 for v in diff.values())}.")
print("Sparse wins, dense loses:")
for q in order[::-1][:3]:
    show(q)
print("Dense wins, sparse loses:")
for q in order[:3]:
    show(q)


# %% [markdown]
# ## 3. Hybrid retrieval
#
# Two runs, two kinds of evidence. **Reciprocal rank fusion** ignores the scores and adds
# $1/(k + \mathrm{rank})$ over the runs ($k = 60$ by convention): a document ranked well by
# either run rises. It needs no calibration between the dense cosine (in $[-1, 1]$) and BM25 (unbounded).
#
# ### Exercise 3 (2 points): reciprocal rank fusion
#
# Given several rankings of one query (lists of doc ids, best first), return each document's fused
# score $\sum_r 1/(k + \mathrm{rank}_r(d))$ with ranks starting at 1; a document missing from a
# ranking gets nothing from it.

# %% nbgrader={"grade": false, "grade_id": "rrf", "locked": false, "schema_version": 3, "solution": true}
def reciprocal_rank_fusion(rankings, k=60):
    """Fuse rankings (list of lists of doc ids, best first) into {doc_id: fused score}."""
    ### BEGIN SOLUTION
    fused = {}
    for ranking in rankings:
        for r, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + r)
    return fused
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rrf_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
_f = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
assert set(_f) == {"a", "b", "c"}
assert abs(_f["b"] - (1 / 62 + 1 / 61)) < 1e-12 and abs(_f["a"] - 1 / 61) < 1e-12
### BEGIN HIDDEN TESTS
assert reciprocal_rank_fusion([], k=60) == {}
_f = reciprocal_rank_fusion([["x"], ["y", "x"], []], k=0)
assert abs(_f["x"] - 1.5) < 1e-12 and abs(_f["y"] - 1.0) < 1e-12
_runs = [{"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, {"q": {"c": 0.9, "d": 0.5}}]
_ref = hybrid.rrf(_runs, k=10)["q"]
_ours = reciprocal_rank_fusion([metrics.rank(r["q"]) for r in _runs], k=10)
assert set(_ours) == set(_ref) and all(abs(_ours[d] - _ref[d]) < 1e-12 for d in _ref)
### END HIDDEN TESTS

# %% [markdown]
# The other classic fusion is a **convex combination** of per-query min-max normalized scores,
# $\alpha\,\hat s_{\text{dense}} + (1-\alpha)\,\hat s_{\text{BM25}}$. It has a knob, so we must choose
# $\alpha$ without looking at the test queries: we pick it on the **train** queries, then report test.

# %%
train_q_emb = encode_queries(model, train.queries)
s, i = search.topk(train_q_emb, corpus_emb, K)
train_dense = search.run_from_topk(s, i, list(train.queries), doc_ids)
s, i = search.topk_scores(bm25.score(list(train.queries.values())), K)
train_bm25 = search.run_from_topk(s, i, list(train.queries), doc_ids)
alphas = np.round(np.linspace(0, 1, 11), 2)
train_ndcg = [metrics.evaluate(hybrid.convex(train_dense, train_bm25, a), train.qrels)["ndcg@10"] for a in alphas]
best_alpha = float(alphas[int(np.argmax(train_ndcg))])

rrf_m = metrics.evaluate(hybrid.rrf([dense_run, bm25_run], k=60), test.qrels)
convex_m = metrics.evaluate(hybrid.convex(dense_run, bm25_run, best_alpha), test.qrels)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(alphas, train_ndcg, marker="o", label="train queries (used to choose alpha)")
ax.axvline(best_alpha, color="grey", ls="--", label=f"chosen alpha = {best_alpha}")
ax.set_xlabel("alpha (weight of the dense score)")
ax.set_ylabel("nDCG@10")
ax.set_title("Convex fusion: choosing alpha on train")
ax.legend()
plt.show()

print(f"SciFact test, {len(test.corpus):,} documents:")
for name, m in [("dense", dense_m), ("BM25", bm25_m), ("hybrid RRF (k=60)", rrf_m),
                (f"hybrid convex (alpha={best_alpha})", convex_m)]:
    print(f"  {name:28s} nDCG@10 {m['ndcg@10']:.4f}   Recall@100 {m['recall@100']:.4f}")
for name, m in [("dense", dense_m), ("BM25", bm25_m), ("hybrid RRF", rrf_m), ("hybrid convex", convex_m)]:
    record(f"nDCG@10, {name}", m["ndcg@10"])  # collected by `make workbook` into build/REPORT.md

# %% [markdown]
# ## 4. The spectrum at a glance: bytes per document
#
# Every representation in this course trades meaning for memory. Here is what one SciFact document
# costs in each, computed from the real corpus (multi-vector: one vector per word piece, truncated
# at 256; sparse: one int32 index and one float32 weight per distinct term).

# %%
n_tokens = np.array([len(ids) for ids in model.tokenizer(doc_texts, truncation=True, max_length=256)["input_ids"]])
dim = corpus_emb.shape[1]
spectrum = {
    "dense fp32": dim * 4,
    "dense fp16": dim * 2,
    "dense int8": dim * 1,
    "dense binary": dim // 8,
    "multi-vector fp32 (tokens x 384)": float(n_tokens.mean() * dim * 4),
    "multi-vector fp16 (tokens x 128, ColBERT-style)": float(n_tokens.mean() * 128 * 2),
    "sparse BM25 (non-zeros x 8 B)": float(bm25.nnz_per_doc().mean() * 8),
}
print(f"{'representation':50s} {'bytes/doc':>10s} {'vs fp32':>8s}")
for name, nbytes in spectrum.items():
    print(f"{name:50s} {nbytes:10,.0f} {nbytes / spectrum['dense fp32']:8.3f}x")
    record(f"bytes per document, {name}", nbytes, "bytes")
print(f"(mean {n_tokens.mean():.0f} word pieces and {bm25.nnz_per_doc().mean():.0f} distinct terms per document)")

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.barh(list(spectrum), list(spectrum.values()), color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("bytes per document (log scale)")
ax.set_title("What one SciFact document costs")
ax.invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# **Take-aways.** Dense vectors capture paraphrase; sparse vectors keep exact terms, numbers and
# rare names; fusing both beats either on SciFact. Binary codes are 32 times smaller than fp32,
# multi-vector representations hundreds of times larger. The next notebooks measure what each
# step along this axis costs in quality, starting with quantization (02).
