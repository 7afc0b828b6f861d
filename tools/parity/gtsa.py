"""GTSA parity: our `TeacherStudentModel` with GTSA's parts against the authors' `GTSA` module on the same
weights, views and boxes.

Compares, at a tiny size on CPU in float32 (ViT patch 8, dim 384, depth 2, 6 heads; 2 global views
of 96 px, a 12 x 12 grid, which takes GTSA's "more than 100 tokens" branch, and 2 local views of
48 px, 6 x 6, with resized position embeddings; conv heads of 64 channels):

- augment: the overlap boxes of every (global, other) crop pair in each crop's rotated frame, ours
  (`MultiCropPolicy`'s `overlap`) against `GTSATransforms.calculate_bboxes` on our recorded crops and
  quarter turns; the crop recipe (scales, jitter, blur, grayscale) is listed in docs/methods/gtsa.md;
- backbone: the student ViT's patch tokens on the global and the local views (official weights loaded
  with `load_vit_weights`), the projector, the predictor, the teacher projector, the rotation logits;
- loss: the crop loss (RoIAlign with torchvision's adaptive sampling, kornia's rotation of the
  teacher grid), the patch correspondence, the rotation prediction and the weighted total, fed the
  SAME views and the official boxes and angles made from our recorded crops and rotations;
- gradients: of every student weight (ViT, projector, predictor, rotation head);
- step: one step of the official recipe (per-parameter gradient clipping at 3, AdamW with the lr and
  weight decay of the schedule at that step and no decay on biases and norms), then the EMA
  teacher update with the official momentum; the lr / weight-decay / momentum schedules and the
  weight-decay mask themselves.

The official student has stochastic depth 0.1 (hard-coded in `GTSA.__init__`); the tool sets its
drop probabilities to 0 to compare deterministically (see docs/methods/gtsa.md). The official code
runs on CPU as-is (no `.cuda()` inside the module); `timm` and `kornia` must be installed.

Written against bok3948/GTSA at commit c0dfe2b (model_pretrain/gtsa.py, util/gtsa_transforms.py,
engine_pretrain.py, main_pretrain.py, util/lr_sched.py, util/misc.py). Run:

    python tools/parity/gtsa.py --official <checkout of bok3948/GTSA> --json docs/parity/gtsa.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import numpy as np  # noqa: E402

GTSA_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "gtsa.py")
COMMAND = "python tools/parity/gtsa.py --official <checkout of bok3948/GTSA> --json docs/parity/gtsa.json"
PATCH, DIM, DEPTH, HEADS = 8, 384, 2, 6  # the official rotation head takes 384 inputs: ViT-S's width
GLOBAL, LOCAL, NUM_LOCAL, BATCH, UNITS = 96, 48, 2, 2, 64
# The official schedules at a tiny length: EPOCHS x ITERS steps, WARMUP epochs of lr warm-up, STEP compared.
EPOCHS, ITERS, WARMUP, STEP = 4, 5, 1, 12
BASE_LR, MIN_LR, WD, WD_END, MOMENTUM, CLIP = 1e-3, 1e-6, 0.04, 0.4, 0.996, 3.0


def _vit_entries(vit, prefix: str) -> list[tuple[str, list, object]]:
    """(torch name, our variables, fn(arrays) -> the torch tensor) for every weight of a timm / DINO ViT."""
    dim = vit.hidden_dim
    t_conv = lambda a: a[0].transpose(3, 2, 0, 1)  # noqa: E731
    same = lambda a: a[0]  # noqa: E731
    t_dense = lambda a: a[0].T  # noqa: E731
    emb = vit.get_layer("class_token_position_embedding")
    conv = vit.get_layer("patch_embedding")
    out = [
        (f"{prefix}patch_embed.proj.weight", [conv.kernel], t_conv),
        (f"{prefix}patch_embed.proj.bias", [conv.bias], same),
        (f"{prefix}cls_token", [emb.class_token], same),
        (f"{prefix}pos_embed", [emb.position_embedding], same),
    ]
    for i in range(vit.depth):
        b, key = vit.get_layer(f"block{i}"), f"{prefix}blocks.{i}"
        att = b.attention
        qkv = (att._query_dense, att._key_dense, att._value_dense)
        out += [
            (f"{key}.norm1.weight", [b.norm1.gamma], same),
            (f"{key}.norm1.bias", [b.norm1.beta], same),
            (
                f"{key}.attn.qkv.weight",
                [d.kernel for d in qkv],
                lambda a: np.concatenate([x.reshape(dim, dim).T for x in a], 0),
            ),
            (f"{key}.attn.qkv.bias", [d.bias for d in qkv], lambda a: np.concatenate([x.reshape(dim) for x in a])),
            (f"{key}.attn.proj.weight", [att._output_dense.kernel], lambda a: a[0].reshape(dim, dim).T),
            (f"{key}.attn.proj.bias", [att._output_dense.bias], same),
            (f"{key}.norm2.weight", [b.norm2.gamma], same),
            (f"{key}.norm2.bias", [b.norm2.beta], same),
            (f"{key}.mlp.fc1.weight", [b.mlp_in.kernel], t_dense),
            (f"{key}.mlp.fc1.bias", [b.mlp_in.bias], same),
            (f"{key}.mlp.fc2.weight", [b.mlp_out.kernel], t_dense),
            (f"{key}.mlp.fc2.bias", [b.mlp_out.bias], same),
        ]
    norm = vit.get_layer("norm")
    return out + [(f"{prefix}norm.weight", [norm.gamma], same), (f"{prefix}norm.bias", [norm.beta], same)]


def _head_layers(model, teacher: bool = False) -> list[tuple[str, object, str]]:
    """(torch key, our layer, kind) of the conv heads and the rotation head."""
    projector = model.teacher_projector if teacher else model.projector
    base = "momentum_projector" if teacher else "base_projector"
    out = [(f"{base}.blocks.{i}.0", conv, "conv") for i, conv in enumerate(projector.block_convs)]
    out.append((f"{base}.proj", projector.output_conv, "conv"))
    if teacher:
        return out
    out += [
        ("base_predictor.blocks.0.0", model.predictor.hidden_conv, "conv"),
        ("base_predictor.proj", model.predictor.output_conv, "conv"),
    ]
    mlp, logits = model.part("rotation").head.layers
    # nn.Sequential(Linear, LN, GELU, Linear, LN, GELU, Linear, LN, Linear): Linear 0, 3, 6 and 8; LN 1, 4, 7.
    for j, dense in enumerate(mlp.dense_layers):
        out.append((f"rot_predictor.{3 * j}", dense, "dense"))
        out.append((f"rot_predictor.{3 * j + 1}", mlp.norm_layers[j], "norm"))
    out.append((f"rot_predictor.{3 * len(mlp.dense_layers) - 1}", logits, "dense"))  # no GELU before it
    return out


def _load_heads(model, state_dict) -> object:
    """Official head weights -> ours through `TorchWeightLoader`; returns its report."""
    from keras_eqssl.nn.torch_weights import TorchWeightLoader

    loader = TorchWeightLoader(state_dict)
    for teacher in (False, True):
        for key, layer, kind in _head_layers(model, teacher):
            {"conv": loader.conv2d, "dense": loader.dense, "norm": loader.layer_norm}[kind](layer, key)
    return loader


def _head_entries(model) -> list[tuple[str, list, object]]:
    out = []
    for key, layer, kind in _head_layers(model):
        if kind == "norm":
            out += [(f"{key}.weight", [layer.gamma], lambda a: a[0]), (f"{key}.bias", [layer.beta], lambda a: a[0])]
        else:
            layout = (lambda a: a[0].transpose(3, 2, 0, 1)) if kind == "conv" else (lambda a: a[0].T)
            out += [(f"{key}.weight", [layer.kernel], layout), (f"{key}.bias", [layer.bias], lambda a: a[0])]
    return out


def _teacher_entries(model) -> list[tuple[str, list, object]]:
    out = _vit_entries(model.teacher_backbone, "momentum_encoder.")
    for key, layer, _ in _head_layers(model, teacher=True):
        out += [
            (f"{key}.weight", [layer.kernel], lambda a: a[0].transpose(3, 2, 0, 1)),
            (f"{key}.bias", [layer.bias], lambda a: a[0]),
        ]
    return out


def _assemble(entries, values: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """torch name -> our value in torch's layout, `values` keyed by `id(variable)`."""
    return {name: fn([np.asarray(values[id(v)]) for v in variables]) for name, variables, fn in entries}


def _batch(seed: int):
    """Our multi-crop batch: every crop pair overlaps and some crops are turned."""
    import tensorflow as tf

    from keras_eqssl.augment.policies import MultiCropPolicy

    policy = MultiCropPolicy(global_size=GLOBAL, local_size=LOCAL, num_local=NUM_LOCAL)
    rng = np.random.default_rng(seed)
    coarse = rng.random((BATCH, 12, 12, 3)).astype("float32")
    images = tf.image.resize(coarse, (128, 128), method="bicubic").numpy().clip(0, 1)
    for step in range(100):
        views, params = policy(images, seed=seed, step=step)
        names = policy.view_names()
        valid = all(bool(np.all(params[v]["overlap_valid"].numpy()[:, :2] > 0)) for v in names)
        turns = np.concatenate([params[v]["rot90"].numpy().ravel() for v in names])
        if valid and len(set(turns.tolist())) >= 3:
            return images, {k: v.numpy() for k, v in views.items()}, params, names
    raise RuntimeError("no batch with overlapping crops and varied turns in 100 draws")


def _official_boxes(transforms_module, params, names):
    """`{"gc", "all", "angles"}` as GTSA's data loader batches them, from our crops and turns."""
    import torch

    size = [GLOBAL] * 2 + [LOCAL] * NUM_LOCAL
    tr = transforms_module.GTSATransforms(
        size_crops=[GLOBAL, LOCAL], nmb_crops=[2, NUM_LOCAL], min_scale_crops=[0.3, 0.1], max_scale_crops=[1.0, 0.3]
    )
    gc, otc = [], []
    angles = [[int(params[v]["rot90"].numpy()[b, 0]) * 90 for v in names] for b in range(BATCH)]
    for b in range(BATCH):
        boxes = []
        for v in names:
            y0, x0, h, w = (float(t) for t in params[v]["crop"].numpy()[b])
            boxes.append([x0, y0, x0 + w, y0 + h])  # normalised image units: calculate_bboxes is unit-free
        g, o = tr.calculate_bboxes(torch.tensor(boxes, dtype=torch.float32), angles[b])
        gc.append(g)
        otc.append(o)
    ours_gc = np.stack(
        [
            [
                [_xyxy(params[q]["overlap"].numpy()[b, names.index(v)]) * size[i] for v in names]
                for i, q in enumerate(names[:2])
            ]
            for b in range(BATCH)
        ]
    )
    ours_all = np.stack(
        [
            [[_xyxy(params[v]["overlap"].numpy()[b, iq]) * size[j] for iq in range(2)] for j, v in enumerate(names)]
            for b in range(BATCH)
        ]
    )
    bbox = {"gc": torch.stack(gc), "all": torch.stack(otc)}
    return bbox, angles, ours_gc, ours_all


def _key_bias(qkv_bias: np.ndarray, keep: bool = True) -> np.ndarray:
    """The key third of a fused qkv bias (`keep`), or the query and value thirds."""
    q, k, v = np.split(np.asarray(qkv_bias), 3)
    return k if keep else np.concatenate([q, v])


def _xyxy(yxyx: np.ndarray) -> np.ndarray:
    return np.asarray([yxyx[1], yxyx[0], yxyx[3], yxyx[2]], np.float64)


def _recipe_rows(cmp, transforms_module) -> None:
    """The multi-crop recipe of configs/gtsa.py against GTSATransforms at main_pretrain.py's defaults."""
    from keras_eqssl.augment.policies.factory import policy_from_config
    from keras_eqssl.cli._config import load_config_file

    tr = transforms_module.GTSATransforms(
        size_crops=[224, 96], nmb_crops=[2, 8], min_scale_crops=[0.3, 0.1], max_scale_crops=[1.0, 0.3]
    )
    jitter_apply, grayscale, blur_apply = tr.color_transform.transforms
    cj = tr.color_jitter
    theirs = {
        "global crop scale": tr.rrc_transforms[0].scale,
        "local crop scale": tr.rrc_transforms[-1].scale,
        "crop ratio": tr.rrc_transforms[0].ratio,
        "jitter strength (b, c, s, h)": (cj.brightness[1] - 1, cj.contrast[1] - 1, cj.saturation[1] - 1, cj.hue[1]),
        "p(jitter, grayscale, blur)": (jitter_apply.p, grayscale.p, blur_apply.p),
        "blur sigma": tuple(blur_apply.transforms[0].sigma),
        "min overlap (global, local)": (2 * tr.min_intersection, tr.min_intersection),
    }
    kw = policy_from_config(load_config_file(GTSA_CONFIG).augment).kwargs
    j = kw["jitter"]
    ours = {
        "global crop scale": kw["global_scale"],
        "local crop scale": kw["local_scale"],
        "crop ratio": kw["ratio"],
        "jitter strength (b, c, s, h)": (j["brightness"], j["contrast"], j["saturation"], j["hue"]),
        "p(jitter, grayscale, blur)": (kw["jitter_p"], kw["grayscale_p"], kw["blur_p"]),
        "blur sigma": kw["blur_sigma"],
        "min overlap (global, local)": (kw["min_overlap_global"], kw["min_overlap_local"]),
    }
    for name in theirs:
        cmp.compare(
            "augment",
            f"recipe: {name}",
            np.asarray(ours[name], np.float64),
            np.asarray(theirs[name], np.float64),
            1e-6,
            note="configs/gtsa.py vs GTSATransforms; the same for every view, no flip, no solarize",
        )
    turns = transforms_module.RandomRotationReturnsDegree().degrees
    cmp.compare(
        "augment",
        "recipe: quarter turns (uniform)",
        np.asarray(kw["rotate"] and (0, 90, 180, 270)),
        np.asarray(turns),
        0.0,
    )


def _option_rows(cmp, ours, theirs, normalized, names, x) -> None:
    """Our other settings against the official behaviour, to show each difference by its number."""
    import tensorflow as tf
    import torch
    from torchvision.ops import roi_align as tv_roi_align

    from keras_eqssl.nn import VisionTransformer
    from keras_eqssl.nn.roi_align import roi_align

    vit = ours.backbone
    local = tf.concat([normalized[v] for v in names[2:]], 0)
    with torch.no_grad():
        reference = theirs.base_encoder(torch.cat(x[2:])).numpy()
    for interpolation, explained in (("dino", False), ("tf", True)):
        other = VisionTransformer(**{**vit.get_config(), "position_interpolation": interpolation, "name": "vit_other"})
        other.set_weights(vit.get_weights())
        cmp.compare(
            "backbone",
            f"ViT local tokens, position_interpolation={interpolation!r}",
            other(local)["tokens"],
            reference,
            common.OUTPUT_TOL,
            explained=explained,
            note="tf.image.resize's bicubic (a = -0.5): the option for other ViTs" if explained else "default",
        )

    rng = np.random.default_rng(1)
    fmap = rng.normal(size=(6, 12, 12, 8)).astype("float32")
    lo = rng.uniform(0.0, 0.6, size=(6, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.05, 0.4, size=(6, 2))], 1).astype("float32")  # yxyx, normalised
    tv_boxes = [torch.from_numpy(boxes[i : i + 1, [1, 0, 3, 2]] * 12) for i in range(6)]  # xyxy in cells
    for ratio, aligned, explained in ((-1, True, False), (-1, False, False), (2, True, True)):
        with torch.no_grad():
            t = tv_roi_align(common.nchw(fmap), tv_boxes, output_size=4, sampling_ratio=-1, aligned=aligned).numpy()
        o = roi_align(fmap, boxes, 4, sampling_ratio=ratio, aligned=aligned).numpy().transpose(0, 3, 1, 2)
        cmp.compare(
            "backbone",
            f"roi_align(sampling_ratio={ratio}, aligned={aligned})",
            o,
            t,
            common.OUTPUT_TOL,
            explained=explained,
            note="vs torchvision's roi_align(sampling_ratio=-1), what GTSA calls"
            + ("; 2 was our former fixed count" if explained else ""),
        )

    official_std = np.std(
        np.concatenate(
            [
                p.detach().numpy().ravel()
                for n, p in theirs.base_encoder.named_parameters()
                if n.startswith("blocks.") and n.endswith("weight") and p.ndim == 2
            ]
        )
    )
    for init, explained in (("timm", False), ("glorot", True)):
        fresh = VisionTransformer(**{**vit.get_config(), "init": init, "name": f"vit_{init}"})
        std = np.std(
            np.concatenate(
                [
                    np.ravel(w)
                    for w in fresh.trainable_weights
                    if len(w.shape) >= 2 and "block" in w.path and "kernel" in w.path
                ]
            )
        )
        cmp.compare(
            "backbone",
            f"init std of the block kernels, init={init!r}",
            std,
            official_std,
            0.05,
            explained=explained,
            note=f"distributions: std {std:.4f} vs the official {official_std:.4f}, "
            "tolerance 5% (sampling)" + ("; Keras' Glorot, the former default" if explained else ""),
        )


def main() -> int:
    args = common.parser(__doc__.split("\n")[0]).parse_args()
    import torch

    if "torch._six" not in sys.modules:  # util/misc.py imports `inf` from it; torch 2 has no torch._six
        six = types.ModuleType("torch._six")
        six.inf = math.inf
        sys.modules["torch._six"] = six
    gtsa_mod, misc, lr_sched, transforms_mod = common.import_official(
        args.official, "model_pretrain.gtsa", "util.misc", "util.lr_sched", "util.gtsa_transforms"
    )
    import tensorflow as tf

    from keras_eqssl.cli._config import load_config_file
    from keras_eqssl.methods import (
        CorrespondenceTerm,
        CropTerm,
        RotationTerm,
        ScheduledAdamW,
        TeacherStudentModel,
    )
    from keras_eqssl.methods.factory import optimizer_from_config
    from keras_eqssl.methods.ssl_model import IMAGENET_MEAN, IMAGENET_STD
    from keras_eqssl.nn import VisionTransformer
    from keras_eqssl.nn.torch_weights import load_vit_weights

    common.seed_everything(args.seed)
    cmp = common.Comparison("gtsa", args.official, "bok3948/GTSA", COMMAND)
    total_steps = EPOCHS * ITERS
    grid = GLOBAL // PATCH
    roi_sizes = (round(grid * 10 / 14), round((LOCAL // PATCH) * 4 / 6))  # GTSA's (10, 4) for 14 / 6 grids
    num_matches = ((grid * grid) // 2, (LOCAL // PATCH) ** 2 // 2)  # GTSA's (98, 18): half the student tokens
    official_args = argparse.Namespace(
        num_crops=[2, NUM_LOCAL], roi_out_size=list(roi_sizes), patch_size=PATCH, num_matches=num_matches
    )

    # --- the official model, its stochastic depth off --------------------------------------------
    theirs = gtsa_mod.GTSA(
        img_size=[GLOBAL],
        patch_size=PATCH,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=HEADS,
        projector_dim=DIM,
        out_dim=UNITS,
        predictor_dim=UNITS,
        args=official_args,
    )
    drop_paths = [m for m in theirs.modules() if isinstance(m, gtsa_mod.DropPath)]
    for m in drop_paths:
        m.drop_prob = 0.0
    theirs.train()
    sd = common.numpy_state_dict(theirs)

    # --- ours, the official weights loaded --------------------------------------------------------
    vit = VisionTransformer(patch_size=PATCH, hidden_dim=DIM, depth=DEPTH, num_heads=HEADS, image_size=GLOBAL)
    parts = [
        CropTerm(),
        CorrespondenceTerm(warmup_steps=(WARMUP + 1) * ITERS),
        RotationTerm(units=(2 * DIM, 2 * DIM, 128)),
    ]
    ours = TeacherStudentModel(
        vit,
        parts,
        num_local=NUM_LOCAL,
        image_size=GLOBAL,
        local_size=LOCAL,
        projection_units=UNITS,
        total_steps=total_steps,
        teacher_base_momentum=MOMENTUM,
    )
    crop_roi = ours.part("crop").roi_sizes
    assert tuple(crop_roi) == roi_sizes, (crop_roi, roi_sizes)
    reports = [
        load_vit_weights(ours.backbone, sd, "base_encoder."),
        load_vit_weights(ours.teacher_backbone, sd, "momentum_encoder."),
    ]
    head_loader = _load_heads(ours, sd)
    loaded = {k for r in reports for k in r.loaded} | set(head_loader.report.loaded)
    left = sorted(set(sd) - loaded)
    student_entries = _vit_entries(ours.backbone, "base_encoder.") + _head_entries(ours)
    teacher_entries = _teacher_entries(ours)
    values = {id(v): v.numpy() for v in ours.weights}
    mine = _assemble(student_entries + teacher_entries, values)
    cmp.compare_many(
        "backbone",
        [(k, mine[k], sd[k]) for k in mine],
        0.0,
        note=f"weights after loading; official tensors left unloaded: {left or 'none'}",
    )

    # --- the batch: our views and recorded params; the official boxes from them -----------------
    images, views, params, names = _batch(args.seed)
    bbox, angles, ours_gc, ours_all = _official_boxes(transforms_mod, params, names)
    cmp.compare(
        "augment",
        "overlap boxes, teacher frame (gc)",
        ours_gc,
        bbox["gc"].numpy(),
        1e-5,
        note="ours: MultiCropPolicy overlap; theirs: calculate_bboxes on our crops and turns",
    )
    cmp.compare("augment", "overlap boxes, student frame (all)", ours_all, bbox["all"].numpy(), 1e-5)
    _recipe_rows(cmp, transforms_mod)
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    x = [common.nchw((views[v] - mean) / std) for v in names]

    def official_bbox():
        return {
            "gc": bbox["gc"].clone(),
            "all": bbox["all"].clone(),
            # float32, not the loader's float16 (exact for 0..270): on CPU in float32 kornia refuses mixed dtypes
            "angles": [torch.tensor([a[j] for a in angles], dtype=torch.float32) for j in range(len(names))],
        }

    # --- backbone and heads ---------------------------------------------------------------------
    normalized = {v: ours.normalize(views[v]) for v in names}
    with torch.no_grad():
        for label, group in (("global 96 px", names[:2]), ("local 48 px, positions resized", names[2:])):
            batch_in = torch.cat([x[names.index(v)] for v in group])
            t_tokens = theirs.base_encoder(batch_in)
            o = ours.backbone(tf.concat([normalized[v] for v in group], 0), training=True)
            cmp.compare("backbone", f"ViT patch tokens, {label}", o["tokens"], t_tokens, common.OUTPUT_TOL)
            t_proj = theirs.base_projector(t_tokens)
            o_proj = ours.projector(o["feature_map"])
            cmp.compare(
                "backbone", f"projector map, {label}", tf.transpose(o_proj, (0, 3, 1, 2)), t_proj, common.OUTPUT_TOL
            )
            t_pred = theirs.base_predictor(t_proj)
            o_pred = ours.predictor(o_proj)
            cmp.compare(
                "backbone", f"predictor map, {label}", tf.transpose(o_pred, (0, 3, 1, 2)), t_pred, common.OUTPUT_TOL
            )
            cmp.compare(
                "backbone",
                f"rotation logits, {label}",
                ours.part("rotation").head(tf.reduce_mean(o["tokens"], 1)),
                theirs.rot_predictor(t_tokens.mean(dim=1)),
                common.OUTPUT_TOL,
            )
        t_teacher = theirs.momentum_projector(theirs.momentum_encoder(torch.cat(x[:2])))
        o_teacher = ours.teacher_projector(
            ours.teacher_backbone(tf.concat([normalized[v] for v in names[:2]], 0))["feature_map"]
        )
        cmp.compare(
            "backbone",
            "teacher projector map, global",
            tf.transpose(o_teacher, (0, 3, 1, 2)),
            t_teacher,
            common.OUTPUT_TOL,
        )

    _option_rows(cmp, ours, theirs, normalized, names, x)

    # --- losses and gradients -------------------------------------------------------------------
    lr_schedule = lr_sched.cosine_scheduler(BASE_LR, MIN_LR, EPOCHS, ITERS, warmup_epochs=WARMUP)
    wd_schedule = lr_sched.cosine_scheduler(WD, WD_END, EPOCHS, ITERS)
    momentum_schedule = lr_sched.cosine_scheduler(MOMENTUM, 1, EPOCHS, ITERS)
    epoch = STEP // ITERS
    pc_coef, rot_coef = (0.5 if WARMUP < epoch else 0.0), 0.5  # engine_pretrain.py
    theirs.zero_grad()
    crop_t, pc_t, rot_t = theirs(x, official_bbox(), float(momentum_schedule[STEP]))
    total_t = crop_t + pc_coef * pc_t + rot_coef * rot_t
    total_t.backward()
    batch = {"views": {v: tf.constant(views[v]) for v in names}, "params": params}
    student_vars = ours.online_variables()
    holder = {}

    def loss_fn():
        total, terms = ours.compute_losses(batch, training=True)
        holder.update(terms, total=total)
        return total

    grads = common.keras_gradients(loss_fn, student_vars)
    for name, o, t in (
        ("crop (RoIAlign cosine)", holder["crop"], crop_t),
        ("patch correspondence", holder["correspondence"], pc_t),
        ("rotation prediction", holder["rotation"], rot_t),
        ("total (1, 0.5, 0.5)", holder["total"], total_t),
    ):
        cmp.compare("loss", name, o, t, common.LOSS_TOL)
    named = dict(theirs.named_parameters())
    grad_values = {id(v): g for v, g in zip(student_vars, grads)}
    ours_grads = _assemble(student_entries, grad_values)
    cmp.compare_many("gradients", [(k, ours_grads[k], named[k].grad) for k in ours_grads], common.GRAD_TOL)
    missing = sorted(k for k, p in named.items() if p.requires_grad and k not in ours_grads)
    cmp.record(
        "gradients",
        "official weights without a twin",
        len(missing),
        len(missing),
        0.0,
        note=", ".join(missing) or "none",
    )

    # --- one step of the official recipe --------------------------------------------------------
    groups = lr_sched.get_params_groups(theirs)
    decayed = {n for n, p in named.items() if any(p is q for q in groups[0]["params"])}

    def official_step(gradients=None) -> dict[str, np.ndarray]:
        """engine_pretrain.py's step from the initial weights: clip, AdamW at the schedule's lr / wd, then the
        EMA update that opens the next step. `gradients`: torch name -> array to use instead of `.grad`."""
        with torch.no_grad():
            for k, p in named.items():
                p.copy_(torch.from_numpy(sd[k]))
                if gradients is not None and p.requires_grad:
                    p.grad = torch.from_numpy(np.array(gradients[k], np.float32))
        optimizer = torch.optim.AdamW(lr_sched.get_params_groups(theirs))
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = float(lr_schedule[STEP])
            if i == 0:
                group["weight_decay"] = float(wd_schedule[STEP])
        # Keras counts Adam's steps with `iterations`, which also indexes the schedules: give torch's AdamW the
        # same count (fresh moments, STEP steps done), so both take step STEP + 1 of Adam's bias correction.
        for p in theirs.parameters():
            if p.requires_grad:
                optimizer.state[p] = {
                    "step": torch.tensor(float(STEP)),
                    "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": torch.zeros_like(p),
                }
        misc.clip_gradients(theirs, CLIP)
        misc.cancel_gradients_last_layer(epoch, theirs, 1)  # no "last_layer" in GTSA: a no-op, as in training
        optimizer.step()
        with torch.no_grad():
            theirs._update_momentum_encoder(float(momentum_schedule[STEP + 1]))  # the start of the next step
        return common.numpy_state_dict(theirs)

    official_grads = {k: p.grad.numpy().copy() for k, p in named.items() if p.grad is not None}
    sd_after = official_step()

    opt = ScheduledAdamW(
        float(lr_schedule[STEP]),
        weight_decay=WD,
        weight_decay_end=WD_END,
        decay_steps=total_steps,
        matrices_only=True,
        clipnorm=CLIP,
    )
    ours.compile(optimizer=opt)
    opt.iterations.assign(STEP)
    ours_decayed = {name for name, variables, _ in student_entries if opt.decays(variables[0])}
    mask_diff = sorted(decayed ^ ours_decayed)
    cmp.record(
        "step",
        "weight-decay mask (names that differ)",
        len(mask_diff),
        len(mask_diff),
        0.0,
        note=", ".join(mask_diff) or f"{len(decayed)} decayed, biases / norms / 1-D not",
    )
    ours.train_step(batch)
    values = {id(v): v.numpy() for v in ours.weights}
    stepped = _assemble(student_entries, values)
    teacher = _assemble(teacher_entries, values)
    sd_same = official_step({**official_grads, **ours_grads})
    key_grad = max(float(np.abs(_key_bias(g)).max()) for k, g in official_grads.items() if k.endswith("qkv.bias"))
    small = sum(int((np.abs(g) < 1e-6).sum()) for g in official_grads.values())
    count = sum(g.size for g in official_grads.values())
    noise = (
        f"official gradients: our gradients differ from them by float32 rounding (the gradients row), and Adam's "
        f"g / (|g| + 1e-8) turns that into a visible change for the {small} of {count} entries with |g| < 1e-6 "
        f"(the key biases, whose gradient is 0 in exact arithmetic: |g| <= {key_grad:.1e}); the rows on our "
        "gradients isolate the optimizer"
    )
    for label, ours_w, theirs_w, tol, note in (
        (
            "stepped weights",
            stepped,
            sd_same,
            common.GRAD_TOL,
            f"our gradients in both; AdamW step {STEP}: lr {lr_schedule[STEP]:.3g}, wd {wd_schedule[STEP]:.3g}, "
            f"clip {CLIP}",
        ),
        (
            "update (stepped - initial)",
            {k: stepped[k] - sd[k] for k in stepped},
            {k: sd_same[k] - sd[k] for k in stepped},
            1e-3,
            "our gradients in both; tolerance 1e-3: a weight near 1 (a LayerNorm scale) is stored to 1 float32 ulp, "
            "1.2e-7, against updates of at most lr / 2",
        ),
        (
            "EMA teacher",
            teacher,
            sd_same,
            common.GRAD_TOL,
            f"our gradients in both; momentum {momentum_schedule[STEP + 1]:.6f} after the step",
        ),
        ("stepped weights, end to end", stepped, sd_after, 1e-2, noise),
        ("EMA teacher, end to end", teacher, sd_after, 1e-2, "as above"),
    ):
        cmp.compare_many("step", [(k, ours_w[k], theirs_w[k]) for k in ours_w], tol, note=f"{label}; {note}")

    # --- the schedules, over the whole (tiny) run -----------------------------------------------
    config = load_config_file(GTSA_CONFIG)
    config.train.steps = total_steps
    config.optim.lr, config.optim.warmup_steps = BASE_LR, WARMUP * ITERS
    schedule = optimizer_from_config(config)._learning_rate  # the schedule object (`.learning_rate` is its value now)
    steps = np.arange(total_steps)
    ours_lr = np.asarray([float(schedule(k)) for k in steps])
    cmp.compare(
        "step",
        "lr schedule, warm-up",
        ours_lr[: WARMUP * ITERS],
        lr_schedule[: WARMUP * ITERS],
        1e-6,
        note="optim.lr, warmup_steps, cosine: ours warms up over k / W, theirs k / (W - 1)",
        explained=True,
    )
    cmp.compare(
        "step",
        "lr schedule, cosine",
        ours_lr[WARMUP * ITERS :],
        lr_schedule[WARMUP * ITERS :],
        1e-6,
        note=f"ours decays to 0, theirs to min_lr {MIN_LR:g}",
        explained=True,
    )
    ours_wd = np.asarray([float(opt.weight_decay_at(k)) for k in steps])
    cmp.compare("step", "weight-decay schedule", ours_wd, wd_schedule, 1e-6)
    ours_m = []
    for k in steps:
        opt.iterations.assign(int(k))
        ours_m.append(float(ours.teacher_momentum()))
    cmp.compare(
        "step",
        "teacher momentum after step k",
        np.asarray(ours_m[:-1]),
        momentum_schedule[1:],
        1e-6,
        note="theirs: m[k + 1], applied at the start of step k + 1",
    )
    gate_theirs = np.asarray([0.5 if WARMUP < k // ITERS else 0.0 for k in steps])  # engine_pretrain.py, per epoch
    gate_ours = []
    for k in steps:
        opt.iterations.assign(int(k))
        gate_ours.append(float(ours.part("correspondence").weight_at(opt.iterations)))
    cmp.compare(
        "step",
        "correspondence weight at step k",
        np.asarray(gate_ours),
        gate_theirs,
        0.0,
        note=f"correspondence warmup_steps=(warm-up epochs + 1) x steps per epoch = {(WARMUP + 1) * ITERS}",
    )
    return cmp.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
