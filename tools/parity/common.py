"""Shared parts of the parity tools: the official checkout, torch <-> Keras layouts, and the comparison table.

Each tool in this folder runs one official repository's code (a checkout given with `--official`)
beside ours on the same weights and the same batch, at a tiny size, on CPU, in float32, and
prints one row per compared quantity: the largest absolute difference, the largest difference
relative to the reference's largest magnitude, the tolerance, and whether it holds. `--json PATH`
writes the rows for `tools/parity/make_page.py`, which builds `docs/parity.md`.

Needs torch (`pip install -e ".[parity]"`); the project itself never imports this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable

import numpy as np

from keras_eqssl.machine import cpu_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

LOSS_TOL = 1e-5  # relative, on losses
GRAD_TOL = 1e-4  # relative, on gradients and stepped weights
OUTPUT_TOL = 1e-4  # relative, on backbone outputs (float32 convolutions sum in another order)


def parser(description: str, default_json: str | None = None) -> argparse.ArgumentParser:
    """The flags every parity tool takes: `--official`, `--json`, `--seed`."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, help="a checkout of the official repository (git clone ...)")
    p.add_argument("--json", default=default_json, help="write the rows here (docs/parity/<method>.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")
    return p


def import_official(path: str, *modules: str):
    """Puts the checkout first on `sys.path` and imports `modules` from it; returns them in order."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise SystemExit(f"--official {path}: no such directory (clone the official repository there)")
    sys.path.insert(0, path)
    return [importlib.import_module(m) for m in modules]


def official_commit(path: str) -> str:
    """The checkout's commit, or 'unknown' when it is not a git checkout."""
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def seed_everything(seed: int) -> None:
    import keras
    import torch

    torch.manual_seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    torch.set_num_threads(max(1, os.cpu_count() or 1))


def numpy_state_dict(module) -> dict[str, np.ndarray]:
    """A torch module's state dict as NumPy copies (what `keras_eqssl.nn` loaders take).

    Copies: `tensor.numpy()` shares memory, which an official optimizer step changes in place.
    """
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def randomise_batch_norms(module, seed: int) -> None:
    """BN weight, bias and statistics away from (1, 0, 0, 1): zero-init residual branches would hide errors."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) and m.weight is not None:
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))


def nchw(images: np.ndarray):
    """NHWC NumPy images -> an NCHW float32 torch tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2)))


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def torch_layout(keras_value, torch_shape: tuple[int, ...]) -> np.ndarray:
    """A Keras weight (or its gradient) in torch's layout: conv HWIO -> OIHW, every 2-D kernel (in, out) -> (out, in)."""
    v = np.asarray(keras_value)
    if v.ndim == 4:
        v = v.transpose(3, 2, 0, 1)
    elif v.ndim == 2:
        v = v.T
    return v.reshape(torch_shape)


def keras_layout(torch_value, keras_shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `torch_layout`: OIHW -> HWIO, (out, in) -> (in, out)."""
    v = np.asarray(torch_value)
    if v.ndim == 4:
        v = v.transpose(2, 3, 1, 0)
    elif v.ndim == 2:
        v = v.T
    return v.reshape(keras_shape)


@dataclasses.dataclass
class Row:
    section: str  # "backbone", "loss", "gradients", "step", "augment"
    name: str
    max_abs: float
    max_rel: float
    tol: float
    ok: bool
    note: str = ""


class Comparison:
    """Collects the rows of one parity run and prints / writes them.

    `compare(section, name, ours, theirs, tol)` records `max |ours - theirs|` and that divided by
    `max |theirs|` (so a tolerance is relative to the quantity's scale, not per element, which
    would blow up on near-zero entries). A row over its tolerance fails the run (exit 1) unless it
    carries a `note` that explains the difference (`explained=True`).
    """

    def __init__(self, method: str, official: str, repository: str, command: str):
        self.method, self.repository, self.command = method, repository, command
        self.commit = official_commit(official)
        self.rows: list[Row] = []

    def compare(self, section: str, name: str, ours, theirs, tol: float, note: str = "", explained: bool = False):
        ours, theirs = np.asarray(to_numpy(ours), np.float64), np.asarray(to_numpy(theirs), np.float64)
        if ours.shape != theirs.shape:
            raise ValueError(f"{section}/{name}: ours has shape {ours.shape}, the official {theirs.shape}")
        max_abs = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
        scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
        max_rel = max_abs / scale if scale > 0 else max_abs
        ok = bool(np.isfinite(max_rel) and max_rel <= tol)
        self.rows.append(Row(section, name, max_abs, max_rel, tol, ok or explained, note))
        return max_rel

    def compare_many(
        self,
        section: str,
        pairs: Iterable[tuple[str, object, object]],
        tol: float,
        note: str = "",
        explained: bool = False,
    ):
        """One row for a group (e.g. all gradients): the worst member, named in the note."""
        worst, worst_name, worst_abs = -1.0, "", 0.0
        for name, ours, theirs in pairs:
            ours, theirs = np.asarray(to_numpy(ours), np.float64), np.asarray(to_numpy(theirs), np.float64)
            if ours.shape != theirs.shape:
                raise ValueError(f"{section}/{name}: ours has shape {ours.shape}, the official {theirs.shape}")
            diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
            scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
            rel = diff / scale if scale > 0 else diff
            if rel > worst:
                worst, worst_name, worst_abs = rel, name, diff
        ok = bool(np.isfinite(worst) and worst <= tol)
        label = f"worst: {worst_name}" + (f"; {note}" if note else "")
        self.rows.append(Row(section, "all", worst_abs, worst, tol, ok or explained, label))
        return worst

    def record(
        self, section: str, name: str, max_abs: float, max_rel: float, tol: float, note: str = "", explained=False
    ):
        """A row computed elsewhere (e.g. an augmentation op's pixel difference)."""
        ok = bool(np.isfinite(max_rel) and max_rel <= tol)
        self.rows.append(Row(section, name, float(max_abs), float(max_rel), tol, ok or explained, note))

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def print(self, out=sys.stdout) -> None:
        print(f"{self.method}: {self.repository} @ {self.commit[:12]}  ({cpu_model()})", file=out)
        print(f"{'section':10s} {'quantity':34s} {'max |diff|':>11s} {'relative':>10s} {'tol':>8s}  ok", file=out)
        for r in self.rows:
            print(
                f"{r.section:10s} {r.name:34s} {r.max_abs:11.3e} {r.max_rel:10.2e} {r.tol:8.0e}  "
                f"{'yes' if r.ok else 'NO '} {r.note}",
                file=out,
            )

    def write(self, path: str | None) -> None:
        if not path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        data = dict(
            method=self.method,
            repository=self.repository,
            commit=self.commit,
            command=self.command,
            cpu=cpu_model(),
            torch=_version("torch"),
            tensorflow=_version("tensorflow"),
            rows=[dataclasses.asdict(r) for r in self.rows],
        )
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")

    def finish(self, json_path: str | None) -> int:
        """Prints the table, writes the JSON, returns the exit code (0 when every row holds)."""
        self.print()
        self.write(json_path)
        return 0 if self.ok else 1


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def keras_gradients(loss_fn: Callable[[], object], variables) -> list[np.ndarray]:
    """Gradients of `loss_fn()` with respect to Keras `variables`, as NumPy arrays."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, [v.value if hasattr(v, "value") else v for v in variables])
    return [np.zeros(v.shape, np.float32) if g is None else np.asarray(g) for v, g in zip(variables, grads)]
