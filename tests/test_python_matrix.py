"""The course's packages exist for the Pythons and platforms the README promises, not only for this machine.

`make test` runs the course on Python 3.11, Linux x86_64 (this machine). For the rest of the matrix it checks, with
pip's ``--dry-run --python-version --platform --only-binary=:all:``, that every package of the installed
environment (the pins of pyproject.toml and every package they pulled in, at the versions installed here) has a
wheel for that Python and platform, so a pin without one fails here instead of on a learner's laptop.

What this does not check: packages that only another platform needs (pip evaluates environment markers such as
``platform_system`` on the machine it runs on, not on ``--platform``, so a full resolution for macOS from Linux
would ask for Linux's CUDA packages), and Linux torch's CPU index (the Makefile's ``TORCH_INDEX``), which is
outside the package registry this machine can reach. Python 3.11 elsewhere than Linux is not checked either: the
environment here pins packages as new as its 3.11 patch release allows (soupsieve 4.1 needs 3.11.5 or newer), and
on an older 3.11 pip resolves older versions of them. Needs the package registry (as ``make test``'s install does).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINUX = [f"manylinux_2_{v}_x86_64" for v in (35, 34, 31, 28, 27, 24, 17, 12, 5)] + \
        ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]  # glibc 2.35: Ubuntu 22.04
TARGETS = {
    "3.12 Linux x86_64": ("3.12", LINUX), "3.13 Linux x86_64": ("3.13", LINUX),
    "3.12 macOS arm64": ("3.12", ["macosx_14_0_arm64"]), "3.13 macOS arm64": ("3.13", ["macosx_14_0_arm64"]),
    "3.12 Windows amd64": ("3.12", ["win_amd64"]), "3.13 Windows amd64": ("3.13", ["win_amd64"]),
}
SKIP = {"pip", "setuptools", "wheel", "course-lib"}  # the installer itself, and the course (installed from here)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_pins() -> list[str]:
    """``name==version`` of every package installed in this environment; a local tag (``+cpu``) dropped."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        if name not in SKIP:
            pins[name] = f"{name}=={dist.version.split('+')[0]}"
    return sorted(pins.values())


def test_requires_python_and_the_matrix_agree():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert spec == ">=3.11,<3.14", spec
    check = (ROOT / "course_lib" / "tools" / "python_check.py").read_text()
    assert "SUPPORTED = ((3, 11), (3, 12), (3, 13))" in check
    assert {v for v, _ in TARGETS.values()} | {"3.11"} == {"3.11", "3.12", "3.13"}


def test_the_pins_are_installed_here():
    pins = set(installed_pins())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, version = re.sub(r"\[.*\]", "", req).split("==")
        assert f"{_canonical(name)}=={version}" in pins, f"{req} is pinned but not installed in {sys.prefix}"


def _dry_run(python: str, platforms: list[str], requirements: Path, tmp: Path) -> tuple[int, str, int]:
    report = tmp / f"report-{python}-{platforms[0]}.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
           "--only-binary=:all:", "--python-version", python, "--target", str(tmp / "never-written"),
           "--report", str(report), "-r", str(requirements)]
    for platform in platforms:
        cmd += ["--platform", platform]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    errors = "\n".join(line for line in res.stderr.splitlines() if line.startswith("ERROR"))
    found = len(json.loads(report.read_text())["install"]) if report.exists() else 0
    return res.returncode, errors, found


@pytest.mark.slow
def test_every_installed_package_has_a_wheel_for_python_312_and_313_on_linux_macos_and_windows(tmp_path):
    pins = installed_pins()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    with ThreadPoolExecutor(len(TARGETS)) as pool:
        runs = {name: pool.submit(_dry_run, python, platforms, requirements, tmp_path)
                for name, (python, platforms) in TARGETS.items()}
        results = {name: run.result() for name, run in runs.items()}
    failed = {name: errors or f"exit status {rc}" for name, (rc, errors, found) in results.items()
              if rc != 0 or found != len(pins)}
    assert not failed, f"no wheel for {len(pins)} pinned packages on: {failed}"
