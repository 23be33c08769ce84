"""`make workbook`: headless execution of notebook sources, progress, executed copies, plots and the report.

Runs two tiny notebooks (seconds); the course's own notebooks run in tests/test_notebooks.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import report, workbook
from course_lib.paths import REPO_ROOT

HEADER = "# %%\n"
OK = '''# %% [markdown]
# # 01 ok

# %%
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display

from course_lib.report import record

record("nDCG@10, toy", 0.61234)
record("size", 1536, "bytes")

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
    res = subprocess.run([sys.executable, "-m", "course_lib.workbook", "--sources", str(src), "--out", str(out),
                          "--cell-timeout", "120"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return res, out


def test_a_failing_notebook_is_named_with_its_cell_and_the_run_exits_non_zero(ran):
    res, out = ran
    assert res.returncode == 1
    assert "[1/2] 01_ok: ok in" in res.stdout and "[2/2] 02_fails: FAILED at cell 3 (grade id broken)" in res.stdout
    assert "ZeroDivisionError" in res.stdout and "FAILED: 02_fails" in res.stderr
    text = (out / "REPORT.md").read_text()
    assert "**02_fails failed** at cell 3 (grade id `broken`), `def f():`: ZeroDivisionError: division by zero" in text
    assert "**1 failed**: 02_fails" in text


def test_the_report_holds_every_recorded_figure_and_the_plots(ran):
    _, out = ran
    text = (out / "REPORT.md").read_text()
    assert "| 01_ok | nDCG@10, toy | 0.6123 |" in text and "| 01_ok | size | 1,536 bytes |" in text
    data = json.loads((out / "report.json").read_text())
    assert data["mode"] in {"small", "full"} and [n["stem"] for n in data["notebooks"]] == ["01_ok", "02_fails"]
    ok = data["notebooks"][0]
    assert ok["status"] == "ok" and [f["name"] for f in ok["figures"]] == ["nDCG@10, toy", "size"]
    assert ok["plots"] == ["01_ok-c003-0.png"] and (out / "figures" / "01_ok-c003-0.png").read_bytes()[:4] == b"\x89PNG"


def test_executed_copies_are_saved_even_for_the_failing_notebook(ran):
    import nbformat

    _, out = ran
    failed = nbformat.read(out / "02_fails.ipynb", as_version=4)
    assert [o.ename for c in failed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"] \
        == ["ZeroDivisionError"]
    assert not failed.cells[-1].outputs  # the run stopped at the failing cell
    assert report.figures_in(nbformat.read(out / "01_ok.ipynb", as_version=4))[0]["value"] == pytest.approx(0.61234)


def test_unknown_notebook_is_refused_with_the_list(tmp_path):
    with pytest.raises(SystemExit):
        workbook.main(["--only", "99", "--out", str(tmp_path)])


def test_record_refuses_what_is_not_a_finite_number(capsys):
    assert report.record("n", 3) == 3 and "n = 3" in capsys.readouterr().out
    with pytest.raises(ValueError, match="finite"):
        report.record("n", float("nan"))
    with pytest.raises(TypeError, match="value of 'n' must be a number"):
        report.record("n", "0.5")
    with pytest.raises(ValueError, match="non-empty"):
        report.record(" ", 1.0)


def test_makefile_has_the_workbook_target():
    mk = (REPO_ROOT / "Makefile").read_text()
    assert "workbook: setup\n\t$(BIN)/python -m course_lib.workbook $(WORKBOOK_ARGS)" in mk
