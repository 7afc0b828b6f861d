"""`strategy_from_name` and `configure_logical_cpus` (keras_eqssl.distribute).

The mirrored strategy over two logical CPU devices needs them configured before TensorFlow
initialises its devices; when an earlier test module already initialised TensorFlow, that check
runs in a fresh interpreter (`python tests/test_distribute.py` prints its figures as JSON), as
tests/test_losses_distributed.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_eqssl.distribute import STRATEGIES, configure_logical_cpus, strategy_from_name  # noqa: E402


def mirrored_figures() -> dict:
    """`strategy_from_name("mirrored", num_cpu_replicas=2)`: replicas, devices and one all-reduce."""
    # Own collective keys: another module's MirroredStrategy in this process would share them
    # (see tests/test_methods_distributed.py `fresh_collective_keys`).
    if hasattr(tf.distribute.MirroredStrategy, "_collective_key_base"):
        tf.distribute.MirroredStrategy._collective_key_base += 100000
    strategy = strategy_from_name("mirrored", num_cpu_replicas=2)
    again = strategy_from_name("mirrored")  # the logical CPUs are configured now: the same replicas

    @tf.function
    def replica_ids():
        ctx_sum = strategy.run(
            lambda: tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        )
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ctx_sum, axis=None)

    return {
        "replicas": strategy.num_replicas_in_sync,
        "replicas_again": again.num_replicas_in_sync,
        "devices": list(strategy.extended.worker_devices),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "replica_id_sum": float(replica_ids()),
    }


def _run_fresh() -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "-1",  # two CPU replicas, even on a GPU machine
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Runs first in this module: it needs TensorFlow's devices not yet initialised (else a subprocess).
def test_mirrored_over_two_logical_cpus():
    try:
        f = mirrored_figures()
    except RuntimeError:  # TensorFlow already initialised with another number of logical CPUs
        f = _run_fresh()
    expected = f["gpus"] or 2  # with GPUs, "mirrored" uses every GPU instead
    assert f["replicas"] == expected, f
    assert f["replicas_again"] == expected, f
    assert f["replica_id_sum"] == sum(range(expected)), f
    if not f["gpus"]:
        assert all("CPU" in d for d in f["devices"]), f


def test_default_strategy():
    strategy = strategy_from_name("default")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    with strategy.scope():
        v = tf.Variable(1.0)
    assert float(v) == 1.0


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown strategy") as err:
        strategy_from_name("horovod")
    for name in STRATEGIES:
        assert repr(name) in str(err.value)


def test_options_that_do_not_apply_raise():
    with pytest.raises(ValueError, match="num_cpu_replicas"):
        strategy_from_name("default", num_cpu_replicas=2)
    with pytest.raises(ValueError, match="tpu"):
        strategy_from_name("mirrored", tpu="local")


def test_multiworker_without_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy_from_name("multiworker")


@pytest.mark.parametrize(
    "value, match",
    [("{not json", "TF_CONFIG.*not valid JSON"), ('{"cluster": {}}', 'TF_CONFIG.*"task"'), ("[1, 2]", "TF_CONFIG")],
)
def test_multiworker_malformed_tf_config(monkeypatch, value, match):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=match):
        strategy_from_name("multiworker")


@pytest.mark.skipif(
    any(k in os.environ for k in ("TPU_NAME", "TPU_ACCELERATOR_TYPE")), reason="this machine may have a TPU"
)
def test_tpu_not_found():
    with pytest.raises(RuntimeError, match="no TPU found"):
        strategy_from_name("tpu")


def test_configure_logical_cpus_validates_n():
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            configure_logical_cpus(n)


def test_configure_logical_cpus_after_initialisation():
    tf.constant(1.0) + 1.0  # TensorFlow's devices are initialised from here on
    current = len(tf.config.list_logical_devices("CPU"))
    assert len(configure_logical_cpus(current)) == current  # the same count: a no-op
    with pytest.raises(RuntimeError, match="before the first TensorFlow op"):
        configure_logical_cpus(current + 1)


if __name__ == "__main__":
    print(json.dumps(mirrored_figures()))
