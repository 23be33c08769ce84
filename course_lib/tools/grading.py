"""Autograde submissions with nbgrader, each one in a throwaway sandbox.

    python -m course_lib.tools.grading grade SUBMISSIONS [--out grades.csv]   # what `make grade` runs
    python -m course_lib.tools.grading check 01                                # what `make check NB=01` runs

``SUBMISSIONS`` holds one folder per student, each with that student's notebooks
(``<student>/NN_topic.ipynb`` or ``<student>/NN_topic/NN_topic.ipynb``).

How one submission is graded (``grade``):

1. The trusted grader reads the file (never writes it) and checks that it is a notebook.
2. A fresh copy of the assignment's course tree, with its own scratch gradebook, is made for it
   (``build/grading/boxes/<student>/<stem>``), and ``nbgrader autograde`` runs there inside the sandbox of
   :mod:`course_lib.tools.sandbox`: only that copy is writable, other submissions and the instructor's
   gradebook are hidden, every process it starts dies with it, and it has memory and time limits.
3. nbgrader restores every locked cell (tests included) from the instructor's copy, so edited tests earn nothing.
4. A cell that hangs (no reply after ``cell_timeout`` seconds), kills the kernel or takes the whole run past
   ``wall`` seconds is reset to its blank stub in a new copy, and the submission is graded again: only
   that exercise loses its points (at most ``Limits.resets`` times).
5. The trusted grader reads the scores out of the scratch gradebook and writes them, with a copy of the
   submitted and the executed notebook, into the instructor's course tree (``build/nbgrader``: gradebook,
   ``submitted/``, ``autograded/``), then deletes the sandbox.

A submission can still lie about its *own* score from inside its kernel (nbgrader runs the tests in the
student's kernel). Submissions whose code reaches for the machinery (``get_ipython``, ``sys.modules``,
``/proc``, ``subprocess``, ...) are flagged for a person to review: the ``flags`` column of the report.

Grading runs in small mode (``COURSE_SMALL=1``) unless the environment says otherwise: the exercises do
not depend on the corpus size. ``COURSE_KEEP_BOXES=1`` keeps the sandboxes (``grader.log``, ``progress.jsonl``)
for debugging the grader.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.tools import sandbox
from course_lib.tools.notebooks import (BUILD, NOTEBOOKS, REPO_ROOT, SOLUTIONS, nbgrader, sources_from_student_notebooks,
                                       stems, write_sources)
from course_lib.tools.sandbox import Limits

GRADING_ROOT = REPO_ROOT / "build" / "grading"
STUDENT_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
COURSE_ID = "embeddings-course"
MAX_NOTEBOOK_BYTES = 50 * 2**20


def keep_boxes() -> bool:
    """``COURSE_KEEP_BOXES=1`` keeps the sandboxes after grading, to debug the grader (their logs, progress)."""
    return bool(os.environ.get("COURSE_KEEP_BOXES"))

# What a person should look at: code that reaches for the kernel, the grader or files outside its folder.
FLAGS = {
    "get_ipython": r"\bget_ipython\b",
    "sys.modules": r"\bsys\s*\.\s*modules\b",
    "/proc": r"/proc\b",
    "subprocess": r"\bsubprocess\b|\bos\s*\.\s*(system|popen|fork|exec\w*|spawn\w*|kill)\b",
    "os.setsid": r"\bsetsid\b|\bsetpgid\b|\bdaemon\b",
    "ctypes": r"\bctypes\b|\bcffi\b",
    "dynamic import": r"__import__|\bimportlib\b|\bexec\s*\(|\beval\s*\(|\bbuiltins\b",
    "signals": r"\bsignal\s*\.\s*(signal|alarm|setitimer)\b|\bos\s*\.\s*_exit\b|\bsys\s*\.\s*exit\b",
    "files outside its folder": r"""['"](/|~|\.\./)""",
    "grader": r"\bnbgrader\b|gradebook|\bsqlite3?\b",
}


@dataclass
class Row:
    student: str
    assignment: str
    exercise: str
    points: float
    max_points: float
    status: str
    detail: str = ""
    flags: str = ""


@dataclass
class _Attempt:
    scores: dict[str, float | None] | None
    executed: object | None  # the executed notebook (untrusted), or None
    culprit: tuple[str, str] | None  # (cell id, why) when a cell hung or killed the run
    error: str = ""


@dataclass
class _Assignment:
    stem: str
    template: Path  # course tree with source/, release/ and a scratch gradebook, no student in it
    release: object  # the release notebook (trusted)
    max_points: dict[str, float] = field(default_factory=dict)


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


# --------------------------------------------------------------------------------------------- reading


def read_regular_file(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link) of at most ``limit`` bytes, else ``OSError``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise OSError(f"{path} is {info.st_size} bytes, more than the limit of {limit}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def parse_notebook(data: bytes):
    """A validated ``nbformat`` notebook from untrusted bytes; ``ValueError`` names what is wrong."""
    import nbformat

    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - anything wrong with the file is the submission's problem
        raise ValueError(f"not a valid notebook ({type(err).__name__}: {_last_line(str(err))})") from None
    return nb


def flags(nb) -> list[str]:
    """The ``FLAGS`` found in the student-editable code cells of ``nb`` (locked cells are restored anyway)."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "code"
                     and not c.get("metadata", {}).get("nbgrader", {}).get("locked", False))
    return [name for name, pattern in FLAGS.items() if re.search(pattern, text)]


def _last_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:200]


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def errors(nb) -> dict[str, str]:
    """``{grade_id: "ErrorType: last line"}`` for each cell of an executed notebook that raised."""
    found = {}
    for cell in nb.cells:
        gid = _gid(cell)
        if gid is None or cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found[gid] = f"{out.get('ename', 'Error')}: {_last_line(out.get('evalue', ''))}".rstrip(": ")
                if found[gid] == "NotImplementedError":
                    found[gid] += " (not answered yet)"
                break
    return found


# --------------------------------------------------------------------------------------------- course trees


def _gradebook(root: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{root / 'gradebook.db'}", COURSE_ID)


def _prepare(stem: str, template: Path, sources: Path, env: dict) -> _Assignment:
    """The trusted template tree of one assignment: source, release and a gradebook that knows no student."""
    import nbformat

    write_sources(template, [stem], sources=sources)
    res = nbgrader("generate_assignment", stem, "--force", root=template, db=True, env=env)
    release = template / "release" / stem / f"{stem}.ipynb"
    if res.returncode != 0 or not release.is_file():
        raise RuntimeError(f"nbgrader generate_assignment {stem} failed:\n{res.stdout}\n{res.stderr}")
    with _gradebook(template) as gb:
        cells = gb.find_notebook(stem, stem).grade_cells
        max_points = {c.name: float(c.max_score) for c in cells}
    return _Assignment(stem, template, nbformat.read(release, as_version=4), dict(sorted(max_points.items())))


BOX_CONFIG = '''\
"""nbgrader configuration of one sandbox (written by course_lib.tools.grading)."""
import json, os
c = get_config()  # noqa: F821
BOX = {box!r}
c.CourseDirectory.course_id = {course!r}
c.CourseDirectory.root = BOX
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(BOX, "gradebook.db")
c.Execute.timeout = {cell_timeout}
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = {kernel!r}
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}

def _log(event, cell, index):
    with open(os.path.join(BOX, "progress.jsonl"), "a") as fh:
        fh.write(json.dumps({{"event": event, "index": index, "id": cell.get("id")}}) + "\\n")

def on_cell_start(cell, cell_index, **kwargs):
    _log("start", cell, cell_index)

def on_cell_error(cell, cell_index, execute_reply, **kwargs):
    # A cell that did not answer in time: stop here, the grader resets it and grades again.
    if execute_reply.get("content", {{}}).get("ename") == "CellTimeoutError":
        _log("timeout", cell, cell_index)
        os._exit(75)

c.Execute.on_cell_start = on_cell_start
c.Execute.on_cell_error = on_cell_error
'''


def _box_env(box: Path) -> dict[str, str]:
    home = box / "home"
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("COURSE_", "HF_", "TRANSFORMERS_", "OMP_", "MKL_", "LC_")) or k in ("LANG", "TZ")}
    env.update({
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home), "TMPDIR": str(box / "tmp"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"), "MPLCONFIGDIR": str(home / "mpl"), "NUMBA_CACHE_DIR": str(home / "numba"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "PYTHONDONTWRITEBYTECODE": "1", "COURSE_SMALL": os.environ.get("COURSE_SMALL", "1"),
        # the instructor's cache is read, never written: what it lacks is computed in memory, without the
        # warning a failed write would print inside a test cell (nbgrader gives a cell that writes to stderr 0)
        "COURSE_CACHE_READONLY": "1",
    })
    return env


def _attempt(a: _Assignment, student: str, nb, box: Path, limits: Limits, hide: list[Path], kind, kernel: str) -> _Attempt:
    """Grade ``nb`` once in a fresh copy of the template at ``box``."""
    import nbformat

    if box.exists():
        shutil.rmtree(box)
    shutil.copytree(a.template, box, symlinks=True)
    for sub in ("home", "tmp"):
        (box / sub).mkdir()
    (box / "nbgrader_config.py").write_text(BOX_CONFIG.format(
        box=str(box.resolve()), course=COURSE_ID, cell_timeout=limits.cell_timeout, kernel=kernel))
    dest = box / "submitted" / student / a.stem / f"{a.stem}.ipynb"
    dest.parent.mkdir(parents=True)
    nbformat.write(nb, dest)
    argv = [sys.executable, "-m", "nbgrader", "autograde", a.stem, "--force", f"--student={student}"]
    res = sandbox.run(argv, box, limits, hide=hide, env=_box_env(box), log=box / "grader.log", sandbox=kind)

    executed = None
    try:
        executed = parse_notebook(read_regular_file(box / "autograded" / student / a.stem / f"{a.stem}.ipynb"))
    except (OSError, ValueError):
        pass
    culprit = _culprit(box, res)
    scores = None
    if res.returncode == 0 and culprit is None:
        scores = _scores(box, a.stem, student)
    if scores is None and culprit is None:
        log = b""
        try:
            log = read_regular_file(box / "grader.log", limit=2**20)
        except OSError:
            pass
        why = f"the run took longer than {limits.wall} s" if res.timed_out else _last_line(log.decode("utf-8", "replace"))
        return _Attempt(None, executed, None, f"no grades recorded ({why or 'nbgrader failed'})")
    return _Attempt(scores, executed, culprit)


def _culprit(box: Path, res: sandbox.Result) -> tuple[str, str] | None:
    """The cell to blame when the run did not finish: (cell id, why), from the progress log."""
    events = []
    try:
        for line in read_regular_file(box / "progress.jsonl", limit=2**22).decode("utf-8", "replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and isinstance(ev.get("id"), str):
                events.append(ev)
    except OSError:
        pass
    timeouts = [e for e in events if e.get("event") == "timeout"]
    if timeouts:
        return timeouts[0]["id"], "it did not answer within the cell time limit (CellTimeoutError)"
    if res.returncode == 0 or not events:
        return None
    if res.timed_out:
        return events[-1]["id"], "the whole run went past its time limit while this cell ran"
    try:
        log = read_regular_file(box / "grader.log", limit=2**24).decode("utf-8", "replace")[-20000:]
    except OSError:
        log = ""
    if "CellTimeoutError" in log:
        return events[-1]["id"], "it did not answer within the cell time limit (CellTimeoutError)"
    if "DeadKernelError" in log or "Kernel died" in log:
        return events[-1]["id"], "it stopped the kernel (DeadKernelError)"
    return events[-1]["id"], f"the grader stopped while this cell ran (exit status {res.returncode})"


def _scores(box: Path, stem: str, student: str) -> dict[str, float | None] | None:
    """The scores in the sandbox's scratch gradebook, read from a private copy of it (None if unreadable)."""
    try:
        data = read_regular_file(box / "gradebook.db", limit=256 * 2**20)
    except OSError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "gradebook.db").write_bytes(data)
        try:
            with _gradebook(Path(tmp)) as gb:
                nb = gb.find_submission_notebook(stem, stem, student)
                return {g.name: (None if g.auto_score is None else float(g.auto_score)) for g in nb.grades}
        except Exception:  # noqa: BLE001 - MissingEntry, or a damaged scratch gradebook: it scores nothing
            return None


def _reset(nb, a: _Assignment, cell_id: str):
    """``nb`` with the cell to blame for a hang in cell ``cell_id`` reset to its released version; a cell the
    student added is removed. Returns (new notebook, grade id or cell id), or (None, reason) when nothing can be
    reset.

    The cell to blame is ``cell_id`` itself when the student changed it. A cell that runs as released (a locked
    test cell, which nbgrader restores, or an unchanged narrative cell) hung in the student's code that it calls:
    the blame goes to the nearest solution cell before it that the student changed.
    """
    import nbformat

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    index = next((i for i, c in enumerate(nb.cells) if c.get("id") == cell_id), None)
    if index is None:
        return None, f"cell {cell_id} is not in the submission"
    by_gid = {_gid(c): c for c in a.release.cells if _gid(c)}
    by_id = {c.get("id"): c for c in a.release.cells}

    def released(cell):
        return by_gid.get(_gid(cell)) if _gid(cell) else by_id.get(cell.get("id"))

    def meta(cell):
        return (released(cell) or {}).get("metadata", {}).get("nbgrader", {})

    def as_released(cell):
        m = meta(cell)
        return bool(m.get("locked") or (m.get("grade") and not m.get("solution"))) or (
            released(cell) is not None and released(cell).source == cell.source)

    if as_released(nb.cells[index]):
        hung = nb.cells[index]
        index = next((i for i in range(index - 1, -1, -1)
                      if meta(nb.cells[i]).get("solution") and not as_released(nb.cells[i])), None)
        if index is None:
            return None, f"{_gid(hung) or 'cell ' + str(hung.get('id'))} hangs as released and no answer before it changed"
    cell = nb.cells[index]
    name = _gid(cell) or f"cell {cell.get('id')}"
    if released(cell) is None:
        del nb.cells[index]
        return nb, name
    cell.source = released(cell).source
    if cell.cell_type == "code":
        cell.outputs = []
    return nb, name


def _owner(a: _Assignment) -> dict[str, str]:
    """``{solution or cell name: first test grade id after it}``: where a reset is reported."""
    owner, pending = {}, []
    for c in a.release.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            pending.append(_gid(c))
        elif meta.get("grade") and pending:
            for gid in pending:
                owner[gid] = _gid(c)
            pending = []
    return owner


def _record(root: Path, stem: str, student: str, scores: dict[str, float | None], original: bytes, executed) -> None:
    """Carry one student's scores into the instructor's gradebook, with copies of the two notebooks."""
    import warnings

    import nbformat

    with warnings.catch_warnings(), _gradebook(root) as gb:
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's add_submission, harmless
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(stem, student)
        for nb in sub.notebooks:
            for g in nb.grades:
                if g.name in scores:
                    g.auto_score = scores[g.name]
                    g.needs_manual_grade = g.manual_score is not None or g.auto_score is None
        gb.db.commit()
    folder = root / "submitted" / student / stem
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.ipynb").write_bytes(original)
    if executed is not None:
        folder = root / "autograded" / student / stem
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(executed, folder / f"{stem}.ipynb")


def grade_one(a: _Assignment, student: str, original: bytes, box: Path, limits: Limits, hide: list[Path], kind,
              kernel: str = "embeddings-course") -> tuple[list[Row], dict[str, float | None] | None, object]:
    """Grade one submission (its bytes); return its rows, its scores (None if none) and the executed notebook."""
    try:
        nb = parse_notebook(original)
    except ValueError as err:
        return _zero_rows(a, student, f"error: {err}"), None, None
    found_flags = ", ".join(flags(nb))
    resets: dict[str, str] = {}
    attempt = None
    for _ in range(limits.resets + 1):
        attempt = _attempt(a, student, nb, box, limits, hide, kind, kernel)
        if attempt.culprit is None:
            break
        if len(resets) >= limits.resets:
            attempt = _Attempt(None, attempt.executed, None, f"more than {limits.resets} cells hung")
            break
        new, name = _reset(nb, a, attempt.culprit[0])
        if new is None:
            attempt = _Attempt(None, attempt.executed, None, f"a cell could not be reset: {name}")
            break
        nb, resets[name] = new, attempt.culprit[1]
    if not keep_boxes():
        shutil.rmtree(box, ignore_errors=True)
    if attempt.scores is None:
        return _zero_rows(a, student, f"error: {attempt.error}", found_flags), None, attempt.executed

    raised = errors(attempt.executed) if attempt.executed is not None else {}
    owner = _owner(a)
    details = {gid: msg for gid, msg in raised.items() if gid in a.max_points}
    for solution, test in owner.items():  # the exercise's own error explains its test's failure
        if solution in raised and test in a.max_points:
            details[test] = f"{solution} raised {raised[solution]}" + (f"; then {details[test]}" if test in details else "")
    for name, why in resets.items():
        test = owner.get(name)
        note = f"{name} was reset to its blank stub: {why}"
        if test in details or test in a.max_points:
            details[test] = note + (f"; then {details[test]}" if test in details else "")
        else:
            details["TOTAL"] = (details.get("TOTAL", "") + "; " if "TOTAL" in details else "") + note
    manual = {_gid(c) for c in a.release.cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("solution")}
    rows, pending = [], 0.0
    for name, mx in a.max_points.items():
        pts = attempt.scores.get(name)
        if name in manual:  # nbgrader: None = answered, waits for a person; 0 = left blank
            detail = "to be graded by hand" if pts is None else ("no answer" if pts == 0 else "")
            pending += mx if pts is None else 0.0
        else:
            detail = details.get(name, "") if (pts or 0) < mx else ""
        rows.append(Row(student, a.stem, name, 0.0 if pts is None else pts, mx, "graded", detail, found_flags))
    total = sum(r.points for r in rows)
    note = "; ".join(x for x in (details.get("TOTAL", ""), f"{pending:g} point{'' if pending == 1 else 's'} to be graded by hand" if pending else "") if x)
    rows.append(Row(student, a.stem, "TOTAL", total, sum(a.max_points.values()), "graded", note, found_flags))
    return rows, attempt.scores, attempt.executed


def _zero_rows(a: _Assignment, student: str, status: str, found_flags: str = "") -> list[Row]:
    rows = [Row(student, a.stem, name, 0.0, mx, status, "", found_flags) for name, mx in a.max_points.items()]
    rows.append(Row(student, a.stem, "TOTAL", 0.0, sum(a.max_points.values()), status, "", found_flags))
    return rows


def grade(submissions: Path, out: Path | None = None, *, limits: Limits = Limits(), root: Path = BUILD,
          scratch: Path = GRADING_ROOT, sources: Path = SOLUTIONS, names: list[str] | None = None,
          require_sandbox: bool = True, kernel: str = "embeddings-course") -> list[Row]:
    """Autograde every submission under ``submissions`` into the course tree ``root`` (its gradebook,
    ``submitted/`` and ``autograded/``); write ``out`` (CSV) and return the rows.

    ``scratch`` holds the templates and the sandboxes (deleted and remade on each call); ``sources`` the
    ``NN_topic.py`` sources. Without bubblewrap the run refuses unless ``require_sandbox=False``.
    """
    kind = sandbox.kind()
    if kind != "bubblewrap" and require_sandbox:
        raise RuntimeError("bubblewrap (the bwrap command) is not available, so student code could write outside its "
                           "sandbox. Install it (Debian/Ubuntu: apt install bubblewrap), or grade anyway with --no-sandbox "
                           "(see docs/INSTRUCTORS.md: what is enforced without it)")
    submissions, root, scratch = Path(submissions).resolve(), Path(root).resolve(), Path(scratch).resolve()
    names = names or stems(sources)
    found = collect(submissions, names)
    if scratch.exists():
        shutil.rmtree(scratch)
    env = {**os.environ, "COURSE_SMALL": os.environ.get("COURSE_SMALL", "1")}
    hide = [submissions, root, scratch]
    rows: list[Row] = []
    for stem in sorted({s for subs in found.values() for s in subs}):
        a = _prepare(stem, scratch / "templates" / stem, sources, env)
        # the instructor's tree: the assignment in its gradebook (grades already there are kept)
        write_sources(root, [stem], sources=sources)
        res = nbgrader("generate_assignment", stem, "--force", root=root, db=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {stem} failed in {root}:\n{res.stdout}\n{res.stderr}")
        for student, subs in sorted(found.items()):
            if stem not in subs:
                continue
            try:
                original = read_regular_file(subs[stem])
            except OSError as err:
                rows += _zero_rows(a, student, f"error: cannot read the submission ({err})")
                continue
            got, scores, executed = grade_one(a, student, original, scratch / "boxes" / student / stem, limits, hide,
                                              kind, kernel)
            rows += got
            if scores is not None:
                _record(root, stem, student, scores, original, executed)
    if not keep_boxes():
        shutil.rmtree(scratch, ignore_errors=True)
    if out is not None:
        write_csv(rows, out)
    return rows


def write_csv(rows: list[Row], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "assignment", "exercise", "points", "max_points", "status", "detail", "flags"])
        for r in rows:
            w.writerow([r.student, r.assignment, r.exercise, r.points, r.max_points, r.status, r.detail, r.flags])


def feedback(root: Path = BUILD) -> list[Path]:
    """nbgrader's feedback (one HTML page per student and notebook) for every autograded submission in the course
    tree ``root``, under ``root/feedback/<student>/<stem>/``; returns the pages. Manually graded answers carry the
    points given in the formgrader, so run it after grading those."""
    root = Path(root).resolve()
    if not (root / "autograded").is_dir():
        raise FileNotFoundError(f"nothing autograded in {root}: run `make grade SUBMISSIONS=...` first")
    for stem in sorted({p.name for p in (root / "autograded").glob("*/*") if p.is_dir()}):
        res = nbgrader("generate_feedback", stem, "--force", root=root, db=True)
        if res.returncode != 0:
            raise RuntimeError(f"nbgrader generate_feedback {stem} failed in {root}:\n{res.stdout[-2000:]}\n"
                               f"{res.stderr[-2000:]}")
    return sorted((root / "feedback").glob("*/*/*.html"))


def check(nb: str, limits: Limits = Limits(cell_timeout=300)) -> list[Row]:
    """Grade the learner's own ``notebooks/<NN>_*.ipynb`` on a copy and print the points per exercise."""
    matches = sorted(NOTEBOOKS.glob(f"{nb}*.ipynb")) if nb else []
    if len(matches) != 1:
        raise FileNotFoundError(f"NB={nb!r} must name exactly one notebook in notebooks/ (e.g. NB=01), found {matches}")
    stem = matches[0].stem
    student_copy = not (SOLUTIONS / f"{stem}.py").is_file()  # a student release has no solutions/
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "subs" / "me").mkdir(parents=True)
        shutil.copyfile(matches[0], Path(tmp) / "subs" / "me" / f"{stem}.ipynb")
        sources = sources_from_student_notebooks(Path(tmp) / "sources", [stem]) if student_copy else SOLUTIONS
        rows = grade(Path(tmp) / "subs", limits=limits, root=Path(tmp) / "course", scratch=Path(tmp) / "scratch",
                     sources=sources, names=[stem], require_sandbox=False)
    print(f"{stem}: points per exercise (your file was not modified)")
    if student_copy:
        print("  (this copy of the course has the visible tests only: your instructor's grading also runs hidden ones)")
    for r in rows:
        line = f"  {r.exercise:24s} {r.points:g} / {r.max_points:g}"
        if r.status != "graded":
            line += f"   [{r.status}]"
        elif r.detail:
            line += f"   {r.detail}"
        print(line)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.tools.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grade", help="autograde a folder of submissions into build/nbgrader")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "grades.csv")
    g.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell (default 300)")
    g.add_argument("--wall", type=int, default=1800, help="seconds per submission run (default 1800)")
    g.add_argument("--memory-gb", type=float, default=8.0, help="address space per process in GiB (default 8)")
    g.add_argument("--no-sandbox", action="store_true", help="grade even without bubblewrap (see docs/INSTRUCTORS.md)")
    sub.add_parser("feedback", help="nbgrader's feedback pages for every autograded submission in build/nbgrader")
    c = sub.add_parser("check", help="grade your own notebook (a copy of it)")
    c.add_argument("nb", help="notebook number, e.g. 01")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "grade":
            limits = Limits(cell_timeout=args.cell_timeout, wall=args.wall, memory_gb=args.memory_gb)
            rows = grade(args.submissions, args.out, limits=limits, require_sandbox=not args.no_sandbox)
            for r in rows:
                if r.exercise == "TOTAL":
                    print(f"{r.student:20s} {r.assignment:28s} {r.points:g} / {r.max_points:g}  {r.status}"
                          + (f"  FLAGGED: {r.flags}" if r.flags else ""))
            print(f"wrote {args.out}; scores are in {BUILD / 'gradebook.db'}")
        elif args.cmd == "feedback":
            pages = feedback()
            print(f"wrote {len(pages)} feedback pages under {BUILD / 'feedback'} (one per student and notebook); "
                  f"return them with `nbgrader release_feedback` or as files")
        else:
            check(args.nb)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
