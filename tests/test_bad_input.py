"""The input contract (course_lib.validation), swept over every public function of the teaching modules.

Each case is one call with bad (or borderline) input and what it must give:

- ``Err``: a ``ValueError``/``TypeError`` (or the named I/O error) whose message names the argument;
- ``Ok``: a value, checked against an independent computation (float64 NumPy, a hand count);
- ``Cli``: a command line's usage error (argparse exit 2, or return code 1 with the argument in stderr).

Anything else fails: a wrong value, another exception type (AttributeError, IndexError, a numba or torch
error), or a message that does not name the argument. Functions that need the model, training or data
files are called with arguments that must be refused before any heavy work.

``test_sweep_covers_every_public_function`` fails when a public function or method has no case (or is not
listed in ``EXEMPT`` with a reason). The counts are written to ``build/bad_input_sweep.json`` and printed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any, Callable

import numpy as np
import pytest

import course_lib
from course_lib import (adaptor, backends, binary, cache, colbert, compression, config, csr, data, embed, eval as ceval, fetch, finetune,
                        frontier, hybrid, int8_search as I8, matryoshka, maxsim, metrics, models, paths, quantization as Q, search,
                        sparse, strategies as ST, train, training, validation as V)

REPO = Path(__file__).resolve().parent.parent
TEACHING = sorted(m.name for m in pkgutil.iter_modules(course_lib.__path__) if not m.ispkg)

# Public names that take no input worth sweeping: exception classes and plain records the loaders build.
EXEMPT = {
    "cache.CacheWarning": "a warning class",
    "cache.CacheEntryError": "an exception class",
    "data.DataError": "an exception class",
    "data.DataMissingError": "an exception class",
    "data.DataChecksumError": "an exception class",
    "training.LeakageError": "an exception class",
    "data.BeirDataset": "a record built by load_beir from verified files",
    "data.StsData": "a record built by load_sts from verified files",
    "config.Config": "a record built by setup()",
    "training.Example": "a record built by train_examples",
    "sparse.BM25Index": "a record built by BM25Index.build (swept there)",
}


def public_callables() -> set[str]:
    """``module.name`` of every public function and class, and ``module.Class.method`` of their public methods."""
    out = set()
    for name in TEACHING:
        mod = importlib.import_module(f"course_lib.{name}")
        for attr, obj in vars(mod).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj):
                out.add(f"{name}.{attr}")
            elif inspect.isclass(obj):
                out.add(f"{name}.{attr}")
                for meth, fn in vars(obj).items():
                    if not meth.startswith("_") and isinstance(fn, (staticmethod, classmethod)) or (
                            not meth.startswith("_") and inspect.isfunction(fn)):
                        out.add(f"{name}.{attr}.{meth}")
    return out


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------

@dataclass
class Err:
    names: tuple[str, ...]
    types: tuple[type, ...] = (ValueError, TypeError)


@dataclass
class Ok:
    check: Callable[[Any], None]


@dataclass
class Cli:
    names: tuple[str, ...]


@dataclass
class Case:
    target: str
    label: str
    call: Callable[[], Any]
    expect: Err | Ok | Cli
    uses: list[str] = field(default_factory=list)


CASES: list[Case] = []


def err(target, label, call, *names, types=(ValueError, TypeError)):
    CASES.append(Case(target, label, call, Err(tuple(names), types)))


def ok(target, label, call, check):
    CASES.append(Case(target, label, call, Ok(check)))


def cli(target, label, call, *names):
    CASES.append(Case(target, label, call, Cli(tuple(names))))


def eq(want):
    def check(got):
        if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        else:
            assert got == want, (got, want)
    return check


def close(want, rtol=1e-6, atol=0.0):
    def check(got):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                   rtol=rtol, atol=atol)
    return check


def ranked_like(scores64: np.ndarray, k: int):
    """A (scores, indices) top-k that equals the float64 ranking (score descending, lower index first)."""
    order = np.lexsort((np.broadcast_to(np.arange(scores64.shape[1]), scores64.shape), -scores64), axis=1)[:, :k]

    def check(got):
        s, i = got
        assert s.shape == i.shape == (scores64.shape[0], k), (s.shape, i.shape)
        np.testing.assert_array_equal(i, order)
        np.testing.assert_allclose(s.astype(np.float64), np.take_along_axis(scores64, order, axis=1), rtol=1e-6)
    return check


# ---------------------------------------------------------------------------------------------
# Generic families of bad input
# ---------------------------------------------------------------------------------------------

def _with(kwargs, **over):
    out = dict(kwargs)
    out.update(over)
    return out


def matrix_variants(x: np.ndarray, *, partner: str | None = None, integer: bool = False):
    """(label, bad value, extra names) for a 2-D array argument."""
    nan = x.astype(np.float64 if x.dtype == np.float64 else np.float32).copy()
    nan.flat[0] = np.nan
    inf = nan.copy()
    inf.flat[0] = np.inf
    out = [("nan", nan, ()), ("inf", inf, ()), ("empty rows", x[:0], ()), ("1-D", x[0], ()), ("3-D", x[None], ()),
           ("list", x.tolist(), ()), ("None", None, ()), ("string", "x", ())]
    if integer:
        out = [v for v in out if v[0] not in ("nan", "inf")]
        out.append(("float dtype", x.astype(np.float32), ()))
    else:
        out.append(("int dtype", x.astype(np.int64), ()))
        out.append(("bool dtype", x > 0, ()))
    if partner:
        out.append(("mismatched dims", np.ascontiguousarray(x[:, :-1]), (partner,)))
    return out


def sweep_arrays(target, fn, kwargs, specs):
    """One Err case per bad variant of each array argument; ``specs``: name -> (partner or None, integer?)."""
    for name, (partner, integer) in specs.items():
        for label, value, extra in matrix_variants(kwargs[name], partner=partner, integer=integer):
            err(target, f"{name} {label}", lambda v=value, n=name: fn(**_with(kwargs, **{n: v})), name, *extra)


INT_BAD = [("zero", 0), ("negative", -1), ("bool", True), ("float", 2.0), ("string", "3"), ("None", None)]


def sweep_int(target, fn, kwargs, name, *, high=None, none_ok=False, skip=()):
    bad = [b for b in INT_BAD if not (none_ok and b[1] is None) and b[0] not in skip]
    if high is not None:
        bad.append(("above the range", high + 1))
    for label, value in bad:
        err(target, f"{name} {label}", lambda v=value: fn(**_with(kwargs, **{name: v})), name)


NUM_BAD = [("nan", float("nan")), ("inf", float("inf")), ("bool", True), ("string", "0.5"), ("None", None)]


def sweep_number(target, fn, kwargs, name, *, below=None, above=None, none_ok=False):
    bad = [b for b in NUM_BAD if not (none_ok and b[1] is None)]
    if below is not None:
        bad.append(("below the range", below))
    if above is not None:
        bad.append(("above the range", above))
    for label, value in bad:
        err(target, f"{name} {label}", lambda v=value: fn(**_with(kwargs, **{name: v})), name)


def sweep_texts(target, fn, kwargs, name):
    for label, value in (("bare string", "aspirin lowers fever"), ("int item", ["a", 3]), ("None", None),
                         ("dict", {"a": "b"})):
        err(target, f"{name} {label}", lambda v=value: fn(**_with(kwargs, **{name: v})), name)


def sweep_ids(target, fn, kwargs, name, *, duplicates=True):
    bad = [("int ids", [1] + list(kwargs[name])[1:]), ("bare string", "".join(kwargs[name])), ("None", None),
           ("whitespace", [" " + kwargs[name][0]] + list(kwargs[name])[1:]), ("empty id", [""] + list(kwargs[name])[1:])]
    if duplicates and len(kwargs[name]) > 1:
        bad.append(("duplicate", [kwargs[name][0]] * len(kwargs[name])))
    for label, value in bad:
        err(target, f"{name} {label}", lambda v=value: fn(**_with(kwargs, **{name: v})), name)


def sweep_bool(target, fn, kwargs, name):
    for label, value in (("int", 1), ("string", "yes"), ("None", None)):
        err(target, f"{name} {label}", lambda v=value: fn(**_with(kwargs, **{name: v})), name)


# ---------------------------------------------------------------------------------------------
# Fixtures shared by the cases (small, made once)
# ---------------------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
QE = RNG.standard_normal((3, 8)).astype(np.float32)  # (Q, D)
CE = RNG.standard_normal((6, 8)).astype(np.float32)  # (N, D)
QIDS = ["q0", "q1", "q2"]
DIDS = [f"d{i}" for i in range(6)]
QRELS = {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 2}}
RUN = {"q0": {"d0": 0.9, "d3": 0.5}, "q1": {"d2": 0.8, "d1": 0.1}}
CODES = np.packbits(CE > 0, axis=1)  # (6, 1)
QCODES = np.packbits(QE > 0, axis=1)  # (3, 1)
RANGES = Q.calibrate(CE)
TOK_Q = RNG.standard_normal((2, 3, 4)).astype(np.float32)  # (Bq, Lq, D)
TOK_D = RNG.standard_normal((5, 4, 4)).astype(np.float32)  # (Bd, Ld, D)
TOK_DM = np.ones((5, 4), bool)
TOK_DM[1, 2:] = False
TOY_Q = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
TOY_C = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [.5, .5, 1, 1], [0, 0, 1, 0], [.5, .5, 0, 0]], np.float32)
TOY_IDS = (["q0", "q1", "q2"], ["d0", "d1", "d2", "d3", "d4"], {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}})
RET = compression.Retrieval(TOY_Q, TOY_C, *TOY_IDS)
RET10 = compression.Retrieval(TOY_Q, np.vstack([TOY_C, -TOY_C]), TOY_IDS[0], [f"d{i}" for i in range(10)], TOY_IDS[2])
TRAIN = NS(split="train", name="toy", queries={"a": "Aspirin lowers fever.", "b": "Zinc shortens colds."},
           corpus={"d1": {"title": "Aspirin", "text": "It reduces fever."}, "d2": {"title": "", "text": "A zinc trial."}},
           qrels={"a": {"d1": 1}, "b": {"d2": 1}})
TEST = NS(split="test", name="toy", queries={"t": "Vitamin D helps bones."}, corpus=TRAIN.corpus, qrels={"t": {"d1": 1}})
ROWS = [{"name": "fp32", "bytes/doc": 1536, "nDCG@10": 0.65, "ms/query": 1.0},
        {"name": "bin", "bytes/doc": 48, "nDCG@10": 0.58, "ms/query": 0.2},
        {"name": "fp16", "bytes/doc": 768, "nDCG@10": 0.64, "ms/query": 0.6}]


def np64_scores(q, c):
    return q.astype(np.float64) @ c.astype(np.float64).T


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------

kw = dict(query_emb=QE, corpus_emb=CE, k=3)
sweep_arrays("search.topk", search.topk, kw, {"query_emb": ("corpus_emb", False), "corpus_emb": ("query_emb", False)})
sweep_int("search.topk", search.topk, kw, "k", high=6)
ok("search.topk", "k = N", lambda: search.topk(QE, CE, 6), ranked_like(np64_scores(QE, CE), 6))
ok("search.topk", "numpy int k", lambda: search.topk(QE, CE, np.int64(2)), ranked_like(np64_scores(QE, CE), 2))
_big = (QE.astype(np.float64) * 1e100, CE.astype(np.float64) * 1e100)
ok("search.topk", "huge float64", lambda: search.topk(*_big, 3), ranked_like(np64_scores(*_big), 3))
_tiny = (QE.astype(np.float64) * 1e-150, CE.astype(np.float64) * 1e-150)
ok("search.topk", "tiny float64", lambda: search.topk(*_tiny, 3), ranked_like(np64_scores(*_tiny), 3))
err("search.topk", "float32 product overflow", lambda: search.topk(QE * 1e20, CE * 1e20, 2), "overflow")
ok("search.topk", "float16 inputs", lambda: search.topk(QE.astype(np.float16), CE.astype(np.float16), 2),
   ranked_like(np64_scores(QE.astype(np.float16), CE.astype(np.float16)), 2))

_u8 = np.array([[3, 250, 7, 250, 0]], np.uint8)
ok("search.topk_scores", "uint8 scores", lambda: search.topk_scores(_u8, 3), lambda g: (
    eq(np.array([[1, 3, 2]]))(g[1]), eq(np.array([[250, 250, 7]], np.uint8))(g[0])))
_u64 = np.array([[2 ** 63 + 5, 1, 2 ** 64 - 1]], np.uint64)
ok("search.topk_scores", "uint64 scores", lambda: search.topk_scores(_u64, 3)[1], eq(np.array([[2, 0, 1]])))
ok("search.topk_scores", "int scores", lambda: search.topk_scores(np.array([[-5, 3, -5, 9]]), 4)[1],
   eq(np.array([[3, 1, 0, 2]])))
_s = RNG.standard_normal((2, 5))
for label, value in (("nan", np.where(np.eye(2, 5, dtype=bool), np.nan, _s)), ("inf", np.where(np.eye(2, 5, dtype=bool), np.inf, _s)),
                     ("list", _s.tolist()), ("1-D", _s[0]), ("empty", _s[:, :0]), ("bool", _s > 0), ("None", None)):
    err("search.topk_scores", f"scores {label}", lambda v=value: search.topk_scores(v, 2), "scores")
sweep_int("search.topk_scores", search.topk_scores, dict(scores=_s, k=2), "k", high=5)

_s2, _i2 = np.array([[0.9, 0.5], [0.7, -np.inf]]), np.array([[1, 0], [2, -1]])
kw = dict(scores=_s2, indices=_i2, query_ids=["qa", "qb"], doc_ids=["x", "y", "z"])
ok("search.run_from_topk", "-1 padding dropped", lambda kw=kw: search.run_from_topk(**kw),
   eq({"qa": {"y": 0.9, "x": 0.5}, "qb": {"z": 0.7}}))
sweep_ids("search.run_from_topk", search.run_from_topk, kw, "query_ids")
sweep_ids("search.run_from_topk", search.run_from_topk, kw, "doc_ids")
for label, value in (("nan", np.array([[np.nan, 0.5], [0.7, 0.1]])), ("list", _s2.tolist()), ("None", None),
                     ("shape", _s2[:, :1]), ("string dtype", _s2.astype(str))):
    err("search.run_from_topk", f"scores {label}", lambda v=value, kw=kw: search.run_from_topk(**_with(kw, scores=v)),
        "scores")
for label, value in (("float", _i2.astype(float)), ("out of range", np.array([[3, 0], [0, 1]])),
                     ("-2", np.array([[-2, 0], [0, 1]])), ("list", _i2.tolist()), ("repeat", np.array([[1, 1], [0, -1]]))):
    err("search.run_from_topk", f"indices {label}", lambda v=value, kw=kw: search.run_from_topk(**_with(kw, indices=v)),
        "indices")

# ---------------------------------------------------------------------------------------------
# binary
# ---------------------------------------------------------------------------------------------

for fn_name in ("hamming_distances", "hamming_topk", "hamming_topk_reference"):
    fn = getattr(binary, fn_name)
    kw = dict(query_codes=QCODES, corpus_codes=CODES) | ({"k": 3} if fn_name != "hamming_distances" else {})
    for arg, partner in (("query_codes", "corpus_codes"), ("corpus_codes", "query_codes")):
        for label, value, extra in (("int8", kw[arg].view(np.int8), ()), ("float", kw[arg].astype(np.float32), ()),
                                    ("list", kw[arg].tolist(), ()), ("None", None, ()), ("1-D", kw[arg][0], ()),
                                    ("empty", kw[arg][:0], ()), ("mismatched bytes", np.hstack([kw[arg]] * 2), (partner,))):
            err(f"binary.{fn_name}", f"{arg} {label}", lambda v=value, a=arg, f=fn, k_=kw, kw=kw: f(**_with(k_, **{a: v})),
                arg, *extra)
    if fn_name != "hamming_distances":
        sweep_int(f"binary.{fn_name}", fn, kw, "k", high=6)
_long_c = RNG.integers(0, 256, (5, 8200), dtype=np.uint8)  # 65,600 bits: past a uint16 distance
_long_q = np.vstack([~_long_c[:1], _long_c[3:4]]).astype(np.uint8)
_long_ref = np.unpackbits(_long_q[:, None, :] ^ _long_c[None], axis=2).sum(axis=2)  # (2, 5)
_long_order = np.lexsort((np.broadcast_to(np.arange(5), (2, 5)), _long_ref), axis=1)[:, :3]
for fn_name in ("hamming_topk", "hamming_topk_reference"):
    ok(f"binary.{fn_name}", "65,600-bit codes", lambda f=getattr(binary, fn_name): f(_long_q, _long_c, 3),
       lambda g: (eq(np.take_along_axis(_long_ref, _long_order, axis=1))(g[0]), eq(_long_order)(g[1])))
ok("binary.hamming_distances", "65,600-bit codes", lambda: binary.hamming_distances(_long_q, _long_c), eq(_long_ref))
_odd_c = RNG.integers(0, 256, (40, 13), dtype=np.uint8)  # widths that are not whole 64-bit words
_odd_ref = np.unpackbits(_odd_c[:2, None, :] ^ _odd_c[None], axis=2).sum(axis=2)
ok("binary.hamming_topk", "13-byte codes", lambda: binary.hamming_topk(_odd_c[:2], _odd_c, 40)[0],
   eq(np.sort(_odd_ref, axis=1)))

_cand = np.array([[0, 2, 4], [1, -1, 3], [5, 0, -1]])
kw = dict(query_emb=QE, candidates=_cand, corpus=CE, k=2)
sweep_arrays("binary.rescore", binary.rescore, kw, {"query_emb": ("corpus", False)})
sweep_int("binary.rescore", binary.rescore, kw, "k", high=3)
for label, value in (("list", _cand.tolist()), ("float", _cand.astype(float)), ("-2", _cand - 3),
                     ("out of range", _cand + 6), ("wrong rows", _cand[:2]), ("1-D", _cand[0]), ("None", None)):
    err("binary.rescore", f"candidates {label}", lambda v=value, kw=kw: binary.rescore(**_with(kw, candidates=v)), "candidates")
for label, value in (("list", CE.tolist()), ("int", CE.astype(np.int32)), ("1-D", CE[0]), ("None", None)):
    err("binary.rescore", f"corpus {label}", lambda v=value, kw=kw: binary.rescore(**_with(kw, corpus=v)), "corpus")
_nan_ce = CE.copy()
_nan_ce[2, 1] = np.nan
err("binary.rescore", "NaN in a shortlisted row", lambda kw=kw: binary.rescore(**_with(kw, corpus=_nan_ce)), "corpus")
err("binary.rescore", "precision", lambda kw=kw: binary.rescore(**_with(kw, precision="fp8")), "precision")
err("binary.rescore", "int8 without ranges", lambda kw=kw: binary.rescore(**_with(kw, corpus=Q.quantize_scalar(CE, RANGES),
                                                                             precision="int8")), "ranges")
err("binary.rescore", "int8 with wrong codes", lambda kw=kw: binary.rescore(**_with(kw, precision="int8", ranges=RANGES)),
    "corpus")
err("binary.rescore", "ubinary with floats", lambda kw=kw: binary.rescore(**_with(kw, precision="ubinary")), "corpus")


def _rescore_ref(g):
    s, i = g
    full = np64_scores(QE, CE)
    for r in range(3):
        valid = [c for c in _cand[r] if c >= 0]
        want = sorted(valid, key=lambda c: -full[r, c])
        assert i[r].tolist() == (want + [-1] * 3)[:3]
        assert np.allclose(s[r][:len(valid)], full[r, want][:3], rtol=1e-5)
        assert np.isneginf(s[r][len(valid):]).all()


ok("binary.rescore", "-1 padding ranks last", lambda kw=kw: binary.rescore(**_with(kw, k=3)), _rescore_ref)
ok("binary.rescore", "huge float64", lambda: binary.rescore(QE.astype(np.float64) * 1e100, _cand[:, :1],
                                                            CE.astype(np.float64) * 1e100, 1)[1], eq(_cand[:, :1]))
err("binary.rescore", "float32 product overflow", lambda: binary.rescore(QE * 1e20, _cand, CE * 1e20, 1), "overflow")

kw = dict(query_emb=QE, corpus_codes=CODES, k=2, multiplier=2)
sweep_arrays("binary.binary_search", binary.binary_search, kw, {"query_emb": (None, False)})
sweep_int("binary.binary_search", binary.binary_search, kw, "k", high=6)
sweep_int("binary.binary_search", binary.binary_search, kw, "multiplier")
for label, value in (("int8", CODES.view(np.int8)), ("list", CODES.tolist()), ("None", None)):
    err("binary.binary_search", f"corpus_codes {label}", lambda v=value, kw=kw: binary.binary_search(**_with(kw, corpus_codes=v)),
        "corpus_codes")
err("binary.binary_search", "rescore_corpus rows", lambda kw=kw: binary.binary_search(**_with(
    kw, rescore_corpus=CE[:3], precision="float32")), "rescore_corpus")
ok("binary.binary_search", "shortlist past the corpus is the whole corpus",
   lambda kw=kw: binary.binary_search(**_with(kw, k=3, multiplier=100, rescore_corpus=CE, precision="float32")),
   ranked_like(np64_scores(QE, CE), 3))

sweep_int("binary.faiss_binary_index", binary.faiss_binary_index, dict(codes=CODES, kind="hnsw"), "hnsw_m")
sweep_int("binary.faiss_binary_index", binary.faiss_binary_index, dict(codes=CODES, kind="ivf"), "nprobe")
sweep_int("binary.faiss_binary_index", binary.faiss_binary_index, dict(codes=CODES, kind="ivf"), "nlist",
          high=6, none_ok=True)
err("binary.faiss_binary_index", "kind", lambda: binary.faiss_binary_index(CODES, "lsh"), "kind")
for label, value in (("int8", CODES.view(np.int8)), ("list", CODES.tolist()), ("empty", CODES[:0]), ("None", None)):
    err("binary.faiss_binary_index", f"codes {label}", lambda v=value: binary.faiss_binary_index(v), "codes")
ok("binary.faiss_binary_index", "flat equals hamming_topk",
   lambda: binary.faiss_binary_index(CODES).search(QCODES, 3)[0], eq(binary.hamming_topk(QCODES, CODES, 3)[0]))

# ---------------------------------------------------------------------------------------------
# int8_search
# ---------------------------------------------------------------------------------------------

_C8 = Q.quantize_scalar(CE, RANGES)  # (6, 8) int8
_deq = Q.dequantize_scalar(_C8, RANGES)
for fn_name in ("int8_topk", "int8_topk_reference"):
    fn = getattr(I8, fn_name)
    kw = dict(query_emb=QE, codes=_C8, ranges=RANGES, k=3)
    sweep_arrays(f"int8_search.{fn_name}", fn, kw, {"query_emb": ("codes", False)})
    sweep_int(f"int8_search.{fn_name}", fn, kw, "k", high=6)
    sweep_int(f"int8_search.{fn_name}", fn, kw, "bits", high=8)
    for label, value in (("int16", _C8.astype(np.int16)), ("float", _C8.astype(np.float32)), ("list", _C8.tolist()),
                         ("None", None), ("1-D", _C8[0]), ("empty", _C8[:0])):
        err(f"int8_search.{fn_name}", f"codes {label}", lambda v=value, f=fn, kw=kw: f(**_with(kw, codes=v)), "codes")
    err(f"int8_search.{fn_name}", "ranges of other dims", lambda f=fn, kw=kw: f(**_with(kw, ranges=Q.calibrate(CE[:, :4]))),
        "ranges")
    err(f"int8_search.{fn_name}", "ranges not Ranges", lambda f=fn, kw=kw: f(**_with(kw, ranges=RANGES.as_array())), "ranges")
    err(f"int8_search.{fn_name}", "8-bit codes as 2-bit", lambda f=fn, kw=kw: f(**_with(kw, bits=2)), "codes")
    err(f"int8_search.{fn_name}", "float32 score overflow", lambda f=fn: f(QE * 3e37, _C8, RANGES, 2), "overflow")
    ok(f"int8_search.{fn_name}", "k = N, int8", lambda f=fn: f(QE, _C8, RANGES, 6), ranked_like(np64_scores(QE, _deq), 6))
    ok(f"int8_search.{fn_name}", "uint8 codes", lambda f=fn: f(QE, Q.quantize_scalar(CE, RANGES, "uint8"), RANGES, 4),
       ranked_like(np64_scores(QE, _deq), 4))
    ok(f"int8_search.{fn_name}", "float64 queries", lambda f=fn: f(QE.astype(np.float64), _C8, RANGES, 2),
       ranked_like(np64_scores(QE, _deq), 2))

kw = dict(query_emb=QE, ranges=RANGES)
sweep_arrays("int8_search.fold_query", I8.fold_query, kw, {"query_emb": (None, False)})
err("int8_search.fold_query", "dtype", lambda: I8.fold_query(QE, RANGES, "int4"), "dtype")
sweep_int("int8_search.fold_query", I8.fold_query, kw, "bits", high=8)
err("int8_search.fold_query", "ranges of other dims", lambda: I8.fold_query(QE, Q.calibrate(CE[:, :4])), "ranges")
err("int8_search.fold_query", "float64 beyond float32", lambda: I8.fold_query(QE.astype(np.float64) * 1e300, RANGES),
    "query_emb")
ok("int8_search.fold_query", "the algebra", lambda: (lambda w, b: (_C8.astype(np.float64) @ w.T + b).T)(
    *I8.fold_query(QE, RANGES)), close(np64_scores(QE, _deq), atol=1e-5))

_SHARED = I8.shared_step(RANGES)
err("int8_search.shared_step", "ranges None", lambda: I8.shared_step(None), "ranges")
err("int8_search.shared_step", "ranges array", lambda: I8.shared_step(RANGES.as_array()), "ranges")
sweep_int("int8_search.shared_step", I8.shared_step, dict(ranges=RANGES), "bits", high=8)
ok("int8_search.shared_step", "one step", lambda: np.ptp(_SHARED.step()) / _SHARED.step().max() < 1e-6, eq(True))

_S8, _QS8 = Q.quantize_scalar(CE, _SHARED), Q.quantize_scalar(QE, _SHARED)
_sdeq = Q.dequantize_scalar(_QS8, _SHARED).astype(np.float64) @ Q.dequantize_scalar(_S8, _SHARED).T.astype(np.float64)
kw = dict(codes=_S8, ranges=_SHARED)
for label, value in (("uint8", _S8.view(np.uint8)), ("float", _S8.astype(np.float32)), ("None", None), ("1-D", _S8[0])):
    err("int8_search.symmetric_doc_terms", f"codes {label}", lambda v=value: I8.symmetric_doc_terms(v, _SHARED), "codes")
err("int8_search.symmetric_doc_terms", "per-dimension steps", lambda: I8.symmetric_doc_terms(_S8, RANGES), "shared_step")
sweep_int("int8_search.symmetric_doc_terms", I8.symmetric_doc_terms, kw, "bits", high=8)
for fn_name in ("symmetric_topk", "symmetric_topk_reference"):
    fn = getattr(I8, fn_name)
    kw = dict(query_codes=_QS8, codes=_S8, ranges=_SHARED, k=3)
    sweep_int(f"int8_search.{fn_name}", fn, kw, "k", high=6)
    for arg, partner in (("query_codes", "codes"), ("codes", "query_codes")):
        for label, value, extra in (("uint8", kw[arg].view(np.uint8), ()), ("float", kw[arg].astype(np.float32), ()),
                                    ("list", kw[arg].tolist(), ()), ("None", None, ()), ("1-D", kw[arg][0], ()),
                                    ("empty", kw[arg][:0], ()), ("mismatched dims", kw[arg][:, :-1].copy(), (partner,))):
            err(f"int8_search.{fn_name}", f"{arg} {label}", lambda v=value, a=arg, f=fn, kw=kw: f(**_with(kw, **{a: v})),
                arg, *extra)
    err(f"int8_search.{fn_name}", "per-dimension steps", lambda f=fn, kw=kw: f(**_with(kw, ranges=RANGES)), "shared_step")
    err(f"int8_search.{fn_name}", "doc_terms length", lambda f=fn, kw=kw: f(**_with(kw, doc_terms=np.zeros(5))),
        "doc_terms")
    err(f"int8_search.{fn_name}", "doc_terms NaN", lambda f=fn, kw=kw: f(**_with(kw, doc_terms=np.full(6, np.nan))),
        "doc_terms")
    ok(f"int8_search.{fn_name}", "k = N", lambda f=fn: f(_QS8, _S8, _SHARED, 6), ranked_like(_sdeq, 6))
    ok(f"int8_search.{fn_name}", "given doc_terms", lambda f=fn: f(_QS8, _S8, _SHARED, 2,
                                                                    doc_terms=I8.symmetric_doc_terms(_S8, _SHARED)),
       ranked_like(_sdeq, 2))

# ---------------------------------------------------------------------------------------------
# quantization
# ---------------------------------------------------------------------------------------------

for fn_name, extra in (("calibrate", {}), ("quantize_scalar", {"ranges": RANGES}),
                       ("quantize_scalar_reference", {"ranges": RANGES}), ("quantize_binary", {}),
                       ("quantize_binary_reference", {}), ("to_float16", {}), ("to_bfloat16", {})):
    fn = getattr(Q, fn_name)
    sweep_arrays(f"quantization.{fn_name}", fn, dict(embeddings=CE, **extra),
                 {"embeddings": ("ranges" if "ranges" in extra else None, False)})
sweep_arrays("quantization.reconstruction_error", Q.reconstruction_error, dict(embeddings=CE, reconstructed=CE + 0.1),
             {"embeddings": ("reconstructed", False), "reconstructed": ("embeddings", False)})
err("quantization.calibrate", "method", lambda: Q.calibrate(CE, "max"), "method")
sweep_number("quantization.calibrate", Q.calibrate, dict(embeddings=CE, method="percentile"), "percentile",
             below=50, above=100.5)
err("quantization.calibrate", "one row", lambda: Q.calibrate(CE[:1]), "row")
err("quantization.calibrate", "float64 beyond float32", lambda: Q.calibrate(CE.astype(np.float64) * 1e300),
    "embeddings")
for fn_name in ("quantize_scalar", "quantize_scalar_reference"):
    fn = getattr(Q, fn_name)
    kw = dict(embeddings=CE, ranges=RANGES)
    sweep_int(f"quantization.{fn_name}", fn, kw, "bits", high=8, skip=("None",))
    err(f"quantization.{fn_name}", "dtype", lambda f=fn: f(CE, RANGES, "int4"), "dtype")
    for label, value in (("array", RANGES.as_array()), ("None", None), ("other dims", Q.calibrate(CE[:, :4]))):
        err(f"quantization.{fn_name}", f"ranges {label}", lambda v=value, f=fn: f(CE, v), "ranges")
    _x = np.array([[1e300, -1e300, 1e-300, 0.0]], np.float64)
    _r = Q.Ranges(np.full(4, -1.0, np.float32), np.ones(4, np.float32))
    ok(f"quantization.{fn_name}", "huge float64 clips", lambda f=fn: f(_x, _r, "uint8"),
       eq(np.array([[255, 0, 128, 128]], np.uint8)))  # floor(x * 127.5 + 128) clipped: 1e-300 and 0 -> 128
ok("quantization.quantize_scalar", "float32 so large the scaled value overflows",
   lambda: Q.quantize_scalar(np.array([[3e38, -3e38, 0, 0]], np.float32), _r, "uint8"),
   eq(np.array([[255, 0, 128, 128]], np.uint8)))
err("quantization.quantize_scalar", "out", lambda: Q.quantize_scalar(CE, RANGES, out=np.empty((2, 2), np.int8)), "out")

_tiny64 = np.array([[1e-300, -1e-300, 5e-324, 0.0, 1e-40, -1e-46, 2.0, -2.0, 1e-310]], np.float64)
for fn_name in ("quantize_binary", "quantize_binary_reference"):
    ok(f"quantization.{fn_name}", "tiny float64 keep their sign", lambda f=getattr(Q, fn_name): f(_tiny64),
       eq(np.packbits(_tiny64 > 0, axis=1)))
    for label, value in (("nan", np.nan), ("wrong shape", np.zeros(3)), ("string", "0"), ("bool", True),
                         ("list", [0.0] * 8), ("inf array", np.full(8, np.inf))):
        err(f"quantization.{fn_name}", f"threshold {label}",
            lambda v=value, f=getattr(Q, fn_name): f(CE, v), "threshold")
ok("quantization.quantize_binary", "tiny float64 threshold",
   lambda: Q.quantize_binary(np.array([[2e-300, 0.5e-300]]), 1e-300), eq(np.array([[128]], np.uint8)))
err("quantization.quantize_binary", "dtype", lambda: Q.quantize_binary(CE, dtype="sbinary"), "dtype")

ok("quantization.to_float16", "tiny values round like numpy", lambda: Q.to_float16(_tiny64),
   eq(_tiny64.astype(np.float16)))
err("quantization.to_float16", "beyond float16", lambda: Q.to_float16(CE * 1e5), "embeddings")
err("quantization.to_bfloat16", "float64 beyond float32", lambda: Q.to_bfloat16(CE.astype(np.float64) * 1e300),
    "embeddings")
err("quantization.to_bfloat16", "rounds to inf", lambda: Q.to_bfloat16(np.full((1, 2), 3.4e38, np.float32)),
    "embeddings")
ok("quantization.to_bfloat16", "round trip of exact values",
   lambda: Q.from_bfloat16(Q.to_bfloat16(np.array([[1.0, -2.0, 0.5, 3.0 * 2 ** 100]], np.float32))),
   eq(np.array([[1.0, -2.0, 0.5, 3.0 * 2 ** 100]], np.float32)))
for label, value in (("uint32", np.zeros((1, 2), np.uint32)), ("list", [[1, 2]]), ("None", None), ("float", CE)):
    err("quantization.from_bfloat16", f"bits {label}", lambda v=value: Q.from_bfloat16(v), "bits")
ok("quantization.from_bfloat16", "inf and nan patterns are exact",
   lambda: Q.from_bfloat16(np.array([[0x7F80, 0xFF80]], np.uint16)), eq(np.array([[np.inf, -np.inf]], np.float32)))

for label, value in (("list", [[1, 2]]), ("float", CE), ("1-D", np.zeros(3, np.int8)), ("None", None)):
    err("quantization.dequantize_scalar", f"codes {label}", lambda v=value: Q.dequantize_scalar(v, RANGES), "codes")
err("quantization.dequantize_scalar", "codes out of range", lambda: Q.dequantize_scalar(
    np.full((1, 8), 200, np.uint8), RANGES, 4), "codes")
sweep_int("quantization.dequantize_scalar", Q.dequantize_scalar,
          dict(codes=Q.quantize_scalar(CE, RANGES), ranges=RANGES), "bits", high=8, skip=("None",))
err("quantization.dequantize_scalar", "ranges", lambda: Q.dequantize_scalar(Q.quantize_scalar(CE, RANGES), None),
    "ranges")
ok("quantization.dequantize_scalar", "ends of the range", lambda: Q.dequantize_scalar(
    np.array([[-128, 127]], np.int8), Q.Ranges(np.array([-1.0, 0.0], np.float32), np.array([1.0, 2.0], np.float32))),
   close(np.array([[-1.0, 2.0]])))

_c4 = np.array([[1, 15, 7]], np.uint8)
for fn_name, kw in (("pack_codes", dict(codes=_c4, bits=4)), ("unpack_codes", dict(packed=np.array([[31, 112]], np.uint8),
                                                                                 bits=4, dim=3))):
    fn = getattr(Q, fn_name)
    for label, value in (("3", 3), ("bool", True), ("8", 8), ("None", None), ("float", 4.0)):
        err(f"quantization.{fn_name}", f"bits {label}", lambda v=value, f=fn, k_=kw, kw=kw: f(**_with(k_, bits=v)), "bits")
    arg = "codes" if fn_name == "pack_codes" else "packed"
    for label, value in (("list", kw[arg].tolist()), ("int8", kw[arg].view(np.int8)), ("1-D", kw[arg][0]), ("None", None)):
        err(f"quantization.{fn_name}", f"{arg} {label}", lambda v=value, f=fn, k_=kw, a=arg, kw=kw: f(**_with(k_, **{a: v})), arg)
err("quantization.pack_codes", "codes too large", lambda: Q.pack_codes(np.array([[16]], np.uint8), 4), "codes")
sweep_int("quantization.unpack_codes", Q.unpack_codes, dict(packed=np.array([[31, 112]], np.uint8), bits=4, dim=3),
          "dim", high=4)
ok("quantization.unpack_codes", "round trip", lambda: Q.unpack_codes(Q.pack_codes(_c4, 4), 4, 3), eq(_c4))

kw = dict(codes=np.array([[171, 128]], np.uint8), dim=9)
sweep_int("quantization.unpack_binary", Q.unpack_binary, kw, "dim", high=16)
for label, value in (("list", [[171, 128]]), ("float", CE), ("1-D", np.zeros(2, np.uint8)), ("None", None)):
    err("quantization.unpack_binary", f"codes {label}", lambda v=value: Q.unpack_binary(v, 9), "codes")
err("quantization.unpack_binary", "signed", lambda kw=kw: Q.unpack_binary(kw["codes"], 9, signed="yes"), "signed")
ok("quantization.unpack_binary", "int8 binary codes", lambda kw=kw: Q.unpack_binary((kw["codes"] - np.uint8(128)).view(np.int8), 9),
   eq(np.unpackbits(kw["codes"], axis=1, count=9)))

_big150 = CE.astype(np.float64) * 1e150


def _recon_ref(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    an, bn = a / np.abs(a).max(1, keepdims=True), b / np.abs(b).max(1, keepdims=True)
    cos = (an * bn).sum(1) / np.linalg.norm(an, axis=1) / np.linalg.norm(bn, axis=1)
    return {"mse": round(float(((a - b) ** 2).mean()), 9), "cosine": round(float(cos.mean()), 6)}


ok("quantization.reconstruction_error", "huge float64", lambda: Q.reconstruction_error(_big150, _big150 * 1.5),
   lambda g: (close(_recon_ref(_big150, _big150 * 1.5)["mse"], rtol=1e-9)(g["mse"]),
              eq(_recon_ref(_big150, _big150 * 1.5)["cosine"])(g["cosine"])))
err("quantization.reconstruction_error", "squared error overflows", lambda: Q.reconstruction_error(
    CE.astype(np.float64) * 1e200, CE.astype(np.float64) * -1e200), "overflow")
err("quantization.reconstruction_error", "zero row", lambda: Q.reconstruction_error(np.zeros((1, 3)), np.ones((1, 3))),
    "row")
for label, value in (("negative", -8), ("zero", 0), ("bool", True), ("float", 8.0), ("None", None)):
    err("quantization.bytes_per_vector", f"dim {label}", lambda v=value: Q.bytes_per_vector(v, 8), "dim")
for label, value in (("negative", -8), ("zero", 0), ("nan", float("nan")), ("bool", True), ("string", "8")):
    err("quantization.bytes_per_vector", f"bits {label}", lambda v=value: Q.bytes_per_vector(384, v), "bits")
ok("quantization.bytes_per_vector", "fractional bits", lambda: Q.bytes_per_vector(384, 1.5), eq(72))
ok("quantization.bytes_per_vector", "odd dims round up", lambda: Q.bytes_per_vector(385, 1), eq(49))

for label, value in (("list", [[0.0, 1.0]]), ("1-D", np.zeros(2)), ("3 rows", np.zeros((3, 2))), ("nan", np.array([[np.nan], [1.0]])),
                     ("huge", np.array([[-1e300], [1e300]]))):
    err("quantization.Ranges.from_array", f"ranges {label}", lambda v=value: Q.Ranges.from_array(v), "ranges")
err("quantization.Ranges.from_array", "degenerate", lambda: Q.Ranges.from_array(np.array([[1.0], [1.0]])), "range")
for label, value in (("list", [0.0]), ("2-D", np.zeros((1, 2), np.float32)), ("int", np.zeros(2, np.int64)), ("None", None)):
    err("quantization.Ranges", f"lower {label}", lambda v=value: Q.Ranges(v, np.ones(2, np.float32)), "lower")
err("quantization.Ranges", "shapes differ", lambda: Q.Ranges(np.zeros(2, np.float32), np.ones(3, np.float32)), "lower")
sweep_int("quantization.Ranges.step", RANGES.step, {}, "bits", high=8, skip=("None",))
ok("quantization.Ranges.step", "8 bits", lambda: RANGES.step(8),
   close((RANGES.upper.astype(np.float64) - RANGES.lower) / 255, rtol=1e-6))
ok("quantization.Ranges.as_array", "(2, D)", lambda: RANGES.as_array(), eq(np.stack([RANGES.lower, RANGES.upper])))

# ---------------------------------------------------------------------------------------------
# maxsim
# ---------------------------------------------------------------------------------------------


def _maxsim_ref(q, qm, d, dm):
    out = np.zeros((len(q), len(d)))
    for a in range(len(q)):
        for b in range(len(d)):
            sim = q[a][qm[a]].astype(np.float64) @ d[b][dm[b]].astype(np.float64).T
            out[a, b] = sim.max(axis=1).sum()
    return out


_QM = np.ones((2, 3), bool)
_QM[1, 2] = False
for fn_name in ("maxsim", "maxsim_loop"):
    fn = getattr(maxsim, fn_name)
    kw = dict(q=TOK_Q, q_mask=_QM, d=TOK_D, d_mask=TOK_DM)
    for arg, partner in (("q", "d"), ("d", "q")):
        x = kw[arg]
        nan = x.copy()
        nan[0, 0, 0] = np.nan
        for label, value, extra in (("nan", nan, ()), ("list", x.tolist(), ()), ("2-D", x[0], ()), ("int", x.astype(int), ()),
                                    ("None", None, ()), ("empty", x[:0], ()), ("mismatched dims", x[..., :-1], (partner,))):
            err(f"maxsim.{fn_name}", f"{arg} {label}", lambda v=value, a=arg, f=fn, k_=kw, kw=kw: f(**_with(k_, **{a: v})),
                arg, *extra)
        m = kw[f"{arg}_mask"]
        for label, value in (("shape", m[:, :1]), ("list", m.tolist()), ("float", m.astype(np.float32) + 0.5),
                             ("empty row", np.zeros_like(m))):
            err(f"maxsim.{fn_name}", f"{arg}_mask {label}",
                lambda v=value, a=arg, f=fn, k_=kw, kw=kw: f(**_with(k_, **{f"{a}_mask": v})), arg)
    err(f"maxsim.{fn_name}", "float32 overflow", lambda f=fn: f(TOK_Q * 1e20, None, TOK_D * 1e20, None), "overflow")
    _pad_nan = TOK_D.copy()
    _pad_nan[1, 3] = np.nan  # a NaN in padding is never read
    ok(f"maxsim.{fn_name}", "NaN in padding", lambda f=fn: f(TOK_Q, _QM, _pad_nan, TOK_DM),
       close(_maxsim_ref(TOK_Q, _QM, TOK_D, TOK_DM), rtol=1e-5))
sweep_int("maxsim.maxsim", maxsim.maxsim, dict(q=TOK_Q, q_mask=None, d=TOK_D, d_mask=None), "chunk_size",
          skip=("None",))
err("maxsim.maxsim", "numpy and torch mixed", lambda: maxsim.maxsim(TOK_Q, None, __import__("torch").from_numpy(TOK_D),
                                                                      None), "torch")

kw = dict(q=TOK_Q, q_mask=_QM, d=TOK_D, d_mask=TOK_DM, k=2)
_full = _maxsim_ref(TOK_Q, _QM, TOK_D, TOK_DM)
_nan_d = TOK_D.copy()
_nan_d[3, 0, 1] = np.nan
err("maxsim.rank_maxsim", "NaN document", lambda kw=kw: maxsim.rank_maxsim(**_with(kw, d=_nan_d)), "d")
_nan_q = TOK_Q.copy()
_nan_q[0, 1, 0] = np.nan
err("maxsim.rank_maxsim", "NaN query", lambda kw=kw: maxsim.rank_maxsim(**_with(kw, q=_nan_q)), "q")
err("maxsim.rank_maxsim", "inf document with a shortlist", lambda: maxsim.rank_maxsim(
    **_with(kw, d=_nan_d * np.inf, candidates=np.array([[3, 0], [3, 1]]))), "d")
sweep_int("maxsim.rank_maxsim", maxsim.rank_maxsim, kw, "k", high=5)
sweep_int("maxsim.rank_maxsim", maxsim.rank_maxsim, kw, "query_block", skip=("None",))
for label, value in (("list", TOK_D.tolist()), ("None", None), ("2-D", TOK_D[0]), ("mismatched dims", TOK_D[..., :-1])):
    err("maxsim.rank_maxsim", f"d {label}", lambda v=value, kw=kw: maxsim.rank_maxsim(**_with(kw, d=v)), "d")
_rc = np.array([[4, -1, 0], [-1, 2, -1]])
for label, value in (("-2", _rc - 2), ("out of range", _rc + 5), ("float", _rc.astype(float)), ("list", _rc.tolist()),
                     ("rows", _rc[:1]), ("1-D", _rc[0])):
    err("maxsim.rank_maxsim", f"candidates {label}", lambda v=value, kw=kw: maxsim.rank_maxsim(**_with(kw, candidates=v)),
        "candidates")
err("maxsim.rank_maxsim", "k above the shortlist", lambda kw=kw: maxsim.rank_maxsim(**_with(kw, k=4, candidates=_rc)), "k")


def _padded_ref(g):
    s, i = g
    for r in range(2):
        valid = [c for c in _rc[r] if c >= 0]
        want = sorted(valid, key=lambda c: -_full[r, c])
        assert i[r].tolist() == (want + [-1] * 3)[:3], (i[r], want)
        assert np.allclose(s[r][:len(valid)], _full[r, want], rtol=1e-5) and np.isneginf(s[r][len(valid):]).all()


ok("maxsim.rank_maxsim", "-1 padding in the shortlist", lambda kw=kw: maxsim.rank_maxsim(**_with(kw, k=3, candidates=_rc)),
   _padded_ref)
ok("maxsim.rank_maxsim", "k = N", lambda kw=kw: maxsim.rank_maxsim(**_with(kw, k=5)), lambda g, kw=kw: (
    eq(np.argsort(-_full, axis=1, kind="stable"))(g[1]), close(-np.sort(-_full, axis=1), rtol=1e-5)(g[0])))

# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------

for fn_name in ("evaluate", "evaluate_per_query"):
    fn = getattr(metrics, fn_name)
    kw = dict(run=RUN, qrels=QRELS, k_values=(1, 10))
    bad_runs = {"int query id": {1: {"d0": 1.0}}, "int doc id": {"q0": {0: 1.0}},
                "query id with spaces": {"q0 ": {"d0": 1.0}}, "doc id with spaces": {"q0": {" d0": 1.0}},
                "nan score": {"q0": {"d0": float("nan")}}, "inf score": {"q0": {"d0": float("inf")}},
                "bool score": {"q0": {"d0": True}}, "string score": {"q0": {"d0": "1"}},
                "list": [("q0", "d0")], "None": None, "ranking as list": {"q0": ["d0"]},
                "disjoint query ids": {"Q0": {"d0": 1.0}}, "mixed id types": {"q0": {"d0": 1.0}, 1: {"d1": 1.0}}}
    for label, value in bad_runs.items():
        err(f"metrics.{fn_name}", f"run {label}", lambda v=value, f=fn, k_=kw, kw=kw: f(**_with(k_, run=v)), "run")
    bad_qrels = {"int query id": {1: {"d0": 1}}, "int doc id": {"q0": {0: 1}}, "float relevance": {"q0": {"d0": 1.0}},
                 "bool relevance": {"q0": {"d0": True}}, "spaces": {"q0": {"d0 ": 1}}, "None": None, "list": [["q0"]]}
    for label, value in bad_qrels.items():
        err(f"metrics.{fn_name}", f"qrels {label}", lambda v=value, f=fn, k_=kw, kw=kw: f(**_with(k_, qrels=v)), "qrels")
    for label, value in (("zero", (0,)), ("negative", (-1,)), ("bool", (True,)), ("float", (10.0,)), ("empty", ()),
                         ("bare int", 10), ("None", None), ("string", "10")):
        err(f"metrics.{fn_name}", f"k_values {label}", lambda v=value, f=fn, k_=kw, kw=kw: f(**_with(k_, k_values=v)),
            "k_values")
    err(f"metrics.{fn_name}", "run with int ids against str qrels", lambda f=fn: f({1: {"1": 1.0}}, {"1": {"1": 1}}), "run")
ok("metrics.evaluate", "cut-off past the run", lambda: metrics.evaluate(RUN, QRELS, (1000,))["precision@1000"],
   close(2 / 1000 / 3))
ok("metrics.evaluate", "hand-computed nDCG", lambda: metrics.evaluate(RUN, QRELS, (10,))["ndcg@10"],
   close((1.0 + 1 / math.log2(3) + 0.0) / 3))
err("metrics.evaluate", "empty qrels", lambda: metrics.evaluate({}, {}), "qrels")
for label, value in (("nan", {"a": float("nan")}), ("int id", {1: 0.5}), ("list", ["a"]), ("string score", {"a": "1"}),
                     ("None", None)):
    err("metrics.rank", f"scores {label}", lambda v=value: metrics.rank(v), "scores")
ok("metrics.rank", "ties by id descending", lambda: metrics.rank({"d1": 0.5, "d3": 0.5, "d2": 0.9}), eq(["d2", "d3", "d1"]))
kw = dict(ranking=["d1", "d0"], rels={"d0": 1}, k_values=(1, 2))
for label, value in (("bare string", "d1d0"), ("duplicates", ["d0", "d0"]), ("int ids", [1, 0]), ("None", None)):
    err("metrics.query_metrics", f"ranking {label}", lambda v=value, kw=kw: metrics.query_metrics(**_with(kw, ranking=v)),
        "ranking")
for label, value in (("float", {"d0": 1.0}), ("list", ["d0"]), ("int id", {0: 1})):
    err("metrics.query_metrics", f"rels {label}", lambda v=value, kw=kw: metrics.query_metrics(**_with(kw, rels=v)), "rels")
err("metrics.query_metrics", "k_values", lambda kw=kw: metrics.query_metrics(**_with(kw, k_values=(0,))), "k_values")
ok("metrics.query_metrics", "second place", lambda kw=kw: metrics.query_metrics(**kw)["mrr@2"], eq(0.5))

# ---------------------------------------------------------------------------------------------
# hybrid
# ---------------------------------------------------------------------------------------------

_runs = [{"q": {"a": 0.9, "b": 0.5}}, {"q": {"b": 12.0, "c": 3.0}}]
for label, value in (("bare run dict", _runs[0]), ("empty", []), ("None", None), ("nan score", [{"q": {"a": float("nan"),
                                                                                                     "b": 0.1}}]),
                     ("int doc id", [{"q": {1: 0.5}}]), ("string", "runs")):
    err("hybrid.rrf", f"runs {label}", lambda v=value: hybrid.rrf(v), "runs")
sweep_int("hybrid.rrf", hybrid.rrf, dict(runs=_runs), "depth", none_ok=True)
for label, value in (("negative", -1), ("bool", True), ("float", 60.0), ("None", None)):
    err("hybrid.rrf", f"k {label}", lambda v=value: hybrid.rrf(_runs, k=v), "k")
ok("hybrid.rrf", "depth past the runs", lambda: hybrid.rrf(_runs, depth=1000), eq(hybrid.rrf(_runs)))


def _rrf_ref(g):
    want = {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62}
    assert set(g) == set(want) and all(math.isclose(g[d], want[d], rel_tol=1e-12) for d in want), g


ok("hybrid.rrf", "hand-computed", lambda: hybrid.rrf(_runs, k=60)["q"], _rrf_ref)
for label, value in (("nan", {"a": float("nan"), "b": 1.0}), ("inf", {"a": float("inf")}), ("int id", {1: 0.5}),
                     ("list", [0.5]), ("None", None)):
    err("hybrid.minmax", f"scores {label}", lambda v=value: hybrid.minmax(v), "scores")
ok("hybrid.minmax", "huge range", lambda: hybrid.minmax({"a": -1e300, "b": 1e300}), eq({"a": 0.0, "b": 1.0}))
kw = dict(dense=RUN, sparse={"q0": {"d1": 2.0}}, alpha=0.5)
sweep_number("hybrid.convex", hybrid.convex, kw, "alpha", below=-0.1, above=1.1)
for arg in ("dense", "sparse"):
    for label, value in (("nan", {"q0": {"d0": float("nan")}}), ("int id", {"q0": {0: 1.0}}), ("list", [1]), ("None", None)):
        err("hybrid.convex", f"{arg} {label}", lambda v=value, a=arg, kw=kw: hybrid.convex(**_with(kw, **{a: v})), arg)
ok("hybrid.convex", "alpha 1 is the dense run scaled", lambda: hybrid.convex(RUN, {}, 1.0),
   eq({q: hybrid.minmax(s) for q, s in RUN.items()}))

# ---------------------------------------------------------------------------------------------
# frontier
# ---------------------------------------------------------------------------------------------

for fn_name, extra in (("pareto_front", {}), ("pick_config", {"budget": 1000}), ("tradeoff", {"choice": 1})):
    fn = getattr(frontier, fn_name)
    for label, value in (("nan gain", [dict(ROWS[0], **{"nDCG@10": float("nan")})] + ROWS[1:]),
                         ("inf cost", [dict(ROWS[0], **{"bytes/doc": float("inf")})] + ROWS[1:]),
                         ("string gain", [dict(ROWS[0], **{"nDCG@10": "0.6"})] + ROWS[1:]),
                         ("bool cost", [dict(ROWS[0], **{"bytes/doc": True})] + ROWS[1:]),
                         ("missing key", [{"name": "x"}] + ROWS[1:]), ("empty", []), ("None", None),
                         ("bare dict", ROWS[0]), ("list of lists", [[1, 2]])):
        err(f"frontier.{fn_name}", f"rows {label}", lambda v=value, f=fn, e=extra: f(v, **e), "row")
ok("frontier.pareto_front", "a NaN row is never chosen: equal rows kept, order by cost",
   lambda: frontier.pareto_front(ROWS + [dict(ROWS[1])]), eq([1, 3, 2, 0]))
for label, value in (("nan", float("nan")), ("negative", -1), ("zero", 0), ("bool", True), ("string", "1000"), ("None", None)):
    err("frontier.pick_config", f"budget {label}", lambda v=value: frontier.pick_config(ROWS, v), "budget")
for label, value in (("nan", float("nan")), ("negative", -1), ("bool", True)):
    err("frontier.pick_config", f"max_ms {label}", lambda v=value: frontier.pick_config(ROWS, 1000, max_ms=v), "max_ms")
ok("frontier.pick_config", "budget under every row", lambda: frontier.pick_config(ROWS, 10), eq(None))
ok("frontier.pick_config", "best that fits", lambda: frontier.pick_config(ROWS, 1000), eq(2))
for arg in ("choice", "reference"):
    for label, value in (("negative", -1), ("past the rows", 3), ("bool", True), ("float", 1.0), ("None", None)):
        err("frontier.tradeoff", f"{arg} {label}", lambda v=value, a=arg: frontier.tradeoff(ROWS, **{"choice": 1, a: v}), arg)
err("frontier.tradeoff", "zero reference gain", lambda: frontier.tradeoff(
    [dict(ROWS[0], **{"nDCG@10": 0.0})] + ROWS[1:], 1), "reference")
ok("frontier.tradeoff", "ratios", lambda: frontier.tradeoff(ROWS, 1),
   lambda g: (close(32.0)(g["times smaller"]), close(0.58 / 0.65)(g["retention"]), close(0.07)(g["gap to best"])))
kw = dict(memory_bytes=2 ** 30, n_docs=1000, reserve=0.25)
sweep_number("frontier.budget_per_document", frontier.budget_per_document, kw, "memory_bytes", below=0)
sweep_int("frontier.budget_per_document", frontier.budget_per_document, kw, "n_docs")
sweep_number("frontier.budget_per_document", frontier.budget_per_document, kw, "reserve", below=-0.1, above=1)
ok("frontier.budget_per_document", "hand-computed", lambda kw=kw: frontier.budget_per_document(**kw), close(2 ** 30 * 0.75 / 1000))

_search_ok = (lambda: (np.array([[2.0, 1.0], [2.0, 1.0]]), np.array([[0, 1], [1, 0]])))
kw = dict(name="x", family="toy", bytes_per_doc=12, search=_search_ok, query_ids=["q0", "q1"], doc_ids=["d0", "d1"],
          qrels={"q0": {"d0": 1}, "q1": {"d1": 1}}, repeat=1)
sweep_number("frontier.measure", frontier.measure, kw, "bytes_per_doc", below=0)
sweep_int("frontier.measure", frontier.measure, kw, "repeat")
sweep_ids("frontier.measure", frontier.measure, kw, "query_ids")
sweep_ids("frontier.measure", frontier.measure, kw, "doc_ids")
for label, value in (("not callable", 3), ("None", None)):
    err("frontier.measure", f"search {label}", lambda v=value, kw=kw: frontier.measure(**_with(kw, search=v)), "search")
for label, value in (("nan scores", lambda: (np.array([[np.nan, 1.0], [2.0, 1.0]]), np.array([[0, 1], [1, 0]]))),
                     ("lists", lambda: ([[2.0, 1.0], [2.0, 1.0]], [[0, 1], [1, 0]])),
                     ("wrong rows", lambda: (np.zeros((1, 2)), np.zeros((1, 2), int)))):
    err("frontier.measure", f"search result {label}", lambda v=value, kw=kw: frontier.measure(**_with(kw, search=v)),
        "search", "scores")
for label, value in (("int qrels ids", {1: {"d0": 1}}), ("disjoint", {"Q": {"d0": 1}}), ("None", None)):
    err("frontier.measure", f"qrels {label}", lambda v=value, kw=kw: frontier.measure(**_with(kw, qrels=v)), "qrels", "run")
err("frontier.measure", "subset with unknown query", lambda kw=kw: frontier.measure(**_with(kw, subsets={"s": {"q9": {"d0": 1}}})),
    "subsets")
err("frontier.measure", "name", lambda kw=kw: frontier.measure(**_with(kw, name=3)), "name")
ok("frontier.measure", "perfect run", lambda kw=kw: frontier.measure(**kw)["nDCG@10"], eq(1.0))

# ---------------------------------------------------------------------------------------------
# eval
# ---------------------------------------------------------------------------------------------

kw = dict(before={"a": 0.5, "b": 0.2}, after={"a": 0.7, "b": 0.2})
sweep_number("eval.paired_comparison", ceval.paired_comparison, kw, "tol", below=-0.1)
for arg in ("before", "after"):
    for label, value in (("nan", {"a": float("nan"), "b": 0.1}), ("int ids", {1: 0.5, 2: 0.1}), ("list", [0.5, 0.2]),
                         ("None", None), ("bool", {"a": True, "b": 0.2})):
        err("eval.paired_comparison", f"{arg} {label}", lambda v=value, a=arg, kw=kw: ceval.paired_comparison(**_with(kw, **{a: v})),
            arg)
err("eval.paired_comparison", "different queries", lambda: ceval.paired_comparison({"a": 1.0}, {"b": 1.0}), "before")
ok("eval.paired_comparison", "a NaN-free count", lambda kw=kw: ceval.paired_comparison(**kw),
   eq({"mean_delta": 0.1, "wins": 1, "losses": 0, "ties": 1}))
for arg in ("test_qrels", "train_qrels"):
    for label, value in (("int ids", {1: {"d": 1}}), ("None", None), ("float relevance", {"q": {"d": 1.0}})):
        err("eval.unseen_document_qrels", f"{arg} {label}",
            lambda v=value, a=arg: ceval.unseen_document_qrels(**_with({"test_qrels": QRELS, "train_qrels": QRELS}, **{a: v})),
            arg)
ok("eval.unseen_document_qrels", "hand-computed", lambda: ceval.unseen_document_qrels(QRELS, {"t": {"d1": 1}}),
   eq({"q0": {"d0": 1}, "q2": {"d2": 2}}))
_ds = NS(corpus={"d0": {"title": "", "text": "x"}}, queries={"q": "x"}, qrels={"q": {"d0": 1}})
for label, value in (("zero", 0), ("above the corpus", 2), ("bool", True), ("float", 1.0), ("string", "1")):
    err("eval.evaluate_dense", f"k {label}", lambda v=value: ceval.evaluate_dense(None, _ds, k=v), "k")
err("eval.evaluate_dense", "ds", lambda: ceval.evaluate_dense(None, "scifact"), "ds")
err("eval.evaluate_dense", "batch_size", lambda: ceval.evaluate_dense(None, _ds, batch_size=0), "batch_size")
cli("eval.main", "--split dev", lambda: ceval.main(["--split", "dev"]), "--split")
cli("eval.main", "--batch-size 0", lambda: ceval.main(["--batch-size", "0"]), "--batch-size")
cli("eval.main", "unknown flag", lambda: ceval.main(["--k", "3"]), "--k")
err("eval.main", "argv as a string", lambda: ceval.main("--small"), "argv")

# ---------------------------------------------------------------------------------------------
# sparse
# ---------------------------------------------------------------------------------------------

sweep_texts("sparse.BM25Index.build", sparse.BM25Index.build, dict(texts=["aspirin lowers fever", "zinc"]), "texts")
err("sparse.BM25Index.build", "empty", lambda: sparse.BM25Index.build([]), "texts")
sweep_number("sparse.BM25Index.build", sparse.BM25Index.build, dict(texts=["a b", "c"]), "k1", below=-1)
sweep_number("sparse.BM25Index.build", sparse.BM25Index.build, dict(texts=["a b", "c"]), "b", below=-0.1, above=1.1)
_bm = sparse.BM25Index.build(["aspirin lowers fever", "zinc shortens colds", "aspirin aspirin"])
sweep_texts("sparse.BM25Index.encode_queries", _bm.encode_queries, dict(queries=["aspirin"]), "queries")
sweep_texts("sparse.BM25Index.score", _bm.score, dict(queries=["aspirin"]), "queries")
ok("sparse.BM25Index.score", "against the weight formula", lambda: _bm.score(["aspirin fever"])[0],
   close([sparse.bm25_term_weight(1, 2, 3, 8 / 3, 3) + sparse.bm25_term_weight(1, 1, 3, 8 / 3, 3), 0.0,
          sparse.bm25_term_weight(2, 2, 2, 8 / 3, 3)], rtol=1e-6))
ok("sparse.BM25Index.nnz_per_doc", "distinct terms", lambda: _bm.nnz_per_doc(), eq(np.array([3, 3, 1])))
ok("sparse.BM25Index.build", "idf of a built index", lambda: _bm.idf[_bm.vocab["aspirin"]], close(math.log1p((3 - 2 + 0.5) / 2.5)))
for label, value in (("int", 3), ("None", None), ("list", ["a"]), ("bytes", b"a")):
    err("sparse.tokenize", f"text {label}", lambda v=value: sparse.tokenize(v), "text")
ok("sparse.tokenize", "unicode and digits", lambda: sparse.tokenize("IL-6 rose 2.5-fold"), eq(["il", "6", "rose", "2", "5", "fold"]))
kw = dict(tf=2, df=10, doc_len=100, avg_doc_len=120, n_docs=1000)
for arg in ("tf", "df", "doc_len", "avg_doc_len"):
    for label, value in (("nan", float("nan")), ("string", "2"), ("bool", True), ("None", None), ("list", [1, 2])):
        err("sparse.bm25_term_weight", f"{arg} {label}", lambda v=value, a=arg, kw=kw: sparse.bm25_term_weight(**_with(kw, **{a: v})), arg)
sweep_int("sparse.bm25_term_weight", sparse.bm25_term_weight, kw, "n_docs")
err("sparse.bm25_term_weight", "df above n_docs", lambda kw=kw: sparse.bm25_term_weight(**_with(kw, df=2000)), "df")
err("sparse.bm25_term_weight", "avg_doc_len zero", lambda kw=kw: sparse.bm25_term_weight(**_with(kw, avg_doc_len=0)), "avg_doc_len")
err("sparse.bm25_term_weight", "negative tf", lambda kw=kw: sparse.bm25_term_weight(**_with(kw, tf=-1)), "tf")
ok("sparse.bm25_term_weight", "hand-computed", lambda kw=kw: sparse.bm25_term_weight(**kw),
   close(math.log1p((1000 - 10 + 0.5) / 10.5) * 2 / (2 + 0.9 * (1 - 0.4 + 0.4 * 100 / 120))))
ok("sparse.bm25_term_weight", "k1 = 0 and tf = 0", lambda kw=kw: sparse.bm25_term_weight(**_with(kw, tf=0), k1=0.0), eq(0.0))

# ---------------------------------------------------------------------------------------------
# adaptor (PCA and the Matryoshka-Adaptor)
# ---------------------------------------------------------------------------------------------

PCA8 = adaptor.pca_fit(CE)
sweep_arrays("adaptor.pca_fit", adaptor.pca_fit, dict(corpus_emb=CE), {"corpus_emb": (None, False)})
err("adaptor.pca_fit", "one row", lambda: adaptor.pca_fit(CE[:1]), "corpus_emb")
ok("adaptor.pca_fit", "orthonormal axes", lambda: adaptor.pca_fit(CE).components.T @ adaptor.pca_fit(CE).components,
   close(np.eye(8), atol=1e-5))
sweep_arrays("adaptor.pca_reduce", adaptor.pca_reduce, dict(emb=QE, pca=PCA8, dim=4), {"emb": ("pca", False)})
sweep_int("adaptor.pca_reduce", adaptor.pca_reduce, dict(emb=QE, pca=PCA8, dim=4), "dim", high=8)
err("adaptor.pca_reduce", "pca not a Pca", lambda: adaptor.pca_reduce(QE, {"mean": 0}, 4), "pca")
ok("adaptor.pca_reduce", "unit rows", lambda: np.linalg.norm(adaptor.pca_reduce(QE, PCA8, 4), axis=1),
   close(np.ones(3), rtol=1e-5))
ok("adaptor.Pca", "a record pca_fit builds", lambda: isinstance(PCA8, adaptor.Pca), eq(True))


def _t(x):
    import torch
    return torch.from_numpy(np.asarray(x))


def _tensor_cases(target, fn, kw, names):
    for name in names:
        for label, value in (("numpy array", np.asarray(kw[name])), ("None", None), ("1-D", kw[name][0]),
                             ("int tensor", kw[name].long()), ("nan", _t(np.where(np.eye(*kw[name].shape) > 0, np.nan,
                                                                                   kw[name].numpy())).float())):
            err(target, f"{name} {label}", lambda v=value, n=name: fn(**_with(kw, **{n: v})), name)


LOSS_KW = dict(full=_t(CE), adapted=_t(CE * 0.5 + 0.1))
_tensor_cases("adaptor.pairwise_similarity_loss", adaptor.pairwise_similarity_loss, LOSS_KW, ["full", "adapted"])
_tensor_cases("adaptor.reconstruction_loss", adaptor.reconstruction_loss, LOSS_KW, ["full", "adapted"])
for target, fn in (("adaptor.pairwise_similarity_loss", adaptor.pairwise_similarity_loss),
                   ("adaptor.reconstruction_loss", adaptor.reconstruction_loss)):
    err(target, "shapes differ", lambda fn=fn: fn(_t(CE), _t(CE[:, :4])), "adapted")
for label, dims in (("empty", ()), ("zero", (0,)), ("above D", (9,)), ("float", (2.0,)), ("bare int", 4)):
    err("adaptor.pairwise_similarity_loss", f"dims {label}",
        lambda d=dims: adaptor.pairwise_similarity_loss(_t(CE), _t(CE), d), "dims")
ok("adaptor.pairwise_similarity_loss", "identical inputs", lambda: float(adaptor.pairwise_similarity_loss(_t(CE), _t(CE), (8,))),
   close(0.0, atol=1e-6))
ok("adaptor.reconstruction_loss", "zero for identical", lambda: float(adaptor.reconstruction_loss(_t(CE), _t(CE))), eq(0.0))
NN = _t(np.array([[1], [0], [3], [2], [5], [4]], np.int64))
TOPK_KW = dict(full=_t(CE), adapted=_t(CE * 0.5 + 0.1), neighbors=NN)
_tensor_cases("adaptor.topk_similarity_loss", adaptor.topk_similarity_loss, TOPK_KW, ["full", "adapted"])
for label, value in (("numpy", NN.numpy()), ("float", NN.float()), ("wrong rows", NN[:3]), ("out of range", NN + 6),
                     ("negative", NN - 7), ("1-D", NN[:, 0]), ("no columns", NN[:, :0])):
    err("adaptor.topk_similarity_loss", f"neighbors {label}",
        lambda v=value: adaptor.topk_similarity_loss(_t(CE), _t(CE), v), "neighbors")
ok("adaptor.topk_similarity_loss", "identical inputs",
   lambda: float(adaptor.topk_similarity_loss(_t(CE), _t(CE), NN, (8,))), close(0.0, atol=1e-6))
sweep_arrays("adaptor.nearest_neighbors", adaptor.nearest_neighbors, dict(corpus_emb=CE, k=2), {"corpus_emb": (None, False)})
sweep_int("adaptor.nearest_neighbors", adaptor.nearest_neighbors, dict(corpus_emb=CE, k=2), "k", high=5)
ok("adaptor.nearest_neighbors", "never itself", lambda: bool((adaptor.nearest_neighbors(CE, 5) != np.arange(6)[:, None]).all()),
   eq(True))
ADAPTOR8 = {"mean": np.zeros(8, np.float32), "rotation": np.eye(8, dtype=np.float32), "w1": np.ones((8, 3), np.float32), "b1": np.zeros(3, np.float32), "w2": np.zeros((3, 8), np.float32),
            "b2": np.zeros(8, np.float32)}
sweep_arrays("adaptor.adapt", adaptor.adapt, dict(emb=QE, adaptor=ADAPTOR8, dim=4), {"emb": ("adaptor", False)})
sweep_int("adaptor.adapt", adaptor.adapt, dict(emb=QE, adaptor=ADAPTOR8, dim=4), "dim", high=8, none_ok=True)
err("adaptor.adapt", "adaptor not a dict", lambda: adaptor.adapt(QE, [1, 2]), "adaptor")
err("adaptor.adapt", "adaptor without w2", lambda: adaptor.adapt(QE, {"w1": ADAPTOR8["w1"]}), "adaptor")
ok("adaptor.adapt", "untrained is the identity", lambda: adaptor.adapt(QE, ADAPTOR8),
   close(QE / np.linalg.norm(QE, axis=1, keepdims=True), rtol=1e-5, atol=1e-6))
TRAIN_KW = dict(corpus_emb=CE, dims=(4, 2), k=2, steps=2, batch_size=4, hidden=4, show_progress=False)
sweep_arrays("adaptor.train_adaptor", adaptor.train_adaptor, TRAIN_KW, {"corpus_emb": (None, False)})
for name, high in (("k", 5), ("steps", None), ("hidden", None), ("seed", None)):
    sweep_int("adaptor.train_adaptor", adaptor.train_adaptor, TRAIN_KW, name, high=high, skip=("zero",) if name == "seed" else ())
sweep_int("adaptor.train_adaptor", adaptor.train_adaptor, TRAIN_KW, "batch_size", skip=("zero",))
err("adaptor.train_adaptor", "batch_size 1", lambda: adaptor.train_adaptor(**_with(TRAIN_KW, batch_size=1)), "batch_size")
sweep_number("adaptor.train_adaptor", adaptor.train_adaptor, TRAIN_KW, "lr", below=0.0)
sweep_bool("adaptor.train_adaptor", adaptor.train_adaptor, TRAIN_KW, "show_progress")
for label, value in (("two numbers", (1.0, 1.0)), ("negative", (1.0, -1.0, 0.1)), ("nan", (1.0, float("nan"), 0.1)),
                     ("None", None)):
    err("adaptor.train_adaptor", f"weights {label}", lambda v=value: adaptor.train_adaptor(**_with(TRAIN_KW, weights=v)),
        "weights")
for label, value in (("one array", CE), ("mismatched rows", (QE, CE)), ("other dims", (CE[:, :4], CE[:, :4])),
                     ("one pair", (CE[:1], CE[:1]))):
    err("adaptor.train_adaptor", f"pairs {label}", lambda v=value: adaptor.train_adaptor(**_with(TRAIN_KW, pairs=v)),
        "pairs")
for label, value in (("unknown", "random"), ("None", None), ("upper case", "PCA")):
    err("adaptor.train_adaptor", f"init {label}", lambda v=value: adaptor.train_adaptor(**_with(TRAIN_KW, init=v)), "init")
ok("adaptor.train_adaptor", "two steps, supervised", lambda: adaptor.train_adaptor(**_with(TRAIN_KW, pairs=(CE, CE)))["supervised"],
   eq(True))
sweep_arrays("adaptor.arrays_fingerprint", lambda arrays: adaptor.arrays_fingerprint([arrays]), dict(arrays=CE),
             {"arrays": (None, False)})
ok("adaptor.arrays_fingerprint", "shape counts", lambda: len(set(adaptor.arrays_fingerprint([CE, CE.reshape(4, 12)]))),
   eq(2))
MODEL_KW = dict(corpus_emb=CE, steps=2, show_progress=False)
sweep_arrays("adaptor.adaptor_model", adaptor.adaptor_model, MODEL_KW, {"corpus_emb": (None, False)})
sweep_int("adaptor.adaptor_model", adaptor.adaptor_model, MODEL_KW, "steps")
sweep_int("adaptor.adaptor_model", adaptor.adaptor_model, MODEL_KW, "seed", skip=("zero",))
sweep_bool("adaptor.adaptor_model", adaptor.adaptor_model, MODEL_KW, "retrain")
err("adaptor.adaptor_model", "pairs one array", lambda: adaptor.adaptor_model(**_with(MODEL_KW, pairs=CE)), "pairs")

# ---------------------------------------------------------------------------------------------
# csr (sparse codes over frozen embeddings)
# ---------------------------------------------------------------------------------------------

SETUP_KW = dict(input_dim=8, hidden_dim=16, k=2)
for name, high in (("input_dim", None), ("hidden_dim", None), ("k", 16)):
    sweep_int("csr.csr_setup", csr.csr_setup, SETUP_KW, name, high=high)
err("csr.csr_setup", "hidden_dim below 4k", lambda: csr.csr_setup(8, 16, 5), "hidden_dim")
sweep_int("csr.csr_setup", csr.csr_setup, SETUP_KW, "k_aux", high=16, none_ok=True, skip=("zero",))
sweep_number("csr.csr_setup", csr.csr_setup, SETUP_KW, "beta", below=-0.1)
sweep_number("csr.csr_setup", csr.csr_setup, SETUP_KW, "gamma", below=-0.1)
HEAD8, LOSS8 = csr.csr_setup(8, 16, 2, seed=0)
SAE8 = HEAD8[0]
ok("csr.csr_setup", "k_aux defaults to the width", lambda: SAE8.k_aux, eq(16))
TRAIN_CSR_KW = dict(loss=LOSS8, corpus_emb=CE, steps=2, batch_size=4, show_progress=False)
sweep_arrays("csr.train_csr", csr.train_csr, TRAIN_CSR_KW, {"corpus_emb": (None, False)})
err("csr.train_csr", "loss not a CSRLoss", lambda: csr.train_csr(**_with(TRAIN_CSR_KW, loss="csr")), "loss")
err("csr.train_csr", "corpus of other dims", lambda: csr.train_csr(**_with(TRAIN_CSR_KW, corpus_emb=CE[:, :4])),
    "corpus_emb")
for name in ("steps", "pair_batch"):
    sweep_int("csr.train_csr", csr.train_csr, TRAIN_CSR_KW, name)
sweep_int("csr.train_csr", csr.train_csr, TRAIN_CSR_KW, "batch_size", skip=("zero",))
sweep_number("csr.train_csr", csr.train_csr, TRAIN_CSR_KW, "lr", below=0.0)
sweep_bool("csr.train_csr", csr.train_csr, TRAIN_CSR_KW, "show_progress")
for label, value in (("one array", CE), ("mismatched rows", (QE, CE)), ("other dims", (CE[:, :4], CE[:, :4]))):
    err("csr.train_csr", f"pairs {label}", lambda v=value: csr.train_csr(**_with(TRAIN_CSR_KW, pairs=v)), "pairs")
ok("csr.train_csr", "two steps", lambda: len(csr.train_csr(**TRAIN_CSR_KW)["losses"]), eq(2))
CODES_KW = dict(emb=CE, sae=SAE8)
sweep_arrays("csr.encode_codes", csr.encode_codes, CODES_KW, {"emb": ("sae", False)})
sweep_int("csr.encode_codes", csr.encode_codes, CODES_KW, "k", high=16, none_ok=True)
err("csr.encode_codes", "sae not a module", lambda: csr.encode_codes(CE, "sae"), "sae")
ok("csr.encode_codes", "k active per row", lambda: csr.active_dims(csr.encode_codes(CE, SAE8, k=3)) <= 3, eq(np.ones(6, bool)))
err("csr.csr_encoder", "sae not a module", lambda: csr.csr_encoder(LOSS8), "sae")
CODES8 = csr.encode_codes(CE, SAE8)
for label, value in (("dense array", CODES8.toarray()), ("None", None), ("list", [[1.0]])):
    err("csr.build_index", f"codes {label}", lambda v=value: csr.build_index(v), "codes")
err("csr.build_index", "inf value", lambda: csr.build_index(__import__("scipy.sparse").sparse.csr_matrix(
    np.array([[np.inf, 0.0]]))), "codes")
ok("csr.build_index", "the transpose", lambda: csr.build_index(CODES8).toarray(), close(CODES8.toarray().T))
INDEX8 = csr.build_index(CODES8)
SEARCH_KW = dict(index=INDEX8, query_codes=CODES8[:2], k=2)
err("csr.search", "index dense", lambda: csr.search(**_with(SEARCH_KW, index=INDEX8.toarray())), "index")
err("csr.search", "query_codes dense", lambda: csr.search(**_with(SEARCH_KW, query_codes=CODES8.toarray())), "query_codes")
err("csr.search", "query_codes other width", lambda: csr.search(**_with(SEARCH_KW, query_codes=CODES8[:, :8])),
    "query_codes")
sweep_int("csr.search", csr.search, SEARCH_KW, "k", high=6)
ok("csr.search", "itself first", lambda: csr.search(INDEX8, CODES8[:2], 1)[1][:, 0],
   eq(np.array([0, 1])))
sweep_int("csr.code_bytes", csr.code_bytes, dict(k=2, hidden_dim=16), "k", high=16)
sweep_int("csr.code_bytes", csr.code_bytes, dict(k=2, hidden_dim=16), "hidden_dim")
ok("csr.code_bytes", "k=32 of 1536", lambda: csr.code_bytes(32, 1536), eq(192))
HEAD_KW = dict(corpus_emb=CE, k=2, hidden_dim=16, steps=2, show_progress=False)
sweep_arrays("csr.csr_head", csr.csr_head, HEAD_KW, {"corpus_emb": (None, False)})
for name, high in (("k", 16), ("hidden_dim", None), ("steps", None)):
    sweep_int("csr.csr_head", csr.csr_head, HEAD_KW, name, high=high)
sweep_number("csr.csr_head", csr.csr_head, HEAD_KW, "gamma", below=-0.1)
sweep_bool("csr.csr_head", csr.csr_head, HEAD_KW, "retrain")
err("csr.csr_head", "pairs one array", lambda: csr.csr_head(**_with(HEAD_KW, pairs=CE)), "pairs")
err("csr.frozen_recipe", "not a config", lambda: csr.frozen_recipe({"small": True}), "cfg")
for label, value in (("1-D", CE[0]), ("None", None), ("nan", np.full((2, 2), np.nan))):
    err("csr.active_dims", f"codes {label}", lambda v=value: csr.active_dims(v), "codes")
ok("csr.active_dims", "explicit zeros not counted",
   lambda: csr.active_dims(__import__("scipy.sparse").sparse.csr_matrix(
       (np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))), eq(np.array([1])))

# ---------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------

_MINILM = []


def _minilm():
    """The packaged model, loaded by the first case that needs it (about a second)."""
    if not _MINILM:
        _MINILM.append(models.load_model(device="cpu"))
    return _MINILM[0]


for label, value in (("unknown", "tensorrt"), ("None", None), ("upper case", "ONNX"), ("int", 1)):
    err("backends.check_backend", f"backend {label}", lambda v=value: backends.check_backend(v), "backend")
ok("backends.check_backend", "onnx-int8", lambda: backends.check_backend("onnx-int8"), eq("onnx-int8"))
for label, value in (("a name", "all-MiniLM-L6-v2"), ("None", None), ("a list", [1, 2])):
    for fn_name in ("check_pipeline", "export_onnx", "quantize_int8"):
        err(f"backends.{fn_name}", f"model {label}", lambda f=getattr(backends, fn_name), v=value: f(v), "model")
    err("backends.cpu_encoder", f"model {label}", lambda v=value: backends.cpu_encoder(v, "onnx"), "model")
    err("backends.CpuEncoder", f"model {label}", lambda v=value: backends.CpuEncoder(v, "torch"), "model")
err("backends.check_pipeline", "CLS pooling", lambda: backends.check_pipeline(__import__(
    "sentence_transformers").SentenceTransformer(modules=[_minilm()[0], __import__(
        "sentence_transformers.sentence_transformer.modules", fromlist=["Pooling"]).Pooling(384, pooling_mode="cls")],
    device="cpu")), "pooling")
err("backends.check_pipeline", "no Pooling", lambda: backends.check_pipeline(__import__(
    "sentence_transformers").SentenceTransformer(modules=[_minilm()[0]], device="cpu")), "Pooling")
err("backends.cpu_encoder", "backend unknown", lambda: backends.cpu_encoder(_minilm(), "tensorrt"), "backend")
err("backends.CpuEncoder", "backend None", lambda: backends.CpuEncoder(_minilm(), None), "backend")
ENCODE_KW = dict(texts=["Aspirin lowers fever.", "Zinc"], batch_size=1)
sweep_texts("backends.CpuEncoder.encode", lambda **kw: backends.cpu_encoder(_minilm(), "torch").encode(**kw),
            ENCODE_KW, "texts")
sweep_int("backends.CpuEncoder.encode", lambda **kw: backends.cpu_encoder(_minilm(), "torch").encode(**kw),
          ENCODE_KW, "batch_size")
ok("backends.CpuEncoder.encode", "sentence-transformers' embeddings",
   lambda: backends.cpu_encoder(_minilm(), "torch").encode(ENCODE_KW["texts"]),
   lambda got: np.testing.assert_allclose(got, _minilm().encode(ENCODE_KW["texts"], normalize_embeddings=True),
                                          atol=1e-6))
THROUGHPUT_KW = dict(texts=["Aspirin lowers fever."], batch_size=1, repeats=1)
for label, value in (("a backend name", "onnx"), ("None", None), ("the model", "model")):
    err("backends.throughput", f"encoder {label}",
        lambda v=value: backends.throughput(_minilm() if v == "model" else v, ["a"]), "encoder")
sweep_texts("backends.throughput", lambda **kw: backends.throughput(backends.cpu_encoder(_minilm(), "torch"), **kw),
            THROUGHPUT_KW, "texts")
sweep_int("backends.throughput", lambda **kw: backends.throughput(backends.cpu_encoder(_minilm(), "torch"), **kw),
          THROUGHPUT_KW, "repeats")
_BTASK = compression.Retrieval(QE[:2] / np.linalg.norm(QE[:2], axis=1, keepdims=True), CE, QIDS[:2], DIDS,
                               {"q0": {"d0": 1}})
COMPARE_KW = dict(model=None, doc_texts=["a"], query_texts=["x", "y"], task=_BTASK, show_progress=False)
sweep_texts("backends.compare", backends.compare, COMPARE_KW, "doc_texts")
sweep_texts("backends.compare", backends.compare, COMPARE_KW, "query_texts")
err("backends.compare", "one query text short", lambda: backends.compare(**_with(COMPARE_KW, query_texts=["x"])),
    "query_texts")
for label, value in (("a dict", {"q": "x"}), ("None", None)):
    err("backends.compare", f"task {label}", lambda v=value: backends.compare(**_with(COMPARE_KW, task=v)), "task")
for label, value in (("a bare name", "onnx"), ("empty", []), ("unknown", ["tensorrt"])):
    err("backends.compare", f"backends {label}", lambda v=value: backends.compare(**_with(COMPARE_KW, backends=v)),
        "backend")
sweep_bool("backends.compare", backends.compare, COMPARE_KW, "show_progress")
sweep_int("backends.compare", backends.compare, COMPARE_KW, "repeats")
sweep_int("backends.compare", backends.compare, COMPARE_KW, "batch_size")
err("backends.compare", "model None", lambda: backends.compare(**COMPARE_KW), "model")
_BROWS = [{"backend": "torch", "docs/s": 10.0, "nDCG@10": 0.65}, {"backend": "onnx-int8", "docs/s": 14.0, "nDCG@10": 0.645}]
CHOOSE_KW = dict(rows=_BROWS, max_ndcg_drop=0.01, min_speedup=1.2)
for label, value in (("a dict", _BROWS[0]), ("empty", []), ("None", None), ("a string", "torch")):
    err("backends.choose_backend", f"rows {label}", lambda v=value: backends.choose_backend(v), "rows")
for label, value in (("no torch row", _BROWS[1:]), ("two torch rows", _BROWS[:1] * 2),
                     ("a key missing", [{"backend": "torch", "docs/s": 1.0}]),
                     ("nan speed", [{"backend": "torch", "docs/s": float("nan"), "nDCG@10": 0.5}]),
                     ("nDCG above 1", [{"backend": "torch", "docs/s": 1.0, "nDCG@10": 65.0}])):
    err("backends.choose_backend", f"rows {label}", lambda v=value: backends.choose_backend(v), "rows")
sweep_number("backends.choose_backend", backends.choose_backend, CHOOSE_KW, "max_ndcg_drop", below=-0.01, above=1.5)
sweep_number("backends.choose_backend", backends.choose_backend, CHOOSE_KW, "min_speedup", below=-1.0)
ok("backends.choose_backend", "1.4x at 0.005 lost", lambda: backends.choose_backend(_BROWS), eq("onnx-int8"))
ok("backends.choose_backend", "not worth it", lambda: backends.choose_backend(_BROWS, min_speedup=1.5), eq("torch"))
ok("backends.throughput", "a positive rate",
   lambda: backends.throughput(backends.cpu_encoder(_minilm(), "torch"), **THROUGHPUT_KW)[1] > 0, eq(True))

# ---------------------------------------------------------------------------------------------
# matryoshka
# ---------------------------------------------------------------------------------------------

sweep_arrays("matryoshka.truncate", matryoshka.truncate, dict(emb=CE, dim=4), {"emb": (None, False)})
sweep_int("matryoshka.truncate", matryoshka.truncate, dict(emb=CE, dim=4), "dim", high=8)
sweep_bool("matryoshka.truncate", matryoshka.truncate, dict(emb=CE, dim=4), "normalize")
for label, x in (("huge float64", CE.astype(np.float64) * 1e300), ("tiny float64", CE.astype(np.float64) * 1e-300),
                 ("huge float32", CE * 1e30), ("tiny float32", CE * 1e-30)):
    want = (x[:, :4] / np.abs(x[:, :4]).max(1, keepdims=True))
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    ok("matryoshka.truncate", f"{label} re-normalized", lambda v=x: matryoshka.truncate(v, 4), close(want, rtol=1e-6))
err("matryoshka.truncate", "float64 beyond float32, no normalize",
    lambda: matryoshka.truncate(CE.astype(np.float64) * 1e300, 4, normalize=False), "emb")
err("matryoshka.truncate", "float64 below float32, no normalize",
    lambda: matryoshka.truncate(CE.astype(np.float64) * 1e-300, 4, normalize=False), "emb")
ok("matryoshka.truncate", "zero row stays zero", lambda: matryoshka.truncate(np.zeros((1, 3)), 2), eq(np.zeros((1, 2))))

kw = dict(query_emb=TOY_Q, corpus_emb=TOY_C, query_ids=TOY_IDS[0], doc_ids=TOY_IDS[1], qrels=TOY_IDS[2], dims=(4, 3))
sweep_arrays("matryoshka.ndcg_by_dim", matryoshka.ndcg_by_dim, kw, {"query_emb": ("corpus_emb", False),
                                                                   "corpus_emb": ("query_emb", False)})
sweep_int("matryoshka.ndcg_by_dim", matryoshka.ndcg_by_dim, kw, "k", high=5, none_ok=True)
sweep_ids("matryoshka.ndcg_by_dim", matryoshka.ndcg_by_dim, kw, "query_ids")
sweep_ids("matryoshka.ndcg_by_dim", matryoshka.ndcg_by_dim, kw, "doc_ids")
for label, value in (("zero", (4, 0)), ("above D", (5,)), ("bool", (True,)), ("bare int", 4), ("empty", ())):
    err("matryoshka.ndcg_by_dim", f"dims {label}", lambda v=value, kw=kw: matryoshka.ndcg_by_dim(**_with(kw, dims=v)), "dims")
err("matryoshka.ndcg_by_dim", "qrels with int ids", lambda kw=kw: matryoshka.ndcg_by_dim(**_with(kw, qrels={0: {"d0": 1}})), "qrels")
ok("matryoshka.ndcg_by_dim", "default depth on a tiny corpus", lambda kw=kw: matryoshka.ndcg_by_dim(**kw),
   lambda g: (close(1.0)(g[4]), close((2 + 1 / math.log2(3)) / 3)(g[3])))

kw = dict(corpus_emb=CE, shortlist_dim=4)
sweep_arrays("matryoshka.funnel_index", matryoshka.funnel_index, kw, {"corpus_emb": (None, False)})
sweep_int("matryoshka.funnel_index", matryoshka.funnel_index, kw, "shortlist_dim", high=8)
sweep_bool("matryoshka.funnel_index", matryoshka.funnel_index, kw, "binary")
ok("matryoshka.funnel_index", "binary of tiny float64", lambda: matryoshka.funnel_index(_tiny64, 8, binary=True),
   eq(np.packbits(_tiny64[:, :8] > 0, axis=1)))
kw = dict(query_emb=QE, corpus_emb=CE, k=2, shortlist_dim=4, shortlist=4)
sweep_arrays("matryoshka.funnel_search", matryoshka.funnel_search, kw, {"query_emb": ("corpus_emb", False),
                                                                       "corpus_emb": ("query_emb", False)})
sweep_int("matryoshka.funnel_search", matryoshka.funnel_search, kw, "k", high=4)
sweep_int("matryoshka.funnel_search", matryoshka.funnel_search, kw, "shortlist")
sweep_int("matryoshka.funnel_search", matryoshka.funnel_search, kw, "shortlist_dim", high=8)
sweep_bool("matryoshka.funnel_search", matryoshka.funnel_search, kw, "binary")
for label, value in (("list", CE[:, :4].tolist()), ("wrong width", CE), ("binary index", CODES)):
    err("matryoshka.funnel_search", f"index {label}", lambda v=value, kw=kw: matryoshka.funnel_search(**_with(kw, index=v)), "index")
ok("matryoshka.funnel_search", "shortlist past the corpus is exact search",
   lambda kw=kw: matryoshka.funnel_search(**_with(kw, shortlist=1000, k=6)), ranked_like(np64_scores(QE, CE), 6))
ok("matryoshka.funnel_search", "huge float64 is exact", lambda: matryoshka.funnel_search(
    _big[0], _big[1], 3, shortlist_dim=8, shortlist=6), ranked_like(np64_scores(*_big), 3))

kw = dict(query_emb=QE, doc_emb=QE + 0.1, dims=(8, 4))
sweep_arrays("matryoshka.matryoshka_loss", matryoshka.matryoshka_loss, kw, {"query_emb": ("doc_emb", False),
                                                                           "doc_emb": ("query_emb", False)})
sweep_number("matryoshka.matryoshka_loss", matryoshka.matryoshka_loss, kw, "scale", below=0)
for label, value in (("one weight", (1.0,)), ("nan weight", (1.0, float("nan"))), ("string", "11")):
    err("matryoshka.matryoshka_loss", f"weights {label}", lambda v=value, kw=kw: matryoshka.matryoshka_loss(**_with(kw, weights=v)),
        "weights")
for label, value in (("above D", (9,)), ("zero", (0,)), ("bare int", 8)):
    err("matryoshka.matryoshka_loss", f"dims {label}", lambda v=value, kw=kw: matryoshka.matryoshka_loss(**_with(kw, dims=v)), "dims")


def _mrl_loss_ref(q, d, dims, scale=20.0):
    total = 0.0
    for m in dims:
        a = q[:, :m].astype(np.float64) / np.linalg.norm(q[:, :m].astype(np.float64), axis=1, keepdims=True)
        b = d[:, :m].astype(np.float64) / np.linalg.norm(d[:, :m].astype(np.float64), axis=1, keepdims=True)
        logits = scale * a @ b.T
        total += float(np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits)))
    return total


ok("matryoshka.matryoshka_loss", "huge float64", lambda: matryoshka.matryoshka_loss(QE.astype(np.float64) * 1e200,
                                                                                      (QE + 0.1).astype(np.float64) * 1e200,
                                                                                      (8, 4)),
   close(_mrl_loss_ref(QE, QE + 0.1, (8, 4)), rtol=1e-5))
kw = dict(emb1=QE, emb2=QE[::-1].copy(), gold=[1.0, 2.0, 3.0], dims=(8, 4))
sweep_arrays("matryoshka.sts_spearman_by_dim", matryoshka.sts_spearman_by_dim, kw,
             {"emb1": ("emb2", False), "emb2": ("emb1", False)})
for label, value in (("nan", [1.0, float("nan"), 2.0]), ("constant", [1.0, 1.0, 1.0]), ("short", [1.0, 2.0]),
                     ("string", "123"), ("None", None)):
    err("matryoshka.sts_spearman_by_dim", f"gold {label}", lambda v=value, kw=kw: matryoshka.sts_spearman_by_dim(**_with(kw, gold=v)),
        "gold")
err("matryoshka.sts_spearman_by_dim", "identical pairs", lambda: matryoshka.sts_spearman_by_dim(QE, QE, [1.0, 2.0, 3.0],
                                                                                                (8, 4)),
    "cosines")
for label, value in (("pairs as string", "ab"), ("pair of three", [("a", "b", "c")]), ("int text", [("a", 3)]),
                     ("empty", [])):
    err("matryoshka.train_mrl", label, lambda v=value: matryoshka.train_mrl(None, v), "pairs")
for label, value in (("increasing", (16, 32)), ("zero", (32, 0)), ("bool", (True,)), ("bare int", 32)):
    err("matryoshka.train_mrl", f"dims {label}", lambda v=value: matryoshka.train_mrl(None, [("a", "b")], dims=v), "dims")
for arg, value in (("epochs", 0), ("batch_size", 0), ("learning_rate", float("nan")), ("max_steps", 0), ("seed", -1)):
    err("matryoshka.train_mrl", arg, lambda a=arg, v=value: matryoshka.train_mrl(None, [("a", "b")], **{a: v}), arg)
err("matryoshka.train_mrl", "weights", lambda: matryoshka.train_mrl(None, [("a", "b")], dims=(8, 4), weights=(1.0,)),
    "weights")
err("matryoshka.sts_by_dim", "sts", lambda: matryoshka.sts_by_dim(None, "sts"), "sts")
err("matryoshka.sts_by_dim", "bare string sentences", lambda: matryoshka.sts_by_dim(
    None, NS(sentence1="ab", sentence2=["a"], score=[1.0])), "sentence1")
err("matryoshka.sts_by_dim", "dims", lambda: matryoshka.sts_by_dim(None, NS(sentence1=["a"], sentence2=["b"], score=[1.0]),
                                                                    dims=(0,)), "dims")
for arg, value in (("epochs", -1.0), ("batch_size", 0), ("learning_rate", 0), ("dims", (16, 32)), ("weights", (1.0,)),
                   ("max_steps", 0), ("limit", 0), ("seed", True), ("max_seq_length", 0), ("max_seq_length", 128.0)):
    err("matryoshka.MrlRecipe", arg, lambda a=arg, v=value: matryoshka.MrlRecipe(**{a: v}), arg)
ok("matryoshka.MrlRecipe", "defaults", lambda: matryoshka.MrlRecipe().dims, eq(matryoshka.MRL_DIMS))
for label, value in (("None", None), ("dict", {"small": True}), ("int flags", NS(small=1, full=0, seed=0)),
                     ("bad seed", NS(small=True, full=False, seed=-1))):
    err("matryoshka.mrl_recipe", f"cfg {label}", lambda v=value: matryoshka.mrl_recipe(v), "cfg")
ok("matryoshka.mrl_recipe", "small", lambda: matryoshka.mrl_recipe(NS(small=True, full=False, seed=0)).max_steps, eq(8))
err("matryoshka.mrl_model", "recipe", lambda: matryoshka.mrl_model("small"), "recipe")
err("matryoshka.mrl_model", "device", lambda: matryoshka.mrl_model(matryoshka.MrlRecipe(), device="gpu"), "device")
err("matryoshka.mrl_model", "small", lambda: matryoshka.mrl_model(matryoshka.MrlRecipe(), small="yes"), "small")
err("matryoshka.mrl_pairs", "test split as train", lambda: matryoshka.mrl_pairs(TEST, TEST), "train")
err("matryoshka.mrl_pairs", "no test_ds", lambda: matryoshka.mrl_pairs(TRAIN, None), "test_ds")
ok("matryoshka.mrl_pairs", "toy pairs", lambda: matryoshka.mrl_pairs(TRAIN, TEST),
   eq([("Aspirin lowers fever.", "Aspirin It reduces fever."), ("Zinc shortens colds.", "A zinc trial.")]))

# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

_leaky = NS(queries={"t1": "Aspirin lowers fever."})
kw = dict(train_query_ids=["q1"], train_texts=["Vitamin C cures colds."], test_ds=_leaky)
for label, value in (("bare string", "aspirin lowers fever."), ("int item", ["a", 3]), ("None", None)):
    err("training.check_no_leakage", f"train_texts {label}",
        lambda v=value, kw=kw: training.check_no_leakage(**_with(kw, train_texts=v)), "train_texts")
for label, value in (("bare string", "t1"), ("int ids", [1]), ("None", None), ("spaces", [" q1"])):
    err("training.check_no_leakage", f"train_query_ids {label}",
        lambda v=value, kw=kw: training.check_no_leakage(**_with(kw, train_query_ids=v)), "train_query_ids")
for label, value in (("int query ids", NS(queries={1: "Aspirin lowers fever."})), ("None", None),
                     ("list queries", NS(queries=["a"]))):
    err("training.check_no_leakage", f"test_ds {label}", lambda v=value, kw=kw: training.check_no_leakage(**_with(kw, test_ds=v)),
        "test_ds")
err("training.check_no_leakage", "a leak in a tuple of texts",
    lambda: training.check_no_leakage(["q1"], ("x", "ASPIRIN lowers  fever."), _leaky), "test query", types=(training.LeakageError,))
ok("training.check_no_leakage", "no leak", lambda kw=kw: training.check_no_leakage(**kw),
   eq({"test_queries": 1, "train_queries": 1, "train_texts": 1}))
for fn_name in ("train_examples", "guarded_examples"):
    fn = getattr(training, fn_name)
    err(f"training.{fn_name}", "test split", lambda f=fn: f(TEST, TEST), "train")
    err(f"training.{fn_name}", "int query ids", lambda f=fn: f(NS(split="train", queries={1: "a"}, qrels={}, corpus={}),
                                                                  TEST), "train_ds")
    err(f"training.{fn_name}", "float relevance", lambda f=fn: f(NS(split="train", queries={"a": "x"},
                                                                     qrels={"a": {"d1": 1.0}}, corpus={}), TEST), "qrels")
err("training.guarded_examples", "no test_ds", lambda: training.guarded_examples(TRAIN, None), "test_ds")
ok("training.train_examples", "toy pairs", lambda: [e.query_id for e in training.train_examples(TRAIN, TEST)], eq(["a", "b"]))
for label, value in (("None", None), ("list", ["a"]), ("int ids", NS(queries={1: "x"})), ("int text", NS(queries={"a": 3}))):
    err("training.duplicate_queries", f"test_ds {label}", lambda v=value: training.duplicate_queries(TRAIN, v), "test_ds")
ok("training.duplicate_queries", "case and spaces", lambda: training.duplicate_queries(
    TRAIN, NS(queries={"t": " zinc  SHORTENS colds."})), eq({"b": "t"}))
for label, value in (("bare string column", {"anchor": "text"}), ("unequal", {"anchor": ["a"], "positive": ["a", "b"]}),
                     ("int text", {"anchor": [1]}), ("empty", {}), ("list", [["a"]]), ("None", None)):
    err("training.fit", f"columns {label}", lambda v=value: training.fit(None, v, None), "columns")
for arg, value in (("epochs", 0), ("batch_size", True), ("learning_rate", -1e-5), ("max_steps", 0), ("seed", 1.5),
                   ("show_progress", "yes"), ("max_seq_length", 4), ("max_seq_length", "128")):
    err("training.fit", arg, lambda a=arg, v=value: training.fit(None, {"anchor": ["a"]}, object(), **{a: v}), arg)
err("training.fit", "loss None", lambda: training.fit(None, {"anchor": ["a"]}, None), "loss")
for label, value in (("None", None), ("dict", {"epochs": 1.0}), ("class", matryoshka.MrlRecipe)):
    err("training.recipe_key", label, lambda v=value: training.recipe_key(v), "recipe")
ok("training.recipe_key", "field at its default left out", lambda: "max_seq_length" in training.recipe_key(
    matryoshka.MrlRecipe()), eq(False))

# ---------------------------------------------------------------------------------------------
# finetune
# ---------------------------------------------------------------------------------------------

kw = dict(query_emb=QE, corpus_emb=CE, positives=[[0], [1], [2, 3]], num_negatives=2)
sweep_arrays("finetune.mine_hard_negatives", finetune.mine_hard_negatives, kw,
             {"query_emb": ("corpus_emb", False), "corpus_emb": ("query_emb", False)})
sweep_int("finetune.mine_hard_negatives", finetune.mine_hard_negatives, kw, "num_negatives")
sweep_int("finetune.mine_hard_negatives", finetune.mine_hard_negatives, kw, "range_max", none_ok=True)
for label, value in (("negative", -1), ("bool", True), ("float", 1.0)):
    err("finetune.mine_hard_negatives", f"range_min {label}",
        lambda v=value, kw=kw: finetune.mine_hard_negatives(**_with(kw, range_min=v)), "range_min")
for arg in ("absolute_margin", "relative_margin"):
    for label, value in (("nan", float("nan")), ("string", "0.1"), ("bool", True)):
        err("finetune.mine_hard_negatives", f"{arg} {label}",
            lambda v=value, a=arg, kw=kw: finetune.mine_hard_negatives(**_with(kw, **{a: v})), arg)
for label, value in (("bare string", "012"), ("empty list", [[0], [], [1]]), ("too few", [[0]]), ("out of range", [[0], [9], [1]]),
                     ("bool", [[True], [1], [2]]), ("None", None), ("float", [[0.0], [1], [2]])):
    err("finetune.mine_hard_negatives", f"positives {label}",
        lambda v=value, kw=kw: finetune.mine_hard_negatives(**_with(kw, positives=v)), "positives")


def _mine_ref(g, positives=kw["positives"]):
    idx, s = g
    full = np64_scores(QE, CE)
    for r, pos in enumerate(positives):
        want = [c for c in np.argsort(-full[r], kind="stable") if c not in pos][:2]
        assert idx[r].tolist() == want and np.allclose(s[r], full[r, want], rtol=1e-5)


ok("finetune.mine_hard_negatives", "range_max past the corpus",
   lambda kw=kw: finetune.mine_hard_negatives(**_with(kw, range_max=1000)), _mine_ref)
for label, value, name in (("name", dict(name="mse"), "loss"),
                           ("mini_batch_size", dict(name="cached_mnrl", mini_batch_size=0), "mini_batch_size"),
                           ("bool mini_batch_size", dict(name="cached_mnrl", mini_batch_size=True), "mini_batch_size")):
    err("finetune.make_loss", label, lambda v=value: finetune.make_loss(None, **v), name)
err("finetune.make_loss", "model None", lambda: finetune.make_loss(None), "model")
for arg, value in (("negatives", "hard"), ("num_negatives", 0), ("range_min", -1), ("range_max", 0), ("relative_margin", -0.1),
                   ("loss", "mse"), ("mini_batch_size", 0), ("epochs", 0), ("batch_size", 2.0), ("learning_rate", float("inf")),
                   ("max_steps", -2), ("limit", 0), ("seed", "0"), ("max_seq_length", -1), ("max_seq_length", True)):
    err("finetune.FinetuneRecipe", arg, lambda a=arg, v=value: finetune.FinetuneRecipe(**{a: v}), arg)
for label, value in (("cfg None", (None,)), ("negatives", (NS(small=True, full=False, seed=0), "hard"))):
    err("finetune.finetune_recipe", label, lambda v=value: finetune.finetune_recipe(*v), label.split()[0])
ok("finetune.finetune_recipe", "small", lambda: finetune.finetune_recipe(NS(small=True, full=False, seed=0)).max_steps, eq(6))
err("finetune.training_columns", "recipe", lambda: finetune.training_columns(None, TRAIN, TEST, "none"), "recipe")
err("finetune.finetuned_model", "recipe", lambda: finetune.finetuned_model("none"), "recipe")
err("finetune.finetuned_model", "device", lambda: finetune.finetuned_model(finetune.FinetuneRecipe(), device="tpu"), "device")
err("finetune.finetuned_model", "small", lambda: finetune.finetuned_model(finetune.FinetuneRecipe(), small=1), "small")
err("finetune.compression_check", "ret", lambda: finetune.compression_check("ret"), "ret")
err("finetune.compression_check", "too few documents", lambda: finetune.compression_check(RET, 3), "ret")
sweep_int("finetune.compression_check", finetune.compression_check, dict(ret=RET10), "truncate_dim", high=4)
sweep_int("finetune.compression_check", finetune.compression_check, dict(ret=RET10, truncate_dim=3), "multiplier")
ok("finetune.compression_check", "toy", lambda: [r["ndcg@10"] for r in finetune.compression_check(RET10, 3, 1)],
   eq([1.0, 1.0, 0.7778, 1.0, 0.877]))

# ---------------------------------------------------------------------------------------------
# compression
# ---------------------------------------------------------------------------------------------

kw = dict(query_emb=TOY_Q, corpus_emb=TOY_C, query_ids=TOY_IDS[0], doc_ids=TOY_IDS[1], qrels=TOY_IDS[2])
sweep_arrays("compression.Retrieval", compression.Retrieval, kw,
             {"query_emb": ("corpus_emb", False), "corpus_emb": ("query_emb", False)})
sweep_ids("compression.Retrieval", compression.Retrieval, kw, "query_ids")
sweep_ids("compression.Retrieval", compression.Retrieval, kw, "doc_ids")
sweep_int("compression.Retrieval", compression.Retrieval, kw, "depth", high=5, none_ok=True)
for label, value in (("int ids", {0: {"d0": 1}}), ("disjoint", {}), ("None", None)):
    err("compression.Retrieval", f"qrels {label}", lambda v=value, kw=kw: compression.Retrieval(**_with(kw, qrels=v)), "qrels")
err("compression.Retrieval", "ids shorter than rows", lambda kw=kw: compression.Retrieval(**_with(kw, doc_ids=["d0"])), "doc_ids")
for label, value in (("nan", np.where(np.eye(3, 5, dtype=bool), np.nan, 0.0)), ("list", np.eye(3, 5).tolist()),
                     ("shape", np.eye(3, 4)), ("None", None), ("bool", np.eye(3, 5) > 0)):
    err("compression.Retrieval.metrics", f"scores {label}", lambda v=value: RET.metrics(v), "scores")
    err("compression.Retrieval.ndcg", f"scores {label}", lambda v=value: RET.ndcg(v), "scores")
ok("compression.Retrieval.metrics", "uint8 scores", lambda: RET.metrics(np.array(
    [[9, 0, 0, 0, 200], [0, 9, 0, 0, 200], [0, 0, 9, 0, 200]], np.uint8))["mrr@10"], eq(0.5))
ok("compression.Retrieval.ndcg", "perfect", lambda: RET.ndcg(np.eye(3, 5)), eq(1.0))
sweep_arrays("compression.Retrieval.dot_ndcg", RET.dot_ndcg, dict(q=TOY_Q, d=TOY_C), {"q": ("d", False), "d": ("q", False)})
ok("compression.Retrieval.dot_ndcg", "float64 huge", lambda: RET.dot_ndcg(TOY_Q.astype(np.float64) * 1e30, TOY_C), eq(1.0))
err("compression.Retrieval.from_dataset", "queries as a bare string (before the model)",
    lambda: compression.Retrieval.from_dataset(None, NS(queries="abc", corpus={"d": "x"}, qrels={})), "texts")
for fn_name, args in (("scalar_scores", (RANGES, 8)), ("naive_code_ndcg", (RANGES, "int8")), ("hamming_ndcg", ()),
                      ("precision_table", ()), ("calibration_study", ({"corpus": TOY_C},)), ("binary_rescore_curve", ()),
                      ("binary_scoring_variants", ()), ("select_percentile", (8,))):
    fn = getattr(compression, fn_name)
    for label, value in (("None", None), ("tuple", (TOY_Q, TOY_C)), ("string", "scifact")):
        err(f"compression.{fn_name}", f"ret {label}", lambda v=value, f=fn, a=args: f(v, *a), "ret", "dev")
_r4 = Q.calibrate(TOY_C)
sweep_int("compression.scalar_scores", compression.scalar_scores, dict(ret=RET, ranges=_r4), "bits", high=8, skip=("None",))
err("compression.scalar_scores", "ranges of other dims", lambda: compression.scalar_scores(RET, RANGES, 8), "ranges")
ok("compression.scalar_scores", "8 bits lose nothing here", lambda: compression.scalar_scores(RET, _r4, 8)["sym"], eq(1.0))
err("compression.naive_code_ndcg", "dtype", lambda: compression.naive_code_ndcg(RET, _r4, "int4"), "dtype")
ok("compression.naive_code_ndcg", "int8", lambda: round(compression.naive_code_ndcg(RET, _r4, "int8"), 4), eq(0.877))
ok("compression.hamming_ndcg", "toy", lambda: round(compression.hamming_ndcg(RET), 4), eq(0.877))
sweep_int("compression.select_percentile", compression.select_percentile, dict(dev=RET), "bits", high=8)
for label, value in (("below 50", (40.0,)), ("nan", (float("nan"),)), ("empty", ()), ("bare number", 99.0)):
    err("compression.select_percentile", f"grid {label}", lambda v=value: compression.select_percentile(RET, 8, v), "grid")
ok("compression.select_percentile", "all tie", lambda: compression.select_percentile(RET, 8, (99.0, 99.9))[0], eq(99.9))
for label, value in (("zero", (0,)), ("nine", (9,)), ("bool", (True,)), ("bare int", 8), ("empty", ())):
    err("compression.precision_table", f"bits {label}", lambda v=value: compression.precision_table(RET, bits=v), "bits")
    err("compression.calibration_study", f"bits {label}", lambda v=value: compression.calibration_study(
        RET, {"corpus": TOY_C}, bits=v), "bits")
for label, value in (("nan", {8: float("nan")}), ("list", [99.0]), ("bad key", {9: 99.0})):
    err("compression.precision_table", f"percentiles {label}",
        lambda v=value: compression.precision_table(RET, percentiles=v, bits=(8,)), "percentiles")
ok("compression.precision_table", "fp32 row", lambda: compression.precision_table(RET, bits=(8,))[0]["bytes"], eq(16))
for label, value in (("nan sample", {"c": np.where(np.eye(5, 4, dtype=bool), np.nan, TOY_C)}), ("list sample", {"c": TOY_C.tolist()}),
                     ("other dims", {"c": TOY_C[:, :3]}), ("empty", {}), ("list", [TOY_C])):
    err("compression.calibration_study", f"samples {label}",
        lambda v=value: compression.calibration_study(RET, v, bits=(8,)), "samples")
for label, value in (("one", (1,)), ("bool", (True,)), ("bare int", 2)):
    err("compression.calibration_study", f"batch_sizes {label}", lambda v=value: compression.calibration_study(
        RET, {"corpus": TOY_C}, bits=(8,), batch_sizes=v), "batch_sizes")
ok("compression.calibration_study", "corpus row", lambda: compression.calibration_study(
    RET, {"corpus": TOY_C}, bits=(8,), batch_sizes=(2,))[0]["bytes/doc incl. ranges"], eq(10.4))
for label, value in (("empty rows", []), ("bare dict", {"a": 1}), ("list of lists", [[1]]), ("None", None)):
    err("compression.markdown_table", f"rows {label}", lambda v=value: compression.markdown_table(v), "rows")
err("compression.markdown_table", "columns as a string", lambda: compression.markdown_table([{"a": 1}], "a"), "columns")
ok("compression.markdown_table", "None cells", lambda: compression.markdown_table([{"a": 1, "b": None}]),
   eq("| a | b |\n|---|---|\n| 1 |  |"))
ok("compression.markdown_table", "columns without rows", lambda: compression.markdown_table([], ["a"]), eq("| a |\n|---|"))
sweep_int("compression.binary_rescore_curve", compression.binary_rescore_curve, dict(ret=RET), "k", high=5)
for label, value in (("zero", (0,)), ("bool", (True,)), ("bare int", 2)):
    err("compression.binary_rescore_curve", f"multipliers {label}",
        lambda v=value: compression.binary_rescore_curve(RET, v, k=1), "multipliers")
ok("compression.binary_rescore_curve", "toy", lambda: [r["ndcg@10 float32"] for r in compression.binary_rescore_curve(RET, (1, 2), k=1)],
   eq([0.6667, 1.0]))
ok("compression.binary_scoring_variants", "toy", lambda: compression.binary_scoring_variants(RET)[0]["ndcg@10"], eq(0.877))

# ---------------------------------------------------------------------------------------------
# colbert
# ---------------------------------------------------------------------------------------------

kw = dict(emb=TOK_D, mask=TOK_DM)
for label, value in (("nan", np.where(np.ones_like(TOK_D, bool), np.nan, TOK_D)), ("list", TOK_D.tolist()), ("2-D", TOK_D[0]),
                     ("int", TOK_D.astype(int)), ("None", None)):
    err("colbert.project", f"emb {label}", lambda v=value, kw=kw: colbert.project(**_with(kw, emb=v)), "emb")
for label, value in (("shape", TOK_DM[:, :2]), ("list", TOK_DM.tolist()), ("empty row", np.zeros_like(TOK_DM))):
    err("colbert.project", f"mask {label}", lambda v=value, kw=kw: colbert.project(**_with(kw, mask=v)), "mask", "emb")
for label, value in (("wrong rows", np.ones((3, 2), np.float32)), ("nan", np.full((4, 2), np.nan, np.float32)),
                     ("list", [[1.0, 0.0]] * 4), ("1-D", np.ones(4, np.float32))):
    err("colbert.project", f"weight {label}", lambda v=value, kw=kw: colbert.project(**_with(kw, weight=v)), "weight")
sweep_int("colbert.project", colbert.project, kw, "chunk", skip=("None",))
err("colbert.project", "dtype", lambda: colbert.project(TOK_D, TOK_DM, dtype=np.int8), "dtype")
ok("colbert.project", "unit tokens, zero padding", lambda: colbert.project(TOK_D, TOK_DM, dtype=np.float32),
   close(np.where(TOK_DM[..., None], TOK_D / np.linalg.norm(TOK_D.astype(np.float64), axis=-1, keepdims=True), 0.0),
         rtol=1e-5, atol=1e-7))
kw = dict(q_emb=TOK_Q, q_mask=_QM, d_emb=TOK_D, d_mask=TOK_DM, pairs=[(0, 0), (1, 2)], dim=2, epochs=1)
for arg in ("q_emb", "d_emb"):
    for label, value in (("nan", kw[arg] * np.nan), ("list", kw[arg].tolist()), ("2-D", kw[arg][0]), ("None", None)):
        err("colbert.train_projection", f"{arg} {label}",
            lambda v=value, a=arg, kw=kw: colbert.train_projection(**_with(kw, **{a: v})), arg)
for label, value in (("empty", []), ("out of range", [(0, 9)]), ("bare string", "01"), ("floats", [(0.0, 1.0)]),
                     ("triples", [(0, 1, 2)])):
    err("colbert.train_projection", f"pairs {label}", lambda v=value, kw=kw: colbert.train_projection(**_with(kw, pairs=v)), "pairs")
err("colbert.train_projection", "hard_negatives out of range", lambda: colbert.train_projection(
    **_with(kw, hard_negatives=[[9], [0]])), "hard_negatives")
sweep_int("colbert.train_projection", colbert.train_projection, kw, "dim", high=4)
sweep_int("colbert.train_projection", colbert.train_projection, kw, "epochs")
sweep_number("colbert.train_projection", colbert.train_projection, kw, "temperature", below=0)
sweep_number("colbert.train_projection", colbert.train_projection, kw, "lr", below=0)
ok("colbert.train_projection", "one epoch", lambda kw=kw: colbert.train_projection(**kw, show_progress=False)["weight"].shape,
   eq((4, 2)))
for label, value in (("bare string", "text"), ("int key", {1: "a"}), ("set", {"a"}), ("None", None), ("int item", [3])):
    err("colbert.token_embeddings", f"texts {label}", lambda v=value: colbert.token_embeddings(None, v, True), "texts", "item")
    err("colbert.encode_multivector", f"texts {label}", lambda v=value: colbert.encode_multivector(None, v, True), "texts",
        "item")
err("colbert.token_embeddings", "is_query", lambda: colbert.token_embeddings(None, ["a"], "yes"), "is_query")
err("colbert.token_embeddings", "max_length", lambda: colbert.token_embeddings(None, ["a"], True, max_length=0), "max_length")
err("colbert.token_embeddings", "batch_size", lambda: colbert.token_embeddings(None, ["a"], True, batch_size=-1), "batch_size")
err("colbert.encode_multivector", "projection", lambda: colbert.encode_multivector(None, ["a"], True, projection=[[1.0]]),
    "projection")
for label, value in (("bare string", "d1"), ("int ids", [1]), ("duplicates", ["d1", "d1"]), ("empty", [])):
    err("colbert.training_pairs", f"doc_ids {label}", lambda v=value: colbert.training_pairs(TRAIN, TEST, v), "doc_ids")
    err("colbert.colbert_projection", f"doc_ids {label}",
        lambda v=value: colbert.colbert_projection(None, TRAIN, TEST, (TOK_D, TOK_DM), v), "doc_ids")
ok("colbert.training_pairs", "toy rows", lambda: colbert.training_pairs(TRAIN, TEST, ["d2", "d1"])[:2],
   eq((["a", "b"], [(0, 1), (1, 0)])))
err("colbert.colbert_projection", "corpus_tokens", lambda: colbert.colbert_projection(None, TRAIN, TEST, TOK_D, ["d1"]),
    "corpus_tokens")
err("colbert.colbert_projection", "dim", lambda: colbert.colbert_projection(None, TRAIN, TEST, (TOK_D, TOK_DM),
                                                                             ["d1"] * 1, dim=0), "dim")

# ---------------------------------------------------------------------------------------------
# strategies (fine-tuning strategies side by side)
# ---------------------------------------------------------------------------------------------

DENSE = RNG.standard_normal((3, 6)).astype(np.float32)  # (Q, K) candidate scores
SPARSE = (10 * RNG.random((3, 6))).astype(np.float32)
POS, NEG = np.array([0, 1, 2]), np.array([[3, 4], [5, 0], [1, 2]])


def _teacher_ref():
    def mm(x):
        x = x.astype(np.float64)
        return (x - x.min(1, keepdims=True)) / (x.max(1, keepdims=True) - x.min(1, keepdims=True))
    return 0.5 * mm(DENSE) + 0.5 * mm(SPARSE)


def _margins_ref():
    h = _teacher_ref()
    return np.array([[h[i, POS[i]] - h[i, j] for j in NEG[i]] for i in range(3)])


TEACH_KW = dict(dense=DENSE, sparse=SPARSE)
sweep_arrays("strategies.hybrid_teacher", ST.hybrid_teacher, TEACH_KW, {"dense": ("sparse", False),
                                                                         "sparse": ("dense", False)})
sweep_number("strategies.hybrid_teacher", ST.hybrid_teacher, TEACH_KW, "alpha", below=-0.1, above=1.1)
ok("strategies.hybrid_teacher", "against float64", lambda: ST.hybrid_teacher(DENSE, SPARSE), close(_teacher_ref(), rtol=1e-6))
MARG_KW = dict(dense=DENSE, sparse=SPARSE, positive=POS, negatives=NEG)
sweep_arrays("strategies.teacher_margins", ST.teacher_margins, MARG_KW, {"dense": ("sparse", False)})
for label, value in (("list", [0, 1, 2]), ("float", POS.astype(float)), ("2-D", POS[:, None]), ("out of range", POS + 4),
                     ("one short", POS[:2])):
    err("strategies.teacher_margins", f"positive {label}",
        lambda v=value: ST.teacher_margins(**_with(MARG_KW, positive=v)), "positive")
for label, value in (("1-D", NEG[:, 0]), ("negative", -NEG), ("None", None)):
    err("strategies.teacher_margins", f"negatives {label}",
        lambda v=value: ST.teacher_margins(**_with(MARG_KW, negatives=v)), "negatives")
ok("strategies.teacher_margins", "against float64", lambda: ST.teacher_margins(**MARG_KW), close(_margins_ref(), atol=1e-6))
for arg, value in (("rank", 0), ("lora_alpha", 1.5), ("lora_dropout", 1.0), ("learning_rate", 0)):
    err("strategies.LoraRecipe", arg, lambda a=arg, v=value: ST.LoraRecipe(**{a: v}), arg)
for arg, value in (("alpha", 2.0), ("depth", 1), ("range_min", -1), ("queries", "logs"), ("title_docs", 0)):
    err("strategies.DistillRecipe", arg, lambda a=arg, v=value: ST.DistillRecipe(**{a: v}), arg)
for fn in ("lora_recipe", "distill_recipe"):
    err(f"strategies.{fn}", "cfg None", lambda f=getattr(ST, fn): f(None), "cfg")
    err(f"strategies.{fn}", "seed -1", lambda f=getattr(ST, fn): f(NS(small=True, full=False, seed=0), -1), "seed")
    ok(f"strategies.{fn}", "small", lambda f=getattr(ST, fn): f(NS(small=True, full=False, seed=0)).max_steps, eq(6))
for fn in ("add_lora", "lora_state", "merge_lora"):
    err(f"strategies.{fn}", "model None", lambda f=getattr(ST, fn): f(None), "model")
err("strategies.add_lora", "rank 0", lambda: ST.add_lora(None, rank=0), "rank")
err("strategies.add_lora", "seed -1", lambda: ST.add_lora(None, seed=-1), "seed")
for fn, rec in (("lora_model", ST.LoraRecipe), ("distill_model", ST.DistillRecipe)):
    err(f"strategies.{fn}", "recipe", lambda f=getattr(ST, fn): f(finetune.FinetuneRecipe()), "recipe")
    err(f"strategies.{fn}", "device", lambda f=getattr(ST, fn), r=rec: f(r(), device="tpu"), "device")
    err(f"strategies.{fn}", "small", lambda f=getattr(ST, fn), r=rec: f(r(), small=1), "small")
err("strategies.distill_columns", "recipe", lambda: ST.distill_columns(None, TRAIN, TEST, ST.LoraRecipe()), "recipe")
err("strategies.distill_columns", "model", lambda: ST.distill_columns(None, TRAIN, TEST, ST.DistillRecipe()), "model")
err("strategies.linear_adapter_data", "model", lambda: ST.linear_adapter_data(None, TRAIN, TEST), "model")
LIN_KW = dict(query_emb=CE, doc_emb=CE[::-1].copy(), steps=2)
sweep_arrays("strategies.train_linear_adapter", ST.train_linear_adapter, LIN_KW, {"query_emb": ("doc_emb", False),
                                                                                   "doc_emb": ("query_emb", False)})
err("strategies.train_linear_adapter", "negative_emb shape",
    lambda: ST.train_linear_adapter(**_with(LIN_KW, negative_emb=CE[:2])), "negative_emb")
err("strategies.train_linear_adapter", "side", lambda: ST.train_linear_adapter(**_with(LIN_KW, side="docs")), "side")
sweep_int("strategies.train_linear_adapter", ST.train_linear_adapter, LIN_KW, "steps")
sweep_number("strategies.train_linear_adapter", ST.train_linear_adapter, LIN_KW, "identity_weight", below=-1)
sweep_number("strategies.train_linear_adapter", ST.train_linear_adapter, LIN_KW, "learning_rate", below=0)
ok("strategies.train_linear_adapter", "starts at the identity",
   lambda: ST.train_linear_adapter(**_with(LIN_KW, steps=1, learning_rate=1e-12))["weight"], close(np.eye(8), atol=1e-6))
EYE8 = {"weight": np.eye(8, dtype=np.float32)}
sweep_arrays("strategies.apply_linear_adapter", ST.apply_linear_adapter, dict(emb=QE, adapter=EYE8), {"emb": (None, False)})
err("strategies.apply_linear_adapter", "adapter dict", lambda: ST.apply_linear_adapter(QE, np.eye(8)), "adapter")
err("strategies.apply_linear_adapter", "adapter size", lambda: ST.apply_linear_adapter(QE, {"weight": np.eye(4)}), "adapter")
ok("strategies.apply_linear_adapter", "identity normalizes", lambda: ST.apply_linear_adapter(QE, EYE8),
   close(QE / np.linalg.norm(QE.astype(np.float64), axis=1, keepdims=True), rtol=1e-6))
err("strategies.compare", "cfg None", lambda: ST.compare(None), "cfg")
err("strategies.compare", "no seeds", lambda: ST.compare(NS(small=True, full=False, seed=0), backbone_seeds=()), "seeds")
err("strategies.compare", "seed -1", lambda: ST.compare(NS(small=True, full=False, seed=0), adapter_seeds=(-1,)),
    "adapter_seeds")
err("strategies.compare", "title_distillation", lambda: ST.compare(NS(small=True, full=False, seed=0), title_distillation=1),
    "title_distillation")
err("strategies.compare", "full seed -1", lambda: ST.compare(NS(small=True, full=False, seed=0), full_seeds=(-1,)),
    "full_seeds")
err("strategies.plot_strategies", "result", lambda: ST.plot_strategies({"rows": []}), "result")
for label, value in (("None label", [0.1, None]), ("nan label", [0.1, float("nan")]), ("ragged", [[0.1], [0.1, 0.2]]),
                     ("bool", [True, False])):
    err("training.fit", label, lambda v=value: training.fit(None, {"anchor": ["a", "b"], "label": v}, None), "label")


# ---------------------------------------------------------------------------------------------
# embed, cache, models (cheap calls that must fail before any model is touched)
# ---------------------------------------------------------------------------------------------

for fn_name in ("encode_corpus", "encode_queries"):
    fn = getattr(embed, fn_name)
    for label, value in (("bare string", "aspirin"), ("int key", {1: "a"}), ("key with spaces", {"q ": "a"}),
                         ("int item", ["a", 3]), ("empty", []), ("None", None), ("set", {"a"})):
        err(f"embed.{fn_name}", f"texts {label}", lambda v=value, f=fn: f(None, v), "texts", "item")
    for arg, value in (("batch_size", 0), ("max_length", -1), ("prompt", 3), ("cache", "yes"), ("show_progress", None)):
        err(f"embed.{fn_name}", arg, lambda a=arg, v=value, f=fn: f(None, ["a"], **{a: v}), arg)
for label, value in (("bare string", "aspirin"), ("None", None), ("int key", {1: "x"})):
    err("embed.as_texts", f"items {label}", lambda v=value: embed.as_texts(v, ("text",)), "texts")
    err("embed.cache_info", f"texts {label}", lambda v=value: embed.cache_info(None, v), "texts")
err("embed.as_texts", "fields as a string", lambda: embed.as_texts({"d": {"title": "T", "text": "x"}}, "title"), "fields")
err("embed.as_texts", "item of another type", lambda: embed.as_texts({"d": 3}, ("text",)), "item")
ok("embed.as_texts", "a list gets ids 0..n-1", lambda: embed.as_texts(["a", "b"], ("text",)), eq((["0", "1"], ["a", "b"])))
for arg, value in (("strings", "ab"), ("ids", ["0"]), ("kind", ""), ("prompt", 3)):
    err("embed.encoding_entry", arg, lambda a=arg, v=value: embed.encoding_entry(
        None, **_with(dict(ids=["0", "1"], strings=["a", "b"], kind="corpus", fields=("text",), prompt=None), **{a: v})), arg)
for arg in ("cpu", "accelerator"):
    for label, value in (("zero", 0), ("bool", True), ("float", 8.0)):
        err("embed.default_batch_size", f"{arg} {label}", lambda a=arg, v=value: embed.default_batch_size(None, **{a: v}), arg)
ok("embed.default_batch_size", "no device is a CPU", lambda: embed.default_batch_size(None), eq(64))
for label, value in (("zero", 0), ("bool", True), ("float", 12.5), ("string", "12")):
    err("embed.max_seq_length", f"length {label}", lambda v=value: embed.max_seq_length(NS(max_seq_length=256), v).__enter__(),
        "max_length")


def _restored():
    m = NS(max_seq_length=256)
    with embed.max_seq_length(m, 12):
        inside = m.max_seq_length
    return inside, m.max_seq_length


ok("embed.max_seq_length", "restored after the block", _restored, eq((12, 256)))

for label, value in (("object", [object()]), ("nan", [float("nan")]), ("set", {1})):
    err("cache.cache_key", f"parts {label}", lambda v=value: cache.cache_key(v), "parts")
for label, value in (("zero", 0), ("too long", 65), ("bool", True)):
    err("cache.cache_key", f"length {label}", lambda v=value: cache.cache_key([1], v), "length")
ok("cache.cache_key", "key order does not matter", lambda: cache.cache_key([{"b": 1, "a": 2}]),
   eq(cache.cache_key([{"a": 2, "b": 1}])))
for label, value in (("string", "model"), ("None", None), ("dict", {})):
    err("cache.model_fingerprint", f"model {label}", lambda v=value: cache.model_fingerprint(v), "model")
for label, args in (("ids as a string", ("ab", ["a", "b"])), ("int ids", ([1], ["a"])), ("texts as a string", (["a"], "a")),
                    ("unequal", (["a"], ["a", "b"])), ("None", (None, None))):
    err("cache.texts_fingerprint", label, lambda a=args: cache.texts_fingerprint(*a), "ids", "texts")
ok("cache.texts_fingerprint", "id and text both count", lambda: cache.texts_fingerprint(["a"], ["b"]) != cache.texts_fingerprint(
    ["b"], ["a"]), eq(True))
_tmp = Path(__import__("tempfile").mkdtemp(prefix="bad-input-"))
for label, args in (("path int", (3, np.zeros(2))), ("array list", (_tmp / "a.npy", [1, 2])), ("object array",
                                                                                               (_tmp / "a.npy", np.array([None])))):
    err("cache.save_array", label, lambda a=args: cache.save_array(*a), label.split()[0])
err("cache.load_array", "path None", lambda: cache.load_array(None), "path")
err("cache.load_array", "missing file", lambda: cache.load_array(_tmp / "missing.npy"), "missing.npy", types=(FileNotFoundError,))
ok("cache.load_array", "round trip", lambda: (cache.save_array(_tmp / "r.npy", np.arange(3)), cache.load_array(_tmp / "r.npy"))[1],
   eq(np.arange(3)))
err("cache.save_json", "nan", lambda: cache.save_json(_tmp / "a.json", {"a": float("nan")}), "data")
err("cache.save_json", "object", lambda: cache.save_json(_tmp / "a.json", {"a": object()}), "data")
err("cache.save_json", "path", lambda: cache.save_json(None, {}), "path")
err("cache.load_json", "path", lambda: cache.load_json(3), "path")
ok("cache.load_json", "round trip", lambda: (cache.save_json(_tmp / "r.json", {"a": [1]}), cache.load_json(_tmp / "r.json"))[1],
   eq({"a": [1]}))
for label, args in (("empty paths", ([], lambda s: None)), ("bare path", (_tmp / "x", lambda s: None)),
                    ("write not callable", ([_tmp / "x"], 3)), ("None", (None, None))):
    err("cache.publish", label, lambda a=args: cache.publish(*a), "paths", "write")
for label, over in (("load", dict(load=3)), ("compute", dict(compute=None)), ("enabled", dict(enabled="yes")),
                    ("refresh", dict(refresh=1)), ("paths", dict(paths="x"))):
    err("cache.load_or_compute", label, lambda o=over: cache.load_or_compute(**_with(dict(
        paths=[_tmp / "y.npy"], load=lambda: 1, compute=lambda: 1, save=lambda v, s: None), **o)), label)
ok("cache.cache_dir", "a folder", lambda: cache.cache_dir().is_dir(), eq(True))

for label, value in (("gpu", "gpu"), ("int", 0), ("cuda:x", "cuda:x")):
    err("models.load_model", f"device {label}", lambda v=value: models.load_model(device=v), "device")
err("models.load_model", "path int", lambda: models.load_model(path=3), "path")
err("models.load_model", "path without a model", lambda: models.load_model(path=_tmp), "modules.json",
    types=(FileNotFoundError,))
for label, args in (("empty prefix", ("", [], lambda: None)), ("prefix with /", ("a/b", [], lambda: None)),
                    ("key_parts", ("p", "k", lambda: None)), ("train", ("p", [], None))):
    err("models.cached_model", label, lambda a=args: models.cached_model(*a), label.split()[0])
err("models.cached_model", "device", lambda: models.cached_model("p", [], lambda: None, device="gpu"), "device")
for label, value in (("gpu", "gpu"), ("int", 1), ("cuda:", "cuda:"), ("upper", "CPU")):
    err("models.check_device", label, lambda v=value: models.check_device(v), "device")
ok("models.check_device", "cuda:1", lambda: models.check_device("cuda:1"), eq(None))
for arg, value in (("epochs", float("nan")), ("batch_size", 0), ("learning_rate", True), ("max_steps", -5), ("seed", None),
                   ("show_progress", 0)):
    err("training.check_fit_args", arg, lambda a=arg, v=value: training.check_fit_args(**{a: v}), arg)
ok("training.check_fit_args", "defaults", lambda: training.check_fit_args(), eq(None))
for label, value in (("None", None), ("int id", NS(queries={1: "a"})), ("int text", NS(queries={"a": 1})),
                     ("spaces", NS(queries={" a": "x"}))):
    err("training.check_queries", label, lambda v=value: training.check_queries("test_ds", v), "test_ds")
ok("models.base_model_path", "a saved model", lambda: (models.base_model_path() / "modules.json").is_file(), eq(True))

# ---------------------------------------------------------------------------------------------
# data, config, paths, fetch, train
# ---------------------------------------------------------------------------------------------

for label, value in (("unknown", "msmarco"), ("int", 3), ("None", None)):
    err("data.load_beir", f"name {label}", lambda v=value: data.load_beir(v), "name")
    err("data.locate", f"name {label}", lambda v=value: data.locate(v), "name")
    err("data.verify", f"name {label}", lambda v=value: data.verify(v, _tmp), "name")
    err("fetch.fetch", f"name {label}", lambda v=value: fetch.fetch(v), "name")
err("data.load_beir", "split", lambda: data.load_beir("scifact", "dev"), "split")
err("data.load_beir", "small", lambda: data.load_beir("scifact", "test", small="yes"), "small")
err("data.verify", "root", lambda: data.verify("scifact", 3), "root")
err("data.verify", "empty root", lambda: data.verify("scifact", _tmp), "missing", types=(data.DataMissingError,))
err("data.load_sts", "split", lambda: data.load_sts("validation"), "split")
err("data.read_qrels", "path None", lambda: data.read_qrels(None), "path")
err("data.read_qrels", "missing file", lambda: data.read_qrels(_tmp / "none.tsv"), "none.tsv", types=(FileNotFoundError,))
err("data.sha256_file", "path", lambda: data.sha256_file(3), "path")
err("data.sha256_file", "chunk", lambda: data.sha256_file(_tmp / "r.json", 0), "chunk")
ok("data.sha256_file", "hashlib", lambda: data.sha256_file(REPO / "pyproject.toml"),
   eq(__import__("hashlib").sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()))
ok("data.load_manifest", "scifact listed", lambda: "scifact" in data.load_manifest(), eq(True))
for label, args in (("all_ids as a string", ("d1d2", set())), ("int ids", ([1, 2], set())), ("judged string", (["a"], "a")),
                    ("size zero", (["a"], set(), 0)), ("duplicates", (["a", "a"], set()))):
    err("data.small_doc_ids", label, lambda a=args: data.small_doc_ids(*a), "all_ids", "judged", "size")
ok("data.small_doc_ids", "judged first", lambda: data.small_doc_ids(["a", "b", "c"], {"c"}, 2) >= {"c"}, eq(True))
for label, args in (("doc string", ("text",)), ("fields string", ({"title": "a"}, "title")), ("int field", ({"text": 3},)),
                    ("None", (None,))):
    err("data.document_text", label, lambda a=args: data.document_text(*a), "doc", "fields")
ok("data.document_text", "empty title", lambda: data.document_text({"title": " ", "text": "x "}), eq("x"))
err("data.load_folder", "path int", lambda: data.load_folder(3), "path")
err("data.load_folder", "missing path", lambda: data.load_folder(_tmp / "none.jsonl"), "none.jsonl",
    types=(FileNotFoundError,))
err("data.load_folder", "split empty", lambda: data.load_folder(_tmp, split=""), "split")
err("data.load_folder", "unknown extension", lambda: data.load_folder(REPO / "pyproject.toml"), "path", ".toml")
_ki_ds = data.BeirDataset("toy", "none", {"a": {"title": "T", "text": "x"}}, {}, {})
for label, args, name in (("dataset dict", ({"a": {"title": "T", "text": "x"}},), "dataset"),
                          ("n zero", (_ki_ds, 0), "n"), ("n too large", (_ki_ds, 2), "n"), ("n float", (_ki_ds, 1.0), "n")):
    err("data.known_item_queries", label, lambda a=args: data.known_item_queries(*a, verbose=False), name)
ok("data.known_item_queries", "title to its document", lambda: data.known_item_queries(_ki_ds, verbose=False).qrels,
   eq({"ki:a": {"a": 1}}))

err("config.setup", "seed bool", lambda: config.setup(seed=True, verbose=False), "seed")
err("config.setup", "small", lambda: config.setup(small="yes", verbose=False), "small")
err("config.setup", "verbose", lambda: config.setup(verbose=1), "verbose")
for label, value in (("negative", -1), ("bool", True), ("float", 1.0), ("huge", 2 ** 40)):
    err("config.seed_everything", f"seed {label}", lambda v=value: config.seed_everything(v), "seed")
    err("config.seeded_torch", f"seed {label}", lambda v=value: config.seeded_torch(v).__enter__(), "seed")
ok("config.pick_device", "a device", lambda: config.pick_device()[0] in {"cuda", "mps", "cpu"}, eq(True))
for label, value in (("int", 3), ("None", None), ("empty", "")):
    err("paths.env_flag", f"name {label}", lambda v=value: paths.env_flag(v), "name")


def _env(value):
    import os
    old = os.environ.get("COURSE_BAD_INPUT_FLAG")
    os.environ["COURSE_BAD_INPUT_FLAG"] = value
    try:
        return paths.env_flag("COURSE_BAD_INPUT_FLAG")
    finally:
        if old is None:
            del os.environ["COURSE_BAD_INPUT_FLAG"]


err("paths.env_flag", "maybe", lambda: _env("maybe"), "COURSE_BAD_INPUT_FLAG")


def _read_only(value):
    import os
    old = os.environ.get("COURSE_CACHE_READONLY")
    os.environ["COURSE_CACHE_READONLY"] = value
    try:
        return cache.read_only()
    finally:
        if old is None:
            del os.environ["COURSE_CACHE_READONLY"]
        else:
            os.environ["COURSE_CACHE_READONLY"] = old


err("cache.read_only", "COURSE_CACHE_READONLY=maybe", lambda: _read_only("maybe"), "COURSE_CACHE_READONLY")
ok("cache.read_only", "COURSE_CACHE_READONLY=1", lambda: _read_only("1"), eq(True))
ok("paths.env_flag", "on", lambda: _env(" On "), eq(True))
err("paths.in_clone", "root None", lambda: paths.in_clone(None), "root")
err("paths.in_clone", "root empty", lambda: paths.in_clone(""), "root")
ok("paths.in_clone", "a folder that is not the course", lambda: paths.in_clone(Path("/")), eq(False))
ok("paths.in_clone", "this clone", lambda: paths.in_clone(paths.REPO_ROOT), eq(True))
ok("paths.small_mode", "a bool", lambda: isinstance(paths.small_mode(), bool), eq(True))
for arg, value in (("mirror", 3), ("url", 3), ("dest_root", 3)):
    err("fetch.fetch", arg, lambda a=arg, v=value: fetch.fetch("scifact", **{a: v}), arg)
cli("fetch.main", "unknown data set", lambda: fetch.main(["msmarco", "--verify"]), "name")
err("fetch.main", "argv as a string", lambda: fetch.main("scifact"), "argv")
cli("train.main", "no output", lambda: train.main(["mrl"]), "--output")
cli("train.main", "negative epochs", lambda: train.main(["mrl", "--output", str(_tmp), "--epochs", "-1"]), "--epochs")
cli("train.main", "zero batch", lambda: train.main(["mrl", "--output", str(_tmp), "--batch-size", "0"]), "--batch-size")
cli("train.main", "increasing dims", lambda: train.main(["mrl", "--output", str(_tmp), "--dims", "16,32"]), "--dims")
cli("train.main", "weights per dim", lambda: train.main(["mrl", "--output", str(_tmp), "--weights", "1,2"]), "--weights")
cli("train.main", "nan lr", lambda: train.main(["mrl", "--output", str(_tmp), "--lr", "nan"]), "--lr")
err("train.main", "argv as a string", lambda: train.main("mrl"), "argv")

# ---------------------------------------------------------------------------------------------
# validation itself
# ---------------------------------------------------------------------------------------------

sweep_int("validation.check_int", lambda bits: V.check_int("bits", bits, low=1, high=8), {}, "bits", high=8)
sweep_int("validation.check_k", lambda k: V.check_k(k, 5), {}, "k", high=5)
sweep_int("validation.default_depth", lambda k: V.default_depth(k, 5), {}, "k", high=5, none_ok=True)
ok("validation.default_depth", "None on a tiny corpus", lambda: V.default_depth(None, 5), eq(5))
sweep_int("validation.check_cutoff", lambda depth: V.check_cutoff("depth", depth), {}, "depth")
ok("validation.check_cutoff", "past any ranking", lambda: V.check_cutoff("depth", 10 ** 9), eq(10 ** 9))
ok("validation.describe", "array", lambda: V.describe(np.zeros((2, 3), np.int8)), eq("int8 array of shape (2, 3)"))
ok("validation.is_int", "numpy ints, no bools", lambda: [V.is_int(x) for x in (1, np.int8(1), True, np.bool_(True), 1.0)],
   eq([True, True, False, False, False]))
sweep_number("validation.check_number", lambda alpha: V.check_number("alpha", alpha, low=0, high=1), {}, "alpha",
             below=-0.5, above=2)
for label, value in (("int", 1), ("string", "True"), ("None", None)):
    err("validation.check_bool", label, lambda v=value: V.check_bool("flag", v), "flag")
err("validation.check_choice", "int for str", lambda: V.check_choice("mode", 1, ("1", "2")), "mode")
err("validation.check_choice", "unknown", lambda: V.check_choice("mode", "3", ("1", "2")), "mode")
err("validation.check_config", "None", lambda: V.check_config("cfg", None), "cfg")
err("validation.check_callable", "int", lambda: V.check_callable("search", 3), "search")
for label, value in (("int", 1), ("spaces", "q1 "), ("empty", ""), ("None", None)):
    err("validation.check_id", label, lambda v=value: V.check_id("query id", v), "query id")
err("validation.check_sequence", "bare string", lambda: V.check_sequence("items", "abc"), "items")
err("validation.check_sequence", "set", lambda: V.check_sequence("items", {1}), "items")
sweep_ids("validation.check_ids", lambda ids: V.check_ids("ids", ids), dict(ids=["a", "b"]), "ids")
sweep_texts("validation.check_texts", lambda texts: V.check_texts("texts", texts), dict(texts=["a"]), "texts")
err("validation.check_scores_map", "nan", lambda: V.check_scores_map("scores", {"a": float("nan")}), "scores")
err("validation.check_run", "int id", lambda: V.check_run("run", {1: {}}), "run")
err("validation.check_qrels", "float", lambda: V.check_qrels("qrels", {"q": {"d": 0.5}}), "qrels")
err("validation.check_run_matches_qrels", "disjoint", lambda: V.check_run_matches_qrels({"a": {"d": 1.0}}, {"b": {}}), "run")
ok("validation.check_run_matches_qrels", "an empty run is not a mismatch", lambda: V.check_run_matches_qrels({"a": {}}, {"b": {}}),
   eq(None))
sweep_arrays("validation.check_matrix", lambda x: V.check_matrix("x", x), dict(x=CE), {"x": (None, False)})
err("validation.check_array", "3-D", lambda: V.check_array("x", CE, ndim=3), "x")
err("validation.check_finite", "nan", lambda: V.check_finite("x", np.array([np.nan])), "x")
err("validation.raise_not_finite", "inf", lambda: V.raise_not_finite("x", np.array([[0.0, np.inf]])), "x")
err("validation.check_same_dims", "dims", lambda: V.check_same_dims("a", CE, "b", CE[:, :2]), "a")
err("validation.check_codes", "int8", lambda: V.check_codes("codes", CODES.view(np.int8)), "codes")
err("validation.check_mask", "shape", lambda: V.check_mask("m", TOK_DM, (2, 2)), "m")
err("validation.check_tokens", "2-D", lambda: V.check_tokens("q", CE, None), "q")
err("validation.check_indices", "float", lambda: V.check_indices("candidates", np.zeros((1, 1)), 3), "candidates")
err("validation.check_fits_float32", "huge", lambda: V.check_fits_float32("x", np.array([1e300])), "x")
ok("validation.check_fits_float32", "float32 passes", lambda: V.check_fits_float32("x", np.array([3e38], np.float32)), eq(None))
err("validation.check_ranges", "None", lambda: V.check_ranges(None), "ranges")
err("validation.raise_nonfinite_products", "overflow", lambda: V.raise_nonfinite_products(
    np.array([[np.inf]]), ("q", np.ones((1, 1))), ("c", np.ones((1, 1)))), "overflow")


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

RESULTS: Counter = Counter()
FAILURES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def sweep_summary(request):
    """Write ``build/bad_input_sweep.json`` and print the counts when the module's tests are done."""
    yield
    if not sum(RESULTS.values()):
        return
    summary = {"calls": sum(RESULTS.values()), "clear errors": RESULTS["clear error"] + RESULTS["usage error"],
               "verified answers": RESULTS["verified answer"], "failures": len(FAILURES),
               "functions covered": len({c.target for c in CASES}), "by kind": dict(RESULTS)}
    out = REPO / "build" / "bad_input_sweep.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line(f"\nbad-input sweep: {summary['calls']} calls, {summary['clear errors']} clear errors, "
                                f"{summary['verified answers']} verified answers, {summary['failures']} failures "
                                f"({summary['functions covered']} functions; {out.relative_to(REPO)})")


def _run(case: Case) -> str:
    exp = case.expect
    if isinstance(exp, Cli):
        import contextlib
        import io

        buf = io.StringIO()
        try:
            with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(io.StringIO()):
                rc = case.call()
        except SystemExit as e:
            rc = e.code
        assert rc not in (0, None), f"the command line accepted it (rc {rc})"
        assert any(n in buf.getvalue() for n in exp.names), f"stderr does not name {exp.names}: {buf.getvalue()!r}"
        return "usage error"
    try:
        got = case.call()
    except Exception as e:  # noqa: BLE001: the type is the point of the check
        if isinstance(exp, Ok):
            raise AssertionError(f"expected a verified answer, got {type(e).__name__}: {e}") from e
        assert isinstance(e, exp.types), f"expected {[t.__name__ for t in exp.types]}, got {type(e).__name__}: {e}"
        assert any(n in str(e) for n in exp.names), f"the message does not name {exp.names}: {e}"
        return "clear error"
    assert isinstance(exp, Ok), f"expected an error naming {exp.names}, got a result: {got!r:.200}"
    exp.check(got)
    return "verified answer"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.target}: {c.label}" for c in CASES])
def test_bad_input(case):
    try:
        RESULTS[_run(case)] += 1
    except BaseException:
        RESULTS["failure"] += 1
        FAILURES.append(f"{case.target}: {case.label}")
        raise


def test_sweep_covers_every_public_function():
    public = public_callables()
    covered = {c.target for c in CASES}
    assert not covered - public, f"cases for names that are not public callables: {sorted(covered - public)}"
    missing = public - covered - set(EXEMPT)
    assert not missing, f"public functions without a bad-input case (add cases or an EXEMPT reason): {sorted(missing)}"
    assert not set(EXEMPT) & covered and set(EXEMPT) <= public
    assert len(CASES) >= 600
