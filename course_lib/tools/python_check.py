"""Is this Python one the course supports? Run by the Makefile before anything is installed.

``python course_lib/tools/python_check.py`` exits 0 on a supported Python and otherwise prints what to install.
``--venv PATH`` also says (exit status 3) when the virtual environment at PATH was made by another Python or is
half-made, so that the Makefile rebuilds it instead of reusing it. The file runs as a plain script on any Python 3
(it imports nothing from the course), so that an old interpreter gets this message and not a syntax error.
"""

import os
import subprocess
import sys

SUPPORTED = ((3, 11), (3, 12), (3, 13))


def problem(version=None):
    """The refusal for a ``(major, minor)`` version, or ``None`` when it is supported."""
    version = tuple(version or sys.version_info[:2])
    if version in SUPPORTED:
        return None
    names = ", ".join("%d.%d" % v for v in SUPPORTED)
    return ("error: Python %d.%d (%s) is not supported; the course runs on Python %s.\n"
            "  Install one (python.org; Ubuntu: sudo apt install python3.12 python3.12-venv; macOS: brew install "
            "python@3.13)\n  and run make again (it picks the newest it finds), or name it: make test PYTHON=python3.12"
            % (version[0], version[1], sys.executable, names))


def venv_problem(path):
    """Why the virtual environment at ``path`` must be rebuilt, or ``None`` when it can be reused (or is absent)."""
    if not os.path.exists(path):
        return None
    python = os.path.join(path, "Scripts" if os.name == "nt" else "bin", "python")
    if not os.path.exists(python):
        return "%s has no Python in it (a half-made environment)" % path
    try:
        out = subprocess.run([python, "-c", "import sys, pip; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return "%s cannot run its Python (%s)" % (path, exc)
    if out.returncode != 0:
        return "%s has a Python without pip (a half-made environment)" % path
    mine = "%d.%d" % sys.version_info[:2]
    if out.stdout.strip() != mine:
        return "%s was made by Python %s, and this set-up uses Python %s" % (path, out.stdout.strip(), mine)
    return None


def main(argv):
    message = problem()
    if message:
        print(message, file=sys.stderr)
        return 2
    if len(argv) == 2 and argv[0] == "--venv":
        why = venv_problem(argv[1])
        if why:
            print(">>> rebuilding it: " + why)
            return 3
    elif argv:
        print("usage: python_check.py [--venv PATH]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
