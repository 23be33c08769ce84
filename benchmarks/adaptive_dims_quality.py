"""Adaptive dimensions with a frozen backbone on SciFact test (full corpus): truncation, PCA, the
Matryoshka-Adaptor (unsupervised and supervised) and CSR sparse codes, against notebook 05's MRL model.

    python benchmarks/adaptive_dims_quality.py [--small] [--steps 600] [--csr-steps 1000] [--no-mrl]
                                               [--out build/adaptive_dims.json]

Everything is fitted on the *corpus* embeddings of all-MiniLM-L6-v2 (no queries, no labels), except the
supervised adaptor, which adds SciFact train pairs through the leakage guard. Prints (markdown) and writes as
JSON: nDCG@10 at 32, 64, 128, 256 dims (and the full 384) on all 300 test queries and on the queries whose
relevant documents are never train positives (``course_lib.eval.unseen_document_qrels``), bytes per document,
exact-search ms per query, and each method's fitting time; then the targets (adaptor at 64 dims >= PCA at 64
+ 0.02; adaptor at 64 >= 95% of the full 384-dim score; CSR with 32 active dims >= MRL and PCA at 32), checked on
both query sets. CSR rows are searched through the ``scipy.sparse`` inverted index (``course_lib.csr.search``), their
"dims" are active dimensions and their bytes a value and an index per active dimension. CSR heads and the MRL model
are trained once and cached.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import course_lib
from course_lib import adaptor as A
from course_lib import csr as S
from course_lib import matryoshka as M
from course_lib.colbert import training_pairs
from course_lib.compression import Retrieval, markdown_table
from course_lib.data import load_beir
from course_lib.embed import encode_queries
from course_lib.eval import unseen_document_qrels
from course_lib.metrics import evaluate
from course_lib.models import load_model
from course_lib.search import run_from_topk, topk

DIMS = (32, 64, 128, 256)
CSR_K = (16, 32, 64, 128)  # active dims of the CSR codes (width 1536 = 4 x 384); supervised: 32 and 64


def _ndcg(search, n_queries: int, task: Retrieval, qrels_sets: dict) -> dict:
    """Time ``search() -> (scores, indices)`` (top 100), then nDCG@10 on each query set."""
    start = time.perf_counter()
    s, i = search()
    ms = (time.perf_counter() - start) * 1000 / n_queries
    run = run_from_topk(s, i, task.query_ids, task.doc_ids)
    out = {"ms/query": round(ms, 3)}
    for name, qrels in qrels_sets.items():
        out[name] = round(evaluate({qid: run[qid] for qid in qrels if qid in run}, qrels)["ndcg@10"], 4)
    return out


def score(q: np.ndarray, c: np.ndarray, task: Retrieval, qrels_sets: dict) -> dict:
    """Exact cosine search (rows already unit length)."""
    return _ndcg(lambda: topk(q, c, 100), len(q), task, qrels_sets)


def score_sparse(q, c, task: Retrieval, qrels_sets: dict) -> dict:
    """Sparse codes (scipy sparse rows), searched through the inverted index of ``c``."""
    index = S.build_index(c)
    return _ndcg(lambda: S.search(index, q, 100), q.shape[0], task, qrels_sets)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["bytes/doc"], r["nDCG@10 (all)"]) for r in rows if r["method"] == method)
        ax.plot(*zip(*pts), "o-", label=method)
    ax.set(xscale="log", xlabel="bytes per document (fp32 values; CSR adds a 2-byte index per value; log scale)",
           ylabel="nDCG@10, 300 test queries",
           title="SciFact: adaptive dimensions with a frozen MiniLM")
    ticks = sorted({r["bytes/doc"] for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--csr-steps", type=int, default=1000)
    parser.add_argument("--csr-gamma", type=float, default=0.1,
                        help="weight of CSRLoss's contrastive term in the supervised rows (0: the pairs' texts are "
                             "reconstructed, their labels unused)")
    parser.add_argument("--no-mrl", action="store_true",
                        help="leave out notebook 05's MRL model (else loaded, or trained if not cached)")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "adaptive_dims.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    test, train = load_beir("scifact", "test", small=args.small), load_beir("scifact", "train")
    unseen = unseen_document_qrels(test.qrels, train.qrels)
    base = load_model(device=cfg.device)
    task = Retrieval.from_dataset(base, test)
    q, c = task.query_emb, task.corpus_emb
    sets = {"nDCG@10 (all)": task.qrels, f"nDCG@10 ({len(unseen)} unseen-doc)": unseen}
    rows, fit = [], {}

    def add(method: str, dim: int, qv: np.ndarray, cv: np.ndarray) -> None:
        rows.append({"method": method, "dims": dim, "bytes/doc": dim * 4, **score(qv, cv, task, sets)})

    add("full 384 (reference)", 384, M.truncate(q, 384), M.truncate(c, 384))
    for d in DIMS:
        add("truncation", d, M.truncate(q, d), M.truncate(c, d))
    t = time.perf_counter()
    pca = A.pca_fit(c)
    fit["PCA"] = round(time.perf_counter() - t, 2)
    for d in DIMS:
        add("PCA", d, A.pca_reduce(q, pca, d), A.pca_reduce(c, pca, d))
    unsup = A.adaptor_model(c, steps=args.steps, show_progress=False)
    fit["adaptor, unsupervised"] = unsup["seconds"]
    for d in DIMS:
        add("adaptor, unsupervised", d, A.adapt(q, unsup, d), A.adapt(c, unsup, d))
    qids, pairs, stats = training_pairs(train, test, task.doc_ids)
    q_train = encode_queries(base, {qid: train.queries[qid] for qid in qids})  # (Q train, 384), rows in qids order
    p = np.asarray(pairs)
    sup = A.adaptor_model(c, steps=args.steps, pairs=(q_train[p[:, 0]], c[p[:, 1]]), show_progress=False)
    fit["adaptor, supervised"] = sup["seconds"]
    for d in DIMS:
        add("adaptor, supervised", d, A.adapt(q, sup, d), A.adapt(c, sup, d))
    for gamma, label in ((0.0, "CSR, unsupervised"), (args.csr_gamma, "CSR, supervised")):
        unsupervised = label == "CSR, unsupervised"
        for k in CSR_K if unsupervised else (32, 64):
            sae, info = S.csr_head(c, pairs=None if unsupervised else (q_train[p[:, 0]], c[p[:, 1]]), k=k,
                                   gamma=gamma, steps=args.csr_steps, show_progress=False)
            fit[f"{label}, k={k}"] = info["seconds"]
            rows.append({"method": label, "dims": k, "bytes/doc": S.code_bytes(k, sae.hidden_dim),
                         **score_sparse(S.encode_codes(q, sae), S.encode_codes(c, sae), task, sets)})
    if not args.no_mrl:
        mrl, info = M.mrl_model(M.mrl_recipe(cfg), device=cfg.device, small=args.small)
        fit["MRL (notebook 05)"] = info["seconds"]
        mtask = Retrieval.from_dataset(mrl, test)
        for d in DIMS:
            add("MRL (notebook 05)", d, M.truncate(mtask.query_emb, d), M.truncate(mtask.corpus_emb, d))
    print(f"SciFact test, {'small' if args.small else 'full'} corpus ({len(task.doc_ids)} documents); "
          f"supervised pairs: {len(pairs)} (leakage guard: {stats})\n")
    print(markdown_table(rows), "\n")
    print(markdown_table([{"method": k, "fitting seconds (2-core CPU)": v} for k, v in fit.items()]), "\n")
    ref = rows[0]
    targets = []
    for name in sets:
        get = {(r["method"], r["dims"]): r[name] for r in rows}
        a64, p64 = get[("adaptor, unsupervised", 64)], get[("PCA", 64)]
        targets += [{"query set": name, "target": "adaptor@64 >= PCA@64 + 0.02", "value": a64,
                     "reference": round(p64 + 0.02, 4), "met": a64 >= p64 + 0.02},
                    {"query set": name, "target": "adaptor@64 >= 95% of full 384", "value": a64,
                     "reference": round(0.95 * ref[name], 4), "met": a64 >= 0.95 * ref[name]}]
        for label in ("CSR, unsupervised", "CSR, supervised"):
            c32 = get[(label, 32)]
            for other in ("PCA", "MRL (notebook 05)"):
                if (other, 32) in get:
                    targets.append({"query set": name, "target": f"{label}, 32 active >= {other}@32", "value": c32,
                                    "reference": get[(other, 32)], "met": c32 >= get[(other, 32)]})
    print(markdown_table(targets), "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out.with_suffix(".png"))
    args.out.write_text(json.dumps({"small": args.small, "rows": rows, "fitting_seconds": fit, "targets": targets,
                                    "adaptor_settings": {k: unsup[k] for k in ("dims", "k", "steps", "hidden", "lr",
                                                                                 "weights")},
                                    "csr_settings": {"hidden_dim": 1536, "steps": args.csr_steps,
                                                     "gamma (supervised)": args.csr_gamma},
                                    "leakage_check": stats}, indent=1, default=str))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
