"""SIE against its official code: the ResNet, the heads, every loss term, gradients, one Adam step, the probes.

Written against facebookresearch/SIE at commit 54541cf (`src/models.py` class `SIE`,
`src/resnet.py`, `src/hypernetwork.py`, `src/dataset.py`, `main.py`, `eval_angle_prediction.py`,
`eval_color_prediction.py`). The official model is built at the README's 3DIEBench settings
(ResNet-18, `--equi 256`, linear hypernetwork, sim 10, std 10, cov 1, equi-factor 0.45) with a
small `--mlp 64-64-64` expander (32-32-32 per part), on a batch of 4 pairs of 64 px renders that
the official `Dataset3DIEBench` reads from a tiny 3DIEBench-format folder this tool writes. Its
weights (BatchNorm parameters and statistics randomised, so no branch starts at zero) go into
ours through `load_resnet_weights`, `load_mlp_weights` and `TorchWeightLoader`. Our side is
SIE's loss: `SIE(joint_regularization=True)` beside `VICReg(sim 10, std 0, cov 0)` (the
`model.sie.joint_regularization=True` recipe); one row compares our default composition (std and
cov per block) with SIE's total. Rows:

- augment: the views (JPEG decode + SIE's normalisation) and the rotation conditioning
  `R1^-1 R2` that our 3DIEBench pipeline computes, against `Dataset3DIEBench.__getitem__`;
- backbone: pooled outputs in eval and train mode, BN running statistics after one step;
- loss: the projections, the hypernetwork prediction and every term of `SIE.forward`;
- gradients / step: of SIE's total, and one step of `main.py`'s optimizer (Adam, lr 1e-3,
  weight decay 1e-6 as an L2 term on every parameter, constant lr): `TorchAdam`, and what
  `optimizer_from_config` builds for `optim.name="adam"`, `weight_decay_mode="coupled"`,
  `schedule="constant"`;
- probe: the heads, inputs, targets, loss, gradients, Adam step and R² of
  `eval_angle_prediction.py` / `eval_color_prediction.py` (their `Model`, `Dataset3DIEBench` and
  `r2_score`, taken from the scripts without running their module-level code).

Command (the checkout is a plain clone of facebookresearch/SIE):

    python tools/parity/sie.py --official <checkout of facebookresearch/SIE> --json docs/parity/sie.json
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile

import common
import numpy as np
from variable_map import variable_map

REPOSITORY = "facebookresearch/SIE"
COMMAND = "python tools/parity/sie.py --official <checkout of facebookresearch/SIE> --json docs/parity/sie.json"
BATCH, SIZE, EQUI, MLP = 4, 64, 256, "64-64-64"
LR, WD = 1e-3, 1e-6  # main.py's defaults, the README's command
NOTE_JOINT = (
    "explained: our default (model.sie.joint_regularization=False) applies std and cov per block (no inv-equi "
    "cross-covariance, each block normalised by its own width); SIE regularises [z_inv, z_equi] jointly, "
    "which joint_regularization=True computes (the rows above)"
)


def before_batch_norm(names, state_dict) -> set[str]:
    """Linear biases that a BatchNorm follows: their gradient is zero but for rounding (BN removes the mean)."""
    out = set()
    for name in names:
        if name.endswith(".bias") and not name.endswith(("bn1.bias", "bn2.bias", "bn3.bias")):
            head, _, index = name[: -len(".bias")].rpartition(".")
            if index.isdigit() and f"{head}.{int(index) + 1}.running_mean" in state_dict:
                out.add(name)
    return out


def official_args(batch: int):
    return argparse.Namespace(
        arch="resnet18", equi=EQUI, mlp=MLP, predictor="", bias_pred=False, bias_hypernet=False,
        hypernetwork="linear", predictor_relu=False, predictor_type="hypernetwork", tf_num_layers=1,
        sim_coeff=10.0, std_coeff=10.0, cov_coeff=1.0, equi_factor=0.45, batch_size=batch,
    )  # fmt: skip


def write_threedie(root: str, objects: int, views: int, size: int, rng) -> list[str]:
    """A tiny 3DIEBench-format folder: `synset/obj_k/image_v.jpg` + `latent_v.npy`; returns the object paths."""
    from PIL import Image

    paths = []
    for k in range(objects):
        rel = f"/0000{k % 2}/obj{k}"
        os.makedirs(root + rel, exist_ok=True)
        for v in range(views):
            pixels = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(f"{root}{rel}/image_{v}.jpg", quality=95)
            latent = np.concatenate([rng.uniform(-np.pi, np.pi, 3), rng.uniform(0, 1, 4)]).astype(np.float32)
            np.save(f"{root}{rel}/latent_{v}.npy", latent)
        paths.append(rel)
    return paths


def script_definitions(path: str, names: set[str], namespace: dict) -> dict:
    """The classes / functions `names` of a script, run without its module-level code (argument parsing, training)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    body = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in names]
    missing = names - {n.name for n in body}
    if missing:
        raise SystemExit(f"{path}: no {sorted(missing)} (a different commit of the official code?)")
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), namespace)
    return namespace


def main() -> int:
    parser = common.parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()

    sys.modules.setdefault("triton", None)  # importing triton beside TensorFlow crashes; CPU torch needs none
    import keras
    import tensorflow as tf
    import torch
    import torch.distributed as dist

    from keras_eqssl.data.image_files import decode_jpeg_checked
    from keras_eqssl.data.threedie import normalize_3diebench, pair_element
    from keras_eqssl.methods import SIE, PairModel, TorchAdam, VICReg
    from keras_eqssl.methods.factory import optimizer_from_config
    from keras_eqssl.nn import ResNetBackbone, load_mlp_weights, load_resnet_weights
    from keras_eqssl.nn.torch_weights import TorchWeightLoader

    common.seed_everything(args.seed)
    models, resnet, dataset = common.import_official(args.official, "src.models", "src.resnet", "src.dataset")
    if not dist.is_initialized():  # FullGatherLayer all-gathers over one CPU process
        rendezvous = tempfile.mkdtemp()
        dist.init_process_group("gloo", init_method=f"file://{rendezvous}/rendezvous", rank=0, world_size=1)
    cmp = common.Comparison("sie", args.official, REPOSITORY, COMMAND)
    rng = np.random.default_rng(args.seed)

    # --- data: the official Dataset3DIEBench on a tiny folder --------------------------------------
    root = tempfile.mkdtemp()
    objects = write_threedie(root, BATCH, 50, SIZE, rng)
    np.save(f"{root}/images.npy", np.array(objects))
    np.save(f"{root}/labels.npy", np.arange(BATCH) % 2)
    from pathlib import Path

    from torchvision import transforms

    normalize = transforms.Normalize(mean=[0.5016, 0.5037, 0.5060], std=[0.1030, 0.0999, 0.0969])
    official_ds = dataset.Dataset3DIEBench(
        Path(root), f"{root}/images.npy", f"{root}/labels.npy",
        transform=transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), normalize]),
    )  # fmt: skip
    items, our_views, our_rotations = [], [], []
    for i in range(BATCH):
        np.random.seed(args.seed * 100 + i)  # noqa: NPY002 (the official __getitem__ draws from the global RNG)
        items.append(official_ds[i])
        np.random.seed(args.seed * 100 + i)  # noqa: NPY002
        first, second = np.random.choice(50, 2, replace=False)  # noqa: NPY002 (the views __getitem__ drew)
        images, latents = [], []
        for v in (first, second):
            path = f"{root}{objects[i]}/image_{v}.jpg"
            images.append(decode_jpeg_checked(tf.io.read_file(path), tf.constant(path)))
            latents.append(tf.constant(np.load(f"{root}{objects[i]}/latent_{v}.npy")))
        element = pair_element(tuple(images), tuple(latents), tf.constant(0))
        our_views.append([np.asarray(normalize_3diebench(element["views"][k])) for k in ("v1", "v2")])
        our_rotations.append(np.asarray(element["rel_rotation"]))
    x = torch.stack([it[0] for it in items])
    y = torch.stack([it[1] for it in items])
    z = torch.stack([it[2] for it in items])
    labels = torch.as_tensor(np.stack([it[3] for it in items])).long()
    theirs_views = np.stack([x.numpy(), y.numpy()], 1).transpose(0, 1, 3, 4, 2)
    cmp.compare("augment", "views: JPEG decode + normalisation", np.stack(our_views), theirs_views, common.OUTPUT_TOL,
                note="our 3DIEBench reader's decode_jpeg_checked vs PIL")  # fmt: skip
    cmp.compare("augment", "rel_rotation (quaternion of R1^-1 R2)", np.stack(our_rotations), z.numpy(), common.LOSS_TOL)
    xs, ys = x.numpy().transpose(0, 2, 3, 1), y.numpy().transpose(0, 2, 3, 1)
    batch = {"views": {"v1": tf.constant(xs), "v2": tf.constant(ys)}, "rel_rotation": tf.constant(z.numpy())}

    # --- the official model, its weights into ours -------------------------------------------------
    ns = official_args(BATCH)
    official = models.SIE(ns, num_classes=5)
    common.randomise_batch_norms(official, args.seed)
    initial = {k: v.clone() for k, v in official.state_dict().items()}
    sd = common.numpy_state_dict(official)
    units_inv = [official.projector_inv[i].out_features for i in range(0, len(official.projector_inv), 3)]
    units_equi = [official.projector_equi[i].out_features for i in range(0, len(official.projector_equi), 3)]

    def build(joint: bool):
        """(model, backbone, invariance, sie): SIE's loss with `joint`, else our default (std/cov per block)."""
        backbone = ResNetBackbone([2, 2, 2, 2], stem="sie")
        block = 0.0 if joint else 1.0  # with the joint terms, VICReg keeps only its invariance term
        invariance = VICReg(projector_units=units_inv, sim_weight=10.0, std_weight=10.0 * block, cov_weight=block)
        ours_sie = SIE(projector_units=units_equi, equi_factor=0.45, sim_weight=10.0, std_weight=10.0, cov_weight=1.0,
                       pred_std_weight=10.0, joint_regularization=joint)  # fmt: skip
        model = PairModel(backbone, invariance, objectives=[ours_sie], split=(512 - EQUI, EQUI), image_size=SIZE,
                          mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # fmt: skip
        model.compute_losses(batch, training=False)  # builds every layer
        return model, backbone, invariance, ours_sie

    def loader_of(parts):
        _, backbone, invariance, ours_sie = parts

        def load(state):
            load_resnet_weights(backbone, state, "backbone.")
            load_mlp_weights(invariance.projector, state, "projector_inv.")
            load_mlp_weights(ours_sie.projector, state, "projector_equi.")
            loader = TorchWeightLoader(state, "predictor.")
            loader.dense(ours_sie.hypernetwork.weights_from_code, "hypernet.net.0")

        return load

    default_model = build(joint=False)
    model, backbone, invariance, ours_sie = build(joint=True)
    load_all = loader_of((model, backbone, invariance, ours_sie))

    names = variable_map(load_all, sd, model.variables)
    trainable = {n: v for n, v in names.items() if any(v is t for t in model.trainable_variables)}
    params = dict(official.named_parameters())
    missing = sorted(n for n in params if n not in names and not n.startswith("evaluator."))
    if missing:
        raise SystemExit(f"official parameters with no Keras variable: {missing}")

    # --- backbone ----------------------------------------------------------------------------------
    official.eval()
    with torch.no_grad():
        theirs_eval = official.backbone(x)
    official.train()
    with torch.no_grad():
        theirs_train = official.backbone(x)
    official.load_state_dict(initial)
    cmp.compare("backbone", "pooled, eval (running stats)", backbone(xs, training=False)["pooled"], theirs_eval,
                common.OUTPUT_TOL)  # fmt: skip
    cmp.compare("backbone", "pooled, train (batch stats)", backbone(xs, training=True)["pooled"], theirs_train,
                common.OUTPUT_TOL)  # fmt: skip
    load_all(sd)
    odd = rng.standard_normal((2, 3, 65, 65)).astype(np.float32)
    official.eval()
    with torch.no_grad():
        theirs_odd = official.backbone(torch.from_numpy(odd))
    cmp.compare("backbone", "pooled, eval, odd size (65 px)", backbone(odd.transpose(0, 2, 3, 1), training=False)["pooled"],
                theirs_odd, common.OUTPUT_TOL)  # fmt: skip
    official.train()

    # --- heads and loss terms ----------------------------------------------------------------------
    official.load_state_dict(initial)
    loss, loss_eval, stats, _ = official(x, y, z, labels)
    with torch.no_grad():
        xe, ye = official.backbone(x), official.backbone(y)
        zx_inv, zy_inv = official.projector_inv(xe[:, : 512 - EQUI]), official.projector_inv(ye[:, : 512 - EQUI])
        zx_eq, zy_eq = official.projector_equi(xe[:, 512 - EQUI :]), official.projector_equi(ye[:, 512 - EQUI :])
        pred = official.predictor(zx_eq.unsqueeze(1), z)
    official.load_state_dict(initial)
    load_all(sd)

    def our_forward():
        pair = model.pair_outputs(batch, training=True)
        zi1 = invariance.project(pair["invariant"]["v1"], training=True)
        zi2 = invariance.project(pair["invariant"]["v2"], training=True)
        z1, z2, z2_hat = ours_sie.embeddings(pair, training=True)
        load_all(sd)  # the projections above moved the BN statistics: the loss starts from the same state
        total, terms = model.compute_losses(batch, training=True)
        return (zi1, zi2, z1, z2, z2_hat), total, terms

    z_all, total_joint, terms = our_forward()
    loader_of(default_model)(sd)
    default_total, _ = default_model[0].compute_losses(batch, training=True)
    del default_model
    for name, ours, theirs in (
        ("invariant projection z_inv (view 1)", z_all[0], zx_inv),
        ("invariant projection z_inv (view 2)", z_all[1], zy_inv),
        ("equivariant projection z_equi (view 1)", z_all[2], zx_eq),
        ("equivariant projection z_equi (view 2)", z_all[3], zy_eq),
        ("hypernetwork prediction W(q) z1", z_all[4], pred),
    ):
        cmp.compare("loss", name, ours, theirs, common.OUTPUT_TOL)
    for name, ours, theirs in (
        ("repr_loss_inv (vicreg_invariance)", terms["vicreg_invariance"], stats["repr_loss_inv"]),
        ("repr_loss_equi (sie_mse)", terms["sie_mse"], stats["repr_loss_equi"]),
        ("pred_std_loss (sie_pred_std)", terms["sie_pred_std"], stats["pred_std_loss"]),
        ("std_loss (sie_std, joint_regularization)", terms["sie_std"], stats["std_loss"]),
        ("cov_loss (sie_cov, joint_regularization)", terms["sie_cov"], stats["cov_loss"]),
        ("total (PairModel, joint_regularization)", total_joint, loss),
    ):
        cmp.compare("loss", name, ours, theirs, common.LOSS_TOL)
    cmp.compare("loss", "total, our default (per-block std/cov)", default_total, loss, common.LOSS_TOL,
                note=NOTE_JOINT, explained=True)  # fmt: skip

    # --- gradients and one step of main.py's recipe ------------------------------------------------
    official.load_state_dict(initial)
    adam = torch.optim.Adam(official.parameters(), lr=LR, weight_decay=WD)  # main.py
    adam.zero_grad()
    loss, loss_eval, _, _ = official(x, y, z, labels)
    (loss + loss_eval).backward()
    theirs_grads = {n: p.grad.detach().numpy().copy() for n, p in official.named_parameters() if n in trainable}
    adam.step()
    theirs_after = common.numpy_state_dict(official)

    load_all(sd)
    variables = list(trainable.values())
    grads = common.keras_gradients(lambda: model.compute_losses(batch, training=True)[0], variables)
    grads = dict(zip(trainable, grads))
    noise = before_batch_norm(trainable, sd)
    kept = [n for n in trainable if n not in noise]
    cmp.compare_many("gradients", [(n, common.torch_layout(grads[n], theirs_grads[n].shape), theirs_grads[n])
                                   for n in kept], common.GRAD_TOL)  # fmt: skip
    scale = max(float(np.max(np.abs(theirs_grads[n]))) for n in kept)
    worst = max(float(np.max(np.abs(grads[n] - theirs_grads[n]))) for n in noise)
    cmp.record("gradients", "Linear biases before a BatchNorm", worst, worst / scale, common.GRAD_TOL,
               note="relative to the largest gradient: both sides are rounding noise around 0 (BN removes the bias)")  # fmt: skip
    # The step: the official gradients into our optimizer, so that the row measures the optimizer. Adam's first
    # step is about lr * sign(g): where an entry of g is below float32 rounding, ours and theirs move it by +-lr.
    official_grads = {n: common.keras_layout(theirs_grads[n], tuple(trainable[n].shape)) for n in trainable}

    def stepped(optimizer, coupled_wd: float, gradients) -> dict[str, np.ndarray]:
        load_all(sd)
        optimizer.apply_gradients([(gradients[n] + coupled_wd * np.asarray(v), v) for n, v in trainable.items()])
        return {n: common.torch_layout(np.asarray(v), theirs_after[n].shape) for n, v in trainable.items()}

    by_hand = {}
    for n in trainable:  # torch.optim.Adam's first step: L2 into g, bias-corrected moments, eps outside the sqrt
        w = common.keras_layout(sd[n], tuple(trainable[n].shape))
        g = official_grads[n] + WD * w
        m_hat, v_hat = g, g * g  # (1 - b1) g / (1 - b1), (1 - b2) g^2 / (1 - b2)
        by_hand[n] = common.torch_layout(w - LR * m_hat / (np.sqrt(v_hat) + 1e-8), theirs_after[n].shape)
    cmp.compare_many("step", [(n, by_hand[n], theirs_after[n]) for n in trainable], common.GRAD_TOL,
                     note="main.py's recipe by hand: Adam lr 1e-3 (constant), eps 1e-8, L2 1e-6 on every parameter "
                     "(no exclusions), official gradients")  # fmt: skip
    torch_adam = stepped(TorchAdam(LR, weight_decay=WD), 0.0, official_grads)
    cmp.compare_many("step", [(n, torch_adam[n], theirs_after[n]) for n in trainable], common.GRAD_TOL,
                     note="TorchAdam(1e-3, weight_decay=1e-6) (coupled: torch.optim.Adam's L2), official gradients")  # fmt: skip
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from configs import sie as sie_config

    config = sie_config.get_config()
    recipe_config = sie_config.get_config()
    recipe_config.optim.update(name="adam", weight_decay_mode="coupled", schedule="constant", lr=LR, weight_decay=WD)
    configured = stepped(optimizer_from_config(recipe_config), 0.0, official_grads)
    cmp.compare_many("step", [(n, configured[n], theirs_after[n]) for n in trainable], common.GRAD_TOL,
                     note="optimizer_from_config: configs/sie.py with optim.name='adam', weight_decay_mode='coupled', "
                     "schedule='constant' (main.py's recipe), official gradients")  # fmt: skip
    keras_adam = stepped(keras.optimizers.Adam(LR, epsilon=1e-8), WD, official_grads)
    cmp.compare_many("step", [(n, keras_adam[n], theirs_after[n]) for n in trainable], common.GRAD_TOL,
                   note="explained: Keras' own Adam(epsilon=1e-8) on g + 1e-6 w (not what the factory builds): Keras "
                   "adds eps to sqrt(v) before the bias correction, torch after (Keras' eps is eps / sqrt(1 - b2^t), "
                   "32x torch's at step 1); it shows on entries with |g| < 1e-6 (worst: a bias before a BN, rounding "
                   "noise)", explained=True)  # fmt: skip
    ours_g = stepped(TorchAdam(LR, weight_decay=WD), 0.0, grads)
    flipped = sum(int(np.sum(np.abs(ours_g[n] - theirs_after[n]) > LR / 2)) for n in kept)
    total = sum(theirs_after[n].size for n in kept)
    cmp.compare_many("step", [(n, ours_g[n], theirs_after[n]) for n in kept], common.GRAD_TOL,
                     note=f"explained: TorchAdam's step on our gradients; {flipped} of {total} entries move the other "
                     "way (|g| under float32 rounding: Adam's first step is about lr * sign(g))", explained=True)  # fmt: skip
    default_step = stepped(optimizer_from_config(config), 0.0, official_grads)
    rows = [(n, default_step[n], theirs_after[n]) for n in trainable]
    worst = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for _, a, b in rows)  # compare_many's measure
    cmp.compare_many("step", rows, common.GRAD_TOL, explained=worst > common.GRAD_TOL,
                     note=f"{'explained: ' if worst > common.GRAD_TOL else ''}configs/sie.py's own optimizer "
                     f"({config.optim.name}: decoupled weight decay 1e-6, torch's eps; {config.optim.schedule} lr, "
                     "lr 1e-3 at step 0) on the official gradients. main.py adds 1e-6 w to g: where |g| is under "
                     "that (biases before a BN, whose gradient is rounding noise), Adam's first step (about lr * "
                     "sign) follows w there and g here")  # fmt: skip

    # moving statistics after the step's forward (each side calls the backbone and projectors once per view)
    load_all(sd)
    model.compute_losses(batch, training=True)
    stats_names = [n for n in names if n.endswith(("running_mean", "running_var"))]
    cmp.compare_many("backbone", [(n, np.asarray(names[n]), theirs_after[n]) for n in stats_names if "var" not in n],
                     common.OUTPUT_TOL, note="BN running means after one step")  # fmt: skip
    cmp.compare_many("backbone", [(n, np.asarray(names[n]), theirs_after[n]) for n in stats_names if "var" in n],
                     common.OUTPUT_TOL,
                     note="explained: BN running variances after one step; Keras averages the biased batch variance, "
                     "torch the unbiased one (x n / (n - 1), n = batch x h x w); the row below corrects the projectors", explained=True)  # fmt: skip
    n = float(BATCH)
    projector_vars = [k for k in stats_names if "var" in k and k.startswith("projector")]
    cmp.compare_many("backbone", [(k, 0.81 * sd[k] + (np.asarray(names[k]) - 0.81 * sd[k]) * n / (n - 1.0),
                                   theirs_after[k]) for k in projector_vars], common.OUTPUT_TOL,
                     note="projector BN running variances, ours x n/(n-1) (two updates, momentum 0.1)")  # fmt: skip

    official.load_state_dict(initial)
    load_all(sd)
    probe_rows(cmp, args, root, objects, official, xs, ys, x, y, backbone, model)
    shutil.rmtree(root, ignore_errors=True)
    return cmp.finish(args.json)


def probe_rows(cmp, args, root, objects, official, xs, ys, x, y, backbone, model) -> None:
    """eval_angle_prediction.py / eval_color_prediction.py against keras_eqssl.probes on the same features."""
    import keras
    import src.resnet as resnet
    import torch
    import torch.nn.functional as F

    from keras_eqssl.data.threedie_views import relative_targets
    from keras_eqssl.nn.torch_weights import TorchWeightLoader
    from keras_eqssl.probes.heads import build_head
    from keras_eqssl.probes.r2 import r2_global_mean

    base = {"np": np, "torch": torch, "nn": torch.nn, "F": F, "resnet": resnet}
    import torchvision
    from PIL import Image
    from scipy.spatial.transform import Rotation as R
    from torch.utils.data import Dataset

    base.update(torchvision=torchvision, Image=Image, R=R, Dataset=Dataset)
    angle = script_definitions(os.path.join(args.official, "eval_angle_prediction.py"),
                               {"Model", "Dataset3DIEBench", "r2_score"}, dict(base))  # fmt: skip
    color = script_definitions(os.path.join(args.official, "eval_color_prediction.py"),
                               {"Model", "Dataset3DIEBench"}, dict(base))  # fmt: skip

    # targets: each script's Dataset3DIEBench (its own RandomState draws the views)
    for script, ns_target, key in ((angle, "quat", "rel_rotation"), (color, None, "rel_color")):
        extra = (ns_target,) if ns_target else ()
        ds = script["Dataset3DIEBench"](root, f"{root}/images.npy", *extra)
        ours_t, theirs_t = [], []
        for i in range(len(objects)):
            ds.rng = np.random.RandomState(i)
            theirs_t.append(ds[i][-1].numpy())
            v = np.random.RandomState(i).choice(50, 2, replace=False)
            lat = [np.load(f"{root}{objects[i]}/latent_{k}.npy")[None] for k in v]
            ours_t.append(relative_targets(*lat)[key][0])
        cmp.compare("probe", f"target {key}", np.stack(ours_t), np.stack(theirs_t), common.LOSS_TOL)

    for deep in (True, False):
        ns = argparse.Namespace(arch="resnet18", equi_dims=EQUI, inv_part=False, deep_end=deep, experience="quat")
        net = angle["Model"](ns)
        net.backbone.load_state_dict(official.backbone.state_dict())
        kind = "mlp" if deep else "linear"
        # input construction: concat of the last EQUI channels of both views (our split's equivariant part)
        net.eval()
        with torch.no_grad():
            theirs_in = torch.cat([net.backbone(x)[..., -EQUI:], net.backbone(y)[..., -EQUI:]], 1)
        rep = [model.representation(backbone(v, training=False))["equivariant"] for v in (xs, ys)]
        ours_in = np.concatenate([np.asarray(r) for r in rep], 1)
        if deep:
            cmp.compare("probe", "input [f(x1), f(x2)] equivariant, eval BN", ours_in, theirs_in, common.OUTPUT_TOL)
            net.train()  # the scripts fit the heads with the frozen backbone in train mode
            with torch.no_grad():
                train_in = torch.cat([net.backbone(x)[..., -EQUI:], net.backbone(y)[..., -EQUI:]], 1)
            cmp.compare("probe", "input, SIE's train-mode BN while fitting", ours_in, train_in, common.OUTPUT_TOL,
                        note="explained: SIE's scripts call net.train() on the frozen backbone (batch statistics, "
                        "running stats drift); ours encodes once in inference mode", explained=True)  # fmt: skip
        head_in = theirs_in.numpy()
        target = torch.as_tensor(np.random.default_rng(1).standard_normal((len(head_in), 4)).astype(np.float32))
        head = build_head(2 * EQUI, 4, (1024, 1024) if deep else (), batch_norm=False)
        hsd = {k: v.detach().numpy() for k, v in net.head.state_dict().items()}
        loader = TorchWeightLoader(hsd, "")
        dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
        keys = ["0", "2", "4"] if deep else [""]
        for layer, key in zip(dense, keys):
            loader.dense(layer, key) if key else _dense_no_prefix(loader, layer)
        net.head.zero_grad()
        out = net.head(theirs_in)
        loss = F.mse_loss(out, target)
        loss.backward()
        mse = keras.losses.MeanSquaredError()
        ours_out = head(head_in)
        cmp.compare("probe", f"{kind} head output", ours_out, out, common.OUTPUT_TOL)
        cmp.compare("probe", f"{kind} head loss (F.mse_loss)", mse(target.numpy(), ours_out), loss, common.LOSS_TOL)
        weights = [(f"{k}.{w}" if k else w, getattr(layer, a)) for layer, k in zip(dense, keys)
                   for w, a in (("weight", "kernel"), ("bias", "bias"))]  # fmt: skip
        grads = common.keras_gradients(lambda: mse(target.numpy(), head(head_in)), [v for _, v in weights])
        theirs_p = dict(net.head.named_parameters())
        cmp.compare_many("probe", [(n, common.torch_layout(g, theirs_p[n].shape), theirs_p[n].grad)
                                   for (n, _), g in zip(weights, grads)], common.GRAD_TOL,
                         note=f"{kind} head gradients")  # fmt: skip
        torch.optim.Adam(net.head.parameters(), lr=1e-3, weight_decay=0.0).step()  # the scripts' --lr 0.001 --wd 0
        after = {k: v.detach().numpy() for k, v in net.head.state_dict().items()}
        start = [np.asarray(v).copy() for _, v in weights]
        official_head_grads = [common.keras_layout(theirs_p[n].grad.numpy(), tuple(v.shape)) for n, v in weights]
        cmp.compare_many("probe", [(n, common.torch_layout(w - 1e-3 * g / (np.abs(g) + 1e-8), after[n].shape), after[n])
                                   for (n, _), w, g in zip(weights, start, official_head_grads)], common.GRAD_TOL,
                         note=f"{kind} head: the scripts' Adam step (lr 1e-3, wd 0) by hand, official gradients")  # fmt: skip
        for label, optimizer in (
            ("Keras Adam(epsilon=1e-8) (eps before the bias correction, see the step rows)", keras.optimizers.Adam(1e-3, epsilon=1e-8)),
            ("train_mlp's AdamW (wd 1e-4, eps 1e-7); it also standardises x and y, adds BN, stops early", keras.optimizers.AdamW(1e-3, weight_decay=1e-4)),
        ):  # fmt: skip
            for (_, v), w in zip(weights, start):
                v.assign(w)
            optimizer.apply_gradients(zip(official_head_grads, [v for _, v in weights]))
            cmp.compare_many("probe", [(n, common.torch_layout(np.asarray(v), after[n].shape), after[n])
                                          for n, v in weights], common.GRAD_TOL,
                           note=f"explained: {kind} head, {label}", explained=True)  # fmt: skip
        if deep:
            with torch.no_grad():
                r2_theirs = angle["r2_score"](out, target)
            cmp.compare("probe", "R² (SIE's global-mean r2_score)", r2_global_mean(target.numpy(), out.detach().numpy()),
                        r2_theirs, common.LOSS_TOL)  # fmt: skip


def _dense_no_prefix(loader, layer) -> None:
    """The linear head's `weight` / `bias` sit at the top of its state dict (no `N.` prefix)."""
    loader.assign(layer.kernel, loader.take("weight").T, "weight")
    loader.assign(layer.bias, loader.take("bias"), "bias")


if __name__ == "__main__":
    sys.exit(main())
