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
# # 07 · Adaptive dimensions on a frozen model: PCA, the Matryoshka-Adaptor and sparse codes (CSR)
#
# **You will learn to**
# - shrink the embeddings of a model you cannot retrain (an API, or no labelled pairs): plain truncation, PCA fitted
#   on your corpus, and a small network trained on top of the frozen embeddings;
# - write the top-k similarity loss of the **Matryoshka-Adaptor** (Yoon et al., EMNLP 2024), which teaches every
#   nested prefix to keep each document's nearest neighbours, and train the adaptor with and without labels;
# - set up **Contrastive Sparse Representation** (CSR, "Beyond Matryoshka", Wen et al., ICML 2025) with
#   sentence-transformers' `SparseEncoder`, `SparseAutoEncoder` and `CSRLoss`: a wide code with only $k$ active
#   dimensions, searched through an inverted index;
# - put all of them and notebook 05's Matryoshka model on one chart of quality against bytes per document, and
#   choose between MRL, the adaptor and CSR for a stated constraint.
#
# **Prerequisites:** notebooks 01 (nDCG@10, BM25's inverted index), 05 (nested prefixes, truncate and re-normalize,
# the Matryoshka loss) and 06 (MNRL, the leakage guard). Basic PyTorch tensors.
#
# **Expected time on a laptop CPU:** about 90 minutes of work (three exercises, one prediction, one written answer).
# Running it the first time takes about 12 minutes on a 2-core CPU, estimated from its parts (two adaptors of 300
# steps, 135 s and 159 s measured; four CSR heads of 1,000 steps, 78-104 s each; all trained on cached embeddings and
# then cached) and under a minute after that. `COURSE_SMALL=1` uses the 1,500-document sub-corpus and shorter
# trainings: its first run took 9 min 37 s on a 2-core CPU that another job was using, about a minute warm. Cells that run longer than about 20 seconds say so above them. It loads notebook 05's Matryoshka model
# from the cache (or trains it, about 10 minutes, if notebook 05 never ran).
#
# **Data:** BEIR SciFact, CC BY-NC 2.0 (non-commercial use only). Cite Wadden et al. (2020), Thakur et al. (2021),
# Yoon et al. (2024, Matryoshka-Adaptor) and Wen et al. (2025, CSR).
#
# **Terms used throughout** (each is defined again where it first matters):
#
# | term | meaning |
# |---|---|
# | frozen model | an embedding model whose weights you do not change; you only see its output vectors |
# | PCA | principal component analysis: rotate the vectors onto the directions of largest variance in the corpus, sorted, so that truncation keeps the most varied directions |
# | adaptor | a small network $f$ applied to the frozen embeddings, trained so that the prefixes of $f(e)$ are good embeddings |
# | top-k similarity loss | the gap between each document's cosine to its $k$ nearest neighbours before and after truncation, averaged |
# | sparse code | a vector with mostly zeros; its **active dimensions** are the non-zero ones |
# | CSR | a TopK sparse autoencoder over frozen embeddings: a code of width $H$ (here 1,536) with $k$ active dimensions |
# | inverted index | for each code dimension, the list of documents active there (its **posting list**), as in BM25 |
# | bytes per document | what the index stores for one document: $4m$ for $m$ float32 dims, $6k$ for $k$ active dims (a float32 value and a 2-byte index each) |

# %%
# extra code: sets the course up when this notebook runs on Google Colab
# (clone, install, data: 3-5 minutes the first time); it does nothing elsewhere. Small mode there unless COURSE_SMALL=0.
import os, subprocess, sys
if "google.colab" in sys.modules or os.environ.get("COURSE_BOOTSTRAP") == "1":
    HOME = os.environ.get("COURSE_HOME", "/content/embeddings-course")
    URL = os.environ.get("COURSE_REPO_URL", "https://github.com/embeddings-course/embeddings-course")
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth=1", URL, HOME], check=True)
    subprocess.run([sys.executable, HOME + "/course_lib/tools/bootstrap.py", "colab", "--home", HOME,
                    "--loaded", ",".join(sorted(sys.modules))], check=True)
    sys.path.insert(0, HOME); os.chdir(HOME + "/notebooks"); os.environ.setdefault("COURSE_SMALL", "1")

# %%
import course_lib

cfg = course_lib.setup(seed=0)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from course_lib import adaptor, csr, matryoshka, metrics, search
from course_lib.colbert import training_pairs
from course_lib.compression import Retrieval
from course_lib.data import load_beir
from course_lib.embed import encode_queries
from course_lib.eval import unseen_document_qrels
from course_lib.models import load_model
from course_lib.tools.report import record_many

base = load_model(device=cfg.device)
test = load_beir("scifact", "test", small=cfg.small)
train = load_beir("scifact", "train")
task = Retrieval.from_dataset(base, test)  # cached embeddings of the frozen model: float32 (N, 384), (Q, 384)
q_emb, c_emb = task.query_emb, task.corpus_emb
unseen = unseen_document_qrels(test.qrels, train.qrels)
QUERY_SETS = {"all queries": task.qrels, "unseen-doc queries": unseen}
DIMS = (32, 64, 128, 256)
recipe = csr.frozen_recipe(cfg)
print(f"{len(task.doc_ids):,} documents, {len(task.query_ids)} test queries ({len(unseen)} whose relevant documents "
      f"were never training positives); training steps: {recipe}")


def ndcg(scores, indices):
    """nDCG@10 of a (Q, k) top-k result on each query set."""
    run = search.run_from_topk(scores, indices, task.query_ids, task.doc_ids)
    return {name: metrics.evaluate({q: run[q] for q in qrels if q in run}, qrels)["ndcg@10"]
            for name, qrels in QUERY_SETS.items()}


def dense_ndcg(q, c):
    """nDCG@10 of exact search by inner product (rows already unit length)."""
    return ndcg(*search.topk(q, c, 100))


# %% [markdown]
# ## 1. Two baselines: truncation and PCA
#
# Notebook 05 showed that cutting the base model's 384-dim embedding to its first $m$ dimensions (and re-normalizing)
# loses a quarter of its quality at 64 dims: nothing in its training put the useful directions first. **PCA**
# (principal component analysis) puts them first without any training: centre the corpus embeddings on their mean
# $\mu$, find the orthonormal directions $V = (v_1, \dots, v_{384})$ along which the corpus varies most (sorted by
# variance), rotate every vector onto them, then truncate and re-normalize:
# $$\tilde e = \mathrm{norm}\big(((e - \mu) V)_{1:m}\big).$$
# A rotation changes no cosine between centred vectors; truncation after it keeps the $m$ directions that carry the
# most variance of *this corpus*. It needs the corpus embeddings and nothing else (`adaptor.pca_fit`,
# `adaptor.pca_reduce`; the course's tests check them against faiss's `PCAMatrix`).
#
# The picture: how the corpus's variance is spread over the 384 raw coordinates (sorted, largest first) and over the
# 384 principal axes. The more variance the first $m$ axes hold, the less a cut at $m$ throws away.

# %%
pca = adaptor.pca_fit(c_emb)
raw_var = np.sort(c_emb.var(axis=0))[::-1]
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(np.arange(1, 385), np.cumsum(raw_var) / raw_var.sum(), label="raw coordinates, largest variance first")
ax.plot(np.arange(1, 385), np.cumsum(pca.variance) / pca.variance.sum(), label="principal axes (PCA)")
for m in DIMS:
    ax.axvline(m, color="grey", lw=0.6, ls=":")
ax.set(xlabel="number of dimensions kept", ylabel="share of the corpus's variance kept", xscale="log",
       title="Variance of the MiniLM corpus embeddings held by the first m dimensions")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
print(f"variance held by 64 dims: raw coordinates {raw_var[:64].sum() / raw_var.sum():.0%}, "
      f"principal axes {pca.variance[:64].sum() / pca.variance.sum():.0%}")

# %% [markdown]
# **Predict, then run.** The base model scores nDCG@10 $s_{384}$ with all 384 dimensions. Before you run the cell
# after the next one, write down the share of it that PCA keeps at **64** dims, $s^{PCA}_{64} / s_{384}$, on all
# test queries, as a fraction. Hint: plain truncation keeps about 0.75 on the whole corpus and about 0.79 on the
# small one (notebook 05); PCA's first 64 axes hold far more of the variance (the picture above), but variance is not
# relevance, so the share of nDCG@10 rises by less than the share of variance. The check passes within 0.08 of the
# measured value.

# %% nbgrader={"grade": false, "grade_id": "predict_pca64_share", "locked": false, "schema_version": 3, "solution": true}
# Your prediction, before you run the next cell: nDCG@10 of PCA at 64 dims / nDCG@10 with all 384 dims.
# Replace the line `raise NotImplementedError()` with `predicted_pca_share = <your number>`, then run this cell.
predicted_pca_share = None
### BEGIN SOLUTION
predicted_pca_share = 0.85
### END SOLUTION

# %%
results = {("all 384 dims", 384): {"bytes/doc": 384 * 4, **dense_ndcg(q_emb, c_emb)}}
for m in DIMS:
    results[("truncation", m)] = {"bytes/doc": 4 * m, **dense_ndcg(matryoshka.truncate(q_emb, m),
                                                                   matryoshka.truncate(c_emb, m))}
    results[("PCA", m)] = {"bytes/doc": 4 * m, **dense_ndcg(adaptor.pca_reduce(q_emb, pca, m),
                                                            adaptor.pca_reduce(c_emb, pca, m))}
full_score = results[("all 384 dims", 384)]["all queries"]
measured_pca_share = results[("PCA", 64)]["all queries"] / full_score
print(f"PCA at 64 dims keeps {measured_pca_share:.3f} of the 384-dim score (your prediction: {predicted_pca_share})")
pd.DataFrame(results).T.rename_axis(["method", "dims"]).round(4)

# %% nbgrader={"grade": true, "grade_id": "predict_pca64_share_tests", "locked": true, "points": 1, "schema_version": 3, "solution": false}
if predicted_pca_share is None:
    raise NotImplementedError("no prediction yet: set predicted_pca_share in the prediction cell above and run it")
assert abs(predicted_pca_share - measured_pca_share) <= 0.08, (predicted_pca_share, round(measured_pca_share, 3))

# %% [markdown]
# PCA closes a good part of the gap at 32 and 64 dims, and almost none at 256, where truncation already kept most of
# the variance. It only sorts the directions by *variance*, which is not the same thing as *what separates a
# relevant document from its neighbours*. The next method trains for that.
#
# ## 2. The Matryoshka-Adaptor
#
# The adaptor is a small network with a skip connection, applied to queries and documents alike:
# $$f(z) = z + W_2\,\mathrm{relu}(W_1 z + b_1) + b_2,$$
# where $z$ is the frozen embedding, here already rotated by PCA ($z = (e - \mu) V$), and $W_2 = 0$ at the start, so
# training starts exactly at PCA and moves on from there. Its losses ask each nested prefix $f(e)_{1:m}$ to keep
# the similarity structure of the **full** embeddings $e$, using only the corpus (no queries, no labels):
#
# - **pairwise**: for random pairs of documents, $|\cos(e_i, e_j) - \cos(f(e_i)_{1:m}, f(e_j)_{1:m})|$;
# - **top-k**: the same gap, but only between each document and its $k$ nearest neighbours by the full cosine:
#   the pairs that decide a ranking. This is the one you write;
# - **reconstruction**: $\lVert f(z) - z \rVert_2$, which keeps $f$ close to its input.
#
# With $\mathrm{nn}_k(i)$ the $k$ nearest *other* documents of document $i$ and $\mathcal M$ the set of sizes:
# $$L_{topk} = \sum_{m \in \mathcal M} \frac{1}{Nk} \sum_{i=1}^{N} \sum_{j \in \mathrm{nn}_k(i)}
#   \big\lvert \cos(e_i, e_j) - \cos(f(e_i)_{1:m}, f(e_j)_{1:m}) \big\rvert .$$
#
# **Exercise 7.1 · The top-k similarity loss** · difficulty 3/5 · about 20 minutes
#
# `topk_loss(full, adapted, neighbors, dims)` in PyTorch: `full` and `adapted` are float tensors (N, D) (the frozen
# embeddings and the adaptor's output, row $i$ the same document in both), `neighbors` an int64 tensor (N, k)
# whose row $i$ holds the row indices of $\mathrm{nn}_k(i)$, `dims` a list of prefix sizes. Return $L_{topk}$ as a
# 0-dim tensor that gradients flow through (so that training can call `.backward()` on it). Use
# `torch.nn.functional.cosine_similarity(a, b, dim=-1)`, which compares two tensors of the same (or broadcastable)
# shape along the last axis and divides by both norms, so there is no need to re-normalize the prefixes first; its
# small `eps` keeps the cosine of an all-zero prefix at 0 (a hand-written division would give NaN there, and the
# visible test has such a prefix). `full[neighbors]` gathers an (N, k, D) tensor, and `full[:, None, :]` broadcasts
# against it. Do not modify the inputs.

# %% nbgrader={"grade": false, "grade_id": "topk_loss", "locked": false, "schema_version": 3, "solution": true}
def topk_loss(full, adapted, neighbors, dims):
    """Sum over dims m of the mean |cos(e_i, e_j) - cos(f_i[:m], f_j[:m])| over each row i and its neighbours j."""
    ### BEGIN SOLUTION
    cos = torch.nn.functional.cosine_similarity
    target = cos(full[:, None, :], full[neighbors], dim=-1)  # (N, k)
    total = 0.0
    for m in dims:
        a = adapted[:, :m]
        total = total + (target - cos(a[:, None, :], a[neighbors], dim=-1)).abs().mean()
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "topk_loss_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
_full = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
_nn = torch.tensor([[1], [0], [1]])
# full cosines to the neighbour: 0.7071 for every row; 1-dim prefixes: [1], [1], [0] -> cosines 1, 1, 0
_want = (abs(0.70710678 - 1.0) + abs(0.70710678 - 1.0) + abs(0.70710678 - 0.0)) / 3
assert abs(float(topk_loss(_full, _full, _nn, [1])) - _want) < 1e-5, float(topk_loss(_full, _full, _nn, [1]))
assert abs(float(topk_loss(_full, _full, _nn, [2]))) < 1e-6  # all dims of the same vectors: no gap
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(0)
_f = torch.randn(30, 16, generator=_g, dtype=torch.float64)
_a = (_f + 0.5 * torch.randn(30, 16, generator=_g, dtype=torch.float64)).requires_grad_(True)
_n = torch.from_numpy(adaptor.nearest_neighbors(_f.numpy(), 4))
for _dims in ([16], [8, 4], [16, 8, 2, 1]):
    _got = topk_loss(_f, _a, _n, _dims)  # float() of a tensor that needs grad warns on stderr: detach first
    assert abs(float(_got.detach()) - float(adaptor.topk_similarity_loss(_f, _a, _n, _dims).detach())) < 1e-8, _dims
_got.backward()
assert _a.grad is not None and float(_a.grad.abs().sum()) > 0, "no gradient reaches the adapted embeddings"
_copy = _f.clone()
topk_loss(_f, _a.detach(), _n, [4])
assert torch.equal(_f, _copy), "the inputs must not be modified"
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.adaptor.topk_similarity_loss` is the course's version (checked against NumPy), and
# `adaptor.train_adaptor` trains with all three losses: each step, the pairwise loss on a random batch of 1,024
# documents and the top-k and reconstruction losses on all of them ($k = 10$), summed over the sizes 256, 128, 64 and
# 32, with Adam. `adaptor.adaptor_model` caches the result.
#
# The **supervised** variant adds labelled pairs: the SciFact *train* (claim, abstract) pairs, through notebook 06's
# leakage guard, with the in-batch ranking loss (MNRL) at every prefix. It needs the train queries' embeddings, from
# the same frozen model.
#
# **A long cell:** two adaptor trainings, **about 2-3 minutes each on a 2-core CPU** the first time (a progress bar
# each; 1-5 minutes each in small mode, depending on what else the CPU is doing), then loaded from the cache.

# %%
qids, pair_rows, guard = training_pairs(train, test, task.doc_ids)
q_train = encode_queries(base, {qid: train.queries[qid] for qid in qids})  # (train queries, 384)
pairs = (q_train[[p for p, _ in pair_rows]], c_emb[[d for _, d in pair_rows]])  # aligned (P, 384) rows
unsup = adaptor.adaptor_model(c_emb, steps=recipe["adaptor_steps"])
sup = adaptor.adaptor_model(c_emb, pairs=pairs, steps=recipe["adaptor_steps"])
for name, a in [("unsupervised", unsup), ("supervised", sup)]:
    print(f"adaptor, {name}: {'loaded from the cache' if a['cached'] else 'trained'}, {a['steps']} steps, "
          f"{a['seconds']} s of training")
print(f"{len(pair_rows)} supervised pairs; leakage guard: {guard}")
for m in DIMS:
    for name, a in [("adaptor, unsupervised", unsup), ("adaptor, supervised", sup)]:
        results[(name, m)] = {"bytes/doc": 4 * m, **dense_ndcg(adaptor.adapt(q_emb, a, m), adaptor.adapt(c_emb, a, m))}
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(unsup["losses"], label="unsupervised")
ax.plot(sup["losses"], label="supervised (+ MNRL on train pairs)")
ax.set(xlabel="training step", ylabel="loss", title="Adaptor training")
ax.legend()
plt.show()
pd.DataFrame({k: v for k, v in results.items() if k[0] in ("truncation", "PCA") or "adaptor" in k[0]}).T.rename_axis(
    ["method", "dims"]).round(4)

# %% [markdown]
# Read the two query-set columns side by side. The unsupervised adaptor learned from the corpus alone, so it treats
# every query alike. The supervised one saw train claims whose relevant abstracts are also relevant to some test
# claims: on all queries it can even beat the 384-dim base model, but on the unseen-document queries most of that
# lead is gone (the same pattern as notebook 05's Matryoshka model and notebook 06's fine-tuning).
#
# ## 3. Sparse codes: CSR
#
# A different way to spend few bytes: instead of *fewer* dimensions, *many more*, almost all zero. A **TopK sparse
# autoencoder** maps the frozen embedding $e \in \mathbb R^{384}$ to a code $z \in \mathbb R^{H}$, $H = 1536$, and keeps
# only its $k$ largest entries:
# $$z = \mathrm{relu}\big(\mathrm{TopK}_k(W (e - b_{pre}) + b_{lat})\big), \qquad \hat e = W^\top z + b_{pre}.$$
# The decoder (the encoder's transpose) reconstructs $e$ from the code. A document costs $k$ values and their $k$
# positions: $6k$ bytes (float32 value, 2-byte index), 192 bytes at $k = 32$, less than 64 float32 dims (256
# bytes). Queries and documents are scored by the dot product of their codes, $z_q \cdot z_d$, which only involves
# the dimensions active in **both**: an **inverted index** (one posting list of (document, value) per dimension, as
# BM25 keeps one per word in notebook 01) finds them without touching the other documents' zeros. This is the
# *learned sparse* family of the taxonomy: BM25's dimensions are words, CSR's are learned directions.
#
# `CSRLoss` (sentence-transformers) trains it with a **reconstruction** loss (from the top $k$, from the top $4k$, and
# an auxiliary term that revives dimensions no document uses), plus, weighted by `gamma`, a **contrastive** loss
# (MNRL over the codes) on (query, document) pairs. The backbone stays frozen, so training needs only the cached
# embeddings: the model that the loss trains is a `SparseEncoder` holding the autoencoder *alone*, fed
# `{"sentence_embedding": e}` batches; the same module, put after the MiniLM modules in a second `SparseEncoder`,
# encodes text end to end. The pieces, from their sentence-transformers 6 homes, are imported in the next cell.

# %%
from sentence_transformers.sparse_encoder import SparseEncoder
from sentence_transformers.sparse_encoder.losses import CSRLoss
from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

# %% [markdown]
# **Exercise 7.2 · The CSR setup** · difficulty 3/5 · about 20 minutes
#
# Write `make_csr(base, hidden_dim, k, gamma)` that returns `(encoder, head, loss)`:
# - `sae`, one `SparseAutoEncoder(input_dim=..., hidden_dim=hidden_dim, k=k, k_aux=...)`, whose `input_dim` is
#   the base model's embedding size (`base.get_embedding_dimension()`), with `k_aux=min(512, hidden_dim)`;
# - `head = SparseEncoder(modules=[sae], device="cpu")`: the autoencoder alone, for training on cached embeddings;
# - `encoder = SparseEncoder(modules=[*base, sae], device="cpu")`: the base model's modules (iterating a
#   `SentenceTransformer` gives them: Transformer, Pooling, Normalize), then the **same** `sae` object (on a GPU
#   machine, `device="cpu"` moves `base`'s modules to the CPU too; this notebook no longer needs them elsewhere);
# - `loss = CSRLoss(head, beta=0.1, gamma=gamma)`.
#
# The visible test checks the pieces. The hidden test trains your head for 30 steps with the course's
# `csr.train_csr(loss, embeddings)`, then checks that every code has exactly $k$ active dimensions and that your
# `encoder.encode(texts)` gives the same codes as the head on the cached embeddings of those texts.

# %% nbgrader={"grade": false, "grade_id": "make_csr", "locked": false, "schema_version": 3, "solution": true}
def make_csr(base, hidden_dim, k, gamma):
    """(encoder, head, loss): SparseEncoder(base modules + sae), SparseEncoder([sae]) and CSRLoss(head)."""
    ### BEGIN SOLUTION
    sae = SparseAutoEncoder(input_dim=base.get_embedding_dimension(), hidden_dim=hidden_dim, k=k,
                            k_aux=min(512, hidden_dim))
    head = SparseEncoder(modules=[sae], device="cpu")
    encoder = SparseEncoder(modules=[*base, sae], device="cpu")
    return encoder, head, CSRLoss(head, beta=0.1, gamma=gamma)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "make_csr_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
_encoder, _head, _loss = make_csr(base, 256, 8, 0.5)
_sae = list(_head)[-1]
assert isinstance(_sae, SparseAutoEncoder) and len(list(_head)) == 1, list(_head)
assert (_sae.input_dim, _sae.hidden_dim, _sae.k) == (384, 256, 8), (_sae.input_dim, _sae.hidden_dim, _sae.k)
assert list(_encoder)[-1] is _sae, "the encoder must end with the same SparseAutoEncoder object as the head"
assert isinstance(_loss, CSRLoss) and _loss.model is _head and _loss.gamma == 0.5
### BEGIN HIDDEN TESTS
assert len(list(_encoder)) == len(list(base)) + 1 and _loss.beta == 0.1
_x = c_emb[:400]
csr.train_csr(_loss, _x, steps=30, batch_size=128, show_progress=False)
_codes = csr.encode_codes(_x, _sae)
assert (csr.active_dims(_codes) == 8).all(), np.unique(csr.active_dims(_codes))
_texts = [test.queries[q] for q in task.query_ids[:5]]
_enc = _encoder.encode(_texts, convert_to_tensor=True).to_dense().cpu().numpy()
assert np.allclose(_enc, csr.encode_codes(base.encode(_texts), _sae).toarray(), atol=1e-5)
assert list(make_csr(base, 64, 2, 0.0)[1])[-1].k_aux == 64
### END HIDDEN TESTS

# %% [markdown]
# `course_lib.csr.csr_setup` is the course's version of the head and loss (`csr.csr_encoder(sae)` adds the MiniLM
# in front), and `csr.csr_head` trains one and caches it. Training runs on the cached corpus embeddings: each step
# reconstructs 512 random documents; with `gamma > 0` it also takes 64 of the guarded (claim, abstract) pairs for the
# contrastive term.
#
# **A long cell:** CSR heads at $k$ = 16, 32 and 64 active dimensions, without labels (`gamma=0`) and, at $k = 32$,
# with them (`gamma=0.1`): **about 1.5 minutes each on a 2-core CPU** the first time (less in small mode), then
# loaded from the cache.

# %%
heads = {}
for k, gamma in [(16, 0.0), (32, 0.0), (64, 0.0), (32, 0.1)]:
    label = "CSR, unsupervised" if gamma == 0 else "CSR, supervised"
    sae, info = csr.csr_head(c_emb, pairs=None if gamma == 0 else pairs, k=k, gamma=gamma,
                             steps=recipe["csr_steps"])
    heads[(label, k)] = sae
    print(f"{label}, k={k}: {'loaded from the cache' if info['cached'] else 'trained'}, {info['seconds']} s")
index_of = {}
for (label, k), sae in heads.items():
    doc_codes, query_codes = csr.encode_codes(c_emb, sae), csr.encode_codes(q_emb, sae)  # scipy sparse (N, 1536)
    index_of[(label, k)] = csr.build_index(doc_codes)  # (1536, N): one posting list per code dimension
    results[(label, k)] = {"bytes/doc": csr.code_bytes(k, sae.hidden_dim),
                           **ndcg(*csr.search(index_of[(label, k)], query_codes, 100))}
pd.DataFrame({k: v for k, v in results.items() if k[0].startswith("CSR")}).T.rename_axis(["method", "active dims"]
                                                                                         ).round(4)

# %% [markdown]
# ### What a code looks like
#
# Below, one test claim and one abstract relevant to it, each as its 1,536-dim code at $k = 32$ (no labels): 32
# spikes each, everything else exactly zero. Their score is the sum of the products at the dimensions where both
# are active (marked), a handful out of 1,536. The second panel shows how long the posting lists are: how many
# documents are active in each code dimension. A query's active dimensions decide how many documents the inverted
# index touches, as words do in BM25.

# %%
sae32 = heads[("CSR, unsupervised", 32)]
qid = next(q for q in task.query_ids if task.qrels[q])
doc_row = task.doc_ids.index(next(iter(task.qrels[qid])))
zq = csr.encode_codes(q_emb[[task.query_ids.index(qid)]], sae32).toarray()[0]  # (1536,)
zd = csr.encode_codes(c_emb[[doc_row]], sae32).toarray()[0]
shared = np.flatnonzero((zq > 0) & (zd > 0))
posting = np.diff(index_of[("CSR, unsupervised", 32)].indptr)  # documents per code dimension
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
ax1.stem(np.flatnonzero(zq), zq[zq > 0], linefmt="C0-", markerfmt="C0o", basefmt=" ", label="claim")
ax1.stem(np.flatnonzero(zd), -zd[zd > 0], linefmt="C1-", markerfmt="C1o", basefmt=" ", label="abstract (drawn down)")
ax1.plot(shared, np.zeros(len(shared)), "k^", ms=9, label=f"active in both: {len(shared)}")
ax1.set(xlabel="code dimension (0-1535)", ylabel="value", xlim=(0, sae32.hidden_dim),
        title=f"Two CSR codes, k = 32: score = {zq @ zd:.3f}")
ax1.legend(fontsize=8, loc="lower left")
ax2.hist(posting, bins=50)
ax2.set(xlabel="documents active in a code dimension (posting list length)", ylabel="code dimensions",
        title=f"Posting lists over {len(task.doc_ids):,} documents ({(posting == 0).sum()} dimensions unused)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. All of them on one chart
#
# Notebook 05's Matryoshka model (MRL) is the reference that *retrains the backbone* on labelled pairs. It is loaded
# from the cache (trained, about 10 minutes, if notebook 05 never ran), and its corpus embeddings too. In small mode
# it trained for 8 steps only, so its rows say little there; docs/RESULTS.md has the whole-corpus figures of the CPU
# recipe.

# %%
mrl, mrl_info = matryoshka.mrl_model(matryoshka.mrl_recipe(cfg), device=cfg.device, small=cfg.small)
mrl_task = Retrieval.from_dataset(mrl, test)
for m in DIMS:
    results[("MRL (notebook 05)", m)] = {"bytes/doc": 4 * m, **dense_ndcg(matryoshka.truncate(mrl_task.query_emb, m),
                                                                          matryoshka.truncate(mrl_task.corpus_emb, m))}
table = pd.DataFrame(results).T.rename_axis(["method", "dims (CSR: active dims)"])
record_many([(f"nDCG@10 {name}, {method} {m}", row[name]) for (method, m), row in results.items()
             for name in QUERY_SETS])
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
for ax, name in zip(axes, QUERY_SETS):
    for method in dict.fromkeys(method for method, _ in results):
        pts = sorted((row["bytes/doc"], row[name]) for (m_, _), row in results.items() if m_ == method)
        style = "o-" if len(pts) > 1 else "k*" if method == "all 384 dims" else "D"
        ax.plot(*zip(*pts), style, label=method, ms=12 if style == "k*" else 6)
    ax.set(xscale="log", xlabel="bytes per document (log scale)", title=f"nDCG@10, {name}")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("nDCG@10")
axes[1].legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()
table.round(4)

# %% [markdown]
# ## 5. Which one, when
#
# | method | needs | changes the model? | output | training on 2 CPU cores |
# |---|---|---|---|---|
# | truncation | nothing | no | dense prefix | none |
# | PCA | the corpus embeddings | no | dense, rotated prefix | seconds |
# | adaptor, unsupervised | the corpus embeddings | no (a small network on top) | dense prefix | a few minutes |
# | adaptor, supervised | + labelled (query, document) pairs | no | dense prefix | a few minutes |
# | CSR | the corpus embeddings (+ pairs with `gamma > 0`) | no (a sparse autoencoder on top) | sparse code, $k$ active of $H$ | 1-3 minutes a head |
# | MRL (notebook 05) | labelled pairs, the model's weights, a GPU for a large model | yes: retrains the backbone | dense prefix | about 10 minutes here, hours for a large model |
#
# Three things to look for in your table (the whole-corpus figures are in docs/RESULTS.md). First, without labels,
# PCA is a free baseline that beats plain truncation at small sizes, and the unsupervised adaptor adds to it at 64
# dims. Second, labels (MRL, the supervised adaptor, CSR with `gamma > 0`) help on the queries that resemble the
# training pairs and much less, or not at all, on the unseen-document queries. CSR's contrastive term (`CSRLoss`'s
# default in-batch loss over the codes) cost quality on *both* query sets in the course's runs, even at `gamma=0.01`
# on the whole corpus: labels do not help every method. Third, without labels, CSR with 32 active dims (192 bytes)
# scores above PCA and the unsupervised adaptor at 32 dims (128 bytes), and on the whole corpus below them at 64
# dims (256 bytes); it needs an inverted index (or a sparse matrix product) to search.
#
# **Exercise 7.3 · Choose the method** · difficulty 2/5 · about 10 minutes
#
# For each situation, set the answer to one of `"MRL"`, `"adaptor"` or `"CSR"`: the method that meets every stated
# constraint at the best quality this notebook measured. Each situation has one answer that fits all its constraints.
#
# - `situation_a`: your embeddings come from a hosted API (you receive 384-dim vectors, you cannot change the model),
#   you have **no labelled pairs**, and the vector database you must use stores **dense 64-dim float vectors** only.
# - `situation_b`: you host an open model and can retrain it on a GPU; you have 50,000 labelled in-domain pairs. The
#   embeddings are computed inside your search engine by its built-in model runner, which runs a standard
#   sentence-transformers model (Transformer, Pooling, Normalize) **and nothing else**: no extra network after it.
#   You want 64-dim prefixes for a first stage and all 384 dims to rerank.
# - `situation_c`: embeddings from a hosted API again, no labels; your search engine serves **only sparse inverted
#   indexes** (as for BM25), and you have at most **200 bytes per document** for the best possible quality.

# %% nbgrader={"grade": false, "grade_id": "choose_method", "locked": false, "schema_version": 3, "solution": true}
situation_a = None
situation_b = None
situation_c = None
### BEGIN SOLUTION
situation_a = "adaptor"
situation_b = "MRL"
situation_c = "CSR"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "choose_method_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
if None in (situation_a, situation_b, situation_c):
    raise NotImplementedError("set situation_a, situation_b and situation_c in the cell above and run it")
for _name, _answer in [("situation_a", situation_a), ("situation_b", situation_b), ("situation_c", situation_c)]:
    assert _answer in ("MRL", "adaptor", "CSR"), f'{_name} must be "MRL", "adaptor" or "CSR", got {_answer!r}'
### BEGIN HIDDEN TESTS
assert situation_a == "adaptor", "a: no labels and an API model rule out MRL; a dense 64-dim store rules out CSR"
assert situation_b == "MRL", "b: only a retrained model runs without an extra network after it"
assert situation_c == "CSR", "c: an inverted index and 200 bytes: 32 active dims cost 192 bytes"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_method_choice", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Question (2 points, graded by hand).** Justify your answer to situation (c) with this notebook's measurements:
# the bytes per document and nDCG@10 of the CSR configuration you would deploy against the best dense configuration
# that meets situation (c)'s constraints (no labels, an API model, at most 200 bytes: which one is it?), on both
# query sets. Then name one cost of CSR that the nDCG@10 column does
# not show.
#
# ### BEGIN SOLUTION
# At $k = 32$ a CSR code costs $32 \times (4 + 2) = 192$ bytes, within 200. The best dense configuration that fits is
# 32 float32 dims (128 bytes; 64 dims are 256 bytes, over budget) from PCA or the unsupervised adaptor (the MRL and
# supervised rows are ruled out: no labels, API model). On the whole corpus (docs/RESULTS.md) PCA at 32 dims scores
# 0.453 nDCG@10 on all queries and 0.464 on the unseen-document queries, the unsupervised adaptor 0.449 and 0.456,
# and unsupervised CSR at $k = 32$ 0.503 and 0.510: about 5 points more for 64 more bytes (64 PCA dims, 256 bytes,
# would score 0.540 but do not fit). In small mode the gap is larger (about 0.69 against 0.61). Costs the column does not show: the search needs an inverted index (a sparse
# matrix product), whose speed depends on how long the posting lists of the query's active dimensions are, not a
# SIMD scan; the codes are not compatible with a dense ANN index; the head must be retrained when the corpus
# drifts; some code dimensions stay unused (dead) and others are very common, which makes posting lists uneven.
#
# Rubric: 2 points: 192 bytes at k = 32 against the largest dense size under 200 bytes (32 float32 dims, 128 bytes;
# PCA or the unsupervised adaptor, not MRL), with nDCG@10 of both on both query sets from the run or the stated
# figures, and one real cost (inverted index / latency depends on posting lists, no dense ANN, retraining on drift,
# dead dimensions). 1 point: the choice with some numbers but a dense comparison that does not fit the budget or
# uses labels, or no cost named.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# | step | call |
# |---|---|
# | PCA | `p = adaptor.pca_fit(corpus_emb)`; `adaptor.pca_reduce(emb, p, m)` (faiss: `PCAMatrix(384, m)`) |
# | adaptor | `a = adaptor.adaptor_model(corpus_emb, pairs=None or (q, d), steps=300)`; `adaptor.adapt(emb, a, m)` |
# | the adaptor's losses | `adaptor.pairwise_similarity_loss`, `adaptor.topk_similarity_loss`, `adaptor.reconstruction_loss` |
# | CSR head and loss | `SparseEncoder(modules=[SparseAutoEncoder(384, hidden_dim=1536, k=32)])`, `CSRLoss(head, beta=0.1, gamma=...)` |
# | CSR, trained and cached | `sae, info = csr.csr_head(corpus_emb, k=32, gamma=0.0)`; text: `csr.csr_encoder(sae).encode(texts)` |
# | sparse search | `index = csr.build_index(csr.encode_codes(corpus_emb, sae))`; `csr.search(index, csr.encode_codes(q, sae), k)` |
#
# The numbers to remember, as measured in this run:

# %%
summary = table.loc[[("all 384 dims", 384), ("truncation", 64), ("PCA", 64), ("adaptor, unsupervised", 64),
                     ("adaptor, supervised", 64), ("MRL (notebook 05)", 64), ("PCA", 32),
                     ("CSR, unsupervised", 32), ("CSR, supervised", 32), ("MRL (notebook 05)", 32)]]
summary.round(4)

# %% [markdown]
# ## Going further
#
# - **Train the backbone and the head together**: CSR in the paper can also fine-tune the backbone; the
#   `SparseEncoderTrainer` does that from text with the same `CSRLoss`, at the cost of running the transformer every
#   step.
# - **SPLADE** (`SpladeLoss`, `MLMTransformer` + `SpladePooling` in sentence-transformers) learns sparse codes whose
#   dimensions are the vocabulary's words: an inverted index that a search engine such as Elasticsearch or OpenSearch
#   serves natively.
# - **Quantize what you kept**: the 64 PCA or adaptor dims take int8 or binary codes (notebooks 02-03) as well as
#   any embedding; CSR's values can be stored in 8 bits too.
# - **Your own corpus**: PCA, the adaptor and CSR need only your corpus's embeddings, so they are the first thing to
#   try on a model you cannot retrain; judge them on queries unlike the training pairs, as here.
#
# **Take-aways.** A frozen model can still be made smaller at query time. PCA costs seconds and beats plain
# truncation at small sizes; the Matryoshka-Adaptor trains in minutes on the corpus alone and adds a little more;
# labels add a lot on familiar queries and little on new ones. A TopK sparse code of 32 active dimensions, trained
# in a minute or two on the corpus alone, scores above 32 dense dims of PCA or the unsupervised adaptor (between
# them and 64 dims), if your search engine can serve an inverted index.
