"""Configs whose views a model cannot use whole are refused before any work: a ViT view side that is
not a multiple of the patch size (its border would be ignored), images and views too small to carry
what the objective needs, and a batch of 1 where the loss needs several examples."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli import run_cli
from train_helpers import load_config

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError

MIN_SIDE = 8  # px: the smallest image or view side a config may ask for (config_validation.MIN_SIDE)


def _config(name: str, changes: dict):
    """`configs/<name>.py` with `changes` (flattened keys, e.g. `{"augment.size": 60}`)."""
    config = load_config(name)
    config.update_from_flattened_dict(changes)
    return config


_VIT_PAIR = {"model.backbone": "vit_tiny", "model.split": (16, 16)}


# --- a ViT sees every view whole --------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, changes, named",
    [
        (
            "simclr",
            {**_VIT_PAIR, "augment.size": 12},
            r"'vit_tiny'.*config\.augment\.size=12 \(the views\).*patch size 8.*use 8 or 16",
        ),
        (
            "gtsa",
            {"augment.size": 60},
            r"config\.augment\.size=60 \(the global views\).*ignore the last 4 px; use 56 or 64",
        ),
        (
            "gtsa",
            {"augment.gtsa.local_size": 20},
            r"config\.augment\.gtsa\.local_size=20 \(the local crops\).*use 16 or 24",
        ),
        (
            "essl",
            {"model.backbone": "vit_tiny", "augment.essl.size": 12},
            r"config\.augment\.essl\.size=12 \(the rotated crop\).*use 8 or 16",
        ),
    ],
    ids=["pair_views", "gtsa_global", "gtsa_local", "essl_crop"],
)
def test_a_vit_view_size_that_is_not_a_multiple_of_the_patch_is_refused(name, changes, named):
    with pytest.raises(ConfigError, match=named):
        validate(_config(name, changes))


@pytest.fixture(params=[(60, "augment.size"), (20, "augment.gtsa.local_size")], ids=["global", "local"])
def gtsa_with_bad_size(request):
    size, field = request.param
    return _config("gtsa", {field: size}), field, size


def test_the_factory_refuses_the_same_sizes_naming_the_field(gtsa_with_bad_size):
    from keras_eqssl.methods.factory import model_from_config

    config, field, size = gtsa_with_bad_size
    with pytest.raises(ConfigError, match=rf"config\.{field}={size} .*patch size 8"):
        model_from_config(config)


def test_vit_sizes_that_are_multiples_of_the_patch_pass():
    for config in (_config("simclr", {**_VIT_PAIR, "augment.size": 16}), load_config("gtsa"), get_config()):
        validate(config)
    config = load_config("gtsa")
    config.augment.gtsa.num_local, config.augment.gtsa.local_size = 0, 20  # no local crops: their size is unused
    validate(config)


def test_the_vit_backbone_refuses_inputs_it_would_cut():
    """Called on images whose side is not a multiple of its patch, the ViT raises instead of ignoring the border:
    eagerly, symbolically, and at run time when the size is unknown at trace time."""
    import keras
    import tensorflow as tf

    from keras_eqssl.nn import backbone_from_name

    vit = backbone_from_name("vit_tiny")
    images = np.random.default_rng(0).random((1, 12, 12, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"height: 12 px is not a multiple of the patch size 8.*use 8 or 16"):
        vit(images)
    with pytest.raises(ValueError, match=r"width: 20 px"):
        vit(keras.Input((16, 20, 3)))
    traced = tf.function(lambda x: vit(x)["pooled"], input_signature=[tf.TensorSpec((None, None, None, 3))])
    assert traced(images[:, :8, :8]).shape == (1, 32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of the patch size 8"):
        traced(images)


def test_a_model_with_a_vit_at_a_cut_size_refuses_to_encode_or_build():
    """What export serves (`encoder_outputs` at `model.image_size`) cannot run at a size the ViT would cut,
    and TeacherStudentModel refuses such sizes when it is built."""
    from keras_eqssl.methods import CropTerm, PairModel, SimCLR, TeacherStudentModel
    from keras_eqssl.nn import backbone_from_name

    model = PairModel(backbone_from_name("vit_tiny"), SimCLR(projector_units=[8]), split=None, image_size=12)
    with pytest.raises(ValueError, match="not a multiple of the patch size 8"):
        model.encoder_outputs(np.zeros((1, 12, 12, 3), "float32"))
    with pytest.raises(ValueError, match=r"patch grids.*multiples of its patch size"):
        TeacherStudentModel(backbone_from_name("vit_tiny"), [CropTerm()], num_local=2, image_size=36, local_size=16)
    with pytest.raises(ValueError, match=r"patch grids.*\(local, 12 px\)"):
        TeacherStudentModel(backbone_from_name("vit_tiny"), [CropTerm()], num_local=2, image_size=32, local_size=12)


# --- degenerate views -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config_name, field, named",
    [
        ("essl", "augment.essl.size", "quarter turns"),
        ("augself", "data.image_size", "flat colours"),
        ("stl", "augment.size", "flat colours"),
        ("gtsa", "augment.gtsa.local_size", "quarter turns"),
        ("simclr", "data.threedie.render_size", "renders"),
    ],
)
@pytest.mark.parametrize("side", [1, MIN_SIDE - 1])
def test_images_and_views_below_the_minimum_side_are_refused(config_name, field, named, side):
    with pytest.raises(ConfigError, match=rf"config\.{field}={side}: must be >= {MIN_SIDE} px: .*{named}"):
        validate(_config(config_name, {field: side}))
    validate(_config(config_name, {field: MIN_SIDE}))  # the minimum itself (a multiple of vit_tiny's patch)


def test_the_rotated_crop_policy_refuses_a_one_pixel_crop():
    from keras_eqssl.augment.policies import RotatedCropPolicy
    from keras_eqssl.augment.policies.pairs import simclr

    with pytest.raises(ValueError, match="size must be >= 2: the 4 quarter turns of a 1 px crop are the same image"):
        RotatedCropPolicy(simclr(16), size=1)


# --- a batch of 1 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config_name, named",
    [
        ("gtsa_dino", r"DINO \(config\.model\.teacher_student\.dino\.weight > 0\) needs at least 2 images per batch"),
        ("simclr", r"invariance\.name='simclr': SimCLR needs at least 2 pairs per batch: SimCLR's negatives"),
        ("vicreg", r"invariance\.name='vicreg': VICReg needs at least 2 pairs per batch: VICReg's variance and"),
        ("byol", r"invariance\.name='byol': BYOL needs at least 2 pairs per batch: BYOL's projector"),
    ],
)
def test_a_batch_of_one_names_what_the_method_needs(config_name, named):
    config = load_config(config_name)
    config.data.batch_size = 1
    with pytest.raises(ConfigError, match=rf"config\.data\.batch_size=1: (config\.model\.)?{named}") as raised:
        validate(config)
    others = {"SimCLR", "VICReg", "DINO", "BYOL"} - {w for w in ("SimCLR", "VICReg", "DINO", "BYOL") if w in named}
    assert not [w for w in others if w in str(raised.value)], str(raised.value)


def test_gtsa_without_dino_trains_on_a_batch_of_one():
    """GTSA's crop, correspondence and rotation losses are per image: nothing needs a second one."""
    config = load_config("gtsa")
    config.data.batch_size = 1
    validate(config)


# --- the command line: one line, exit 2 -----------------------------------------------------------------
CLI_CASES = {  # id: (command-line arguments, what the one line names)
    "essl_1px": (
        ["--config=configs/essl.py", "--config.augment.essl.size=1"],
        "config.augment.essl.size=1: must be >= 8 px",
    ),
    "stl_1px": (["--config=configs/stl.py", "--config.augment.size=1"], "config.augment.size=1: must be >= 8 px"),
    "gtsa_vit_60": (
        ["--config=configs/gtsa.py", "--config.augment.size=60"],
        "config.augment.size=60 (the global views)",
    ),
    "dino_batch_1": (
        ["--config=configs/gtsa_dino.py", "--config.data.batch_size=1"],
        "DINO (config.model.teacher_student.dino.weight > 0)",
    ),
}


@pytest.mark.slow  # a process each; the unit tests above check the same messages
@pytest.mark.parametrize("args, named", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_the_train_command_prints_one_line_and_exits_2(tmp_path, args, named):
    result = run_cli("train", *args, f"--config.workdir={tmp_path / 'run'}", "--config.train.steps=1", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert named in lines[-1] and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run").exists()
