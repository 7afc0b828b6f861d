"""Tests of the view policies: documented views and params, STL's aligned pairs, GTSA's overlap
boxes (geometry and content), BYOL's asymmetry, E-SSL's rotations, stateless seeding, tf.data."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_frequency, assert_params_equal, assert_uniform, to_numpy, uint8_images

from keras_eqssl.augment.policies import MultiCropPolicy, RotatedCropPolicy, byol, simclr, stl
from keras_eqssl.augment.seeds import make_seed

CHAIN_KEYS = {
    "crop": (4,),
    "crop_scale": (1,),
    "crop_ratio": (1,),
    "flip": (1,),
    "color_applied": (1,),
    "color": (4,),
    "color_order": (4,),
    "grayscale": (1,),
    "blur_applied": (1,),
    "blur": (1,),
}
STL_ALIGNED = ("crop", "crop_scale", "crop_ratio", "color_applied", "color", "color_order", "grayscale")
STL_PER_IMAGE = ("flip", "blur_applied", "blur")
AUGMIX_KEYS = {"augmix_ops": (3, 3), "augmix_mags": (3, 3), "augmix_weights": (3,), "augmix_mix": (1,)}
CROP_KEYS = {k: CHAIN_KEYS[k] for k in ("crop", "crop_scale", "crop_ratio")}
NUM_LOCAL = 2
GTSA_KEYS = {
    **{k: v for k, v in CHAIN_KEYS.items() if k != "flip"},
    "rot90": (1,),
    "overlap": (2 + NUM_LOCAL, 4),
    "overlap_valid": (2 + NUM_LOCAL,),
}


def gtsa(**kwargs):
    return MultiCropPolicy(global_size=16, local_size=8, num_local=NUM_LOCAL, **kwargs)


# (factory, {view: (output side, {key: per-image shape})})
POLICY_CASES = [
    pytest.param(lambda: simclr(16), {"v1": (16, CHAIN_KEYS), "v2": (16, CHAIN_KEYS)}, id="simclr"),
    pytest.param(
        lambda: byol(16),
        {"v1": (16, {**CHAIN_KEYS, "solarize": (1,)}), "v2": (16, {**CHAIN_KEYS, "solarize": (1,)})},
        id="byol",
    ),
    pytest.param(lambda: stl(16), {"v1": (16, CHAIN_KEYS), "v2": (16, CHAIN_KEYS)}, id="stl"),
    pytest.param(
        lambda: stl(16, augmix=True),
        {"v1": (16, {**CHAIN_KEYS, **AUGMIX_KEYS}), "v2": (16, {**CHAIN_KEYS, **AUGMIX_KEYS})},
        id="stl_augmix",
    ),
    pytest.param(
        gtsa, {"g1": (16, GTSA_KEYS), "g2": (16, GTSA_KEYS), "l1": (8, GTSA_KEYS), "l2": (8, GTSA_KEYS)}, id="gtsa"
    ),
    pytest.param(
        lambda: gtsa(pil_ops=True),
        {"g1": (16, GTSA_KEYS), "g2": (16, GTSA_KEYS), "l1": (8, GTSA_KEYS), "l2": (8, GTSA_KEYS)},
        id="gtsa_pil_ops",
    ),
    pytest.param(
        lambda: RotatedCropPolicy(simclr(16), size=8),
        {
            "v1": (16, CHAIN_KEYS),
            "v2": (16, CHAIN_KEYS),
            **{f"rot{k}": (8, {**CROP_KEYS, "rot90": (1,)}) for k in range(4)},
        },
        id="essl",
    ),
]

INT_KEYS = {"color_order", "rot90", "augmix_ops"}


@pytest.mark.parametrize("make_policy, expected", POLICY_CASES)
def test_policy_returns_documented_views_and_params(make_policy, expected):
    policy = make_policy()
    batch = 8
    images = uint8_images(batch, (32, 32))
    views, params = policy(images, seed=0, step=1)
    assert list(views) == list(expected) == policy.view_names()
    assert sorted(params) == sorted(expected)
    specs = policy.param_specs()
    assert sorted(specs) == sorted(expected)
    for view, (side, keys) in expected.items():
        # byol's v1 may leave out `solarize` (it never solarizes); every other key is documented.
        got = set(params[view])
        optional = {"solarize"} if view == "v1" and "solarize" in keys else set()
        assert set(keys) - optional <= got <= set(keys), f"{view}: keys {sorted(got)}, expected {sorted(keys)}"
        image = views[view]
        assert image.shape == (batch, side, side, 3) and image.dtype == tf.float32, f"{view}: {image.shape}"
        assert float(tf.reduce_min(image)) >= -1e-6 and float(tf.reduce_max(image)) <= 1 + 1e-6
        spec_by_key = {s.key: s for s in specs[view]}
        assert set(spec_by_key) == got, f"{view}: param_specs keys {sorted(spec_by_key)} vs params {sorted(got)}"
        for key in got:
            value = params[view][key]
            assert tuple(value.shape) == (batch, *keys[key]), f"{view}[{key!r}]: shape {value.shape}"
            assert value.dtype == (tf.int32 if key in INT_KEYS else tf.float32), f"{view}[{key!r}]: {value.dtype}"
            assert tuple(spec_by_key[key].shape) == keys[key]
            assert value.dtype.name == spec_by_key[key].dtype


@pytest.mark.parametrize("make_policy, expected", POLICY_CASES)
def test_policy_is_stateless(make_policy, expected):
    """Params are a pure function of (seed, step, replica, view): equal across calls, different when
    the step or the replica changes."""
    policy = make_policy()
    images = uint8_images(8, (32, 32))
    views, first = policy(images, seed=3, step=5, replica=1)
    views_again, again = policy(images, seed=3, step=5, replica=1)
    for view in first:
        assert_params_equal(again[view], first[view], what=f"{view} on a second call")
        assert np.array_equal(views[view].numpy(), views_again[view].numpy()), f"{view}: images differ on a second call"
    for change in ({"step": 6, "replica": 1}, {"step": 5, "replica": 2}, {"step": 5, "replica": 1, "seed": 4}):
        kwargs = {"seed": 3, **change}
        _, other = policy(images, **kwargs)
        for view in first:
            differs = [k for k in first[view] if not np.array_equal(first[view][k].numpy(), other[view][k].numpy())]
            assert "crop" in differs, f"{view}: the crop did not change with {change}"
    # Views of one batch draw from different seeds.
    names = list(first)
    assert not np.array_equal(first[names[0]]["crop"].numpy(), first[names[1]]["crop"].numpy())


@pytest.mark.parametrize("make_policy", [lambda: simclr(16), lambda: byol(16)], ids=["simclr", "byol"])
def test_views_policy_uses_the_documented_seed_of_each_view(make_policy):
    """View i of a batch is drawn with make_seed(seed, step, replica, i)."""
    policy = make_policy()
    images = uint8_images(8, (32, 32))
    _, params = policy(images, seed=7, step=11, replica=2)
    for i, view in enumerate(policy.view_names()):
        expected = policy.views[view].sample(8, make_seed(7, 11, 2, i), image_size=(32, 32))
        assert_params_equal(params[view], expected, what=view)


@pytest.mark.parametrize(
    "make_policy",
    [
        lambda: simclr(16),
        lambda: stl(16),
        pytest.param(gtsa, marks=pytest.mark.slow),  # 20 s, mostly tracing 6 crops in tf.data; CI runs it
        lambda: RotatedCropPolicy(simclr(16), size=8),
    ],
    ids=["simclr", "stl", "gtsa", "essl"],
)
def test_policy_in_tf_data_matches_eager(make_policy):
    policy = make_policy()
    images = uint8_images(8, (32, 32))
    ds = tf.data.Dataset.from_tensor_slices(images).batch(4).enumerate()
    ds = ds.map(lambda step, x: policy(x, seed=2, step=step), num_parallel_calls=tf.data.AUTOTUNE)
    for step, (views, params) in enumerate(ds):
        eager_views, eager_params = policy(images[4 * step : 4 * step + 4], seed=2, step=step)
        for view in eager_params:
            assert_params_equal(params[view], eager_params[view], what=f"step {step} {view}")
            np.testing.assert_allclose(views[view].numpy(), eager_views[view].numpy(), atol=1e-5)


# --- SimCLR / BYOL ----------------------------------------------------------------------------
def test_simclr_probabilities():
    params = to_numpy(simclr(16).views["v1"].sample(10_000, 0))
    assert_frequency(params["flip"], 0.5, what="flip")
    assert_frequency(params["color_applied"], 0.8, what="color_applied")
    assert_frequency(params["grayscale"], 0.2, what="grayscale")
    assert_frequency(params["blur_applied"], 0.5, what="blur_applied")
    applied = params["blur_applied"][:, 0] > 0.5
    assert_uniform(params["blur"][applied], 0.1, 2.0, what="blur sigma")


def test_byol_views_differ_in_blur_and_solarize():
    policy = byol(16)
    v1 = to_numpy(policy.views["v1"].sample(10_000, 0))
    v2 = to_numpy(policy.views["v2"].sample(10_000, 1))
    assert np.all(v1.get("solarize", np.zeros(1)) == 0.0), "BYOL v1 never solarizes"
    assert np.all(v1["blur_applied"] == 1.0), "BYOL v1 always blurs"
    assert_frequency(v2["solarize"], 0.2, what="v2 solarize")
    assert_frequency(v2["blur_applied"], 0.1, what="v2 blur_applied")
    # BYOL's jitter: saturation 0.2 (SimCLR: 0.4).
    applied = v1["color_applied"][:, 0] > 0.5
    assert_uniform(v1["color"][applied, 2], 0.8, 1.2, what="BYOL saturation")
    # And v1 images are never solarized: with a constant bright image, v1 stays bright.
    # Solarize runs last, so a bright image (0.94 * brightness >= 0.56) ends below 0.45 only if solarized.
    views, params = policy(np.full((64, 32, 32, 3), 240, np.uint8), seed=0)
    mean_v1 = views["v1"].numpy().mean(axis=(1, 2, 3))
    assert np.all(mean_v1 > 0.45), f"v1 looks solarized: mean values {np.sort(mean_v1)[:5]}"
    mean_v2 = views["v2"].numpy().mean(axis=(1, 2, 3))
    solarized = params["v2"]["solarize"].numpy()[:, 0] > 0.5
    assert solarized.any() and np.array_equal(mean_v2 < 0.45, solarized)


# --- STL --------------------------------------------------------------------------------------
@pytest.mark.parametrize("augmix", [False, True])
def test_stl_pairs_share_aligned_params_only(augmix):
    policy = stl(16, augmix=augmix)
    batch = 32
    _, params = policy(uint8_images(batch, (32, 32)), seed=0)
    aligned = STL_ALIGNED + (tuple(AUGMIX_KEYS) if augmix else ())
    for view, p in params.items():
        p = to_numpy(p)
        for key in aligned:
            assert np.array_equal(p[key][0::2], p[key][1::2]), f"{view}[{key!r}]: rows 2i and 2i+1 differ"
        # Different pairs get different aligned params.
        assert not np.array_equal(p["crop"][0::2][:-1], p["crop"][0::2][1:])
        for key in STL_PER_IMAGE:
            assert not np.array_equal(p[key][0::2], p[key][1::2]), f"{view}[{key!r}]: per-image params are aligned"


def test_stl_aligned_pairs_of_identical_images_give_identical_views():
    policy = stl(16, flip_p=0.0, blur_p=0.0)
    images = uint8_images(8, (32, 32))
    twins = np.repeat(images[:4], 2, axis=0)  # images 2i and 2i+1 equal
    views, _ = policy(twins, seed=1)
    for view, image in views.items():
        image = image.numpy()
        assert np.array_equal(image[0::2], image[1::2]), f"{view}: a pair of equal images gave different views"
        assert not np.allclose(image[0], image[2], atol=1e-3), f"{view}: different pairs gave the same view"


def test_stl_odd_batch_is_an_error():
    policy = stl(16)
    images = uint8_images(7, (32, 32))
    with pytest.raises(ValueError, match=r"even.*\(7, 32, 32, 3\)"):
        policy(images, seed=0)
    # With an unknown static batch size the check runs in the graph.
    fn = tf.function(lambda x: policy(x, seed=0), input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="even"):
        fn(images)


# --- GTSA -------------------------------------------------------------------------------------
def smooth_image(size=64, batch=4):
    """A smooth, non-symmetric colour image (low-frequency sinusoids), uint8."""
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    out = []
    for b in range(batch):
        ph = 0.7 * b
        r = 0.5 + 0.4 * np.sin(2.1 * np.pi * yy + ph) * np.cos(0.8 * np.pi * xx)
        g = 0.5 + 0.4 * np.sin(1.3 * np.pi * xx + 2 * ph + 0.5)
        bl = 0.2 + 0.6 * yy * (1 - 0.5 * xx)
        out.append(np.stack([r, g, bl], axis=-1))
    return np.round(np.clip(np.stack(out), 0, 1) * 255).astype(np.uint8)


def yxyx(crop):
    y0, x0, h, w = np.moveaxis(np.asarray(crop, np.float64), -1, 0)
    return np.stack([y0, x0, y0 + h, x0 + w], axis=-1)


def unrotate_box(box, k):
    """Normalised (y0, x0, y1, x1) in a frame rotated counter-clockwise by k quarter turns -> unrotated frame.

    A counter-clockwise quarter turn moves the point (y, x) to (1 - x, y); its inverse maps (y, x) to (x, 1 - y).
    """
    corners = np.array([[box[0], box[1]], [box[0], box[3]], [box[2], box[1]], [box[2], box[3]]], np.float64)
    for _ in range(int(k) % 4):
        corners = np.stack([corners[:, 1], 1 - corners[:, 0]], axis=1)
    return np.array([corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()])


def test_gtsa_overlap_boxes_map_back_to_the_crop_intersection():
    policy = gtsa(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    batch = 16
    _, params = policy(uint8_images(batch, (48, 48)), seed=0)
    names = policy.view_names()
    p = {v: to_numpy(params[v]) for v in names}
    boxes = {v: yxyx(p[v]["crop"]) for v in names}
    ks = {v: p[v]["rot90"][:, 0] for v in names}
    assert len(set(np.concatenate(list(ks.values())))) == 4
    checked = 0
    for v in names:
        for b in range(batch):
            crop_box = boxes[v][b]
            assert np.all(crop_box >= -1e-6) and np.all(crop_box <= 1 + 1e-6), f"{v}: crop box {crop_box}"
            for j, u in enumerate(names):
                lo = np.maximum(crop_box[:2], boxes[u][b][:2])
                hi = np.minimum(crop_box[2:], boxes[u][b][2:])
                valid = np.all(hi > lo)
                assert p[v]["overlap_valid"][b, j] == float(valid), f"{v}->{u} row {b}: overlap_valid"
                overlap = p[v]["overlap"][b, j]
                if not valid:
                    assert np.all(overlap == 0.0), f"{v}->{u} row {b}: empty overlap must be zeros"
                    continue
                assert np.all(overlap >= -1e-5) and np.all(overlap <= 1 + 1e-5), f"{v}->{u}: box {overlap}"
                assert overlap[0] < overlap[2] and overlap[1] < overlap[3], (
                    f"{v}->{u}: box {overlap} is not (y0, x0, y1, x1)"
                )
                local = unrotate_box(overlap, ks[v][b])
                y0, x0, h, w = p[v]["crop"][b]
                in_image = np.array([y0 + local[0] * h, x0 + local[1] * w, y0 + local[2] * h, x0 + local[3] * w])
                np.testing.assert_allclose(
                    in_image, np.r_[lo, hi], atol=1e-5, err_msg=f"{v}->{u} row {b}, k={ks[v][b]}"
                )
                checked += 1
                if u == v:
                    np.testing.assert_allclose(overlap, [0, 0, 1, 1], atol=1e-6)
    assert checked > batch * len(names) * 2


def test_gtsa_overlap_rule():
    policy = MultiCropPolicy(global_size=16, local_size=8, num_local=4, min_overlap_global=0.05, min_overlap_local=0.01)
    _, params = policy(uint8_images(32, (32, 32)), seed=1)
    boxes = {v: yxyx(params[v]["crop"].numpy()) for v in policy.view_names()}

    def area(a, b):
        extent = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
        return extent[:, 0] * extent[:, 1]

    assert np.mean(area(boxes["g1"], boxes["g2"]) > 0.05) >= 0.9
    for n in ("l1", "l2", "l3", "l4"):
        assert np.mean(np.minimum(area(boxes[n], boxes["g1"]), area(boxes[n], boxes["g2"])) > 0.01) >= 0.9


def inset(box, fraction=1e-3):
    box = np.asarray(box, np.float64)
    pad = fraction * np.r_[box[2:] - box[:2], box[:2] - box[2:]]
    return (box + pad).astype(np.float32)


def test_gtsa_overlap_content_matches_between_views():
    """The pixels of a global view inside its overlap box with a local view, resized (and turned by the
    difference of their rotations), approximately equal the local view's pixels inside its overlap box."""
    policy = MultiCropPolicy(
        global_size=32, local_size=16, num_local=3, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, min_overlap_local=0.02
    )
    names = policy.view_names()
    views, params = policy(smooth_image(64, batch=4), seed=4)
    views = {v: views[v].numpy() for v in names}
    p = {v: to_numpy(params[v]) for v in names}
    size = 8
    errors, wrong = [], []
    for gi, g in enumerate(names[:2]):
        for li, loc in enumerate(names[2:], start=2):
            for b in range(4):
                if not p[g]["overlap_valid"][b, li]:
                    continue
                # Inset both boxes by the same fraction: a sample a hair past the last pixel centre would
                # read crop_and_resize's extrapolation value (0).
                box_g, box_l = inset(p[g]["overlap"][b, li]), inset(p[loc]["overlap"][b, gi])
                patch_g = tf.image.crop_and_resize(views[g][b : b + 1], box_g[None], [0], [size, size]).numpy()[0]
                patch_l = tf.image.crop_and_resize(views[loc][b : b + 1], box_l[None], [0], [size, size]).numpy()[0]
                turn = (p[loc]["rot90"][b, 0] - p[g]["rot90"][b, 0]) % 4
                errors.append(np.abs(np.rot90(patch_g, turn, axes=(0, 1)) - patch_l).mean())
                wrong.append(np.abs(np.rot90(patch_g, turn + 1, axes=(0, 1)) - patch_l).mean())
    assert len(errors) >= 12, "too few overlapping pairs to test"
    errors, wrong = np.array(errors), np.array(wrong)
    assert errors.max() < 0.02, f"overlap patches differ: mean abs errors {np.round(errors, 3)}"
    assert wrong.mean() > 3 * errors.mean(), "the check cannot tell the right rotation from a wrong one"


# --- E-SSL ------------------------------------------------------------------------------------
def test_essl_rotated_views_are_rot90_of_rot0():
    base = simclr(16)
    policy = RotatedCropPolicy(base, size=8, scale=(0.05, 0.14))
    images = uint8_images(8, (32, 32))
    views, params = policy(images, seed=3, step=2)
    rot0 = views["rot0"].numpy()
    crop = params["rot0"]["crop"].numpy()
    for k in range(4):
        assert np.array_equal(views[f"rot{k}"].numpy(), np.rot90(rot0, k, axes=(1, 2))), f"rot{k}"
        assert np.array_equal(params[f"rot{k}"]["crop"].numpy(), crop)
        assert np.all(params[f"rot{k}"]["rot90"].numpy() == k)
    scale = params["rot0"]["crop_scale"].numpy()
    assert scale.min() >= 0.05 - 1e-6 and scale.max() <= 0.14 + 1e-6
    # The base views are the base policy's views for the same (seed, step, replica).
    base_views, base_params = base(images, seed=3, step=2)
    for v in ("v1", "v2"):
        assert_params_equal(params[v], base_params[v], what=v)
        assert np.array_equal(views[v].numpy(), base_views[v].numpy())


def test_gtsa_pil_ops_uses_the_pil_conventions():
    policy = gtsa(pil_ops=True)
    jitter, _, blur = (op.op if hasattr(op, "op") else op for op in policy.colour.ops)
    assert policy.global_crop.convention == policy.local_crop.convention == "torchvision"
    assert jitter.convention == "pil" and blur.truncate == 3.0 and blur.padding == "symmetric"
    assert gtsa().global_crop.convention != "torchvision"
