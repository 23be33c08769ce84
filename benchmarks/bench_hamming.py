"""Exact Hamming top-k: course_lib against faiss IndexBinaryFlat, against memory bandwidth, and against float/int8 search.

    python benchmarks/bench_hamming.py [--n 1000000] [--repeat 5]

One run, one process. 1,000,000 random codes of 1024 bits and of 384 bits; nq = 1 and nq = 100; k = 10.
For each: queries per second of ``course_lib.binary.hamming_topk`` and of faiss ``IndexBinaryFlat`` on the
same codes (the two take turns, ``--repeat`` rounds of 20 calls at nq = 1; median per call), their ratio, and the GB/s of codes scanned
(N x bytes x nq per second) against the memory read bandwidth measured here: on a 1 GiB buffer (the STREAM
rule: far larger than the 32 MiB L3, so it is DRAM bandwidth), and on the code array itself for reference. Then, for the
table of binary against float speed-ups, exact search over the same N as 384-dim float32
(``course_lib.search.topk`` and faiss ``IndexFlatIP``) and as int8 (faiss ``IndexScalarQuantizer`` QT_8bit).
"""

from __future__ import annotations

import argparse

import faiss
import numba
import numpy as np
from _measure import dram_bandwidth, read_bandwidth_fns, timed

from course_lib.binary import faiss_binary_index, hamming_topk
from course_lib.search import topk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"N = {args.n:,}, k = {args.k}, numba threads {numba.get_num_threads()}, "
          f"faiss threads {faiss.omp_get_max_threads()}, median of {args.repeat}\n")
    rates = dram_bandwidth(args.repeat, rng)
    bandwidth = max(rates.values())
    print(f"memory read bandwidth on a 1 GiB buffer: {bandwidth:.1f} GB/s "
          f"(numba all cores {rates['read (numba, all cores)']:.1f}, np.sum one core {rates['read (np.sum, 1 core)']:.1f})\n")
    qps_binary = {}
    for bits in (1024, 384):
        codes = rng.integers(0, 256, (args.n, bits // 8), dtype=np.uint8)
        queries = rng.integers(0, 256, (100, bits // 8), dtype=np.uint8)
        index = faiss_binary_index(codes)
        d, _ = hamming_topk(queries, codes, args.k)
        assert np.array_equal(d, index.search(queries, args.k)[0]), "course_lib and faiss distances differ"
        bw = timed(read_bandwidth_fns(codes.view(np.uint64)), args.repeat)
        print(f"{bits}-bit codes ({codes.nbytes / 1e6:.0f} MB); reading this array alone: "
              f"{codes.nbytes / 1e9 / min(bw.values()):.1f} GB/s (partly from cache when it is small)")
        for nq in (1, 100):
            q = queries[:nq]
            t = timed({"course_lib": lambda: hamming_topk(q, codes, args.k),
                       "faiss": lambda: index.search(q, args.k)}, args.repeat, block=max(1, 20 // nq))
            ours, theirs = nq / t["course_lib"], nq / t["faiss"]
            scanned = codes.nbytes * nq / 1e9
            qps_binary[(bits, nq)] = ours
            print(f"  nq={nq:<3}  course_lib {ours:9.1f} q/s ({scanned / t['course_lib']:5.1f} GB/s scanned, "
                  f"{100 * scanned / t['course_lib'] / bandwidth:3.0f}% of bandwidth)   faiss {theirs:9.1f} q/s "
                  f"({scanned / t['faiss']:5.1f} GB/s)   ratio {ours / theirs:5.2f}x")
        del codes, index

    print("\nfloat32 and int8 exact search, 384 dims, same N")
    x = rng.standard_normal((args.n, 384), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qf = x[:100] + 0.1 * rng.standard_normal((100, 384), dtype=np.float32)
    flat = faiss.IndexFlatIP(384)
    flat.add(x)
    sq8 = faiss.IndexScalarQuantizer(384, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq8.train(x[:100_000])
    sq8.add(x)
    for nq in (1, 100):
        q = qf[:nq]
        t = timed({"course_lib topk fp32": lambda: topk(q, x, args.k), "faiss IndexFlatIP fp32": lambda: flat.search(q, args.k),
                   "faiss SQ8 int8": lambda: sq8.search(q, args.k)}, args.repeat)
        line = "   ".join(f"{name} {nq / s:8.1f} q/s" for name, s in t.items())
        best_float = nq / min(t["course_lib topk fp32"], t["faiss IndexFlatIP fp32"])
        print(f"  nq={nq:<3}  {line}")
        print(f"           binary 384-bit course_lib is {qps_binary[(384, nq)] / best_float:.1f}x the faster fp32 "
              f"search and {qps_binary[(384, nq)] / (nq / t['faiss SQ8 int8']):.1f}x faiss int8; "
              f"memory: fp32 {x.nbytes / 1e6:.0f} MB, int8 {x.nbytes / 4e6:.0f} MB, binary {x.nbytes / 32e6:.0f} MB")


if __name__ == "__main__":
    main()
