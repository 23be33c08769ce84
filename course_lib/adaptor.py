"""Adaptive dimensions on a frozen model: PCA and the Matryoshka-Adaptor (Yoon et al., EMNLP 2024).

Notebook 05 trains the backbone with ``MatryoshkaLoss`` so that every prefix of an embedding is usable. When the
model cannot be retrained (an API, no labelled pairs), two tools work on its embeddings alone:

- **PCA** (:func:`pca_fit`, :func:`pca_reduce`): centre on the corpus mean :math:`\\mu`, rotate onto the principal
  axes :math:`V` (sorted by variance), keep the first ``m`` and re-normalize:
  :math:`\\tilde e = \\mathrm{norm}(((e - \\mu) V)_{1:m})`.
- **Matryoshka-Adaptor** (:func:`train_adaptor`, :func:`adapt`): a small MLP with a skip connection,
  :math:`f(z) = z + W_2\\,\\mathrm{relu}(W_1 z + b_1) + b_2`, applied to queries and documents alike. Its input
  :math:`z` is the embedding itself (``init="identity"``, as in the paper) or, by default (``init="pca"``), the
  embedding centred and rotated onto the corpus's principal axes, :math:`z = (e - \\mu) V`; with
  :math:`W_2 = 0` at the start, the adaptor starts exactly at the identity or at PCA, and training moves on from
  there. It is trained on corpus embeddings only, so that each nested prefix
  :math:`f(e)_{1:m}` keeps the similarity structure of the full embeddings (cos is cosine similarity):

  .. math::

      L_{pair} = \\sum_m \\frac{1}{B^2} \\sum_{i,j} \\lvert \\cos(e_i, e_j) - \\cos(f(e_i)_{1:m}, f(e_j)_{1:m}) \\rvert

      L_{topk} = \\sum_m \\frac{1}{Nk} \\sum_i \\sum_{j \\in \\mathrm{nn}_k(i)} \\lvert \\cos(e_i, e_j)
                 - \\cos(f(e_i)_{1:m}, f(e_j)_{1:m}) \\rvert

      L_{rec} = \\frac{1}{N} \\sum_i \\lVert f(e_i) - e_i \\rVert_2

  where :math:`\\mathrm{nn}_k(i)` are the ``k`` nearest other documents of :math:`i` by full cosine. The
  loss is :math:`\\alpha L_{pair} + \\beta L_{topk} + \\gamma L_{rec}`. The supervised variant adds, for
  (query, relevant document) pairs, an in-batch ranking loss at every prefix (the MNRL of notebook 06).

The losses are torch functions (the training needs their gradients); ``tests/test_adaptor.py`` checks each
against a direct NumPy computation, and :func:`pca_reduce` against ``faiss.PCAMatrix``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from course_lib import validation as V
from course_lib.matryoshka import _check_dims, truncate

ADAPTOR_DIMS = (256, 128, 64, 32)


@dataclass(frozen=True)
class Pca:
    """A PCA fitted on corpus embeddings: ``mean`` (D,), ``components`` (D, D) with one principal axis per
    column in order of decreasing variance, ``variance`` (D,) the variance along each axis."""

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray


def pca_fit(corpus_emb: np.ndarray) -> Pca:
    """Principal axes of ``corpus_emb`` (float (N, D), N >= 2), by an SVD of the centred matrix in float64.

    Each axis's sign is fixed so that its largest-magnitude entry is positive (SVD leaves signs free).

    >>> x = np.array([[2, 0], [-2, 0], [0, 1], [0, -1]], np.float32)
    >>> p = pca_fit(x)
    >>> p.components.tolist(), [round(float(v), 3) for v in p.variance]
    ([[1.0, 0.0], [0.0, 1.0]], [2.667, 0.667])
    """
    x = V.check_matrix("corpus_emb", corpus_emb).astype(np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"corpus_emb must have at least 2 rows to fit a PCA, got {x.shape[0]}")
    mean = x.mean(axis=0)  # (D,)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=True)  # vt: (D, D), rows are axes
    comps = vt.T  # (D, D): one axis per column
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])  # (D,)
    comps = comps * np.where(signs == 0, 1.0, signs)
    var = np.zeros(x.shape[1])
    var[:len(s)] = s ** 2 / (x.shape[0] - 1)
    return Pca(mean=mean.astype(np.float32), components=comps.astype(np.float32), variance=var.astype(np.float32))


def _check_pca(pca, d: int) -> Pca:
    if not isinstance(pca, Pca):
        raise TypeError(f"pca must be a Pca from pca_fit, got {type(pca).__name__}")
    if pca.components.shape != (d, d) or pca.mean.shape != (d,):
        raise ValueError(f"pca was fitted on {pca.mean.shape[0]}-dim embeddings, but emb has {d} dims")
    return pca


def pca_reduce(emb: np.ndarray, pca: Pca, dim: int) -> np.ndarray:
    """``emb`` centred on the PCA's mean, rotated onto its first ``dim`` axes and re-normalized: float32 (N, dim).

    >>> x = np.array([[2, 0], [-2, 0], [0, 1], [0, -1]], np.float32)
    >>> pca_reduce(x, pca_fit(x), 1).ravel().tolist()  # on the first axis, the last two rows are at the mean
    [1.0, -1.0, 0.0, 0.0]
    """
    x = V.check_matrix("emb", emb)
    _check_pca(pca, x.shape[1])
    dim = V.check_int("dim", dim, low=1, high=x.shape[1], what="the embedding size")
    rotated = (x.astype(np.float64) - pca.mean) @ pca.components[:, :dim].astype(np.float64)  # (N, dim)
    return truncate(rotated, dim)


# ---------------------------------------------------------------------------------------------------------------
# The adaptor's losses (torch)
# ---------------------------------------------------------------------------------------------------------------


def _check_tensor(name: str, x, ndim: int, kind: str = "float"):
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if kind == "float" and not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}")
    if kind == "int" and (x.dtype.is_floating_point or x.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")
    if kind == "float" and not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf")
    return x


def _check_pair(full, adapted):
    _check_tensor("full", full, 2)
    _check_tensor("adapted", adapted, 2)
    if full.shape != adapted.shape:
        raise ValueError(f"adapted must have the shape of full {tuple(full.shape)}, got {tuple(adapted.shape)}")


def _cos(a, b):
    import torch

    return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T


def pairwise_similarity_loss(full, adapted, dims: Sequence[int] = ADAPTOR_DIMS):
    """:math:`L_{pair}`: the mean absolute gap between full cosines and prefix cosines over all (i, j) pairs of the
    batch, summed over ``dims``. ``full`` and ``adapted``: float tensors (B, D). Returns a scalar tensor.

    >>> import torch
    >>> e = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    >>> float(pairwise_similarity_loss(e, e, dims=(3,)))
    0.0
    """
    _check_pair(full, adapted)
    dims = _check_dims(dims, full.shape[1])
    target = _cos(full, full)  # (B, B)
    return sum((target - _cos(adapted[:, :m], adapted[:, :m])).abs().mean() for m in dims)


def topk_similarity_loss(full, adapted, neighbors, dims: Sequence[int] = ADAPTOR_DIMS):
    """:math:`L_{topk}`: the mean absolute gap between the full cosine of each row ``i`` with its ``k`` nearest
    neighbours (rows of ``neighbors``, int tensor (N, k)) and the same cosine in each prefix, summed over ``dims``.

    >>> import torch
    >>> e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    >>> nn = torch.tensor([[1], [2], [1]])
    >>> round(float(topk_similarity_loss(e, e, nn, dims=(1,))), 4)  # 1-dim cosines are 1: |0.6-1|, |0.96-1| twice
    0.16
    """
    import torch

    _check_pair(full, adapted)
    _check_tensor("neighbors", neighbors, 2, kind="int")
    if neighbors.shape[0] != full.shape[0] or neighbors.shape[1] < 1:
        raise ValueError(f"neighbors must have one row of k >= 1 indices per row of full ({full.shape[0]}), "
                         f"got shape {tuple(neighbors.shape)}")
    if neighbors.numel() and (int(neighbors.min()) < 0 or int(neighbors.max()) >= full.shape[0]):
        raise ValueError(f"neighbors must hold row indices in [0, {full.shape[0]}), got values in "
                         f"[{int(neighbors.min())}, {int(neighbors.max())}]")
    dims = _check_dims(dims, full.shape[1])
    nf = torch.nn.functional.normalize(full, dim=-1)
    target = (nf[:, None, :] * nf[neighbors]).sum(-1)  # (N, k)
    total = 0
    for m in dims:
        na = torch.nn.functional.normalize(adapted[:, :m], dim=-1)  # (N, m)
        total = total + (target - (na[:, None, :] * na[neighbors]).sum(-1)).abs().mean()
    return total


def reconstruction_loss(full, adapted):
    """:math:`L_{rec}`: the mean L2 distance between each adapted row and its original. Scalar tensor.

    >>> import torch
    >>> float(reconstruction_loss(torch.zeros(2, 3), torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])))
    2.5
    """
    _check_pair(full, adapted)
    return (adapted - full).norm(dim=1).mean()


def nearest_neighbors(corpus_emb: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest *other* rows of each row of ``corpus_emb`` by cosine: int64 (N, k), nearest first.

    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32)
    >>> nearest_neighbors(x, 1).ravel().tolist()
    [1, 0, 1]
    """
    from course_lib.search import topk

    x = V.check_matrix("corpus_emb", corpus_emb)
    k = V.check_int("k", k, low=1, high=x.shape[0] - 1, what="the number of other rows")
    unit = truncate(x, x.shape[1])
    _, idx = topk(unit, unit, k + 1)  # (N, k + 1): itself first, unless tied
    out = np.empty((x.shape[0], k), np.int64)
    for i, row in enumerate(idx):
        out[i] = [j for j in row if j != i][:k]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The adaptor
# ---------------------------------------------------------------------------------------------------------------


def _forward(params: dict, x):
    import torch

    z = (x - params["mean"]) @ params["rotation"]  # (N, D): the input, centred and rotated (or not: mean 0, I)
    return z + torch.relu(z @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


PARAMS = ("mean", "rotation", "w1", "b1", "w2", "b2")


def _check_params(params, d: int) -> dict:
    if not isinstance(params, dict) or not set(PARAMS) <= set(params):
        raise TypeError(f"adaptor must be the dict train_adaptor returns (with {', '.join(PARAMS)})")
    w1, w2 = np.asarray(params["w1"]), np.asarray(params["w2"])
    if w1.ndim != 2 or w1.shape[0] != d or w2.shape != (w1.shape[1], d):
        raise ValueError(f"adaptor was trained on {w1.shape[0] if w1.ndim == 2 else '?'}-dim embeddings, "
                         f"but emb has {d} dims")
    return params


def adapt(emb: np.ndarray, adaptor: dict, dim: int | None = None) -> np.ndarray:
    """Apply a trained adaptor to ``emb`` (float (N, D)), keep the first ``dim`` (default D) and re-normalize.

    Returns float32 (N, dim). An untrained adaptor (``w2`` = 0, ``b2`` = 0) on no rotation is the identity:

    >>> a = {"mean": np.zeros(2, np.float32), "rotation": np.eye(2, dtype=np.float32),
    ...      "w1": np.ones((2, 3), np.float32), "b1": np.zeros(3, np.float32),
    ...      "w2": np.zeros((3, 2), np.float32), "b2": np.zeros(2, np.float32)}
    >>> adapt(np.array([[3.0, 4.0]], np.float32), a).astype(float).round(4).tolist()
    [[0.6, 0.8]]
    """
    import torch

    x = V.check_matrix("emb", emb)
    _check_params(adaptor, x.shape[1])
    dim = x.shape[1] if dim is None else V.check_int("dim", dim, low=1, high=x.shape[1], what="the embedding size")
    params = {k: torch.from_numpy(np.asarray(adaptor[k], np.float32)) for k in PARAMS}
    with torch.no_grad():
        out = _forward(params, torch.from_numpy(x.astype(np.float32))).numpy()  # (N, D)
    return truncate(out, dim)


def _mnrl(q, d, scale: float = 20.0):
    import torch

    scores = _cos(q, d) * scale  # (b, b): query i's positive is column i
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(q)))


def train_adaptor(corpus_emb: np.ndarray, *, dims: Sequence[int] = ADAPTOR_DIMS, k: int = 10, steps: int = 300,
                  batch_size: int = 1024, hidden: int = 512, lr: float = 1e-3,
                  weights: tuple[float, float, float] = (1.0, 1.0, 0.1), pairs: tuple | None = None,
                  init: str = "pca", seed: int = 0, show_progress: bool = True) -> dict:
    """Train a Matryoshka-Adaptor on ``corpus_emb`` (float (N, D)); unsupervised unless ``pairs`` is given.

    Each step takes a random batch of ``batch_size`` documents for :math:`L_{pair}`, and all N documents with their
    ``k`` nearest neighbours for :math:`L_{topk}` and :math:`L_{rec}`; ``weights`` are
    :math:`(\\alpha, \\beta, \\gamma)`. ``pairs = (query_emb, doc_emb)``, two float (P, D) arrays whose rows are
    (query, relevant document) pairs (train pairs through the leakage guard), adds the in-batch ranking loss at
    every prefix in ``dims``. ``init``: ``"pca"`` (start from PCA's rotation) or ``"identity"``. The targets
    are always the cosines of the original embeddings; :math:`L_{rec}` keeps :math:`f(z)` near its input
    :math:`z`. Returns ``{"mean", "rotation", "w1", "b1", "w2", "b2"}`` (float32 arrays for :func:`adapt`) with
    ``"losses"`` (one per step), ``"seconds"`` and the settings.
    """
    import torch
    from tqdm.auto import tqdm

    from course_lib.config import seeded_torch

    x = V.check_matrix("corpus_emb", corpus_emb)
    if x.shape[0] < 2:
        raise ValueError(f"corpus_emb must have at least 2 rows, got {x.shape[0]}")
    d = x.shape[1]
    dims = _check_dims(dims, d)
    k = V.check_int("k", k, low=1, high=x.shape[0] - 1, what="the number of other rows")
    V.check_int("steps", steps, low=1)
    V.check_int("batch_size", batch_size, low=2)
    V.check_int("hidden", hidden, low=1)
    V.check_number("lr", lr, low=0, low_open=True)
    w = V.check_sequence("weights", weights, "three numbers (alpha, beta, gamma)")
    if len(w) != 3:
        raise ValueError(f"weights must be (alpha, beta, gamma), got {len(w)} numbers")
    alpha, beta, gamma = (V.check_number(f"weights[{i}]", v, low=0) for i, v in enumerate(w))
    if pairs is not None:
        if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
            raise TypeError("pairs must be (query_emb, doc_emb), two arrays of aligned rows")
        q_pairs, d_pairs = V.check_matrix("pairs[0]", pairs[0]), V.check_matrix("pairs[1]", pairs[1])
        if q_pairs.shape != d_pairs.shape or q_pairs.shape[1] != d or len(q_pairs) < 2:
            raise ValueError(f"pairs must be two (P, {d}) arrays with P >= 2, got {q_pairs.shape} and {d_pairs.shape}")
    V.check_choice("init", init, ("pca", "identity"))
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)
    with seeded_torch(seed):  # the same seed, the same adaptor (the top-k loss's backward scatters gradients)
        g = torch.Generator().manual_seed(seed)
        full = torch.from_numpy(np.asarray(x, np.float32))  # (N, D): the targets' cosines and the adaptor's input
        neighbors = torch.from_numpy(nearest_neighbors(x, k))  # (N, k)
        if init == "pca":
            pca = pca_fit(x)
            fixed = {"mean": torch.from_numpy(pca.mean), "rotation": torch.from_numpy(pca.components)}
        else:
            fixed = {"mean": torch.zeros(d), "rotation": torch.eye(d)}
        weights_ = {"w1": torch.nn.Parameter(torch.randn(d, hidden) / d ** 0.5),
                    "b1": torch.nn.Parameter(torch.zeros(hidden)),
                    "w2": torch.nn.Parameter(torch.zeros(hidden, d)),  # f starts as the identity
                    "b2": torch.nn.Parameter(torch.zeros(d))}
        params = {**fixed, **weights_}
        opt = torch.optim.Adam(weights_.values(), lr=lr)
        if pairs is not None:
            qp = torch.from_numpy(np.asarray(q_pairs, np.float32))  # (P, D)
            dp = torch.from_numpy(np.asarray(d_pairs, np.float32))  # (P, D)
        losses = []
        start = time.perf_counter()
        for _ in tqdm(range(steps), desc="training adaptor", disable=not show_progress):
            adapted = _forward(params, full)  # (N, D)
            rows = torch.randperm(len(full), generator=g)[:batch_size]  # (b,)
            z = (full - fixed["mean"]) @ fixed["rotation"]  # (N, D): what the MLP sees
            loss = (alpha * pairwise_similarity_loss(full[rows], adapted[rows], dims)
                    + beta * topk_similarity_loss(full, adapted, neighbors, dims)
                    + gamma * reconstruction_loss(z, adapted))
            if pairs is not None:
                b = torch.randperm(len(qp), generator=g)[:min(64, len(qp))]  # (b,) pairs
                aq, ad = _forward(params, qp[b]), _forward(params, dp[b])  # (b, D) each
                loss = loss + sum(_mnrl(aq[:, :m], ad[:, :m]) for m in dims)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out = {name: p.detach().numpy().astype(np.float32) for name, p in params.items()}
        return {**out, "losses": losses, "seconds": round(time.perf_counter() - start, 2), "dims": list(dims), "k": k,
                "steps": steps, "hidden": hidden, "lr": lr, "weights": [alpha, beta, gamma], "init": init,
                "supervised": pairs is not None}


def arrays_fingerprint(arrays: Sequence[np.ndarray]) -> list[str]:
    """A short sha256 of each array's float32 bytes and shape: the cache key part of trained-on embeddings.

    >>> arrays_fingerprint([np.zeros((2, 3))]) == arrays_fingerprint([np.zeros((2, 3), np.float32)])
    True
    """
    import hashlib

    out = []
    for i, a in enumerate(arrays):
        x = np.ascontiguousarray(V.check_matrix(f"arrays[{i}]", a), np.float32)
        out.append(hashlib.sha256(repr(x.shape).encode() + x.tobytes()).hexdigest()[:16])
    return out


def adaptor_model(corpus_emb: np.ndarray, *, pairs: tuple | None = None, steps: int = 300, seed: int = 0,
                  retrain: bool = False, show_progress: bool = True) -> dict:
    """:func:`train_adaptor` with its defaults, cached: saved under ``<cache>/models/adaptor-<key>`` (the key hashes
    the embeddings, the pairs, ``steps`` and ``seed``) and loaded from there afterwards. Returns the adaptor dict
    with ``"cached"``."""
    from course_lib.cache import cache_dir, cache_key, load_json, load_or_compute, save_json

    x = V.check_matrix("corpus_emb", corpus_emb)
    V.check_bool("retrain", retrain)
    V.check_int("steps", steps, low=1)
    V.check_int("seed", seed, low=0)
    V.check_bool("show_progress", show_progress)
    if pairs is not None and (not isinstance(pairs, (tuple, list)) or len(pairs) != 2):
        raise TypeError("pairs must be (query_emb, doc_emb), two arrays of aligned rows")
    key = cache_key([arrays_fingerprint([x, *(pairs or ())]), {"steps": steps, "seed": seed}], length=16)
    path = cache_dir() / "models" / f"adaptor-{key}"

    def load():
        info = load_json(path / "course_training.json")
        with np.load(path / "params.npz") as z:
            return {**info, **{k: z[k] for k in PARAMS}}

    def compute():
        return train_adaptor(x, pairs=pairs, steps=steps, seed=seed, show_progress=show_progress)

    def save(value, staged):
        staged[0].mkdir()
        arrays = {k: value[k] for k in PARAMS}
        np.savez(staged[0] / "params.npz", **arrays)
        save_json(staged[0] / "course_training.json", {k: v for k, v in value.items() if k not in arrays})

    value, cached = load_or_compute([path], load=load, compute=compute, save=save, refresh=retrain,
                                    what="Matryoshka-Adaptor")
    return {**value, "cached": cached}
