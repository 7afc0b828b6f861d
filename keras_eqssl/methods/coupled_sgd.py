"""SGD with momentum whose weight decay is an L2 term in the gradient, as `torch.optim.SGD` computes it."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_eqssl")
class CoupledSGD(keras.optimizers.Optimizer):
    """`torch.optim.SGD(lr, momentum, weight_decay, nesterov)` step for step (dampening 0).

    PyTorch adds the weight decay to the gradient before the momentum ("coupled", L2
    regularisation), and keeps a momentum buffer that the current learning rate multiplies:

        g <- g + wd * theta                      (variables `exclude_from_weight_decay` skips: no decay)
        b <- momentum * b + g                    (b starts at 0, so the first step's b is g, as torch's)
        d <- g + momentum * b  if nesterov  else  b
        theta <- theta - lr * d

    `keras.optimizers.SGD(weight_decay=...)` instead shrinks theta by `lr * wd * theta` outside the
    momentum (decoupled, as AdamW), and keeps `lr * g` in its velocity; with momentum 0.9 the
    coupled decay acts about 10x more strongly at equilibrium, and the two differ whenever the
    learning rate changes. The official code of STL, AugSelf and E-SSL train with torch's rule;
    `config.optim.weight_decay_mode="coupled"` picks this class (`methods.factory`).

    Gradient clipping (`clipnorm`, ...) clips the loss gradient before the decay is added, as
    `torch.nn.utils.clip_grad_norm_` before `optimizer.step()` does.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        momentum: in [0, 1); 0 = plain SGD (no buffer).
        nesterov: Nesterov momentum (needs `momentum > 0`).
        weight_decay: the L2 coefficient added to the gradient, >= 0.
        **kwargs: the other `keras.optimizers.Optimizer` arguments (`clipnorm`, `name`, ...).

    Example:
    >>> import keras, numpy as np
    >>> w = keras.Variable(np.array([1.0, -2.0], "float32"))
    >>> opt = CoupledSGD(0.1, momentum=0.9, weight_decay=0.5)
    >>> for _ in range(2):
    ...     _ = opt.apply_gradients([(np.array([1.0, 1.0], "float32"), w)])
    >>> [round(float(x), 4) for x in np.asarray(w)]  # g + wd * w = (1.5, 0), (1.425, 0); b = (1.5, 0), (2.775, 0)
    [0.5725, -2.0]
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        **kwargs,
    ):
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"CoupledSGD: momentum must be in [0, 1); received {momentum}")
        if nesterov and float(momentum) == 0.0:
            raise ValueError("CoupledSGD: nesterov=True needs momentum > 0")
        if weight_decay is None:
            weight_decay = 0.0
        if float(weight_decay) < 0:
            raise ValueError(f"CoupledSGD: weight_decay must be >= 0; received {weight_decay}")
        super().__init__(learning_rate=learning_rate, weight_decay=float(weight_decay), **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum") if self.momentum else []

    def _apply_weight_decay(self, variables):
        """Nothing: the decay is part of the gradient (`update_step`), not a separate shrink."""

    def decays(self, variable) -> bool:
        """Whether `variable` gets the L2 term (weight_decay > 0 and not excluded)."""
        return bool(self.weight_decay) and self._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if self.decays(variable):
            g = ops.add(g, ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable))
        if self.momentum:
            buffer = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(buffer, ops.add(ops.multiply(buffer, momentum), g))
            g = ops.add(g, ops.multiply(buffer, momentum)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(g, lr))

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
