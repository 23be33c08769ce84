"""MaxSim throughput: course_lib (loop, numpy, torch) against PyLate's colbert_scores, and against the matmul peak.

    python benchmarks/bench_maxsim.py [--docs 10000] [--rounds 3]

One query of 32 tokens against 10,000 documents of 50 to 180 tokens (padded to 180) x 128 dims, random unit
vectors, float32. PyLate 1.6 runs in the peer environment (``make peers`` creates .venv-peers; it pins
sentence-transformers 5.3) on the same inputs, saved to disk; the two take turns for ``--rounds`` rounds,
5 timed calls each, and the median counts. Prints documents per second, the ratio course_lib / PyLate, and
the share of this machine's float32 matrix-multiply peak (torch, measured in the same run) that each reaches,
counting 2 x Lq x Ld x D flops per document (padded positions included: every implementation computes them).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _measure import timed

from course_lib.maxsim import maxsim, maxsim_loop
from course_lib.paths import REPO_ROOT

PEER_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"


def matmul_peak(repeat: int = 5) -> float:
    """GFLOP/s of torch float32 matmul on a MaxSim-shaped problem large enough to reach the peak."""
    a, b = torch.randn(4096, 128), torch.randn(128, 4096)
    s = timed({"mm": lambda: a @ b}, repeat, block=5)["mm"]
    return 2 * 4096 * 4096 * 128 / s / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lq, ld, dim = 32, 180, 128
    q = rng.standard_normal((1, lq, dim), dtype=np.float32)
    d = rng.standard_normal((args.docs, ld, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    d /= np.linalg.norm(d, axis=2, keepdims=True)
    qm = np.ones((1, lq), bool)
    dm = np.arange(ld)[None, :] < rng.integers(50, ld + 1, args.docs)[:, None]
    d[~dm] = 0.0
    flops = 2 * lq * ld * dim * args.docs
    tq, tqm, td, tdm = (torch.from_numpy(x) for x in (q, qm, d, dm))
    torch_scores = maxsim(tq, tqm, td, tdm, chunk_size=1024)

    results = {}
    start = time.perf_counter()
    loop_scores = maxsim_loop(q, qm, d[:500], dm[:500])  # 500 documents: the loop is slow
    results["course_lib maxsim_loop (500 docs)"] = (time.perf_counter() - start) * args.docs / 500
    np.testing.assert_allclose(loop_scores, torch_scores[:, :500].numpy(), rtol=1e-4)
    ours = timed({"course_lib maxsim numpy": lambda: maxsim(q, qm, d, dm, chunk_size=1024),
                  "course_lib maxsim torch": lambda: maxsim(tq, tqm, td, tdm, chunk_size=1024)}, 3, block=3)
    results.update(ours)

    peer = []
    if PEER_PYTHON.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(src, q=q, q_mask=qm, d=d, d_mask=dm)
            torch_times = []
            for _ in range(args.rounds):  # take turns: course_lib torch, then PyLate, each 5 calls
                torch_times += [timed({"t": lambda: maxsim(tq, tqm, td, tdm, chunk_size=1024)}, 1, block=5)["t"]]
                subprocess.run([str(PEER_PYTHON), str(REPO_ROOT / "benchmarks" / "peers" / "pylate_scores.py"),
                                str(src), str(dst), "--repeat", "5"], check=True)
                out = np.load(dst)
                peer += out["seconds"].tolist()
            np.testing.assert_allclose(out["scores"], torch_scores.numpy(), rtol=1e-4, atol=1e-4)
            results["course_lib maxsim torch"] = statistics.median(torch_times)
            results["PyLate colbert_scores (peer env)"] = statistics.median(peer)
    peak = matmul_peak()

    print(f"1 query x {lq} tokens against {args.docs:,} docs x 50-{ld} tokens (padded to {ld}) x {dim} dims, "
          f"float32, torch threads {torch.get_num_threads()}; float32 matmul peak {peak:.0f} GFLOP/s")
    for name, s in results.items():
        print(f"  {name:36s} {args.docs / s:10.0f} docs/s   {flops / s / 1e9:6.1f} GFLOP/s "
              f"({100 * flops / s / 1e9 / peak:4.1f}% of peak)")
    if peer:
        print(f"  ratio course_lib torch / PyLate        {results['PyLate colbert_scores (peer env)'] / results['course_lib maxsim torch']:.2f}x")
    else:
        print("  PyLate: not measured (run `make peers` first to create .venv-peers)")


if __name__ == "__main__":
    main()
