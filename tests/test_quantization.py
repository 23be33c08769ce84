"""Quantization kernels against their NumPy references, sentence-transformers and torch, on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sentence_transformers.util import quantize_embeddings

from course_lib import quantization as Q


def _emb(n=500, d=384, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32) * rng.uniform(0.01, 0.2, d).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    x = _emb()
    calib = x[:300]
    # rows 300.. include values outside the calibration range on both sides
    test = np.concatenate([x[300:], 1.5 * x[300:350], np.full((1, x.shape[1]), 0.9, np.float32)])
    return calib, test


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fast_kernel_equals_the_numpy_reference_bit_for_bit(data, dtype, bits):
    calib, test = data
    r = Q.calibrate(calib)
    fast = Q.quantize_scalar(test, r, dtype, bits)
    np.testing.assert_array_equal(fast, Q.quantize_scalar_reference(test, r, dtype, bits))
    assert fast.dtype == np.dtype(dtype)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if dtype == "int8" else (0, 2 ** bits - 1)
    assert fast.min() == lo and fast.max() == hi  # out-of-range values reach the end codes, no wrap-around


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_rounding_vs_sentence_transformers_flooring_within_one_step(data, precision):
    calib, test = data
    r = Q.calibrate(calib)
    ours = Q.quantize_scalar(test, r, precision).astype(np.int16)
    theirs = quantize_embeddings(test, precision, ranges=r.as_array()).astype(np.int16)
    diff = ours - theirs
    assert set(np.unique(diff)) <= {0, 1}  # round-to-nearest is floor or floor + 1
    assert 0.4 < (diff == 1).mean() < 0.6  # ... about half the time: flooring is biased by half a step
    outside = (test < r.lower) | (test > r.upper)
    assert outside.sum() > 1000 and (diff[outside] == 0).all()  # both clip outside the range
    # Error bounds inside the range: ours at most half a step, theirs up to a whole step.
    inside = ~outside
    step = np.broadcast_to(r.step(8), test.shape)
    err_ours = np.abs(Q.dequantize_scalar(ours.astype(precision), r) - test)
    err_theirs = np.abs(Q.dequantize_scalar(theirs.astype(precision), r) - test)
    assert (err_ours[inside] <= 0.5 * step[inside] * (1 + 1e-4)).all()
    assert (err_theirs[inside] <= step[inside] * (1 + 1e-4)).all()
    assert (err_theirs[inside] > 0.5 * step[inside] * (1 + 1e-3)).any()
    assert err_ours[inside].mean() < 0.6 * err_theirs[inside].mean()


def test_int8_and_uint8_codes_dequantize_to_the_same_values(data):
    calib, test = data
    r = Q.calibrate(calib, "percentile", 99.0)
    a = Q.dequantize_scalar(Q.quantize_scalar(test, r, "int8"), r)
    b = Q.dequantize_scalar(Q.quantize_scalar(test, r, "uint8"), r)
    np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_dequantize_then_quantize_gives_the_codes_back(data, bits):
    calib, test = data
    r = Q.calibrate(calib)
    codes = Q.quantize_scalar(test, r, "uint8", bits)
    np.testing.assert_array_equal(Q.quantize_scalar(Q.dequantize_scalar(codes, r, bits), r, "uint8", bits), codes)


def test_percentile_calibration_narrows_the_range():
    x = _emb(1000, 64)
    mm, p100, p99 = Q.calibrate(x), Q.calibrate(x, "percentile", 100), Q.calibrate(x, "percentile", 99)
    np.testing.assert_allclose(p100.lower, mm.lower)
    np.testing.assert_allclose(p100.upper, mm.upper)
    assert (p99.lower > mm.lower).all() and (p99.upper < mm.upper).all()
    np.testing.assert_allclose(p99.upper, np.percentile(x, 99, axis=0), rtol=1e-6)


@pytest.mark.parametrize("dim", [1, 7, 8, 13, 384, 385])
def test_binary_is_bit_identical_to_sentence_transformers_and_packbits(dim):
    x = _emb(257, dim, seed=dim)
    x[0, 0] = 0.0  # exactly the threshold: 0, since the bit is x > 0
    ours = Q.quantize_binary(x)
    assert ours.shape == (257, -(-dim // 8)) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, quantize_embeddings(x, "ubinary"))
    np.testing.assert_array_equal(ours, np.packbits(x > 0, axis=1))
    np.testing.assert_array_equal(ours, Q.quantize_binary_reference(x))
    signed = Q.quantize_binary(x, dtype="binary")
    np.testing.assert_array_equal(signed, quantize_embeddings(x, "binary"))
    np.testing.assert_array_equal(Q.unpack_binary(signed, dim), (x > 0).astype(np.uint8))
    np.testing.assert_array_equal(Q.unpack_binary(ours, dim, signed=True), np.where(x > 0, 1.0, -1.0))


def test_binary_bit_order_is_big_endian_within_a_byte():
    x = -np.ones((1, 16), np.float32)
    x[0, 0] = x[0, 15] = 1.0  # dimension 0 -> the top bit of byte 0; dimension 15 -> the low bit of byte 1
    assert Q.quantize_binary(x).tolist() == [[0b10000000, 0b00000001]]
    t = np.zeros(16, np.float32)
    t[0] = 2.0  # a per-dimension threshold
    assert Q.quantize_binary(x, threshold=t).tolist() == [[0, 1]]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), dim=st.integers(1, 70), seed=st.integers(0, 2 ** 16))
def test_binary_and_scalar_kernels_on_any_shape(n, dim, seed):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    np.testing.assert_array_equal(Q.quantize_binary(x), np.packbits(x > 0, axis=1))
    r = Q.calibrate(np.concatenate([x, x + 1]))
    for bits in (2, 4, 8):
        codes = Q.quantize_scalar(x, r, "uint8", bits)
        np.testing.assert_array_equal(codes, Q.quantize_scalar_reference(x, r, "uint8", bits))
        if bits < 8:
            np.testing.assert_array_equal(Q.unpack_codes(Q.pack_codes(codes, bits), bits, dim), codes)


def test_pack_codes_order_and_one_bit_equals_packbits():
    assert Q.pack_codes(np.array([[1, 2, 3, 0, 3]], np.uint8), 2).tolist() == [[0b01101100, 0b11000000]]
    bits = (np.random.default_rng(0).random((4, 21)) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(Q.pack_codes(bits, 1), np.packbits(bits, axis=1))
    assert Q.pack_codes(np.zeros((3, 384), np.uint8), 4).shape == (3, 192)


def test_bfloat16_rounds_like_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(99_995).astype(np.float32),
                        np.array([1.0, -0.0, 1e-40, 3e38, 1.00390625, 1.01171875, -1.00390625], np.float32)])
    x = x.reshape(-1, 7)
    ours = Q.to_bfloat16(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(ours, theirs)  # including the round-half-to-even cases
    np.testing.assert_array_equal(Q.from_bfloat16(ours), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_float16_cast_and_its_range():
    x = _emb(10, 32)
    np.testing.assert_array_equal(Q.to_float16(x), x.astype(np.float16))
    with pytest.raises(ValueError, match="exceed float16's range"):
        Q.to_float16(np.array([[1e5]], np.float32))


def test_inputs_of_other_float_dtypes_are_quantized_as_float32(data):
    calib, test = data
    r = Q.calibrate(calib)
    np.testing.assert_array_equal(Q.quantize_scalar(test.astype(np.float64), r), Q.quantize_scalar(test, r))
    np.testing.assert_array_equal(Q.quantize_binary(test.astype(np.float16)), Q.quantize_binary(test))


def test_huge_finite_values_clip_rather_than_error():
    r = Q.Ranges(np.zeros(2, np.float32), np.ones(2, np.float32))
    codes = Q.quantize_scalar(np.array([[3e38, -3e38]], np.float32), r, "uint8")  # x * scale overflows to inf
    assert codes.tolist() == [[255, 0]]


def test_out_buffer_is_written_in_place(data):
    calib, test = data
    r = Q.calibrate(calib)
    buf = np.empty(test.shape, np.int8)
    assert Q.quantize_scalar(test, r, out=buf) is buf
    with pytest.raises(ValueError, match="out must be a C-contiguous int8 array of shape"):
        Q.quantize_scalar(test, r, out=np.empty((2, 2), np.int8))


# ---------------------------------------------------------------------------------------------
# Bad input is named
# ---------------------------------------------------------------------------------------------

def test_nan_and_inf_are_reported_with_their_position():
    x = _emb(20, 16)
    r = Q.calibrate(x)
    bad = x.copy()
    bad[7, 3] = np.nan
    for fn in (lambda a: Q.quantize_scalar(a, r), Q.quantize_binary, Q.calibrate):
        with pytest.raises(ValueError, match=r"contains NaN or inf: 1 value\(s\), the first at row 7, dim 3"):
            fn(bad)
    bad[7, 3] = np.inf
    with pytest.raises(ValueError, match="row 7, dim 3"):
        Q.quantize_binary(bad)
    with pytest.raises(ValueError, match="row 7, dim 3"):
        Q.quantize_scalar(bad, r, bits=4)


def test_degenerate_calibration_is_refused():
    with pytest.raises(ValueError, match="cannot calibrate on 1 row"):
        Q.calibrate(_emb(1, 8))
    x = _emb(50, 8)
    x[:, 5] = 0.25  # a constant dimension
    with pytest.raises(ValueError, match=r"degenerate calibration range in 1 of 8 dims \(first: dim 5"):
        Q.calibrate(x)
    with pytest.raises(ValueError, match="degenerate"):
        Q.Ranges.from_array(np.array([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"degenerate calibration range in 1 of 2 dims \(first: dim 1"):
        Q.Ranges.from_array(np.array([[0.0, 0.0], [1.0, 1e-40]], np.float32))  # 255 / 1e-40 overflows float32


def test_wrong_types_shapes_and_options_are_named():
    x = _emb(10, 8)
    r = Q.calibrate(x)
    with pytest.raises(TypeError, match="must be a float16/float32/float64 array, got dtype int64"):
        Q.calibrate(np.ones((3, 8), dtype=np.int64))
    with pytest.raises(TypeError, match="must be a numpy array, got list"):
        Q.quantize_binary([[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"must be 2-D \(rows, dims\), got shape \(8,\)"):
        Q.quantize_scalar(x[0], r)
    with pytest.raises(ValueError, match=r"got shape \(2, 5, 8\)"):
        Q.quantize_binary(np.zeros((2, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"at least one row and one dimension, got shape \(0, 8\)"):
        Q.quantize_scalar(np.zeros((0, 8), np.float32), r)
    with pytest.raises(ValueError, match="calibrated for 8 dims but the embeddings have 4"):
        Q.quantize_scalar(x[:, :4], r)
    with pytest.raises(ValueError, match="dtype must be 'int8' or 'uint8', got 'int4'"):
        Q.quantize_scalar(x, r, "int4")
    with pytest.raises(ValueError, match=r"bits must be an int in \[1, 8\], got 9"):
        Q.quantize_scalar(x, r, bits=9)
    with pytest.raises(ValueError, match="method must be 'minmax' or 'percentile'"):
        Q.calibrate(x, "max")
    with pytest.raises(ValueError, match=r"percentile must be a number in \(50, 100\]"):
        Q.calibrate(x, "percentile", 30)
    with pytest.raises(TypeError, match="ranges must be a course_lib.quantization.Ranges"):
        Q.quantize_scalar(x, r.as_array())
    with pytest.raises(ValueError, match="codes out of range for 4-bit uint8 codes"):
        Q.dequantize_scalar(np.array([[16] * 8], np.uint8), r, bits=4)
    with pytest.raises(ValueError, match="codes must be < 16 for 4-bit packing"):
        Q.pack_codes(np.array([[16]], np.uint8), 4)
    with pytest.raises(ValueError, match="does not match 1 bytes per row"):
        Q.unpack_binary(np.zeros((1, 1), np.uint8), 9)
    with pytest.raises(ValueError, match=r"threshold must be a finite number or a \(D,\) = \(8,\) array"):
        Q.quantize_binary(x, threshold=np.zeros(3))


def test_reconstruction_error_and_bytes():
    x = _emb(200, 384)
    r = Q.calibrate(x)
    e8 = Q.reconstruction_error(x, Q.dequantize_scalar(Q.quantize_scalar(x, r), r))
    e4 = Q.reconstruction_error(x, Q.dequantize_scalar(Q.quantize_scalar(x, r, bits=4), r, bits=4))
    assert e8["mse"] < e4["mse"] / 100 and e8["cosine"] > 0.999 > e4["cosine"] > 0.9
    assert Q.bytes_per_vector(384, 4) == 192 and Q.bytes_per_vector(385, 1) == 49
