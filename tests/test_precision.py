"""`train.precision`: what `"auto"` picks, and bf16 training of every method against float32.

The bf16 check (slow) trains one config per method (in CI: one per kind of model; all with
KERAS_EQSSL_FULL_TESTS=1) for 50 steps (tiny ResNet/ViT, the rendered
mini-3DIEBench) twice from the same seed, in float32 and in `mixed_bfloat16`, and asks:

- every logged value is finite in bf16;
- the loss curves track: for each of the 5 epoch means (10 steps each) of every term logged,
  `|bf16 - float32| <= REL_TOL * max(|float32|, FLOOR)`.

Why this tolerance (measured with this setting, docs/performance.md): bfloat16 keeps 8
significant bits, so each rounding is off by up to 2^-9 = 0.2%, and a layer's output by about 1%
after a ResNet block's roundings. Training then follows a slightly different trajectory, as any
perturbation does. Over 50 steps the largest gap between bf16 and float32, over every term, was
0.108 (SimSiam's loss; SimCLR 0.026, BYOL 0.011, STL 0.069, SIE 0.086, GTSA 0.009). Two float32
runs that differ only in the data seed differ by 0.05 (SimCLR) to 2.3 (SimSiam) at their largest
term. REL_TOL = 0.2 allows about 2x the worst bf16 gap measured (a failure means bf16 broke
something, not that it rounded), and it is below the gap a new data seed makes for every method
but SimCLR and STL, whose curves are the smoothest.
FLOOR keeps terms that pass near 0 (an accuracy, a covariance penalty) from turning an
absolute difference of 1e-3 into a large relative one.
"""

from __future__ import annotations

import math
import os

import pytest
from train_helpers import CONFIG_DIR, load_config, tiny

from keras_eqssl import precision
from keras_eqssl.config_validation import validate
from keras_eqssl.precision import AUTO_ENV, PRECISIONS, auto_precision, resolve_precision

# One config per method (the *_recon and stl_augmix variants add no kind of layer or loss).
METHOD_CONFIGS = (
    "simclr", "byol", "vicreg_recon", "barlow", "simsiam", "ciper", "augself", "stl", "essl", "sie", "gtsa", "gtsa_dino",
)  # fmt: skip
# CI trains one method of each kind of model (contrastive, + reconstruction, STL's hypernetwork,
# GTSA's ViT); KERAS_EQSSL_FULL_TESTS=1 trains every config above (about 15 minutes on 2 cores).
CI_METHOD_CONFIGS = ("simclr", "vicreg_recon", "stl", "gtsa")
BF16_CONFIGS = METHOD_CONFIGS if os.environ.get("KERAS_EQSSL_FULL_TESTS") == "1" else CI_METHOD_CONFIGS
REL_TOL = 0.2
FLOOR = 0.1


@pytest.mark.parametrize("name", PRECISIONS[1:])
def test_explicit_precisions_pass_through(name):
    assert resolve_precision(name) == (name, "set in the config")


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="mixed_bf16"):
        resolve_precision("mixed_bf16")


@pytest.mark.parametrize(
    "flags, gpu, expected",
    [
        ({"avx512f": True, "avx512_bf16": True, "amx_bf16": False}, False, "mixed_bfloat16"),
        ({"avx512f": True, "avx512_bf16": False, "amx_bf16": True}, False, "mixed_bfloat16"),
        ({"avx512f": True, "avx512_bf16": False, "amx_bf16": False}, False, "float32"),
        ({"avx512f": False, "avx512_bf16": False, "amx_bf16": False}, False, "float32"),
        ({"avx512f": True, "avx512_bf16": True, "amx_bf16": True}, True, "float32"),
    ],
)
def test_auto_follows_the_hardware(monkeypatch, flags, gpu, expected):
    monkeypatch.delenv(AUTO_ENV, raising=False)
    monkeypatch.setattr(precision, "bf16_support", lambda: flags)
    monkeypatch.setattr(precision, "_has_gpu", lambda: gpu)
    policy, why = auto_precision()
    assert policy == expected
    assert why.startswith("auto:")
    assert resolve_precision("auto") == (policy, why)


def test_auto_can_be_pinned_by_the_environment(monkeypatch):
    monkeypatch.setenv(AUTO_ENV, "mixed_bfloat16")
    assert resolve_precision("auto")[0] == "mixed_bfloat16"
    monkeypatch.setenv(AUTO_ENV, "fp8")
    with pytest.raises(ValueError, match=AUTO_ENV):
        auto_precision()


def test_every_method_config_exists():
    assert set(METHOD_CONFIGS) <= {p.stem for p in CONFIG_DIR.glob("*.py")}


def test_the_default_config_says_auto():
    from keras_eqssl.default_config import get_config

    assert get_config().train.precision == "auto"


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    from keras_eqssl.data.render.dataset import render_dataset

    root = tmp_path_factory.mktemp("m3d")
    render_dataset(root, num_objects=24, views=4, size=32, seed=0, workers=2, progress=False)
    return root


def train_history(name: str, policy: str, workdir, renders) -> dict:
    from keras_eqssl.cli.train import train

    config = tiny(load_config(name), workdir, renders, steps=50, every=10)
    config.train.precision = policy
    config.train.deterministic = False  # keep the pytest process free of global determinism
    validate(config)
    try:
        return train(config)["history"]
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")


def relative_gaps(bf16: dict, f32: dict) -> dict[str, float]:
    """Per term, the largest `|bf16 - f32| / max(|f32|, FLOOR)` over the epoch means."""
    return {
        term: max(abs(b - f) / max(abs(f), FLOOR) for b, f in zip(bf16[term], f32[term], strict=True)) for term in f32
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", BF16_CONFIGS)
def test_bf16_training_tracks_float32(name, tmp_path, renders):
    f32 = train_history(name, "float32", tmp_path / "f32", renders)
    bf16 = train_history(name, "mixed_bfloat16", tmp_path / "bf16", renders)
    assert sorted(bf16) == sorted(f32)
    assert all(math.isfinite(v) for values in bf16.values() for v in values), bf16
    gaps = relative_gaps(bf16, f32)
    print(name, {k: round(v, 4) for k, v in gaps.items()})
    assert max(gaps.values()) <= REL_TOL, gaps
