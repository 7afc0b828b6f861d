"""Loading PyTorch state dicts: the torch-free reader, and ResNet / ViT / MLP outputs against NumPy.

The checkpoints are written by the test in torch's own file format (`torch_checkpoint_helpers`),
with torchvision / timm names and torch layouts; the NumPy forward passes read those arrays in
torch's layout (NCHW, OIHW, (out, in)), so a transposed or misplaced weight fails.
"""

from __future__ import annotations

import io
import sys
import zipfile

import numpy as np
import pytest
from scipy.special import erf
from torch_checkpoint_helpers import torch_checkpoint_bytes

from keras_eqssl.nn import (
    MLP,
    ResNetBackbone,
    VisionTransformer,
    load_mlp_weights,
    load_resnet_weights,
    load_vit_weights,
    read_state_dict,
    state_dict_from,
)

RNG = np.random.default_rng(0)


def _normal(*shape, scale=0.1):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# --- NumPy references, in torch's layouts ------------------------------------------------------


def _conv(x, w, stride=1, padding=0, bias=None):
    """NCHW input, OIHW kernel, symmetric zero padding (torch.nn.functional.conv2d)."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,ocij->nohw", windows, w)
    return out if bias is None else out + bias[None, :, None, None]


def _bn(x, sd, key, eps=1e-5):
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    mean, var = sd[f"{key}.running_mean"].reshape(shape), sd[f"{key}.running_var"].reshape(shape)
    return (x - mean) / np.sqrt(var + eps) * sd[f"{key}.weight"].reshape(shape) + sd[f"{key}.bias"].reshape(shape)


def _max_pool(x):
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(-1, -2))


def _resnet_forward(sd, x, blocks, stem):
    relu = lambda v: np.maximum(v, 0)
    x = x.transpose(0, 3, 1, 2)
    if stem == "imagenet":
        x = _max_pool(relu(_bn(_conv(x, sd["conv1.weight"], 2, 3), sd, "bn1")))
    else:
        x = relu(_bn(_conv(x, sd["conv1.weight"], 1, 1), sd, "bn1"))
    for stage, n in enumerate(blocks):
        for b in range(n):
            key, stride = f"layer{stage + 1}.{b}", 2 if (stage > 0 and b == 0) else 1
            y = relu(_bn(_conv(x, sd[f"{key}.conv1.weight"], stride, 1), sd, f"{key}.bn1"))
            y = _bn(_conv(y, sd[f"{key}.conv2.weight"], 1, 1), sd, f"{key}.bn2")
            if f"{key}.downsample.0.weight" in sd:
                x = _bn(_conv(x, sd[f"{key}.downsample.0.weight"], stride, 0), sd, f"{key}.downsample.1")
            x = relu(x + y)
    return x.mean(axis=(2, 3))


def _layer_norm(x, sd, key, eps=1e-6):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * sd[f"{key}.weight"] + sd[f"{key}.bias"]


def _linear(x, sd, key):
    return x @ sd[f"{key}.weight"].T + sd[f"{key}.bias"]


def _vit_forward(sd, images, patch, heads, depth):
    x = _conv(images.transpose(0, 3, 1, 2), sd["patch_embed.proj.weight"], patch, 0, sd["patch_embed.proj.bias"])
    n, d = x.shape[:2]
    x = x.reshape(n, d, -1).transpose(0, 2, 1)
    x = np.concatenate([np.broadcast_to(sd["cls_token"], (n, 1, d)), x], axis=1) + sd["pos_embed"]
    hd = d // heads
    for i in range(depth):
        k = f"blocks.{i}"
        qkv = _linear(_layer_norm(x, sd, f"{k}.norm1"), sd, f"{k}.attn.qkv").reshape(n, -1, 3, heads, hd)
        q, kk, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        logits = q @ kk.transpose(0, 1, 3, 2) / np.sqrt(hd)
        att = np.exp(logits - logits.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + _linear((att @ v).transpose(0, 2, 1, 3).reshape(n, -1, d), sd, f"{k}.attn.proj")
        h = _linear(_layer_norm(x, sd, f"{k}.norm2"), sd, f"{k}.mlp.fc1")
        x = x + _linear(0.5 * h * (1 + erf(h / np.sqrt(2))), sd, f"{k}.mlp.fc2")
    x = _layer_norm(x, sd, "norm")
    return x[:, 0], x[:, 1:]


# --- state dicts with torchvision / timm names ------------------------------------------------------


def _bn_entries(key, c):
    return {
        f"{key}.weight": 1 + _normal(c),
        f"{key}.bias": _normal(c),
        f"{key}.running_mean": _normal(c),
        f"{key}.running_var": (0.5 + RNG.random(c)).astype(np.float32),
        f"{key}.num_batches_tracked": np.array(3, np.int64),
    }


def _resnet_state_dict(blocks, widths, stem):
    sd = {"conv1.weight": _normal(widths[0], 3, *((7, 7) if stem == "imagenet" else (3, 3)), scale=0.3)}
    sd.update(_bn_entries("bn1", widths[0]))
    cin = widths[0]
    for stage, (n, c) in enumerate(zip(blocks, widths)):
        for b in range(n):
            key = f"layer{stage + 1}.{b}"
            sd[f"{key}.conv1.weight"] = _normal(c, cin, 3, 3, scale=0.3)
            sd.update(_bn_entries(f"{key}.bn1", c))
            sd[f"{key}.conv2.weight"] = _normal(c, c, 3, 3, scale=0.3)
            sd.update(_bn_entries(f"{key}.bn2", c))
            if cin != c or (stage > 0 and b == 0):
                sd[f"{key}.downsample.0.weight"] = _normal(c, cin, 1, 1, scale=0.3)
                sd.update(_bn_entries(f"{key}.downsample.1", c))
            cin = c
    sd["fc.weight"], sd["fc.bias"] = _normal(10, cin), _normal(10)
    return sd


def _vit_state_dict(dim, patch, grid, depth, mlp):
    sd = {
        "patch_embed.proj.weight": _normal(dim, 3, patch, patch),
        "patch_embed.proj.bias": _normal(dim),
        "cls_token": _normal(1, 1, dim),
        "pos_embed": _normal(1, 1 + grid * grid, dim),
        "norm.weight": 1 + _normal(dim),
        "norm.bias": _normal(dim),
    }
    for i in range(depth):
        k = f"blocks.{i}"
        for name, shape in (
            ("norm1", (dim,)),
            ("norm2", (dim,)),
            ("attn.qkv", (3 * dim, dim)),
            ("attn.proj", (dim, dim)),
            ("mlp.fc1", (mlp, dim)),
            ("mlp.fc2", (dim, mlp)),
        ):
            sd[f"{k}.{name}.weight"] = (1 + _normal(*shape)) if name.startswith("norm") else _normal(*shape, scale=0.2)
            sd[f"{k}.{name}.bias"] = _normal(shape[0])
    return sd


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_resnet18_from_a_torch_checkpoint_matches_numpy(stem):
    blocks, widths = [2, 2, 2, 2], [8, 16, 32, 64]
    sd = _resnet_state_dict(blocks, widths, stem)
    checkpoint = read_state_dict(torch_checkpoint_bytes({f"module.backbone.{k}": v for k, v in sd.items()}, "model"))
    weights = state_dict_from(checkpoint)  # finds "model", strips DDP's "module."
    backbone = ResNetBackbone(blocks, stem=stem, width=0.125)
    report = load_resnet_weights(backbone, weights, prefix="backbone.")
    assert not report.missing
    assert report.unused == ["backbone.fc.bias", "backbone.fc.weight"]
    images = RNG.random((2, 32, 32, 3)).astype(np.float32)
    expected = _resnet_forward(sd, images, blocks, stem)
    got = backbone(images, training=False)["pooled"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_vit_from_a_torch_checkpoint_matches_numpy():
    dim, patch, grid, depth, heads, mlp = 32, 8, 4, 2, 2, 64
    sd = _vit_state_dict(dim, patch, grid, depth, mlp)
    weights = state_dict_from(read_state_dict(torch_checkpoint_bytes(sd)))
    vit = VisionTransformer(patch, dim, depth, heads, mlp, image_size=patch * grid)
    report = load_vit_weights(vit, weights)
    assert not report.unused and not report.missing
    images = RNG.random((2, patch * grid, patch * grid, 3)).astype(np.float32)
    cls, tokens = _vit_forward(sd, images, patch, heads, depth)
    out = vit(images, training=False)
    np.testing.assert_allclose(out["pooled"].numpy(), cls, atol=1e-4)
    np.testing.assert_allclose(out["tokens"].numpy(), tokens, atol=1e-4)


def test_mlp_from_a_sequential_state_dict_matches_numpy():
    sd = {"0.weight": _normal(16, 8), "0.bias": _normal(16), "3.weight": _normal(4, 16)}
    sd.update({k.replace("bn", "1"): v for k, v in _bn_entries("bn", 16).items()})
    mlp = MLP([16, 4], use_last_bias=False)
    mlp.build((None, 8))
    load_mlp_weights(mlp, {f"projector.{k}": v for k, v in sd.items()}, prefix="projector.")
    x = _normal(5, 8, scale=1.0)
    expected = np.maximum(_bn(x @ sd["0.weight"].T + sd["0.bias"], sd, "1"), 0) @ sd["3.weight"].T
    np.testing.assert_allclose(mlp(x, training=False).numpy(), expected, atol=1e-5)


def test_a_misfitting_weight_names_the_torch_key():
    sd = _resnet_state_dict([1, 1], [8, 16], "cifar")
    backbone = ResNetBackbone([1, 1], stem="cifar", width=0.25)  # 16, 32 channels: no fit
    with pytest.raises(ValueError, match=r"conv1\.weight: shape"):
        load_resnet_weights(backbone, sd)
    del sd["layer1.0.conv1.weight"]
    with pytest.raises(KeyError, match=r"layer1\.0\.conv1\.weight"):
        load_resnet_weights(ResNetBackbone([1, 1], stem="cifar", width=0.125), sd)


def test_reader_keeps_dtypes_and_refuses_what_is_not_a_checkpoint(tmp_path, monkeypatch):
    sd = {"w": _normal(3, 2), "steps": np.array(4, np.int64), "h": _normal(2).astype(np.float16)}
    path = tmp_path / "ckpt.pth"
    path.write_bytes(torch_checkpoint_bytes(sd))
    read = read_state_dict(path)
    for k, v in sd.items():
        assert read[k].dtype == v.dtype and read[k].shape == v.shape
        np.testing.assert_array_equal(read[k], v)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch
    (tmp_path / "legacy.pth").write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ValueError, match="legacy.pth: not a zip-format torch checkpoint"):
        read_state_dict(tmp_path / "legacy.pth")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        read_state_dict(other.getvalue())


def test_reader_never_runs_unknown_classes():
    payload = b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00echotR."  # os.system("echo")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    read = read_state_dict(buffer.getvalue())
    assert repr(read) == "<unread os.system>"


def test_state_dict_from_says_which_keys_there_are():
    with pytest.raises(KeyError, match=r"'epoch', 'optimizer'"):
        state_dict_from({"epoch": 1, "optimizer": {"lr": 0.1}})
    with pytest.raises(KeyError, match="no entry 'teacher'"):
        state_dict_from({"student": {"w": np.zeros(2)}}, key="teacher")


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_export_cli_serves_the_encoder_of_a_torch_checkpoint(tmp_path):
    """`keras-eqssl-export --torch_checkpoint`: the SavedModel's features are the torch weights' (NumPy)."""
    import json
    import os
    import subprocess

    import tensorflow as tf

    sd = _resnet_state_dict([2, 2, 2, 2], [8, 16, 32, 64], "cifar")
    checkpoint = tmp_path / "official.pth"
    checkpoint.write_bytes(torch_checkpoint_bytes({f"backbone.{k}": v for k, v in sd.items()}, "state_dict"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "keras_eqssl.cli.export", "--config=configs/simclr.py"]
    flags = ["--config.model.width=0.125", f"--torch_checkpoint={checkpoint}", f"--out={tmp_path / 'export'}"]
    out = subprocess.run(command + flags, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "unused: ['backbone.fc.bias', 'backbone.fc.weight']; missing: none" in out.stdout
    meta = json.loads((tmp_path / "export" / "keras_eqssl_export.json").read_text())
    images = RNG.random((2, *meta["image_size"], 3)).astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](images=tf.constant(images))
    expected = _resnet_forward(sd, (images - np.array(meta["mean"])) / np.array(meta["std"]), [2, 2, 2, 2], "cifar")
    np.testing.assert_allclose(served["embedding"].numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    bad = subprocess.run(command + [f"--torch_checkpoint={checkpoint}", f"--out={tmp_path / 'x'}"], cwd=root,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "backbone.conv1.weight: shape (3, 3, 3, 8)" in bad.stderr
