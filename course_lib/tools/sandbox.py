"""Run an untrusted command in a throwaway sandbox: one writable folder, limits, and no survivors.

What is enforced depends on what the machine has (:func:`kind` says which):

``"bubblewrap"`` (Linux with the ``bwrap`` command; Debian/Ubuntu package ``bubblewrap``)
    - the whole file system is read-only except ``box`` (``/tmp`` included; give the command ``TMPDIR`` in ``box``);
    - ``hide`` folders (other submissions, the instructor's gradebook) are replaced by empty ones;
    - new PID, IPC, UTS and network namespaces: the command sees only its own processes, has no
      network, and every process it starts, including one that detaches with ``setsid``, is killed
      when the command ends (the kernel kills a PID namespace with its first process);
    - all capabilities are dropped;
    - address-space limit (``RLIMIT_AS``) and a wall-clock limit.
``"none"`` (macOS, Windows, Linux without bubblewrap)
    - only the limits: ``RLIMIT_AS`` where the OS enforces it, the wall-clock limit, and the command's
      process group is killed at the end. Writes outside ``box`` and processes that leave the
      process group are **not** prevented. :mod:`course_lib.tools.grading` refuses to grade other
      people's work this way unless asked to (``--no-sandbox``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

Kind = Literal["bubblewrap", "none"]


@dataclass(frozen=True)
class Limits:
    """Limits for one sandboxed run.

    cell_timeout: seconds a notebook cell may run before the kernel is interrupted;
    wall: seconds the whole run may take before every process in it is killed;
    memory_gb: address space per process (``RLIMIT_AS``), in GiB; a bigger allocation raises ``MemoryError``;
    resets: at most this many cells of one submission are reset to their blank stub and graded again.
    """

    cell_timeout: int = 300
    wall: int = 1800
    memory_gb: float = 8.0
    resets: int = 6

    def __post_init__(self):
        for name in ("cell_timeout", "wall", "resets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "resets" else 1):
                raise ValueError(f"Limits.{name} must be a positive int; got {value!r}")
        if isinstance(self.memory_gb, bool) or not isinstance(self.memory_gb, (int, float)) or not self.memory_gb > 0:
            raise ValueError(f"Limits.memory_gb must be a positive number; got {self.memory_gb!r}")


@dataclass
class Result:
    returncode: int | None  # None when the wall-clock limit killed the run
    seconds: float
    timed_out: bool


@lru_cache(maxsize=1)
def kind() -> Kind:
    """``"bubblewrap"`` when ``bwrap`` is installed and can make namespaces here, else ``"none"``."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "none"
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
                            "--unshare-net", "--die-with-parent", "true"], capture_output=True, timeout=60)
    return "bubblewrap" if probe.returncode == 0 else "none"


def command(argv: list[str], box: Path, hide: list[Path] = (), env: dict[str, str] | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` with only ``box`` writable (bubblewrap only)."""
    box = Path(box).resolve()
    # /tmp stays visible, read-only (a clone, its venv or the data may live there); TMPDIR points into the box
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in hide:
        path = Path(path).resolve()
        if path.is_dir() and path != box and path not in box.parents:
            cmd += ["--tmpfs", str(path)]
    cmd += ["--bind", str(box), str(box),
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--chdir", str(box)]
    for key, value in (env or {}).items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *argv]


def run(argv: list[str], box: Path, limits: Limits, hide: list[Path] = (), env: dict[str, str] | None = None,
        log: Path | None = None, sandbox: Kind | None = None) -> Result:
    """Run ``argv`` in ``box`` under ``limits``; stdout and stderr go to ``log``. Never raises on the command's failure."""
    sandbox = kind() if sandbox is None else sandbox
    box = Path(box).resolve()
    env = dict(env or os.environ)
    memory = int(limits.memory_gb * 2**30)

    def limit():  # in the child, before exec: inherited by everything it starts
        import resource

        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        except (ValueError, OSError):  # macOS does not enforce RLIMIT_AS
            pass
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    full = command(argv, box, hide, env) if sandbox == "bubblewrap" else argv
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    start = time.monotonic()
    try:
        proc = subprocess.Popen(full, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=limit, start_new_session=True)
        try:
            rc = proc.wait(timeout=limits.wall)
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        finally:
            _kill_group(proc)
    finally:
        if log is not None:
            out.close()
    return Result(rc, time.monotonic() - start, timed_out)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the run's process group (and with bubblewrap its PID namespace) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process the kernel cannot kill
        pass
