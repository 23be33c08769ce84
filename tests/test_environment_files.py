"""The set-up files agree with each other: one list of pinned packages, one kernel name, one CI entry."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[\[=<>!~ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["test"]


def environment_requirements() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml must have exactly one pip: section"
    return pip[0]["pip"]


def test_pyproject_and_environment_pin_the_same_packages():
    py = {_name(r): r.replace(" ", "") for r in pyproject_requirements()}
    env = {_name(r): r.replace(" ", "") for r in environment_requirements()}
    assert py == env


def test_every_requirement_is_pinned_exactly():
    for req in pyproject_requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.+]*", req), req


def test_environment_python_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].startswith(">=3.11")


def test_makefile_installs_torch_first_then_project_with_test_extras_and_kernel():
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH\s*:=\s*torch==2\.13\.0$", mk, re.M)  # the pin, installed as a CPU build first
    torch_at = mk.index("$(call INSTALL_TORCH,$(VENV))")
    project_at = mk.index('pip install --quiet -e ".[test]"')
    assert torch_at < project_at
    assert "ipykernel install --sys-prefix --name $(KERNEL)" in mk
    assert re.search(r"^KERNEL\s*:=\s*embeddings-course$", mk, re.M)
    assert "$(LAB_ARGS)" in mk


def test_ci_runs_make_test_and_readme_shows_both_commands():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quickstart"):]
    assert quick.index("make lab") < quick.index("make test") < quick.index("\n## ", 5)


def test_readme_is_short_shaped_for_a_newcomer_and_results_are_impersonal():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160, "the README is for newcomers; measured figures go to docs/RESULTS.md"
    headings = [line[3:].strip().lower() for line in readme.splitlines() if line.startswith("## ")]
    order = [next((i for i, h in enumerate(headings) if h.startswith(want)), -1)
             for want in ("quickstart", "requirements", "your flow as a learner", "troubleshooting")]
    assert -1 not in order and order == sorted(order), headings
    for target in ("docs/RESULTS.md", "docs/INSTRUCTORS.md", "LICENSE", "CITATION.cff"):
        assert f"]({target})" in readme, f"the README does not link {target}"
        assert (ROOT / target).is_file(), target
    results = (ROOT / "docs" / "RESULTS.md").read_text()
    assert not re.search(r"\bissue #?\d", results, re.I), "no development history in docs/RESULTS.md"
    words = re.findall(r"[A-Za-z']+", results)
    assert "I" not in words and "my" not in words and "My" not in words, "docs/RESULTS.md is written impersonally"


def test_data_files_are_ignored_by_git():
    ignore = (ROOT / ".gitignore").read_text().split()
    assert "data/*/" in ignore and ".venv/" in ignore and ".cache/" in ignore


def test_peer_environment_is_pinned_and_kept_out_of_the_course_venv():
    reqs = [line.strip() for line in (ROOT / "benchmarks" / "peers" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert reqs and all("==" in r for r in reqs)
    assert "sentence-transformers==5.3.0" in reqs
    mk = (ROOT / "Makefile").read_text()
    assert '$(PEERS)/bin/python -m pip install --quiet --no-deps "pylate==1.6.0"' in mk
    assert re.search(r"^test: (instructor-only )?setup peers", mk, re.M)
    assert "pylate" not in (ROOT / "pyproject.toml").read_text().lower()


def test_license_and_citation_are_there_and_say_what_they_cover():
    text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in text and "CC BY 4.0" in text and "CC BY-NC 2.0" in text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"] and cff["license"] == "MIT"
    assert {"Fact or Fiction: Verifying Scientific Claims", "Matryoshka Representation Learning"} <= \
        {r["title"] for r in cff["references"]}
    assert "CC BY-NC 2.0" in (ROOT / "docs" / "INSTRUCTORS.md").read_text()
