"""Paper recipes (configs/papers/): each loads, validates and names its data; each trains 2 steps at a
tiny size on `tfds.testing.mock_data` or a rendered 3DIEBench-format folder and exports its encoder.

Also the parts they need: ImageNet-100's class list, the tfds class filter (`data.tfds_classes`)
and a required config field (a 3DIEBench root given on the command line).
"""

from __future__ import annotations

import re

import pytest
from train_helpers import CONFIG_DIR, mock_prepared_tfds, tiny

from keras_eqssl.cli._config import load_config_file
from keras_eqssl.config_validation import validate
from keras_eqssl.data.imagenet100 import IMAGENET100_WNIDS
from keras_eqssl.errors import ConfigError

PAPER_FILES = sorted(p for p in (CONFIG_DIR / "papers").glob("*.py") if not p.stem.startswith("_"))
IMAGENET100 = ",".join(IMAGENET100_WNIDS)
SMALLEST_OF_FAMILY = {"resnet50": "resnet18", "resnet34": "resnet18", "vit_s16": "vit_tiny", "vit_b16": "vit_tiny"}
# What each file trains on: (data.source, data.tfds_name, data.split, data.tfds_classes)
EXPECTED_DATA = {
    "stl_stl10": ("tfds", "stl10", "train+unlabelled", ""),
    "augself_imagenet100": ("tfds", "imagenet2012", "train", IMAGENET100),
    "recon_imagenet100": ("tfds", "imagenet2012", "train", IMAGENET100),
    "gtsa_imagenet": ("tfds", "imagenet2012", "train", ""),
    "sie_3diebench": ("threedie", "", "train", ""),
    "recon_3diebench": ("threedie", "", "train", ""),
}


def test_there_are_the_paper_recipes():
    assert {p.stem for p in PAPER_FILES} >= set(EXPECTED_DATA)


def test_imagenet100_is_100_unique_wnids():
    assert len(IMAGENET100_WNIDS) == 100 and len(set(IMAGENET100_WNIDS)) == 100
    assert all(re.fullmatch(r"n\d{8}", w) for w in IMAGENET100_WNIDS), IMAGENET100_WNIDS


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.stem)
def test_paper_config_is_valid_and_says_what_it_trains(path, tmp_path):
    config = load_config_file(path)
    text = path.read_text()
    assert f"--config=configs/papers/{path.stem}.py" in text  # the command, in the docstring
    assert "Aims at:" in text and "[INFERRED]" in text
    d = config.data
    if path.stem in EXPECTED_DATA:
        assert (d.source, d.tfds_name, d.split, d.tfds_classes) == EXPECTED_DATA[path.stem]
    assert d.source in ("tfds", "threedie")
    if d.source == "threedie":  # the real 3DIEBench: its root is required, never the rendered mini set
        with pytest.raises(ConfigError, match=r"config\.data\.threedie\.root is required"):
            validate(config)
        config.data.threedie.root = str(tmp_path)
    validate(config)


def test_an_unset_required_field_fails_and_a_set_one_passes():
    from ml_collections import config_dict

    from keras_eqssl.default_config import get_config

    config = get_config()
    config.data.root = config_dict.placeholder(str)
    with pytest.raises(ConfigError, match=r"--config\.data\.root=VALUE"):
        validate(config)
    config.data.root = "somewhere"
    validate(config)


@pytest.mark.slow  # importing tensorflow_datasets: about 3 s
def test_tfds_classes_keeps_and_relabels_the_named_classes():
    from keras_eqssl.data.tfds_source import tfds_images

    with mock_prepared_tfds(64):
        every = [int(e["label"]) for e in tfds_images("mnist", image_size=8).as_numpy_iterator()]
        kept = [int(e["label"]) for e in tfds_images("mnist", image_size=8, classes=("7", "2")).as_numpy_iterator()]
        with pytest.raises(ConfigError, match=r"tfds_classes: tfds dataset 'mnist' has no class named \['eleven'\]"):
            tfds_images("mnist", classes=("2", "eleven"))
    assert kept == [{2: 0, 7: 1}[label] for label in every if label in (2, 7)]
    assert 0 < len(kept) < len(every)


@pytest.mark.slow  # unprepared data: the real error, not mock_data's stand-in
def test_unprepared_tfds_data_still_says_so(tmp_path):
    from keras_eqssl.data.tfds_source import tfds_images

    with pytest.raises(FileNotFoundError, match="'stl10' is not prepared"):
        tfds_images("stl10", "train+unlabelled", data_dir=tmp_path, classes=("airplane",))


@pytest.fixture(scope="module")
def threedie_root(tmp_path_factory):
    """A tiny 3DIEBench-format folder (Pillow JPEGs and latents; no renderer, so no GL before TensorFlow)."""
    from threedie_fixture import write_threedie

    return write_threedie(tmp_path_factory.mktemp("threedie"), num_train=8, num_val=2, num_views=3, size=32)


def _tiny_paper_config(path, workdir, threedie_root):
    """The recipe at toy scale: `train_helpers.tiny` (width 1/16, 32 px, split 16/16) for 2 steps,
    batch 8, narrow heads, 2 local crops of 16 px, and the smallest backbone of the paper's family
    (ResNet-18 for ResNet-50, the tiny ViT for ViT-S/16: tests/test_backbones.py builds those);
    64 px views for ResNets with a stride-32 stem (the reconstruction needs more than one token)."""
    config = tiny(load_config_file(path), workdir, threedie_root, steps=2, every=2)
    config.data.batch_size = 8
    config.augment.gtsa.local_size = 16
    config.augment.gtsa.num_local = min(config.augment.gtsa.num_local, 2)  # GTSA: 8 crops trace 5 s each
    m = config.model
    m.backbone = SMALLEST_OF_FAMILY.get(m.backbone, m.backbone)
    if m.backbone.startswith("resnet") and m.stem != "cifar":
        config.augment.size = 64
    config.train.deterministic = False  # keep the pytest process free of global determinism
    m.teacher_student.dino.units, m.teacher_student.dino.hidden_units = 64, 32
    for section in [m[name] for name in m.keys()] + [m.invariance[name] for name in m.invariance.keys()]:
        if hasattr(section, "keys") and "projector_units" in section:
            section.projector_units = "64-64"
    return config


@pytest.mark.slow  # 20-60 s each on 2 shared cores
@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.stem)
def test_paper_config_trains_2_steps_and_exports(path, tmp_path, threedie_root):
    from keras_eqssl.cli.train import train

    config = _tiny_paper_config(path, tmp_path / "run", threedie_root)
    validate(config)
    with mock_prepared_tfds(200):  # ImageNet-100 keeps about 10% of the mock examples
        metrics = train(config)
    assert len(metrics["history"]["loss"]) == 1 and metrics["steps"] == 2
    assert (tmp_path / "run" / "export" / "saved_model.pb").is_file()
