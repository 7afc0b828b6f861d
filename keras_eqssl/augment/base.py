"""The contract every augmentation op follows: sample per-image parameters, then apply them.

Keras and keras-cv layers sample and apply in one `call` and do not return what they sampled,
so the equivariance methods and probes, which need to know exactly what happened to each
image, cannot use them as they are. Our ops split the two steps:

    params = op.sample(batch_size, seed)          # dict[str, Tensor], first dim = batch
    images = op.apply(images, params)             # deterministic given params

and declare a `ParamSpec` for each key they record, so a probe can regress a parameter by name.
`OpLayer` (keras_layer.py) makes any op a Keras preprocessing layer with the same two halves.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from keras_eqssl.augment import seeds
from keras_eqssl.augment.images import to_float_rgb

CONTINUOUS = "continuous"
BINARY = "binary"
CATEGORICAL = "categorical"
KINDS = (CONTINUOUS, BINARY, CATEGORICAL)

_REGISTRY: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """What one recorded parameter is.

    Attributes:
        key: the key in the params dict, e.g. `"crop"`.
        shape: per-image shape, e.g. `(4,)`; the recorded tensor is `(B, *shape)`.
        kind: `"continuous"`, `"binary"` (0/1 float) or `"categorical"` (int32 in [0, num_classes)).
        low, high: the range of each value (for categorical: 0 and num_classes - 1).
        dtype: `"float32"` or `"int32"`.
        names: a name per component, e.g. `("y0", "x0", "h", "w")`.
        doc: one line on what the value means.
    """

    key: str
    shape: tuple[int, ...]
    kind: str
    low: float
    high: float
    dtype: str = "float32"
    names: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ParamSpec {self.key!r}: kind must be one of {KINDS}; received {self.kind!r}.")

    @property
    def num_classes(self) -> int:
        """Number of classes of a categorical parameter."""
        return int(self.high) + 1


def register(cls):
    """Class decorator: makes an op constructible by `from_config`."""
    _REGISTRY[cls.__name__] = cls
    return cls


def from_config(config: dict) -> Op:
    """Rebuilds an op from `op.get_config()` output (`{"class_name": ..., "config": ...}`)."""
    name = config["class_name"]
    if name not in _REGISTRY:
        raise ValueError(f"Unknown augmentation op {name!r}; known: {sorted(_REGISTRY)}.")
    return _REGISTRY[name].from_config(config["config"])


def serialize(op: Op) -> dict:
    return {"class_name": type(op).__name__, "config": op.get_config()}


class Op:
    """Base class of an augmentation op that records what it sampled.

    Subclasses implement `param_specs`, `sample` and `apply`, and `identity_params` (the
    parameters that mean "unchanged", used by `RandomApply` and `RandomChoice` to record
    the effective parameters of images an op was not applied to).

    Calling an op samples and applies in one go:
    >>> from keras_eqssl.augment import Flip
    >>> op = Flip(p=0.5)
    >>> images, params = op(tf.zeros((8, 32, 32, 3)), seed=0)
    >>> sorted(params)
    ['flip']
    """

    def __init__(self, name: str):
        if not name or not isinstance(name, str):
            raise ValueError(f"An op needs a non-empty string name; received {name!r}.")
        self.name = name

    # --- to implement ---------------------------------------------------------------
    def param_specs(self) -> list[ParamSpec]:
        raise NotImplementedError

    def sample(self, batch_size, seed, image_size=None) -> dict[str, tf.Tensor]:
        """Draws per-image parameters.

        Args:
            batch_size: number of images B (int or scalar tensor).
            seed: stateless seed (int or shape-(2,) int tensor).
            image_size: optional (H, W) of the input images; ops whose parameters depend on
                the aspect ratio (random resized crop) use it. Defaults to square.

        Returns:
            dict of `(B, ...)` tensors keyed as in `param_specs()`.
        """
        raise NotImplementedError

    def apply(self, images, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """Applies recorded parameters: deterministic, `(B, H, W, 3)` float32 in [0, 1] out."""
        raise NotImplementedError

    def identity_params(self, batch_size) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------
    def __call__(self, images, seed, return_params: bool = True):
        images = to_float_rgb(images, where=f"{type(self).__name__}({self.name!r})")
        shape = tf.shape(images)
        params = self.sample(shape[0], seed, image_size=shape[1:3])
        out = self.apply(images, params)
        return (out, params) if return_params else out

    def output_size(self, input_size):
        """(H, W) after this op; ops that resize override it."""
        return input_size

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def draw(seed, index: int) -> tf.Tensor:
    """The seed of the `index`-th independent draw inside one op."""
    return seeds.fold(seed, index)


def uniform(shape, seed, index, low, high) -> tf.Tensor:
    """Stateless U(low, high) float32 draw."""
    return tf.random.stateless_uniform(shape, draw(seed, index), minval=low, maxval=high, dtype=tf.float32)


def bernoulli(batch_size, seed, index, p) -> tf.Tensor:
    """Stateless (B, 1) float32 0/1 draw with P(1) = p."""
    return tf.cast(uniform([batch_size, 1], seed, index, 0.0, 1.0) < p, tf.float32)


def check_probability(owner: str, p) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{owner}: p must be a probability in [0, 1]; received p={p}.")
    return p


def check_range(owner: str, field: str, value, low=None, high=None) -> tuple[float, float]:
    """Validates a (min, max) pair, optionally bounded; repeats the received value on error."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {field} must be a (min, max) pair; received {field}={value!r}.") from None
    if lo > hi:
        raise ValueError(f"{owner}: {field} min > max; received {field}={value!r}.")
    if low is not None and lo < low:
        raise ValueError(f"{owner}: {field} must be >= {low}; received {field}={value!r}.")
    if high is not None and hi > high:
        raise ValueError(f"{owner}: {field} must be <= {high}; received {field}={value!r}.")
    return lo, hi


def apply_where(mask, images, fn) -> tf.Tensor:
    """`fn(images_subset, batch_indices)` for the images where `mask` (B, 1) is 1, the others
    unchanged (exactly).

    `fn` runs on those images only (possibly none), so a rarely applied op costs little.
    """
    chosen = tf.cast(tf.reshape(mask, [-1]) > 0.5, tf.int32)
    return switch_per_image(images, chosen, [lambda imgs, idx: imgs, fn])


def switch_per_image(images, choice, branches) -> tf.Tensor:
    """Applies `branches[choice[i]]` to image i, running each branch once on its images only.

    Args:
        images: `(B, H, W, C)`.
        choice: `(B,)` int32 in [0, len(branches)).
        branches: callables `fn(images_subset, batch_indices) -> images_subset`.
    """
    n = len(branches)
    batch_index = tf.range(tf.shape(images)[0])
    indices = tf.dynamic_partition(batch_index, choice, n)
    # Gather each part by its indices rather than dynamic_partition the images: the shape function
    # of DynamicPartition gives all its outputs one shared unknown batch dim, and when the choices
    # are constant (a constant seed) Grappler's constant folding then hands one part's size to
    # another part's shape ("data[3].shape = [1, ...] does not start with indices[3].shape = [2]").
    parts = [tf.gather(images, idx) for idx in indices]
    outs = [branch(part, idx) for branch, part, idx in zip(branches, parts, indices)]
    out = tf.dynamic_stitch(indices, outs)
    out.set_shape(images.shape)
    return out
