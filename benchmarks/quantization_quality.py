"""Quality of every precision on SciFact test (full corpus, base model), and where int8 ranges should come from.

    python benchmarks/quantization_quality.py [--small] [--out build/quantization_quality.json]

Prints markdown tables (those of docs/RESULTS.md) and writes them as JSON:

1. the precision table: fp32, fp16, bf16, int8/int4/2-bit (min-max and percentile calibration on the
   corpus; float query against dequantized documents, and quantized against quantized), uint8, the
   naive dot product of raw integer codes, binary Hamming without rescoring; bytes per vector and
   reconstruction error (MSE, mean cosine);
2. the percentile for each bit width, chosen on SciFact *train* queries (a development set), never test;
3. the calibration study: corpus, a corpus sample, held-out SciFact train queries, held-out STS-B
   sentences (another domain), and each batch calibrated on itself;
4. the single-query pitfall.

The corpus embeddings come from the course cache (encoded once, about 3.5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import course_lib
from course_lib import compression as C
from course_lib import quantization as Q
from course_lib.data import load_beir, load_sts
from course_lib.embed import encode_queries
from course_lib.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="the 1,500-document sub-corpus (a quick run)")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "quantization_quality.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    model = load_model(device=cfg.device)
    test = C.Retrieval.from_dataset(model, load_beir("scifact", "test", small=args.small))
    dev = C.Retrieval.from_dataset(model, load_beir("scifact", "train", small=args.small))
    print(f"SciFact{' [small]' if args.small else ''}: {len(test.doc_ids):,} docs, {len(test.query_ids)} test "
          f"queries, {len(dev.query_ids)} train queries (development); fp32 nDCG@10 test {test.fp32_ndcg:.4f}\n")

    chosen, grid = {}, {}
    for bits in (8, 4, 2):
        chosen[bits], scores = C.select_percentile(dev, bits)
        grid[bits] = {str(p): round(s, 4) for p, s in scores.items()}
    print("## Percentile chosen on train queries (symmetric nDCG@10 per percentile)\n")
    print(C.markdown_table([{"bits": b, "chosen": chosen[b], **grid[b]} for b in chosen]), "\n")

    table = C.precision_table(test, chosen)
    print("## Precisions on SciFact test\n")
    print(C.markdown_table(table), "\n")

    rng = np.random.default_rng(0)
    sts = load_sts("train")
    sts_sample = [sts.sentence1[i] for i in rng.choice(len(sts), 1000, replace=False)]
    samples = {
        f"the corpus ({len(test.doc_ids):,} docs)": test.corpus_emb,
        "a random sample of 500 corpus docs": test.corpus_emb[rng.choice(len(test.doc_ids), 500, replace=False)],
        f"held-out: {len(dev.query_ids)} SciFact train queries": dev.query_emb,
        "held-out: 1,000 STS-B train sentences": encode_queries(model, sts_sample),
    }
    study = C.calibration_study(test, samples)
    print("## Calibration study (symmetric: queries and documents quantized with the same ranges)\n")
    print(C.markdown_table(study), "\n")

    from sentence_transformers.util import quantize_embeddings

    one = test.query_emb[:1]
    try:
        Q.calibrate(one)
        ours = "no error"
    except ValueError as exc:
        ours = str(exc)
    st_codes = quantize_embeddings(one, "int8", ranges=np.stack([one[0], one[0]]))
    pitfall = {"course_lib": ours, "sentence-transformers codes, ranges from the query itself":
               f"{np.unique(st_codes).size} distinct value(s) among {st_codes.size}: {np.unique(st_codes)[:5].tolist()}"}
    print("## Single-query pitfall\n")
    for k, v in pitfall.items():
        print(f"- {k}: {v}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, "fp32_ndcg@10": round(test.fp32_ndcg, 4),
                                    "percentiles": chosen, "percentile_grid": grid, "precisions": table,
                                    "calibration": study, "pitfall": pitfall}, indent=1))
    print(f"\nwrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
