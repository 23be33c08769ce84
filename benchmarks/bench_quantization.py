"""Throughput of course_lib's quantization kernels against sentence-transformers and this machine's memory bandwidth.

    python benchmarks/bench_quantization.py [--n 1000000] [--dim 384] [--repeat 5]

One run, one process: random float32 embeddings (N x D), ranges calibrated once on 100,000 rows and
given to both libraries. Timed, alternating ours and the peer, median of ``--repeat``:

- ``course_lib.quantization.quantize_scalar`` (int8: clip, round to nearest), with a fresh output array
  and into a reused ``out=`` buffer, against ``sentence_transformers.util.quantize_embeddings(..., "int8",
  ranges=...)`` (clip, floor);
- ``quantize_binary`` against ``quantize_embeddings(..., "ubinary")`` (``np.packbits``);
- memory bandwidth: a parallel read-only reduction over the same array (numba, all cores) and a
  single-threaded ``np.sum``; the larger is the reference.

GB/s counts the float32 input read (N x D x 4 bytes) per second. Ratios: ours / sentence-transformers,
ours / read bandwidth.
"""

from __future__ import annotations

import argparse

import numba
import numpy as np
from _measure import read_bandwidth_fns, timed
from sentence_transformers.util import quantize_embeddings

from course_lib import quantization as Q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gb = x.nbytes / 1e9
    ranges = Q.calibrate(x[:100_000])
    st_ranges = ranges.as_array()
    buf = np.empty(x.shape, np.int8)

    ours, theirs = Q.quantize_scalar(x, ranges), quantize_embeddings(x, "int8", ranges=st_ranges)
    diff = ours.astype(np.int16) - theirs
    assert set(np.unique(diff).tolist()) <= {0, 1}, "int8 codes differ by more than one step"
    assert np.array_equal(Q.quantize_binary(x), quantize_embeddings(x, "ubinary")), "binary codes differ"
    del ours, theirs, diff

    t = timed({
        **read_bandwidth_fns(x),
        "course_lib quantize_scalar int8": lambda: Q.quantize_scalar(x, ranges),
        "course_lib quantize_scalar int8, out=": lambda: Q.quantize_scalar(x, ranges, out=buf),
        "sentence-transformers int8": lambda: quantize_embeddings(x, "int8", ranges=st_ranges),
        "course_lib quantize_binary": lambda: Q.quantize_binary(x),
        "sentence-transformers ubinary": lambda: quantize_embeddings(x, "ubinary"),
    }, args.repeat)
    rate = {name: gb / s for name, s in t.items()}
    bandwidth = max(rate["read (numba, all cores)"], rate["read (np.sum, 1 core)"])

    print(f"{args.n:,} x {args.dim} float32 ({gb:.2f} GB), numba threads {numba.get_num_threads()}, "
          f"median of {args.repeat}")
    for name, r in rate.items():
        print(f"  {name:40s} {r:7.2f} GB/s   ({t[name] * 1e3:8.1f} ms)")
    print(f"  memory read bandwidth (reference)        {bandwidth:7.2f} GB/s")
    print("ratios")
    for ours, peer in [("course_lib quantize_scalar int8", "sentence-transformers int8"),
                       ("course_lib quantize_scalar int8, out=", "sentence-transformers int8"),
                       ("course_lib quantize_binary", "sentence-transformers ubinary")]:
        print(f"  {ours:40s} {rate[ours] / rate[peer]:7.1f}x sentence-transformers   "
              f"{100 * rate[ours] / bandwidth:5.0f}% of read bandwidth")


if __name__ == "__main__":
    main()
