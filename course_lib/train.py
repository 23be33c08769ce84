"""Training from the command line, on one CPU or on several GPUs with the same command.

    python -m course_lib.train mrl --output .cache/models/mrl [--epochs 3] [--batch-size 32] [--lr 1e-4] [--small]
    torchrun --nproc_per_node 4 -m course_lib.train mrl --output ...      # data parallel, one process a GPU
    accelerate launch -m course_lib.train mrl --output ...

Trains the packaged MiniLM with MatryoshkaLoss over MultipleNegativesRankingLoss on SciFact *train*
pairs (``course_lib.matryoshka.train_mrl``) and saves it (on the main process) to ``--output``.
``--max-steps`` and ``--limit`` make a quick run (tests use them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from course_lib.matryoshka import MrlRecipe


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text}")
        return value
    return parse


def _positive_or_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an int >= 0, got {text}")
    return value


def _steps(text: str) -> int:
    value = int(text)
    if value != -1 and value < 1:
        raise argparse.ArgumentTypeError(f"must be -1 (no limit) or a positive int, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mrl = sub.add_parser("mrl", help="Matryoshka training on SciFact train pairs")
    mrl.add_argument("--output", required=True, help="folder to save the trained model in")
    defaults = MrlRecipe()
    mrl.add_argument("--epochs", type=_positive(float), default=defaults.epochs)
    mrl.add_argument("--batch-size", type=_positive(int), default=defaults.batch_size, help="per device")
    mrl.add_argument("--lr", type=_positive(float), default=defaults.learning_rate)
    mrl.add_argument("--dims", default=",".join(map(str, defaults.dims)))
    mrl.add_argument("--weights", default=None, help="one loss weight per dim, comma-separated (default: all 1)")
    mrl.add_argument("--max-steps", type=_steps, default=-1)
    mrl.add_argument("--limit", type=_positive(int), default=None, help="use only the first N pairs")
    mrl.add_argument("--small", action="store_true")
    mrl.add_argument("--seed", type=_positive_or_zero, default=0)
    if argv is not None and (isinstance(argv, str) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str arguments or None, got {argv!r}")
    args = parser.parse_args(argv)
    try:  # checked before the model loads: a bad list fails in a second, not after minutes
        dims = tuple(int(d) for d in args.dims.split(","))
        weights = None if args.weights is None else tuple(float(w) for w in args.weights.split(","))
        MrlRecipe(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, dims=dims, weights=weights,
                  max_steps=args.max_steps, limit=args.limit, seed=args.seed)
    except ValueError as err:
        parser.error(f"--dims/--weights: {err}")

    import course_lib
    from course_lib.data import load_beir
    from course_lib.matryoshka import mrl_pairs, train_mrl
    from course_lib.models import load_model

    cfg = course_lib.setup(seed=args.seed, small=args.small or None, verbose=False)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    device = f"cuda:{local_rank}" if cfg.device == "cuda" and local_rank >= 0 else cfg.device
    model = load_model(device=device)
    pairs = mrl_pairs(load_beir("scifact", "train", small=cfg.small), load_beir("scifact", "test", small=cfg.small))
    pairs = pairs[: args.limit]
    start = time.perf_counter()
    history = train_mrl(model, pairs, dims=dims, weights=weights, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.lr, max_steps=args.max_steps, seed=args.seed, show_progress=rank == 0)
    if rank == 0:
        model.save(args.output)
        info = {"pairs": len(pairs), "dims": dims, "weights": weights, "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                "world_size": int(os.environ.get("WORLD_SIZE", "1")), "seconds": round(time.perf_counter() - start, 1),
                "device": device, "losses": history}
        with open(os.path.join(args.output, "course_training.json"), "w") as fh:
            json.dump(info, fh, indent=1)
        print(f"saved {args.output}: {len(pairs)} pairs, {info['seconds']} s, world size {info['world_size']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
