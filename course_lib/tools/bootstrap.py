"""Set the course up in a hosted runtime: Google Colab (every notebook's first code cell) and Binder (``binder/``).

It runs as a plain script with the standard library only, before the course is installed::

    python course_lib/tools/bootstrap.py colab [--home DIR]   # Colab: update the clone, install the course, fetch the data
    python course_lib/tools/bootstrap.py binder               # Binder's postBuild: fetch the data, register the kernel
    python course_lib/tools/bootstrap.py cell                 # print the Colab cell every notebook starts with
    python course_lib/tools/bootstrap.py set-url URL          # a fork or a new home: point the cell and links at URL

- **Colab.** The notebook's first code cell clones the repository named in ``pyproject.toml``
  (``[project.urls] Repository``, or ``$COURSE_REPO_URL``) into ``/content/embeddings-course`` and runs
  ``colab`` here: the clone is updated (``git pull --ff-only``; a clone with local changes is left as it is),
  the course is installed editable with its pinned dependencies except torch where one is already installed
  (Colab's own build, CUDA on a GPU runtime, is kept), and the data are fetched and verified. The cell does
  nothing outside Colab unless ``COURSE_BOOTSTRAP=1`` (how ``tests/test_hosted.py`` runs it). Hosted runs use
  small mode unless ``COURSE_SMALL=0`` is set before the cell.
- **Binder.** ``binder/requirements.txt`` installs the CPU build of torch and the course; ``binder/postBuild``
  runs ``binder`` here (data, and the ``embeddings-course`` Jupyter kernel the notebooks name);
  ``binder/start`` sets small mode.

The data come from ``$COURSE_DATA_MIRROR`` (a folder holding ``scifact/`` and ``stsbenchmark/``) when it is set,
else from the upstream archives; either way every file is checked against its sha256 before it is used.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_HOME = HERE.parents[2]  # the clone this file belongs to
COLAB_HOME = "/content/embeddings-course"
KERNEL = "embeddings-course"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
URL_PATTERN = re.compile(r'^Repository\s*=\s*"([^"]+)"', re.M)


def repo_url(home=DEFAULT_HOME):
    """The repository's public URL, from ``pyproject.toml`` (``[project.urls] Repository``)."""
    found = URL_PATTERN.search((Path(home) / "pyproject.toml").read_text(encoding="utf-8"))
    if not found:
        raise SystemExit("error: pyproject.toml has no [project.urls] Repository = \"...\" line")
    return found.group(1)


def colab_cell(url):
    """The text of the first code cell of every notebook (jupytext percent source, without the ``# %%`` line)."""
    return f'''# extra code: sets the course up when this notebook runs on Google Colab
# (clone, install, data: 3-5 minutes the first time); it does nothing elsewhere. Small mode there unless COURSE_SMALL=0.
import os, subprocess, sys
if "google.colab" in sys.modules or os.environ.get("COURSE_BOOTSTRAP") == "1":
    HOME = os.environ.get("COURSE_HOME", "{COLAB_HOME}")
    URL = os.environ.get("COURSE_REPO_URL", "{url}")
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth=1", URL, HOME], check=True)
    subprocess.run([sys.executable, HOME + "/course_lib/tools/bootstrap.py", "colab", "--home", HOME,
                    "--loaded", ",".join(sorted(sys.modules))], check=True)
    sys.path.insert(0, HOME); os.chdir(HOME + "/notebooks"); os.environ.setdefault("COURSE_SMALL", "1")
'''


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


def pip(*args):
    return run([sys.executable, "-m", "pip", "install", "--quiet", *args])


def torch_version():
    """The installed torch's version, or None (asked in a child process: importing torch here would pin it)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def install_torch(pin):
    """The pinned torch (``pin``, e.g. ``torch==2.13.0``), as the Makefile installs it: the CPU build on Linux,
    tried from the known indexes first."""
    wheel = pin + "+cpu" if platform.system() == "Linux" else pin
    if pip(wheel).returncode != 0 and pip(wheel, "--extra-index-url", TORCH_CPU_INDEX).returncode != 0:
        raise SystemExit(f"error: could not install {wheel}; see the README, 'Troubleshooting'")


def dependencies(home=DEFAULT_HOME):
    """The course's pinned dependencies from ``pyproject.toml``, as ``(torch pin, the others)``."""
    import tomllib

    with open(Path(home) / "pyproject.toml", "rb") as fh:
        deps = list(tomllib.load(fh)["project"]["dependencies"])
    torch = [d for d in deps if re.match(r"torch\b", d)]
    return torch[0], [d for d in deps if d not in torch]


def installed_versions(names):
    """``{distribution: version}`` for the distributions that provide the top-level modules ``names``."""
    from importlib import metadata

    dists = metadata.packages_distributions()
    out = {}
    for name in names:
        for dist in dists.get(name, []):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return out


def update_clone(home):
    """``git pull --ff-only`` in a clean clone; a clone with local changes, or no network, is used as it is."""
    dirty = subprocess.run(["git", "-C", str(home), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    if dirty.returncode != 0:
        print(f"note: {home} is not a git clone; using it as it is")
    elif dirty.stdout.strip():
        print(f"note: {home} has local changes; not updating it (git -C {home} status shows them)")
    elif run(["git", "-C", home, "pull", "--ff-only", "--quiet"]).returncode != 0:
        print(f"note: could not update {home}; using the copy there")


def fetch_data(home):
    mirror = os.environ.get("COURSE_DATA_MIRROR")
    cmd = [sys.executable, "-m", "course_lib.fetch"] + (["--mirror", mirror] if mirror else [])
    if run(cmd, cwd=home).returncode != 0:
        raise SystemExit("error: the data could not be fetched and verified (the message above says why)")


def colab(home, loaded):
    """Update the clone, install the course and its dependencies (keeping an installed torch), fetch the data."""
    home = Path(home).resolve()
    update_clone(home)
    top_level = sorted({m.split(".")[0] for m in loaded if m})
    before = installed_versions(top_level)
    torch_pin, deps = dependencies(home)
    have = torch_version()
    if have:
        print(f"torch {have} is installed; keeping it (the course pins {torch_pin}, the build it was measured with)")
    else:
        install_torch(torch_pin)
    if pip("--no-deps", "-e", home).returncode != 0 or pip(*deps).returncode != 0:
        raise SystemExit("error: installing the course failed (pip's message above says why)")
    fetch_data(home)
    changed = sorted(d for d, v in installed_versions(top_level).items() if before.get(d, v) != v)
    if changed:
        print(f"\nThis session had already imported packages that were just replaced ({', '.join(changed)}).\n"
              "Restart the session (Colab: Runtime > Restart session), then run this notebook from the top.")
        return 3
    print(f"\nThe course is set up in {home}.")
    return 0


def binder(home):
    """Binder's postBuild: fetch and verify the data, register the kernel the notebooks name."""
    home = Path(home).resolve()
    fetch_data(home)
    if run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
            "--display-name", "Python (embeddings-course)"]).returncode != 0:
        raise SystemExit("error: registering the Jupyter kernel failed")
    return 0


GITHUB = re.compile(r"^https://github\.com/([^/\s]+/[^/\s]+?)(?:\.git)?/?$")


def set_url(new, home=DEFAULT_HOME):
    """Point pyproject.toml, the README's links and every notebook source's Colab cell at ``new``.

    The README's Binder and Colab links name the GitHub ``owner/name`` (``.../gh/owner/name/...``,
    ``.../github/owner/name/...``): they follow when both URLs are on GitHub, and a note says so otherwise.
    """
    home = Path(home)
    old = repo_url(home)
    pairs = [(old, new)]
    old_gh, new_gh = GITHUB.match(old), GITHUB.match(new)
    if old_gh and new_gh:
        pairs += [(f"{kind}/{old_gh.group(1)}/", f"{kind}/{new_gh.group(1)}/") for kind in ("gh", "github")]
    elif old_gh:
        print(f"note: {new} is not a GitHub URL; the README's Binder and Colab links need editing by hand")
    files = [home / "pyproject.toml", home / "README.md", *sorted((home / "solutions").glob("*.py"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        changed = text
        for a, b in pairs:
            changed = changed.replace(a, b)
        if changed != text:
            path.write_text(changed, encoding="utf-8")
            print(f"updated {path.relative_to(home)}")
    print("now run `make notebooks` to rebuild the student notebooks")
    return 0


def _python_check():
    """``course_lib/tools/python_check.py`` (the Makefile's check of the Python version), loaded by its path: this
    file runs as a script, before the course is installed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("python_check", HERE.with_name("python_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("colab", help="update the clone, install the course, fetch the data")
    p.add_argument("--home", default=str(DEFAULT_HOME), help="the clone (default: the one this file is in)")
    p.add_argument("--loaded", default="", help="comma-separated modules the calling kernel has imported")
    p = sub.add_parser("binder", help="Binder's postBuild: data and the Jupyter kernel")
    p.add_argument("--home", default=str(DEFAULT_HOME))
    sub.add_parser("cell", help="print the Colab cell")
    p = sub.add_parser("set-url", help="point the Colab cell and the links at another repository URL")
    p.add_argument("url")
    args = parser.parse_args(argv)
    refusal = _python_check().problem()
    if refusal:
        raise SystemExit(refusal)
    if args.command == "colab":
        return colab(args.home, args.loaded.split(","))
    if args.command == "binder":
        return binder(args.home)
    if args.command == "cell":
        print(colab_cell(repo_url()), end="")
        return 0
    return set_url(args.url)


if __name__ == "__main__":
    sys.exit(main())
