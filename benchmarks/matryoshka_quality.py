"""Matryoshka quality on SciFact test (full corpus) and STS-B test: the base model truncated against an MRL model.

    python benchmarks/matryoshka_quality.py [--small] [--epochs 3 --lr 1e-4 --batch-size 32 --weights ...]
                                            [--max-seq-length 128]
                                            [--out build/matryoshka_quality.json]

Trains (or loads from the cache) the course's MRL model with ``course_lib.matryoshka.mrl_recipe`` for this
machine, the flags overriding single settings, then prints (markdown) and writes as JSON:

- nDCG@10 at every dim for both models, on all 300 test queries and on the 104 whose relevant documents are
  not train positives (see ``course_lib.eval.unseen_document_qrels``);
- STS-B test Spearman at every dim for both models (general-domain quality, never trained on);
- the two targets of issue 7: MRL@64 >= base@384, and MRL@64 >= base@64 + 0.10;
- funnel search and 64-dim binary codes (8 bytes a document) with rescoring: quality and bytes per document.

It also saves the curves as ``build/matryoshka_by_dim.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import course_lib
from course_lib import matryoshka as M
from course_lib.compression import Retrieval, markdown_table
from course_lib.data import load_beir, load_sts
from course_lib.eval import unseen_document_qrels
from course_lib.metrics import evaluate
from course_lib.models import load_model
from course_lib.binary import hamming_topk
from course_lib.search import run_from_topk, topk


def funnel_rows(task: Retrieval, model_name: str) -> list[dict]:
    """Quality of every stage-1 store of the funnel on one model's embeddings, k = 10."""
    from course_lib.quantization import quantize_binary

    def ndcg(s, i):
        return round(evaluate(run_from_topk(s, i, task.query_ids, task.doc_ids), task.qrels)["ndcg@10"], 4)

    q, c = task.query_emb, task.corpus_emb
    rows = [{"model": model_name, "method": "exact, 384 dims fp32", "bytes/doc (stage 1)": 384 * 4,
             "nDCG@10": round(task.fp32_ndcg, 4)}]
    for dim, binary in [(64, False), (64, True), (128, True), (384, True)]:
        kind = f"{dim} dims {'binary' if binary else 'fp32'}"
        stage1 = dim // 8 if binary else dim * 4
        index = M.funnel_index(c, dim, binary=binary)  # built once, shared by the rows below
        if binary:
            s, i = hamming_topk(quantize_binary(np.ascontiguousarray(q[:, :dim])), index, 10)
            rows.append({"model": model_name, "method": f"{kind}, Hamming only", "bytes/doc (stage 1)": stage1,
                         "nDCG@10": ndcg(-s.astype(np.float32), i)})
        else:
            s, i = topk(M.truncate(q, dim), index, 10)  # truncated search alone
            rows.append({"model": model_name, "method": f"{kind} alone", "bytes/doc (stage 1)": stage1,
                         "nDCG@10": ndcg(s, i)})
        for shortlist in (40, 100):
            s, i = M.funnel_search(q, c, 10, shortlist_dim=dim, shortlist=shortlist, binary=binary, index=index)
            rows.append({"model": model_name, "method": f"{kind} -> rerank top {shortlist} with 384 fp32",
                         "bytes/doc (stage 1)": stage1, "nDCG@10": ndcg(s, i)})
    for row in rows:
        row["retention"] = round(row["nDCG@10"] / task.fp32_ndcg, 4)
    return rows


def plot(by_dim: dict, sts: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, style in [("base", "o--"), ("MRL", "s-")]:
        dims = sorted(by_dim[name])
        axes[0].plot(dims, [by_dim[name][d] for d in dims], style, label=name)
        axes[1].plot(dims, [sts[name][d] for d in dims], style, label=name)
    axes[0].set(xscale="log", xlabel="dims kept (log scale)", ylabel="nDCG@10", title="SciFact test, full corpus")
    axes[1].set(xscale="log", xlabel="dims kept (log scale)", ylabel="Spearman", title="STS-B test")
    for ax in axes:
        ax.set_xticks(sorted(by_dim["base"]), [str(d) for d in sorted(by_dim["base"])])
        ax.minorticks_off()
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--weights", help="one loss weight per dim, comma-separated")
    parser.add_argument("--max-seq-length", type=int, help="word pieces per training text (default: the model's 256)")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "matryoshka_quality.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    overrides = {"epochs": args.epochs, "learning_rate": args.lr, "batch_size": args.batch_size,
                 "max_seq_length": args.max_seq_length,
                 "weights": None if args.weights is None else tuple(float(w) for w in args.weights.split(","))}
    recipe = dataclasses.replace(M.mrl_recipe(cfg), **{k: v for k, v in overrides.items() if v is not None})
    test, train, sts = load_beir("scifact", "test", small=args.small), load_beir("scifact", "train"), load_sts("test")
    unseen = unseen_document_qrels(test.qrels, train.qrels)
    base = load_model(device=cfg.device)
    mrl, info = M.mrl_model(recipe, device=cfg.device, small=args.small)
    print(f"MRL model: {info['pairs']} train pairs, {dataclasses.asdict(recipe)}; "
          f"{'loaded from the cache' if info['cached'] else 'trained'} ({info['seconds']} s on {info['device']})\n")

    by_dim, sub_dim, sts_dim, tasks = {}, {}, {}, {}
    for name, model in [("base", base), ("MRL", mrl)]:
        task = tasks[name] = Retrieval.from_dataset(model, test)
        by_dim[name] = M.ndcg_by_dim(task.query_emb, task.corpus_emb, task.query_ids, task.doc_ids, task.qrels)
        keep = [i for i, q in enumerate(task.query_ids) if q in unseen]
        sub_dim[name] = M.ndcg_by_dim(task.query_emb[keep], task.corpus_emb, [task.query_ids[i] for i in keep],
                                      task.doc_ids, unseen)
        sts_dim[name] = M.sts_by_dim(model, sts)
    dims = list(M.MRL_DIMS)
    table = []
    for name in ("base", "MRL"):
        table.append({"metric": f"{name} nDCG@10 (300 queries)", **{str(d): round(by_dim[name][d], 4) for d in dims}})
        table.append({"metric": f"{name} retention of its 384", **{str(d): f"{by_dim[name][d] / by_dim[name][384]:.1%}"
                                                                   for d in dims}})
    for name in ("base", "MRL"):
        table.append({"metric": f"{name} nDCG@10 ({len(unseen)} unseen-doc queries)",
                      **{str(d): round(sub_dim[name][d], 4) for d in dims}})
    for name in ("base", "MRL"):
        table.append({"metric": f"{name} STS-B Spearman", **{str(d): round(sts_dim[name][d], 4) for d in dims}})
        table.append({"metric": f"{name} STS-B retention", **{str(d): f"{sts_dim[name][d] / sts_dim[name][384]:.2%}"
                                                              for d in dims}})
    print(markdown_table(table), "\n")
    targets = [
        {"target": "MRL@64 >= base@384", "MRL@64": round(by_dim["MRL"][64], 4), "reference": round(by_dim["base"][384], 4),
         "met": by_dim["MRL"][64] >= by_dim["base"][384]},
        {"target": "MRL@64 >= base@64 + 0.10", "MRL@64": round(by_dim["MRL"][64], 4),
         "reference": round(by_dim["base"][64] + 0.10, 4), "met": by_dim["MRL"][64] >= by_dim["base"][64] + 0.10},
    ]
    print(markdown_table(targets), "\n")
    funnel = funnel_rows(tasks["base"], "base") + funnel_rows(tasks["MRL"], "MRL")
    print(markdown_table(funnel), "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(by_dim, sts_dim, args.out.with_name("matryoshka_by_dim.png"))
    args.out.write_text(json.dumps({"small": args.small, "recipe": dataclasses.asdict(recipe), "training": info,
                                    "ndcg_by_dim": by_dim, "ndcg_by_dim_unseen": sub_dim, "sts_by_dim": sts_dim,
                                    "targets": targets, "funnel": funnel}, indent=1))
    print(f"wrote {args.out} and {args.out.with_name('matryoshka_by_dim.png')} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
