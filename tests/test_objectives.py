"""Every registered objective meets the `run_objective_test` contract (tests/objective_helpers.py).

Each case is a pair of module-level functions: the objective with small heads, and a batch with
what it reads. STL, E-SSL and SIE are added beside the built-in reconstruction and parameter
prediction; every objective in `OBJECTIVES` must have a case here.
"""

from __future__ import annotations

import numpy as np
import pytest
from method_helpers import random_pair_batch
from objective_helpers import check_two_replicas, run_objective_test

from keras_eqssl.methods import ESSL, OBJECTIVES, SIE, STL, CrossAttentionReconstruction, ParameterPrediction


def _quaternions(n: int, rng) -> np.ndarray:
    q = rng.normal(size=(n, 4)).astype("float32")
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def pair_batch(batch: int, size: int) -> dict:
    """Random pair views and a relative rotation (what every case below may read)."""
    rng = np.random.default_rng(batch)
    return random_pair_batch(batch, size, specs={}, rel_rotation=_quaternions(batch, rng))


def rotated_batch(batch: int, size: int) -> dict:
    """`pair_batch` plus E-SSL's views rot0..rot3: one random crop of half the side, k quarter turns."""
    out = pair_batch(batch, size)
    crop = np.random.default_rng(batch + 1).random((batch, size // 2, size // 2, 3)).astype("float32")
    for k in range(4):
        out["views"][f"rot{k}"] = np.ascontiguousarray(np.rot90(crop, k, axes=(1, 2)))
    return out


def make_essl(synchronized: bool):
    return ESSL(hidden_units=[16, 16], synchronized=synchronized)


def make_sie(synchronized: bool):
    return SIE(projector_units=[16, 8], synchronized=synchronized)


def make_recon(synchronized: bool):
    return CrossAttentionReconstruction(target_size=16, decoder_dim=16, decoder_filters=8, synchronized=synchronized)


def make_params(synchronized: bool):
    return ParameterPrediction(targets=["rel_rotation"], hidden_units=[16], synchronized=synchronized)


def make_stl(synchronized: bool):
    return STL(
        projector_units=[16, 8], transform_units=[16, 8], transform_projector_units=[8, 8], synchronized=synchronized
    )


CASES = {
    "essl": (make_essl, rotated_batch),
    "sie": (make_sie, pair_batch),
    "stl": (make_stl, pair_batch),
    "recon": (make_recon, pair_batch),
    "params": (make_params, pair_batch),
}


def test_the_online_probe_is_not_a_config_objective():
    from keras_eqssl.probes.online import OnlineLinearProbe

    assert OnlineLinearProbe.short_name not in OBJECTIVES  # configurable = False


def test_every_registered_objective_has_a_case():
    builtin = {name for name, cls in OBJECTIVES.items() if cls.__module__.startswith("keras_eqssl.")}
    assert builtin <= set(CASES), f"objectives without a run_objective_test case: {sorted(builtin - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_contract(name, tmp_path):
    make_objective, make_batch = CASES[name]
    run_objective_test(make_objective, make_batch, tmp_path, replicas=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_two_replicas_equal_one_device(name):
    """STL's pairs stay on their replica; SIE's, E-SSL's statistics are global (a fresh interpreter each)."""
    make_objective, make_batch = CASES[name]
    check_two_replicas(make_objective, make_batch)
