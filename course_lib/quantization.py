"""Scalar, binary and low-precision float quantization of embeddings.

Scalar quantization with ``b`` bits maps each dimension ``j`` of an embedding onto ``L = 2**b`` levels
spread evenly over a calibrated range ``[lower_j, upper_j]``:

.. math::

    \\mathrm{step}_j = \\frac{\\mathrm{upper}_j - \\mathrm{lower}_j}{L - 1}, \\qquad
    c_j = \\operatorname{clip}\\Big(\\Big\\lfloor \\frac{x_j - \\mathrm{lower}_j}{\\mathrm{step}_j} + \\tfrac12 \\Big\\rfloor,
    \\; 0,\\; L - 1\\Big), \\qquad \\hat{x}_j = \\mathrm{lower}_j + c_j\\,\\mathrm{step}_j .

The code is rounded to the *nearest* level (ties upward), so inside the range the reconstruction error
is at most ``step_j / 2``; outside it the value is clipped to the nearer end, and the error is the
distance to the range plus nothing more. ``dtype="int8"`` stores ``c_j - 2**(b-1)`` (signed, centred);
``"uint8"`` stores ``c_j``. Both dequantize to the same ``x_hat``.

sentence-transformers' ``quantize_embeddings`` (6.x) uses the same 256 levels and step, but *floors*
instead of rounding: its code is ``floor((x - lower) / step)``, so in range it equals ours or is one
less, its error is up to one whole step, and it is biased downward by half a step on average. Outside
the range both clip to the same end code. ``tests/test_quantization.py`` checks exactly this.

Binary quantization keeps one bit per dimension, ``x_j > threshold``, packed eight to a byte,
**big-endian within a byte**: dimension ``8i`` is the most significant bit of byte ``i``, as
``np.packbits`` and faiss' binary indexes use. When ``D`` is not a multiple of 8, the last byte is
padded with zero bits at its low end.

Codes of fewer than 8 bits (int4, 2-bit) are stored one per byte by :func:`quantize_scalar` and packed
``8 // bits`` to a byte by :func:`pack_codes`, the first code in the most significant bits.

The fast kernels are compiled with numba (parallel over rows, vectorized over dimensions); each has a
readable NumPy twin (``*_reference``) that the tests hold it to, bit for bit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from course_lib import validation as V

Method = Literal["minmax", "percentile"]
CodeDtype = Literal["int8", "uint8"]
BinaryDtype = Literal["ubinary", "binary"]
FLOAT_DTYPES = V.FLOAT_DTYPES


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------

_HINT = "drop or fix those rows before quantizing"


def _check_embeddings(name: str, x, finite: bool = True) -> np.ndarray:
    return V.check_matrix(name, x, finite=finite, hint=_HINT)


def _check_bits(bits) -> int:
    return V.check_int("bits", bits, low=1, high=8)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ranges:
    """Per-dimension calibration bounds: ``lower`` and ``upper`` are float32 arrays of shape (D,)."""

    lower: np.ndarray
    upper: np.ndarray
    method: str = "minmax"
    n_rows: int = 0

    def __post_init__(self):
        V.check_array("lower", self.lower, ndim=1, shape="(D,)", finite=False)
        V.check_array("upper", self.upper, ndim=1, shape="(D,)", finite=False)
        if self.lower.shape != self.upper.shape:
            raise ValueError(f"lower and upper must have the same shape (D,), got {self.lower.shape} and "
                             f"{self.upper.shape}")
        V.check_int("n_rows", self.n_rows, low=0)

    @property
    def dim(self) -> int:
        return int(self.lower.shape[0])

    def step(self, bits: int = 8) -> np.ndarray:
        """Width of one quantization level, ``(upper - lower) / (2**bits - 1)``, float32 (D,)."""
        return ((self.upper - self.lower) / np.float32(2 ** _check_bits(bits) - 1)).astype(np.float32)

    def as_array(self) -> np.ndarray:
        """The (2, D) float32 layout that sentence-transformers' ``quantize_embeddings(ranges=...)`` takes."""
        return np.stack([self.lower, self.upper]).astype(np.float32)

    @classmethod
    def from_array(cls, ranges: np.ndarray, method: str = "given") -> Ranges:
        """Build from a (2, D) array of (lower, upper), e.g. one saved with an index."""
        V.check_array("ranges", ranges, ndim=2, shape="(2, D)")
        if ranges.shape[0] != 2:
            raise ValueError(f"ranges must have shape (2, D), got {ranges.shape}")
        V.check_fits_float32("ranges", ranges)
        out = cls(ranges[0].astype(np.float32), ranges[1].astype(np.float32), str(method))
        _check_ranges(out)
        return out


def _check_ranges(r: Ranges, dim: int | None = None) -> Ranges:
    return V.check_ranges(r, dim)


def calibrate(embeddings: np.ndarray, method: Method = "minmax", percentile: float = 99.9) -> Ranges:
    """Per-dimension quantization ranges from a sample of embeddings.

    Parameters
    ----------
    embeddings : np.ndarray
        float (N, D), N >= 2: the calibration sample (ideally the corpus or a large sample of it).
    method : {"minmax", "percentile"}
        ``"minmax"``: ``lower_j = min_i x_ij``, ``upper_j = max_i x_ij``. ``"percentile"``: the
        ``100 - percentile`` and ``percentile`` percentiles of each dimension, which ignores outliers
        and so spends the levels where the values are (the few values beyond are clipped).
    percentile : float
        In (50, 100]; used by ``"percentile"`` only.

    Returns
    -------
    Ranges
        ``lower``, ``upper``: float32 (D,).

    Raises
    ------
    ValueError
        For one row (every range would be a single point, so every code would be meaningless), a
        constant dimension, NaN or inf, or an unknown method.

    Examples
    --------
    >>> r = calibrate(np.array([[0.0, -1.0], [1.0, 1.0], [0.5, 0.0]], dtype=np.float32))
    >>> r.lower.tolist(), r.upper.tolist()
    ([0.0, -1.0], [1.0, 1.0])
    """
    x = _check_embeddings("embeddings", embeddings)
    V.check_choice("method", method, ("minmax", "percentile"))
    V.check_fits_float32("embeddings", x)
    if x.shape[0] < 2:
        raise ValueError(
            f"cannot calibrate on {x.shape[0]} row: every dimension's range would be a single point, so "
            "int8 codes would carry no information. Calibrate once on many rows (the corpus or a sample of it) "
            "and quantize single queries with those ranges")
    if method == "minmax":
        lower, upper = x.min(axis=0), x.max(axis=0)  # (D,) each
    else:
        V.check_number("percentile", percentile, low=50, high=100, low_open=True)
        lower, upper = np.percentile(x, [100 - percentile, percentile], axis=0)  # (D,) each
    return _check_ranges(Ranges(lower.astype(np.float32), upper.astype(np.float32), method, int(x.shape[0])))


# ---------------------------------------------------------------------------------------------
# Scalar quantization
# ---------------------------------------------------------------------------------------------

def _affine(ranges: Ranges, bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``level = clip(floor(x * scale + offset), 0, hi)``: the level index, before any int8 shift."""
    levels = 2 ** bits
    scale = (np.float32(levels - 1) / (ranges.upper - ranges.lower)).astype(np.float32)  # (D,)
    offset = (np.float32(0.5) - ranges.lower * scale).astype(np.float32)  # (D,)
    return scale, offset, levels - 1


@functools.cache
def _kernels():
    """Compile the numba kernels on first use (numba is imported lazily: ``import course_lib`` stays fast)."""
    import numba

    @numba.njit(parallel=True, cache=True)
    def scalar(x, scale, offset, hi, shift, out, bad):  # x (N, D) float32 -> out (N, D) int8/uint8
        n, d = x.shape
        for i in numba.prange(n):
            ok = True
            for j in range(d):
                v = x[i, j] * scale[j] + offset[j]
                ok &= (v - v) == 0  # False for NaN and inf; a branch-free test keeps the loop vectorized
                v = min(max(np.floor(v), np.float32(0.0)), hi)
                out[i, j] = v - shift  # an exact integer shift: int8 codes are uint8 codes - 2**(bits-1)
            bad[i] = not ok

    @numba.njit(parallel=True, cache=True)
    def binary(x, threshold, out, bad):  # x (N, D) float32 -> out (N, ceil(D/8)) uint8, big-endian bits
        n, d = x.shape
        nbytes = out.shape[1]
        for i in numba.prange(n):
            bits = np.zeros(8 * nbytes, np.uint8)  # zero padding past D
            ok = True
            for j in range(d):  # vectorized: one compare per dimension
                v = x[i, j]
                ok &= (v - v) == 0
                bits[j] = v > threshold[j]
            for b in range(nbytes):  # dimension 8b is the most significant bit of byte b
                out[i, b] = ((bits[8 * b] << 7) | (bits[8 * b + 1] << 6) | (bits[8 * b + 2] << 5)
                             | (bits[8 * b + 3] << 4) | (bits[8 * b + 4] << 3) | (bits[8 * b + 5] << 2)
                             | (bits[8 * b + 6] << 1) | bits[8 * b + 7])
            bad[i] = not ok

    return scalar, binary


def _prepare(name: str, x) -> np.ndarray:
    """float16 and float32 are computed in float32, float64 in float64 (a tiny float64 value keeps its sign)."""
    x = _check_embeddings(name, x, finite=False)  # finiteness is checked inside the kernels, for free
    return np.ascontiguousarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)


def _report_bad_rows(name: str, x: np.ndarray, bad: np.ndarray) -> None:
    """The kernels flag rows whose scaled values were not finite; raise if the input itself is not finite.

    A finite value whose scaled value overflows is far outside the range and clipped, which is right.
    """
    if bad.any():
        V.check_finite(name, x, _HINT)


def _out(out, shape: tuple[int, int], dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}, got "
                         f"{out.dtype if isinstance(out, np.ndarray) else type(out).__name__} "
                         f"{getattr(out, 'shape', '')}")
    return out


def quantize_scalar(embeddings: np.ndarray, ranges: Ranges, dtype: CodeDtype = "int8", bits: int = 8,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Clip to the calibrated range and round to the nearest of ``2**bits`` levels (the module's formula).

    Parameters
    ----------
    embeddings : np.ndarray
        float (N, D); finite.
    ranges : Ranges
        from :func:`calibrate`, with ``ranges.dim == D``.
    dtype : {"int8", "uint8"}
        ``"uint8"``: codes in ``[0, 2**bits - 1]``; ``"int8"``: codes in ``[-2**(bits-1), 2**(bits-1) - 1]``.
    bits : int
        1 to 8. With fewer than 8 bits the codes are still one per byte; see :func:`pack_codes`.
    out : np.ndarray, optional
        A preallocated (N, D) array of the result dtype to write into (saves the allocation in a loop).

    Returns
    -------
    np.ndarray
        int8 or uint8 (N, D).

    Examples
    --------
    >>> r = Ranges(np.array([-1.0], np.float32), np.array([1.0], np.float32))
    >>> quantize_scalar(np.array([[-2.0], [-1.0], [0.0], [0.004], [1.0], [3.0]], np.float32), r).ravel().tolist()
    [-128, -128, 0, 0, 127, 127]
    >>> quantize_scalar(np.array([[0.0], [1.0]], np.float32), r, "uint8", bits=4).ravel().tolist()
    [8, 15]
    """
    x = _prepare("embeddings", embeddings)
    _check_ranges(ranges, x.shape[1])
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"dtype must be 'int8' or 'uint8', got {dtype!r}")
    bits = _check_bits(bits)
    scale, offset, hi = _affine(ranges, bits)
    shift = 2 ** (bits - 1) if dtype == "int8" else 0
    out = _out(out, x.shape, np.int8 if dtype == "int8" else np.uint8)  # (N, D)
    bad = np.empty(x.shape[0], dtype=np.bool_)  # (N,) rows the kernel saw a NaN or inf in
    _kernels()[0](x, scale, offset, np.float32(hi), np.float32(shift), out, bad)
    _report_bad_rows("embeddings", x, bad)
    return out


def quantize_scalar_reference(embeddings: np.ndarray, ranges: Ranges, dtype: CodeDtype = "int8",
                              bits: int = 8) -> np.ndarray:
    """The same as :func:`quantize_scalar`, written as plain NumPy for reading (and about 5x slower)."""
    x = _check_embeddings("embeddings", embeddings)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
    _check_ranges(ranges, x.shape[1])
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"dtype must be 'int8' or 'uint8', got {dtype!r}")
    bits = _check_bits(bits)
    scale, offset, hi = _affine(ranges, bits)
    with np.errstate(over="ignore"):  # a finite value so far out that it overflows is clipped like any other
        levels = np.clip(np.floor(x * scale + offset), 0, hi)  # (N, D) nearest level index in [0, 2**bits - 1]
    if dtype == "int8":
        return (levels - 2 ** (bits - 1)).astype(np.int8)
    return levels.astype(np.uint8)


def dequantize_scalar(codes: np.ndarray, ranges: Ranges, bits: int = 8) -> np.ndarray:
    """Map codes back to values: ``lower + c * step`` (int8 codes are first shifted by ``2**(bits-1)``).

    Returns float32 (N, D).

    >>> r = Ranges(np.array([-1.0], np.float32), np.array([1.0], np.float32))
    >>> dequantize_scalar(np.array([[-128], [127]], np.int8), r).ravel().tolist()
    [-1.0, 1.0]
    """
    if not isinstance(codes, np.ndarray) or codes.dtype not in (np.int8, np.uint8):
        raise TypeError(f"codes must be an int8 or uint8 numpy array, got {V.describe(codes)}")
    V.check_array("codes", codes, ndim=2, kind="int", shape="(rows, dims)", nonempty=False)
    bits = _check_bits(bits)
    _check_ranges(ranges, codes.shape[1])
    signed = codes.dtype == np.int8
    levels = codes.astype(np.int16) + (2 ** (bits - 1) if signed else 0)  # (N, D) in [0, 2**bits - 1]
    if levels.size and (levels.min() < 0 or levels.max() > 2 ** bits - 1):
        raise ValueError(f"codes out of range for {bits}-bit {'int8' if signed else 'uint8'} codes: "
                         f"found {codes.min()}..{codes.max()}")
    return (ranges.lower + levels.astype(np.float32) * ranges.step(bits)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Packing codes of fewer than 8 bits
# ---------------------------------------------------------------------------------------------

def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack uint8 codes of ``bits`` in {1, 2, 4} bits, ``8 // bits`` to a byte, first code most significant.

    (N, D) -> (N, ceil(D * bits / 8)) uint8; a short last byte is padded with zero codes.

    >>> pack_codes(np.array([[1, 15, 7]], np.uint8), 4).tolist()  # 0x1F, 0x70
    [[31, 112]]
    """
    if not V.is_int(bits) or bits not in (1, 2, 4):
        raise ValueError(f"bits must be 1, 2 or 4 to pack, got {bits!r}")
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2:
        raise TypeError("codes must be a 2-D uint8 array (quantize with dtype='uint8' before packing), got "
                        f"{codes.dtype if isinstance(codes, np.ndarray) else type(codes).__name__}")
    if codes.size and codes.max() >= 2 ** bits:
        raise ValueError(f"codes must be < {2 ** bits} for {bits}-bit packing, found {codes.max()}")
    per = 8 // bits
    n, d = codes.shape
    padded = np.zeros((n, -(-d // per) * per), dtype=np.uint8)  # (N, bytes * per)
    padded[:, :d] = codes
    groups = padded.reshape(n, -1, per)  # (N, bytes, per)
    shifts = (bits * np.arange(per - 1, -1, -1)).astype(np.uint8)  # first code in the high bits
    return np.bitwise_or.reduce(groups << shifts, axis=2).astype(np.uint8)  # (N, bytes)


def unpack_codes(packed: np.ndarray, bits: int, dim: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: (N, bytes) uint8 -> (N, dim) uint8 codes.

    >>> unpack_codes(np.array([[31, 112]], np.uint8), 4, 3).tolist()
    [[1, 15, 7]]
    """
    if not V.is_int(bits) or bits not in (1, 2, 4):
        raise ValueError(f"bits must be 1, 2 or 4 to unpack, got {bits!r}")
    if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.ndim != 2:
        raise TypeError("packed must be a 2-D uint8 array")
    per = 8 // bits
    if not V.is_int(dim) or not 0 < dim <= packed.shape[1] * per or -(-dim // per) != packed.shape[1]:
        raise ValueError(f"dim={dim!r} does not fit {packed.shape[1]} bytes of {bits}-bit codes")
    shifts = (bits * np.arange(per - 1, -1, -1)).astype(np.uint8)
    codes = (packed[:, :, None] >> shifts) & np.uint8(2 ** bits - 1)  # (N, bytes, per)
    return codes.reshape(packed.shape[0], -1)[:, :dim]  # (N, dim)


# ---------------------------------------------------------------------------------------------
# Binary quantization
# ---------------------------------------------------------------------------------------------

def _threshold(threshold, dim: int, dtype=np.float32) -> np.ndarray:
    """A number or a (D,) float array, as ``dtype`` (the dtype the embeddings are compared in)."""
    if isinstance(threshold, np.ndarray):
        V.check_array("threshold", threshold, ndim=1, kind="real", shape="(D,)", nonempty=False)
        t = threshold.astype(dtype)
    else:
        t = np.full(dim, V.check_number("threshold", threshold), dtype=dtype)
    if t.shape != (dim,) or not np.isfinite(t).all():
        raise ValueError(f"threshold must be a finite number or a (D,) = ({dim},) array, got shape {t.shape}")
    return t


def quantize_binary(embeddings: np.ndarray, threshold: float | np.ndarray = 0.0,
                    dtype: BinaryDtype = "ubinary", out: np.ndarray | None = None) -> np.ndarray:
    """One bit per dimension, ``x_j > threshold_j``, packed big-endian within each byte.

    Parameters
    ----------
    embeddings : np.ndarray
        float (N, D); any D (the last byte is zero-padded when D % 8 != 0).
    threshold : float or np.ndarray
        0.0 (the sign) or a per-dimension (D,) array, e.g. each dimension's median.
    dtype : {"ubinary", "binary"}
        ``"ubinary"``: uint8 bytes, as ``np.packbits`` gives them. ``"binary"``: the same bytes minus 128
        as int8, sentence-transformers' "binary" precision.

    Returns
    -------
    np.ndarray
        uint8 or int8 (N, ceil(D / 8)).

    Examples
    --------
    >>> quantize_binary(np.array([[0.3, -0.1, 0.2, 0.0, 1.0, -2.0, 0.5, 0.5, 0.7]], np.float32)).tolist()
    [[171, 128]]
    """
    x = _prepare("embeddings", embeddings)
    if dtype not in ("ubinary", "binary"):
        raise ValueError(f"dtype must be 'ubinary' or 'binary', got {dtype!r}")
    t = _threshold(threshold, x.shape[1], x.dtype)  # (D,), compared in the embeddings' precision
    out = _out(out, (x.shape[0], -(-x.shape[1] // 8)), np.uint8)  # (N, ceil(D / 8))
    bad = np.empty(x.shape[0], dtype=np.bool_)  # (N,)
    _kernels()[1](x, t, out, bad)
    _report_bad_rows("embeddings", x, bad)
    return out if dtype == "ubinary" else (out - np.uint8(128)).view(np.int8)


def quantize_binary_reference(embeddings: np.ndarray, threshold: float | np.ndarray = 0.0) -> np.ndarray:
    """:func:`quantize_binary` (``"ubinary"``) in one line of NumPy."""
    x = _check_embeddings("embeddings", embeddings)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
    return np.packbits(x > _threshold(threshold, x.shape[1], x.dtype), axis=1)  # (N, ceil(D/8)) uint8, big-endian


def unpack_binary(codes: np.ndarray, dim: int, signed: bool = False) -> np.ndarray:
    """Unpack (N, ceil(dim/8)) uint8 (or sentence-transformers' int8 "binary") codes to (N, dim) bits.

    Returns uint8 {0, 1}, or float32 {-1, +1} with ``signed=True`` (the form for a float dot product).

    >>> unpack_binary(np.array([[171, 128]], np.uint8), 9).tolist()
    [[1, 0, 1, 0, 1, 0, 1, 1, 1]]
    """
    if not isinstance(codes, np.ndarray) or codes.dtype not in (np.uint8, np.int8) or codes.ndim != 2:
        raise TypeError(f"codes must be a 2-D uint8 (ubinary) or int8 (binary) array, got {V.describe(codes)}")
    if codes.dtype == np.int8:
        codes = (codes.view(np.uint8) + np.uint8(128)).astype(np.uint8)
    V.check_bool("signed", signed)
    if not V.is_int(dim) or dim <= 0 or -(-int(dim) // 8) != codes.shape[1]:
        raise ValueError(f"dim={dim!r} does not match {codes.shape[1]} bytes per row (expected ceil(dim / 8))")
    bits = np.unpackbits(codes, axis=1, count=int(dim))  # (N, dim) uint8
    return (bits.astype(np.float32) * 2 - 1) if signed else bits


# ---------------------------------------------------------------------------------------------
# Low-precision floats
# ---------------------------------------------------------------------------------------------

def to_float16(embeddings: np.ndarray) -> np.ndarray:
    """Cast to IEEE float16 (round to nearest even). Values beyond +-65504 would become inf: an error.

    >>> to_float16(np.array([[0.1]], np.float32)).tolist()
    [[0.0999755859375]]
    """
    x = _check_embeddings("embeddings", embeddings)
    if np.abs(x).max() > np.finfo(np.float16).max:
        raise ValueError("embeddings exceed float16's range (+-65504); normalize them first")
    return x.astype(np.float16)


def to_bfloat16(embeddings: np.ndarray) -> np.ndarray:
    """Cast to bfloat16 (round to nearest even), returned as its uint16 bit patterns (NumPy has no bfloat16).

    bfloat16 keeps float32's 8 exponent bits and 7 of its 23 mantissa bits: the top half of the float32.

    >>> to_bfloat16(np.array([[1.0, -2.0]], np.float32)).tolist()
    [[16256, 49152]]
    """
    x = _check_embeddings("embeddings", embeddings)
    V.check_fits_float32("embeddings", x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)  # (N, D) float32 bit patterns
    rounding = np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))  # round half to even
    out = ((u + rounding) >> np.uint32(16)).astype(np.uint16)  # (N, D)
    if ((out & np.uint16(0x7FFF)) == np.uint16(0x7F80)).any():  # rounded up to inf: beyond bfloat16's range
        r, c = np.argwhere((out & np.uint16(0x7FFF)) == np.uint16(0x7F80))[0]
        raise ValueError(f"embeddings exceed bfloat16's range (+-3.39e38): {x[r, c]:g} at row {r}, dim {c} would "
                         f"round to inf; normalize them first")
    return out


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) to float32, exactly.

    >>> from_bfloat16(np.array([[16256, 49152]], np.uint16)).tolist()
    [[1.0, -2.0]]
    """
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint16:
        raise TypeError("bits must be a uint16 numpy array of bfloat16 bit patterns (from to_bfloat16)")
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def reconstruction_error(embeddings: np.ndarray, reconstructed: np.ndarray) -> dict[str, float]:
    """Mean squared error per value and mean cosine similarity per row between original and reconstruction.

    >>> reconstruction_error(np.array([[1.0, 0.0]]), np.array([[1.0, 0.5]]))
    {'mse': 0.125, 'cosine': 0.894427}
    """
    a = _check_embeddings("embeddings", embeddings).astype(np.float64)
    b = _check_embeddings("reconstructed", reconstructed).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embeddings and reconstructed must have the same shape, got {a.shape} and {b.shape}")
    with np.errstate(over="ignore"):
        mse = float(((a - b) ** 2).mean())
    if not np.isfinite(mse):
        raise ValueError("the squared error of embeddings and reconstructed overflows float64: scale them down")
    an = a / np.maximum(np.abs(a).max(axis=1, keepdims=True), np.finfo(np.float64).tiny)  # (N, D) scaled rows:
    bn = b / np.maximum(np.abs(b).max(axis=1, keepdims=True), np.finfo(np.float64).tiny)  # no overflow in norms
    na, nb = np.linalg.norm(an, axis=1), np.linalg.norm(bn, axis=1)  # (N,) each
    if not ((na > 0) & (nb > 0)).all():
        r = int(np.flatnonzero(~((na > 0) & (nb > 0)))[0])
        raise ValueError(f"row {r} of embeddings or reconstructed is all zeros: its cosine is undefined")
    cos = (an * bn).sum(1) / (na * nb)  # (N,)
    return {"mse": round(mse, 9), "cosine": round(float(cos.mean()), 6)}


def bytes_per_vector(dim: int, bits: int | float) -> int:
    """Storage of one vector of ``dim`` values at ``bits`` each, in whole bytes (calibration ranges excluded).

    >>> [bytes_per_vector(384, b) for b in (32, 16, 8, 4, 2, 1)]
    [1536, 768, 384, 192, 96, 48]
    """
    dim = V.check_int("dim", dim, low=1)
    V.check_number("bits", bits, low=0, low_open=True)
    return int(-(-dim * bits // 8))
