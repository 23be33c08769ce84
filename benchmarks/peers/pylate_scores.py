"""Run PyLate's ``colbert_scores`` in the peer environment (.venv-peers) on inputs saved by the course.

    .venv-peers/bin/python benchmarks/peers/pylate_scores.py IN.npz OUT.npz [--repeat N]

IN.npz holds ``q`` (Bq, Lq, D), ``q_mask`` (Bq, Lq), ``d`` (Bd, Ld, D), ``d_mask`` (Bd, Ld). OUT.npz gets
``scores`` (Bq, Bd) float32 and, with ``--repeat``, ``seconds``: the time of each call (torch backend, CPU).
Never imported by course_lib: PyLate 1.6 pins sentence-transformers 5.3.
"""

import sys
import time

import numpy as np
import torch
from pylate.scores import colbert_scores


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 0
    x = np.load(src)
    q, d = torch.from_numpy(x["q"]), torch.from_numpy(x["d"])
    qm, dm = torch.from_numpy(x["q_mask"]).float(), torch.from_numpy(x["d_mask"]).float()
    scores = colbert_scores(q, d, queries_mask=qm, documents_mask=dm, backend="torch")
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        colbert_scores(q, d, queries_mask=qm, documents_mask=dm, backend="torch")
        seconds.append(time.perf_counter() - start)
    np.savez(dst, scores=scores.float().numpy(), seconds=np.array(seconds))


if __name__ == "__main__":
    main()
