"""Late interaction on SciFact test (full corpus): dense base, zero-shot MaxSim, the trained ColBERT-style model.

    python benchmarks/late_interaction_quality.py [--small] [--epochs 10] [--retrain] [--out build/late_interaction.json]

Also bytes per document (fp32/fp16/int8/binary token vectors) with the quality of each, and the two-stage
pipeline (dense or binary candidates, MaxSim rerank). The backbone token embeddings (about 4 minutes for the
full corpus on 2 cores) and the trained projection are cached; ``--retrain`` trains again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import course_lib
from course_lib import binary, colbert, maxsim, metrics, quantization, search
from course_lib.compression import markdown_table
from course_lib.data import load_beir
from course_lib.embed import encode_corpus, encode_queries
from course_lib.eval import unseen_document_qrels
from course_lib.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "late_interaction.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = course_lib.setup(seed=0, small=args.small, verbose=False)
    model = load_model(device=cfg.device)
    test, train = load_beir("scifact", "test", small=args.small), load_beir("scifact", "train", small=args.small)
    doc_ids, query_ids = list(test.corpus), list(test.queries)

    def ndcg(s, i):
        return round(metrics.evaluate(search.run_from_topk(s, i, query_ids, doc_ids), test.qrels)["ndcg@10"], 4)

    doc_tok, doc_mask = colbert.token_embeddings(model, test.corpus, is_query=False)
    q_tok, q_mask = colbert.token_embeddings(model, test.queries, is_query=True)
    tokens_per_doc = float(doc_mask.sum(1).mean())
    dq, dd = encode_queries(model, test.queries), encode_corpus(model, test.corpus)
    dense_s, dense_i = search.topk(dq, dd, 100)
    rows = [{"model": "dense all-MiniLM-L6-v2 (base)", "nDCG@10": ndcg(dense_s, dense_i), "bytes/doc": 384 * 4}]
    zq, zd = colbert.project(q_tok, q_mask), colbert.project(doc_tok, doc_mask)
    rows.append({"model": "MaxSim, zero-shot MiniLM tokens (384 dims, fp16)",
                 "nDCG@10": ndcg(*maxsim.rank_maxsim(zq, q_mask, zd, doc_mask)), "bytes/doc": round(tokens_per_doc * 384 * 2)})
    del zq, zd
    proj = colbert.colbert_projection(model, train, test, (doc_tok, doc_mask), doc_ids, epochs=args.epochs, retrain=args.retrain)
    w = proj["weight"]
    cq, cd = colbert.project(q_tok, q_mask, w), colbert.project(doc_tok, doc_mask, w)
    rows.append({"model": f"MaxSim, trained 384->128 projection (fp16; {proj['epochs']} epochs, "
                          f"{proj['seconds']} s on {cfg.device})",
                 "nDCG@10": ndcg(*maxsim.rank_maxsim(cq, q_mask, cd, doc_mask)), "bytes/doc": round(tokens_per_doc * 128 * 2)})
    # Train and test claims can cite the same abstracts. Score the test queries none of whose relevant
    # documents is a training positive on their own: a gain there is not a memorized document prior.
    unseen = unseen_document_qrels(test.qrels, train.qrels)
    subset = []
    for name, (s, i) in [("dense (base)", (dense_s, dense_i)), ("MaxSim, trained projection", maxsim.rank_maxsim(cq, q_mask, cd, doc_mask))]:
        run = search.run_from_topk(s, i, query_ids, doc_ids)
        subset.append({"model": name, "all test queries": ndcg(s, i),
                       f"{len(unseen)} queries with no relevant doc among train positives":
                       round(metrics.evaluate({q: run[q] for q in unseen}, unseen)["ndcg@10"], 4)})
    print(markdown_table(rows), "\n")
    print(markdown_table(subset), "\n")

    flat = cd[doc_mask].astype(np.float32)  # (T, 128) real tokens
    ranges = quantization.calibrate(flat[:: max(1, len(flat) // 50_000)])
    storage = [{"token vectors": "fp32", "nDCG@10": rows[-1]["nDCG@10"], "bytes/doc": round(tokens_per_doc * 128 * 4)},
               {"token vectors": "fp16", "nDCG@10": rows[-1]["nDCG@10"], "bytes/doc": round(tokens_per_doc * 128 * 2)}]
    for name, recon, per_value in [
            ("int8 (min-max over a token sample)",
             quantization.dequantize_scalar(quantization.quantize_scalar(flat, ranges), ranges), 1),
            ("binary (sign, +-1 / sqrt(128))",
             quantization.unpack_binary(quantization.quantize_binary(flat), 128, signed=True) / np.sqrt(128), 1 / 8)]:
        docs = np.zeros(cd.shape, np.float16)
        docs[doc_mask] = recon
        storage.append({"token vectors": name, "nDCG@10": ndcg(*maxsim.rank_maxsim(cq, q_mask, docs, doc_mask)),
                        "bytes/doc": round(tokens_per_doc * 128 * per_value)})
    print(markdown_table(storage), "\n")

    codes = quantization.quantize_binary(dd)
    _, bin_i = binary.hamming_topk(quantization.quantize_binary(dq), codes, 100)
    stages = []
    for first, cand in [("dense fp32", dense_i), ("binary Hamming", bin_i)]:
        for depth in (20, 50, 100):
            t0 = time.perf_counter()
            s, i = maxsim.rank_maxsim(cq, q_mask, cd, doc_mask, k=10, candidates=cand[:, :depth])
            ms = 1e3 * (time.perf_counter() - t0) / len(query_ids)
            stages.append({"first stage": first, "candidates": depth, "nDCG@10": ndcg(s, i),
                           "rerank ms/query": round(ms, 2)})
    t0 = time.perf_counter()
    maxsim.rank_maxsim(cq, q_mask, cd, doc_mask, k=10)
    stages.append({"first stage": "none (MaxSim over the corpus)", "candidates": len(doc_ids),
                   "nDCG@10": rows[-1]["nDCG@10"], "rerank ms/query": round(1e3 * (time.perf_counter() - t0) / len(query_ids), 2)})
    print(markdown_table(stages))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, "tokens_per_doc": round(tokens_per_doc, 1), "models": rows, "unseen_documents": subset,
                                    "storage": storage, "two_stage": stages}, indent=1))
    print(f"\nwrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
