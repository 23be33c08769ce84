"""What each of the workbook's CPU trainings spends per step, and on what sequence lengths.

    python benchmarks/training_step_cost.py [--steps 3] [--lengths 256,128] [--out build/training_step_cost.json]

For the Matryoshka training of notebook 05 and the fine-tunings of notebook 06 (in-batch negatives only, and
with one mined hard negative: the "filtered" run has the same columns as the "mined" one), with their CPU recipes
(``cfg`` neither small nor full):

- the token lengths of each training column (word pieces, untruncated): mean, median, 90th percentile, and the
  share of texts longer than 128 and than 256 word pieces (the model's maximum, where encoding truncates);
- the seconds per optimizer step at each max sequence length in ``--lengths``: the time of ``--steps`` + 1 steps
  minus that of 1 step (the trainer's set-up and the first step's warm-up cancel), divided by ``--steps``;
- the whole recipe's estimated training time at each length (seconds per step x the recipe's steps).

Each run trains a fresh copy of the packaged MiniLM and throws it away; nothing is cached. Training at a shorter
max length than the model encodes with is a recipe change: its effect on quality is not measured here.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np

import course_lib
from course_lib import finetune as F
from course_lib import matryoshka as M
from course_lib.compression import markdown_table
from course_lib.data import load_beir
from course_lib.embed import max_seq_length
from course_lib.models import load_model
from course_lib.training import fit


def length_stats(tokenizer, texts: list[str]) -> dict:
    n = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]])
    return {"texts": len(n), "mean": round(float(n.mean()), 1), "median": int(np.median(n)),
            "p90": int(np.percentile(n, 90)), "> 128": round(float((n > 128).mean()), 3),
            "> 256": round(float((n > 256).mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lengths", default="256,128")
    parser.add_argument("--out", type=Path, default=course_lib.paths.REPO_ROOT / "build" / "training_step_cost.json")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    if args.steps < 1 or not lengths or min(lengths) < 8:
        parser.error("--steps must be >= 1 and --lengths positive ints >= 8")
    cfg = course_lib.setup(seed=0, small=False, verbose=False)
    base = load_model(device="cpu")
    train, test = load_beir("scifact", "train"), load_beir("scifact", "test")

    runs = {}  # name -> (columns, make loss(model), batch size, recipe steps)
    mrl = M.mrl_recipe(cfg)
    pairs = M.mrl_pairs(train, test)
    runs["05 Matryoshka"] = ({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]},
                             None, mrl.batch_size,
                             math.ceil(len(pairs) / mrl.batch_size) * mrl.epochs)
    for negatives in ("none", "mined"):
        recipe = F.finetune_recipe(cfg, negatives)
        columns, _ = F.training_columns(base, train, test, recipe, show_progress=False)
        n = len(next(iter(columns.values())))
        runs[f"06 fine-tuning, negatives={negatives}"] = (columns, recipe, recipe.batch_size,
                                                          math.ceil(n / recipe.batch_size) * recipe.epochs)

    def train_steps(name, model, steps):
        columns, how, batch, _ = runs[name]
        start = time.perf_counter()
        if name.startswith("05"):
            M.train_mrl(model, list(zip(columns["anchor"], columns["positive"])), dims=mrl.dims, epochs=1.0,
                        batch_size=batch, learning_rate=mrl.learning_rate, max_steps=steps, show_progress=False)
        else:
            fit(model, columns, F.make_loss(model, how.loss, how.mini_batch_size), epochs=1.0, batch_size=batch,
                learning_rate=how.learning_rate, max_steps=steps, show_progress=False)
        return time.perf_counter() - start

    length_rows, step_rows = [], []
    for name, (columns, _, batch, steps) in runs.items():
        for col, texts in columns.items():
            length_rows.append({"training": name, "column": col, **length_stats(base.tokenizer, texts)})
        row = {"training": name, "batch": batch, "recipe steps": int(steps)}
        for length in lengths:
            times = []
            for n_steps in (1, args.steps + 1):
                model = copy.deepcopy(base)
                with max_seq_length(model, length):
                    times.append(train_steps(name, model, n_steps))
            per_step = (times[1] - times[0]) / args.steps
            row[f"s/step @{length}"] = round(per_step, 2)
            row[f"recipe s @{length}"] = round(per_step * steps)
        step_rows.append(row)
        print(row, flush=True)
    print(markdown_table(length_rows), "\n")
    print(markdown_table(step_rows), "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"lengths": length_rows, "steps": step_rows, "timed_steps": args.steps}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
