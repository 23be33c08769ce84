"""Funnel (adaptive) retrieval speed: shortlist with 64 dims (fp32 or binary), rerank with 384, against exact search.

    python benchmarks/bench_funnel.py [--n 1000000] [--repeat 5] [--shortlist 100]

One run, one process, k = 10, one query at a time (nq = 1, the latency of a search service). The corpus is
``--n`` vectors made from the course MRL model's (or, if it is not cached, the base model's) SciFact
embeddings: each of the 5,183 documents repeated with small Gaussian noise and re-normalized, so the values
have a real model's distribution at a production size. Queries are real SciFact test queries.

Prints queries per second, ratios against exact fp32 search in the same run (``course_lib.search.topk`` and
faiss ``IndexFlatIP``, the peer) and stage-1 bytes per document. Quality is measured on the real corpus by
``benchmarks/matryoshka_quality.py`` (the noisy copies here are near-duplicates, so the exact top 10 of this
synthetic corpus is not a meaningful recall target).
"""

from __future__ import annotations

import argparse

import faiss
import numpy as np
from _measure import timed

import course_lib
from course_lib import matryoshka as M
from course_lib.data import load_beir
from course_lib.embed import encode_corpus, encode_queries
from course_lib.models import load_model
from course_lib.search import topk


def corpus_and_queries(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    cfg = course_lib.setup(seed=0, verbose=False)
    test = load_beir("scifact", "test")
    try:
        model, info = M.mrl_model(M.mrl_recipe(cfg), device=cfg.device, show_progress=True)
        name = "MRL model"
    except Exception as err:  # noqa: BLE001  (the speed comparison stands with the base model too)
        print(f"(MRL model unavailable: {err}; using the base model)")
        model, name = load_model(device=cfg.device), "base model"
    docs, queries = encode_corpus(model, test.corpus), encode_queries(model, test.queries)
    reps = -(-n // len(docs))
    x = np.empty((reps * len(docs), docs.shape[1]), np.float32)
    for r in range(reps):
        block = x[r * len(docs):(r + 1) * len(docs)]
        block[:] = docs + (0.0 if r == 0 else 0.02) * rng.standard_normal(docs.shape, dtype=np.float32)
    x = x[:n]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, queries, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--shortlist", type=int, default=100)
    parser.add_argument("--queries", type=int, default=20, help="queries per timed call, one at a time")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, queries, name = corpus_and_queries(args.n, rng)
    q = queries[: args.queries]
    print(f"N = {len(x):,} x {x.shape[1]} ({name}), k = {args.k}, shortlist {args.shortlist}, nq = 1, "
          f"{args.queries} queries a call, median of {args.repeat}; faiss threads {faiss.omp_get_max_threads()}\n")
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    index64 = M.funnel_index(x, 64)
    codes64 = M.funnel_index(x, 64, binary=True)

    def one_at_a_time(search):
        return lambda: [search(q[i:i + 1]) for i in range(len(q))]

    methods = {
        "exact 384 fp32, course_lib topk": (x.nbytes, lambda v: topk(v, x, args.k)),
        "exact 384 fp32, faiss IndexFlatIP": (x.nbytes, lambda v: flat.search(v, args.k)),
        "64 fp32 -> rerank 384": (index64.nbytes, lambda v: M.funnel_search(v, x, args.k, shortlist_dim=64,
                                                                            shortlist=args.shortlist, index=index64)),
        "64 binary (8 B) -> rerank 384": (codes64.nbytes, lambda v: M.funnel_search(
            v, x, args.k, shortlist_dim=64, shortlist=args.shortlist, binary=True, index=codes64)),
    }
    times = timed({k: one_at_a_time(fn) for k, (_, fn) in methods.items()}, args.repeat)
    base = args.queries / times["exact 384 fp32, course_lib topk"]
    peer = args.queries / times["exact 384 fp32, faiss IndexFlatIP"]
    print(f"{'method':36s} {'q/s':>9s} {'ms/query':>9s} {'x topk':>7s} {'x faiss':>8s} {'stage-1 MB':>11s} {'B/doc':>6s}")
    for method, (nbytes, _) in methods.items():
        qps = args.queries / times[method]
        print(f"{method:36s} {qps:9.1f} {1e3 / qps:9.2f} {qps / base:6.1f}x {qps / peer:7.1f}x {nbytes / 1e6:11.1f} "
              f"{nbytes / len(x):6.0f}")


if __name__ == "__main__":
    main()
