"""Autograde submissions with nbgrader, safely.

    python -m course_lib.tools.grading grade SUBMISSIONS [--out grades.csv]   # what `make grade` runs
    python -m course_lib.tools.grading check 01                                # what `make check NB=01` runs

``SUBMISSIONS`` holds one folder per student, each with that student's notebooks
(``<student>/NN_topic.ipynb`` or ``<student>/NN_topic/NN_topic.ipynb``).

Safety rules:

- submitted files are only ever read: they are copied into a fresh course tree under ``build/grading``;
- nbgrader restores every locked cell (tests included) from the instructor's copy, so edited tests earn nothing;
- each cell runs under a time limit (an infinite loop is interrupted, that exercise scores 0, grading goes on),
  and each student's whole run under another; a submission that kills its kernel or times out is
  reported with status ``error`` and scores 0 instead of stopping the grader.

Grading runs in small mode (``COURSE_SMALL=1``) unless the environment says otherwise: the exercises do
not depend on the corpus size.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from course_lib.tools.notebooks import NOTEBOOKS, REPO_ROOT, nbgrader, stems, write_sources

GRADING_ROOT = REPO_ROOT / "build" / "grading"
STUDENT_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Row:
    student: str
    assignment: str
    exercise: str
    points: float
    max_points: float
    status: str


def collect(submissions: Path, names: list[str]) -> dict[str, dict[str, Path]]:
    """``{student: {stem: notebook path}}`` found under ``submissions``."""
    if not submissions.is_dir():
        raise FileNotFoundError(f"SUBMISSIONS folder {submissions} does not exist")
    found: dict[str, dict[str, Path]] = {}
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not STUDENT_ID.match(student_dir.name):
            raise ValueError(f"student folder name {student_dir.name!r} must use only letters, digits, '_', '.', '-'")
        for stem in names:
            for cand in (student_dir / f"{stem}.ipynb", student_dir / stem / f"{stem}.ipynb"):
                if cand.is_file():
                    found.setdefault(student_dir.name, {})[stem] = cand
                    break
    return found


def _scores(root: Path, stem: str, student: str) -> list[tuple[str, float, float]] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        try:
            nb = gb.find_submission_notebook(stem, stem, student)
        except MissingEntry:
            return None
        return [(g.name, float(g.score), float(g.max_score)) for g in sorted(nb.grades, key=lambda g: g.name)]


def _max_points(root: Path, stem: str) -> list[tuple[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(stem, stem)
        return sorted((c.name, float(c.max_score)) for c in nb.grade_cells)


def grade(submissions: Path, out: Path | None = None, cell_timeout: int = 120, student_timeout: int = 1800,
          root: Path = GRADING_ROOT) -> list[Row]:
    """Autograde every submission under ``submissions``; write ``out`` (CSV) and return the rows."""
    names = stems()
    found = collect(Path(submissions), names)
    if root.exists():
        shutil.rmtree(root)
    write_sources(root, names)
    env = {**os.environ, "COURSE_SMALL": os.environ.get("COURSE_SMALL", "1")}
    rows: list[Row] = []
    for stem in sorted({s for subs in found.values() for s in subs}):
        res = nbgrader("generate_assignment", stem, "--force", root=root, db=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {stem} failed:\n{res.stdout}\n{res.stderr}")
        for student, subs in sorted(found.items()):
            if stem not in subs:
                continue
            dest = root / "submitted" / student / stem / f"{stem}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(subs[stem], dest)
            status = "graded"
            try:
                res = nbgrader("autograde", stem, "--force", f"--student={student}", f"--Execute.timeout={cell_timeout}",
                               "--Execute.kernel_name=embeddings-course", root=root, db=True, env=env,
                               timeout=student_timeout)
                if res.returncode != 0:
                    status = "error: " + (res.stderr.strip().splitlines() or ["autograde failed"])[-1][:200]
            except subprocess.TimeoutExpired:
                status = f"error: grading took longer than {student_timeout} s"
            scores = _scores(root, stem, student) if status == "graded" else None
            if scores is None:
                scores = [(name, 0.0, mx) for name, mx in _max_points(root, stem)]
                if status == "graded":
                    status = "error: no grades recorded"
            for name, pts, mx in scores:
                rows.append(Row(student, stem, name, pts, mx, status))
            rows.append(Row(student, stem, "TOTAL", sum(s[1] for s in scores), sum(s[2] for s in scores), status))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["student", "assignment", "exercise", "points", "max_points", "status"])
            for r in rows:
                w.writerow([r.student, r.assignment, r.exercise, r.points, r.max_points, r.status])
    return rows


def check(nb: str, cell_timeout: int = 300) -> list[Row]:
    """Grade the learner's own ``notebooks/<NN>_*.ipynb`` on a copy and print the points per exercise."""
    matches = sorted(NOTEBOOKS.glob(f"{nb}*.ipynb")) if nb else []
    if len(matches) != 1:
        raise FileNotFoundError(f"NB={nb!r} must name exactly one notebook in notebooks/ (e.g. NB=01), found {matches}")
    stem = matches[0].stem
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "me").mkdir()
        shutil.copyfile(matches[0], Path(tmp) / "me" / f"{stem}.ipynb")
        rows = grade(Path(tmp), cell_timeout=cell_timeout, root=REPO_ROOT / "build" / "check")
    print(f"{stem}: points per exercise (your file was not modified)")
    for r in rows:
        print(f"  {r.exercise:24s} {r.points:g} / {r.max_points:g}" + ("" if r.status == "graded" else f"   [{r.status}]"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tools.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grade", help="autograde a folder of submissions")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", type=Path, default=GRADING_ROOT.parent / "grades.csv")
    g.add_argument("--cell-timeout", type=int, default=120)
    c = sub.add_parser("check", help="grade your own notebook (a copy of it)")
    c.add_argument("nb", help="notebook number, e.g. 01")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "grade":
            rows = grade(args.submissions, args.out, cell_timeout=args.cell_timeout)
            for r in rows:
                if r.exercise == "TOTAL":
                    print(f"{r.student:20s} {r.assignment:28s} {r.points:g} / {r.max_points:g}  {r.status}")
            print(f"wrote {args.out}")
        else:
            check(args.nb)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
