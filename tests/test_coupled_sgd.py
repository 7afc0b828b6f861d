"""`CoupledSGD` (torch.optim.SGD's update) against a NumPy transcription of torch's rule, its config key
`optim.weight_decay_mode`, and its difference from Keras's decoupled `SGD(weight_decay)`."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from optimizer_helpers import random_problem as _problem
from optimizer_helpers import run_optimizer as _run

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import CoupledSGD
from keras_eqssl.methods.factory import optimizer_from_config


def torch_sgd_reference(weights, grads, lrs, momentum, weight_decay, nesterov=False, decays=None):
    """`torch.optim.SGD.step` (dampening 0) in NumPy, float64: `grads[k][i]` at step k with lr `lrs[k]`."""
    w = [np.asarray(x, np.float64).copy() for x in weights]
    buffers = [None] * len(w)
    decays = decays or [True] * len(w)
    for g_step, lr in zip(grads, lrs):
        for i, g in enumerate(g_step):
            d = np.asarray(g, np.float64) + (weight_decay * w[i] if decays[i] else 0.0)
            if momentum:
                buffers[i] = d.copy() if buffers[i] is None else momentum * buffers[i] + d
                d = d + momentum * buffers[i] if nesterov else buffers[i]
            w[i] = w[i] - lr * d
    return w


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov", [(0.9, 5e-4, False), (0.9, 0.05, True), (0.0, 0.1, False), (0.5, 0.0, False)]
)
def test_matches_torch_sgd_reference(momentum, weight_decay, nesterov):
    weights, grads = _problem(steps=12)
    ours = _run(CoupledSGD(0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov), weights, grads)
    expected = torch_sgd_reference(weights, grads, [0.1] * len(grads), momentum, weight_decay, nesterov)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_schedule_multiplies_the_momentum_buffer_as_torch():
    """torch scales the buffer by the current lr; Keras's SGD keeps lr inside its velocity."""
    weights, grads = _problem(steps=20)
    schedule = keras.optimizers.schedules.CosineDecay(0.5, 20)
    lrs = [float(schedule(k)) for k in range(20)]
    ours = _run(CoupledSGD(schedule, momentum=0.9, weight_decay=0.01), weights, grads)
    expected = torch_sgd_reference(weights, grads, lrs, 0.9, 0.01)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    decoupled = _run(keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=0.01), weights, grads)
    assert max(np.abs(a - b).max() for a, b in zip(decoupled, expected)) > 1e-2


def test_first_step_equals_decoupled_then_the_decay_goes_through_the_momentum():
    """One step from rest is the same for both; with momentum the coupled decay accumulates (about 1/(1-m) x)."""
    w0 = [np.ones((2,), "float32")]
    zero = [[np.zeros((2,), "float32")] for _ in range(50)]
    coupled = _run(CoupledSGD(0.1, momentum=0.9, weight_decay=0.01), w0, zero[:1])[0]
    decoupled = _run(keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01), w0, zero[:1])[0]
    np.testing.assert_allclose(coupled, decoupled, rtol=1e-6)
    coupled = _run(CoupledSGD(0.1, momentum=0.9, weight_decay=0.01), w0, zero)[0]
    decoupled = _run(keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01), w0, zero)[0]
    np.testing.assert_allclose(coupled, torch_sgd_reference(w0, zero, [0.1] * 50, 0.9, 0.01)[0], rtol=1e-5)
    assert (1 - coupled[0]) > 5 * (1 - decoupled[0])


def test_excluded_variables_get_no_decay():
    weights, grads = _problem(steps=12)
    optimizer = CoupledSGD(0.1, momentum=0.9, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    ours = _run(optimizer, weights, grads, names=["kernel", "bias"])
    expected = torch_sgd_reference(weights, grads, [0.1] * len(grads), 0.9, 0.1, decays=[True, False])
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_arguments_and_serialisation():
    for kwargs, match in [
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(momentum=0.0, nesterov=True), "nesterov"),
    ]:
        with pytest.raises(ValueError, match=match):
            CoupledSGD(0.1, **kwargs)
    optimizer = CoupledSGD(0.03, momentum=0.8, nesterov=True, weight_decay=5e-4, clipnorm=1.0)
    config = optimizer.get_config()
    assert (config["momentum"], config["nesterov"], config["weight_decay"]) == (0.8, True, 5e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, CoupledSGD) and restored.get_config() == config


def test_config_key_picks_the_optimizer():
    config = get_config()
    assert config.optim.weight_decay_mode == "decoupled"
    config.optim.name, config.optim.weight_decay = "sgd", 5e-4
    assert type(optimizer_from_config(config)) is keras.optimizers.SGD
    config.optim.weight_decay_mode = "coupled"
    validate(config)
    optimizer = optimizer_from_config(config)
    assert isinstance(optimizer, CoupledSGD) and optimizer.momentum == 0.9 and optimizer.weight_decay == 5e-4

    config.optim.weight_decay_mode = "l2"
    with pytest.raises(ConfigError, match="optim.weight_decay_mode"):
        validate(config)
    config.optim.weight_decay_mode, config.optim.name = "coupled", "adamw"
    with pytest.raises(ConfigError, match="weight_decay_mode='coupled'.*sgd"):
        validate(config)


def test_resume_refuses_a_changed_weight_decay_mode():
    """The update rule is part of the run (optim.name is refused too); a changed mode is refused on resume."""
    from keras_eqssl.resume import rule_for

    assert rule_for("optim.weight_decay_mode") == "refuse"


def test_keras_file_keeps_the_optimizer_state(tmp_path):
    """A `.keras` file (checkpoints, resume) restores the momentum buffers and the step count."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=CoupledSGD(0.1, momentum=0.9, weight_decay=0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, CoupledSGD) and int(loaded.optimizer.iterations) == 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(np.any(np.asarray(v)) for v in loaded.optimizer.momentums)
