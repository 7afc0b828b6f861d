"""The `teacher_student` model kind's side of a run config: its section, checks, resume rules, name and model.

`TeacherStudentModel` exposes these functions as classmethods (`cls` is the model class);
`config.model.teacher_student` holds the model's own fields and one section per registered part.
"""

from __future__ import annotations

from collections.abc import Callable

from keras_eqssl.methods.teacher_student.term import TERMS

SECTION = "teacher_student"
# The model's own fields of the section, with their defaults; every other key is a part's section.
MODEL_FIELDS = {
    "name": "",  # the run's model name; "" = the parts that are on, joined by "_"
    "momentum": 0.996,  # the EMA teacher's base momentum (cosine to 1)
    "projection_units": 0,  # channels of the dense heads' maps; 0 = 2 x the backbone's width
}


def config_section(cls) -> dict:
    """`config.model.teacher_student`'s defaults: the model's fields and each part's section (weight 0 = off)."""
    return {**MODEL_FIELDS, **{name: term.config_section() for name, term in TERMS.items()}}


def config_rules(cls) -> dict[str, Callable]:
    """`model.teacher_student.<key>` -> a check of its value (a message, or None), the parts' from their classes."""
    from keras_eqssl.config_fields import non_negative_int, probability, section_rules

    rules = {f"model.{SECTION}.momentum": probability, f"model.{SECTION}.projection_units": non_negative_int}
    for name, term in TERMS.items():
        path = f"model.{SECTION}.{name}"
        rules.update(section_rules(path, term))
        rules.update({f"{path}.{key}": rule for key, rule in term.config_rules().items()})
    return rules


def enabled_terms(config) -> list[str]:
    """The short names of the parts `config.model.teacher_student` turns on (weight > 0), in registry order."""
    section = config.model[SECTION]
    return [name for name in TERMS if name in section and section[name].weight > 0]


def config_problems(cls, config) -> list[str]:
    """Multi-crops of the `gtsa` policy, a part on, the parts' own problems, no pair objective."""
    import ml_collections

    problems = []
    if config.augment.policy != "gtsa":
        problems.append(
            f"config.model.method={cls.kind!r} trains on multi-crops: set config.augment.policy='gtsa' "
            f"(received {config.augment.policy!r})"
        )
    enabled = enabled_terms(config)
    if not enabled:
        problems.append(
            f"config.model.{SECTION}: every part's weight is 0; turn one on (GTSA: crop, correspondence, rotation)"
        )
    for name in enabled:
        problems += TERMS[name].config_problems(config)
    model = config.model
    objectives = [name for name in model.keys() if name != SECTION and isinstance(model[name], ml_collections.ConfigDict)
                  and model[name].get("enabled", False)]  # fmt: skip
    if objectives:
        problems.append(
            f"config.model.method={cls.kind!r} does not take the pair objectives {objectives}; set their "
            "config.model.<name>.enabled=False"
        )
    return problems


def batch_problems(cls, config, per_replica_batch: int) -> list[str]:
    """What the parts that are on refuse in a per-replica batch of `per_replica_batch` images (DINO: 1)."""
    return [problem for name in enabled_terms(config) for problem in TERMS[name].batch_problems(per_replica_batch)]


def resume_rules(cls) -> dict[str, str]:
    """`model.teacher_student.<part>.<argument>` -> "apply" for each part's `resume_apply` (the rest is refused)."""
    return {f"model.{SECTION}.{name}.{key}": "apply" for name, term in TERMS.items() for key in term.resume_apply}


def run_name(cls, config) -> str:
    """`config.model.teacher_student.name`, or the parts that are on joined by "_"."""
    return config.model[SECTION].name or "_".join(enabled_terms(config))


def from_run_config(cls, config, backbone, *, mean, std, param_specs=None, synchronized: bool = False):
    """The model of a run config: the parts that are on, in registry order; the views of `config.augment`."""
    section = config.model[SECTION]
    parts = [TERMS[name].from_config_section(section[name], config) for name in enabled_terms(config)]
    return cls(
        backbone,
        parts,
        num_local=config.augment.gtsa.num_local,
        local_size=config.augment.gtsa.local_size,
        projection_units=section.projection_units or None,
        teacher_base_momentum=section.momentum,
        **cls._run_config_kwargs(config, mean=mean, std=std),
    )
