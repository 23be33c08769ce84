"""Dense-retrieval evaluation on a BEIR data set, from Python or the command line.

    python -m course_lib.eval --model base --dataset scifact --split test [--small]

prints nDCG@10, Recall@100, MRR@10, the corpus encoding time and the index size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from course_lib import validation as V
from course_lib.data import BeirDataset, load_beir
from course_lib.embed import cache_info, encode_corpus, encode_queries
from course_lib.metrics import evaluate
from course_lib.search import run_from_topk, topk


def unseen_document_qrels(test_qrels: dict[str, dict[str, int]],
                          train_qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The test qrels of the queries none of whose relevant documents is a positive in the train qrels.

    In SciFact, train and test claims often cite the same abstracts (196 of the 300 test queries have a
    relevant document that is also a train positive), so a model trained on train pairs can gain on test by
    learning those documents. Scoring this subset on its own separates that from a gain on new documents.

    >>> unseen_document_qrels({"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}}, {"t": {"d3": 1}})
    {'q1': {'d1': 1}}
    """
    V.check_qrels("test_qrels", test_qrels)
    V.check_qrels("train_qrels", train_qrels)
    train_pos = {d for rel in train_qrels.values() for d, r in rel.items() if r > 0}
    return {q: dict(rel) for q, rel in test_qrels.items() if not {d for d, r in rel.items() if r > 0} & train_pos}


def paired_comparison(before: dict[str, float], after: dict[str, float], tol: float = 1e-9) -> dict[str, float]:
    """Compare two systems query by query (per-query nDCG@10, say): mean change, and wins, losses and ties.

    A mean gain made of a few large wins and many small losses is a different model from one that wins
    everywhere; the counts tell them apart. Both dicts must have the same str query ids and finite values;
    ``tol`` (>= 0) is the largest change that still counts as a tie.

    >>> paired_comparison({"a": 0.5, "b": 0.2, "c": 0.9}, {"a": 0.7, "b": 0.1, "c": 0.9})
    {'mean_delta': 0.0333, 'wins': 1, 'losses': 1, 'ties': 1}
    """
    V.check_scores_map("before", before)
    V.check_scores_map("after", after)
    tol = V.check_number("tol", tol, low=0)
    if set(before) != set(after) or not before:
        raise ValueError(f"before and after must score the same, non-empty set of queries "
                         f"({len(before)} and {len(after)} ids, {len(set(before) ^ set(after))} not shared)")
    deltas = [after[q] - before[q] for q in before]
    return {"mean_delta": round(sum(deltas) / len(deltas), 4), "wins": sum(d > tol for d in deltas),
            "losses": sum(d < -tol for d in deltas), "ties": sum(abs(d) <= tol for d in deltas)}


def evaluate_dense(model, ds: BeirDataset, k: int | None = None, k_values=(1, 3, 5, 10, 100),
                   batch_size: int | None = None, show_progress: bool = True) -> dict:
    """Encode ``ds`` (cached), search exactly by cosine, and score the run with course_lib metrics.

    ``batch_size`` None lets the encoder choose for the model's device (64 on a CPU, 256 on a GPU).
    ``k``: documents retrieved per query, in [1, N]; None is 100, or N when the corpus is smaller.

    Returns
    -------
    dict
        ``metrics`` (see :func:`course_lib.metrics.evaluate`), ``encode_seconds`` (of the corpus,
        as first measured, also when it now came from the cache), ``cached`` (bool),
        ``index_bytes`` (float32 corpus matrix), ``search_seconds``, ``docs``, ``queries``.
    """
    corpus = getattr(ds, "corpus", None)
    if not isinstance(corpus, dict) or not corpus:
        raise TypeError(f"ds must be a BeirDataset with a non-empty corpus, got {type(ds).__name__}")
    k = V.default_depth(k, len(corpus))
    V.check_sequence("k_values", k_values, "positive ints")
    V.check_int("batch_size", batch_size, low=1, allow_none=True)
    cached = cache_info(model, ds.corpus) is not None
    start = time.perf_counter()
    corpus_emb = encode_corpus(model, ds.corpus, batch_size=batch_size, show_progress=show_progress)
    elapsed = time.perf_counter() - start
    info = cache_info(model, ds.corpus) or {}
    query_emb = encode_queries(model, ds.queries, batch_size=batch_size)
    start = time.perf_counter()
    scores, idx = topk(query_emb, corpus_emb, k)
    search_seconds = time.perf_counter() - start
    run = run_from_topk(scores, idx, list(ds.queries), list(ds.corpus))
    return {
        "metrics": evaluate(run, ds.qrels, k_values),
        "encode_seconds": float(info.get("encode_seconds", elapsed)),
        "cached": bool(cached),
        "index_bytes": int(corpus_emb.nbytes),
        "search_seconds": search_seconds,
        "docs": len(ds.corpus),
        "queries": len(ds.queries),
        "run": run,
    }


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="base", help="'base' (packaged all-MiniLM-L6-v2) or a saved model folder")
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--small", action="store_true", help="small mode: the 1,500-document sub-corpus")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="encoding batch (default: 64 on a CPU, 256 on a GPU)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    if argv is not None:
        V.check_texts("argv", argv, nonempty=False)
    args = parser.parse_args(argv)

    from course_lib.models import load_model

    ds = load_beir(args.dataset, args.split, small=args.small or None)
    model = load_model(device=args.device, path=None if args.model == "base" else args.model)
    res = evaluate_dense(model, ds, batch_size=args.batch_size, show_progress=not args.json)
    m = res["metrics"]
    figures = {
        "model": args.model, "dataset": args.dataset, "split": args.split, "small": ds.small,
        "docs": res["docs"], "queries": res["queries"],
        "ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4), "mrr@10": round(m["mrr@10"], 4),
        "encode_seconds": round(res["encode_seconds"], 1), "encode_cached": res["cached"],
        "index_bytes": res["index_bytes"], "device": str(model.device),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    cached = " (measured on first encoding; loaded from cache now)" if res["cached"] else ""
    print(f"{args.model} on {args.dataset}/{args.split}{' [small]' if ds.small else ''}: "
          f"{res['docs']} docs, {res['queries']} queries, device {model.device}")
    print(f"  nDCG@10    {m['ndcg@10']:.4f}")
    print(f"  Recall@100 {m['recall@100']:.4f}")
    print(f"  MRR@10     {m['mrr@10']:.4f}")
    print(f"  encoding   {res['encode_seconds']:.1f} s for the corpus{cached}")
    print(f"  index      {res['index_bytes'] / 1e6:.2f} MB float32 ({res['index_bytes'] // max(res['docs'], 1)} bytes/doc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
