"""SSLModel: what every training method shares (normalisation, representation, loss metrics, steps, EMA teacher)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.losses.distributed import unscale
from keras_eqssl.losses.ema import byol_momentum, ema_update
from keras_eqssl.methods.accumulation import accumulated_gradients, check_accumulate_steps, micro_batches
from keras_eqssl.methods.registry import Registered
from keras_eqssl.nn.backbone import Backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REPRESENTATION_KEYS = ("embedding", "invariant", "equivariant")

# kind -> SSLModel subclass (`config.model.method`), filled by `SSLModel.__init_subclass__` (import order).
MODEL_KINDS: dict[str, type] = {}


def split_rows(parts: dict, n: int) -> list[tuple]:
    """`{key: (n * B, ...)}` -> n tuples of the `(B, ...)` slices, in `parts`' key order.

    Methods encode several same-size views in one backbone call and split the outputs back.
    """
    split = [ops.split(t, n, axis=0) for t in parts.values()]
    return list(zip(*split))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class SSLModel(Registered, keras.Model):
    """Base class of the training methods (`PairModel`, `TeacherStudentModel`): one backbone trained by its own losses.

    A subclass says only what is new about it:

    - `compute_losses(batch, training) -> (total, terms)`: the loss to minimise and every named
      term (scalars, per-replica scale: see `keras_eqssl.losses.distributed`);
    - `term_names()`: the names `terms` may hold; call `self.track_terms()` at the end of
      `__init__` to make a `keras.metrics.Mean` for each (and for `loss`);
    - `representation(backbone_outputs)`: `{"embedding", "invariant", "equivariant"}` `(N, C_k)`
      from the backbone's outputs (default: the pooled vector for all three);
    - `ema_pairs()`: `(teacher layer, online layer)` pairs an EMA teacher follows (default none),
      with `teacher_base_momentum`; the base moves them after every optimizer step with BYOL's
      cosine momentum schedule from the base to 1 over `total_steps` (`ema_copy` makes a teacher);
    - `transform_gradients(grads, variables)`: a hook before the optimizer step (identity).

    A subclass that sets `kind` is a model kind: it is in `MODEL_KINDS`, and
    `config.model.method = kind` trains it. Its classmethods say how a run config sets it (the
    defaults below are those of a kind without settings of its own):

    - `config_section()`: the defaults of `config.model.<kind>` (nested dicts allowed; {}: none);
    - `config_rules()`: `"model.<kind>...."` -> a check of the value (a message, or None);
    - `config_problems(config)`, `batch_problems(config, per_replica_batch)`: what makes a config,
      or a replica's batch, unusable for it (messages naming the fields);
    - `resume_rules()`: dotted config prefix -> `"apply"` or `"ignore"` when a run resumes
      (`keras_eqssl.resume`; anything else under `model` is refused);
    - `run_name(config)`: the model's name for the run (default: `kind`);
    - `from_run_config(config, backbone, *, mean, std, param_specs, synchronized)`: the model of
      a run config, given its backbone, normalisation and the `ParamSpec`s of every view the
      augmentation policy makes (None when none runs).

    Everything else is shared: `normalize` (uint8 or [0, 1] float images -> `(x - mean) / std`),
    `call(images) -> representation` (what `keras_eqssl.export` saves), `compile` (no Keras loss;
    the optimizer is built on `online_variables()`, every trainable variable but the teacher's),
    `train_step` / `test_step` over `compute_losses`, and the metrics `fit` shows and TensorBoard
    logs. Under `tf.distribute`, build and compile inside `strategy.scope()`.

    Args:
        backbone: a `keras_eqssl.nn.Backbone`.
        image_size: int or (H, W) of the training views the subclass is built for.
        mean, std: per-channel normalisation of [0, 1] images.
        total_steps: the run's length, for the EMA momentum schedule (None: constant momentum).
        teacher_base_momentum: the momentum at step 0 of an EMA teacher.

    Example (a minimal method: the backbone's pooled vectors of two views pulled together):

    >>> import keras, numpy as np
    >>> from keras import ops
    >>> from keras_eqssl.methods import SSLModel
    >>> from keras_eqssl.nn import backbone_from_name
    >>> class Agree(SSLModel):
    ...     def __init__(self, backbone, **kwargs):
    ...         super().__init__(backbone, **kwargs)
    ...         self.track_terms()
    ...
    ...     def term_names(self):
    ...         return ["agree"]
    ...
    ...     def compute_losses(self, batch, training=False):
    ...         views = (self.normalize(batch["views"][v]) for v in ("v1", "v2"))
    ...         a, b = (self.backbone(x, training=training)["pooled"] for x in views)
    ...         loss = ops.mean(ops.square(a - b))
    ...         return loss, {"agree": loss}
    >>> model = Agree(backbone_from_name("resnet18", stem="cifar", width=0.0625), image_size=16)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01))
    >>> x = np.random.default_rng(0).random((2, 4, 16, 16, 3)).astype("float32")
    >>> history = model.fit({"views": {"v1": x[0], "v2": x[1]}}, batch_size=4, verbose=0)
    >>> sorted(history.history)
    ['agree', 'loss']
    >>> tuple(model(x[0])["embedding"].shape)  # the pooled vector of the width-1/16 ResNet-18
    (4, 32)
    """

    registry = MODEL_KINDS
    key_attribute = "kind"
    kind: str | None = None
    accumulate_steps: int = 1  # micro-batches per optimizer update (set by `compile`)

    # --- the kind: how a run config sets, checks and builds it ------------------------------

    @classmethod
    def config_section(cls) -> dict:
        """The defaults of `config.model.<kind>` ({}: the kind has no section)."""
        return {}

    @classmethod
    def config_rules(cls) -> dict[str, Callable]:
        """`"model.<kind>.<key>"` -> a check returning a message for a bad value, or None."""
        return {}

    @classmethod
    def config_problems(cls, config) -> list[str]:
        """What makes `config` unusable for this kind (fields that must agree), or []."""
        return []

    @classmethod
    def batch_problems(cls, config, per_replica_batch: int) -> list[str]:
        """What makes a replica's batch of `per_replica_batch` examples unusable, or []."""
        return []

    @classmethod
    def resume_rules(cls) -> dict[str, str]:
        """Dotted config prefix -> `"apply"` or `"ignore"` for a resumed run (see `keras_eqssl.resume`)."""
        return {}

    @classmethod
    def run_name(cls, config) -> str:
        """The model's name for the run of `config` (the checkpoints' and the metrics' model)."""
        return cls.kind

    @classmethod
    def from_run_config(cls, config, backbone: Backbone, *, mean, std, param_specs, synchronized: bool) -> SSLModel:
        """The model of run config `config` on `backbone` (synchronised BatchNorm in heads: `synchronized`)."""
        return cls(backbone, **cls._run_config_kwargs(config, mean=mean, std=std))

    @classmethod
    def _run_config_kwargs(cls, config, *, mean, std) -> dict:
        """The constructor arguments every kind of model takes from run config `config`."""
        return dict(
            image_size=config.augment.size,
            mean=mean,
            std=std,
            total_steps=config.train.steps,
            name=cls.run_name(config),
        )

    def __init__(
        self,
        backbone: Backbone,
        image_size: int | Sequence[int] = 64,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        total_steps: int | None = None,
        teacher_base_momentum: float = 0.996,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if not isinstance(backbone, Backbone):
            raise TypeError(f"{kind}: backbone must be a keras_eqssl.nn.Backbone; received {type(backbone).__name__}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"{kind}: mean and std need 3 values, std > 0; received mean={mean}, std={std}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"{kind}: total_steps must be >= 1 or None; received {total_steps}")
        if not 0.0 <= teacher_base_momentum <= 1.0:
            raise ValueError(f"{kind}: teacher_base_momentum must be in [0, 1]; received {teacher_base_momentum}")
        self.backbone = backbone
        self.image_size = size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.total_steps = total_steps
        self.teacher_base_momentum = float(teacher_base_momentum)
        self._trackers = {}

    # --- what a subclass says -------------------------------------------------------------

    def term_names(self) -> list[str]:
        """The loss terms `compute_losses` reports (besides `loss`), one metric each."""
        return []

    def compute_losses(self, batch: dict, training=False) -> tuple[tf.Tensor, dict]:
        """`(total, terms)`: the loss to minimise and every named term (per-replica scale)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_losses(batch, training)")

    def representation(self, outputs: dict) -> dict:
        """Backbone outputs -> `{"embedding", "invariant", "equivariant"}`; by default the pooled vector for all."""
        return {k: outputs["pooled"] for k in REPRESENTATION_KEYS}

    def ema_pairs(self) -> list[tuple]:
        """(teacher layer, online layer) pairs the EMA moves after each optimizer step (none by default)."""
        return []

    def encode_together(self, network, inputs: dict, names, training) -> dict:
        """`{name: network(inputs[name])}` from one call of `network` on the concatenated inputs.

        `network(x, training=...)` returns a dict of tensors (a backbone, or heads wrapped so);
        the inputs of `names` must have one shape. One call instead of one per view: fewer kernel
        launches, and one set of batch statistics.
        """
        if not names:
            return {}
        out = network(ops.concatenate([inputs[v] for v in names], axis=0), training=training)
        return {v: dict(zip(out, rows)) for v, rows in zip(names, split_rows(out, len(names)))}

    def transform_gradients(self, grads: list, variables: list) -> list:
        """Gradients -> the gradients the optimizer applies (the identity)."""
        return grads

    def reconstructions(self, batch: dict) -> dict:
        """Name -> `(x_hat, target)` images a reconstruction objective makes of `batch` (none by default)."""
        return {}

    def track_terms(self) -> None:
        """Makes the metric trackers: `loss` and each of `term_names()`; call at the end of `__init__`."""
        self._trackers = {"loss": keras.metrics.Mean(name="loss")}
        for name in self.term_names():
            self._trackers[name] = keras.metrics.Mean(name=name)
        self.built = True

    # --- the representation ---------------------------------------------------------------

    def normalize(self, images):
        """uint8 or [0, 1] float `(N, H, W, 3)` -> float `(x - mean) / std` in the compute dtype."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"{type(self).__name__} expects images (N, H, W, 3); received shape {images.shape}")
        x = tf.cast(images, "float32")
        if images.dtype == tf.uint8:
            x = x / 255.0
        x = (x - tf.constant(self.mean)) / tf.constant(self.std)
        return tf.cast(x, self.compute_dtype)

    def encoder_outputs(self, images, training=False) -> dict:
        """Images -> `{"embedding", "invariant", "equivariant"}`: the backbone only, no heads."""
        parts = self.representation(self.backbone(self.normalize(images), training=training))
        return {k: parts[k] for k in REPRESENTATION_KEYS}

    def call(self, images, training=False):
        return self.encoder_outputs(images, training=training)

    # --- training ---------------------------------------------------------------------------

    def online_variables(self) -> list:
        """The variables the optimizer updates: every trainable one except the EMA teacher's."""
        teacher = {id(w) for t, _ in self.ema_pairs() for w in t.weights}
        return [v for v in self.trainable_variables if id(v) not in teacher]

    def compile(self, optimizer="adam", accumulate_steps: int = 1, **kwargs):
        """`keras.Model.compile` (no `loss`: the losses are the model's own); builds the optimizer now.

        Building the optimizer's slots here, not inside the first traced step, saves a second
        trace of `train_step` (TensorFlow retraces a function that created variables).
        `accumulate_steps=k > 1`: each training step splits every replica's batch into k
        micro-batches and makes one optimizer update from their mean gradient
        (`keras_eqssl.methods.accumulation`); the batch must be a multiple of k per replica.
        """
        self.accumulate_steps = check_accumulate_steps(accumulate_steps)
        super().compile(optimizer=optimizer, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.online_variables())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Builds nothing from data once the model and its optimizer are built.

        Keras (3.15) calls this at the start of `fit`/`evaluate` inside a strategy's scope: it takes
        the first batch from the epoch's iterator (so training would never see batch 0, and a
        resumed run would skip one batch more) and reduces it with `strategy.reduce`, which
        `MultiWorkerMirroredStrategy` refuses for nested batches. An `SSLModel` builds its layers
        in the constructor and its optimizer in `compile`, so there is nothing left to build.
        """
        built = all(layer.built for layer in self._flatten_layers()) and (
            self.optimizer is None or self.optimizer.built
        )
        if not built:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compile_from_config(self, config):
        """Recompiles on `keras.models.load_model` (Keras skips models that override `compile`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _update_metrics(self, total, terms) -> dict:
        self._trackers["loss"].update_state(unscale(total))
        for name, value in terms.items():
            if name in self._trackers:
                self._trackers[name].update_state(unscale(value))
        results = {name: m.result() for name, m in self._trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras (3.15) averages the replicas' logs with `strategy.reduce(MEAN, v, axis=0)` under
            # this strategy, which needs an axis: shape (1,), reduced to the scalar mean.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def teacher_momentum(self):
        """tau(k) for the update that follows optimizer step k (0-based, read before the step)."""
        base = self.teacher_base_momentum
        if self.total_steps is None:
            return tf.constant(base, tf.float32)
        return byol_momentum(self.optimizer.iterations, self.total_steps, base)

    def update_teacher(self, momentum) -> None:
        """Moves every EMA teacher layer towards its online layer: `xi <- tau xi + (1 - tau) theta`."""
        pairs = self.ema_pairs()
        ema_update([w for t, _ in pairs for w in t.weights], [w for _, o in pairs for w in o.weights], momentum)

    def train_step(self, data):
        variables = self.online_variables()
        if self.accumulate_steps > 1:
            grads, total, terms = accumulated_gradients(
                lambda batch: self.compute_losses(batch, training=True),
                micro_batches(data, self.accumulate_steps),
                variables,
                self.optimizer.scale_loss,
            )
        else:
            with tf.GradientTape() as tape:
                total, terms = self.compute_losses(data, training=True)
                scaled = self.optimizer.scale_loss(total)
            grads = tape.gradient(scaled, variables)
        grads = self.transform_gradients(grads, variables)
        momentum = self.teacher_momentum() if self.ema_pairs() else None
        self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        if momentum is not None:
            self.update_teacher(momentum)
        return self._update_metrics(total, terms)

    def test_step(self, data):
        total, terms = self.compute_losses(data, training=False)
        return self._update_metrics(total, terms)

    # --- serialisation ----------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "total_steps": self.total_steps,
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
