"""What resuming a run means when its config changed: each checkpoint records the run's config,
and the next run compares its own against it, field by field.

Every config field has one of three rules (`RESUME_RULES`, first matching prefix wins):

- `"refuse"`: the field shapes the network, its weights' meaning or the batches the run draws
  (`model.*` architecture, `data.*`, `augment.*`, `seed`, `optim.name`, mixed_float16). Resuming
  with a new value would load weights into another network or continue another run:
  `ConfigError`, naming every such field with its old and new value.
- `"apply"`: the field sets how the remaining steps train, not what the weights are
  (`train.steps`, `optim.lr`/`schedule`/`warmup_steps`/`weight_decay`, loss weights and
  temperatures, GTSA's correspondence `warmup_steps`, `train.precision` between float32 and
  mixed_bfloat16). A value a config file derives from another field (`configs/gtsa.py`: both
  warm-ups are 10% of `train.steps`) follows it, and is applied with it. The model and its
  optimizer are rebuilt from the new config and the checkpoint's weights and optimizer state
  (moments, step count) are loaded into them, so the learning-rate schedule (and BYOL's
  momentum schedule) are the new config's, evaluated from the checkpoint's step on. The run
  prints each such change.
- `"ignore"`: the field does not touch training state (`workdir`, logging, progress, `eval.*`, ...).

A key the recorded config lacks (a checkpoint written before the key existed) is compared with
its default in `keras_eqssl.default_config`.

Example:

```python
from keras_eqssl.default_config import get_config
from keras_eqssl.resume import resume_changes

old, new = get_config(), get_config()
new.optim.lr, new.train.steps = 5e-4, 1200
changes = resume_changes(old.to_dict(), new.to_dict())
[(c.key, c.rule) for c in changes]  # [('optim.lr', 'apply'), ('train.steps', 'apply')]
```
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

from keras_eqssl.checkpoints import check_archive, config_path, read_config
from keras_eqssl.errors import ConfigError

# (prefix, rule); the longest matching prefix wins, so a specific key overrides its section.
RESUME_RULES = (
    ("", "refuse"),
    ("workdir", "ignore"),
    ("eval", "ignore"),
    ("train", "ignore"),  # progress, log_every, image_every, resume, overwrite, jit_compile, deterministic
    ("train.checkpoint_every", "ignore"),  # any step resumes: a mid-interval one finishes its interval first
    ("train.steps", "apply"),
    ("train.precision", "apply"),  # float32 <-> mixed_bfloat16; mixed_float16 is refused below
    ("train.accumulate_steps", "apply"),  # the same batches, split into micro-batches
    ("data.threedie.cache_dir", "ignore"),
    ("data.check_decode", "ignore"),  # a check before training, not the data
    ("data.decode_check_limit", "ignore"),
    ("optim.lr", "apply"),
    ("optim.schedule", "apply"),
    ("optim.warmup_steps", "apply"),
    ("optim.weight_decay", "apply"),
)
# Each model kind adds its `resume_rules()`: PairModel's are each invariance loss's
# ("model.invariance.<name>.<argument>", "apply") and each objective's ("model.<name>.<argument>", "apply")
# for their `resume_apply` arguments (temperatures, loss weights, BYOL's base momentum).

# The fields of the pair model's invariance loss before it had its section, `config.model.invariance`:
# a checkpoint whose recorded config has them was written by an older version, and cannot be compared.
FLAT_INVARIANCE_FIELDS = (
    "model.invariance", "model.projector", "model.projector_last_bias", "model.predictor", "model.temperature",
    "model.negatives", "model.projector_last_bn", "model.vicreg", "model.barlow_lambda", "model.byol_momentum",
)  # fmt: skip


def _rules() -> dict[str, str]:
    from keras_eqssl.default_config import registered_model_kinds

    rules = dict(RESUME_RULES)
    for kind in registered_model_kinds().values():
        rules.update(kind.resume_rules())
    return rules


def _flat_invariance_fields(recorded: dict) -> list[str]:
    """The fields of `FLAT_INVARIANCE_FIELDS` a recorded (flattened) config has."""
    return [key for key in recorded if key in FLAT_INVARIANCE_FIELDS or key.startswith("model.vicreg.")]


@dataclasses.dataclass(frozen=True)
class Change:
    """One config field whose value differs from the checkpoint's: `key` ("optim.lr"), `old`, `new`, `rule`."""

    key: str
    old: object
    new: object
    rule: str

    def text(self) -> str:
        return f"{self.key} {self.old!r} -> {self.new!r}"


def rule_for(key: str) -> str:
    """The rule of a dotted config key (see the module doc)."""
    rules = _rules()
    best = max((p for p in rules if p == "" or key == p or key.startswith(p + ".")), key=len)
    return rules[best]


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: tree}


def _normalize(config) -> dict:
    """A config (ConfigDict or dict) as a flat dict of JSON values (tuples become lists)."""
    tree = config.to_dict() if hasattr(config, "to_dict") else config
    return _flatten(json.loads(json.dumps(tree)))


def resume_changes(recorded, current) -> list[Change]:
    """The fields of `current` whose values differ from `recorded` (configs or their dicts), with their rules."""
    from keras_eqssl.default_config import get_config

    defaults = _normalize(get_config())
    old, new = _normalize(recorded), _normalize(current)
    flat = _flat_invariance_fields(old)
    if flat:
        raise ConfigError(
            f"the checkpoint's recorded config has {', '.join(f'config.{k}' for k in flat)}: fields of an older "
            "keras_eqssl, now in config.model.invariance (name, and one section per loss, e.g. "
            "config.model.invariance.vicreg.sim_weight), so this version cannot compare its config; resume it "
            "with the version that wrote it, or train in another workdir"
        )
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in defaults and key not in new:
            continue  # a field this version no longer has (renamed or removed): nothing can set it
        before, after = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if before != after:
            rule = rule_for(key)
            if key == "train.precision" and "mixed_float16" in (before, after):
                rule = "refuse"  # its loss-scale optimizer has other variables
            changes.append(Change(key, before, after, rule))
    return changes


def check_resume(checkpoint: str | os.PathLike, config) -> list[Change]:
    """The changes that resuming `checkpoint` with `config` applies; `ConfigError` for refused ones.

    Returns [] (and changes nothing) when the checkpoint has no recorded config.
    """
    recorded = read_config(checkpoint)
    if recorded is None:
        return []
    changes = resume_changes(recorded, config)
    refused = [c for c in changes if c.rule == "refuse"]
    if refused:
        raise ConfigError(
            f"cannot resume {checkpoint} with this config: {'; '.join(c.text() for c in refused)} changed since it "
            "was written, and that changes the network or the data the run trains on. Restore the old "
            f"value{'s' if len(refused) > 1 else ''} (the checkpoint's config is {config_path(checkpoint)}), or "
            "train in another workdir."
        )
    return [c for c in changes if c.rule == "apply"]


def load_checkpoint_state(model, checkpoint: str | os.PathLike, step: int) -> None:
    """Loads the weights and optimizer state of `checkpoint` into `model` (built and compiled).

    `DamagedCheckpointError` for a file that is not a complete archive (offering the intact
    earlier one); `ConfigError` when the weights do not fit (naming the file) or when the
    optimizer state did not load whole (its step count must come back as `step`): a resume
    never trains from a half-loaded state.
    """
    check_archive(checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(checkpoint)
        except Exception as err:  # Keras raises ValueError/KeyError/... for weights that do not fit
            raise ConfigError(
                f"checkpoint {checkpoint} does not fit the model this config builds ({type(err).__name__}: "
                f"{str(err)[:300]}); train in another workdir, or restore the config it was written with."
            ) from err
    skipped = [str(w.message) for w in caught if "loading" in str(w.message).lower()]
    loaded = int(model.optimizer.iterations.numpy())
    if skipped or loaded != step:
        raise ConfigError(
            f"checkpoint {checkpoint}: the optimizer state did not load (step {loaded}, expected {step}"
            f"{'; ' + skipped[0][:200] if skipped else ''}); was optim.name or the precision changed? "
            "Train in another workdir, or restore the config it was written with."
        )
