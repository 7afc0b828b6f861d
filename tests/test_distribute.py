"""`strategy_from_name` and `configure_logical_cpus` (keras_eqssl.distribute).

The mirrored strategy over two logical CPU devices needs them configured before TensorFlow
initialises its devices; when an earlier test module already initialised TensorFlow, that check
runs in a fresh interpreter (`python tests/test_distribute.py` prints its figures as JSON), as
tests/test_losses_distributed.py does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from run_helpers import free_ports  # noqa: E402

from keras_eqssl.distribute import (  # noqa: E402
    STRATEGIES,
    ClusterNotUpError,
    configure_logical_cpus,
    strategy_from_name,
    wait_for_cluster,
)
from keras_eqssl.errors import InputError  # noqa: E402


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
    with pytest.raises(InputError, match="TF_CONFIG.*not set") as err:
        strategy_from_name("multiworker")
    assert '"cluster": {"worker": [' in str(err.value) and '"task": {"type": "worker", "index": 0}' in str(err.value)


@pytest.mark.parametrize(
    "value, match",
    [
        ("{not json", "TF_CONFIG.*not valid JSON"),
        ('{"cluster": {}}', 'TF_CONFIG.*"task"'),
        ("[1, 2]", "TF_CONFIG"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "TF_CONFIG: task index 2"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', 'TF_CONFIG: the task type "chief"'),
    ],
)
def test_multiworker_malformed_tf_config(monkeypatch, value, match):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(InputError, match=match):  # one line from the CLI, exit 2
        strategy_from_name("multiworker")


def resolver(ports: list[int], index: int) -> SimpleNamespace:
    """What `wait_for_cluster` reads of a cluster resolver: workers on 127.0.0.1 `ports`, this one `index`."""
    spec = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return SimpleNamespace(cluster_spec=lambda: tf.train.ClusterSpec(spec), task_type="worker", task_id=index)


def test_wait_for_cluster_names_the_missing_worker():
    ports = free_ports(3)
    start = time.monotonic()
    with pytest.raises(ClusterNotUpError) as err:
        wait_for_cluster(resolver(ports, 0), 0.5, "test")
    assert time.monotonic() - start < 5
    said = str(err.value)
    assert "never came up within 0.5 s" in said and "task:0" not in said  # not itself
    for index in (1, 2):
        assert f"/job:worker/replica:0/task:{index} at 127.0.0.1:{ports[index]}" in said


def test_a_taken_port_is_named():
    ports = free_ports(2)
    with socket.socket() as other:
        other.bind(("127.0.0.1", ports[0]))
        other.listen()
        with pytest.raises(ClusterNotUpError, match=f"task:0\\) cannot listen on 127.0.0.1:{ports[0]}"):
            wait_for_cluster(resolver(ports, 0), 5.0, "test")


def test_waiting_workers_see_each_other():
    """Each worker answers on its port while it waits; once it saw the others it closes the port
    and starts its server there (here: a plain listener), which the others then see."""
    ports, raised, servers, done = free_ports(2), [], [], threading.Event()

    def worker(index):
        try:
            wait_for_cluster(resolver(ports, index), 10.0, "test")
        except ClusterNotUpError as err:
            raised.append(err)
            return
        server = socket.socket()
        server.bind(("127.0.0.1", ports[index]))  # fails if the wait left its port open
        server.listen()
        servers.append(server)
        done.wait(20)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
        time.sleep(0.5)  # worker 1 starts while worker 0 already waits
    try:
        deadline = time.monotonic() + 15
        while len(servers) + len(raised) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not raised and len(servers) == 2
    finally:
        done.set()
        for w in workers:
            w.join()
        for server in servers:
            server.close()


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--strategy=mirrored", "--cpu_replicas=-1"], "--cpu_replicas=-1: -1 is not a non-negative integer"),
        (["--strategy=default", "--cpu_replicas=2"], "add --strategy=mirrored"),
        (["--strategy=multiworker", "--cluster_wait=-5"], "--cluster_wait=-5"),
    ],
)
def test_the_main_job_refuses_strategy_flags_that_do_not_fit(argv, said):
    """Refused while parsing the command line: one line and exit 2 (`parse_flags`, tests/test_cli.py)."""
    import copy

    from absl import flags

    import keras_eqssl.cli.train  # noqa: F401  (defines the flags)

    with pytest.raises(flags.IllegalFlagValueError, match=said):
        copy.deepcopy(flags.FLAGS)(["keras-eqssl-train", *argv])
    copy.deepcopy(flags.FLAGS)(["keras-eqssl-train", "--strategy=mirrored", "--cpu_replicas=2"])  # fits


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_the_main_job_says_a_bad_tf_config_in_one_line(tmp_path):
    from run_helpers import ROOT, env, train_args

    tf_config = '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}'
    proc = subprocess.run(
        train_args(tmp_path, 1, "--strategy=multiworker"),
        cwd=ROOT, env=env(TF_CONFIG=tf_config), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG: task index 1 is not one of")


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
