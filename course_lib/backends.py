"""Fast CPU inference for a sentence-transformers model: ONNX Runtime, its dynamic int8 model, and OpenVINO.

The same model runs on four inference engines ("backends"):

- ``"torch"``: the model as it is, PyTorch fp32 (``SentenceTransformer.encode``);
- ``"onnx"``: the transformer exported to an ONNX graph (``torch.onnx.export``) and run by ONNX Runtime, fp32;
- ``"onnx-int8"``: that graph with its weights dynamically quantized to int8 (``onnxruntime.quantization.
  quantize_dynamic``, per channel): the weights are stored as int8 with one scale per output channel, the
  activations are quantized per batch at run time, and the matrix products run in integer arithmetic. The
  model file is about 4x smaller; the embeddings move slightly (cosine about 0.99 to fp32);
- ``"openvino"``: the same ONNX graph compiled by Intel's OpenVINO runtime (``openvino.convert_model``), fp32.

Pooling and normalization stay in NumPy, outside the graph: mean over the non-padding tokens, then L2, exactly what
the model's ``Pooling`` (mean) and ``Normalize`` modules compute. So the fp32 backends give the model's own
embeddings (cosine 1 to float precision, checked in ``tests/test_backends.py``), and any model with that shape
(the base MiniLM, the course's Matryoshka and fine-tuned models) can be exported.

sentence-transformers offers the same as ``SentenceTransformer(..., backend="onnx" | "openvino")`` and
``sentence_transformers.backend.export_dynamic_quantized_onnx_model``, through Hugging Face ``optimum``. At the time
of writing, ``optimum-onnx`` 0.1 requires transformers < 4.58 and ``optimum-intel`` 2.2 transformers < 5.6, while
sentence-transformers 6 runs on transformers 5: they cannot be installed together, so the course calls the
engines that ``optimum`` wraps directly (the export, ``quantize_dynamic`` and OpenVINO). Once ``optimum`` supports
transformers 5, ``backend="onnx"`` is the shorter way to write the same thing.

Exported and quantized graphs are cached under ``<cache>/models/onnx-<key>/``, keyed on the model's weights.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from course_lib import validation as V
from course_lib.cache import CacheEntryError, cache_dir, cache_key, load_or_compute, model_fingerprint

Backend = Literal["torch", "onnx", "onnx-int8", "openvino"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "openvino")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def check_backend(backend) -> str:
    """``backend`` must be one of :data:`BACKENDS`."""
    return V.check_choice("backend", backend, BACKENDS)


def check_pipeline(model) -> None:
    """The model must be ``[Transformer, Pooling(mean), Normalize]`` (Normalize optional): the shape this module
    reproduces outside torch. Anything else (CLS pooling, a Dense layer, a sparse or multi-vector model) is refused
    with a ``ValueError`` that names the module."""
    if not hasattr(model, "__iter__") or not hasattr(model, "tokenizer"):
        raise TypeError(f"model must be a SentenceTransformer, got {type(model).__name__}")
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if not modules or names[0] != "Transformer" or not hasattr(modules[0], "auto_model"):
        raise ValueError(f"model must start with a Transformer module, got modules {names}")
    if len(names) < 2 or names[1] != "Pooling":
        raise ValueError(f"model's second module must be Pooling, got modules {names}")
    mode = getattr(modules[1], "pooling_mode", None)
    if mode != "mean":
        raise ValueError(f"only mean pooling is reproduced outside torch; this model pools with {mode!r}")
    if names[2:] not in ([], ["Normalize"]):
        raise ValueError(f"after Pooling only Normalize is supported, got modules {names}")


def _folder(model) -> Path:
    import torch

    key = cache_key([model_fingerprint(model), "onnx", OPSET, torch.__version__.split("+")[0]], length=16)
    return cache_dir() / "models" / f"onnx-{key}"


def _check_graph(path: Path) -> Path:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as err:  # a truncated or damaged file: re-export
        raise CacheEntryError(f"{path.name} is not a valid ONNX model: {type(err).__name__}: {err}") from err
    return path


def _cached(entry: Path, file: Path, write, what: str) -> Path:
    """``file`` from the cache (inside ``entry``, a file or a folder), else ``write(target)`` makes ``entry`` at
    ``target`` and it is published. Where the cache cannot be written (a read-only grading sandbox), the entry is
    made in a temporary folder for this process instead."""
    load_or_compute([entry], load=lambda: _check_graph(file), compute=lambda: None,
                    save=lambda _, staged: write(staged[0]), what=what)
    if file.is_file():
        return file
    target = Path(tempfile.mkdtemp(prefix="course-onnx-")) / entry.name
    write(target)
    return target / file.relative_to(entry) if entry != file else target


def export_onnx(model) -> Path:
    """Export the model's transformer to ONNX (opset 17, dynamic batch and sequence axes) and return the file.

    The graph maps ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, (B, L)) to the token vectors
    ``last_hidden_state`` (float32, (B, L, D)). Exported once per set of weights, then read from the cache.
    """
    check_pipeline(model)
    path = _folder(model) / "model.onnx"

    def write(folder: Path):
        import torch

        transformer = model[0].auto_model

        class Graph(torch.nn.Module):  # positional inputs in INPUTS order, one output
            def __init__(self):
                super().__init__()
                self.transformer = transformer

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                        token_type_ids=token_type_ids).last_hidden_state

        # a padded example batch, so the traced graph keeps the attention mask
        example = model.tokenizer(["a short text", "a longer text, so that the first one is padded"],
                                  padding=True, return_tensors="pt")
        example = tuple(example[k].to(transformer.device) for k in INPUTS)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
        folder.mkdir(parents=True)
        was_training = transformer.training
        transformer.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # the TorchScript exporter (dynamo=False) needs no extra package; its deprecation notice and the
                # tracer's notes on Python bools (mask shortcuts, traced with padding) are expected
                warnings.simplefilter("ignore")
                torch.onnx.export(Graph(), example, str(folder / "model.onnx"), input_names=list(INPUTS),
                                  output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET,
                                  dynamo=False)
        finally:
            transformer.train(was_training)

    return _cached(path.parent, path, write, "ONNX export")


def quantize_int8(model) -> Path:
    """The model's ONNX graph with int8 weights (dynamic quantization, per output channel), cached beside it.

    This is the call that ``export_dynamic_quantized_onnx_model`` makes through ``optimum``:
    ``onnxruntime.quantization.quantize_dynamic(src, dst, weight_type=QInt8, per_channel=True)``.
    Per-channel scales keep the embeddings at cosine about 0.99 to fp32; one scale per tensor drops to about 0.93.
    """
    src = export_onnx(model)
    dst = src.with_name("model_int8.onnx")  # beside the export (in a temporary folder where the cache is read-only)

    def write(target: Path):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its "consider pre-processing" note concerns static quantization, not this
        try:
            quantize_dynamic(str(src), str(target), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)

    return _cached(dst, dst, write, "int8 ONNX model")


class CpuEncoder:
    """Encode texts with one backend; ``encode`` returns what ``SentenceTransformer.encode(...,
    normalize_embeddings=True)`` returns: float32 (N, D), unit rows, in the order of the texts.

    Build it with :func:`cpu_encoder`. Attributes: ``backend``, ``model_bytes`` (the size of the weights file the
    backend runs: the ONNX file, or the torch parameters). Texts are cut at the model's ``max_seq_length`` at the
    time of each call, as ``SentenceTransformer.encode`` cuts them.
    """

    def __init__(self, model, backend: str):
        check_backend(backend)
        check_pipeline(model)
        self.backend, self.model = backend, model
        self.normalize = len(list(model)) > 2
        if backend == "torch":
            self.model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
            self._run = None
            return
        path = quantize_int8(model) if backend == "onnx-int8" else export_onnx(model)
        self.model_bytes = path.stat().st_size
        import torch

        threads = torch.get_num_threads()
        if backend == "openvino":
            import openvino as ov

            # fp32 stated, not assumed: on a CPU with native bf16 (AVX512-BF16, AMX) OpenVINO otherwise runs in
            # bf16 and the embeddings move by about 1e-3
            compiled = ov.Core().compile_model(ov.convert_model(str(path)), "CPU",
                                               {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
            self._run = lambda feed: compiled(feed)[0]
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3  # errors only
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._run = lambda feed: session.run(None, feed)[0]

    def __repr__(self) -> str:
        return f"CpuEncoder(backend={self.backend!r}, model_bytes={self.model_bytes:,})"

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        V.check_texts("texts", texts)
        V.check_int("batch_size", batch_size, low=1)
        texts = list(texts)
        if self.backend == "torch":
            return np.ascontiguousarray(self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                                          normalize_embeddings=self.normalize,
                                                          show_progress_bar=False), dtype=np.float32)
        out = None
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            enc = self.model.preprocess([texts[i] for i in rows])  # the model's own preprocessing and truncation
            ids = enc["input_ids"].numpy().astype(np.int64)  # (B, L)
            feed = {"input_ids": ids, "attention_mask": enc["attention_mask"].numpy().astype(np.int64),
                    "token_type_ids": (enc["token_type_ids"].numpy().astype(np.int64) if "token_type_ids" in enc
                                       else np.zeros_like(ids))}
            tokens = np.asarray(self._run(feed), dtype=np.float32)  # (B, L, D)
            mask = feed["attention_mask"][..., None].astype(np.float32)  # (B, L, 1)
            pooled = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)  # (B, D): mean over real tokens
            if self.normalize:
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled
        return out


def cpu_encoder(model, backend: Backend) -> CpuEncoder:
    """An encoder that runs ``model`` on ``backend`` (one of :data:`BACKENDS`), exporting it first if needed.

    >>> check_backend("tensorrt")
    Traceback (most recent call last):
    ...
    ValueError: backend must be 'torch', 'onnx', 'onnx-int8' or 'openvino', got 'tensorrt'
    """
    return CpuEncoder(model, backend)


def throughput(encoder: CpuEncoder, texts, *, batch_size: int = 32, repeats: int = 2) -> tuple[np.ndarray, float]:
    """``(embeddings, texts per second)``: the best of ``repeats`` timed passes over ``texts`` (the first pass also
    warms the engine up; the best pass is the least disturbed by other work on the machine)."""
    if not isinstance(encoder, CpuEncoder):
        raise TypeError(f"encoder must be a CpuEncoder (from cpu_encoder), got {type(encoder).__name__}")
    V.check_texts("texts", texts)
    V.check_int("repeats", repeats, low=1)
    best, emb = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        emb = encoder.encode(texts, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return emb, len(texts) / best


def compare(model, doc_texts, query_texts, task, *, backends=BACKENDS, batch_size: int = 32,
            repeats: int = 2, show_progress: bool = True, isolated: bool = False) -> list[dict]:
    """Each backend side by side on the same texts, in one run: one row per backend.

    Parameters
    ----------
    model : SentenceTransformer
        A mean-pooled model (:func:`check_pipeline`).
    doc_texts : list of str
        Documents to time and to compare with torch's embeddings (cosine per document).
    query_texts : list of str
        The queries of ``task``, in the order of ``task.query_ids``: timed, then searched.
    task : course_lib.compression.Retrieval
        Its ``corpus_emb`` is the index, built once with torch fp32. Each backend's query embeddings are searched
        in it: the question a deployment asks before it swaps the query encoder without re-indexing.
    backends : sequence of str
        A subset of :data:`BACKENDS`; "torch" is added first, as the reference of the ratios and cosines.
    isolated : bool
        Run the comparison in a child process (``spawn``), which gets its own address space and returns only the
        rows: ONNX Runtime and OpenVINO reserve a few GB of address space, which a long notebook's kernel under a
        per-process limit (``RLIMIT_AS``, as in the grading sandbox) may not have left. The child starts in
        about 10 s and shows no progress bars.

    Returns
    -------
    list of dict
        ``backend``, ``model MB`` (the weights file it runs), ``setup s`` (export, quantization, compilation; 0
        when cached), ``docs/s`` and ``queries/s`` (the best of ``repeats`` passes, interleaved across the
        backends), ``speed-up`` (docs/s over
        torch's), ``min cos`` and ``mean cos`` (documents, to torch), ``nDCG@10`` (the task's queries).
    """
    from tqdm.auto import tqdm

    from course_lib.compression import Retrieval

    doc_texts, query_texts = V.check_texts("doc_texts", doc_texts), V.check_texts("query_texts", query_texts)
    if not isinstance(task, Retrieval):
        raise TypeError(f"task must be a course_lib.compression.Retrieval, got {type(task).__name__}")
    if len(query_texts) != len(task.query_ids):
        raise ValueError(f"query_texts must hold one text per query of task ({len(task.query_ids)}), "
                         f"got {len(query_texts)}")
    if isinstance(backends, str) or not isinstance(backends, (list, tuple)) or not backends:
        raise TypeError(f"backends must be a non-empty list of backend names, got {backends!r}")
    names = ["torch"] + [check_backend(b) for b in backends if b != "torch"]
    V.check_bool("show_progress", show_progress)
    V.check_bool("isolated", isolated)
    V.check_int("repeats", repeats, low=1)
    V.check_int("batch_size", batch_size, low=1)
    if isolated:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        check_pipeline(model)
        # the model travels as plain pickle bytes: handed to multiprocessing as a module, torch would share its
        # tensors through file descriptors, sent over a Unix socket in $TMPDIR, whose path may be longer than
        # the 107 bytes such a socket allows (the grading sandbox's is)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_compare_pickled, pickle.dumps(model), doc_texts, query_texts, task, backends=backends,
                               batch_size=batch_size, repeats=repeats).result()
    encoders, setup = {}, {}
    for name in tqdm(names, desc="set up backends", disable=not show_progress):
        start = time.perf_counter()
        encoders[name] = cpu_encoder(model, name)
        setup[name] = time.perf_counter() - start
    # the passes are interleaved (torch, onnx, ..., torch, onnx, ...): a machine whose speed drifts during the run
    # (other work, a shared virtual machine) then slows every backend alike, and the best pass of each is compared
    rate = {(name, kind): 0.0 for name in names for kind in ("docs", "queries")}
    emb = {}
    for _ in tqdm(range(repeats), desc="timed passes", disable=not show_progress):
        for name in names:
            for kind, texts in (("docs", doc_texts), ("queries", query_texts)):
                emb[name, kind], r = throughput(encoders[name], texts, batch_size=batch_size, repeats=1)
                rate[name, kind] = max(rate[name, kind], r)
    rows, reference = [], emb["torch", "docs"]
    for name in names:
        queries = emb[name, "queries"]
        V.check_same_dims("backend query embeddings", queries, "task.corpus_emb", task.corpus_emb)
        cos = (emb[name, "docs"] * reference).sum(1)
        doc_rate = rate[name, "docs"]
        rows.append({"backend": name, "model MB": round(encoders[name].model_bytes / 2**20, 1),
                     "setup s": round(setup[name], 1), "docs/s": round(doc_rate, 1),
                     "queries/s": round(rate[name, "queries"], 1),
                     "speed-up": round(doc_rate / rate["torch", "docs"], 2),
                     "min cos": round(float(cos.min()), 4), "mean cos": round(float(cos.mean()), 4),
                     "nDCG@10": round(task.metrics(queries @ task.corpus_emb.T)["ndcg@10"], 4)})
    return rows


def _compare_pickled(model: bytes, *args, **kwargs) -> list[dict]:
    """:func:`compare` in the child process of ``isolated=True``."""
    return compare(pickle.loads(model), *args, show_progress=False, **kwargs)


def choose_backend(rows, max_ndcg_drop: float = 0.01, min_speedup: float = 1.2) -> str:
    """The backend to deploy, from :func:`compare`'s rows: the fastest (``"docs/s"``) whose ``"nDCG@10"`` is at most
    ``max_ndcg_drop`` below the ``"torch"`` row's, kept only if it is at least ``min_speedup`` times torch's
    docs/s; otherwise ``"torch"`` (another engine is one more dependency to install, test and update: it has to pay
    for itself). A drop of exactly ``max_ndcg_drop`` is accepted (1e-9 absorbs float rounding); ties in speed go
    to the earlier row.

    >>> rows = [{"backend": "torch", "docs/s": 10.0, "nDCG@10": 0.65},
    ...         {"backend": "onnx-int8", "docs/s": 14.0, "nDCG@10": 0.645},
    ...         {"backend": "openvino", "docs/s": 11.0, "nDCG@10": 0.65}]
    >>> choose_backend(rows), choose_backend(rows, max_ndcg_drop=0.001), choose_backend(rows, min_speedup=1.5)
    ('onnx-int8', 'torch', 'torch')
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (list, tuple)) or not rows:
        raise TypeError(f"rows must be a non-empty list of dicts (compare's rows), got {type(rows).__name__}")
    for r in rows:
        if not isinstance(r, dict) or not {"backend", "docs/s", "nDCG@10"} <= set(r):
            raise ValueError(f"rows must be dicts with 'backend', 'docs/s' and 'nDCG@10', got {r!r:.120}")
        V.check_number("rows' docs/s", r["docs/s"], low=0.0)
        V.check_number("rows' nDCG@10", r["nDCG@10"], low=0.0, high=1.0)
    torch_rows = [r for r in rows if r["backend"] == "torch"]
    if len(torch_rows) != 1:
        raise ValueError(f"rows must hold exactly one 'torch' row (the reference), got {len(torch_rows)}")
    V.check_number("max_ndcg_drop", max_ndcg_drop, low=0.0, high=1.0)
    V.check_number("min_speedup", min_speedup, low=0.0)
    ref = torch_rows[0]
    ok = [r for r in rows if r["nDCG@10"] >= ref["nDCG@10"] - max_ndcg_drop - 1e-9]
    best = max(ok, key=lambda r: r["docs/s"])  # the first of equals
    return best["backend"] if best["docs/s"] >= min_speedup * ref["docs/s"] else "torch"
