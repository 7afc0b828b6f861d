"""Checks of single config values, shared by config validation and the registered parts' `config_rules`.

Each check takes a value and returns None when it is good, else a short message that config
validation prefixes with the field, e.g. `config.augment.jitter.p=1.5: a probability must be in [0, 1]`.

Example:
>>> probability(1.5)
'a probability must be in [0, 1]'
>>> units("512-128") is None
True
"""

from __future__ import annotations

from collections.abc import Callable

# The smallest side, in px, of a source image (data.image_size, data.threedie.render_size) and of
# every view (augment.size, augment.gtsa.local_size, augment.essl.size). Below it a crop holds too
# few source pixels to be more than a few flat colours (1 px: one colour, whatever the crop), the
# quarter turns of a rotation-prediction crop are (nearly) the same image, and the views' blur has
# no border to mirror (STL's 9-tap kernel mirrors 4 px).
MIN_SIDE = 8


def probability(v):
    """A probability, or a tuple of them, in [0, 1]."""
    values = v if isinstance(v, (tuple, list)) else (v,)
    if any(not 0.0 <= float(x) <= 1.0 for x in values):
        return "a probability must be in [0, 1]"


def positive_int(v):
    """An int >= 1."""
    if int(v) < 1:
        return "must be a positive integer"


def min_side(what: str) -> Callable:
    def check(v):
        if int(v) < MIN_SIDE:
            return f"must be >= {MIN_SIDE} px: {what}"

    return check


def non_negative_int(v):
    """An int >= 0."""
    if int(v) < 0:
        return "must be >= 0"


def value_range(low=None, high=None, strict_low=False) -> Callable:
    def check(v):
        lo, hi = v
        if lo > hi:
            return "min > max"
        if low is not None and (lo <= low if strict_low else lo < low):
            return f"min must be {'>' if strict_low else '>='} {low}"
        if high is not None and hi > high:
            return f"max must be <= {high}"

    return check


def one_of(choices) -> Callable:
    def check(v):
        if v not in choices:
            return f"must be one of {tuple(choices)}"

    return check


def units(v):
    """MLP units joined by '-' (e.g. '2048-2048-256'), or '' for none."""
    if v == "":
        return None
    try:
        units = [int(u) for u in v.split("-")]
    except ValueError:
        return "must be units joined by '-', e.g. '2048-2048-256'"
    if min(units) < 1:
        return "every unit count must be >= 1"


def names(known, allow_empty: bool = False) -> Callable:
    def check(v):
        names = [n.strip() for n in v.split(",") if n.strip()]
        if not names and not allow_empty:
            return f"must name at least one of {tuple(known)}, comma-separated"
        unknown = [n for n in names if n not in known]
        if unknown:
            return f"unknown {unknown}; choose from {tuple(known)}, comma-separated"

    return check


def section_rules(path: str, part) -> dict[str, Callable]:
    """A `ConfigSection`'s arguments: its `choices`, units strings, weights >= 0, temperatures > 0, momenta in [0, 1]."""
    rules = {}
    for key, default in part.config_arguments().items():
        where = f"{path}.{key}"
        if key in part.choices:
            rules[where] = one_of(part.choices[key])
        elif key == "weight" or key.endswith(("_weight", "_factor")):
            rules[where] = lambda v: "must be >= 0" if v < 0 else None
        elif key == "temperature":
            rules[where] = lambda v: "must be > 0" if v <= 0 else None
        elif key.endswith("momentum"):
            rules[where] = probability
        elif key.endswith("units") and isinstance(default, str):
            rules[where] = units
        elif key.endswith("_size") or key.endswith("_dim"):
            rules[where] = non_negative_int if key.endswith("_size") else positive_int
    return rules
