"""Exact float search: course_lib.search.topk against faiss IndexFlatIP and torch, in one run.

    python benchmarks/bench_search.py [--n 200000] [--dim 384] [--nq 100] [--k 10]

Prints queries per second for each and the ratio of course_lib to each peer. Random unit vectors:
exact search costs the same whatever the data.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np
import torch

from course_lib.search import topk


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--nq", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.choice(args.n, args.nq, replace=False)] + 0.05 * rng.standard_normal(
        (args.nq, args.dim), dtype=np.float32)

    index = faiss.IndexFlatIP(args.dim)
    index.add(corpus)
    tc, tq = torch.from_numpy(corpus), torch.from_numpy(queries)

    ours_s, ours_i = topk(queries, corpus, args.k)
    f_s, f_i = index.search(queries, args.k)
    assert np.allclose(ours_s, f_s, atol=1e-4), "course_lib and faiss disagree"

    t_ours = median_seconds(lambda: topk(queries, corpus, args.k), args.repeat)
    t_faiss = median_seconds(lambda: index.search(queries, args.k), args.repeat)
    t_torch = median_seconds(lambda: torch.topk(tq @ tc.T, args.k, dim=1), args.repeat)

    print(f"exact search, N={args.n:,} x {args.dim} float32, nq={args.nq}, k={args.k}, "
          f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}")
    for name, t in [("course_lib.topk (numpy)", t_ours), ("faiss IndexFlatIP", t_faiss), ("torch matmul+topk", t_torch)]:
        print(f"  {name:26s} {args.nq / t:9.1f} queries/s   ({t * 1e3:.1f} ms per batch)")
    print(f"  ratio course_lib / faiss  {t_faiss / t_ours:.2f}x")
    print(f"  ratio course_lib / torch  {t_torch / t_ours:.2f}x")


if __name__ == "__main__":
    main()
