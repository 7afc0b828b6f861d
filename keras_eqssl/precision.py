"""The training precision (`train.precision`), with `"auto"` resolved for the machine at hand.

Policies (Keras dtype policies; every loss, statistic and logged value stays in float32 under
the mixed ones, see docs/performance.md):

- `"float32"`: everything in float32;
- `"mixed_bfloat16"`: layers compute in bfloat16, variables stay float32. Native on CPUs with
  AVX-512 BF16 or AMX (`/proc/cpuinfo` flags `avx512_bf16`, `amx_bf16`) and on recent GPUs/TPUs;
  on a CPU without them TensorFlow emulates it and it is slower than float32;
- `"mixed_float16"`: float16 compute with dynamic loss scaling (Keras wraps the optimizer); for
  GPUs. A run cannot be resumed across a change to or from it;
- `"auto"` (the default): `"mixed_bfloat16"` on a CPU-only machine whose CPU has bf16
  instructions (1.01-1.56x faster than float32 per ResNet step on a 2-core AMD EPYC with
  avx512_bf16: docs/performance.md), else `"float32"`. GPUs get float32 from `"auto"`: the mixed policies are
  not measured on a GPU here, set one explicitly. The environment variable
  `KERAS_EQSSL_AUTO_PRECISION` (a policy name) overrides what `"auto"` picks (the tests pin
  float32 with it, so that figures do not depend on the CI machine's CPU).

Example:

>>> resolve_precision("float32")
('float32', 'set in the config')
"""

from __future__ import annotations

import os

from keras_eqssl.machine import bf16_support

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
AUTO_ENV = "KERAS_EQSSL_AUTO_PRECISION"


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def auto_precision() -> tuple[str, str]:
    """What `"auto"` means on this machine: `(policy, why)`."""
    forced = os.environ.get(AUTO_ENV, "").strip()
    if forced:
        if forced not in PRECISIONS[1:]:
            raise ValueError(f"{AUTO_ENV}={forced!r}: expected one of {list(PRECISIONS[1:])}")
        return forced, f"{AUTO_ENV}={forced}"
    if _has_gpu():
        return "float32", "auto: a GPU is visible (mixed precision there is not measured; set it explicitly)"
    support = bf16_support()
    native = [flag for flag in ("amx_bf16", "avx512_bf16") if support.get(flag)]
    if native:
        return "mixed_bfloat16", f"auto: the CPU has {' and '.join(native)}"
    return "float32", "auto: the CPU has no bf16 instructions (avx512_bf16, amx_bf16), where bf16 is slower"


def resolve_precision(name: str) -> tuple[str, str]:
    """The Keras dtype policy for `train.precision=name`, and why: `(policy, why)`.

    Raises:
        ValueError: `name` is not one of `PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision. Expected one of {list(PRECISIONS)}. Received: {name!r}")
    if name == "auto":
        return auto_precision()
    return name, "set in the config"
