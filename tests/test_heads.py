"""Heads: MLP projector/predictor, parameter-free cross-attention, convolutional decoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from nn_helpers import run_layer_test

from keras_eqssl.nn import MLP, ConvDecoder, CrossAttention, LinearHypernetwork


def _rand(*shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def _numpy_cross_attention(q, kv, scale):
    logits = np.einsum("bnd,bmd->bnm", q.astype(np.float64), kv.astype(np.float64)) * scale
    logits -= logits.max(-1, keepdims=True)
    attention = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return np.einsum("bnm,bmd->bnd", attention, kv), attention


# --- MLP ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, input_shape, output_shape, num_weights",
    [
        # 3 Dense (kernel + bias) + 2 BN (4 each)
        (dict(units=[64, 64, 16]), (4, 24), (4, 16), 6 + 8),
        # last Dense without bias
        (dict(units=[64, 64, 16], use_last_bias=False), (4, 24), (4, 16), 5 + 8),
        # SimSiam-style BN after the last Dense; tokens (B, N, d)
        (dict(units=[32, 8], last_batch_norm=True), (4, 5, 24), (4, 5, 8), 4 + 8),
        # E-SSL's projector end: a BN without gamma and beta (moving statistics only)
        (
            dict(units=[32, 8], use_last_bias=False, last_batch_norm=True, last_norm_affine=False),
            (4, 24),
            (4, 8),
            3 + 6,
        ),
        # a single linear layer
        (dict(units=[8]), (4, 24), (4, 8), 2),
        # E-SSL's head: LayerNorm (gamma + beta) instead of BN
        (dict(units=[16, 16, 4], norm="layer"), (4, 24), (4, 4), 6 + 4),
    ],
)
def test_mlp(kwargs, input_shape, output_shape, num_weights, tmp_path):
    run_layer_test(lambda: MLP(**kwargs), [_rand(*input_shape)], output_shape, num_weights, tmp_path=tmp_path)


def test_mlp_structure():
    mlp = MLP([32, 32, 8], use_last_bias=False)
    mlp.build((None, 16))
    assert [d.units for d in mlp.dense_layers] == [32, 32, 8]
    assert [d.use_bias for d in mlp.dense_layers] == [True, True, False]
    assert len(mlp.norm_layers) == 2
    # training-mode BN normalises the hidden units over the batch: the last hidden layer is ReLU(BN(.)).
    x = _rand(64, 16)
    hidden = keras.ops.relu(
        mlp.norm_layers[1](
            mlp.dense_layers[1](keras.ops.relu(mlp.norm_layers[0](mlp.dense_layers[0](x), training=True))),
            training=True,
        )
    )
    np.testing.assert_allclose(mlp(x, training=True), mlp.dense_layers[2](hidden), atol=1e-5)


def test_mlp_synchronized_batch_norm_under_strategy():
    mlp = MLP([16, 4], synchronized=True)
    assert all(bn.synchronized for bn in mlp.norm_layers)
    assert mlp.get_config()["synchronized"] is True
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mlp = MLP([16, 4], synchronized=True)
        mlp.build((None, 8))
    out = strategy.run(lambda x: mlp(x, training=True), args=(tf.constant(_rand(6, 8)),))
    assert tuple(strategy.experimental_local_results(out)[0].shape) == (6, 4)


def test_mlp_layer_norm_is_per_example():
    mlp = MLP([8, 3], norm="layer")
    x = _rand(6, 5)
    alone = np.concatenate([np.asarray(mlp(x[i : i + 1], training=True)) for i in range(6)])
    np.testing.assert_allclose(np.asarray(mlp(x, training=True)), alone, atol=1e-6)
    with pytest.raises(ValueError, match="norm must be one of"):
        MLP([8], norm="group")


def test_mlp_non_affine_last_batch_norm_matches_numpy():
    # torch's BatchNorm1d(affine=False): (y - mean) / sqrt(var + eps) over the batch, biased variance, no gamma/beta.
    mlp = MLP([16, 6], use_last_bias=False, last_batch_norm=True, last_norm_affine=False, bn_epsilon=1e-5)
    x = _rand(10, 5)
    out = np.asarray(mlp(x, training=True), np.float64)
    last, bn = mlp.norm_layers
    assert last.gamma is not None and bn.gamma is None and bn.beta is None
    assert mlp.get_config()["last_norm_affine"] is False
    assert MLP.from_config(mlp.get_config()).last_norm_affine is False
    hidden = np.maximum(np.asarray(last(mlp.dense_layers[0](x), training=True), np.float64), 0.0)
    y = hidden @ np.asarray(mlp.dense_layers[1].kernel, np.float64)
    expected = (y - y.mean(0)) / np.sqrt(y.var(0) + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    # eval mode: the moving statistics only, still without scale and shift
    mean, var = np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)
    y_eval = np.maximum(np.asarray(last(mlp.dense_layers[0](x), training=False), np.float64), 0.0)
    y_eval = y_eval @ np.asarray(mlp.dense_layers[1].kernel, np.float64)
    np.testing.assert_allclose(np.asarray(mlp(x, training=False)), (y_eval - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    with pytest.raises(ValueError, match="last_norm_affine=False"):
        MLP([16, 6], last_norm_affine=False)


# --- LinearHypernetwork -------------------------------------------------------------------------------
def test_linear_hypernetwork_matches_numpy(tmp_path):
    y, u = _rand(5, 6), _rand(5, 3)
    layer = run_layer_test(lambda: LinearHypernetwork(6), [y, u], (5, 6), 1, tmp_path=tmp_path)
    w = (u @ np.asarray(layer.weights_from_code.kernel)).reshape(5, 6, 6)
    np.testing.assert_allclose(np.asarray(layer(y, u)), np.einsum("bij,bj->bi", w, y), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"y must be \(B, 6\)"):
        LinearHypernetwork(6)(_rand(5, 4), u)


def test_mlp_bad_units():
    with pytest.raises(ValueError, match=r"Received: units=\[64, 0\]"):
        MLP([64, 0])


# --- CrossAttention -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scale, numpy_scale",
    [("sqrt_d", 1 / np.sqrt(16)), ("none", 1.0), (0.5, 0.5)],
)
def test_cross_attention_matches_numpy(scale, numpy_scale, tmp_path):
    query, source = _rand(2, 6, 16, seed=1), _rand(2, 9, 16, seed=2)
    layer = run_layer_test(
        lambda: CrossAttention(scale=scale), [query, source], (2, 6, 16), expected_num_weights=0, tmp_path=tmp_path
    )
    assert layer.weights == [] and layer.trainable_weights == []
    fused, attention = layer(query, source, return_attention=True)
    expected, expected_attention = _numpy_cross_attention(query, source, numpy_scale)
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attention, expected_attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-6)


def test_cross_attention_float32_under_mixed_precision():
    # Logits of ~1e5 overflow float16 (max 65504); the layer computes in float32 anyway.
    query, source = _rand(2, 4, 64, seed=3, scale=300.0), _rand(2, 5, 64, seed=4, scale=300.0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = CrossAttention()
        fused = layer(tf.cast(query, "float16"), tf.cast(source, "float16"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert fused.dtype == tf.float32
    assert np.all(np.isfinite(fused))
    expected, _ = _numpy_cross_attention(
        query.astype(np.float16).astype(np.float32), source.astype(np.float16).astype(np.float32), 1 / 8
    )
    np.testing.assert_allclose(fused, expected, rtol=1e-3, atol=1e-2)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
def test_cross_attention_single_source_token_copies_it():
    # Softmax over one key is 1: every query receives the source token (why the method needs tokens).
    source = _rand(2, 1, 8, seed=5)
    np.testing.assert_allclose(CrossAttention()(_rand(2, 3, 8), source), np.repeat(source, 3, axis=1), atol=1e-6)


@pytest.mark.parametrize("scale", ["sqrt", -1.0, 0, float("inf"), True])
def test_cross_attention_bad_scale(scale):
    with pytest.raises(ValueError, match="Received: scale="):
        CrossAttention(scale=scale)


def test_cross_attention_dimension_mismatch():
    with pytest.raises(ValueError, match="same, known last dimension"):
        CrossAttention()(_rand(1, 2, 8), _rand(1, 2, 4))


# --- ConvDecoder ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, tokens, output_shape, num_up",
    [
        (dict(grid_size=8, target_size=64, hidden_dim=32), (2, 64, 16), (2, 64, 64, 3), 3),
        (dict(grid_size=(2, 3), target_size=(8, 12), hidden_dim=16, filters=[16, 8]), (2, 6, 8), (2, 8, 12, 3), 2),
        (dict(grid_size=4, target_size=4, hidden_dim=8), (2, 16, 8), (2, 4, 4, 3), 0),
        (dict(grid_size=2, target_size=16, hidden_dim=32, filters=64, output_channels=1), (2, 4, 8), (2, 16, 16, 1), 3),
    ],
)
def test_conv_decoder(kwargs, tokens, output_shape, num_up, tmp_path):
    decoder = run_layer_test(lambda: ConvDecoder(**kwargs), [_rand(*tokens)], output_shape, tmp_path=tmp_path)
    assert decoder.num_upsamplings == num_up
    assert [type(layer).__name__ for layer in decoder.up_convs] == ["Conv2DTranspose"] * num_up
    assert all(c.kernel_size == (4, 4) and c.strides == (2, 2) for c in decoder.up_convs)
    assert decoder.output_conv.activation.__name__ == "linear"


def test_conv_decoder_default_filters_halve():
    decoder = ConvDecoder(grid_size=8, target_size=64, hidden_dim=256)
    assert [c.filters for c in decoder.up_convs] == [128, 64, 32]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid_size=8, target_size=60), "Received: grid_size=8, target_size=60"),
        (dict(grid_size=8, target_size=48), "times a power of two"),
        (dict(grid_size=8, target_size=4), "times a power of two"),
        (dict(grid_size=(2, 4), target_size=(8, 8)), r"Received: grid_size=\(2, 4\), target_size=\(8, 8\)"),
        (dict(grid_size=8, target_size=64, filters=[32, 16]), r"must list 3 positive ints"),
        (dict(grid_size=0, target_size=64), "Received: grid_size=0"),
    ],
)
def test_conv_decoder_bad_target(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvDecoder(**kwargs)


def test_conv_decoder_wrong_token_count():
    with pytest.raises(ValueError, match=r"expects tokens \(B, 64, d\)"):
        ConvDecoder(grid_size=8, target_size=16)(_rand(2, 49, 8))


def test_cross_attention_then_decoder_on_backbone_tokens():
    # The flagship wiring, tiny: tokens of two views -> split -> cross-attention -> decoder.
    from keras_eqssl.nn import backbone_from_name

    backbone = backbone_from_name("resnet18", stem="sie", width=0.125)
    views = _rand(2, 64, 64, 3, seed=6), _rand(2, 64, 64, 3, seed=7)
    z1, z2 = (backbone(v)["tokens"] for v in views)  # (2, 4, 64) each: a 2x2 grid
    e1, e2 = z1[..., 32:], z2[..., 32:]
    decoder = ConvDecoder(grid_size=backbone.grid_size(64), target_size=64, hidden_dim=16)
    assert tuple(decoder(CrossAttention()(e2, e1)).shape) == (2, 64, 64, 3)
