"""The main job: pretrain a model (`PairModel`, `TeacherStudentModel`) from a config, with checkpoints, resume and TensorBoard.

    keras-eqssl-train                                              # embedded default (VICReg + recon, mini-3DIEBench)
    keras-eqssl-train --config=configs/simclr_recon.py --config.data.source=skimage_photos
    keras-eqssl-train --config=configs/byol.py --strategy=mirrored --config.workdir=runs/byol

What it does:
1. checks the config (exit status 2 naming the bad field), creates the workdir and locks it
   (a second run there exits 2);
2. on `data.source=threedie` with no root, renders a mini-3DIEBench into the cache once;
3. builds the model (`model_from_config`) inside the `--strategy`'s scope and, when
   `workdir/checkpoints` holds a checkpoint and `train.resume`, compares the config with the one
   recorded beside it (`keras_eqssl.resume`: a changed architecture or data stream is
   refused, a changed schedule, step count or loss weight applied and printed), loads its weights
   and optimizer state and continues from its step with the same batches and augmentation
   parameters an uninterrupted run would draw;
4. trains `train.steps` steps with Keras `fit`: a progress bar with every loss term, TensorBoard
   scalars in `workdir/tb` (and reconstruction images every `train.image_every` steps), a
   checkpoint (with the config beside it) every `train.checkpoint_every` steps; a NaN/Inf loss
   term stops the run with its name and step, leaving the last good checkpoint as it was;
5. saves `workdir/model.keras` and `workdir/train_metrics.json`;
6. exports the encoder as a SavedModel (`workdir/export`, docs/serving.md; the untrained network
   at step 0 goes to `workdir/export_init`) and, with `eval.enabled`, runs the probes the data allows on both and
   writes `workdir/report/report.md`, `metrics.json` and plots.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from absl import app, flags, logging

from keras_eqssl.cli import _config
from keras_eqssl.cli._config import checked, define_config_flag, input_errors_exit, parse_flags
from keras_eqssl.cli._quiet import start_tensorflow
from keras_eqssl.errors import ConfigError
from keras_eqssl.onednn import choose_onednn, needs_restart_for, restart_with_onednn_off

choose_onednn(deterministic=_config.deterministic_on_command_line(sys.argv))  # before TensorFlow reads it
start_tensorflow()  # before anything imports it: no CUDA probe lines on a machine without a GPU

_CONFIG = define_config_flag()
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multiworker", "tpu"], "tf.distribute strategy to train with."
)
_TPU = flags.DEFINE_string(
    "tpu", "", "TPU name or grpc:// address for --strategy=tpu; 'local' on a TPU VM; '' = from TPU_NAME."
)
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas",
    0,
    "--strategy=mirrored without GPUs: split the CPU into this many replicas (0: one per device).",
    lower_bound=0,
)
_CLUSTER_WAIT = flags.DEFINE_float(
    "cluster_wait", 600.0, "--strategy=multiworker: seconds to wait for every worker to come up.", lower_bound=0.0
)
_HEALTH_EVERY = flags.DEFINE_float(
    "health_every", 10.0, "--strategy=multiworker: seconds between checks that every worker is alive."
)
flags.register_multi_flags_validator(
    ["cpu_replicas", "strategy"],
    lambda values: not values["cpu_replicas"] or values["strategy"] == "mirrored",
    message="--cpu_replicas splits the CPU into replicas for --strategy=mirrored only; add --strategy=mirrored "
    "(or drop --cpu_replicas)",
)


def _setup(config):
    """Seeds, determinism and precision: before any model is built. Returns the precision line."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
        from keras_eqssl.machine import onednn_enabled

        if onednn_enabled():
            logging.warning(
                "train.deterministic: oneDNN is on (TF_ENABLE_ONEDNN_OPTS=%s, set outside keras_eqssl), so a "
                "resumed or multi-worker run can differ from an uninterrupted one-process run by more than "
                "rounding (measured: 1e-3 in the weights after 12 Adam steps of a tiny model). For bit-exact "
                "resume unset it or set TF_ENABLE_ONEDNN_OPTS=0 (docs/performance.md).",
                os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(TensorFlow's default on this CPU)"),
            )
    from keras_eqssl.precision import resolve_precision

    policy, why = resolve_precision(config.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    return f"precision {policy} ({why})"


def _build_or_resume(config, strategy, param_specs, checkpoint):
    """The model of `config`, compiled; with `checkpoint`, its weights and optimizer state loaded in
    (so the loss weights and the learning-rate schedule are the config's, from the checkpoint's step on)."""
    from keras_eqssl.methods.factory import model_from_config, optimizer_from_config
    from keras_eqssl.resume import load_checkpoint_state

    with strategy.scope():
        model = model_from_config(config, param_specs, synchronized=strategy.num_replicas_in_sync > 1)
        model.compile(
            optimizer=optimizer_from_config(config),
            steps_per_execution=config.train.get("steps_per_execution", 1),
            accumulate_steps=config.train.get("accumulate_steps", 1),
        )
        if checkpoint is not None:
            load_checkpoint_state(model, checkpoint["path"], checkpoint["step"])
        model.jit_compile = config.train.jit_compile
    return model


def _resume_changes(config, checkpoint) -> str:
    """Checks the config against the one recorded with `checkpoint` (`ConfigError` for a change
    resume cannot honour) and says what changed and what resuming does about it."""
    from keras_eqssl.checkpoints import read_config
    from keras_eqssl.resume import check_resume

    if read_config(checkpoint["path"]) is None:
        return (
            f"note: {checkpoint['path']} has no recorded config (written by an older keras_eqssl), so what changed "
            "since cannot be checked; the model is built from this config and the checkpoint loaded into it."
        )
    changes = check_resume(checkpoint["path"], config)
    if not changes:
        return ""
    return (
        f"resume: changed since step {checkpoint['step']}: {', '.join(c.text() for c in changes)}. Applied from "
        f"step {checkpoint['step']} on: the learning-rate schedule (and BYOL's momentum schedule, GTSA's "
        "correspondence warm-up) are rebuilt "
        "from the new values; the weights and the optimizer's moments carry over."
    )


def _callbacks(config, model, sample_batch, resumed_from=None, chief=True):
    """The callbacks of the run; a multi-worker run's other workers (`chief=False`) only check
    the losses: the chief alone writes checkpoints and summaries."""
    import keras
    import tensorflow as tf

    from keras_eqssl.methods.callbacks import (
        Checkpointer,
        ReconstructionImages,
        StopOnNonFinite,
        StopOnSignal,
        Throughput,
    )

    ckpt_dir = os.path.join(config.workdir, "checkpoints")
    tb_dir = os.path.join(config.workdir, "tb")
    callbacks = [StopOnNonFinite(ckpt_dir)]  # first: a bad step never reaches the checkpoint
    if not chief:
        return callbacks
    if not isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        callbacks.append(StopOnSignal())  # before the Checkpointer: the epoch it cuts short is checkpointed
    callbacks.append(Checkpointer(ckpt_dir, config=config, resumed_from=resumed_from))
    # The collapse monitor goes before TensorBoard, which writes the numbers it adds to the logs.
    if config.train.get("collapse_monitor", False) and config.data.batch_size > 1:
        from keras_eqssl.methods.collapse import CollapseMonitor

        t = config.train
        images = next(iter(sample_batch["views"].values()))
        callbacks.append(CollapseMonitor(images, t.log_every, t.collapse_std_fraction, t.collapse_rank_fraction))
    callbacks.append(Throughput(config.data.batch_size, config.train.log_every))  # images/s, before TensorBoard
    callbacks.append(keras.callbacks.TensorBoard(tb_dir, update_freq=config.train.log_every))
    if config.train.image_every and model.reconstructions(sample_batch):
        callbacks.append(ReconstructionImages(tb_dir, sample_batch, every=config.train.image_every))
    return callbacks


def _clear_or_refuse(config, ckpt_dir: str) -> None:
    """With `train.resume=False`, a workdir's checkpoints are deleted only when the config says
    `train.overwrite=True`; otherwise a `ConfigError` says what is there and what to do."""
    from keras_eqssl.checkpoints import checkpoint_files, delete_checkpoints

    files = checkpoint_files(ckpt_dir)
    if config.train.resume or not files:
        return
    if not config.train.overwrite:
        raise ConfigError(
            f"config.train.resume=False, but {ckpt_dir} holds {len(files)} checkpoint(s), the newest at step "
            f"{files[-1][0]}: resume them (drop train.resume=False), use another workdir, or delete them with "
            "--config.train.overwrite=True."
        )
    deleted = delete_checkpoints(ckpt_dir)
    print(f"keras-eqssl-train: train.overwrite=True: deleted {deleted} checkpoint(s) in {ckpt_dir}")


def _lock_workdir(workdir: str) -> contextlib.ExitStack:
    """Creates `workdir` and takes its lock (`workdir/.lock`, `keras_eqssl.checkpoints.file_lock`),
    held until the returned stack is closed: a second run in the same workdir, from another process
    or thread, is refused (`ConfigError`) instead of colliding on its files. Also the early check
    that the workdir can be written at all."""
    from keras_eqssl.checkpoints import file_lock

    held = contextlib.ExitStack()
    try:
        os.makedirs(workdir, exist_ok=True)
        held.enter_context(
            file_lock(
                os.path.join(workdir, ".lock"),
                busy=f"another keras-eqssl-train is running in {workdir}",
                advice="wait for it to end, or use another --config.workdir",
                error=ConfigError,
            )
        )
    except OSError as err:
        raise ConfigError(f"config.workdir={workdir!r} cannot be written ({err.strerror}); choose another") from err
    return held


def _remove_temporaries(workdir: str) -> None:
    """Deletes what a process killed while writing left (`keras_eqssl.checkpoints.remove_temporaries`:
    never a checkpoint); safe because the workdir is locked."""
    from keras_eqssl.checkpoints import remove_temporaries

    stale = remove_temporaries(workdir)
    if stale:
        print(f"keras-eqssl-train: removed {len(stale)} unfinished file(s) a killed run left in {workdir}")


def train(config, strategy_name: str = "default", tpu: str = "", **strategy_options) -> dict:
    """Runs the training of `config` (see the module doc) and returns the final metrics.

    `strategy_options` go to `keras_eqssl.distribute.strategy_from_name` (`num_cpu_replicas`,
    `cluster_wait`, `health_every`). In a multi-worker run every worker runs this with the same
    config; the chief alone locks and writes the workdir, the others train and write nothing."""
    from keras_eqssl.distribute import is_chief_task

    lock = _lock_workdir(config.workdir) if is_chief_task(strategy_name) else None
    try:
        return _train(config, strategy_name, tpu, strategy_options)
    finally:
        if lock is not None:
            lock.close()


def fit_segments(first_step: int, steps: int, per_epoch: int) -> list[tuple[int, int, int, int]]:
    """The `fit` calls that train steps `first_step..steps` in epochs of `per_epoch` steps (a
    checkpoint at the end of each): `(start step, epochs, steps_per_epoch, initial_epoch)` each.

    A run that starts on an epoch boundary is one call. A run resumed from a checkpoint written
    mid-epoch (on Ctrl-C or SIGTERM) first finishes that epoch in a call of its own, so every later
    checkpoint falls on the same steps as in an uninterrupted run.

    >>> fit_segments(0, 12, 4)
    [(0, 3, 4, 0)]
    >>> fit_segments(5, 12, 4)
    [(5, 1, 3, 0), (8, 3, 4, 2)]
    """
    segments = []
    if first_step % per_epoch and first_step < steps:
        boundary = min(steps, (first_step // per_epoch + 1) * per_epoch)
        segments.append((first_step, 1, boundary - first_step, 0))
        first_step = boundary
    if first_step < steps:
        segments.append((first_step, steps // per_epoch, per_epoch, first_step // per_epoch))
    return segments


def _batches(config, first_step: int, strategy, progress: bool):
    """`train_batches` from `first_step`, split over a multi-worker cluster's workers: a file-based
    source by files (each worker reads its shard), any other by rows (`keras_eqssl.data.sharding`)."""
    from keras_eqssl.data.sharding import worker_input_context
    from keras_eqssl.data.train_batches import train_batches

    return train_batches(config, first_step=first_step, progress=progress, workers=worker_input_context(strategy))


def _signals_held(callbacks):
    """`StopOnSignal.held()` of the run's stopper (a no-op context where it has none)."""
    import contextlib

    from keras_eqssl.methods.callbacks import StopOnSignal

    stopper = next((c for c in callbacks if isinstance(c, StopOnSignal)), None)
    return stopper.held() if stopper is not None else contextlib.nullcontext()


def _raise_if_interrupted(callbacks, model, ckpt_dir: str) -> None:
    """`TrainingInterrupted` naming the checkpoint of the step `fit` stopped at, when a signal stopped it."""
    from keras_eqssl.checkpoints import latest_checkpoint
    from keras_eqssl.methods.callbacks import StopOnSignal, TrainingInterrupted

    stopper = next((c for c in callbacks if isinstance(c, StopOnSignal)), None)
    if stopper is None or stopper.interrupted is None:
        return
    step = int(model.optimizer.iterations.numpy())
    newest = latest_checkpoint(ckpt_dir)
    written = newest["path"] if newest and newest["step"] == step else None
    raise TrainingInterrupted(stopper.interrupted, step, written)


def _save_model(model, path: str) -> None:
    """Saves `model` to `path` through a temporary file and an atomic rename; a failed write
    (disk full, permissions) leaves no temporary and raises `ModelWriteError` naming the file."""
    from keras_eqssl.checkpoints import save_atomically
    from keras_eqssl.methods.callbacks import ModelWriteError

    try:
        save_atomically(model, path)  # a kill never leaves half a model.keras
    except OSError as err:
        ckpt = os.path.join(os.path.dirname(path), "checkpoints")
        raise ModelWriteError(
            f"could not write the trained model {path}: {err.strerror or err}. The training itself is saved in "
            f"the checkpoints in {ckpt}: free space in (or fix) {os.path.dirname(path) or '.'}, then rerun the same "
            "command, which resumes at the last step and writes the model."
        ) from err


def _check_replica_batch(config, replicas: int, strategy_name: str = "default") -> None:
    """The global batch splits evenly over the replicas, into batches the model kind accepts
    (`batch_problems`); several steps per execution only where Keras can run them."""
    from keras_eqssl.config_validation import micro_batch_config, micro_batch_size
    from keras_eqssl.methods import MODEL_KINDS

    per_execution = config.train.get("steps_per_execution", 1)
    if per_execution > 1 and replicas > 1 and strategy_name != "tpu":
        raise ConfigError(
            f"config.train.steps_per_execution={per_execution} with {replicas} replicas under --strategy={strategy_name}: "
            "Keras 3.15 cannot run several steps per execution under MirroredStrategy or "
            "MultiWorkerMirroredStrategy (it fails inside its step loop, for any model). Use 1 there; it is for TPUs."
        )

    batch = config.data.batch_size
    if batch % replicas:
        raise ConfigError(
            f"config.data.batch_size={batch} does not split evenly over {replicas} replicas; use a multiple of {replicas}."
        )
    micro = micro_batch_size(config, replicas)  # a replica's batch, or its micro-batch with accumulate_steps > 1
    problems = MODEL_KINDS[config.model.method].batch_problems(micro_batch_config(config), micro)
    if problems:
        per = f" (micro-batches of {micro})" if micro != batch // replicas else ""
        raise ConfigError(f"config.data.batch_size={batch} over {replicas} replica(s){per} with " + "; ".join(problems))


def _train(config, strategy_name: str, tpu: str, strategy_options: dict) -> dict:
    from keras_eqssl.data.train_batches import threedie_root

    if config.data.source == "threedie":
        threedie_root(config, progress=config.train.progress)  # render (if needed) before TF is busy

    from keras_eqssl.distribute import agree_across_workers, describe, is_chief, strategy_from_name
    from keras_eqssl.machine import cores_line

    # First TensorFlow work of the process: MultiWorkerMirroredStrategy must configure the runtime.
    strategy = strategy_from_name(strategy_name, tpu=tpu, **strategy_options)
    chief = is_chief(strategy)
    precision = _setup(config)
    from keras_eqssl.checkpoints import latest_checkpoint
    from keras_eqssl.data.train_batches import first_batch

    ckpt_dir = os.path.join(config.workdir, "checkpoints")
    if chief:
        _remove_temporaries(config.workdir)
        _clear_or_refuse(config, ckpt_dir)
    _check_replica_batch(config, strategy.num_replicas_in_sync, strategy_name)
    checkpoint = latest_checkpoint(ckpt_dir) if config.train.resume else None
    first_step = checkpoint["step"] if checkpoint else 0
    agree_across_workers(strategy, first_step, "the step to start from")
    said = _resume_changes(config, checkpoint) if checkpoint else ""
    steps = config.train.steps
    per_epoch = min(config.train.checkpoint_every, steps)
    if first_step > steps:
        raise ConfigError(
            f"checkpoint {checkpoint['path']} is at step {first_step}, past train.steps={steps}: raise "
            f"--config.train.steps to at least {first_step} to go on from it, use another workdir, or start over with "
            "--config.train.resume=False --config.train.overwrite=True."
        )

    dataset, specs = _batches(config, first_step, strategy, progress=config.train.progress)
    sample = first_batch(dataset)
    model = _build_or_resume(config, strategy, specs, checkpoint)
    where = f"resuming from step {first_step} ({checkpoint['path']})" if checkpoint else "starting at step 0"
    if said:
        print(f"keras-eqssl-train: {said}")
    views = len(sample["views"])
    what = f"({config.model.backbone}) on {config.data.source}, {steps} steps x {config.data.batch_size} examples ({views} views each)"
    print(f"keras-eqssl-train: {model.name} {what}, {describe(strategy)}; {where}; workdir {config.workdir}")
    print(f"keras-eqssl-train: {cores_line()}; {precision}")
    init_export = os.path.join(config.workdir, "export_init")
    if chief and first_step == 0 and config.eval.random_init:
        from keras_eqssl.export import export_encoder

        export_encoder(model, init_export)  # the same network before training: the report's baseline
    start = time.perf_counter()
    callbacks = _callbacks(config, model, sample, checkpoint and checkpoint["path"], chief=chief)
    history = {}
    with _signals_held(callbacks):  # a signal between two fits is a clean stop too
        for segment_start, epochs, per_segment_epoch, initial_epoch in fit_segments(first_step, steps, per_epoch):
            _raise_if_interrupted(callbacks, model, ckpt_dir)
            if segment_start != first_step:  # a run resumed mid-epoch: a fresh stream from the epoch boundary
                dataset, _ = _batches(config, segment_start, strategy, progress=False)
            fit = model.fit(
                dataset,
                epochs=epochs,
                steps_per_epoch=per_segment_epoch,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                verbose=1 if config.train.progress else 2,
                shuffle=False,
            )
            for name, values in fit.history.items():
                history.setdefault(name, []).extend(values)
            _raise_if_interrupted(callbacks, model, ckpt_dir)
    seconds = time.perf_counter() - start
    final = os.path.join(config.workdir, "model.keras")
    metrics = {
        "steps": steps,
        "first_step": first_step,
        "seconds": seconds,
        "pairs_per_second": (steps - first_step) * config.data.batch_size / max(seconds, 1e-9),
        "history": {k: [float(x) for x in v] for k, v in history.items()},
        "model": final,
    }
    if not chief:
        print(f"keras-eqssl-train: trained steps {first_step}..{steps} in {seconds:.0f} s; the chief writes the files")
        return metrics
    _save_model(model, final)
    with open(os.path.join(config.workdir, "train_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    last = {k: v[-1] for k, v in metrics["history"].items()}
    print(
        f"trained steps {first_step}..{steps} in {seconds:.0f} s ({metrics['pairs_per_second']:.0f} pairs/s); "
        f"final {', '.join(f'{k} {v:.4g}' for k, v in last.items())}"
    )
    print(f"model: {final}; TensorBoard: tensorboard --logdir {os.path.join(config.workdir, 'tb')}")
    from keras_eqssl.export import export_encoder

    metrics["export"] = export_encoder(model, os.path.join(config.workdir, "export"))
    print(
        f"encoder SavedModel: {metrics['export']} (serving_default: float32 images in [0, 1], serving_uint8: uint8 images -> embedding, invariant, equivariant)"
    )
    if config.eval.enabled:
        metrics["report"] = _evaluate(config, model, sample, metrics, init_export)
    return metrics


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _eval_data(config):
    from keras_eqssl.probes.evaluate import EvalData

    e = config.eval
    common = dict(families=_names(e.families), parts=_names(e.parts), heads=_names(e.heads), repeats=e.repeats)
    if config.data.source == "threedie":
        from keras_eqssl.data.train_batches import threedie_root

        t = config.data.threedie
        return EvalData(
            threedie_root=threedie_root(config, progress=False),
            image_size=config.augment.size,
            pairs_per_object=e.pairs_per_object,
            description=f"Data: 3DIEBench-format root ({t.root or 'rendered mini-3DIEBench'}), renders at "
            f"{config.augment.size} px; probes fit on the train split's objects and score on the val split's.",
            **common,
        )
    from keras_eqssl.probes.evaluate import source_eval_data

    data = source_eval_data(config, **common)
    if data.no_labels:
        print(f"skipping the classification probes: {data.no_labels}")
    return data


def _evaluate(config, model, sample, metrics, init_export) -> str:
    from keras_eqssl.probes.evaluate import evaluate_models
    from keras_eqssl.probes.plots import reconstruction_grid

    out = os.path.join(config.workdir, "report")
    os.makedirs(out, exist_ok=True)
    images = {}
    recons = model.reconstructions(sample)
    for name, (x_hat, target) in recons.items():
        path = os.path.join(out, f"reconstruction_{name}.png")
        reconstruction_grid(target.numpy(), x_hat.numpy(), path, mean=model.mean, std=model.std)
        images[f"Reconstructions ({name}): targets above, decoder outputs below"] = path
    models = {"trained": metrics["export"]}
    if os.path.isdir(init_export):
        models["random init"] = init_export
    info = {"steps": metrics["steps"], "seconds": metrics["seconds"]}
    info["final_losses"] = {k: v[-1] for k, v in metrics["history"].items()}
    print(f"evaluating {', '.join(models)} with the probes ...")
    result = evaluate_models(
        models,
        _eval_data(config),
        out,
        title=f"{model.name}: {config.train.steps} steps on {config.data.source}",
        command=" ".join(sys.argv),
        train_info={"trained": info},
        images=images,
        notes=[ONE_SEED_NOTE.format(seed=config.seed)],
        baseline="random init" if "random init" in models else None,
        seed=config.seed,
        progress=config.train.progress,
    )
    print(f"key numbers (one training run, seed {config.seed}; mean ± std over the probe repeats):")
    for name, numbers in result["key_numbers"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v.text()}" for k, v in numbers.items()))
    print(f"report: {result['paths'].get('report', os.path.join(out, 'report.md'))}")
    return result["paths"].get("report", os.path.join(out, "report.md"))


ONE_SEED_NOTE = (
    "This report is one training run (seed {seed}): every ± is over probe repeats, not over training seeds, "
    "and `*` says a difference is beyond the probes' noise, not that it would hold for another seed. "
    "`tools/compare.py` trains several seeds and tests their paired differences (docs/results_main_job.md: "
    "the main job over seeds)."
)


def _strategy_options() -> dict:
    """The flags that tune `--strategy`, for the strategies they apply to."""
    if _STRATEGY.value == "mirrored" and _CPU_REPLICAS.value:
        return {"num_cpu_replicas": _CPU_REPLICAS.value}
    if _STRATEGY.value == "multiworker":
        return {"cluster_wait": _CLUSTER_WAIT.value, "health_every": _HEALTH_EVERY.value}
    return {}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = checked(_CONFIG)
    if _AS_PROGRAM and needs_restart_for(config.train.deterministic):
        # train.deterministic=True set in the config file: TensorFlow was imported with keras_eqssl's
        # oneDNN default, which it reads only once, so the command starts again with oneDNN off.
        print("keras-eqssl-train: train.deterministic=True: starting again with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)")
        restart_with_onednn_off()
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines
    import tensorflow as tf

    from keras_eqssl.distribute import ClusterNotUpError
    from keras_eqssl.methods.callbacks import NonFiniteLossError, TrainingInterrupted

    try:
        with input_errors_exit(2):  # a config that does not fit the workdir, the data or the model
            train(config, _STRATEGY.value, _TPU.value, **_strategy_options())
    except TrainingInterrupted as err:
        print(f"keras-eqssl-train: stopped on {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except KeyboardInterrupt:
        if os.environ.get("KERAS_EQSSL_DEBUG"):
            raise
        print(
            "keras-eqssl-train: stopped at once on SIGINT; the checkpoints written so far are whole in "
            f"{os.path.join(config.workdir, 'checkpoints')}: rerun the same command to go on from the newest.",
            file=sys.stderr,
        )
        sys.exit(130)
    except tf.errors.InvalidArgumentError as err:
        words = ("JPEG", "jpeg", "PNG", "decode", "Decode")
        said = [line.strip() for line in err.message.splitlines() if any(w in line for w in words)]
        if not said:
            raise
        print(
            f"error: an image in the data does not decode ({said[-1][-200:]}); TensorFlow does "
            "not say which. Rerun with --config.data.check_decode=True to name it (and --config.data.skip_bad=True "
            "to skip it).",
            file=sys.stderr,
        )
        sys.exit(2)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, ClusterNotUpError) as err:
        if _STRATEGY.value != "multiworker":
            raise
        _worker_down(err)


def _worker_down(err) -> None:
    """Exits 4 saying which worker of the cluster never came up (`ClusterNotUpError`), or that one
    died (the collectives were aborted)."""
    from keras_eqssl.distribute import ClusterNotUpError

    if os.environ.get("KERAS_EQSSL_DEBUG"):
        raise err
    if isinstance(err, ClusterNotUpError):
        text = " ".join(str(err).split())
    else:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        said = next((line for line in lines if "down" in line or "came up" in line), lines[0] if lines else "")
        ckpt = os.path.join(checked(_CONFIG).workdir, "checkpoints")
        text = (
            f"a worker of the multi-worker cluster is gone ({said[:300]}). This worker stopped instead of waiting "
            f"for it. Restart the command on every worker: training resumes from the last checkpoint in {ckpt}."
        )
    print(f"error: {text}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(4)  # TensorFlow's aborted collectives and gRPC threads can keep a normal exit waiting


_AS_PROGRAM = False  # True when started as the command (`run`), which may restart its own process


def run():
    global _AS_PROGRAM
    _AS_PROGRAM = True
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
