"""`tf.distribute` strategies by name, and logical CPU devices for multi-replica runs without GPUs.

`strategy_from_name(name)` builds one of

- `"default"`: `tf.distribute.get_strategy()`, the no-op strategy of one device (or the strategy
  of the enclosing `scope()`);
- `"mirrored"`: `MirroredStrategy` over all GPUs, or, without GPUs, over the logical CPU devices
  (`configure_logical_cpus(n)`, or `num_cpu_replicas=n`) when there are several, else one CPU;
- `"multiworker"`: `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment
  variable (JSON `{"cluster": {...}, "task": {...}}`) or, without it inside a SLURM job, by
  `SlurmClusterResolver`; create it at program start, before any other TensorFlow op. It waits
  at most `cluster_wait` seconds for every worker to come up (each worker answers on its own
  address while it waits, and probes the others'), else raises `ClusterNotUpError` naming the
  tasks that never answered; SIGTERM ends a waiting worker. Once running, a dead worker makes
  the others' collectives fail with `tf.errors.UnavailableError` (the main job reports it and
  exits 4) instead of waiting for it forever;
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

import contextlib
import faulthandler
import json
import os
import signal
import socket
import threading
import time

import tensorflow as tf

from keras_eqssl.errors import InputError

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
TF_CONFIG = "TF_CONFIG"
CLUSTER_WAIT_S = 600.0  # how long a multi-worker run waits for every worker at start
HEALTH_EVERY_S = 10.0  # how often it checks that every worker is still there
BUILD_GRACE_S = 60.0  # once every worker answered, building the strategy may take cluster_wait + this
PROBE_EVERY_S = 0.2  # how often a waiting worker probes the workers it has not reached yet
COLLECTIVE_JOBS = ("chief", "worker")  # the jobs whose tasks run the collectives
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


class TFConfigError(InputError, ValueError):
    """`TF_CONFIG` is unset, not JSON, or does not place this task in its cluster."""


class ClusterNotUpError(RuntimeError):
    """A task of a multi-worker cluster did not come up within the wait (`cluster_wait`)."""


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
    """`TF_CONFIG`, parsed and checked: a JSON object whose task is one of its cluster's tasks."""
    raw = os.environ.get(TF_CONFIG)
    if not raw:
        raise TFConfigError(
            f"strategy 'multiworker' reads the cluster from the {TF_CONFIG} environment variable, which is "
            f"not set. Set it on every worker, e.g. {TF_CONFIG}='{TF_CONFIG_EXAMPLE}' (each worker its own index)."
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise TFConfigError(
            f"strategy 'multiworker': the {TF_CONFIG} environment variable is not valid JSON ({err}): {raw!r}. "
            f"Expected e.g. {TF_CONFIG_EXAMPLE}"
        ) from err
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("cluster"), dict)
        or not isinstance(config.get("task"), dict)
    ):
        raise TFConfigError(
            f"strategy 'multiworker': the {TF_CONFIG} environment variable must be a JSON object with "
            f'"cluster" and "task" objects; received {raw!r}. Expected e.g. {TF_CONFIG_EXAMPLE}'
        )
    _check_task(config["cluster"], config["task"])
    return config


def _check_task(cluster: dict, task: dict) -> None:
    """Raises `TFConfigError` unless `task` (type, index) names one of `cluster`'s tasks."""
    kind, index = task.get("type", "worker"), task.get("index", 0)
    addresses = cluster.get(kind)
    if isinstance(addresses, dict):  # a sparse job: {"index": "host:port"}
        indices = sorted(int(i) for i in addresses if str(i).isdigit())
    else:
        indices = list(range(len(addresses))) if isinstance(addresses, list) else []
    if not indices:
        raise TFConfigError(
            f'{TF_CONFIG}: the task type "{kind}" has no addresses in the cluster ({json.dumps(cluster)}); '
            f"use one of its jobs {sorted(cluster)} as task.type."
        )
    if not isinstance(index, int) or isinstance(index, bool) or index not in indices:
        raise TFConfigError(
            f'{TF_CONFIG}: task index {index!r} is not one of the cluster\'s {len(indices)} "{kind}" task(s) '
            f"(indices {indices[0]}..{indices[-1]}); give each {kind} its own index among them."
        )


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


def _task_addresses(resolver) -> dict[str, str]:
    """Every task that runs the collectives, `"/job:worker/replica:0/task:1"` -> `"host:port"`."""
    spec = resolver.cluster_spec().as_dict()
    tasks = {}
    for job in COLLECTIVE_JOBS:
        addresses = spec.get(job, [])
        for index, address in addresses.items() if isinstance(addresses, dict) else enumerate(addresses):
            tasks[f"/job:{job}/replica:0/task:{index}"] = address
    return tasks


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _answers(address: str) -> bool:
    """Whether something listens at `address` (`host:port`): a waiting worker or a worker's server."""
    try:
        with socket.create_connection(_host_port(address), timeout=1.0):
            return True
    except OSError:
        return False


def _listen(task: str, address: str) -> socket.socket:
    """Listens on this task's port, so that its peers see it up while it waits for them."""
    listener = socket.socket(socket.AF_INET6 if ":" in _host_port(address)[0] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", _host_port(address)[1]))
    except OSError as err:
        listener.close()
        raise ClusterNotUpError(
            f"strategy 'multiworker': this worker ({task}) cannot listen on {address}: {err}. Another process "
            "holds that port (an earlier run of this worker?): end it, or give this task a free port."
        ) from err
    listener.listen()
    listener.setblocking(False)
    return listener


def _drain(listener: socket.socket) -> None:
    """Accepts and closes the peers' probes waiting on `listener`, so its queue never fills."""
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.close()


def wait_for_cluster(resolver, cluster_wait: float, where: str) -> None:
    """Waits until every other task of `resolver`'s cluster answers on its address, answering on
    this task's own address meanwhile; raises `ClusterNotUpError` naming the tasks still silent
    after `cluster_wait` seconds.

    TensorFlow waits for the cluster inside C++ holding the GIL, where neither a timeout nor a
    signal handler runs: this wait, in Python, comes first, so a missing worker is reported and
    SIGTERM ends the wait.
    """
    tasks = _task_addresses(resolver)
    own = f"/job:{resolver.task_type}/replica:0/task:{resolver.task_id}"
    listener = _listen(own, tasks.pop(own)) if own in tasks else None
    deadline = time.monotonic() + cluster_wait
    try:
        while True:
            tasks = {task: address for task, address in tasks.items() if not _answers(address)}
            if not tasks:
                return
            if time.monotonic() >= deadline:
                missing = ", ".join(f"{task} at {address}" for task, address in tasks.items())
                raise ClusterNotUpError(
                    f"strategy 'multiworker': {missing} never came up within {cluster_wait:g} s ({where}). Start "
                    "the same command on every worker (each with its own task index), or raise --cluster_wait."
                )
            if listener is not None:
                _drain(listener)
            time.sleep(PROBE_EVERY_S)
    finally:
        if listener is not None:
            listener.close()


@contextlib.contextmanager
def _hard_deadline(seconds: float):
    """Ends the process (status 1, printing every thread's stack) if the block outlasts `seconds`:
    faulthandler's watchdog is a C thread, so it fires even while TensorFlow holds the GIL."""
    try:
        faulthandler.dump_traceback_later(seconds, exit=True)
    except (OSError, ValueError, RuntimeError, AttributeError):  # a stderr without a file descriptor
        yield
        return
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@contextlib.contextmanager
def _keep_sigterm():
    """Puts back the SIGTERM handler of before the block: TensorFlow's coordination service
    installs one of its own (a preemption notice) that keeps the process running on SIGTERM."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _multiworker(cluster_wait: float, health_every: float) -> tf.distribute.Strategy:
    from tensorflow.python.distribute import collective_all_reduce_strategy as car  # private: the health check

    if _slurm_job():
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        where = f"SLURM job {os.environ['SLURM_JOB_ID']}"
    else:
        where = f"{TF_CONFIG}={json.dumps(_tf_config()['cluster'])}"
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # The class attributes TensorFlow reads when the strategy starts its health-check thread (TF
    # 2.4-2.21, without the coordination service): wait this long for the cluster, then check each
    # peer this often. Without them a missing or dead worker leaves the others waiting forever.
    extended = getattr(car, "CollectiveAllReduceExtended", None)
    if extended is not None and hasattr(extended, "_check_health_initial_timeout"):
        extended._check_health_initial_timeout = int(cluster_wait)
        extended._check_health_interval = float(health_every)
        extended._enable_check_health = True
    wait_for_cluster(resolver, cluster_wait, where)
    try:
        with _hard_deadline(cluster_wait + BUILD_GRACE_S), _keep_sigterm():
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except RuntimeError as err:
        if "Timeout waiting for the cluster" not in str(err):
            raise
        raise ClusterNotUpError(
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
        cluster_wait: for `"multiworker"`: seconds to wait for every worker to come up (then
            `ClusterNotUpError`); building the strategy after that gets as long again plus
            `BUILD_GRACE_S` before the process ends (status 1).
        health_every: for `"multiworker"`: seconds between checks that every worker is alive; a
            dead one makes the collectives of the others fail (`tf.errors.UnavailableError`).

    Returns:
        The strategy; build and compile the model inside `strategy.scope()`.

    Raises:
        ValueError: unknown name, or options that do not apply to `name`.
        TFConfigError: (a `ValueError`) `TF_CONFIG` unset, not JSON, or not placing this task in
            its cluster, for `"multiworker"`.
        ClusterNotUpError: (a `RuntimeError`) a task of the multi-worker cluster did not answer
            within `cluster_wait`, or this task's port is taken.
        RuntimeError: no TPU for `"tpu"`; logical CPUs requested after TensorFlow initialised.

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
