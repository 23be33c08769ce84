"""Exact top-k on int8 codes: course_lib's scan kernels against faiss's scalar quantizer, float32 search and bandwidth.

    python benchmarks/bench_int8_scan.py [--n 1000000] [--repeat 5]

One run, one process. N random unit vectors of 384 dims (``--n``, 1,000,000 by default), quantized to int8
with min-max ranges calibrated on them; k = 10; nq = 1 and nq = 100. The contenders take turns, round by round
(``--repeat`` rounds; 20 calls per turn at nq = 1; median per call):

- ``int8_topk``: the asymmetric kernel, a float query folded with the ranges, scanning the int8 codes;
- ``symmetric_topk``: int8 query codes against int8 codes (ranges with one shared step), int32 sums;
- faiss ``IndexScalarQuantizer`` (QT_8bit, inner product), holding the very same codes (its ``trained``
  vector is set from our ranges; the script checks that it encodes our dequantized vectors to our codes);
- ``course_lib.search.topk`` and faiss ``IndexFlatIP`` on the float32 vectors;
- ``course_lib.binary.hamming_topk`` on the 384-bit sign codes (no rescoring), for the bytes-against-speed line.

For each: queries per second, GB of stored vectors read per second (N x bytes per vector x nq / time), and that
as a share of the memory read bandwidth measured here on a 1 GiB buffer (numba, all cores). The targets at
nq = 1: the int8 kernel at least 1.0x faiss's scalar quantizer, at least 2.5x the float32 ``topk``, and at least
60% of the read bandwidth.
"""

from __future__ import annotations

import argparse

import faiss
import numba
import numpy as np
from _measure import dram_bandwidth, timed

from course_lib import int8_search as S
from course_lib.binary import hamming_topk
from course_lib.quantization import calibrate, dequantize_scalar, quantize_binary, quantize_scalar
from course_lib.search import topk


def faiss_sq_on_codes(codes_u8: np.ndarray, ranges) -> faiss.IndexScalarQuantizer:
    """faiss QT_8bit decodes ``vmin + (c + 0.5) / 255 * vdiff``: with vmin = lower - step / 2 and vdiff = 255 step
    it decodes our uint8 codes to our dequantized values, so it holds the same index as the course kernel."""
    d = codes_u8.shape[1]
    index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    step = ranges.step()
    faiss.copy_array_to_vector(np.concatenate([ranges.lower - step / 2, 255 * step]).astype(np.float32),
                               index.sq.trained)
    index.is_trained = True
    for start in range(0, codes_u8.shape[0], 100_000):  # add in blocks: the float copy of all codes is 4x their size
        x = dequantize_scalar(codes_u8[start:start + 100_000], ranges)
        assert np.array_equal(index.sa_encode(x), codes_u8[start:start + 100_000]), "faiss would hold other codes"
        index.add(x)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"N = {args.n:,} x {args.dim} dims, k = {args.k}, numba threads {numba.get_num_threads()}, "
          f"faiss threads {faiss.omp_get_max_threads()}, median of {args.repeat}\n")
    rates = dram_bandwidth(args.repeat, rng)
    bandwidth = rates["read (numba, all cores)"]
    print(f"memory read bandwidth on a 1 GiB buffer: {bandwidth:.1f} GB/s (numba, all cores; np.sum on one core "
          f"{rates['read (np.sum, 1 core)']:.1f})\n")

    x = np.empty((args.n, args.dim), np.float32)
    for start in range(0, args.n, 100_000):  # unit vectors, made in blocks
        block = rng.standard_normal((min(100_000, args.n - start), args.dim), dtype=np.float32)
        x[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    queries = rng.standard_normal((100, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ranges = calibrate(x)
    codes = quantize_scalar(x, ranges, "int8")  # (N, D) the asymmetric kernel's index
    shared = S.shared_step(ranges)
    codes_shared = quantize_scalar(x, shared, "int8")  # (N, D) the symmetric kernel's index
    terms = S.symmetric_doc_terms(codes_shared, shared)  # (N,) built once with the index
    query_codes = quantize_scalar(queries, shared, "int8")
    sq = faiss_sq_on_codes(quantize_scalar(x, ranges, "uint8"), ranges)
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(x)
    bits = quantize_binary(x)  # (N, D / 8)
    bits_q = quantize_binary(queries)

    _, i_ours = S.int8_topk(queries, codes, ranges, args.k)  # compile, and check agreement with faiss
    fs, fi = sq.search(queries, args.k)
    clear = np.abs(np.diff(fs, axis=1)).min(axis=1) > 1e-4
    agree = float((i_ours[clear] == fi[clear]).mean())
    print(f"int8_topk and faiss's scalar quantizer on the same codes: the same top {args.k} in {agree:.1%} of the "
          f"places of the {clear.sum()} queries without a near-tie (float rounding decides near-ties)\n")
    S.symmetric_topk(query_codes[:1], codes_shared, shared, args.k, doc_terms=terms)
    topk(queries[:1], x, args.k)
    hamming_topk(bits_q[:1], bits, args.k)

    stored = {"int8_topk (asymmetric)": codes.nbytes, "symmetric_topk (int8 x int8)": codes_shared.nbytes,
              "faiss IndexScalarQuantizer QT_8bit": codes.nbytes, "course_lib topk, float32": x.nbytes,
              "faiss IndexFlatIP, float32": x.nbytes, "hamming_topk, 1 bit a dim": bits.nbytes}
    rows = []
    for nq in (1, 100):
        q, qc, qb = queries[:nq], query_codes[:nq], bits_q[:nq]
        fns = {
            "int8_topk (asymmetric)": lambda: S.int8_topk(q, codes, ranges, args.k),
            "symmetric_topk (int8 x int8)": lambda: S.symmetric_topk(qc, codes_shared, shared, args.k, doc_terms=terms),
            "faiss IndexScalarQuantizer QT_8bit": lambda: sq.search(q, args.k),
            "course_lib topk, float32": lambda: topk(q, x, args.k),
            "faiss IndexFlatIP, float32": lambda: flat.search(q, args.k),
            "hamming_topk, 1 bit a dim": lambda: hamming_topk(qb, bits, args.k),
        }
        t = timed(fns, args.repeat, block=max(1, 20 // nq))
        for name, sec in t.items():
            gbs = stored[name] * nq / 1e9 / sec
            rows.append({"nq": nq, "method": name, "bytes/doc": stored[name] // args.n, "q/s": nq / sec,
                         "GB/s read": gbs, "share of bandwidth": gbs / bandwidth,
                         "x faiss SQ": t["faiss IndexScalarQuantizer QT_8bit"] / sec,
                         "x float32 topk": t["course_lib topk, float32"] / sec})
    print("| nq | method | bytes/doc | queries/s | GB/s read | share of read bandwidth | x faiss SQ | x float32 topk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['nq']} | {r['method']} | {r['bytes/doc']} | {r['q/s']:.1f} | {r['GB/s read']:.1f} | "
              f"{r['share of bandwidth']:.0%} | {r['x faiss SQ']:.2f} | {r['x float32 topk']:.2f} |")
    ours = next(r for r in rows if r["nq"] == 1 and r["method"] == "int8_topk (asymmetric)")
    print(f"\ntargets at nq = 1 (int8_topk): x faiss SQ {ours['x faiss SQ']:.2f} (goal >= 1.0), x float32 topk "
          f"{ours['x float32 topk']:.2f} (goal >= 2.5), share of bandwidth {ours['share of bandwidth']:.0%} "
          "(goal >= 60%)")


if __name__ == "__main__":
    main()
