"""Run the whole workbook headless: every solution notebook, in order, then one report.

    python -m course_lib.tools.workbook                 # what `make workbook` runs: full mode
    COURSE_SMALL=1 python -m course_lib.tools.workbook  # small mode (a quick run)
    python -m course_lib.tools.workbook --only 05 08    # some notebooks

Each notebook is built from ``solutions/NN_topic.py`` (solutions and hidden tests included) and executed
with the ``embeddings-course`` kernel. Written under ``build/workbook/`` (``--out``):

- ``NN_topic.ipynb``: the executed copy (also when it failed, up to the failing cell);
- ``figures/NN_topic-cCCC-K.png``: every plot (K-th image of cell CCC, counted from 1 with markdown cells);
- ``REPORT.md`` (copied to ``build/REPORT.md``) and ``report.json``: mode, device, commit, cache state,
  time per notebook, and every figure the notebooks recorded with :func:`course_lib.tools.report.record`.

A failing notebook is named with its cell (index, grade id, first line) and the error; the remaining
notebooks still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_lib.cache import cache_dir
from course_lib.paths import REPO_ROOT, small_mode
from course_lib.tools.report import figures_in, format_value

KERNEL = "embeddings-course"
DEFAULT_OUT = REPO_ROOT / "build" / "workbook"
SLOW_CELL_S = 30.0  # cells slower than this get a progress line of their own


@dataclass
class NotebookResult:
    stem: str
    status: str  # "ok" or "failed"
    seconds: float
    cells: int
    figures: list[dict] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    error: dict | None = None
    peak_mb: float | None = None  # the kernel's peak resident memory (sampled every 0.2 s), MiB


class _PeakMemory:
    """Sample the resident memory of this process's children (the notebook's kernel) in a thread; keep the peak."""

    def __init__(self, every_s: float = 0.2):
        import threading

        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # exited between the listing and the read
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float | None:
        return round(self.peak / 2**20) if self.peak else None


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("# NBVAL")]
    return lines[0].strip()[:100] if lines else ""


def _error_of(nb, index: int | None, err: BaseException) -> dict:
    """Where and why a notebook failed: the cell's number (1-based, markdown cells counted), grade id, first line
    and the error."""
    cell = nb.cells[index] if index is not None and 0 <= index < len(nb.cells) else None
    lines = str(err).strip().splitlines()
    ename, evalue = type(err).__name__, lines[-1] if lines else ""
    if cell is not None:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                ename, evalue = out.get("ename", ename), out.get("evalue", "")
    return {"cell": None if index is None else index + 1, "grade_id": (cell.metadata.get("nbgrader", {}).get("grade_id") if cell else None),
            "first_line": _first_line(cell.source) if cell else "", "ename": ename, "evalue": evalue[:300]}


def _save_plots(nb, stem: str, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, cell in enumerate(nb.cells):
        k = 0
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = out.get("data", {}).get("image/png")
            if png:
                path = folder / f"{stem}-c{index + 1:03d}-{k}.png"
                path.write_bytes(base64.b64decode(png))
                paths.append(path.name)
                k += 1
    return paths


def run_notebook(nb, stem: str, out: Path, cell_timeout: int, log=print) -> NotebookResult:
    """Execute one notebook in ``out`` (its working folder); save the executed copy and its plots."""
    import nbformat
    from nbclient import NotebookClient

    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    state = {"index": None, "start": 0.0}

    def on_start(cell, cell_index):
        state["index"], state["start"] = cell_index, time.perf_counter()

    def on_done(cell, cell_index, execute_reply):
        seconds = time.perf_counter() - state["start"]
        if seconds > SLOW_CELL_S:
            log(f"    cell {code.index(cell_index) + 1}/{len(code)} ({_first_line(cell.source)[:60]}): {seconds:.0f} s")

    client = NotebookClient(nb, kernel_name=KERNEL, timeout=cell_timeout, allow_errors=False,
                            resources={"metadata": {"path": str(out)}},
                            on_cell_start=on_start, on_cell_executed=on_done)
    start = time.perf_counter()
    error = None
    with _PeakMemory() as memory:
        try:
            client.execute()
        except Exception as err:  # CellExecutionError, CellTimeoutError, DeadKernelError, ...
            error = _error_of(nb, state["index"], err)
    seconds = time.perf_counter() - start
    nbformat.write(nb, out / f"{stem}.ipynb")
    return NotebookResult(stem=stem, status="failed" if error else "ok", seconds=round(seconds, 1),
                          cells=len(code), figures=figures_in(nb), plots=_save_plots(nb, stem, out / "figures"),
                          error=error, peak_mb=memory.mb)


def _cache_state() -> dict:
    root = cache_dir()
    files = [p for sub in ("embeddings", "models") for p in (root / sub).rglob("*") if p.is_file()]
    return {"dir": str(root), "files": len(files), "mb": round(sum(p.stat().st_size for p in files) / 2**20),
            "cold": not files}


def _environment() -> dict:
    from course_lib.config import pick_device

    device, reason = pick_device()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = (commit + ("+uncommitted changes" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"device": device, "device_reason": reason, "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "commit": commit}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


def write_report(results: list[NotebookResult], meta: dict, out: Path) -> Path:
    """Write ``out/REPORT.md`` and ``out/report.json``; copy the report to ``build/REPORT.md``."""
    total = sum(r.seconds for r in results)
    failed = [r for r in results if r.status != "ok"]
    cache = meta["cache_before"]
    lines = [
        "# Workbook report", "",
        f"- run: {meta['started']}, {meta['mode']} mode, device {meta['env']['device']} "
        f"({meta['env']['device_reason']}), {meta['env']['cpus']} CPUs, Python {meta['env']['python']}",
        f"- commit: {meta['env']['commit']}",
        f"- cache at the start: {'empty (a cold run)' if cache['cold'] else 'warm'}: {cache['files']} files, "
        f"{cache['mb']} MB in {cache['dir']}",
        f"- total: {_minutes(total)} for {len(results)} notebooks; "
        + (f"**{len(failed)} failed**: {', '.join(r.stem for r in failed)}" if failed else "all ran without error"),
        "", "## Notebooks", "", "Peak memory: the kernel's resident memory, sampled every 0.2 s.", "",
        "| notebook | status | time | peak memory | code cells | figures | plots |", "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        memory = f"{r.peak_mb / 1024:.1f} GiB" if r.peak_mb else "n/a"
        lines.append(f"| {r.stem} | {r.status} | {_minutes(r.seconds)} | {memory} | {r.cells} | {len(r.figures)} | "
                     f"{len(r.plots)} |")
    for r in failed:
        e = r.error
        lines += ["", f"**{r.stem} failed** at cell {e['cell']}"
                  + (f" (grade id `{e['grade_id']}`)" if e["grade_id"] else "")
                  + f", `{e['first_line']}`: {e['ename']}: {e['evalue']}"]
    lines += ["", "## Measured figures", "",
              "Every figure the notebooks recorded (`course_lib.tools.report.record`), in the order they were measured.", "",
              "| notebook | figure | value |", "|---|---|---|"]
    for r in results:
        for f in r.figures:
            lines.append(f"| {r.stem} | {f['name']} | {format_value(f['value'], f['unit'])} |")
    lines += ["", "## Plots", ""]
    lines += [f"- [{p}](figures/{p})" for r in results for p in r.plots] or ["(none)"]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "REPORT.md").write_text(text)
    (out / "report.json").write_text(json.dumps({**meta, "total_seconds": round(total, 1),
                                                 "notebooks": [asdict(r) for r in results]}, indent=1))
    top = REPO_ROOT / "build" / "REPORT.md"
    if out.resolve().parent == top.parent.resolve():
        top.write_text(text.replace("](figures/", f"]({out.name}/figures/"))
    return out / "REPORT.md"


def run(stems_: list[str], out: Path = DEFAULT_OUT, small: bool | None = None, cell_timeout: int = 3600,
        log=print, sources: Path | None = None) -> list[NotebookResult]:
    """Execute the given notebooks (``sources/<stem>.py``, default ``solutions/``) in order into ``out``.

    Writes the report after every notebook; returns the results.
    """
    from course_lib.tools.notebooks import SOLUTIONS, source_notebook

    sources = Path(sources or SOLUTIONS)
    small = small_mode() if small is None else small
    os.environ["COURSE_SMALL"] = "1" if small else "0"  # the kernels inherit it
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "mode": "small" if small else "full",
            "env": _environment(), "cache_before": _cache_state()}
    log(f"workbook: {len(stems_)} notebooks, {meta['mode']} mode, device {meta['env']['device']}, cache "
        f"{'empty (cold)' if meta['cache_before']['cold'] else 'warm'} -> {out}")
    results: list[NotebookResult] = []
    for n, stem in enumerate(stems_, 1):
        nb = source_notebook(sources / f"{stem}.py")
        log(f"[{n}/{len(stems_)}] {stem}: running {sum(c.cell_type == 'code' for c in nb.cells)} code cells")
        res = run_notebook(nb, stem, out, cell_timeout, log=log)
        results.append(res)
        if res.error:
            e = res.error
            log(f"[{n}/{len(stems_)}] {stem}: FAILED at cell {e['cell']}"
                + (f" (grade id {e['grade_id']})" if e["grade_id"] else "")
                + f" `{e['first_line']}`: {e['ename']}: {e['evalue']}")
        else:
            log(f"[{n}/{len(stems_)}] {stem}: ok in {_minutes(res.seconds)}, {len(res.figures)} figures, "
                f"{len(res.plots)} plots")
        write_report(results, meta, out)  # after every notebook: an interrupted run keeps what it measured
    return results


def main(argv: list[str] | None = None) -> int:
    from course_lib.tools.notebooks import SOLUTIONS, stems

    parser = argparse.ArgumentParser(prog="python -m course_lib.tools.workbook", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or stems (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/workbook)")
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    parser.add_argument("--sources", type=Path, default=SOLUTIONS,
                        help="folder of NN_topic.py notebook sources (default: solutions/)")
    args = parser.parse_args(argv)
    all_stems = stems(args.sources)
    if not all_stems:
        parser.error(f"no NN_topic.py notebook sources in {args.sources}")
    chosen = all_stems
    if args.only:
        chosen = [s for s in all_stems if any(s == o or s.startswith(f"{o}_") for o in args.only)]
        unknown = [o for o in args.only if not any(s == o or s.startswith(f"{o}_") for s in all_stems)]
        if unknown:
            parser.error(f"no notebook {unknown}; the notebooks are {', '.join(all_stems)}")
    results = run(chosen, out=args.out, cell_timeout=args.cell_timeout, sources=args.sources)
    total = sum(r.seconds for r in results)
    failed = [r.stem for r in results if r.status != "ok"]
    print(f"workbook: {len(results) - len(failed)}/{len(results)} notebooks ran in {_minutes(total)}; "
          f"report: {args.out / 'REPORT.md'}")
    if failed:
        print(f"workbook: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
