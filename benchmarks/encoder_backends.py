"""CPU inference backends for the course's encoder: torch fp32, ONNX Runtime fp32, ONNX Runtime int8 (dynamic
quantization) and OpenVINO fp32, side by side in one process on SciFact.

    python benchmarks/encoder_backends.py [--small] [--docs 512] [--corpus all|onnx-int8,...]
                                          [--out build/encoder_backends.json]

For each backend (``course_lib.backends.compare``): the model file's size, the one-off set-up time (export,
quantization, compilation), documents per second over ``--docs`` abstracts (up to 256 word pieces each) and
queries per second over the 300 test queries (best of two passes, batches of 32, all the machine's torch threads),
the cosine of its document embeddings to torch's, and nDCG@10 of its test queries searched in the torch-built
corpus index. With ``--corpus`` it also encodes the whole corpus with the backends named (``all``: every one;
minutes each on 2 cores) and reports nDCG@10 with both sides encoded by the backend, on all queries and on the unseen-document ones, and the
seconds each full encode took: the figure that decides which backend encodes the corpus in production.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import course_lib
from course_lib import backends as B
from course_lib.compression import Retrieval, markdown_table
from course_lib.data import document_text, load_beir
from course_lib.eval import unseen_document_qrels
from course_lib.metrics import evaluate
from course_lib.models import load_model
from course_lib.search import run_from_topk, topk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--docs", type=int, default=512, help="abstracts timed per backend (default 512)")
    parser.add_argument("--corpus", default="", metavar="BACKENDS",
                        help="also encode the whole corpus with these backends, comma-separated, or 'all'")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "encoder_backends.json")
    args = parser.parse_args()
    if args.docs < 1:
        parser.error(f"--docs must be a positive int, got {args.docs}")
    corpus_backends = list(B.BACKENDS) if args.corpus == "all" else [b for b in args.corpus.split(",") if b]
    for b in corpus_backends:
        if b not in B.BACKENDS:
            parser.error(f"--corpus: unknown backend {b!r}; choose from {', '.join(B.BACKENDS)} or 'all'")
    course_lib.setup(seed=0, small=args.small, verbose=False)
    test = load_beir("scifact", "test", small=args.small)
    model = load_model(device="cpu")
    task = Retrieval.from_dataset(model, test)
    doc_texts = [document_text(test.corpus[d]) for d in task.doc_ids[:args.docs]]
    query_texts = [test.queries[q] for q in task.query_ids]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"{len(doc_texts)} documents timed, {len(query_texts)} queries, {len(task.doc_ids):,} in the corpus\n")
    rows = B.compare(model, doc_texts, query_texts, task)
    print(markdown_table(rows), "\n")

    corpus_rows = []
    if corpus_backends:
        unseen = unseen_document_qrels(test.qrels, load_beir("scifact", "train").qrels)
        all_docs = [document_text(test.corpus[d]) for d in task.doc_ids]
        for name in corpus_backends:
            encoder = B.cpu_encoder(model, name)
            start = time.perf_counter()
            corpus = encoder.encode(all_docs, batch_size=32)
            seconds = time.perf_counter() - start
            queries = encoder.encode(query_texts, batch_size=32)
            s, i = topk(queries, corpus, 100)
            run = run_from_topk(s, i, task.query_ids, task.doc_ids)
            corpus_rows.append({
                "backend": name, "corpus encode s": round(seconds, 1),
                "docs/s": round(len(all_docs) / seconds, 1),
                "nDCG@10 both sides": round(evaluate(run, test.qrels)["ndcg@10"], 4),
                "nDCG@10 unseen-doc": round(evaluate({q: run[q] for q in unseen}, unseen)["ndcg@10"], 4),
                "max |diff| to torch": float(np.abs(corpus - task.corpus_emb).max())})
            print(f"  {name}: {seconds:.0f} s", flush=True)
        print(markdown_table(corpus_rows), "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, "docs": len(doc_texts), "threads": torch.get_num_threads(),
                                    "rows": rows, "corpus_rows": corpus_rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
