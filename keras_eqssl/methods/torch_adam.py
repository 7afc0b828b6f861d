"""Adam and AdamW as `torch.optim.Adam` / `torch.optim.AdamW` compute them: epsilon placement and L2 weight decay."""

from __future__ import annotations

import keras
from keras import ops

WEIGHT_DECAY_MODES = ("coupled", "decoupled")


def torch_adam_update(optimizer: keras.optimizers.Adam, gradient, variable, learning_rate) -> None:
    """One Adam update of `variable` as torch computes it (no weight decay: the caller adds it).

    With t = optimizer.iterations + 1 and the optimizer's moments m, v of `variable`:

        m <- beta_1 m + (1 - beta_1) g
        v <- beta_2 v + (1 - beta_2) g^2
        theta <- theta - lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)

    `keras.optimizers.Adam` adds epsilon to sqrt(v) before the bias correction instead, an
    epsilon 1 / sqrt(1 - beta_2^t) times larger in torch's terms (32x at step 1 with beta_2 0.999).

    Args:
        optimizer: a built `keras.optimizers.Adam` (or subclass) without amsgrad; its moments are used.
        gradient: the gradient of `variable` (weight decay already added where coupled).
        variable: the variable to update.
        learning_rate: the learning rate of this step.
    """
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    step = ops.cast(optimizer.iterations + 1, variable.dtype)
    correction_1 = 1 - ops.power(ops.cast(optimizer.beta_1, variable.dtype), step)
    root_correction_2 = ops.sqrt(1 - ops.power(ops.cast(optimizer.beta_2, variable.dtype), step))
    index = optimizer._get_variable_index(variable)
    m, v = optimizer._momentums[index], optimizer._velocities[index]
    optimizer.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - optimizer.beta_1))
    optimizer.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - optimizer.beta_2))
    denominator = ops.add(ops.divide(ops.sqrt(v), root_correction_2), optimizer.epsilon)
    optimizer.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction_1), denominator))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class TorchAdam(keras.optimizers.Adam):
    """`torch.optim.Adam(lr, betas, eps, weight_decay)` or `torch.optim.AdamW(...)` step for step.

    Two things make Keras' `Adam` / `AdamW` differ from torch's:

    - **epsilon**: torch adds it after the bias correction of the second moment
      (`torch_adam_update`), Keras before (32 times torch's at step 1) and with a default of 1e-7
      (torch: 1e-8). Entries whose gradients are below about 1e-6 move differently.
    - **weight decay**: `torch.optim.Adam(weight_decay=wd)` adds an L2 term to the gradient
      before the moments (`weight_decay_mode="coupled"`, the default here, as SIE's `main.py`):

          g <- g + wd * theta

      `torch.optim.AdamW` (and Keras' `AdamW`) shrink the weights outside the moments, before
      the update (`weight_decay_mode="decoupled"`): theta <- theta - lr * wd * theta.

    Variables excluded with `exclude_from_weight_decay` get no decay in either mode. Gradient
    clipping (`clipnorm`, ...) clips the loss gradient before the L2 term is added, as
    `torch.nn.utils.clip_grad_norm_` before `optimizer.step()`. `config.optim.name="adam"` builds
    this class (`methods.factory.optimizer_from_config`; its L2 term with
    `optim.weight_decay_mode="coupled"`).

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        beta_1, beta_2: the moments' decay rates (torch's betas).
        epsilon: torch's eps (1e-8 by default, torch's default).
        weight_decay: the decay coefficient, >= 0 (0: none).
        weight_decay_mode: "coupled" (torch.optim.Adam's L2 term) or "decoupled" (torch.optim.AdamW).
        **kwargs: the other `keras.optimizers.Optimizer` arguments (`clipnorm`, `name`, ...); no amsgrad.

    Example:
    >>> import keras, numpy as np
    >>> w = keras.Variable(np.array([1.0, -2.0], "float32"))
    >>> opt = TorchAdam(0.1, weight_decay=0.5)  # torch.optim.Adam(lr=0.1, weight_decay=0.5)
    >>> _ = opt.apply_gradients([(np.array([1.0, 1.0], "float32"), w)])
    >>> [round(float(x), 4) for x in np.asarray(w)]  # g + wd * w = (1.5, 0): the first step is lr * sign
    [0.9, -2.0]
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float | None = 0.0,
        weight_decay_mode: str = "coupled",
        **kwargs,
    ):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"TorchAdam: weight_decay_mode must be one of {WEIGHT_DECAY_MODES}; received {weight_decay_mode!r}"
            )
        weight_decay = float(weight_decay or 0.0)
        if not weight_decay >= 0:
            raise ValueError(f"TorchAdam: weight_decay must be >= 0; received {weight_decay}")
        if kwargs.get("amsgrad"):
            raise ValueError("TorchAdam: amsgrad is not supported")
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay or None,
            **kwargs,
        )
        self.weight_decay_mode = weight_decay_mode

    def decays(self, variable) -> bool:
        """Whether `variable` gets weight decay (weight_decay > 0 and not excluded)."""
        return bool(self.weight_decay) and self._use_weight_decay(variable)

    def _apply_weight_decay(self, variables):
        if self.weight_decay_mode == "decoupled":
            super()._apply_weight_decay(variables)  # theta - lr * wd * theta before the update, as torch's AdamW

    def update_step(self, gradient, variable, learning_rate):
        if self.weight_decay_mode == "coupled" and self.decays(variable):
            gradient = ops.add(
                ops.cast(gradient, variable.dtype), ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable)
            )
        torch_adam_update(self, gradient, variable, learning_rate)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("amsgrad", None)
        return {**config, "weight_decay_mode": self.weight_decay_mode}
