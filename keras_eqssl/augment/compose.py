"""Ops made of ops: a sequence, a coin-flip wrapper and a per-image choice, all recording."""

from __future__ import annotations

import tensorflow as tf

from keras_eqssl.augment import base
from keras_eqssl.augment.base import (
    BINARY,
    CATEGORICAL,
    Op,
    ParamSpec,
    apply_where,
    bernoulli,
    check_probability,
    draw,
    register,
    switch_per_image,
)


def _select(mask, a: dict, b: dict) -> dict:
    """Per-image select between two param dicts with the same keys; mask (B, 1) bool."""
    out = {}
    for key, value in a.items():
        m = tf.reshape(mask, [-1] + [1] * (value.shape.rank - 1))
        out[key] = tf.where(m, value, b[key])
    return out


# A chain on large images runs a few images at a time, so that every op reads and writes a few MB
# that stay in cache rather than the whole batch (154 MB per intermediate for 256 images at
# 224 px): the SimCLR view chain then takes about 1.6x less CPU time at 224 px. Chunks of 2^17 to
# 2^19 pixels measured alike; 64 px images go 64 at a time, where chunking neither helps nor hurts.
_CHUNK_PIXELS = 1 << 18  # output pixels per chunk: 3 MB of float32 RGB per intermediate


def _chunk_size(output_hw) -> int | None:
    """Images per chunk for a chain whose output is `output_hw`; None when it is not static."""
    if any(s is None for s in output_hw):
        return None
    return max(1, _CHUNK_PIXELS // max(1, int(output_hw[0]) * int(output_hw[1])))


def _apply_in_chunks(fn, images, params: dict, chunk: int, output_hw) -> tf.Tensor:
    """`fn(images, params)` run on `chunk` images at a time (a while loop), concatenated.

    Every op is per image (its parameters are per image), so the result is the same as one
    call on the whole batch.
    """
    n = tf.shape(images)[0]
    num_chunks = (n + chunk - 1) // chunk
    out_shape = tf.TensorShape([None, *output_hw, 3])
    parts = tf.TensorArray(tf.float32, size=num_chunks, infer_shape=False, element_shape=out_shape)

    def body(i, parts):
        rows = slice(i * chunk, (i + 1) * chunk)
        out = fn(images[rows], {k: v[rows] for k, v in params.items()})
        return i + 1, parts.write(i, out)

    _, parts = tf.while_loop(lambda i, _: i < num_chunks, body, (tf.constant(0), parts), parallel_iterations=2)
    out = parts.concat()
    out.set_shape(images.shape[:1].concatenate(out_shape[1:]))
    return out


def _on_subset(op: Op, params: dict):
    """A `switch_per_image` branch: `op` applied to a subset of images with their own parameters."""
    return lambda imgs, idx: op.apply(imgs, {k: tf.gather(v, idx) for k, v in params.items()})


def _check_unique(owner, ops):
    seen = {}
    for op in ops:
        for spec in op.param_specs():
            if spec.key in seen:
                raise ValueError(
                    f"{owner}: two ops record the parameter {spec.key!r} ({seen[spec.key]} and {op!r}); "
                    "give one of them another name=."
                )
            seen[spec.key] = repr(op)


@register
class Compose(Op):
    """Runs ops in order; records the union of their parameters.

    Example:
    >>> from keras_eqssl.augment import Compose, Flip, RandomResizedCrop
    >>> chain = Compose([RandomResizedCrop(32), Flip()])
    >>> views, params = chain(tf.zeros((4, 64, 64, 3), tf.uint8), seed=1)
    >>> views.shape, sorted(params)
    (TensorShape([4, 32, 32, 3]), ['crop', 'crop_ratio', 'crop_scale', 'flip'])
    """

    def __init__(self, ops, name: str = "compose"):
        super().__init__(name)
        self.ops = list(ops)
        if not all(isinstance(op, Op) for op in self.ops):
            raise TypeError(f"Compose takes augmentation ops; received {self.ops!r}.")
        _check_unique("Compose", self.ops)

    def param_specs(self):
        return [spec for op in self.ops for spec in op.param_specs()]

    def sample(self, batch_size, seed, image_size=None):
        params = {}
        for i, op in enumerate(self.ops):
            params.update(op.sample(batch_size, draw(seed, i), image_size=image_size))
            if image_size is not None:
                image_size = op.output_size(image_size)
        return params

    def apply(self, images, params):
        input_hw = tuple(images.shape[1:3]) if images.shape.rank == 4 else (None, None)
        output_hw = tuple(self.output_size(input_hw)) if None not in input_hw else (None, None)
        chunk = _chunk_size(output_hw)
        batch = images.shape[0]
        if chunk is None or (batch is not None and batch <= chunk):
            return self._apply_batch(images, params)
        # Only this chain's parameters are sliced per chunk (a policy may pass more keys).
        keys = {spec.key for spec in self.param_specs()}
        own = {k: v for k, v in params.items() if k in keys}
        chunked = lambda: _apply_in_chunks(self._apply_batch, images, own, chunk, output_hw)
        if batch is not None:
            return chunked()
        out = tf.cond(tf.shape(images)[0] <= chunk, lambda: self._apply_batch(images, own), chunked)
        out.set_shape(images.shape[:1].concatenate([*output_hw, 3]))
        return out

    def _apply_batch(self, images, params):
        for op in self.ops:
            images = op.apply(images, params)
        return images

    def identity_params(self, batch_size):
        return {k: v for op in self.ops for k, v in op.identity_params(batch_size).items()}

    def output_size(self, input_size):
        for op in self.ops:
            input_size = op.output_size(input_size)
        return input_size

    def get_config(self):
        return {"ops": [base.serialize(op) for op in self.ops], "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls([base.from_config(c) for c in config["ops"]], name=config["name"])


@register
class RandomApply(Op):
    """Applies `op` to each image with probability `p`.

    Records `<op.name>_applied` (B, 1) and the op's parameters; where the op did not run, its
    parameters are replaced by the op's identity values (e.g. jitter factors 1, blur sigma 0),
    so the record says what actually happened to each image.

    Example:
    >>> from keras_eqssl.augment import GaussianBlur, RandomApply
    >>> params = RandomApply(GaussianBlur(), p=0.5).sample(8, seed=0)
    >>> sorted(params)
    ['blur', 'blur_applied']
    >>> bool(tf.reduce_all(tf.where(params["blur_applied"] > 0, 0.0, params["blur"]) == 0.0))  # sigma 0 where not run
    True
    """

    def __init__(self, op: Op, p: float = 0.5, name: str | None = None):
        super().__init__(name or f"{op.name}_applied")
        self.op = op
        self.p = check_probability(f"RandomApply({op.name!r})", p)

    def param_specs(self):
        return [
            ParamSpec(self.name, (1,), BINARY, 0.0, 1.0, doc=f"1 = {self.op.name} was applied")
        ] + self.op.param_specs()

    def sample(self, batch_size, seed, image_size=None):
        applied = bernoulli(batch_size, seed, 0, self.p)
        inner = self.op.sample(batch_size, draw(seed, 1), image_size=image_size)
        inner = _select(applied > 0.5, inner, self.op.identity_params(batch_size))
        return {self.name: applied, **inner}

    def apply(self, images, params):
        # Run the op only on the images it applies to (p=0.5 blur costs half, not all).
        return apply_where(params[self.name], images, _on_subset(self.op, params))

    def identity_params(self, batch_size):
        return {self.name: tf.zeros([batch_size, 1]), **self.op.identity_params(batch_size)}

    def output_size(self, input_size):
        return self.op.output_size(input_size)

    def get_config(self):
        return {"op": base.serialize(self.op), "p": self.p, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(base.from_config(config["op"]), p=config["p"], name=config["name"])


@register
class RandomChoice(Op):
    """Applies one of `ops` to each image, chosen per image with probabilities `weights`.

    All branches must give the same output size. Records `<name>` (B, 1) int32, the branch
    index, and each branch's parameters (identity values for the branches not taken).

    Example:
    >>> from keras_eqssl.augment import RandomChoice, Rotation, Translation
    >>> op = RandomChoice([Rotation(30.0), Translation(4.0)], weights=[0.5, 0.5])
    >>> out, params = op(tf.random.stateless_uniform((4, 16, 16, 3), seed=(0, 1)), seed=0)
    >>> sorted(params), tuple(params["choice"].shape), tuple(out.shape)
    (['choice', 'rotation', 'translation'], (4, 1), (4, 16, 16, 3))
    """

    def __init__(self, ops, weights=None, name: str = "choice"):
        super().__init__(name)
        self.ops = list(ops)
        if len(self.ops) < 2:
            raise ValueError(f"RandomChoice needs at least two ops; received {self.ops!r}.")
        _check_unique("RandomChoice", self.ops)
        weights = [1.0] * len(self.ops) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.ops) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"RandomChoice: weights must be {len(self.ops)} non-negative numbers; received {weights!r}."
            )
        self.weights = [w / sum(weights) for w in weights]

    def param_specs(self):
        n = len(self.ops) - 1
        own = ParamSpec(self.name, (1,), CATEGORICAL, 0, n, "int32", doc="index of the op applied")
        return [own] + [s for op in self.ops for s in op.param_specs()]

    def sample(self, batch_size, seed, image_size=None):
        logits = tf.math.log(tf.constant([self.weights], tf.float32))
        logits = tf.tile(logits, [batch_size, 1])
        choice = tf.random.stateless_categorical(logits, 1, draw(seed, 0), dtype=tf.int32)  # (B, 1)
        params = {self.name: choice}
        for i, op in enumerate(self.ops):
            sampled = op.sample(batch_size, draw(seed, i + 1), image_size=image_size)
            params.update(_select(choice == i, sampled, op.identity_params(batch_size)))
        return params

    def apply(self, images, params):
        return switch_per_image(images, params[self.name][:, 0], [_on_subset(op, params) for op in self.ops])

    def identity_params(self, batch_size):
        out = {self.name: tf.zeros([batch_size, 1], tf.int32)}
        for op in self.ops:
            out.update(op.identity_params(batch_size))
        return out

    def output_size(self, input_size):
        return self.ops[0].output_size(input_size)

    def get_config(self):
        return {"ops": [base.serialize(op) for op in self.ops], "weights": self.weights, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls([base.from_config(c) for c in config["ops"]], weights=config["weights"], name=config["name"])
