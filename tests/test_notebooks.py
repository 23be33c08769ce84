"""The notebook machinery: the single-source build, execution of every notebook, and autograding.

Notebooks run in small mode (COURSE_SMALL=1, a 1,500-document sub-corpus) with the `embeddings-course` kernel.
Every test that executes a notebook (the student runs, autograding, the self-check) is marked `notebooks`;
the build and inspection tests are not (they execute nothing), so the fast loop still catches a stale notebooks/.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.tools import grading, notebooks
from course_lib.tools.notebooks import LEAK_MARKERS, NOTEBOOKS, REPO_ROOT, stems
from course_lib.tools.sandbox import Limits

STEMS = stems()


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    notebooks.build(out=tmp / "notebooks", root=tmp / "nbgrader")
    return tmp


def test_there_is_a_student_notebook_per_source():
    assert STEMS and sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_committed_notebook_equals_a_fresh_build(stem, fresh_build):
    fresh = (fresh_build / "notebooks" / f"{stem}.ipynb").read_text()
    assert (NOTEBOOKS / f"{stem}.ipynb").read_text() == fresh, "notebooks/ is stale: run `make notebooks`"


@pytest.mark.parametrize("stem", STEMS)
def test_student_notebook_has_no_solutions_hidden_tests_or_outputs(stem):
    text = (NOTEBOOKS / f"{stem}.ipynb").read_text()
    assert not [m for m in LEAK_MARKERS if m in text]
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "embeddings-course"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    ids = notebooks.grade_ids(nb)
    assert len(ids) == len(set(ids)) and sum(1 for c in code if "raise NotImplementedError()" in c.source) >= 3
    md = nb.cells[0]
    assert md.cell_type == "markdown" and all(w in md.source for w in ("learn", "Prerequisites", "Expected time"))


# Every notebook follows the course's conventions (real-API exercises, questions, pictures: issue 17).
REWORKED = STEMS


@pytest.mark.parametrize("stem", REWORKED)
def test_each_exercise_states_difficulty_and_minutes_and_questions_are_asked(stem):
    rows = notebooks.exercises(stem)
    work = [r for r in rows if r["kind"] == "exercise"]
    assert work and all(r["difficulty"] is not None and r["minutes"] for r in work), \
        [r["grade_id"] for r in work if r["difficulty"] is None]
    assert max(r["difficulty"] for r in work) >= 3, "every notebook has an exercise of difficulty 3 or more"
    kinds = [r["kind"] for r in rows]
    assert kinds.count("question") >= 1 and kinds.count("predict") >= 1 and len(rows) - len(work) >= 2
    assert all(r["points"] > 0 for r in rows), [r["grade_id"] for r in rows if not r["points"]]


def test_the_course_is_not_shallow_mean_difficulty_at_least_2_5():
    """Issue 17: the graded exercises of the whole course average at least 2.5 on the 1-5 scale."""
    stated = [r["difficulty"] for stem in STEMS for r in notebooks.exercises(stem) if r["kind"] == "exercise"]
    assert len(stated) >= 20 and None not in stated
    assert sum(stated) / len(stated) >= 2.5, sum(stated) / len(stated)


@pytest.mark.parametrize("stem", REWORKED)
def test_exercises_are_numbered_by_notebook_and_predict_cells_say_what_to_write(stem):
    """Exercise N.M of notebook NN has N == NN, so "Exercise 2.1" names one exercise in the course. A predict cell
    starts from `predicted_x = None`, tells the learner which line to replace, and its test names that variable
    (not a grade id, which learners never see)."""
    headers = [c for c in notebooks.source_notebook(notebooks.SOLUTIONS / f"{stem}.py").cells
               if c.cell_type == "markdown" and notebooks.EXERCISE_HEADER.search(c.source)]
    numbers = [m.group(1) for c in headers for m in notebooks.EXERCISE_HEADER.finditer(c.source)]
    assert numbers and all(n.split(".")[0] == str(int(stem[:2])) for n in numbers), numbers
    assert len(numbers) == len(set(numbers)), numbers
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    gids = [c.metadata.get("nbgrader", {}).get("grade_id", "") for c in nb.cells]
    for i, gid in enumerate(gids):
        if not gid.startswith("predict_") or gid.endswith("_tests"):
            continue
        src = nb.cells[i].source
        var = re.search(r"^(predicted_\w+) = None$", src, re.M)
        assert var and src.index(var.group(0)) < src.rindex("raise NotImplementedError()"), src
        assert f"Replace the line `raise NotImplementedError()` with `{var.group(1)} = <your number>`" in src, src
        test = nb.cells[gids.index(gid + "_tests")].source
        assert f"{var.group(1)} is None" in test and f"set {var.group(1)}" in test and gid not in test, test


def test_a_rebuild_keeps_the_gradebook_and_the_students_work(tmp_path):
    """`make notebooks` mid-course: source/ and release/ are remade, grades and submissions stay."""
    root = tmp_path / "nbgrader"
    kept = {root / "gradebook.db": b"grades", root / "submitted" / "ann" / STEM / f"{STEM}.ipynb": b"ann's work",
            root / "autograded" / "ann" / STEM / f"{STEM}.ipynb": b"graded", root / "feedback" / "ann" / STEM / "f.html": b"fb"}
    for path, data in kept.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    stale = root / "source" / STEM / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an older build")
    notebooks.build(out=tmp_path / "notebooks", root=root, names=[STEM])
    assert {p: p.read_bytes() for p in kept} == kept
    assert not stale.exists() and (root / "release" / STEM / f"{STEM}.ipynb").is_file()


def test_a_repeated_grade_id_fails_the_build(tmp_path):
    src = (notebooks.SOLUTIONS / f"{STEMS[0]}.py").read_text()
    bad = tmp_path / "99_bad.py"
    bad.write_text(src.replace('"grade_id": "rrf_tests"', '"grade_id": "rrf"'))
    with pytest.raises(ValueError, match=r"grade_id repeated: \['rrf'\]"):
        notebooks.source_notebook(bad)


@pytest.mark.notebooks
@pytest.mark.parametrize("stem", STEMS)
def test_student_notebook_fails_only_in_exercises_with_not_implemented(stem, monkeypatch):
    monkeypatch.setenv("COURSE_SMALL", "1")
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="embeddings-course", allow_errors=True, timeout=1200,
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    failed = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.ename)
              for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert failed, "the blank exercises should raise NotImplementedError"
    assert all(gid is not None and ename == "NotImplementedError" for gid, ename in failed), failed
    # a blank notebook earns nothing: every autograded test cell fails (a test that passes on a blank gives points away)
    tests = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution")]
    passing = [c.metadata["nbgrader"]["grade_id"] for c in tests
               if not any(o.output_type == "error" for o in c.outputs)]
    assert tests and not passing, f"these test cells pass on the blank notebook: {passing}"


# ---------------------------------------------------------------------------------------------
# Autograding: one real nbgrader run over a folder of crafted submissions
# ---------------------------------------------------------------------------------------------

STEM = "01_embedding_taxonomy"


def _submission(solution_nb, replace: dict[str, str]):
    """The solution notebook with the cells of the given grade ids replaced by the given code."""
    nb = nbformat.reads(nbformat.writes(solution_nb), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in replace:
            cell.source = replace[gid]
    return nb


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(fresh_build, tmp_path_factory):
    solution = nbformat.read(fresh_build / "nbgrader" / "source" / STEM / f"{STEM}.ipynb", as_version=4)
    subs = tmp_path_factory.mktemp("submissions")
    cases = {
        "solution": _submission(solution, {}),
        "raises": _submission(solution, {"bm25_weight": "def bm25_weight(*args, **kwargs):\n    raise ValueError('oops')"}),
        "loops": _submission(solution, {"cosine_topk": "def cosine_topk(q, c, k):\n    while True:\n        pass"}),
        "edits_tests": _submission(solution, {"rrf": "def reciprocal_rank_fusion(rankings, k=60):\n    return {}",
                                              "rrf_tests": "pass  # tests removed by the student"}),
    }
    for name, nb in cases.items():
        (subs / name).mkdir()
        nbformat.write(nb, subs / name / f"{STEM}.ipynb")
    (subs / "blank" / STEM).mkdir(parents=True)  # the nested layout works too
    (subs / "blank" / STEM / f"{STEM}.ipynb").write_bytes((NOTEBOOKS / f"{STEM}.ipynb").read_bytes())
    files = sorted(subs.rglob("*.ipynb"))
    before = {p: _sha(p) for p in files}
    out = subs.parent / "grades.csv"
    tmp = tmp_path_factory.mktemp("grading")
    rows = grading.grade(subs, out, limits=Limits(cell_timeout=60), root=tmp / "course", scratch=tmp / "scratch",
                         require_sandbox=False)
    return {(r.student, r.exercise): r for r in rows}, before, out, tmp / "course"


def _points(rows, student):
    return {ex: r.points for (s, ex), r in rows.items() if s == student}


def _expected(rows, lost: str | None = None) -> dict[str, float]:
    """The solution's points per exercise, with the exercise ``lost`` at 0 (and the TOTAL to match)."""
    pts = {ex: r.points for (s, ex), r in rows.items() if s == "solution" and ex != "TOTAL"}
    if lost is not None:
        assert lost in pts, lost
        pts[lost] = 0.0
    return {**pts, "TOTAL": sum(pts.values())}


@pytest.mark.notebooks
def test_solution_scores_full_marks_and_blank_scores_zero(graded):
    rows, _, out, _ = graded
    sol = {ex: r for (s, ex), r in rows.items() if s == "solution"}
    manual = {ex for ex, r in sol.items() if r.detail == "to be graded by hand"}
    auto = {ex for ex in sol if ex not in manual and ex != "TOTAL"}
    assert auto and all(sol[ex].points == sol[ex].max_points for ex in auto), {ex: sol[ex].detail for ex in auto}
    assert sol["TOTAL"].points == sum(sol[ex].max_points for ex in auto) and sol["TOTAL"].status == "graded"
    assert all(sol[ex].points == 0 for ex in manual)
    blank = {ex: r for (s, ex), r in rows.items() if s == "blank"}
    assert blank["TOTAL"].points == 0 and blank["TOTAL"].max_points == sol["TOTAL"].max_points
    assert all(blank[ex].detail == "no answer" or "not answered yet" in blank[ex].detail for ex in auto | manual), \
        {ex: r.detail for ex, r in blank.items()}
    assert out.read_text().splitlines()[0] == "student,assignment,exercise,points,max_points,status,detail,flags"


@pytest.mark.notebooks
def test_every_solution_notebook_scores_full_marks_when_graded(fresh_build, tmp_path):
    """Each notebook's solution, graded like a submission (sandbox, hidden tests, small mode): every autograded cell
    earns its points (no failing test, no test cell writing to stderr), the written questions wait for a person,
    and no cell of the executed notebook holds an error.

    This is the suite's one execution of each solution notebook: the grader runs every cell, as nbval would, under
    the sandbox's memory and time limits (`make nbval NB=05` runs one under nbval alone, cell by cell)."""
    subs = tmp_path / "subs" / "solution"
    subs.mkdir(parents=True)
    for stem in STEMS:
        shutil.copyfile(fresh_build / "nbgrader" / "source" / stem / f"{stem}.ipynb", subs / f"{stem}.ipynb")
    rows = grading.grade(tmp_path / "subs", tmp_path / "grades.csv", limits=Limits(cell_timeout=600),
                         root=tmp_path / "course", scratch=tmp_path / "scratch", require_sandbox=False)
    lost = {(r.assignment, r.exercise): r.detail or r.status for r in rows
            if r.exercise != "TOTAL" and r.detail != "to be graded by hand" and r.points < r.max_points}
    assert not lost, lost
    assert {r.assignment for r in rows if r.exercise == "TOTAL" and r.status == "graded"} == set(STEMS)
    assert all(any(r.assignment == stem and r.detail == "to be graded by hand" for r in rows) for stem in STEMS)
    errors = {}
    for stem in STEMS:
        nb = nbformat.read(tmp_path / "course" / "autograded" / "solution" / stem / f"{stem}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{stem} was not executed"
        errors.update({(stem, i): f"{o.ename}: {o.evalue[:300]}" for i, c in enumerate(nb.cells)
                       if c.cell_type == "code" for o in c.outputs if o.output_type == "error"})
    assert not errors, errors


@pytest.mark.notebooks
def test_an_exercise_that_raises_loses_only_its_points(graded):
    rows = graded[0]
    assert _points(rows, "raises") == _expected(rows, "bm25_weight_tests")
    assert "ValueError: oops" in rows[("raises", "bm25_weight_tests")].detail


@pytest.mark.notebooks
def test_an_infinite_loop_is_stopped_and_the_rest_still_graded(graded):
    rows = graded[0]
    assert _points(rows, "loops") == _expected(rows, "cosine_topk_tests")
    assert "cosine_topk was reset to its blank stub" in rows[("loops", "cosine_topk_tests")].detail


@pytest.mark.notebooks
def test_editing_a_locked_test_cell_earns_nothing(graded):
    rows = graded[0]
    assert _points(rows, "edits_tests") == _expected(rows, "rrf_tests")


@pytest.mark.notebooks
def test_the_grader_never_modifies_submissions(graded):
    _, before, _, _ = graded
    assert {p: _sha(p) for p in before} == before


@pytest.mark.notebooks
def test_feedback_pages_are_written_for_every_graded_submission(graded):
    rows, _, _, root = graded
    pages = grading.feedback(root)
    students = {s for s, _ in rows}
    assert {p.parent.parent.name for p in pages} == students and all(p.parent.name == STEM for p in pages), pages
    page = next(p for p in pages if p.parent.parent.name == "solution").read_text()
    assert "cosine_topk_tests" in page and "Score:" in page


@pytest.mark.notebooks
def test_self_check_grades_a_copy_and_leaves_the_learner_file_alone(capsys):
    path = NOTEBOOKS / f"{STEM}.ipynb"
    sha = _sha(path)
    rows = grading.check("01")
    assert _sha(path) == sha
    exercises = {r.exercise for r in rows}
    assert {"bm25_weight_tests", "cosine_topk_tests", "rrf_tests", "TOTAL"} <= exercises
    total = next(r for r in rows if r.exercise == "TOTAL")
    out = capsys.readouterr().out
    assert total.points == 0 and f"0 / {total.max_points:g}" in out
    assert "not answered yet" in out
