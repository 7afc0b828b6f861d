"""GTSA's dense heads: `ConvProjector` and `ConvPredictor` against a NumPy recomputation, config and saving."""

import math

import keras
import numpy as np
import pytest
from nn_helpers import run_layer_test

from keras_eqssl.nn.conv_projector import ConvPredictor, ConvProjector

_ERF = np.vectorize(math.erf)


def _rand(*shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


# --- the NumPy reference (float64) -------------------------------------------------------------
def _conv_same(x, kernel, bias):
    """Conv2D (cross-correlation), stride 1, 'same' zero padding, odd kernel: `(B, h, w, C) -> (B, h, w, F)`."""
    kh, kw = kernel.shape[:2]
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    batch, height, width, _ = x.shape
    out = np.zeros((batch, height, width, kernel.shape[-1]))
    for i in range(height):
        for j in range(width):
            patch = padded[:, i : i + kh, j : j + kw, :]  # (B, kh, kw, C)
            out[:, i, j, :] = np.einsum("bijc,ijcf->bf", patch, kernel)
    return out + bias


def _layer_norm(x, epsilon):
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


def _gelu(x):
    return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))


def _weights(conv):
    return np.asarray(conv.kernel, np.float64), np.asarray(conv.bias, np.float64)


def numpy_conv_projector(layer: ConvProjector, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    for conv in layer.block_convs:
        x = x + _gelu(_layer_norm(_conv_same(x, *_weights(conv)), layer.epsilon))
    return _conv_same(x, *_weights(layer.output_conv))


def numpy_conv_predictor(layer: ConvPredictor, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    hidden = _gelu(_layer_norm(_conv_same(x, *_weights(layer.hidden_conv)), layer.epsilon))
    return _conv_same(hidden, *_weights(layer.output_conv))


def _randomise(layer, seed=1, scale=0.3):
    """Replaces the (tiny, N(0, 0.02^2)) initial weights with O(1)-effect ones so the check means something."""
    rng = np.random.default_rng(seed)
    layer.set_weights([(scale * rng.normal(size=w.shape)).astype("float32") for w in layer.get_weights()])


# --- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape, num_weights",
    [
        (dict(units=8, output_units=6), (2, 5, 4, 8), (2, 5, 4, 6), 2 * 2 + 2),  # 2 blocks: LN has no weights
        (dict(units=8, output_units=3, num_blocks=1), (2, 3, 3, 8), (2, 3, 3, 3), 2 + 2),
        (dict(units=4, output_units=5, num_blocks=0), (2, 3, 2, 7), (2, 3, 2, 5), 2),  # only the 1x1 conv
    ],
)
def test_conv_projector(kwargs, input_shape, output_shape, num_weights, tmp_path):
    run_layer_test(lambda: ConvProjector(**kwargs), [_rand(*input_shape)], output_shape, num_weights, tmp_path=tmp_path)


def test_conv_predictor(tmp_path):
    run_layer_test(lambda: ConvPredictor(6), [_rand(2, 5, 4, 3)], (2, 5, 4, 6), 4, tmp_path=tmp_path)


def test_conv_projector_matches_numpy():
    layer = ConvProjector(units=6, output_units=5, num_blocks=1, epsilon=1e-5)
    x = _rand(2, 5, 4, 6)
    layer.build(x.shape)
    _randomise(layer)
    np.testing.assert_allclose(np.asarray(layer(x)), numpy_conv_projector(layer, x), rtol=1e-5, atol=1e-5)


def test_conv_projector_two_blocks_matches_numpy():
    layer = ConvProjector(units=4, output_units=3, num_blocks=2, epsilon=1e-3)
    x = _rand(1, 3, 5, 4, seed=2)
    layer.build(x.shape)
    _randomise(layer, seed=3)
    np.testing.assert_allclose(np.asarray(layer(x)), numpy_conv_projector(layer, x), rtol=1e-5, atol=1e-5)


def test_conv_predictor_matches_numpy():
    layer = ConvPredictor(units=5)
    x = _rand(2, 4, 3, 7)
    layer.build(x.shape)
    _randomise(layer)
    np.testing.assert_allclose(np.asarray(layer(x)), numpy_conv_predictor(layer, x), rtol=1e-5, atol=1e-5)


def test_initialisers():
    layer = ConvProjector(units=64, output_units=64, num_blocks=1)
    layer.build((None, 4, 4, 64))
    for conv in (*layer.block_convs, layer.output_conv):
        kernel, bias = _weights(conv)
        assert not np.any(bias), f"{conv.name}: biases should start at 0"
        assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002, (conv.name, kernel.std())
    assert [conv.kernel.shape for conv in (*layer.block_convs, layer.output_conv)] == [(3, 3, 64, 64), (1, 1, 64, 64)]
    norm = layer.block_norms[0]
    assert not norm.center and not norm.scale and norm.epsilon == 1e-5


def test_residual_needs_matching_channels():
    with pytest.raises(ValueError, match=r"input channels must equal `units`.*units=8.*\(2, 4, 4, 6\)"):
        ConvProjector(units=8, output_units=4)(_rand(2, 4, 4, 6))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConvProjector(units=0, output_units=4), "units"),
        (lambda: ConvProjector(units=4, output_units=-1), "output_units"),
        (lambda: ConvProjector(units=4, output_units=4, num_blocks=-1), "num_blocks"),
        (lambda: ConvProjector(units=4, output_units=4, epsilon=0.0), "epsilon"),
        (lambda: ConvPredictor(units=0), "units"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [lambda: ConvProjector(4, 4), lambda: ConvPredictor(4)])
def test_needs_a_feature_map(make):
    with pytest.raises(ValueError, match=r"\(B, h, w, C\)"):
        make()(_rand(2, 16, 4))


def test_mixed_precision():
    x = _rand(2, 4, 4, 8)
    reference = ConvProjector(units=8, output_units=4, num_blocks=2)
    reference.build(x.shape)
    _randomise(reference, scale=0.1)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = ConvProjector(units=8, output_units=4, num_blocks=2)
        predictor = ConvPredictor(4)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.build(x.shape)
    mixed.set_weights(reference.get_weights())
    out = mixed(x)
    assert out.dtype == "float16" and all(w.dtype == "float32" for w in mixed.weights)
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(reference(x)), atol=2e-2, rtol=2e-2)
    assert predictor(out).dtype == "float16"
