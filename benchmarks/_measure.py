"""Shared measuring helpers for the benchmark scripts: interleaved median timing and memory read bandwidth."""

from __future__ import annotations

import statistics
import time

import numba
import numpy as np


@numba.njit(parallel=True, fastmath={"reassoc"})
def _read_all(x):  # x (N, W): read every element once, on all cores
    total = 0.0
    for i in numba.prange(x.shape[0]):
        s = x[i, 0] * 0
        for j in range(x.shape[1]):
            s += x[i, j]
        total += s
    return total


def timed(fns: dict, repeat: int, block: int = 1) -> dict[str, float]:
    """Median seconds per call of each function; the functions take turns, round by round.

    Each turn makes one untimed call, then ``block`` timed calls back to back. The untimed call lets the
    previous library's threads (faiss' OpenMP pool spins after each call) go idle, and ``block > 1``
    measures a steady stream of calls rather than one call after a pause.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def read_bandwidth_fns(x: np.ndarray) -> dict:
    """Two ways to read ``x`` once (2-D float32 or uint64): numba on all cores, and np.sum on one core."""
    return {"read (numba, all cores)": lambda: _read_all(x), "read (np.sum, 1 core)": lambda: x.sum()}


def dram_bandwidth(repeat: int, rng: np.random.Generator) -> dict[str, float]:
    """GB/s of reading a 1 GiB buffer (the STREAM rule: far larger than the L3, so it is DRAM bandwidth), each of the
    two ways of :func:`read_bandwidth_fns`, median of ``repeat`` rounds."""
    buffer = rng.integers(0, 2 ** 63, (2 ** 27 // 16, 16), dtype=np.uint64)  # 1 GiB
    seconds = timed(read_bandwidth_fns(buffer), repeat)
    return {name: buffer.nbytes / 1e9 / sec for name, sec in seconds.items()}
