"""`make workbook`: headless execution of notebook sources, progress, executed copies, plots and the report.

Runs two tiny notebooks (seconds); the course's own notebooks run in tests/test_notebooks.py. The tests that
start a kernel are marked `notebooks`; the refusal of an unknown notebook and `make -n workbook` start none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from course_lib.tools import report, workbook
from course_lib.tools.notebooks import SOLUTIONS, stems
from course_lib.paths import REPO_ROOT

HEADER = "# %%\n"
OK = '''# %% [markdown]
# # 01 ok

# %%
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display

from course_lib.tools.report import record, record_many

record("nDCG@10, toy", 0.61234)
record("size", 1536, "bytes")
record_many([("table a", 0.5), ("table b", 2.25, "ms")])

# %%
plt.plot([1, 2], [3, 4])
plt.savefig("plot.png")
display(Image(filename="plot.png"))
'''
FAILS = '''# %% [markdown]
# # 02 fails

# %%
x = 1

# %% nbgrader={"grade": false, "grade_id": "broken", "locked": false, "schema_version": 3, "solution": true}
def f():
    ### BEGIN SOLUTION
    return 1 / 0
    ### END SOLUTION


f()

# %%
record_never_reached = 1
'''


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    src = tmp_path_factory.mktemp("sources")
    (src / "01_ok.py").write_text(OK)
    (src / "02_fails.py").write_text(FAILS)
    out = tmp_path_factory.mktemp("workbook")
    res = subprocess.run([sys.executable, "-m", "course_lib.tools.workbook", "--sources", str(src), "--out", str(out),
                          "--cell-timeout", "120"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return res, out


@pytest.mark.notebooks
def test_a_failing_notebook_is_named_with_its_cell_and_the_run_exits_non_zero(ran):
    res, out = ran
    assert res.returncode == 1
    assert "[1/2] 01_ok: ok in" in res.stdout and "[2/2] 02_fails: FAILED at cell 3 (grade id broken)" in res.stdout
    assert "ZeroDivisionError" in res.stdout and "FAILED: 02_fails" in res.stderr
    text = (out / "REPORT.md").read_text()
    assert "**02_fails failed** at cell 3 (grade id `broken`), `def f():`: ZeroDivisionError: division by zero" in text
    assert "**1 failed**: 02_fails" in text


@pytest.mark.notebooks
def test_the_report_holds_every_recorded_figure_and_the_plots(ran):
    _, out = ran
    text = (out / "REPORT.md").read_text()
    assert "| 01_ok | nDCG@10, toy | 0.6123 |" in text and "| 01_ok | size | 1,536 bytes |" in text
    data = json.loads((out / "report.json").read_text())
    assert data["mode"] in {"small", "full"} and [n["stem"] for n in data["notebooks"]] == ["01_ok", "02_fails"]
    ok = data["notebooks"][0]
    assert ok["status"] == "ok" and [f["name"] for f in ok["figures"]] == ["nDCG@10, toy", "size", "table a", "table b"]
    assert "| 01_ok | table b | 2.2500 ms |" in text
    assert ok["plots"] == ["01_ok-c003-0.png"] and (out / "figures" / "01_ok-c003-0.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.notebooks
def test_the_report_gives_each_kernels_peak_memory(ran, tmp_path):
    _, out = ran
    small = json.loads((out / "report.json").read_text())["notebooks"][0]["peak_mb"]
    assert 30 < small < 1500, small  # a kernel with matplotlib loaded
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "01_big.py").write_text("# %%\nimport time\nimport numpy as np\n\n"
                                                "block = np.ones(600 * 2**20 // 8)  # 600 MiB, touched\ntime.sleep(1)\n")
    res = subprocess.run([sys.executable, "-m", "course_lib.tools.workbook", "--sources", str(tmp_path / "src"),
                          "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    big = json.loads((tmp_path / "out" / "report.json").read_text())["notebooks"][0]["peak_mb"]
    assert big >= small + 550, (small, big)
    assert "| 01_big | ok |" in (tmp_path / "out" / "REPORT.md").read_text() and " GiB |" in (tmp_path / "out" / "REPORT.md").read_text()


@pytest.mark.notebooks
def test_executed_copies_are_saved_even_for_the_failing_notebook(ran):
    import nbformat

    _, out = ran
    failed = nbformat.read(out / "02_fails.ipynb", as_version=4)
    assert [o.ename for c in failed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"] \
        == ["ZeroDivisionError"]
    assert not failed.cells[-1].outputs  # the run stopped at the failing cell
    assert report.figures_in(nbformat.read(out / "01_ok.ipynb", as_version=4))[0]["value"] == pytest.approx(0.61234)


def test_unknown_notebook_is_refused_with_the_list(tmp_path, capsys):
    known = stems(SOLUTIONS)
    assert "01_embedding_taxonomy" in known and len(known) > 1
    with pytest.raises(SystemExit) as exc:
        workbook.main(["--only", "01", "99", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no notebook ['99']; the notebooks are " in err, err  # only the unknown one is named as unknown
    listed = err.split("the notebooks are ", 1)[1]
    assert [s for s in known if s not in listed] == [], f"the refusal does not list every notebook: {err}"
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


def test_record_many_shows_one_line_in_a_notebook_and_carries_every_figure(ran):
    import nbformat

    _, out = ran
    nb = nbformat.read(out / "01_ok.ipynb", as_version=4)
    texts = [o["data"]["text/plain"] for o in nb.cells[1].outputs if "data" in o]
    assert texts == ["nDCG@10, toy = 0.6123", "size = 1,536 bytes",
                     "2 figures of the table above recorded for the workbook report"], texts


def test_record_many_checks_every_figure(capsys):
    assert report.record_many([("a", 1), ("b", 2.5, "ms")]) is None
    assert capsys.readouterr().out == "a = 1\nb = 2.5000 ms\n"
    for bad, error, match in [("a", TypeError, "list of"), ([("a",)], TypeError, "tuple"),
                              ([("a", float("inf"))], ValueError, "finite"), ([], ValueError, "empty"),
                              ([("a", "1")], TypeError, "must be a number")]:
        with pytest.raises(error, match=match):
            report.record_many(bad)


def test_record_refuses_what_is_not_a_finite_number(capsys):
    assert report.record("n", 3) == 3 and "n = 3" in capsys.readouterr().out
    with pytest.raises(ValueError, match="finite"):
        report.record("n", float("nan"))
    with pytest.raises(TypeError, match="value of 'n' must be a number"):
        report.record("n", "0.5")
    with pytest.raises(ValueError, match="non-empty"):
        report.record(" ", 1.0)


TINY = '''# %% [markdown]
# # 01 tiny

# %%
from course_lib.tools.report import record

record("answer", 42)
'''


def _make(*args: str, stamp) -> subprocess.CompletedProcess:
    """`make <args>` in the repository, with the set-up stamp pointed at ``stamp``.

    A stamp file that exists stands for a finished set-up (what `make test` has just ensured), so the test never
    re-installs .venv even when pyproject.toml or the Makefile changed since; a missing one makes `make` plan the
    set-up. The variables of an enclosing `make test` (MAKEFLAGS) are not passed down.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    cmd = ["make", "--no-print-directory", *args, f"STAMP={stamp}"]
    with subprocess.Popen(cmd, cwd=REPO_ROOT, env={**env, "COURSE_SMALL": "1"}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # make, the runner and its kernel: nothing keeps running
            proc.communicate()
            pytest.fail(f"`{' '.join(cmd)}` took over 120 s (a tiny notebook takes seconds)")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_make_workbook_sets_up_first_then_runs_the_runner_with_its_args(tmp_path):
    args = f"--only 01 --sources {tmp_path / 'src'} --out {tmp_path / 'out'}"
    res = _make("-n", "workbook", f"WORKBOOK_ARGS={args}", stamp=tmp_path / "no-stamp-yet")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    install = next(i for i, ln in enumerate(lines) if 'pip install --quiet -e ".[test]"' in ln)
    fetch = next(i for i, ln in enumerate(lines) if "-m course_lib.fetch --mirror" in ln)
    runner = lines.index(f".venv/bin/python -m course_lib.tools.workbook {args}")
    assert install < fetch < runner == len(lines) - 1, res.stdout  # the whole `setup`, then the runner
    assert not (tmp_path / "no-stamp-yet").exists() and not (tmp_path / "out").exists()  # -n ran nothing


def _tiny_course(tmp_path):
    """A sources folder with one tiny notebook, and a set-up stamp that says the course is installed."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "01_tiny.py").write_text(TINY)
    (tmp_path / "stamp").touch()


def test_make_workbook_refuses_an_unknown_notebook_with_the_list_and_fails(tmp_path):
    _tiny_course(tmp_path)
    res = _make("workbook", f"WORKBOOK_ARGS=--only 99 --sources {tmp_path / 'src'} --out {tmp_path / 'out'}",
                stamp=tmp_path / "stamp")
    assert res.returncode != 0 and "the notebooks are 01_tiny" in res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.notebooks
def test_make_workbook_runs_the_notebooks_and_writes_the_report(tmp_path):
    _tiny_course(tmp_path)
    res = _make("workbook", f"WORKBOOK_ARGS=--sources {tmp_path / 'src'} --out {tmp_path / 'out'} --cell-timeout 120",
                stamp=tmp_path / "stamp")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[1/1] 01_tiny: ok in" in res.stdout and "workbook: 1/1 notebooks ran" in res.stdout
    assert "| 01_tiny | answer | 42 |" in (tmp_path / "out" / "REPORT.md").read_text()
    assert (tmp_path / "out" / "01_tiny.ipynb").is_file()


def test_quiet_keeps_stdout_stderr_warnings_and_transformers_logging_in(capfd):
    import sys
    import warnings

    import transformers

    from course_lib.tools.output import quiet

    before = transformers.logging.get_verbosity()
    with quiet() as q:
        print("out")
        print("err", file=sys.stderr)
        warnings.warn("a warning")
        transformers.logging.get_logger("transformers").warning("a log line")
        assert transformers.logging.get_verbosity() == transformers.logging.ERROR
    assert q.text == "out\nerr\n"
    assert transformers.logging.get_verbosity() == before
    captured = capfd.readouterr()
    assert captured.out == "" and "a warning" not in captured.err and "a log line" not in captured.err
