"""`train.precision`: what `"auto"` picks, and bf16 training of every method against float32.

The bf16 check (slow) trains every config in configs/ for 50 steps (tiny ResNet/ViT, the rendered
mini-3DIEBench) twice from the same seed, in float32 and in `mixed_bfloat16`, and asks:

- every logged value is finite in bf16;
- the loss curves track: for each of the 5 epoch means (10 steps each) of every term logged,
  `|bf16 - float32| <= REL_TOL * max(|float32|, FLOOR)`.

Why this tolerance (docs/performance.md has the measurement): bfloat16 keeps 8 significant bits,
so each rounding is off by up to 2^-9 = 0.2% and a layer's output by about 1% after the roundings
of a ResNet block; the first step's losses differ by that much. Training then follows a slightly
different trajectory, as any perturbation does. REL_TOL bounds the drift over 50 steps by the
drift measured between two float32 runs whose only difference is the data seed, which is the
noise a user already accepts; FLOOR keeps terms that pass through 0 (an accuracy, a correlation
near zero) from turning an absolute difference of 1e-3 into a large relative one.
"""

from __future__ import annotations

import math

import pytest
from train_helpers import CONFIG_DIR, load_config, tiny

from keras_eqssl import precision
from keras_eqssl.config_validation import validate
from keras_eqssl.precision import AUTO_ENV, PRECISIONS, auto_precision, resolve_precision

CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py"))
REL_TOL = 0.25
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
@pytest.mark.parametrize("name", CONFIGS)
def test_bf16_training_tracks_float32(name, tmp_path, renders):
    f32 = train_history(name, "float32", tmp_path / "f32", renders)
    bf16 = train_history(name, "mixed_bfloat16", tmp_path / "bf16", renders)
    assert sorted(bf16) == sorted(f32)
    assert all(math.isfinite(v) for values in bf16.values() for v in values), bf16
    gaps = relative_gaps(bf16, f32)
    print(name, {k: round(v, 4) for k, v in gaps.items()})
    assert max(gaps.values()) <= REL_TOL, gaps
