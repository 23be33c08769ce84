"""Hosted runtimes without a network: Binder's set-up and the Colab cell, each in a fresh virtual environment,
from a local clone URL and the local data mirror, then notebook 01 in small mode. Also: the package alone (no
clone) finds its manifest and a data folder of its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.paths import REPO_ROOT
from course_lib.tools import bootstrap
from course_lib.tools.notebooks import NOTEBOOKS, SOLUTIONS, source_notebook, stems
from course_lib.tools.release import tracked_files

MIRROR = REPO_ROOT / "data"  # filled and verified by `make data`; it has the mirror's shape (<name>/files)
STEM = "01_embedding_taxonomy"


def sh(cmd, timeout=1800, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res


def first_code_cell(nb) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code")


# ---------------------------------------------------------------------------------------------------------------
# Fast checks: one Colab cell everywhere, one torch pin, the Binder files in place
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", stems())
def test_every_notebook_starts_with_the_colab_cell_for_the_repository_in_pyproject(stem):
    want = bootstrap.colab_cell(bootstrap.repo_url(REPO_ROOT)).strip()
    for nb in (source_notebook(SOLUTIONS / f"{stem}.py"), nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)):
        assert first_code_cell(nb).strip() == want, (
            f"{stem}: the first code cell is not the Colab cell of course_lib/tools/bootstrap.py "
            "(after changing [project.urls] use `python course_lib/tools/bootstrap.py set-url URL`)")


def test_the_colab_cell_does_nothing_outside_colab():
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_BOOTSTRAP", "COURSE_SMALL")}
    code = bootstrap.colab_cell("file:///nonexistent") + "\nimport os; print(os.getcwd(), os.environ.get('COURSE_SMALL'))"
    out = sh([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, timeout=60).stdout
    assert out.strip() == f"{REPO_ROOT} None"


def test_binder_colab_and_makefile_pin_the_same_torch():
    make = re.search(r"^TORCH\s*:=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(), re.M).group(1)
    binder = (REPO_ROOT / "binder" / "requirements.txt").read_text()
    assert make == bootstrap.dependencies(REPO_ROOT)[0]
    assert re.search(rf"^{re.escape(make)}\+cpu$", binder, re.M), "binder/requirements.txt must pin the CPU build"
    assert re.search(r"^-e \.$", binder, re.M)
    for script in ("postBuild", "start"):
        assert os.access(REPO_ROOT / "binder" / script, os.X_OK), f"binder/{script} must be executable"
    assert (REPO_ROOT / "binder" / "runtime.txt").read_text().strip() in {"python-3.11", "python-3.12", "python-3.13"}


def test_set_url_rewrites_pyproject_readme_and_every_notebook_source(tmp_path):
    for rel in ("pyproject.toml", "README.md", *(f"solutions/{s}.py" for s in stems())):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, tmp_path / rel)
    old = bootstrap.repo_url(tmp_path)
    slug = old.removeprefix("https://github.com/")
    assert f"mybinder.org/v2/gh/{slug}/" in (tmp_path / "README.md").read_text()
    bootstrap.set_url("https://github.com/a-fork/course", home=tmp_path)
    assert bootstrap.repo_url(tmp_path) == "https://github.com/a-fork/course"
    for rel in ("README.md", *(f"solutions/{s}.py" for s in stems())):
        text = (tmp_path / rel).read_text()
        assert slug not in text, rel
    for rel in (f"solutions/{s}.py" for s in stems()):
        assert '"https://github.com/a-fork/course"' in (tmp_path / rel).read_text(), rel
    readme = (tmp_path / "README.md").read_text()
    assert "mybinder.org/v2/gh/a-fork/course/" in readme and "colab.research.google.com/github/a-fork/course/" in readme


# ---------------------------------------------------------------------------------------------------------------
# The package without a clone: the manifest travels with it, data and caches go to per-user folders
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_package_alone_finds_its_manifest_and_fetches_into_a_user_folder(tmp_path):
    site = tmp_path / "site"
    sh([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", site,
        REPO_ROOT], timeout=600)
    assert (site / "course_lib" / "manifest.json").is_file()
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
           "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    env.pop("COURSE_DATA_DIR", None)
    env.pop("COURSE_CACHE_DIR", None)
    sh([sys.executable, "-m", "course_lib.fetch", "scifact", "--mirror", MIRROR], cwd=tmp_path, env=env)
    code = ("import course_lib, course_lib.data as d, course_lib.cache as c; "
            "print(course_lib.__file__); print(d.locate('scifact')); print(c.cache_dir())")
    out = sh([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=120).stdout.split()
    assert out == [str(site / "course_lib" / "__init__.py"),
                   str(tmp_path / "xdg-data" / "embeddings-course" / "data" / "scifact"),
                   str(tmp_path / "xdg-cache" / "embeddings-course")]


# ---------------------------------------------------------------------------------------------------------------
# Binder and Colab, offline: a fresh virtual environment each, a local clone URL, the local data mirror
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A git repository holding this working tree's tracked files: the 'remote' both paths clone."""
    root = tmp_path_factory.mktemp("origin") / "embeddings-course"
    for rel in tracked_files():
        src = REPO_ROOT / rel
        if src.is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    sh(["git", "init", "-q", "-b", "main"], cwd=root, timeout=60)
    sh(["git", "add", "-A"], cwd=root, timeout=60)
    sh(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-q", "-m", "course"],
       cwd=root, timeout=60)
    return root


@pytest.fixture(scope="module")
def course_cache(tmp_path_factory):
    """One course cache for both hosted runs: the first run of notebook 01 starts from it empty (cold) and fills
    it, the second reads the embeddings it already has (they depend on the packaged model's weights and the data,
    the same in both), which saves a small-mode encode of the corpus."""
    return tmp_path_factory.mktemp("hosted-cache")


def fresh_env(tmp: Path, cache: Path) -> tuple[Path, dict]:
    """A new virtual environment (no system site-packages) and an environment for it: its own Jupyter folders,
    the course cache ``cache``, no course settings from outside."""
    venv = tmp / "venv"
    sh([sys.executable, "-m", "venv", venv], timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "JUPYTER", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"), COURSE_CACHE_DIR=str(cache),
               COURSE_DATA_MIRROR=str(MIRROR))
    return venv, env


def run_notebook_01(python: Path, home: Path, out: Path, env: dict, prefix=()) -> dict:
    """Notebook 01 through the workbook runner (the embeddings-course kernel), from the clone at ``home``."""
    sh([*prefix, python, "-m", "course_lib.tools.workbook", "--only", "01", "--out", out], cwd=home, env=env)
    return json.loads((out / "report.json").read_text())


def assert_kernel_is(python: Path, venv: Path, env: dict):
    specs = json.loads(sh([python, "-m", "jupyter", "kernelspec", "list", "--json"], env=env, timeout=120).stdout)
    spec = specs["kernelspecs"]["embeddings-course"]
    assert Path(spec["resource_dir"]).is_relative_to(venv), spec["resource_dir"]
    assert Path(spec["spec"]["argv"][0]).parent == venv / "bin"


@pytest.mark.slow
@pytest.mark.notebooks
def test_binder_set_up_runs_notebook_01_in_small_mode(origin, tmp_path, course_cache):
    venv, env = fresh_env(tmp_path, course_cache)
    home = tmp_path / "binder" / "embeddings-course"
    sh(["git", "clone", "-q", f"file://{origin}", home], timeout=120)
    # repo2docker runs `pip install -r binder/requirements.txt` from the root. Offline, the PyTorch index line
    # is left out: the same +cpu wheel comes from the package indexes this machine has.
    reqs = [ln for ln in (home / "binder" / "requirements.txt").read_text().splitlines()
            if not ln.startswith("--extra-index-url")]
    (tmp_path / "requirements.txt").write_text("\n".join(reqs) + "\n")
    python = venv / "bin" / "python"
    sh([python, "-m", "pip", "install", "--quiet", "-r", tmp_path / "requirements.txt"], cwd=home, env=env)
    assert sh([python, "-c", "import torch; print(torch.__version__)"], env=env).stdout.strip() == "2.13.0+cpu"
    sh([home / "binder" / "postBuild"], cwd=tmp_path, env=env)
    for name in ("scifact", "stsbenchmark"):
        assert (home / "data" / name).is_dir()
    assert_kernel_is(python, venv, env)
    # binder/start wraps every session: small mode unless the user set COURSE_SMALL
    report = run_notebook_01(python, home, tmp_path / "wb", env, prefix=[home / "binder" / "start"])
    assert report["mode"] == "small"
    assert [(n["stem"], n["status"]) for n in report["notebooks"]] == [(STEM, "ok")], report["notebooks"]


@pytest.mark.slow
@pytest.mark.notebooks
def test_colab_cell_sets_up_a_fresh_environment_and_notebook_01_runs_in_small_mode(origin, tmp_path, course_cache):
    venv, env = fresh_env(tmp_path, course_cache)
    python = venv / "bin" / "python"
    # Colab's Python comes with a torch of its own: install one first, as the runtime would have it
    sh([python, "-m", "pip", "install", "--quiet", f"{bootstrap.dependencies(REPO_ROOT)[0]}+cpu"], env=env)
    home = tmp_path / "content" / "embeddings-course"
    env.update(COURSE_BOOTSTRAP="1", COURSE_REPO_URL=f"file://{origin}", COURSE_HOME=str(home))
    cell = first_code_cell(nbformat.read(origin / "notebooks" / f"{STEM}.ipynb", as_version=4))
    after = ("\nimport course_lib, os\nprint(course_lib.__file__)\nprint(os.getcwd())\nprint(os.environ['COURSE_SMALL'])")
    out = sh([python, "-c", cell + after], cwd=tmp_path, env=env).stdout
    assert "keeping it" in out  # the runtime's torch is kept
    assert out.split()[-3:] == [str(home / "course_lib" / "__init__.py"), str(home / "notebooks"), "1"]
    for name in ("scifact", "stsbenchmark"):
        assert (home / "data" / name).is_dir()
    # run again: the clone is updated in place (nothing new), nothing is reinstalled that changes a version
    again = sh([python, "-c", cell], cwd=tmp_path, env=env).stdout
    assert "The course is set up" in again
    # Colab runs the notebook in the kernel that ran the cell; here the kernel is registered as the notebooks name it
    sh([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "embeddings-course"], env=env)
    assert_kernel_is(python, venv, env)
    report = run_notebook_01(python, home, tmp_path / "wb", {**env, "COURSE_SMALL": "1"})
    assert report["mode"] == "small"
    assert [(n["stem"], n["status"]) for n in report["notebooks"]] == [(STEM, "ok")], report["notebooks"]
