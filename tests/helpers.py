"""The one shared check that every augmentation op's test reuses (keras-hub's `run_*_test` style).

`run_op_test(op, ...)` checks the `Op` contract of `keras_eqssl.augment.base`:

- the recorded params match `param_specs()` (keys, shapes, dtypes, kinds, ranges);
- `apply` is deterministic (bit-identical twice) and `op(images, seed)` equals
  `op.apply(images, op.sample(B, seed, image_size))`;
- stateless seeds: the same seed gives the same params, another seed different ones;
- per-image params: rows of a batch differ;
- images are processed independently (permuting the batch permutes the output);
- `from_config(serialize(op))` samples the same params;
- optionally, the empirical distribution of each param over many draws (`distribution=`);
- optionally, graph mode inside `tf.data.Dataset.map(num_parallel_calls=AUTOTUNE)` on uint8
  batches, with params equal to the eager ones for the same seed (`checks=("tf_data",)`).

Small statistical assertions (`assert_frequency`, `assert_uniform`, `assert_categorical`) are
shared by the op tests and the policy tests.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_eqssl.augment import base
from keras_eqssl.augment.seeds import make_seed

ALL_CHECKS = ("specs", "replay", "seeds", "per_image", "independence", "config", "distribution", "tf_data")
DEFAULT_CHECKS = tuple(c for c in ALL_CHECKS if c != "tf_data")

# 10,000 draws: the standard error of a frequency is <= 0.005, of a U(0, 1) mean about 0.003.
NUM_SAMPLES = 10_000


# --- small assertions ------------------------------------------------------------------------
def to_numpy(params: dict) -> dict:
    return {k: np.asarray(v) for k, v in params.items()}


def assert_params_equal(a: dict, b: dict, what: str = "params"):
    a, b = to_numpy(a), to_numpy(b)
    assert sorted(a) == sorted(b), f"{what}: keys differ: {sorted(a)} vs {sorted(b)}"
    for key in a:
        assert a[key].dtype == b[key].dtype, f"{what}[{key!r}]: dtype {a[key].dtype} vs {b[key].dtype}"
        assert np.array_equal(a[key], b[key]), f"{what}[{key!r}] differ:\n{a[key][:4]}\nvs\n{b[key][:4]}"


def assert_frequency(values, p: float, tol: float = 0.03, what: str = "frequency"):
    """The fraction of ones among 0/1 `values` is p ± tol."""
    values = np.asarray(values, dtype=np.float64).ravel()
    assert set(np.unique(values)) <= {0.0, 1.0}, f"{what}: expected 0/1 values, got {np.unique(values)[:10]}"
    freq = values.mean()
    assert abs(freq - p) <= tol, f"{what}: observed {freq:.4f}, expected {p} ± {tol} (n={values.size})"


def assert_uniform(
    values, low: float, high: float, what: str = "values", mean_tol: float = 0.02, end_tol: float = 0.01
):
    """`values` look like U(low, high): inside the range, mean near the middle, min/max near the ends.

    Tolerances are fractions of (high - low).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    width = high - low
    assert values.min() >= low - 1e-6 * max(1.0, abs(low)), f"{what}: min {values.min()} < low {low}"
    assert values.max() <= high + 1e-6 * max(1.0, abs(high)), f"{what}: max {values.max()} > high {high}"
    mid = (low + high) / 2
    assert abs(values.mean() - mid) <= mean_tol * width, f"{what}: mean {values.mean():.4f}, expected {mid:.4f}"
    assert values.min() - low <= end_tol * width, f"{what}: min {values.min():.4f} not near low {low}"
    assert high - values.max() <= end_tol * width, f"{what}: max {values.max():.4f} not near high {high}"
    # A uniform has a quarter of its mass in each quarter of the range.
    quarters = np.histogram(values, bins=4, range=(low, high))[0] / values.size
    assert np.all(np.abs(quarters - 0.25) <= 0.03), f"{what}: quarter masses {quarters}, expected 0.25 each"


def assert_categorical(values, probs, tol: float = 0.03, what: str = "categories"):
    """Integer `values` in [0, len(probs)) with frequencies `probs` ± tol."""
    values = np.asarray(values).ravel()
    assert np.issubdtype(values.dtype, np.integer), f"{what}: expected integers, got {values.dtype}"
    k = len(probs)
    assert values.min() >= 0 and values.max() < k, f"{what}: values outside [0, {k}): {np.unique(values)}"
    freq = np.bincount(values, minlength=k) / values.size
    assert np.all(np.abs(freq - np.asarray(probs)) <= tol), f"{what}: frequencies {freq}, expected {probs} ± {tol}"


def random_images(batch_size=64, size=(32, 32), seed=0) -> np.ndarray:
    """Smooth-ish random float32 images in [0, 1], so geometric ops change them visibly."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (batch_size, size[0] // 4 + 1, size[1] // 4 + 1, 3)).astype(np.float32)
    smooth = tf.image.resize(coarse, size, method="bilinear").numpy()
    noise = rng.uniform(-0.1, 0.1, smooth.shape).astype(np.float32)
    return np.clip(smooth + noise, 0.0, 1.0).astype(np.float32)


def uint8_images(batch_size=64, size=(32, 32), seed=0) -> np.ndarray:
    return np.round(random_images(batch_size, size, seed) * 255).astype(np.uint8)


# --- the contract check ----------------------------------------------------------------------
def _spec_map(op) -> dict:
    specs = op.param_specs()
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)), f"{op!r}: duplicate param keys in param_specs(): {keys}"
    return {s.key: s for s in specs}


def check_specs(op, params: dict, batch_size: int):
    """Keys, shapes, dtypes and value ranges of `params` against `op.param_specs()`.

    Values outside [low, high] are allowed only where they equal the op's identity value
    (e.g. blur sigma 0 recorded by `RandomApply` for images it did not blur).
    """
    specs = _spec_map(op)
    params = to_numpy(params)
    identity = to_numpy(op.identity_params(batch_size))
    assert sorted(params) == sorted(specs), f"{op!r}: param keys {sorted(params)} != spec keys {sorted(specs)}"
    assert sorted(identity) == sorted(specs), f"{op!r}: identity keys {sorted(identity)} != spec keys {sorted(specs)}"
    for key, spec in specs.items():
        value = params[key]
        assert value.shape == (batch_size, *spec.shape), f"{key!r}: shape {value.shape}, spec {spec.shape}"
        assert identity[key].shape == value.shape, f"{key!r}: identity shape {identity[key].shape} vs {value.shape}"
        assert value.dtype == np.dtype(spec.dtype), f"{key!r}: dtype {value.dtype}, spec {spec.dtype}"
        assert identity[key].dtype == value.dtype, f"{key!r}: identity dtype {identity[key].dtype} vs {value.dtype}"
        assert np.all(np.isfinite(value)), f"{key!r}: non-finite values"
        if spec.kind == base.BINARY:
            assert set(np.unique(value)) <= {0.0, 1.0}, f"{key!r}: binary param has values {np.unique(value)}"
        if spec.kind == base.CATEGORICAL:
            assert spec.dtype == "int32", f"{key!r}: categorical params are int32"
        inside = (value >= spec.low - 1e-6) & (value <= spec.high + 1e-6)
        ok = inside | (value == identity[key])
        assert np.all(ok), (
            f"{key!r}: values {value[~ok][:5]} outside the declared range [{spec.low}, {spec.high}] "
            "and not the identity value"
        )


def check_distribution(op, distribution: dict, seed=0, n: int = NUM_SAMPLES):
    """`distribution` maps a key to an expectation over `n` draws of `op.sample(n, seed)`:

    - `("bernoulli", p)`: 0/1 values with P(1) = p;
    - `("uniform", low, high)` or `("uniform", [(low, high) per component])`;
    - `("categorical", probs)`: integer values with these frequencies;
    - a callable `fn(values, params)` that asserts whatever it needs.
    """
    params = to_numpy(op.sample(n, seed))
    check_specs(op, params, n)
    for key, expected in distribution.items():
        values = params[key]
        what = f"{type(op).__name__}[{key!r}]"
        if callable(expected):
            expected(values, params)
        elif expected[0] == "bernoulli":
            assert_frequency(values, expected[1], what=what)
        elif expected[0] == "uniform":
            ranges = expected[1] if len(expected) == 2 else [(expected[1], expected[2])]
            flat = values.reshape(n, -1)
            spec = _spec_map(op)[key]
            lows, highs = zip(*ranges)
            # The declared range is the configured one (or, for a vector param, covers every component's).
            assert spec.low <= min(lows) + 1e-6 and spec.high >= max(highs) - 1e-6, f"{what}: spec range too small"
            if len(ranges) == 1:
                assert np.isclose(spec.low, lows[0]) and np.isclose(spec.high, highs[0]), (
                    f"{what}: param_specs() range [{spec.low}, {spec.high}] != configured {ranges[0]}"
                )
                ranges = ranges * flat.shape[1]
            assert len(ranges) == flat.shape[1], f"{what}: {len(ranges)} ranges for {flat.shape[1]} components"
            for j, (lo, hi) in enumerate(ranges):
                assert_uniform(flat[:, j], lo, hi, what=f"{what}[{j}]")
        elif expected[0] == "categorical":
            assert_categorical(values, expected[1], what=what)
        else:
            raise ValueError(f"unknown expectation {expected!r}")
    return params


def _check_per_image(op, params: dict, batch_size: int, skip=()):
    """Continuous params: the rows that differ from the identity value are all distinct (and there
    are some); binary / categorical: not all rows equal. Keys in `skip` are not checked."""
    identity = to_numpy(op.identity_params(batch_size))
    for key, spec in _spec_map(op).items():
        if key in skip:
            continue
        rows = np.asarray(params[key]).reshape(batch_size, -1)
        if spec.kind == base.CONTINUOUS:
            ident = identity[key].reshape(batch_size, -1)
            drawn = rows[~np.all(rows == ident, axis=1)]
            assert len(drawn) >= 2, f"{key!r}: fewer than two rows differ from the identity value"
            unique = np.unique(drawn, axis=0)
            assert len(unique) == len(drawn), f"{key!r}: only {len(unique)} distinct rows among {len(drawn)} drawn rows"
        else:
            assert len(np.unique(rows, axis=0)) > 1, f"{key!r}: every image of the batch got the same value {rows[0]}"


def _check_tf_data(op, images_u8: np.ndarray, seed: int, batch_size: int, atol: float):
    """Graph mode in tf.data: params equal the eager ones for the same seed; images close."""
    ds = tf.data.Dataset.from_tensor_slices(images_u8).batch(batch_size)  # unknown static batch dim

    def fn(step, batch):
        out, params = op(batch, make_seed(seed, step))
        return out, params

    ds = ds.enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    steps = 0
    for step, (out, params) in enumerate(ds):
        chunk = images_u8[step * batch_size : (step + 1) * batch_size]
        eager_out, eager_params = op(chunk, make_seed(seed, step))
        assert_params_equal(params, eager_params, what=f"tf.data step {step} params vs eager")
        assert out.dtype == tf.float32
        np.testing.assert_allclose(out.numpy(), eager_out.numpy(), atol=atol, err_msg=f"tf.data step {step} images")
        steps += 1
    assert steps == -(-len(images_u8) // batch_size)


def run_op_test(
    op,
    *,
    images=None,
    batch_size: int = 64,
    image_size=(32, 32),
    seed: int = 1,
    other_seed: int = 2,
    constant_keys=(),
    distribution: dict | None = None,
    checks=DEFAULT_CHECKS,
    atol: float = 1e-5,
):
    """Runs the shared contract checks on `op` (see the module docstring).

    Args:
        op: the `Op` under test.
        images: float32 (B, H, W, 3) batch; default: `random_images(batch_size, image_size)`.
        seed, other_seed: two seeds that must give different params.
        constant_keys: keys that legitimately do not vary with the seed or across the batch.
        distribution: expectations for `check_distribution` (only with the "distribution" check).
        checks: which of `ALL_CHECKS` to run.
        atol: tolerance where bit-identity is not promised (batch permutation, tf.data images).
    """
    unknown = set(checks) - set(ALL_CHECKS)
    assert not unknown, f"unknown checks {unknown}"
    if images is None:
        images = random_images(batch_size, image_size)
    images = np.asarray(images)
    b, h, w = images.shape[:3]
    params = op.sample(b, seed, image_size=(h, w))

    if "specs" in checks:
        check_specs(op, params, b)

    if "replay" in checks:
        out1 = op.apply(tf.constant(images), params)
        out2 = op.apply(tf.constant(images), params)
        assert np.array_equal(out1.numpy(), out2.numpy()), "apply is not deterministic for the same params"
        expected_hw = tuple(int(s) for s in op.output_size((h, w)))
        assert tuple(out1.shape) == (b, *expected_hw, 3), f"output shape {out1.shape}, expected {(b, *expected_hw, 3)}"
        assert out1.dtype == tf.float32
        values = out1.numpy()
        assert np.all(np.isfinite(values)), "non-finite output"
        # [0, 1] up to float32 round-off (a blur of pixels at 1.0 may sum to 1.0000002).
        assert values.min() >= -1e-6 and values.max() <= 1 + 1e-6, f"output in [{values.min()}, {values.max()}]"
        called, called_params = op(images, seed)
        assert_params_equal(called_params, params, what="op(images, seed) params vs op.sample(B, seed)")
        assert np.array_equal(called.numpy(), out1.numpy()), "op(images, seed) != op.apply(images, op.sample(...))"
        if tuple(out1.shape) == images.shape:  # the op does change something (else the above is vacuous)
            assert not np.array_equal(out1.numpy(), images), "the op left every image unchanged"

    if "seeds" in checks:
        assert_params_equal(op.sample(b, seed, image_size=(h, w)), params, what="same seed")
        tensor_seed = make_seed(seed, 7)
        assert_params_equal(
            op.sample(b, tensor_seed, image_size=(h, w)),
            op.sample(b, make_seed(seed, 7), image_size=(h, w)),
            "tensor seed",
        )
        other = to_numpy(op.sample(b, other_seed, image_size=(h, w)))
        for key, value in to_numpy(params).items():
            if key in constant_keys:
                continue
            assert not np.array_equal(value, other[key]), f"{key!r}: seeds {seed} and {other_seed} gave the same params"

    if "per_image" in checks:
        _check_per_image(op, to_numpy(params), b, skip=constant_keys)

    if "independence" in checks:
        # Each image is processed with its own row of params only: permuting the batch permutes the output.
        perm = np.random.default_rng(seed).permutation(b)
        out = op.apply(tf.constant(images), params).numpy()
        permuted = op.apply(tf.constant(images[perm]), {k: tf.gather(v, perm) for k, v in params.items()}).numpy()
        np.testing.assert_allclose(permuted, out[perm], atol=atol, err_msg="apply mixes images of a batch")
        single = op.apply(tf.constant(images[3:4]), {k: v[3:4] for k, v in params.items()}).numpy()
        np.testing.assert_allclose(single[0], out[3], atol=atol, err_msg="a batch of one differs from its row")

    if "config" in checks:
        rebuilt = base.from_config(base.serialize(op))
        assert type(rebuilt) is type(op)
        assert rebuilt.get_config() == op.get_config()
        assert_params_equal(rebuilt.sample(b, seed, image_size=(h, w)), params, what="from_config(serialize(op))")

    if "distribution" in checks and distribution is not None:
        check_distribution(op, distribution, seed=seed)

    if "tf_data" in checks:
        images_u8 = np.round(images * 255).astype(np.uint8)
        _check_tf_data(op, images_u8, seed=seed, batch_size=max(1, (b + 2) // 3), atol=atol)
    return params
