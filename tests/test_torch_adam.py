"""`TorchAdam` (torch.optim.Adam / AdamW's update) and the `adamw` of `optimizer_from_config` against a
NumPy transcription of torch's rule, their config keys, and the checkpoints of Keras' Adam/AdamW."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from optimizer_helpers import random_problem as _problem
from optimizer_helpers import run_optimizer as _run

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import ScheduledAdamW, TorchAdam
from keras_eqssl.methods.factory import optimizer_from_config


def torch_adam_reference(weights, grads, lrs, weight_decay, mode, eps=1e-8, betas=(0.9, 0.999), decays=None):
    """`torch.optim.Adam` ("coupled") / `torch.optim.AdamW` ("decoupled") steps in NumPy, float64."""
    b1, b2 = betas
    w = [np.asarray(x, np.float64).copy() for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    decays = decays or [True] * len(w)
    for t, (g_step, lr) in enumerate(zip(grads, lrs), start=1):
        for i, g in enumerate(g_step):
            g = np.asarray(g, np.float64)
            wd = weight_decay if decays[i] else 0.0
            if mode == "coupled":
                g = g + wd * w[i]  # torch.optim.Adam: grad.add(param, alpha=weight_decay)
            else:
                w[i] = w[i] * (1 - lr * wd)  # torch.optim.AdamW: param.mul_(1 - lr * weight_decay)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            denominator = np.sqrt(v[i]) / np.sqrt(1 - b2**t) + eps
            w[i] = w[i] - lr / (1 - b1**t) * m[i] / denominator
    return w


def _close(ours, expected, rtol=1e-5, atol=1e-6):
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "mode, weight_decay", [("coupled", 1e-6), ("coupled", 0.5), ("decoupled", 0.05), ("coupled", 0.0)]
)
def test_matches_torch_adam_reference(mode, weight_decay):
    weights, grads = _problem()
    ours = _run(TorchAdam(0.01, weight_decay=weight_decay, weight_decay_mode=mode), weights, grads)
    _close(ours, torch_adam_reference(weights, grads, [0.01] * len(grads), weight_decay, mode))


def test_schedule_and_betas():
    weights, grads = _problem(steps=15)
    schedule = keras.optimizers.schedules.CosineDecay(0.05, 15)
    lrs = [float(schedule(k)) for k in range(15)]
    ours = _run(TorchAdam(schedule, beta_1=0.8, beta_2=0.99, weight_decay=0.1), weights, grads)
    _close(ours, torch_adam_reference(weights, grads, lrs, 0.1, "coupled", betas=(0.8, 0.99)))


def test_epsilon_after_the_bias_correction():
    """Gradients near eps: torch's placement differs from Keras' Adam (eps before the correction, 32x at step 1)."""
    weights, grads = _problem(steps=3, scale=1e-8)
    expected = torch_adam_reference(weights, grads, [0.1] * 3, 0.0, "coupled")
    _close(_run(TorchAdam(0.1), weights, grads), expected, rtol=0, atol=1e-5)  # steps of ~lr / 2 = 0.05
    keras_adam = _run(keras.optimizers.Adam(0.1, epsilon=1e-8), weights, grads)
    assert max(np.abs(a - b).max() for a, b in zip(keras_adam, expected)) > 1e-3


def test_coupled_and_decoupled_differ_and_scheduled_adamw_is_torch_adamw():
    weights, grads = _problem()
    coupled = _run(TorchAdam(0.01, weight_decay=0.5), weights, grads)
    decoupled = _run(TorchAdam(0.01, weight_decay=0.5, weight_decay_mode="decoupled"), weights, grads)
    assert max(np.abs(a - b).max() for a, b in zip(coupled, decoupled)) > 1e-3
    expected = torch_adam_reference(weights, grads, [0.01] * len(grads), 0.5, "decoupled")
    _close(decoupled, expected)
    _close(_run(ScheduledAdamW(0.01, weight_decay=0.5), weights, grads), expected)


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_excluded_variables_get_no_decay(mode):
    weights, grads = _problem()
    optimizer = TorchAdam(0.01, weight_decay=0.3, weight_decay_mode=mode)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    ours = _run(optimizer, weights, grads, names=["kernel", "bias"])
    _close(ours, torch_adam_reference(weights, grads, [0.01] * len(grads), 0.3, mode, decays=[True, False]))


def test_arguments_and_serialisation():
    for kwargs, match in [
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(weight_decay_mode="l2"), "weight_decay_mode"),
        (dict(amsgrad=True), "amsgrad"),
    ]:
        with pytest.raises(ValueError, match=match):
            TorchAdam(0.1, **kwargs)
    optimizer = TorchAdam(0.03, weight_decay=1e-6, weight_decay_mode="coupled", clipnorm=1.0)
    config = optimizer.get_config()
    assert (config["weight_decay"], config["weight_decay_mode"], config["epsilon"]) == (1e-6, "coupled", 1e-8)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, TorchAdam) and restored.get_config() == config
    assert TorchAdam(0.1).get_config()["weight_decay"] is None  # no decay: no decay ops


def test_config_keys_pick_the_optimizer():
    config = get_config()
    config.optim.update(name="adam", weight_decay=1e-6, schedule="constant")
    optimizer = optimizer_from_config(config)
    assert isinstance(optimizer, TorchAdam) and optimizer.weight_decay is None  # "decoupled": Adam has no decay
    config.optim.weight_decay_mode = "coupled"
    validate(config)
    optimizer = optimizer_from_config(config)  # SIE's main.py: torch.optim.Adam(lr 1e-3, weight_decay 1e-6)
    assert isinstance(optimizer, TorchAdam) and optimizer.weight_decay == 1e-6
    assert (optimizer.weight_decay_mode, optimizer.epsilon) == ("coupled", 1e-8)

    config.optim.name = "adamw"
    with pytest.raises(ConfigError, match="weight_decay_mode"):
        validate(config)
    config.optim.weight_decay_mode = "decoupled"
    optimizer = optimizer_from_config(config)
    assert isinstance(optimizer, ScheduledAdamW) and optimizer.torch_epsilon and optimizer.epsilon == 1e-8
    assert optimizer.weight_decay_end is None and not optimizer.matrices_only


def test_keras_adam_and_adamw_checkpoints_load(tmp_path):
    """Weights and moments that Keras' Adam / AdamW saved load into TorchAdam / ScheduledAdamW (same variables)."""
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    for old, new in (
        (keras.optimizers.AdamW(1e-2, weight_decay=1e-4), ScheduledAdamW(1e-2, weight_decay=1e-4)),
        (keras.optimizers.Adam(1e-2), TorchAdam(1e-2)),
    ):
        models = []
        for optimizer in (old, new):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            model.compile(optimizer=optimizer, loss="mse")
            models.append(model)
        models[0].fit(x, x[:, :2], epochs=2, batch_size=4, verbose=0)
        path = str(tmp_path / "ckpt.weights.h5")
        models[0].save_weights(path)
        models[1].optimizer.build(models[1].trainable_variables)
        models[1].load_weights(path)
        assert int(models[1].optimizer.iterations.numpy()) == 4
        for a, b in zip(models[0].optimizer.variables, models[1].optimizer.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
