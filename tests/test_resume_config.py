"""Resuming a run whose config changed: each checkpoint records the config, and every changed field
is refused (architecture, data), applied (steps, learning rate, loss weights) or ignored (logging)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_eqssl.checkpoints import checkpoint_files, config_path, write_config
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.resume import check_resume, resume_changes, rule_for


def _rules(old, new):
    return {c.key: c.rule for c in resume_changes(old, new)}


def test_each_field_has_the_rule_the_docs_give():
    assert rule_for("model.width") == "refuse"
    assert rule_for("model.split") == "refuse"
    assert rule_for("data.source") == "refuse"
    assert rule_for("augment.crop.scale") == "refuse"
    assert rule_for("seed") == "refuse"
    assert rule_for("optim.name") == "refuse"
    assert rule_for("optim.lr") == "apply"
    assert rule_for("train.steps") == "apply"
    # each invariance loss's `resume_apply` arguments (temperatures, loss weights, momenta), the rest refused
    assert rule_for("model.invariance.vicreg.sim_weight") == "apply"
    assert rule_for("model.invariance.simclr.temperature") == "apply"
    assert rule_for("model.invariance.barlow.lambd") == "apply"
    assert rule_for("model.invariance.byol.base_momentum") == "apply"
    assert rule_for("model.invariance.simclr.projector_units") == "refuse"
    assert rule_for("model.invariance.name") == "refuse"
    assert rule_for("model.method") == "refuse"
    assert rule_for("model.recon.weight") == "apply"
    assert rule_for("model.recon.decoder_dim") == "refuse"  # same prefix, other field
    assert rule_for("train.progress") == "ignore"
    assert rule_for("eval.repeats") == "ignore"
    assert rule_for("workdir") == "ignore"
    # each objective's `resume_apply` arguments (loss weights, temperatures), the rest refused
    assert rule_for("model.stl.trans_weight") == "apply"
    assert rule_for("model.stl.temperature") == "apply"
    assert rule_for("model.stl.projector_units") == "refuse"
    assert rule_for("model.sie.equi_factor") == "apply"
    assert rule_for("model.essl.weight") == "apply"


def test_a_field_this_version_no_longer_has_is_not_a_change():
    old = get_config().to_dict()
    old["model"]["params"]["hidden"] = "256"  # renamed hidden_units when sections came from constructors
    assert resume_changes(old, get_config()) == []


def test_a_checkpoint_with_the_flat_invariance_fields_is_refused_naming_them():
    old = get_config().to_dict()
    sections = old["model"].pop("invariance")  # before config.model.invariance had a section per loss
    old["model"].update(invariance="simclr", temperature=0.5, projector="512-128", vicreg={"sim_weight": 25.0})
    assert "simclr" in sections
    with pytest.raises(ConfigError, match=r"config\.model\.invariance, .*config\.model\.temperature.*older") as raised:
        resume_changes(old, get_config())
    assert "config.model.vicreg.sim_weight" in str(raised.value)
    assert "config.model.invariance.vicreg.sim_weight" in str(raised.value)  # where such a field is now


def test_changes_are_listed_with_old_and_new_values():
    old, new = get_config(), get_config()
    new.model.width, new.optim.lr, new.train.progress = 0.5, 5e-4, False
    new.model.split = (32, 32)
    changes = {c.key: c for c in resume_changes(old, new)}
    assert set(changes) == {"model.width", "model.split", "optim.lr", "train.progress"}
    assert (changes["model.split"].old, changes["model.split"].new) == ([64, 64], [32, 32])
    assert changes["model.width"].rule == "refuse" and changes["optim.lr"].rule == "apply"
    # a key the recorded config lacks (written before it existed) counts as its default
    recorded = get_config().to_dict()
    del recorded["model"]["recon"]["target_code"]
    assert resume_changes(recorded, get_config()) == []
    new = get_config()
    new.model.recon.target_code = True
    assert _rules(recorded, new) == {"model.recon.target_code": "refuse"}


def test_precision_changes_apply_unless_float16_is_involved():
    old, new = get_config(), get_config()
    new.train.precision = "mixed_bfloat16"
    assert _rules(old, new) == {"train.precision": "apply"}
    new.train.precision = "mixed_float16"
    assert _rules(old, new) == {"train.precision": "refuse"}


def test_check_resume_refuses_naming_every_field_and_the_recorded_file(tmp_path):
    checkpoint = tmp_path / "ckpt-00000004.keras"
    written = write_config(checkpoint, get_config())
    assert written == config_path(checkpoint) == tmp_path / "ckpt-00000004.config.json"
    assert json.loads(written.read_text())["model"]["width"] == 0.25
    new = get_config()
    new.model.width, new.data.batch_size, new.optim.lr = 0.5, 32, 1e-4
    with pytest.raises(ConfigError) as err:
        check_resume(checkpoint, new)
    text = str(err.value)
    assert "model.width 0.25 -> 0.5" in text and "data.batch_size 64 -> 32" in text
    assert "optim.lr" not in text and str(written) in text
    new = get_config()
    new.optim.lr, new.train.log_every = 1e-4, 1
    assert [c.key for c in check_resume(checkpoint, new)] == ["optim.lr"]  # log_every: ignored
    assert check_resume(tmp_path / "ckpt-00000008.keras", new) == []  # nothing recorded: nothing to check


def test_a_value_derived_from_train_steps_follows_it_on_resume(tmp_path):
    """configs/gtsa.py derives both warm-ups from train.steps: resuming with new steps applies all three."""
    from train_helpers import load_config

    checkpoint = tmp_path / "ckpt-00000600.keras"
    write_config(checkpoint, load_config("gtsa"))
    longer = load_config("gtsa")
    longer.train.steps = 1200
    changes = {c.key: (c.old, c.new, c.rule) for c in check_resume(checkpoint, longer)}
    assert changes == {
        "train.steps": (600, 1200, "apply"),
        "optim.warmup_steps": (60, 120, "apply"),
        "model.teacher_student.correspondence.warmup_steps": (60, 120, "apply"),
    }
    assert rule_for("model.teacher_student.correspondence.warmup_steps") == "apply"
    assert rule_for("model.teacher_student.dino.units") == "refuse"  # the section's architecture stays refused


def _tiny(workdir, steps):
    config = get_config()
    config.workdir = str(workdir)
    config.data.source = "skimage_photos"
    config.data.num_images = 32
    config.data.image_size = 48
    config.data.batch_size = 8
    config.model.width = 0.0625
    config.model.split = (16, 16)
    config.model.invariance.vicreg.projector_units = "64-64"
    config.model.recon.decoder_dim = 16
    config.train.steps = steps
    config.train.checkpoint_every = 4
    config.train.image_every = 0
    config.train.progress = False
    config.eval.enabled = False
    config.eval.random_init = False
    return config


@pytest.mark.slow
def test_resume_applies_new_steps_and_learning_rate_and_refuses_a_new_width(tmp_path, capsys):
    import keras_eqssl.methods  # noqa: F401  (registers the classes load_model needs)
    from keras_eqssl.cli.train import train

    train(_tiny(tmp_path, steps=4))
    assert [s for s, _ in checkpoint_files(tmp_path / "checkpoints")] == [4]
    assert config_path(tmp_path / "checkpoints" / "ckpt-00000004.keras").exists()
    at_4 = keras.models.load_model(tmp_path / "model.keras")

    wider = _tiny(tmp_path, steps=8)
    wider.model.width = 0.125
    with pytest.raises(ConfigError, match=r"model\.width 0\.0625 -> 0\.125"):
        train(wider)

    # More steps and a lower rate: the old cosine schedule ended at 0 at step 4, so without a
    # rebuilt schedule the four extra steps would leave every weight where it was.
    longer = _tiny(tmp_path, steps=8)
    longer.optim.lr = 5e-4
    capsys.readouterr()
    train(longer)
    out = capsys.readouterr().out
    assert "resuming from step 4" in out
    assert "optim.lr 0.001 -> 0.0005" in out and "train.steps 4 -> 8" in out
    at_8 = keras.models.load_model(tmp_path / "model.keras")
    assert int(at_8.optimizer.iterations.numpy()) == 8
    schedule = at_8.optimizer.get_config()["learning_rate"]["config"]  # the new config's cosine
    assert (schedule["initial_learning_rate"], schedule["decay_steps"]) == (5e-4, 8)
    pairs = list(zip(at_4.backbone.trainable_weights, at_8.backbone.trainable_weights))
    moved = [w.path for w, v in pairs if not np.array_equal(w, v)]
    assert len(moved) > 0.9 * len(pairs)  # with the old schedule: none (BatchNorm statistics aside)
    # the new run recorded its own config and kept the checkpoint it resumed from
    assert [s for s, _ in checkpoint_files(tmp_path / "checkpoints")] == [4, 8]
    recorded = json.loads(config_path(tmp_path / "checkpoints" / "ckpt-00000008.keras").read_text())
    assert recorded["optim"]["lr"] == 5e-4 and recorded["train"]["steps"] == 8


def test_export_names_a_damaged_checkpoint(tmp_path):
    from keras_eqssl.checkpoints import DamagedCheckpointError
    from keras_eqssl.export import load_model

    (tmp_path / "ckpt-00000004.keras").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(DamagedCheckpointError, match=r"ckpt-00000004.keras is damaged.*no intact earlier"):
        load_model(tmp_path)
