"""pytest setup shared by the tests and the package's doctests (`--doctest-modules` over keras_eqssl/).

The environment is set here, before anything imports TensorFlow: quiet logs, the TensorFlow backend,
and float32 where `train.precision="auto"` would pick bf16 on CPUs with bf16 instructions, so that the
figures do not depend on the machine (tests/test_precision.py checks "auto" itself).
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["KERAS_EQSSL_AUTO_PRECISION"] = "float32"
# oneDNN off in the test process and the runs it starts (as `train.deterministic=True` sets it): many
# tests compare numbers across processes or replicas to 1e-5 or bit for bit. The tests of oneDNN's
# default and of the deterministic switch clear it for the processes they start.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# Modules that must not be imported while collecting doctests. The command-line apps define absl flags
# at import time, and several of them define the same names (--out, --seed, --config): importing two
# in one process fails. They hold no doctests; tests run them as subprocesses. (keras_eqssl/cli/train.py
# is collected: it has doctests, and the tests import it in-process anyway.)
collect_ignore = [
    "keras_eqssl/cli/evaluate.py",
    "keras_eqssl/cli/export.py",
    "keras_eqssl/cli/render.py",
    "keras_eqssl/cli/views.py",
]
