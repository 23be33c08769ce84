"""Fine-tuning strategies side by side on SciFact: full fine-tuning, LoRA, a linear adapter on frozen embeddings,
MarginMSE distillation from the hybrid (BM25 + dense) teacher, and the corpus-only adaptor.

    python benchmarks/finetune_strategies.py [--small] [--backbone-seeds 0,1,2] [--adapter-seeds 0,1,2]
                                             [--full-seeds 0,1,2] [--out build/finetune_strategies.json]

Trains (or loads from the cache) every strategy with ``course_lib.strategies.compare`` and prints (markdown), for
each strategy averaged over its seeds (with the range where there are several):

- nDCG@10 on SciFact test (full corpus), on all 300 queries and on the 104 whose relevant documents are no train
  positive, with per-query wins and losses against the base model on those 104;
- STS-B test Spearman;
- trainable parameters, training seconds (2-core CPU), bytes to ship, and ms per query to embed the 300 test
  queries in one batch (measured in this run);
- the target: a strategy at least 2 points of unseen-document nDCG@10 above the base (moonshot 4) that loses at
  most 1 point of STS-B.

Writes the rows and every seed's figures as JSON and draws unseen-document nDCG@10 against training time in
``build/finetune_strategies.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import course_lib
from course_lib.compression import markdown_table
from course_lib.strategies import compare, plot_strategies


def seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def targets(rows: list[dict]) -> list[dict]:
    base = next(r for r in rows if r["strategy"] == "base")
    out = []
    for r in rows[1:]:
        gain, sts_loss = r["unseen nDCG@10"] - base["unseen nDCG@10"], base["STS-B"] - r["STS-B"]
        out.append({"strategy": r["strategy"], "unseen gain (points)": round(100 * gain, 2),
                    "STS-B loss (points)": round(100 * sts_loss, 2),
                    "target (+2, STS-B loss <= 1)": "met" if gain >= 0.02 and sts_loss <= 0.01 else "missed",
                    "moonshot (+4)": "met" if gain >= 0.04 and sts_loss <= 0.01 else "missed"})
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_strategies(result)
    ax.figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=120)
    plt.close(ax.figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--backbone-seeds", type=seeds, default=[0, 1, 2], help="seeds for LoRA and distillation")
    parser.add_argument("--adapter-seeds", type=seeds, default=[0, 1, 2], help="seeds for the adapters")
    parser.add_argument("--full-seeds", type=seeds, default=[0, 1, 2], help="seeds for full fine-tuning")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "finetune_strategies.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    result = compare(cfg, backbone_seeds=args.backbone_seeds, adapter_seeds=args.adapter_seeds,
                     full_seeds=args.full_seeds, show_progress=False)
    print(markdown_table(result["rows"]) + "\n")
    print(markdown_table(result["per_seed"]) + "\n")
    goals = targets(result["rows"])
    print(markdown_table(goals) + "\n")
    plot(result, args.out.with_suffix(".png"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, **result, "targets": goals}, indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
