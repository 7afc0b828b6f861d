"""`tf.distribute` strategies by name, and logical CPU devices for multi-replica runs without GPUs.

`strategy_from_name(name)` builds one of

- `"default"`: `tf.distribute.get_strategy()`, the no-op strategy of one device (or the strategy
  of the enclosing `scope()`);
- `"mirrored"`: `MirroredStrategy` over all GPUs, or, without GPUs, over the logical CPU devices
  (`configure_logical_cpus(n)`, or `num_cpu_replicas=n`) when there are several, else one CPU;
- `"multiworker"`: `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment
  variable (JSON `{"cluster": {...}, "task": {...}}`) or, without it inside a SLURM job, by
  `SlurmClusterResolver`; create it at program start, before any other TensorFlow op. It waits
  at most `cluster_wait` seconds for every worker to come up, then checks every
  `health_every` seconds that each is still there: when one dies, the others' collectives fail
  with `tf.errors.UnavailableError` (the main job reports it and exits 4) instead of waiting for
  it forever;
- `"tpu"`: `TPUStrategy` on the TPU `tpu` (a name or grpc address; `"local"` on a TPU VM; `""`
  lets the resolver find it from the environment).

`is_chief_task(name)` tells, from the environment alone (before TensorFlow starts), whether this
process is the one that writes checkpoints, summaries and exports.

Build and compile the model inside the strategy's scope; `fit` then splits every global batch
over the replicas, and the losses of `keras_eqssl.losses` make the gradients equal to the
single-device ones on the same global batch (`keras_eqssl.losses.distributed`):

```python
import keras
from keras_eqssl.distribute import strategy_from_name
from keras_eqssl.methods import PairModel, VICReg
from keras_eqssl.nn import backbone_from_name

strategy = strategy_from_name("mirrored")  # or "default", "multiworker", "tpu"
with strategy.scope():
    model = PairModel(
        backbone_from_name("resnet18", stem="cifar", width=0.125, synchronized=True),
        invariance=VICReg(projector_units=[64, 64], synchronized=True),
        image_size=32,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(dataset, epochs=10)  # dataset yields global batches {"views": {"v1": ..., "v2": ...}}
```

Several replicas on one CPU (tests, CPU demos): call `configure_logical_cpus(2)` at program start,
before TensorFlow initialises its devices (before the first tensor), or pass
`strategy_from_name("mirrored", num_cpu_replicas=2)` just as early.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
TF_CONFIG = "TF_CONFIG"
CLUSTER_WAIT_S = 600.0  # how long a multi-worker run waits for every worker at start
HEALTH_EVERY_S = 10.0  # how often it checks that every worker is still there


def configure_logical_cpus(n: int) -> list[tf.config.LogicalDevice]:
    """Splits the (first) physical CPU into `n` logical devices and returns the logical CPUs.

    Must run before TensorFlow initialises its devices, i.e. before the first op or tensor of the
    process. Calling it again with the same `n`, or when the CPU already has `n` logical devices,
    is a no-op.

    Args:
        n: int >= 1, the number of logical CPU devices (e.g. one per replica).

    Returns:
        The logical CPU devices, `tf.config.list_logical_devices("CPU")`.

    Raises:
        ValueError: `n < 1`.
        RuntimeError: TensorFlow has already initialised its devices with another number of
            logical CPUs.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"configure_logical_cpus: n must be an int >= 1; received n={n!r}")
    cpus = tf.config.list_physical_devices("CPU")
    if not cpus:
        raise RuntimeError("configure_logical_cpus: TensorFlow sees no physical CPU device.")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as err:  # "Virtual devices cannot be modified after being initialized"
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) == n:
            return logical
        raise RuntimeError(
            f"configure_logical_cpus({n}): TensorFlow has already initialised its devices with "
            f"{len(logical)} logical CPU device(s). Call it at program start, before the first "
            "TensorFlow op or tensor (or run the multi-replica part in a fresh process)."
        ) from err
    return tf.config.list_logical_devices("CPU")


def _mirrored(num_cpu_replicas: int | None) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()  # every visible GPU
    if num_cpu_replicas is not None:
        cpus = configure_logical_cpus(num_cpu_replicas)[:num_cpu_replicas]
    else:
        cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def _tf_config() -> dict:
    raw = os.environ.get(TF_CONFIG)
    if not raw:
        raise ValueError(
            f"strategy 'multiworker' reads the cluster from the {TF_CONFIG} environment variable, which is "
            'not set. Set it on every worker, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"strategy 'multiworker': the {TF_CONFIG} environment variable is not valid JSON ({err}): {raw!r}"
        ) from err
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("cluster"), dict)
        or not isinstance(config.get("task"), dict)
    ):
        raise ValueError(
            f"strategy 'multiworker': the {TF_CONFIG} environment variable must be a JSON object with "
            f'"cluster" and "task" objects; received {raw!r}'
        )
    return config


def _slurm_job() -> bool:
    return TF_CONFIG not in os.environ and "SLURM_JOB_ID" in os.environ and "SLURM_PROCID" in os.environ


def is_chief_task(name: str) -> bool:
    """Whether this process writes the run's files (checkpoints, TensorBoard, model, export).

    Read from the environment only, so it can be asked before TensorFlow starts: for
    `"multiworker"`, the task of type `"chief"`, or worker 0 when the cluster has no chief
    (`TF_CONFIG`), or SLURM process 0; every other strategy runs in one process, which is the chief.

    Example:

    >>> is_chief_task("default")
    True
    """
    if name != "multiworker":
        return True
    if _slurm_job():
        return os.environ["SLURM_PROCID"] == "0"
    config = _tf_config()
    task, cluster = config["task"], config["cluster"]
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


def _multiworker(cluster_wait: float, health_every: float) -> tf.distribute.Strategy:
    from tensorflow.python.distribute import collective_all_reduce_strategy as car  # private: the health check

    resolver = None
    if _slurm_job():
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        where = f"SLURM job {os.environ['SLURM_JOB_ID']}"
    else:
        where = f"{TF_CONFIG}={json.dumps(_tf_config()['cluster'])}"
    # The class attributes TensorFlow reads when the strategy starts its health-check thread (TF
    # 2.4-2.21): wait this long for the cluster, then check each peer this often. Without them a
    # missing or dead worker leaves the others waiting in a collective forever.
    extended = getattr(car, "CollectiveAllReduceExtended", None)
    if extended is not None and hasattr(extended, "_check_health_initial_timeout"):
        extended._check_health_initial_timeout = int(cluster_wait)
        extended._check_health_interval = float(health_every)
        extended._enable_check_health = True
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except RuntimeError as err:
        if "Timeout waiting for the cluster" not in str(err):
            raise
        raise RuntimeError(
            f"strategy 'multiworker': not every worker of {where} came up within {cluster_wait:.0f} s. Start the "
            "same command on every worker (each with its own task index), or raise --cluster_wait."
        ) from err


def _tpu(tpu: str) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as err:
        raise RuntimeError(
            f"strategy 'tpu': no TPU found (tpu={tpu!r}): {type(err).__name__}: {err}. Pass the TPU's name or "
            "grpc:// address as tpu=, or tpu='local' on a TPU VM."
        ) from err
    return tf.distribute.TPUStrategy(resolver)


def strategy_from_name(
    name: str,
    *,
    tpu: str = "",
    num_cpu_replicas: int | None = None,
    cluster_wait: float = CLUSTER_WAIT_S,
    health_every: float = HEALTH_EVERY_S,
) -> tf.distribute.Strategy:
    """Builds a `tf.distribute.Strategy` by name.

    Args:
        name: one of `STRATEGIES`: `"default"`, `"mirrored"`, `"multiworker"`, `"tpu"` (see the
            module docstring).
        tpu: for `"tpu"`: the TPU's name or grpc address, `"local"` on a TPU VM, `""` to find it
            from the environment.
        num_cpu_replicas: for `"mirrored"` on a machine without GPUs: split the CPU into this
            many logical devices (`configure_logical_cpus`, so call this at program start) and
            mirror over them. None mirrors over the logical CPUs already configured.
        cluster_wait: for `"multiworker"`: seconds to wait for every worker to come up.
        health_every: for `"multiworker"`: seconds between checks that every worker is alive; a
            dead one makes the collectives of the others fail (`tf.errors.UnavailableError`).

    Returns:
        The strategy; build and compile the model inside `strategy.scope()`.

    Raises:
        ValueError: unknown name, options that do not apply to `name`, or a missing or malformed
            `TF_CONFIG` for `"multiworker"`.
        RuntimeError: no TPU for `"tpu"`; logical CPUs requested after TensorFlow initialised; a
            multi-worker cluster that did not come up within `cluster_wait`.

    Example:

    ```python
    strategy = strategy_from_name("mirrored")
    with strategy.scope():
        model = build_model()
        model.compile(optimizer="adam")
    ```
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy. Expected one of {list(STRATEGIES)}. Received: name={name!r}")
    if num_cpu_replicas is not None and name != "mirrored":
        raise ValueError(
            f"strategy_from_name: num_cpu_replicas applies to 'mirrored' only; received name={name!r}, "
            f"num_cpu_replicas={num_cpu_replicas}"
        )
    if tpu and name != "tpu":
        raise ValueError(f"strategy_from_name: tpu= applies to 'tpu' only; received name={name!r}, tpu={tpu!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored(num_cpu_replicas)
    if name == "multiworker":
        return _multiworker(cluster_wait, health_every)
    return _tpu(tpu)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and summaries under `strategy` (`should_checkpoint`)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def describe(strategy: tf.distribute.Strategy) -> str:
    """A short text for the banner, e.g. `"2 replica(s)"` or `"2 replica(s) on 2 workers; this is worker 1"`."""
    text = f"{strategy.num_replicas_in_sync} replica(s)"
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        spec = resolver.cluster_spec().as_dict()
        workers = sum(len(v) for v in spec.values())
        text += f" on {workers} workers; this is {resolver.task_type} {resolver.task_id}"
        text += " (chief: writes the files)" if is_chief(strategy) else " (writes nothing)"
    return text


def agree_across_workers(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
    """Raises when the workers of a multi-worker `strategy` hold different `value`s (e.g. the step
    each resumes from: a workdir that is not on a filesystem every worker reads)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    local = tf.constant([float(value), float(value) ** 2])
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: local), axis=None).numpy()
    n = strategy.num_replicas_in_sync
    mean, spread = total[0] / n, total[1] / n - (total[0] / n) ** 2
    if spread > 1e-6 * max(1.0, mean**2):  # the same on every worker: they all raise
        raise RuntimeError(
            f"the workers disagree on {what}: this worker has {value}, the mean over all is {mean:g}. "
            "Every worker must read the same workdir (a filesystem they share)."
        )
