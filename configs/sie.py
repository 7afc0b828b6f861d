"""SIE (Garrido, Najman, LeCun, ICML 2023): split invariant-equivariant representations on renders.

On the rendered mini-3DIEBench (pairs = two renders of one object, their relative rotation known):
VICReg with SIE's coefficients (sim 10, std 10, cov 1) on the invariant part, and on the
equivariant part a linear map that a hypernetwork produces from the known relative rotation
(quaternion), regressed onto the other view's equivariant embedding (MSE, factor 0.45).
docs/methods/sie.md says how this composition differs from SIE's code.

    keras-eqssl-train --config=configs/sie.py

SIE's optimizer is Adam at a constant lr 1e-3 with an L2 weight decay of 1e-6 (`main.py`); ours is AdamW
(decoupled 1e-6) with a cosine schedule. `--config.optim.name=adam --config.optim.schedule=constant`
is SIE's but for the 1e-6 L2 term.
"""

from keras_eqssl.default_config import method_config


def get_config():
    c = method_config("vicreg", objectives=("sie",))
    c.model.vicreg.update(dict(sim_weight=10.0, std_weight=10.0, cov_weight=1.0))
    c.data.threedie.rotation = 0.0  # SIE's pairs: the renders as they are (their rotation is the action)
    return c
