"""The one input contract of course_lib: every public function checks its arguments here, first.

Bad input gets a ``TypeError`` (wrong kind of object: a list where an array is expected, an int dtype where
a float one is, a bare string where a sequence of texts is) or a ``ValueError`` (right kind, wrong value:
a shape, NaN, a ``k`` out of range), and the message names the argument, what was expected and what was
given, e.g. ``corpus_emb must be 2-D (rows, dims), got shape (3,)``. Never a silent wrong answer. The rules:

**Arrays.** An array argument must be a ``numpy.ndarray`` (lists are refused, not converted) of the stated
dtype family, number of dimensions and non-empty shape; arguments that must agree (query and corpus dims,
a mask and its array) are checked against each other; and floats must be finite (NaN and inf refused, with
the position of the first one). Where only part of a large array is read (the rows of a shortlist) only
that part is checked, and where a product is the cheapest check (a corpus scanned through its scores) a
non-finite result is diagnosed: a NaN or inf in the input is reported as such, a finite input whose
product overflows is reported as an overflow, never as "NaN in corpus_emb".

**k.** ``k``, the number of results a function returns per query (``topk``, ``hamming_topk``, ``rescore``,
``binary_search``, ``funnel_search``, ``rank_maxsim``, ``evaluate_dense``, ``ndcg_by_dim``,
``Retrieval.depth``, ...), must be an ``int`` (NumPy ints accepted; ``bool``, floats and strings refused) in
``[1, n]``, where ``n`` is the size of what is ranked (the corpus, or the shortlist); anything else is a
``ValueError`` naming ``n``. Never clamped: a function returns exactly ``k`` columns or refuses. Where a
default depth is ``None`` it means "100, or the whole collection when it is smaller" (a default, not a
clamp of what the caller asked for). A *cut-off* that only reads the first entries of a ranking (metrics'
``k_values``, ``rrf``'s ``depth``, a rescoring shortlist ``k * multiplier``, ``mine_hard_negatives``'
``range_max``) must be a positive ``int`` too, and may exceed the ranking's length: it then reads the whole
ranking, as trec_eval's cut-offs do. Every other count (``bits``, ``dim``, ``batch_size``, ``epochs`` ...)
is an ``int`` (or number) in a stated range, checked by :func:`check_int` / :func:`check_number`.

**Ids.** Query and document ids are ``str``: not ints (``1`` and ``"1"`` are different ids, so mixing them
is refused), not empty, without surrounding whitespace (``"d1 "`` would never match ``"d1"``). A sequence of
ids (``query_ids``, ``doc_ids``) is a list or tuple, never a bare string, and holds no duplicate where one
would be silently dropped (``run_from_topk``). A run and qrels that share no query id are an error, not an
nDCG of 0 (a query of the qrels missing from a run still scores 0, as ``trec_eval -c``).

**Texts.** A sequence of texts is a list or tuple of ``str``; a bare string is a ``TypeError`` (it would be
read as a sequence of characters).

**Floats.** Values float32 cannot represent are refused or computed in float64: float64 inputs are computed
in float64 where the result would differ (Hamming bits of tiny values, top-k of float64 embeddings,
re-normalization), and a result that must be float32 but overflows it (a dot product above 3.4e38, a
truncated row beyond float32's range) is a ``ValueError`` that says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
FLOAT32_MAX = float(np.finfo(np.float32).max)
DEFAULT_DEPTH = 100

_KIND_NAMES = {"float": "a float16/float32/float64", "int": "an integer", "uint8": "a uint8", "bool": "a bool",
               "real": "a real (int, uint or float)"}


def _type_name(x) -> str:
    return type(x).__name__


def describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return _type_name(x)


# ---------------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------------

def is_int(value) -> bool:
    """True for a Python or NumPy integer that is not a bool.

    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value, *, low: int | None = None, high: int | None = None, what: str = "",
              allow_none: bool = False) -> int | None:
    """``value`` as an int in ``[low, high]`` (either bound optional); bool, floats and strings are refused.

    >>> check_int("bits", 4, low=1, high=8)
    4
    >>> check_int("bits", True, low=1, high=8)
    Traceback (most recent call last):
    ...
    ValueError: bits must be an int in [1, 8], got True
    """
    if value is None and allow_none:
        return None
    if low is not None and high is not None:
        want = f"an int in [{low}, {high}]"
    elif low is not None:
        want = f"an int >= {low}"
    elif high is not None:
        want = f"an int <= {high}"
    else:
        want = "an int"
    if allow_none:
        want += " or None"
    if what:
        want += f" ({what})"
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return int(value)


def check_k(k, n: int, *, name: str = "k", what: str = "the corpus size") -> int:
    """The k rule: the number of results to return is an int in ``[1, n]``, ``n`` the size of what is ranked.

    >>> check_k(3, 10)
    3
    >>> check_k(11, 10)
    Traceback (most recent call last):
    ...
    ValueError: k must be an int in [1, 10] (the corpus size), got 11
    """
    return check_int(name, k, low=1, high=int(n), what=what)


def default_depth(k, n: int, *, name: str = "k", what: str = "the corpus size") -> int:
    """``k`` checked by :func:`check_k`; ``None`` means ``min(DEFAULT_DEPTH, n)`` (a documented default).

    >>> default_depth(None, 5), default_depth(None, 1000), default_depth(7, 1000)
    (5, 100, 7)
    """
    if k is None:
        return min(DEFAULT_DEPTH, int(n))
    return check_k(k, n, name=name, what=what)


def check_cutoff(name: str, value, *, allow_none: bool = False) -> int | None:
    """A cut-off on a ranking: a positive int (it may exceed the ranking's length), or None where allowed.

    >>> check_cutoff("depth", 1000), check_cutoff("depth", None, allow_none=True)
    (1000, None)
    """
    return check_int(name, value, low=1, allow_none=allow_none, what="a cut-off")


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> float | None:
    """A finite real number (int or float, not bool) within the given bounds.

    >>> check_number("alpha", 0.5, low=0, high=1)
    0.5
    >>> check_number("tol", -0.1, low=0)
    Traceback (most recent call last):
    ...
    ValueError: tol must be a finite number >= 0, got -0.1
    """
    if value is None and allow_none:
        return None
    parts = []
    if low is not None and high is not None:
        want = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        want = "a finite number"
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        if parts:
            want += " " + " and ".join(parts)
    if allow_none:
        want += " or None"
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """A real bool (``1``, ``"yes"`` and ``None`` are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_type_name(value)} {value!r}")
    return bool(value)


def check_choice(name: str, value, choices: Sequence) -> object:
    """One of ``choices`` (compared by equality, strings only where the choices are strings)."""
    if not any(type(value) is type(c) and value == c for c in choices):
        items = [repr(c) for c in choices]
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return value


def check_config(name: str, cfg) -> None:
    """A :class:`course_lib.config.Config`, or any object with bool ``small`` and ``full`` and an int ``seed``."""
    for attr in ("small", "full"):
        if not isinstance(getattr(cfg, attr, None), bool):
            raise TypeError(f"{name} must be a course_lib.config.Config (with a bool {attr!r}), got {_type_name(cfg)}")
    check_int(f"{name}.seed", getattr(cfg, "seed", None), low=0)


def check_callable(name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {_type_name(value)}")


# ---------------------------------------------------------------------------------------------
# Ids and texts
# ---------------------------------------------------------------------------------------------

def check_id(name: str, value) -> str:
    """An id: a non-empty ``str`` without surrounding whitespace.

    >>> check_id("query id", "q1")
    'q1'
    >>> check_id("query id", 1)
    Traceback (most recent call last):
    ...
    TypeError: query id must be a str, got int 1 (ids are strings: 1 and '1' are different ids)
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {_type_name(value)} {value!r} "
                        f"(ids are strings: 1 and '1' are different ids)")
    if not value or value != value.strip():
        raise ValueError(f"{name} must be a non-empty id without surrounding whitespace, got {value!r}")
    return value


def check_sequence(name: str, value, what: str = "items") -> list:
    """A list or tuple (or another non-string sequence); a bare string, a dict, a set or None is a TypeError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a list or tuple of {what}, got {_type_name(value)}"
                        + (f" {value!r:.40}" if isinstance(value, (str, bytes)) else ""))
    return list(value)


def check_ids(name: str, ids, *, unique: bool = True, nonempty: bool = False) -> list[str]:
    """A list or tuple of ids (see :func:`check_id`), without duplicates when ``unique``."""
    out = check_sequence(name, ids, "str ids")
    if nonempty and not out:
        raise ValueError(f"{name} must hold at least one id, got none")
    for i, v in enumerate(out):
        check_id(f"{name}[{i}]", v)
    if unique and len(set(out)) != len(out):
        seen, dup = set(), None
        for v in out:
            if v in seen:
                dup = v
                break
            seen.add(v)
        raise ValueError(f"{name} must not repeat an id: {len(out) - len(set(out))} duplicate(s), e.g. {dup!r}")
    return out


def check_texts(name: str, texts, *, nonempty: bool = True) -> list[str]:
    """A list or tuple of ``str``; a bare string is refused (it would be read character by character).

    >>> check_texts("texts", "aspirin")
    Traceback (most recent call last):
    ...
    TypeError: texts must be a list or tuple of str, got str 'aspirin'
    """
    out = check_sequence(name, texts, "str")
    if nonempty and not out:
        raise ValueError(f"{name} must not be empty")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {_type_name(t)}")
    return out


# ---------------------------------------------------------------------------------------------
# Runs and qrels
# ---------------------------------------------------------------------------------------------

def check_scores_map(name: str, scores) -> Mapping:
    """``{doc_id: finite score}`` of one query."""
    if not isinstance(scores, Mapping):
        raise TypeError(f"{name} must be a dict {{doc_id: score}}, got {_type_name(scores)}")
    for did, s in scores.items():
        check_id(f"{name} doc id", did)
        if not isinstance(s, (int, float, np.integer, np.floating)) or isinstance(s, (bool, np.bool_)) \
                or not math.isfinite(s):
            raise ValueError(f"{name}[{did!r}] must be a finite number, got {s!r}")
    return scores


def check_run(name: str, run) -> Mapping:
    """A run ``{query_id: {doc_id: finite score}}`` with str ids."""
    if not isinstance(run, Mapping):
        raise TypeError(f"{name} must be a dict {{query_id: {{doc_id: score}}}}, got {_type_name(run)}")
    for qid, docs in run.items():
        check_id(f"{name} query id", qid)
        check_scores_map(f"{name}[{qid!r}]", docs)
    return run


def check_qrels(name: str, qrels, *, nonempty: bool = False) -> Mapping:
    """Qrels ``{query_id: {doc_id: int relevance}}`` with str ids."""
    if not isinstance(qrels, Mapping):
        raise TypeError(f"{name} must be a dict {{query_id: {{doc_id: relevance}}}}, got {_type_name(qrels)}")
    if nonempty and not qrels:
        raise ValueError(f"{name} must hold at least one query")
    for qid, rels in qrels.items():
        check_id(f"{name} query id", qid)
        if not isinstance(rels, Mapping):
            raise TypeError(f"{name}[{qid!r}] must be a dict {{doc_id: relevance}}, got {_type_name(rels)}")
        for did, rel in rels.items():
            check_id(f"{name}[{qid!r}] doc id", did)
            if not is_int(rel):
                raise TypeError(f"{name}[{qid!r}][{did!r}] must be an int relevance, got {rel!r}")
    return qrels


def check_run_matches_qrels(run: Mapping, qrels: Mapping, run_name: str = "run", qrels_name: str = "qrels") -> None:
    """A run that retrieved something must share at least one query id with the qrels."""
    retrieved = [q for q, docs in run.items() if docs]
    if retrieved and not any(q in qrels for q in retrieved):
        raise ValueError(f"{run_name} and {qrels_name} share no query id ({run_name}: e.g. {retrieved[0]!r}, "
                         f"{qrels_name}: e.g. {next(iter(qrels), None)!r}): the ids do not match, so every "
                         f"metric would be 0")


# ---------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------

def _dtype_ok(x: np.ndarray, kind: str) -> bool:
    if kind == "float":
        return x.dtype in FLOAT_DTYPES
    if kind == "int":
        return np.issubdtype(x.dtype, np.integer)
    if kind == "uint8":
        return x.dtype == np.uint8
    if kind == "bool":
        return x.dtype == np.bool_
    if kind == "real":
        return x.dtype in FLOAT_DTYPES or np.issubdtype(x.dtype, np.integer)
    raise AssertionError(kind)


def _position(idx: Sequence[int], axes: Sequence[str] | None) -> str:
    if axes is None or len(axes) != len(idx):
        axes = ["row", "token", "dim"][-len(idx):] if len(idx) <= 3 else [f"axis {a}" for a in range(len(idx))]
        if len(idx) == 1:
            axes = ["position"]
        elif len(idx) == 2:
            axes = ["row", "dim"]
    return ", ".join(f"{a} {int(i)}" for a, i in zip(axes, idx))


def raise_not_finite(name: str, x: np.ndarray, hint: str = "", axes: Sequence[str] | None = None) -> None:
    """Raise ``ValueError`` naming the count and the first position of the NaN or inf values of ``x``."""
    bad = np.argwhere(~np.isfinite(x))
    first = tuple(bad[0])
    raise ValueError(f"{name} contains NaN or inf: {len(bad)} value(s), the first at {_position(first, axes)} "
                     f"({x[first]})" + (f"; {hint}" if hint else ""))


def check_finite(name: str, x: np.ndarray, hint: str = "", axes: Sequence[str] | None = None) -> np.ndarray:
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        raise_not_finite(name, x, hint, axes)
    return x


def check_array(name: str, x, *, ndim: int | None = None, kind: str = "float", shape: str = "",
                nonempty: bool = True, finite: bool = True, hint: str = "") -> np.ndarray:
    """A numpy array of the dtype family ``kind``, ``ndim`` dims (``shape`` names them), non-empty, finite.

    >>> check_array("corpus_emb", np.ones(3, np.float32), ndim=2, shape="(rows, dims)")
    Traceback (most recent call last):
    ...
    ValueError: corpus_emb must be 2-D (rows, dims), got shape (3,)
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {_type_name(x)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D{' ' + shape if shape else ''}, got shape {x.shape}")
    if not _dtype_ok(x, kind):
        raise TypeError(f"{name} must be {_KIND_NAMES[kind]} array, got dtype {x.dtype}")
    if nonempty and 0 in x.shape:
        what = {1: "one entry", 2: "one row and one dimension"}.get(x.ndim, "a non-zero size on every axis")
        raise ValueError(f"{name} must have at least {what}, got shape {x.shape}")
    if finite:
        check_finite(name, x, hint)
    return x


def check_matrix(name: str, x, *, kind: str = "float", finite: bool = True, hint: str = "") -> np.ndarray:
    """A non-empty 2-D (rows, dims) array of ``kind`` (floats: finite unless ``finite=False``)."""
    return check_array(name, x, ndim=2, kind=kind, shape="(rows, dims)", finite=finite, hint=hint)


def check_same_dims(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray, what: str = "dims") -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{name_a} and {name_b} must have the same {what}, got {a.shape[-1]} and {b.shape[-1]}")


def check_codes(name: str, x) -> np.ndarray:
    """Packed binary codes: a non-empty 2-D uint8 array (rows, bytes), as ``quantize_binary`` makes them."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise TypeError(f"{name} must be a 2-D uint8 array of packed bits (quantize_binary), got {describe(x)}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D uint8 array of packed bits (rows, bytes), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} must have at least one row and one byte, got shape {x.shape}")
    return x


def check_mask(name: str, mask, shape: tuple[int, ...]) -> np.ndarray:
    """A bool numpy array of ``shape`` (None: all True)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a bool numpy array of shape {shape} or None, got {_type_name(mask)}")
    if mask.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array (True = a real token), got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (batch, tokens), got {mask.shape}")
    return mask


def check_tokens(name: str, x, mask, *, numpy_only: bool = False):
    """Token vectors (batch, tokens, dims), float, numpy or torch, and their bool mask (None: all valid).

    Returns ``(is_torch, mask)``; a row without any valid token is refused (MaxSim is undefined there).
    """
    is_torch = False
    if not isinstance(x, np.ndarray):
        import torch

        is_torch = isinstance(x, torch.Tensor)
        if numpy_only or not is_torch:
            raise TypeError(f"{name} must be a numpy array{'' if numpy_only else ' or a torch tensor'}, "
                            f"got {_type_name(x)}")
    if x.ndim != 3:
        raise ValueError(f"{name} must be 3-D (batch, tokens, dims), got shape {tuple(x.shape)}")
    if not (x.dtype.is_floating_point if is_torch else x.dtype in FLOAT_DTYPES):
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}")
    if 0 in tuple(x.shape):
        raise ValueError(f"{name} must have at least one row, one token and one dim, got shape {tuple(x.shape)}")
    if is_torch:
        import torch

        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)  # (B, L)
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"{name}_mask must be a torch bool tensor like {name}, got {_type_name(mask)}")
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"{name}_mask must have shape {tuple(x.shape[:2])} (batch, tokens), got "
                             f"{tuple(mask.shape)}")
        mask = mask.bool()
        empty = (~mask.any(1)).nonzero()[:, 0].cpu().numpy()
    else:
        if isinstance(mask, np.ndarray) and mask.dtype != np.bool_ and mask.shape == x.shape[:2] \
                and np.isin(mask, (0, 1)).all():
            mask = mask.astype(bool)  # a 0/1 integer mask is unambiguous
        mask = check_mask(f"{name}_mask", mask, x.shape[:2])
        empty = np.flatnonzero(~mask.any(1))
    if len(empty):
        raise ValueError(f"{name} row {int(empty[0])} has no valid token (its mask is all False): MaxSim is "
                         f"undefined; drop empty texts before scoring ({len(empty)} such row(s))")
    return is_torch, mask


def check_indices(name: str, x, n: int, *, ndim: int = 2, padding: bool = False, what: str = "rows") -> np.ndarray:
    """An integer array of indices into ``n`` rows (``-1`` allowed as padding when ``padding``)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be an integer numpy array, got {_type_name(x)}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")
    if x.size:
        lo = -1 if padding else 0
        if int(x.min()) < lo or int(x.max()) >= n:
            raise ValueError(f"{name} must lie in [0, {n}) ({what})" + (" or be -1 (padding)" if padding else "")
                             + f", got {x.min()}..{x.max()}")
    return x


def check_fits_float32(name: str, x: np.ndarray, *, tiny: bool = False) -> None:
    """Refuse float64 values that float32 cannot hold: beyond its range, or (``tiny``) non-zero but rounding to 0."""
    if x.dtype != np.float64 or not x.size:
        return
    a = np.abs(x)
    if a.max() > FLOAT32_MAX:
        r = np.unravel_index(int(a.argmax()), x.shape)
        raise ValueError(f"{name} holds values beyond float32's range (|x| > 3.4e38), e.g. {x[r]:g} at "
                         f"{_position(r, None)}; scale the values down")
    if tiny:
        lost = (a > 0) & (x.astype(np.float32) == 0)
        if lost.any():
            r = tuple(np.argwhere(lost)[0])
            raise ValueError(f"{name} holds non-zero values too small for float32 (they would become 0), e.g. "
                             f"{x[r]:g} at {_position(r, None)}; scale the values up")


def check_ranges(r, dim: int | None = None):
    """Quantization ranges (:class:`course_lib.quantization.Ranges`): finite, ``upper > lower`` with a width
    whose ``255 / width`` fits float32, and ``dim`` dims when given."""
    from course_lib.quantization import Ranges

    if not isinstance(r, Ranges):
        raise TypeError(f"ranges must be a course_lib.quantization.Ranges (from calibrate), got {_type_name(r)}")
    if dim is not None and r.dim != dim:
        raise ValueError(f"ranges were calibrated for {r.dim} dims but the embeddings have {dim}")
    if not (np.isfinite(r.lower).all() and np.isfinite(r.upper).all()):
        raise ValueError("ranges contain NaN or inf")
    with np.errstate(divide="ignore", over="ignore"):  # a width so small that 255 / width overflows float32
        too_narrow = (255.0 / (r.upper.astype(np.float64) - r.lower)) > FLOAT32_MAX
    flat = np.flatnonzero(~(r.upper > r.lower) | too_narrow)
    if flat.size:
        j = int(flat[0])
        raise ValueError(
            f"degenerate calibration range in {flat.size} of {r.dim} dims (first: dim {j}, lower={r.lower[j]:.6g}, "
            f"upper={r.upper[j]:.6g}); a code needs upper > lower. Calibrate on more, and more varied, rows"
            + (f" (this calibration saw {r.n_rows} row(s))" if r.n_rows else ""))
    return r


def raise_nonfinite_products(scores: np.ndarray, left: tuple[str, np.ndarray], right: tuple[str, np.ndarray],
                             right_rows: np.ndarray | None = None, what: str = "document",
                             dtype: str = "float32") -> None:
    """Explain non-finite ``scores`` (B, N) of ``left @ right.T``: NaN/inf in an input, or a float32 overflow.

    ``right_rows`` maps score columns to rows of ``right`` (default: the identity).
    """
    bad_cols = np.flatnonzero(~np.isfinite(scores).all(axis=0))
    rows = bad_cols if right_rows is None else np.asarray(right_rows)[bad_cols]
    lname, lx = left
    rname, rx = right
    check_finite(lname, lx)
    for r in rows:
        if not np.isfinite(rx[r]).all():
            n_bad = sum(1 for j in rows if not np.isfinite(rx[j]).all())
            raise ValueError(f"{rname} contains NaN or inf: the scores of {n_bad} {what}(s) are not finite, "
                             f"the first at row {int(r)}")
    limit = "3.4e38" if dtype == "float32" else "1.8e308"
    raise ValueError(f"the scores of {lname} against {rname} overflow {dtype} (|score| > {limit}) for "
                     f"{len(rows)} {what}(s), the first at row {int(rows[0])}, although both inputs are finite: "
                     f"scale the embeddings down (normalize them)")
