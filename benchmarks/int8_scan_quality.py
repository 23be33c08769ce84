"""nDCG@10 on SciFact test of the int8 scan kernels against dequantize-then-dot (full corpus, base model).

    python benchmarks/int8_scan_quality.py [--small]

For min-max and percentile ranges (the 0.1th to 99.9th percentile, ``calibrate``'s default), calibrated on the
corpus:

- asymmetric: float queries against int8 codes, ``int8_search.int8_topk`` against the float32 dot product of the
  queries with the dequantized codes (``search.topk``);
- symmetric: int8 query codes against int8 codes over ranges with one shared step, ``int8_search.symmetric_topk``
  against the dot product of the dequantized queries and documents; and, for the price of the shared step, the
  same symmetric dequantize-then-dot over the per-dimension ranges.

Prints one markdown table: nDCG@10 of each pair, their difference, and the share of the top-10 lists that agree
place by place. The corpus embeddings come from the course cache (encoded once, minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse


import course_lib
from course_lib import int8_search as S
from course_lib.compression import Retrieval
from course_lib.data import load_beir
from course_lib.metrics import evaluate
from course_lib.models import load_model
from course_lib.quantization import calibrate, dequantize_scalar, quantize_scalar
from course_lib.search import run_from_topk, topk

DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="the 1,500-document sub-corpus (a quick run)")
    args = parser.parse_args()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    test = load_beir("scifact", "test", small=args.small)
    task = Retrieval.from_dataset(load_model(device=cfg.device), test)
    q, c = task.query_emb, task.corpus_emb

    def ndcg(result):
        s, i = result
        return evaluate(run_from_topk(s, i, task.query_ids, task.doc_ids), test.qrels)["ndcg@10"], i[:, :10]

    print(f"SciFact{' [small]' if args.small else ''} test: {len(task.doc_ids):,} documents, "
          f"{len(task.query_ids)} queries; fp32 nDCG@10 {task.fp32_ndcg:.4f}\n")
    print("| ranges | scoring | dequantize, then dot | course kernel | difference | top-10 places equal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for method in ("minmax", "percentile"):
        r = calibrate(c, method, 99.9)
        codes = quantize_scalar(c, r, "int8")
        pairs = {"asymmetric (float query, int8 codes)": (
            ndcg(topk(q, dequantize_scalar(codes, r), DEPTH)), ndcg(S.int8_topk(q, codes, r, DEPTH)))}
        shared = S.shared_step(r)
        codes_s, q_codes = quantize_scalar(c, shared, "int8"), quantize_scalar(q, shared, "int8")
        pairs["symmetric (int8 x int8, one shared step)"] = (
            ndcg(topk(dequantize_scalar(q_codes, shared), dequantize_scalar(codes_s, shared), DEPTH)),
            ndcg(S.symmetric_topk(q_codes, codes_s, shared, DEPTH)))
        per_dim = ndcg(topk(dequantize_scalar(quantize_scalar(q, r, "int8"), r), dequantize_scalar(codes, r), DEPTH))
        for name, ((ref, ref_i), (ours, ours_i)) in pairs.items():
            print(f"| {method} | {name} | {ref:.4f} | {ours:.4f} | {ours - ref:+.4f} | {(ref_i == ours_i).mean():.2%} |")
        print(f"| {method} | symmetric, per-dimension steps (no integer kernel) | {per_dim[0]:.4f} | | | |")


if __name__ == "__main__":
    main()
