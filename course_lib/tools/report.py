"""Measured figures, tagged so that `make workbook` can collect every one of them into ``build/REPORT.md``.

A notebook calls :func:`record` where it measures something. In Jupyter the figure is shown as one line
of text and also carried, machine-readable, in the cell's output (MIME type :data:`FIGURE_MIME`);
outside IPython it is printed. After a table that already shows its numbers, :func:`record_many` tags them all
with one line of output. :func:`figures_in` reads them back from an executed notebook.
"""

from __future__ import annotations

import math

FIGURE_MIME = "application/vnd.embeddings-course.figure+json"


def format_value(value: float, unit: str) -> str:
    """A figure as the report writes it: 4 decimals for scores, thousands separators for large counts."""
    value = float(value)
    if unit == "%":
        return f"{value:.2f}%"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        text = f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.3g}"
    elif float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{text} {unit}".rstrip()


def _figure(name: str, value, unit: str) -> dict:
    """One figure checked: a non-empty name, a finite number, a str unit."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if not isinstance(unit, str):
        raise TypeError(f"unit must be a str, got {type(unit).__name__}")
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value of {name!r} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"value of {name!r} must be finite, got {number}")
    return {"name": name, "value": number, "unit": unit}


def _line(figure: dict) -> str:
    return f"{figure['name']} = {format_value(figure['value'], figure['unit'])}"


def _show(payload, text: str, printed: str | None = None) -> None:
    """In IPython: one output with ``text`` and the machine-readable payload; elsewhere: print ``printed``
    (default ``text``)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the course
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({FIGURE_MIME: payload, "text/plain": text}, raw=True)
    else:
        print(text if printed is None else printed)


def record(name: str, value: float, unit: str = "") -> float:
    """Show a measured figure and tag it for the workbook report; returns ``value``.

    Parameters
    ----------
    name : str
        What was measured, e.g. ``"nDCG@10, dense fp32"``.
    value : float
        The measurement (a finite number).
    unit : str
        ``"ms"``, ``"bytes"``, ``"%"``, ``"s"`` ... or ``""`` for a score.

    Examples
    --------
    >>> record("nDCG@10, dense", 0.64512)
    nDCG@10, dense = 0.6451
    0.64512
    """
    figure = _figure(name, value, unit)
    _show(figure, _line(figure))
    return value


def record_many(figures, what: str = "the table above") -> None:
    """Tag many figures for the workbook report with one line of output (and no return value to echo).

    Use it after a table that already shows the numbers, so that an interactive session does not print each of
    them a second time. Outside IPython every figure is printed, one per line.

    Parameters
    ----------
    figures : iterable of (name, value) or (name, value, unit)
        The measurements, checked as :func:`record` checks one.
    what : str
        Where the reader sees the numbers, for the one line shown.

    Examples
    --------
    >>> record_many([("nDCG@10, dense", 0.645), ("size", 1536, "bytes")])
    nDCG@10, dense = 0.6450
    size = 1,536 bytes
    """
    if isinstance(figures, (str, bytes, dict)):
        raise TypeError(f"figures must be a list of (name, value[, unit]) tuples, got {type(figures).__name__}")
    checked = []
    for item in figures:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise TypeError(f"each figure must be a (name, value) or (name, value, unit) tuple, got {item!r}")
        checked.append(_figure(*item) if len(item) == 3 else _figure(*item, ""))
    if not checked:
        raise ValueError("figures is empty: nothing to record")
    _show(checked, f"{len(checked)} figures of {what} recorded for the workbook report",
          printed="\n".join(_line(f) for f in checked))


def figures_in(nb) -> list[dict]:
    """The recorded figures of an executed notebook, in order: ``{"name", "value", "unit", "cell"}`` (cell from 1)."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            payload = out.get("data", {}).get(FIGURE_MIME)
            for figure in payload if isinstance(payload, list) else [payload] if payload is not None else []:
                found.append({**figure, "cell": index + 1})
    return found
