"""A copy of the course for a graded class: everything a learner uses, nothing that gives answers away.

``python -m course_lib.tools.release DEST`` (``make student-release DEST=dir``) copies the tracked files of this
repository to ``DEST`` (a new or empty folder) except :data:`LEFT_OUT`: the solutions, the tests (they carry
solutions), CI, the contributors' guide and the instructors' guide (its rubrics state what a model answer says).
The student notebooks in ``notebooks/`` are copied as they are, after a check that they hold no solution, no hidden
test and no output. The copy is a git repository with one commit, ready to push for the class. There ``make lab`` and
``make check NB=01`` work; ``make check`` then runs the visible tests only (the hidden ones stay with the
instructor, whose ``make grade`` runs them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from course_lib.tools.notebooks import LEAK_MARKERS, REPO_ROOT

LEFT_OUT = ("solutions/", "tests/", ".ci/", "CONTRIBUTING.md", "docs/INSTRUCTORS.md")


def tracked_files(repo: Path = REPO_ROOT) -> list[str]:
    """The files git tracks in ``repo`` (so nothing built, cached or installed is copied)."""
    res = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{repo} is not a git checkout, so the files to release are unknown: {res.stderr.strip()}")
    return sorted(p for p in res.stdout.split("\0") if p)


def check_student_notebook(path: Path) -> None:
    """Refuse a notebook that shows a solution, a hidden test or an output."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        leaked = [m for m in LEAK_MARKERS if m in cell.source]
        if leaked or (cell.cell_type == "code" and cell.get("outputs")):
            what = f"the marker {leaked[0]!r}" if leaked else "an output"
            raise ValueError(f"{path} cell {index + 1} holds {what}: run `make notebooks` and release again")


def student_release(dest: Path, repo: Path = REPO_ROOT, commit: bool = True) -> list[str]:
    """Write the student copy of ``repo`` to ``dest`` (new or empty); return the files copied.

    Raises
    ------
    FileExistsError
        ``dest`` exists and is not empty (nothing there is ever overwritten).
    ValueError
        A student notebook holds a solution, a hidden test or an output.
    """
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not empty; give a new folder (nothing there is overwritten)")
    if dest == repo or repo in dest.parents:
        raise ValueError(f"{dest} is inside the course repository {repo}; give a folder outside it")
    files = [f for f in tracked_files(repo) if not f.startswith(LEFT_OUT)]
    notebooks = [f for f in files if f.startswith("notebooks/") and f.endswith(".ipynb")]
    if not notebooks:
        raise ValueError(f"no student notebook in {repo / 'notebooks'}: run `make notebooks` first")
    for f in notebooks:
        check_student_notebook(repo / f)
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / f, dest / f)
    if commit and shutil.which("git"):
        git = ["git", "-c", "user.name=course", "-c", "user.email=course@localhost"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "The course, student copy"]):
            subprocess.run(git + args, cwd=dest, check=True, capture_output=True)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tools.release", description=__doc__.split("\n")[0])
    parser.add_argument("dest", type=Path, help="a new or empty folder")
    parser.add_argument("--no-git", action="store_true", help="do not make the copy a git repository")
    args = parser.parse_args(argv)
    try:
        files = student_release(args.dest, commit=not args.no_git)
    except (FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files to {args.dest.resolve()} (left out: {', '.join(LEFT_OUT)}); "
          f"learners run `make lab`, then `make check NB=01`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
