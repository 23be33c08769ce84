"""The grader against hostile submissions, and grades that survive a rebuild.

A tiny assignment (tests/grading_course/90_tiny.py: three exercises worth 2, 3 and 1 points, plain Python) is
graded for a cohort of submissions that attack the grader, the gradebook and each other, the way a student
could: each payload replaces one solution cell. The checks:

- every honest student scores in the cohort exactly what they score graded alone;
- an exercise that raises, hangs (even ignoring interrupts), kills the kernel or runs out of memory costs
  only its own points, and the report names the cell, the error type and its last line;
- no file outside the sandbox changes (the repository, the submissions, marker files the payloads try to
  write), and no process a submission started outlives the grading;
- submissions that reach for the machinery are flagged.

The sandbox needs bubblewrap; without it these tests skip, unless COURSE_REQUIRE_SANDBOX=1 (CI sets it), where
they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import grading, notebooks, sandbox
from course_lib.tools.notebooks import REPO_ROOT
from course_lib.tools.sandbox import Limits

COURSE = Path(__file__).parent / "grading_course"
STEM = "90_tiny"
TOKEN = "hostile-survivor-7f3a"
MARKERS = [Path("/tmp/hostile-marker-7f3a"), REPO_ROOT / "build" / "hostile-marker-7f3a", REPO_ROOT / "HACKED-7f3a"]
LIMITS = Limits(cell_timeout=8, wall=180, memory_gb=3.0, resets=3)

needs_sandbox = pytest.mark.skipif(
    sandbox.kind() != "bubblewrap" and os.environ.get("COURSE_REQUIRE_SANDBOX") != "1",
    reason="bubblewrap (bwrap) is not installed: the sandbox cannot be tested here")

# Each payload is the code of one solution cell; most still define the function, to show that the attack,
# not a missing answer, is what is being tested.
WALK = '''
import os
from pathlib import Path
def _walk(top, depth=6):
    top = str(top)
    base = top.rstrip("/").count("/")
    for root, dirs, files in os.walk(top):
        if root.count("/") - base >= depth:
            dirs[:] = []
        for f in files:
            yield Path(root) / f
def _roots():
    roots = [Path.cwd(), *list(Path.cwd().parents)[:6], Path("/tmp")]
    try:
        from course_lib.paths import REPO_ROOT
        roots += [REPO_ROOT / "build", REPO_ROOT]
    except Exception:
        pass
    return roots
'''

PAYLOADS = {
    # rewrite the stored source of the locked test cells and the grades in every gradebook it can reach
    "b_tamper_db": ("add", WALK + '''
import sqlite3
for r in _roots():
    for db in _walk(r, 4):
        if db.name.endswith(".db"):
            try:
                con = sqlite3.connect(db)
                con.execute("UPDATE source_cell SET source = 'assert False'")
                con.execute("UPDATE grade SET auto_score = 100")
                con.commit()
            except Exception:
                pass
def add(a, b):
    return a + b
'''),
    # a detached process (its own session) that tries to outlive the grader and rewrite grades later
    "c_detach": ("add", '''
import subprocess, sys
survivor = """
import sqlite3, sys, time
from pathlib import Path
for _ in range(120):
    time.sleep(0.5)
    for p in [Path('/tmp/hostile-marker-7f3a'), Path.cwd().parents[3] / 'hostile-marker-7f3a']:
        try:
            p.write_text('still alive')
        except Exception:
            pass
"""
subprocess.Popen([sys.executable, "-c", survivor, "hostile-survivor-7f3a"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
def add(a, b):
    return a + b
'''),
    # find the other submissions (via /proc/<pid>/cmdline and the folders around it) and overwrite them
    "d_snoop": ("add", WALK + '''
import json
mine = str(Path.cwd())
dirs = set()
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        except Exception:
            continue
        for a in args:
            a = a.decode(errors="ignore")
            if a.startswith("/") and os.path.isdir(a):
                dirs.add(a)
for r in [*map(Path, dirs), *_roots()]:
    for f in _walk(r, 5):
        if f.suffix == ".ipynb" and "d_snoop" not in str(f) and "/notebooks/" not in str(f):
            try:
                f.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
            except Exception:
                pass
def add(a, b):
    return a + b
'''),
    # delete the grader's configuration and drop files into the course tree
    "e_delete": ("add", '''
import os
from pathlib import Path
from course_lib.paths import REPO_ROOT
for p in [REPO_ROOT / "nbgrader_config.py", *[q / "nbgrader_config.py" for q in Path.cwd().parents]]:
    try:
        os.remove(p)
    except Exception:
        pass
for p in [REPO_ROOT / "HACKED-7f3a", REPO_ROOT / "build" / "hostile-marker-7f3a", Path("/tmp/hostile-marker-7f3a")]:
    try:
        p.write_text("x")
    except Exception:
        pass
def add(a, b):
    return a + b
'''),
    "f_loop": ("hypot", "while True:\n    pass"),
    "g_hang": ("hypot", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
    "h_sysexit": ("add", "import sys\nsys.exit(0)"),
    "i_osexit": ("mean", "import os\nos._exit(1)"),
    "l_memory": ("hypot", "hog = bytearray(8 * 2**30)\ndef hypot(a, b):\n    return (a * a + b * b) ** 0.5"),
    "l2_memory": ("mean", "hog = []\nwhile True:\n    hog.append(bytearray(2**26))"),
    "o_loop_in_tests": ("hypot", "def hypot(a, b):\n    while True:\n        pass"),
    "p_loop_in_narrative": ("mean", "def mean(xs):\n    while True:\n        pass"),
    "n_raises": ("add", "def add(a, b):\n    raise ValueError('the student raised this on purpose')"),
    # lies about its own score from inside the kernel: turns every assert of the tests into a no-op
    "m_liar": ("add", '''
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: [l for l in lines if not l.lstrip().startswith("assert")])
def add(a, b):
    return 0
'''),
}


def _with(nb, grade_id: str, code: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    hit = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    assert hit, grade_id
    hit[0].source = code
    return nb


def _write(folder: Path, student: str, nb=None, raw: bytes | None = None) -> None:
    (folder / student).mkdir(parents=True)
    path = folder / student / f"{STEM}.ipynb"
    if raw is not None:
        path.write_bytes(raw)
    else:
        nbformat.write(nb, path)


def _sha_tree(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _repo_state() -> dict:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    files = [REPO_ROOT / f for f in tracked.decode().split("\0") if f]
    others = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout
    return {"tracked": _sha_tree(files), "untracked": sorted(others.split()),
            "top": sorted(os.listdir(REPO_ROOT)), "build": sorted(os.listdir(REPO_ROOT / "build"))}


def _points(rows, student):
    return {r.exercise: r.points for r in rows if r.student == student}


def _alive(pattern: str) -> list[str]:
    res = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [ln for ln in res.stdout.splitlines() if "pgrep" not in ln]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    for m in MARKERS:
        m.unlink(missing_ok=True)
    tmp = tmp_path_factory.mktemp("hostile")
    solution = notebooks.source_notebook(COURSE / f"{STEM}.py")
    # the blank release copy, as a learner receives it
    rel_root = tmp / "release_tree"
    notebooks.write_sources(rel_root, [STEM], sources=COURSE)
    res = notebooks.nbgrader("generate_assignment", STEM, "--force", root=rel_root)
    assert res.returncode == 0, res.stderr
    blank = nbformat.read(rel_root / "release" / STEM / f"{STEM}.ipynb", as_version=4)

    alone = {}
    for student in ("a_good", "z_good"):
        subs = tmp / f"alone_{student}"
        _write(subs, student, solution)
        rows = grading.grade(subs, limits=LIMITS, root=tmp / f"course_{student}", scratch=tmp / "scratch_alone",
                             sources=COURSE)
        alone[student] = _points(rows, student)

    subs = tmp / "submissions"
    _write(subs, "a_good", solution)
    _write(subs, "z_good", solution)
    _write(subs, "y_blank", blank)
    for student, (gid, code) in PAYLOADS.items():
        _write(subs, student, _with(solution, gid, code))
    edited = _with(_with(solution, "add", "def add(a, b):\n    return 0"), "add_tests", "pass  # the student removed the tests")
    _write(subs, "j_edit", edited)
    _write(subs, "k_json", raw=b'{"cells": [ this is not json')

    files = sorted(subs.rglob("*"))
    before = {"subs": _sha_tree(files), "listing": sorted(map(str, files)), "repo": _repo_state()}
    start = time.monotonic()
    root = tmp / "course"
    rows = grading.grade(subs, tmp / "grades.csv", limits=LIMITS, root=root, scratch=tmp / "scratch", sources=COURSE)
    seconds = time.monotonic() - start
    time.sleep(2)  # give a survivor the time to show itself
    files = sorted(subs.rglob("*"))
    after = {"subs": _sha_tree(files), "listing": sorted(map(str, files)), "repo": _repo_state()}
    return {"rows": rows, "alone": alone, "before": before, "after": after, "root": root, "tmp": tmp,
            "seconds": seconds, "csv": tmp / "grades.csv"}


pytestmark = [pytest.mark.notebooks, needs_sandbox]


def test_honest_students_score_what_they_score_alone(cohort):
    rows = cohort["rows"]
    for student in ("a_good", "z_good"):
        assert cohort["alone"][student] == {"add_tests": 2, "hypot_tests": 3, "mean_tests": 1, "why_mean": 0, "TOTAL": 6}
        assert _points(rows, student) == cohort["alone"][student], student
    assert _points(rows, "y_blank")["TOTAL"] == 0
    manual = {r.student: r.detail for r in rows if r.exercise == "why_mean"}
    assert manual["a_good"] == "to be graded by hand" and manual["y_blank"] == "no answer"
    assert next(r.detail for r in rows if r.student == "a_good" and r.exercise == "TOTAL") == "1 point to be graded by hand"


@pytest.mark.parametrize("student, lost, error", [
    ("f_loop", "hypot_tests", "reset to its blank stub"),
    ("g_hang", "hypot_tests", "reset to its blank stub"),
    ("h_sysexit", "add_tests", "NameError"),
    ("i_osexit", "mean_tests", "DeadKernelError"),
    ("l_memory", "hypot_tests", "MemoryError"),
    ("l2_memory", "mean_tests", "MemoryError"),
    ("n_raises", "add_tests", "ValueError: the student raised this on purpose"),
    ("o_loop_in_tests", "hypot_tests", "hypot was reset to its blank stub"),
    ("p_loop_in_narrative", "mean_tests", "mean was reset to its blank stub"),
    ("j_edit", "add_tests", "AssertionError"),
])
def test_a_failing_exercise_costs_only_its_points_and_is_named(cohort, student, lost, error):
    rows = [r for r in cohort["rows"] if r.student == student]
    full = {"add_tests": 2, "hypot_tests": 3, "mean_tests": 1}
    expected = {**full, lost: 0}
    assert {r.exercise: r.points for r in rows if r.exercise not in ("TOTAL", "why_mean")} == expected
    assert all(r.status == "graded" for r in rows)
    detail = next(r.detail for r in rows if r.exercise == lost)
    assert error in detail, detail


def test_an_invalid_notebook_scores_zero_with_a_reason(cohort):
    rows = [r for r in cohort["rows"] if r.student == "k_json"]
    assert rows and all(r.points == 0 for r in rows)
    assert all(r.status.startswith("error: not a valid notebook") for r in rows)


def test_no_file_outside_the_sandbox_changed(cohort):
    before, after = cohort["before"], cohort["after"]
    assert after["subs"] == before["subs"] and after["listing"] == before["listing"]
    assert [m for m in MARKERS if m.exists()] == []
    for key in ("top", "build", "untracked", "tracked"):  # run alone: a concurrent edit of the repository fails it
        assert after["repo"][key] == before["repo"][key], key


def test_no_process_outlives_the_grading(cohort):
    assert _alive(TOKEN) == []
    assert _alive(str(cohort["tmp"] / "scratch")) == []
    assert not (cohort["tmp"] / "scratch").exists()


def test_the_instructor_gradebook_holds_exactly_the_reported_scores(cohort):
    from nbgrader.api import Gradebook

    rows = cohort["rows"]
    with Gradebook(f"sqlite:///{cohort['root'] / 'gradebook.db'}") as gb:
        sources = {c.name: c.source for c in gb.find_notebook(STEM, STEM).source_cells}
        stored = {}
        for student in {r.student for r in rows if r.status == "graded"}:
            nb = gb.find_submission_notebook(STEM, STEM, student)
            stored[student] = {g.name: g.score for g in nb.grades}
    assert all("assert False" not in s for s in sources.values())
    for r in rows:
        if r.status == "graded" and r.exercise != "TOTAL":
            assert stored[r.student][r.exercise] == r.points, (r.student, r.exercise)
    # the submitted copies are kept for review, byte for byte
    sub = cohort["root"] / "submitted" / "n_raises" / STEM / f"{STEM}.ipynb"
    assert sub.read_bytes() == (cohort["tmp"] / "submissions" / "n_raises" / f"{STEM}.ipynb").read_bytes()
    assert (cohort["root"] / "autograded" / "n_raises" / STEM / f"{STEM}.ipynb").is_file()


def test_submissions_that_reach_for_the_machinery_are_flagged(cohort):
    flagged = {r.student: r.flags for r in cohort["rows"] if r.exercise == "TOTAL"}
    assert "get_ipython" in flagged["m_liar"]
    assert "subprocess" in flagged["c_detach"] and "os.setsid" not in flagged["a_good"]
    assert "/proc" in flagged["d_snoop"]
    assert "grader" in flagged["b_tamper_db"]
    assert flagged["a_good"] == flagged["z_good"] == flagged["y_blank"] == ""
    header = cohort["csv"].read_text().splitlines()[0]
    assert header == "student,assignment,exercise,points,max_points,status,detail,flags"


def test_a_lying_kernel_is_not_caught_only_flagged(cohort):
    """The documented hole: nbgrader runs the tests in the student's kernel, which can disable them."""
    rows = [r for r in cohort["rows"] if r.student == "m_liar"]
    assert next(r.points for r in rows if r.exercise == "TOTAL") == 6  # add() returns 0, yet full marks
    assert "get_ipython" in rows[0].flags


def test_the_sandbox_reads_the_cache_and_never_writes_it(tmp_path, monkeypatch):
    """A missing cache entry is computed in memory without the warning a failed write prints: inside a test cell
    that warning (stderr) would cost the student the cell's points."""
    monkeypatch.setenv("COURSE_CACHE_READONLY", "0")
    env = grading._box_env(tmp_path)
    assert env["COURSE_CACHE_READONLY"] == "1" and env["TMPDIR"] == str(tmp_path / "tmp")
