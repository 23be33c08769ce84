"""The student release: a copy of the course without answers, in which a learner's `make check` still works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.paths import REPO_ROOT
from course_lib.tools import release
from course_lib.tools.notebooks import LEAK_MARKERS


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("release") / "course"
    files = release.student_release(dest)
    return dest, files


def test_the_copy_leaves_out_solutions_tests_and_rubrics_and_keeps_the_rest(copy):
    dest, files = copy
    for gone in ("solutions", "tests", ".ci", "CONTRIBUTING.md", "docs/INSTRUCTORS.md"):
        assert not (dest / gone).exists(), gone
    for kept in ("Makefile", "pyproject.toml", "README.md", "LICENSE", "course_lib/tools/grading.py",
                 "course_lib/manifest.json", "nbgrader_config.py", "notebooks/01_embedding_taxonomy.ipynb"):
        assert (dest / kept).is_file(), kept
    assert sorted(p.name for p in (dest / "notebooks").glob("*.ipynb")) == \
        sorted(p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
    text = "".join((dest / f).read_text(errors="replace") for f in files if f.endswith((".ipynb", ".md")))
    assert not [m for m in LEAK_MARKERS if m in text]
    log = subprocess.run(["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1  # a git repository with one commit, ready to push


def test_the_copy_never_overwrites_and_refuses_a_notebook_with_an_answer(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("a learner's file")
    with pytest.raises(FileExistsError, match="not empty"):
        release.student_release(tmp_path / "full")
    assert (tmp_path / "full" / "mine.txt").read_text() == "a learner's file"
    nb = nbformat.read(REPO_ROOT / "notebooks" / "01_embedding_taxonomy.ipynb", as_version=4)
    nb.cells[3].source += "\n### BEGIN SOLUTION\nanswer\n### END SOLUTION"
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    with pytest.raises(ValueError, match="cell 4 holds the marker 'BEGIN SOLUTION'"):
        release.check_student_notebook(bad)


def test_in_the_copy_instructor_targets_say_so(copy):
    dest, _ = copy
    res = subprocess.run(["make", "-s", "test"], cwd=dest, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "student copy of the course" in res.stdout + res.stderr


@pytest.mark.notebooks
def test_make_check_in_the_copy_grades_a_blank_notebook_with_the_visible_tests(copy):
    """`make check NB=01` in the student copy. It runs with this test's environment as it is (VENV=, and STAMP= a
    file that exists, so that make installs nothing into it) and takes the data from this checkout's data/."""
    dest, _ = copy
    env = {**os.environ, "COURSE_SMALL": "1", "PYTHONPATH": str(dest)}
    env.pop("COURSE_DATA_DIR", None)
    res = subprocess.run(["make", "check", "NB=01", f"VENV={sys.prefix}", f"STAMP={Path(sys.prefix) / 'pyvenv.cfg'}",
                          f"DATA_MIRROR={REPO_ROOT / 'data'}"],
                         cwd=dest, capture_output=True, text=True, timeout=1500, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert (dest / "data" / "scifact" / "corpus.jsonl").is_file()  # `make data` ran in the copy
    assert "01_embedding_taxonomy: points per exercise (your file was not modified)" in out
    assert "visible tests only" in out and "no answer" in out, out[-3000:]
    total = next(line for line in out.splitlines() if line.strip().startswith("TOTAL"))
    assert total.split()[1] == "0", total  # a blank notebook earns nothing
    where = subprocess.run([sys.executable, "-c", "import course_lib; print(course_lib.__file__)"],
                           cwd=dest, env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(dest)), where  # the copy's library was the one graded with
