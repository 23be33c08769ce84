"""Build the student notebooks from their single source, ``solutions/NN_topic.py``.

    python -m course_lib.tools.notebooks build      # what `make notebooks` runs

For each source: jupytext reads it (percent format, nbgrader cell metadata in the cell headers),
the notebook is written to an nbgrader course tree (``build/nbgrader/source/NN_topic/``), nbgrader's
``generate_assignment`` strips solutions and hidden tests and locks the test cells, and the release
copy is written to ``notebooks/NN_topic.ipynb`` with no outputs and the ``embeddings-course`` kernel.
The stem ``NN_topic`` is the notebook name, the nbgrader assignment id and the test id.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from course_lib.paths import REPO_ROOT

SOLUTIONS = REPO_ROOT / "solutions"
NOTEBOOKS = REPO_ROOT / "notebooks"
BUILD = REPO_ROOT / "build" / "nbgrader"
KERNEL = {"display_name": "Python (embeddings-course)", "language": "python", "name": "embeddings-course"}
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def stems(sources: Path = SOLUTIONS) -> list[str]:
    """The notebook stems ``NN_topic`` of the sources in ``sources`` (default ``solutions/``), in order."""
    return sorted(p.stem for p in Path(sources).glob("[0-9][0-9]_*.py"))


def grade_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]


def source_notebook(path: Path):
    """Read a jupytext source into an nbgrader source notebook (deterministic cell ids, fixed kernel)."""
    import jupytext

    nb = jupytext.read(path)
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
        meta = cell.metadata.get("nbgrader")
        cell.metadata = {"nbgrader": meta} if meta else {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    dupes = [g for g, n in Counter(grade_ids(nb)).items() if n > 1]
    if dupes:
        raise ValueError(f"{path.name}: grade_id repeated: {dupes}; every nbgrader cell needs its own grade_id")
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and "points" not in meta:
            raise ValueError(f"{path.name}: test cell {meta['grade_id']!r} has no points")
        if meta.get("solution") and "BEGIN SOLUTION" not in cell.source:
            raise ValueError(f"{path.name}: solution cell {meta['grade_id']!r} has no '### BEGIN SOLUTION' block")
    return nb


def write_notebook(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb, version=4)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def write_sources(root: Path, names: list[str] | None = None, sources: Path = SOLUTIONS) -> list[str]:
    """Write ``root/source/<stem>/<stem>.ipynb`` (solutions included) for each stem; return the stems."""
    names = names or stems(sources)
    for stem in names:
        write_notebook(source_notebook(Path(sources) / f"{stem}.py"), root / "source" / stem / f"{stem}.ipynb")
    return names


# nbgrader's answer stubs (nbgrader_config.py), at any indentation
STUBS = {"code": re.compile(r"^([ \t]*)(# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\))", re.M),
         "markdown": re.compile(r"^()(YOUR ANSWER HERE)", re.M)}


def sources_from_student_notebooks(out: Path, names: list[str], notebooks: Path = NOTEBOOKS) -> Path:
    """Write ``out/<stem>.py`` sources made from the student notebooks, for a copy of the course without
    ``solutions/`` (a student release): each answer stub becomes the solution region, and there are no hidden
    tests, so grading with these sources runs the visible tests only. Returns ``out``."""
    import jupytext
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    for stem in names:
        nb = nbformat.read(Path(notebooks) / f"{stem}.ipynb", as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            stub = STUBS.get(cell.cell_type)
            if meta.get("solution") and stub:
                cell.source = stub.sub(r"\1### BEGIN SOLUTION\n\1\2\n\1### END SOLUTION", cell.source, count=1)
        jupytext.write(nb, out / f"{stem}.py", fmt="py:percent")
    return out


def nbgrader(*args: str, root: Path, db: bool = False, timeout: float | None = None, **kw):
    """Run ``nbgrader`` in this environment on the course tree ``root``."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    cmd.append(f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}" if db else "--no-db")
    env = dict(kw.pop("env", None) or os.environ)
    # nbgrader calls the `alembic` command of this environment to set up its gradebook
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def student_notebook(release_path: Path):
    """The release copy, cleaned for git: no outputs, no execution counts, the course kernel."""
    import nbformat

    nb = nbformat.read(release_path, as_version=4)
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def build(out: Path = NOTEBOOKS, root: Path = BUILD, names: list[str] | None = None) -> list[Path]:
    """Build the student notebooks into ``out``; return their paths.

    Only ``root/source/<stem>`` and ``root/release/<stem>`` are remade: the gradebook and the ``submitted``,
    ``autograded`` and ``feedback`` folders of a course in progress are left as they are.
    """
    names = names or stems()
    for stem in names:
        for part in ("source", "release"):
            if (root / part / stem).exists():
                shutil.rmtree(root / part / stem)
    names = write_sources(root, names)
    written = []
    for stem in names:
        res = nbgrader("generate_assignment", stem, "--force", root=root)
        release = root / "release" / stem / f"{stem}.ipynb"
        if res.returncode != 0 or not release.is_file():
            raise RuntimeError(f"nbgrader generate_assignment {stem} failed:\n{res.stdout}\n{res.stderr}")
        nb = student_notebook(release)
        text = "\n".join(c.source for c in nb.cells)
        leaks = [m for m in LEAK_MARKERS if m in text]
        if leaks:
            raise RuntimeError(f"{stem}: the student notebook still holds {leaks}")
        write_notebook(nb, out / f"{stem}.ipynb")
        written.append(out / f"{stem}.ipynb")
    return written


EXERCISE_HEADER = re.compile(r"\*\*Exercise ([0-9.]+) · (.+?)\*\* · difficulty ([1-5])/5 · about (\d+) minutes")


def exercises(stem: str, sources: Path = SOLUTIONS) -> list[dict]:
    """The graded cells of one notebook, in order: ``{"grade_id", "kind", "points", "difficulty", "minutes",
    "title"}``. ``kind`` is ``"exercise"`` (code to write), ``"predict"`` (a "predict, then run" answer,
    grade id ``predict_*``) or ``"question"`` (a manually graded answer, grade id ``q_*``). An exercise's
    difficulty, minutes and title come from the header line in the markdown before it
    (``**Exercise N.M · title** · difficulty D/5 · about M minutes``); ``None`` when it has none."""
    nb = source_notebook(Path(sources) / f"{stem}.py")
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points", 0)
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    found, header = [], None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and not meta:
            match = EXERCISE_HEADER.search(cell.source)
            header = match or header
            continue
        if not meta.get("solution"):
            continue
        gid = meta["grade_id"]
        if cell.cell_type == "markdown":
            found.append({"grade_id": gid, "kind": "question", "points": points.get(gid, 0),
                          "difficulty": None, "minutes": None, "title": cell.source.split("\n")[0][:80]})
            continue
        kind = "predict" if gid.startswith("predict_") else "exercise"
        tests = [g for g in points if g.startswith(gid + "_tests")] or [g for g in points if g.startswith(gid)]
        row = {"grade_id": gid, "kind": kind, "points": sum(points[g] for g in tests),
               "difficulty": None, "minutes": None, "title": None}
        if header is not None:
            row.update(difficulty=int(header.group(3)), minutes=int(header.group(4)), title=header.group(2))
        found.append(row)
        header = None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tools.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("cmd", choices=["build", "exercises"], help="build the notebooks, or list their graded cells")
    parser.add_argument("names", nargs="*", help="stems (default: all)")
    args = parser.parse_args(argv)
    if args.cmd == "exercises":
        difficulties = []
        for stem in args.names or stems():
            for e in exercises(stem):
                if e["kind"] == "exercise" and e["difficulty"] is not None:
                    difficulties.append(e["difficulty"])
                print(f"{stem:28s} {e['kind']:9s} {e['grade_id']:24s} {e['points']:>3g} pts  "
                      f"difficulty {e['difficulty'] or '-'}  {e['minutes'] or '-'} min  {e['title'] or ''}")
        if difficulties:
            print(f"mean difficulty of {len(difficulties)} exercises: {sum(difficulties) / len(difficulties):.2f}")
        return 0
    for path in build(names=args.names or None):
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
