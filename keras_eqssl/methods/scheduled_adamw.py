"""AdamW whose weight decay follows a cosine schedule and can skip biases and norms (DINO's and GTSA's recipe)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_eqssl.methods.torch_adam import torch_adam_update
from keras_eqssl.nn.attribute_config import AttributeConfig


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ScheduledAdamW(AttributeConfig, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with a cosine weight-decay schedule and a decay mask for matrices only.

    DINO (Caron et al., ICCV 2021) and GTSA (Kim et al., 2023) raise the weight decay from
    0.04 to 0.4 along a cosine over the run and apply it only to parameters with two or more
    dimensions (kernels, position embeddings), never to biases or normalisation scales:

        wd(k) = end + (start - end) * (1 + cos(pi * min(k / decay_steps, 1))) / 2
        theta <- theta - lr * wd(k) * theta        (decoupled, before the Adam update, as AdamW)

    Per-variable gradient clipping (GTSA clips each parameter's gradient to norm 3) is Keras's
    `clipnorm`, which clips every gradient on its own.

    `torch_epsilon=True` (the default) adds `epsilon` as `torch.optim.AdamW` does, to the
    bias-corrected root `sqrt(v / (1 - beta_2^k))`, with torch's `epsilon=1e-8`
    (`keras_eqssl.methods.torch_adam.torch_adam_update`): DINO's and GTSA's update exactly, and
    with a constant decay `torch.optim.AdamW`'s (`config.optim.name="adamw"` builds this class). Keras adds it to `sqrt(v)` before the correction (`torch_epsilon=False`, Keras'
    1e-7), which at step 1 is an epsilon 1 / sqrt(1 - 0.999) = 32 times larger in torch's terms, so
    parameters whose gradients are tiny (an attention key bias, whose gradient is 0 in exact
    arithmetic) move differently.

    Args:
        learning_rate: float or schedule, as for AdamW.
        weight_decay: the decay at step 0.
        weight_decay_end: the decay at `decay_steps` and after (None: constant `weight_decay`).
        decay_steps: length of the cosine (needed with `weight_decay_end`).
        matrices_only: decay only variables of rank >= 2 that are not biases.
        epsilon: Adam's epsilon (torch's 1e-8 by default).
        torch_epsilon: add `epsilon` after the bias correction, as torch (see above).
        **kwargs: the other `keras.optimizers.AdamW` arguments (`clipnorm`, betas, ...).

    Example:
    >>> import keras, numpy as np
    >>> opt = ScheduledAdamW(1.0, weight_decay=0.1, weight_decay_end=0.3, decay_steps=2, matrices_only=True)
    >>> [round(float(opt.weight_decay_at(k)), 4) for k in (0, 1, 5)]
    [0.1, 0.2, 0.3]
    >>> kernel, bias = keras.Variable(np.ones((2, 2)), name="kernel"), keras.Variable(np.ones(2), name="bias")
    >>> [opt.decays(v) for v in (kernel, bias)]
    [True, False]
    """

    config_attributes = ("weight_decay_end", "decay_steps", "matrices_only", "torch_epsilon")

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay: float = 0.004,
        weight_decay_end: float | None = None,
        decay_steps: int | None = None,
        matrices_only: bool = False,
        epsilon: float = 1e-8,
        torch_epsilon: bool = True,
        **kwargs,
    ):
        if weight_decay < 0 or (weight_decay_end is not None and weight_decay_end < 0):
            raise ValueError(
                f"ScheduledAdamW: weight decays must be >= 0; received weight_decay={weight_decay}, "
                f"weight_decay_end={weight_decay_end}"
            )
        if weight_decay_end is not None and (decay_steps is None or decay_steps < 1):
            raise ValueError(f"ScheduledAdamW: weight_decay_end needs decay_steps >= 1; received {decay_steps}")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon, **kwargs)
        if torch_epsilon and self.amsgrad:
            raise ValueError("ScheduledAdamW: torch_epsilon=True does not support amsgrad")
        self.torch_epsilon = bool(torch_epsilon)
        self.weight_decay_end = None if weight_decay_end is None else float(weight_decay_end)
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.matrices_only = bool(matrices_only)

    def weight_decay_at(self, step):
        """wd(k) as a float32 scalar tensor (the formula above)."""
        start = float(self.weight_decay)
        if self.weight_decay_end is None:
            return ops.convert_to_tensor(start, "float32")
        t = ops.minimum(ops.cast(step, "float32") / float(self.decay_steps), 1.0)
        return self.weight_decay_end + (start - self.weight_decay_end) * (1.0 + ops.cos(math.pi * t)) / 2.0

    def decays(self, variable) -> bool:
        """Whether `variable` gets weight decay (with `matrices_only`: rank >= 2 and not a bias; not excluded)."""
        if self.matrices_only and (len(variable.shape) < 2 or variable.name == "bias"):
            return False
        return self._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if not self.torch_epsilon:
            return super().update_step(gradient, variable, learning_rate)
        torch_adam_update(self, gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        wd = self.weight_decay_at(self.iterations)
        for variable in variables:
            if self.decays(variable):
                lr = ops.cast(self.learning_rate, variable.dtype)
                variable.assign(variable - variable * ops.cast(wd, variable.dtype) * lr)
