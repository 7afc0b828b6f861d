"""The shared checks that every `keras_eqssl.nn` test reuses (keras-hub's `run_*_test` style).

- `run_backbone_test(make, input_sizes, ...)`: a `Backbone` returns `{"feature_map", "tokens",
  "pooled"}` with consistent shapes at every input size (the grid `backbone.grid_size(size)`,
  `tokens` = `feature_map` flattened row-major, C = `feature_dim`), optionally pooled = mean of
  the tokens; then the config and saving checks below, at every input size.
- `run_layer_test(make, inputs, expected_output_shape, ...)`: the output shape, optionally the
  number of weights, then the config and saving checks with the layer wrapped in a functional
  model.
- `check_config_round_trip(obj, inputs)`: `from_config(get_config())` (and Keras'
  serialize/deserialize by registered name) rebuilds the same config and, given the same
  weights, the same outputs.
- `check_saving(model, inputs, tmp_path)`: `model.save("x.keras")` + `keras.models.load_model`
  gives identical outputs.
- `numpy_mlp(mlp, x, training)`: an `MLP`'s forward pass recomputed in float64 NumPy from its
  weights, the reference the method tests compare heads against.

Outputs are compared in inference mode (`training=False`), so BatchNorm uses its moving stats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_eqssl.nn import OUTPUT_KEYS


def random_images(batch: int, size: int | tuple[int, int], seed: int = 0) -> np.ndarray:
    """A normalised-looking float32 batch `(batch, H, W, 3)`."""
    height, width = (size, size) if isinstance(size, int) else size
    return np.random.default_rng(seed).normal(size=(batch, height, width, 3)).astype("float32")


def numpy_mlp(mlp, x, training: bool = False) -> np.ndarray:
    """An `MLP` forward pass in float64 NumPy from its weights: Dense, then BatchNorm (batch
    statistics when `training`, else the moving ones) or LayerNorm (per example), ReLU; the last
    Dense alone (and its BN with `last_batch_norm`)."""
    x = np.asarray(x, np.float64)
    last = len(mlp.dense_layers) - 1
    for i, dense in enumerate(mlp.dense_layers):
        x = x @ np.asarray(dense.kernel, np.float64)
        if dense.use_bias:
            x = x + np.asarray(dense.bias, np.float64)
        if i < len(mlp.norm_layers):
            norm = mlp.norm_layers[i]
            if mlp.norm == "layer":
                mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
            elif training:
                mean, var = x.mean(axis=0), x.var(axis=0)  # biased, over the batch
            else:
                mean, var = np.asarray(norm.moving_mean, np.float64), np.asarray(norm.moving_variance, np.float64)
            x = (x - mean) / np.sqrt(var + norm.epsilon)
            if norm.gamma is not None:  # MLP(last_norm_affine=False): no scale and shift
                x = x * np.asarray(norm.gamma) + np.asarray(norm.beta)
        if i < last:
            x = np.maximum(x, 0.0)
    return x


def _as_list(outputs) -> list[np.ndarray]:
    """Flattens a tensor, a tuple or a dict of tensors (sorted by key) into NumPy arrays."""
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def assert_outputs_equal(a, b, atol: float = 0.0, what: str = "outputs"):
    a, b = _as_list(a), _as_list(b)
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} outputs"
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f"{what}[{i}]: shape {x.shape} vs {y.shape}"
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=f"{what}[{i}] differ")


def _call(obj, inputs: Sequence[np.ndarray]):
    return obj(*inputs, training=False) if len(inputs) > 1 else obj(inputs[0], training=False)


def _call_model(model: keras.Model, inputs: Sequence[np.ndarray]):
    return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)


def check_config_round_trip(obj, inputs: Sequence[np.ndarray]):
    """`type(obj).from_config(obj.get_config())` has the same config and, with obj's weights, the same outputs."""
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config, f"config changed in the round trip:\n{config}\nvs\n{clone.get_config()}"
    # The registered-name path a parent model's config takes (e.g. a method holding a backbone).
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(revived) is type(obj) and revived.get_config() == config
    expected = _call(obj, inputs)
    _call(clone, inputs)  # builds the clone
    clone.set_weights(obj.get_weights())
    assert_outputs_equal(expected, _call(clone, inputs), what="from_config outputs")


def check_saving(model: keras.Model, inputs_list: Sequence[Sequence[np.ndarray]], tmp_path) -> keras.Model:
    """Saves `model` as `.keras`, loads it, and checks identical outputs on every input tuple."""
    path = str(tmp_path / f"{model.name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}, saved a {type(model).__name__}"
    for inputs in inputs_list:
        assert_outputs_equal(_call_model(model, inputs), _call_model(loaded, inputs), what="saved/loaded outputs")
    return loaded


def run_backbone_test(
    make: Callable[[], keras.Model],
    input_sizes: Sequence[int | tuple[int, int]],
    expected_dim: int,
    expected_grids: Sequence[tuple[int, int]] | None = None,
    pooled_is_mean: bool = False,
    tmp_path=None,
    batch: int = 2,
) -> keras.Model:
    """Shapes at every input size, then config and (when `tmp_path` is given) `.keras` saving checks."""
    backbone = make()
    assert backbone.has_spatial_map is True
    assert backbone.feature_dim == expected_dim, f"feature_dim {backbone.feature_dim} != {expected_dim}"
    inputs_list = []
    for i, size in enumerate(input_sizes):
        images = random_images(batch, size, seed=i)
        inputs_list.append((images,))
        out = backbone(images, training=False)
        assert tuple(sorted(out)) == tuple(sorted(OUTPUT_KEYS)), f"output keys {sorted(out)}"
        fmap, tokens, pooled = (np.asarray(out[k]) for k in OUTPUT_KEYS)
        h, w = backbone.grid_size(size)
        if expected_grids is not None:
            assert (h, w) == tuple(expected_grids[i]), f"grid at {size}: {(h, w)} != {expected_grids[i]}"
        assert fmap.shape == (batch, h, w, expected_dim), f"feature_map at {size}: {fmap.shape}"
        assert tokens.shape == (batch, h * w, expected_dim), f"tokens at {size}: {tokens.shape}"
        assert pooled.shape == (batch, expected_dim), f"pooled at {size}: {pooled.shape}"
        assert np.all(np.isfinite(fmap)) and np.all(np.isfinite(pooled))
        np.testing.assert_array_equal(tokens, fmap.reshape(batch, h * w, expected_dim))
        if pooled_is_mean:
            np.testing.assert_allclose(pooled, fmap.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    check_config_round_trip(backbone, inputs_list[0])
    if tmp_path is not None:
        check_saving(backbone, inputs_list, tmp_path)
    return backbone


def run_layer_test(
    make: Callable[[], keras.layers.Layer],
    inputs: Sequence[np.ndarray],
    expected_output_shape: tuple[int, ...],
    expected_num_weights: int | None = None,
    tmp_path=None,
) -> keras.layers.Layer:
    """Output shape and weight count, config round trip, and `.keras` saving inside a functional model."""
    layer = make()
    out = _call(layer, inputs)
    assert tuple(out.shape) == tuple(expected_output_shape), (
        f"output shape {tuple(out.shape)} != {expected_output_shape}"
    )
    assert np.all(np.isfinite(np.asarray(out)))
    if expected_num_weights is not None:
        assert len(layer.weights) == expected_num_weights, (
            f"{len(layer.weights)} weights: {[w.path for w in layer.weights]}"
        )
    check_config_round_trip(layer, inputs)
    if tmp_path is not None:
        symbolic = [keras.Input(shape=x.shape[1:], batch_size=None) for x in inputs]
        model_inputs = symbolic if len(symbolic) > 1 else symbolic[0]
        model = keras.Model(model_inputs, layer(*symbolic), name=f"{layer.name}_model")
        check_saving(model, [inputs], tmp_path)
    return layer
