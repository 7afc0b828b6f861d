"""What a TPU run goes through, exercised on the CPU as far as it can be.

A TPU run differs from a CPU run in three places we control: the strategy comes from
`TPUClusterResolver(tpu=<the --tpu flag>)`, the losses are replica-aware (checked on 2 CPU
replicas by tests/test_methods_distributed.py and tests/test_multiworker.py), and the compiled
step runs several training steps per call (`train.steps_per_execution`). Here:

- the `--tpu` flag reaches `TPUClusterResolver`, and a missing TPU is a clear error;
- `train.steps_per_execution=4` ends with the same losses, weights and checkpoints as 1 (slow),
  so checkpoints, schedules and the callbacks see the same steps. (On several CPU or GPU
  replicas Keras 3.15 cannot run more than one step per execution; the main job refuses it there
  with a message. TPUStrategy runs its own loop, which only a TPU can check.)
- validation refuses a `steps_per_execution` that does not divide the epoch.
"""

from __future__ import annotations

import pytest
import tensorflow as tf
from run_helpers import STEPS, losses, max_relative_diff, run_one_process, weights

from keras_eqssl import distribute
from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError


def test_tpu_flag_reaches_the_resolver(monkeypatch):
    seen = []

    class Resolver:
        def __init__(self, tpu=None):
            seen.append(tpu)
            raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    with pytest.raises(RuntimeError, match=r"no TPU found \(tpu='my-tpu'\)"):
        distribute.strategy_from_name("tpu", tpu="my-tpu")
    with pytest.raises(RuntimeError, match="tpu='local' on a TPU VM"):
        distribute.strategy_from_name("tpu")
    assert seen == ["my-tpu", None]


def test_steps_per_execution_must_divide_the_epoch():
    config = get_config()
    config.train.steps, config.train.checkpoint_every, config.train.steps_per_execution = 100, 10, 4
    with pytest.raises(ConfigError, match="steps_per_execution=4 must divide"):
        validate(config)
    config.train.steps_per_execution = 5
    validate(config)


@pytest.mark.slow
def test_steps_per_execution_changes_nothing_but_speed(tmp_path):
    run_one_process(tmp_path / "spe1", STEPS)
    out = run_one_process(tmp_path / "spe4", STEPS, "--config.train.steps_per_execution=4")
    assert f"trained steps 0..{STEPS}" in out
    loss_diff = max_relative_diff(losses(tmp_path / "spe4"), losses(tmp_path / "spe1"))
    weight_diff = max_relative_diff(weights(tmp_path / "spe4"), weights(tmp_path / "spe1"))
    print(f"steps_per_execution 4 vs 1: losses {loss_diff:.2e}, weights {weight_diff:.2e}")
    assert loss_diff <= 1e-5 and weight_diff <= 1e-5
    steps = sorted(p.name for p in (tmp_path / "spe4" / "checkpoints").glob("ckpt-*.keras"))
    assert steps and steps == sorted(p.name for p in (tmp_path / "spe1" / "checkpoints").glob("ckpt-*.keras"))


def test_steps_per_execution_is_refused_with_mirrored_replicas(tmp_path):
    """Keras 3.15 fails inside its multi-step loop under MirroredStrategy (a plain Keras model too:
    "You must feed a value for placeholder tensor"), so the main job says so before building."""
    from keras_eqssl.cli.train import _check_replica_batch

    config = get_config()
    config.train.steps_per_execution = 2
    with pytest.raises(ConfigError, match="steps_per_execution=2 with 2 replicas"):
        _check_replica_batch(config, 2, "mirrored")
    _check_replica_batch(config, 1, "default")
