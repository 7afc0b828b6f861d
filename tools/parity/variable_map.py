"""Which Keras variable each torch tensor was loaded into, found by loading tagged tensors.

A loader (`load_resnet_weights`, `load_mlp_weights`, ...) is run once on a state dict whose i-th
float tensor is filled with the number 1000 + i; afterwards every Keras variable it filled holds one
constant, which names its torch key. The parity tools use the map to compare gradients and
stepped weights without writing the name mapping a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def variable_map(
    load: Callable[[Mapping[str, np.ndarray]], object], state_dict: Mapping[str, np.ndarray], variables
) -> dict[str, object]:
    """torch name -> Keras variable, for every float tensor of `state_dict` that `load` assigns.

    Args:
        load: `load(state_dict)`, e.g. `lambda sd: load_resnet_weights(backbone, sd, "backbone.")`.
        state_dict: name -> array (the real weights: the variables are re-loaded from it after).
        variables: the Keras variables `load` may fill (e.g. `model.variables`).

    Returns:
        `{torch_name: keras_variable}`; tensors that landed nowhere are absent.
    """
    names = sorted(k for k, v in state_dict.items() if np.issubdtype(np.asarray(v).dtype, np.floating))
    tagged = dict(state_dict)
    tagged.update({k: np.full(np.shape(state_dict[k]), 1000 + j, np.float32) for j, k in enumerate(names)})
    load(tagged)
    found = {}
    for variable in variables:
        value = np.asarray(variable)
        if value.size == 0:
            continue
        tag = float(value.flat[0])
        if tag >= 1000 and tag == round(tag) and np.all(value == tag) and int(tag) - 1000 < len(names):
            found[names[int(tag) - 1000]] = variable
    load(state_dict)
    return found
