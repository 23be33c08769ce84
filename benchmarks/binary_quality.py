"""Binary retrieval with rescoring on SciFact test (full corpus, base model): retention of fp32 nDCG@10.

    python benchmarks/binary_quality.py [--small] [--out build/binary_quality.json]

Prints (markdown) and writes as JSON: the retention curve against the rescoring multiplier (1 to 20) for
int8, float32 and binary (+-1) rescoring stores; and whole-corpus scoring variants (asymmetric float query
against binary documents, and the classic mistakes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import course_lib
from course_lib import compression as C
from course_lib.data import load_beir
from course_lib.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "binary_quality.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    task = C.Retrieval.from_dataset(load_model(device=cfg.device), load_beir("scifact", "test", small=args.small))
    print(f"SciFact test{' [small]' if args.small else ''}: {len(task.doc_ids):,} docs; "
          f"fp32 nDCG@10 {task.fp32_ndcg:.4f}\n")
    curve = C.binary_rescore_curve(task)
    print(C.markdown_table(curve), "\n")
    variants = C.binary_scoring_variants(task)
    print(C.markdown_table(variants))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, "fp32_ndcg@10": round(task.fp32_ndcg, 4),
                                    "curve": curve, "variants": variants}, indent=1))
    print(f"\nwrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
