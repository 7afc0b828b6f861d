"""Config files: every one in configs/ is valid, and bad ones fail naming the field."""

import pytest
from train_helpers import CONFIG_DIR, CONFIG_FILES

from keras_eqssl import default_config
from keras_eqssl.cli._config import load_config_file as load
from keras_eqssl.config_validation import validate
from keras_eqssl.errors import ConfigError

VIEW_CONFIG_FILES = sorted((CONFIG_DIR / "views").glob("*.py"))  # view-only configs (keras-eqssl-views)
METHOD_CONFIGS = {
    f"{m}{suffix}" for m in ("simclr", "byol", "vicreg", "barlow", "simsiam") for suffix in ("", "_recon")
} | {"ciper"}


def test_there_are_config_files():
    assert {p.stem for p in CONFIG_FILES} >= METHOD_CONFIGS  # the 11 of the methods issue
    assert {p.stem for p in VIEW_CONFIG_FILES} >= {"stl", "gtsa", "essl"}


@pytest.mark.parametrize("path", VIEW_CONFIG_FILES, ids=lambda p: p.stem)
def test_view_config_file_is_valid_and_builds_its_policy(path):
    from keras_eqssl.augment.policies import policy_from_config

    config = load(path)
    validate(config)
    assert config.augment.policy == path.stem
    policy_from_config(config.augment)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_method_config_file_is_valid_and_says_what_it_trains(path):
    config = load(path)
    validate(config)
    text = path.read_text()
    assert f"--config=configs/{path.stem}.py" in text  # the command, in the docstring
    from keras_eqssl.methods.objectives.base import enabled_objectives

    # the objectives a config trains are the ones its name says
    expected = {"ciper": ["params"], "augself": ["params"], "stl_augmix": ["stl"]}.get(path.stem)
    if expected is None:
        expected = ["recon"] if path.stem.endswith("_recon") else [n for n in ("stl", "essl", "sie") if n == path.stem]
    assert enabled_objectives(config) == expected


def test_config_name_lists_match_the_registries():
    from keras_eqssl.config_validation import BACKBONE_NAMES
    from keras_eqssl.nn.registry import BACKBONES

    assert set(BACKBONE_NAMES) == set(BACKBONES)


def test_default_config_is_valid():
    validate(default_config.get_config())


def _bad(mutate):
    config = default_config.get_config()
    with config.unlocked():
        mutate(config)
    with pytest.raises(ConfigError) as err:
        validate(config)
    return str(err.value)


def test_unknown_key_is_named_with_a_suggestion():
    msg = _bad(lambda c: c.augment.__setitem__("jiter", {"p": 0.5}))
    assert "config.augment.jiter" in msg and "unknown key" in msg and "config.augment.jitter" in msg


def test_unknown_nested_key():
    msg = _bad(lambda c: c.augment.blur.__setitem__("kernel", 3))
    assert "config.augment.blur.kernel" in msg


def test_wrong_type_is_named():
    config = default_config.get_config()
    schema = default_config.get_config()
    config = config.to_dict()
    config["data"]["batch_size"] = "big"
    import ml_collections

    with pytest.raises(ConfigError, match=r"config.data.batch_size='big': wrong type"):
        validate(ml_collections.ConfigDict(config), schema)


@pytest.mark.parametrize(
    "field, mutate, expect",
    [
        ("augment.jitter.p", lambda c: setattr(c.augment.jitter, "p", 1.5), "probability"),
        ("augment.flip.p", lambda c: setattr(c.augment.flip, "p", -0.1), "probability"),
        ("augment.byol.solarize_p", lambda c: setattr(c.augment.byol, "solarize_p", (0.0, 2.0)), "probability"),
        ("augment.crop.scale", lambda c: setattr(c.augment.crop, "scale", (0.9, 0.1)), "min > max"),
        ("augment.crop.scale", lambda c: setattr(c.augment.crop, "scale", (0.5, 1.2)), "max must be <= 1"),
        ("augment.gtsa.local_scale", lambda c: setattr(c.augment.gtsa, "local_scale", (0.0, 0.3)), "min must be > 0"),
        ("augment.blur.sigma", lambda c: setattr(c.augment.blur, "sigma", (2.0, 0.1)), "min > max"),
        ("augment.policy", lambda c: setattr(c.augment, "policy", "simclear"), "must be one of"),
        ("model.invariance.name", lambda c: setattr(c.model.invariance, "name", "vicregg"), "must be one of"),
        (
            "model.invariance.vicreg.projector_units",
            lambda c: setattr(c.model.invariance.vicreg, "projector_units", "512x512"),
            "joined by '-'",
        ),
        ("model.method", lambda c: setattr(c.model, "method", "pairs"), "must be one of"),
        ("model.split", lambda c: setattr(c.model, "split", (0, 64)), "(0, 0) for no split"),
        ("model.recon.reconstruct", lambda c: setattr(c.model.recon, "reconstruct", "v3"), "must be one of"),
        ("optim.lr", lambda c: setattr(c.optim, "lr", -1.0), "must be > 0"),
        ("train.checkpoint_every", lambda c: setattr(c.train, "checkpoint_every", 7), "must divide"),
        ("data.batch_size", lambda c: setattr(c.data, "batch_size", 0), "positive"),
        ("augment.augmix.severity", lambda c: setattr(c.augment.augmix, "severity", 11), "[1, 10]"),
        ("optim.lr", lambda c: setattr(c.optim, "lr", float("nan")), "finite"),  # NaN passes `lr > 0`'s negation
        ("model.recon.weight", lambda c: setattr(c.model.recon, "weight", float("inf")), "finite"),
        ("augment.blur.sigma", lambda c: setattr(c.augment.blur, "sigma", (0.1, float("nan"))), "finite"),
        ("data.batch_size", lambda c: setattr(c.data, "batch_size", 1), "at least 2 pairs"),
        (
            "model.invariance.simclr.negatives",
            lambda c: setattr(c.model.invariance.simclr, "negatives", "same_view"),
            "must be one of",
        ),
        (
            "model.invariance.simclr.projector_last_bn",
            lambda c: setattr(c.model.invariance.simclr, "projector_last_bn", "layer"),
            "must be one of",
        ),
        (
            "model.invariance.simclr.temperature",
            lambda c: setattr(c.model.invariance.simclr, "temperature", 0.0),
            "> 0",
        ),
        (
            "model.invariance.byol.base_momentum",
            lambda c: setattr(c.model.invariance.byol, "base_momentum", 1.5),
            "probability",
        ),
        ("model.drop_path_rate", lambda c: setattr(c.model, "drop_path_rate", 1.0), "[0, 1)"),
    ],
)
def test_impossible_values_name_the_field(field, mutate, expect):
    msg = _bad(mutate)
    assert f"config.{field}=" in msg and expect in msg
