"""CIPER against a re-implementation, NOT the CIPER authors' code: trieschlab/AASSL's `Ciper` module.

The CIPER authors (Xu & Triesch, arXiv 2302.02330) published no code. The reference here is the
CIPER baseline of the same lab's later work, trieschlab/AASSL (Aubret, Teulière & Triesch, ECCV
2024), at commit f7fa2f2: `modules/ciper.py` (`Ciper`), `modules/ssl.py` (`Ssl`, the SimCLR
branch), `utils/losses.py` (`SimCLR`), `networks/heads.py` (`MLPHead`), `networks/resnets.py`
(`resnet18`), `utils/getters.py` (`get_optimizer`, `get_scheduler`, `apply_transform`) and the
loop body of `train.py` (`run_forward`, each module's `apply`, backward, `optimizer.step()`),
with `config.py`'s defaults and the README's `--modules classic,ciper`: ResNet-18 (ImageNet
stem), projector 512-256-128, SimCLR with tau 0.1, an action head 1024-1024-A on
`concat[f(x1), f(x2)]` (the whole representation), the action batch-standardised by
`BatchNorm1d(A, affine=False)`, one MSE over all A components, weight 1; AdamW lr 5e-4, weight
decay 1e-6 on every parameter, constant lr.

The action is what the data gives for the pair (AASSL: RT4K's (sin, cos) of the rotation between
the frames): here our 3DIEBench pair targets, `concat[rel_rotation (4), rel_color (2)]`, A = 6,
registered as a dataset entry of that size at run time. Ours is `PairModel(SimCLR(256-128, tau
0.1), ParameterPrediction(targets=("rel_rotation", "rel_color"), hidden_units=(1024,),
features="all", reduction="mean"))` with no split; the BN parameters and statistics of the
official network are randomised first, then copied into ours with `load_resnet_weights` and
`load_mlp_weights`. AASSL's kornia augmentations make the images but are not predicted: both sides
get the same views, and the official `train_t` is its last op, `K.Normalize(0.5, 0.5)`.
`lightning` (the `Fabric` device wrapper: `all_gather` over one process, `to_device`) and
`pandas` (dataset tables) are stubbed.

Rows: backbone (pooled, eval and train mode), loss (SimCLR, CIPER's MSE, the total; our default
per-key sum, explained), gradients of every parameter, and the weights after one AdamW step (torch's epsilon 1e-8:
`ScheduledAdamW`, which `optimizer_from_config` builds for `optim.name="adamw"`; Keras' own `AdamW`,
eps 1e-7 before the bias correction, explained).

    python tools/parity/ciper.py --official <checkout of trieschlab/AASSL> --json docs/parity/ciper.json
"""

from __future__ import annotations

import argparse
import copy
import importlib.machinery
import sys
import types

import common
import numpy as np
from variable_map import variable_map

REPOSITORY = "trieschlab/AASSL (a re-implementation of CIPER, not the CIPER authors' code)"
COMMAND = "python tools/parity/ciper.py --official <checkout of trieschlab/AASSL> --json docs/parity/ciper.json"
BATCH, SIZE = 8, 32
ACTION = (("rel_rotation", 4), ("rel_color", 2))
DATASET = "keras_eqssl_pairs"  # a DATASETS entry with action_size 6 (rel_rotation, rel_color)
LR, WD = 5e-4, 1e-6  # config.py: --optimizer adamw --lrate 5e-4 --weight_decay 1e-6


def stub_missing_modules() -> None:
    """`lightning` (only `Fabric` is used, which the tool replaces) and `pandas` (dataset tables, unused here)."""
    lightning = types.ModuleType("lightning")
    fabric = types.ModuleType("lightning.fabric")
    strategies = types.ModuleType("lightning.fabric.strategies")
    strategies.DDPStrategy = object
    lightning.fabric, fabric.strategies = fabric, strategies
    for name, module in (
        ("lightning", lightning),
        ("lightning.fabric", fabric),
        ("lightning.fabric.strategies", strategies),
        ("pandas", types.ModuleType("pandas")),
    ):
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo looks modules up by spec
        sys.modules.setdefault(name, module)


class OneProcessFabric:
    """What AASSL's modules call on `lightning.Fabric`, for one process (DDP's `all_gather` adds a world axis)."""

    @staticmethod
    def all_gather(data, sync_grads=False):
        if isinstance(data, (tuple, list)):
            return type(data)(t.unsqueeze(0) for t in data)
        return data.unsqueeze(0)

    @staticmethod
    def to_device(x):
        return x


def official_args():
    """config.py's defaults and the module arguments (`get_arguments`), with `--modules classic,ciper`."""
    return argparse.Namespace(
        modules=["classic", "ciper"], dataset=DATASET, batch_size=BATCH, num_devices=1, main_loss="SimCLR",
        similarity="cosine", temperature=0.1, classic_weight=1.0, feature_dim=128, hidden_dim=256, hidden_layers=1,
        action_weight=1.0, ciper_dim=1024, ciper_layers=1, co3d_quaternion=False, optimizer="adamw", lrate=LR,
        weight_decay=WD, cosine_decay=False, warmup=0, eta_min=1e-5, contrast="combined", kornia=True,
    )  # fmt: skip


def main() -> int:
    parser = common.parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()

    import torch

    stub_missing_modules()  # and import the official code (torchvision, kornia) before TensorFlow
    constants, general, resnets, ciper_module, ssl_module, getters = common.import_official(
        args.official, "utils.constants", "utils.general", "networks.resnets", "modules.ciper", "modules.ssl",
        "utils.getters",
    )  # fmt: skip
    if getattr(sys.modules.get("pandas"), "__file__", "stub") == "stub":
        del sys.modules["pandas"]  # the official modules keep their reference; Keras probes a real pandas
    import keras
    import kornia.augmentation as K
    import tensorflow as tf

    from keras_eqssl.default_config import get_config
    from keras_eqssl.methods import PairModel, ParameterPrediction, SimCLR
    from keras_eqssl.methods.factory import optimizer_from_config
    from keras_eqssl.methods.scheduled_adamw import ScheduledAdamW
    from keras_eqssl.nn import ResNetBackbone, load_mlp_weights, load_resnet_weights

    common.seed_everything(args.seed)
    cmp = common.Comparison("ciper", args.official, REPOSITORY, COMMAND)
    print("The reference is trieschlab/AASSL's re-implementation of CIPER; the CIPER authors published no code.")

    # --- the batch: two views and the pair's action ----------------------------------------------------
    rng = np.random.default_rng(args.seed)
    views = {v: rng.random((BATCH, SIZE, SIZE, 3)).astype(np.float32) for v in ("v1", "v2")}
    q = rng.standard_normal((BATCH, 4)).astype(np.float32)
    targets = {"rel_rotation": q / np.linalg.norm(q, axis=1, keepdims=True),
               "rel_color": rng.uniform(-1, 1, (BATCH, 2)).astype(np.float32)}  # fmt: skip
    batch = {"views": {v: tf.constant(x) for v, x in views.items()}, **{k: tf.constant(t) for k, t in targets.items()}}
    action = torch.from_numpy(np.concatenate([targets[k] for k, _ in ACTION], 1))

    # --- the official network: resnet18 + Ssl (projector) + Ciper (action head, action BN) ------------
    ns = official_args()
    constants.DATASETS[DATASET] = {"rgb_mean": (0.5, 0.5, 0.5), "rgb_std": (0.5, 0.5, 0.5), "action_size": 6}
    fabric = OneProcessFabric()
    net = getters.get_network(argparse.Namespace(model="resnet18"))
    modules = [ssl_module.Ssl(ns, fabric, net=net), ciper_module.Ciper(ns, fabric, net=net)]
    for i, (name, child) in enumerate(net.named_children()):
        if name != "ciper_action_bn":  # affine=False: nothing to randomise
            common.randomise_batch_norms(child, args.seed + i)
    initial = copy.deepcopy(net.state_dict())
    sd = {k: v.copy() for k, v in common.numpy_state_dict(net).items()}  # copies: the step updates net in place
    train_t = torch.nn.Sequential(K.Normalize(mean=torch.tensor((0.5,) * 3), std=torch.tensor((0.5,) * 3)))
    x_pair1, x_pair = common.nchw(views["v1"]), common.nchw(views["v2"])

    backbone = ResNetBackbone([2, 2, 2, 2], stem="imagenet")
    invariance = SimCLR(projector_units=[ns.hidden_dim, ns.feature_dim], temperature=ns.temperature)
    objective = ParameterPrediction(targets=[k for k, _ in ACTION], hidden_units=(ns.ciper_dim,), features="all",
                                    standardize=True, reduction="mean")  # fmt: skip
    model = PairModel(backbone, invariance, objectives=[objective], split=None, image_size=SIZE,
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # fmt: skip
    model.compute_losses(batch, training=False)  # builds every layer

    def load_all(state):
        load_resnet_weights(backbone, state, "")
        load_mlp_weights(invariance.projector, state, "projector.net.")
        load_mlp_weights(objective.head, state, "action_predictor.net.")

    names = variable_map(load_all, {k: v for k, v in sd.items() if not k.startswith("ciper_action_bn.")},
                         model.variables)  # fmt: skip
    torch_params = dict(net.named_parameters())
    trainable = {n: v for n, v in names.items() if any(v is t for t in model.trainable_variables)}
    missing = sorted(n for n in torch_params if n not in trainable)
    if missing:
        raise SystemExit(f"official parameters with no Keras variable: {missing}")

    # --- backbone ----------------------------------------------------------------------------------
    x = getters.apply_transform(ns, train_t, x_pair1, x_pair)  # train.py: one transform call on both views
    x1 = x[:BATCH].permute(0, 2, 3, 1).numpy()
    probe = copy.deepcopy(net)
    with torch.no_grad():
        probe.eval()
        theirs_eval = probe(x[:BATCH])
        probe.train()
        theirs_train = probe(x[:BATCH])
    cmp.compare("backbone", "pooled, eval (running stats)", backbone(x1, training=False)["pooled"], theirs_eval,
                common.OUTPUT_TOL)  # fmt: skip
    cmp.compare("backbone", "pooled, train (batch stats)", backbone(x1, training=True)["pooled"], theirs_train,
                common.OUTPUT_TOL)  # fmt: skip

    # --- one official step: train.py's loop body -----------------------------------------------------
    net.load_state_dict(initial)
    net.train()
    optimizer = getters.get_optimizer(ns, net)
    scheduler = getters.get_scheduler(ns, optimizer, 100)
    lr_now = optimizer.param_groups[0]["lr"]
    optimizer.zero_grad()
    rep = general.run_forward(ns, x, net)
    terms = [
        m.apply(net, net_target=None, action=action, rep=rep, rep_target=None, data=None, epoch=0) for m in modules
    ]
    loss = terms[0] + terms[1]
    with torch.no_grad():
        t = torch.nn.functional.batch_norm(action, None, None, training=True, eps=1e-5)
    loss.backward()
    optimizer.step()
    scheduler.step()
    theirs_grads = {n: p.grad.detach().numpy().copy() for n, p in torch_params.items()}
    theirs_after = {n: p.detach().numpy().copy() for n, p in torch_params.items()}

    def our_terms():
        return model.compute_losses(batch, training=True)

    load_all(sd)
    total, ours = our_terms()
    cmp.compare("augment", "CIPER target: BatchNorm1d(affine=False)(action)",
                np.concatenate([np.asarray(v) for v in objective_targets(objective, batch)], 1), t,
                common.LOSS_TOL, note="ours: parameter_regression's batch standardisation")  # fmt: skip
    for name, value, theirs in (
        ("SimCLR (Ssl, tau 0.1)", ours["simclr"], terms[0]),
        ("CIPER: mse over all 6 action components", ours["params"], terms[1]),
        ("total: Ssl + Ciper", total, loss),
    ):
        cmp.compare("loss", name, value, theirs, common.LOSS_TOL)
    per_key_sum = ours["params_rel_rotation"] + ours["params_rel_color"]
    cmp.compare("loss", "CIPER, our default reduction='sum'", per_key_sum, terms[1], common.LOSS_TOL,
                note="explained: the sum of per-key means (AugSelf's rule); configs/ciper.py sets 'mean'",
                explained=True)  # fmt: skip

    load_all(sd)
    grads = dict(zip(trainable, common.keras_gradients(lambda: our_terms()[0], list(trainable.values()))))
    # Linear biases right before a BatchNorm: their gradient is 0 in exact arithmetic (BN removes the mean),
    # so both sides hold float noise; measured against the largest gradient of the network instead.
    pre_bn = ["projector.net.0.bias", "action_predictor.net.0.bias"]
    cmp.compare_many("gradients", [(n, common.torch_layout(grads[n], theirs_grads[n].shape), theirs_grads[n])
                                   for n in torch_params if n not in pre_bn], common.GRAD_TOL)  # fmt: skip
    scale = max(float(np.abs(g).max()) for g in theirs_grads.values())
    noise = max(float(np.abs(grads[n] - theirs_grads[n]).max()) for n in pre_bn)
    cmp.record("gradients", "biases before a BN (0 up to float noise)", noise, noise / scale, common.GRAD_TOL,
               note="relative to the largest gradient of the network")  # fmt: skip

    def step_rows(optimizer, gradients, note: str, explained: bool = False):
        load_all(sd)
        optimizer.apply_gradients([(gradients[n], v) for n, v in trainable.items()])
        pairs = [
            (n, common.torch_layout(np.asarray(trainable[n]), theirs_after[n].shape), theirs_after[n])
            for n in torch_params
        ]
        cmp.compare_many("step", pairs, common.GRAD_TOL, note=note, explained=explained)

    official_grads = {n: common.keras_layout(theirs_grads[n], tuple(trainable[n].shape)) for n in trainable}
    torch_adamw = f"AdamW lr {lr_now:g} (constant), decay 1e-6 on every parameter, torch's eps 1e-8"
    step_rows(ScheduledAdamW(lr_now, weight_decay=WD), official_grads, f"the official gradients; {torch_adamw}")
    step_rows(ScheduledAdamW(lr_now, weight_decay=WD), grads,
              "explained: our gradients; Adam's first step is lr g / (|g| + eps), about lr sign(g), so gradient "
              "entries at float-noise level (|g| < 2e-5 of max 0.8, within the gradient tolerance) can step the "
              "other way: up to 2 lr", explained=True)  # fmt: skip
    config = get_config()
    config.optim.update(name="adamw", lr=LR, weight_decay=WD, schedule="constant", warmup_steps=0)
    step_rows(optimizer_from_config(config), official_grads, "the official gradients; optimizer_from_config's "
              "optim.name='adamw' (ScheduledAdamW: torch.optim.AdamW's update, torch's epsilon)")  # fmt: skip
    step_rows(keras.optimizers.AdamW(lr_now, weight_decay=WD), official_grads, "explained: the official gradients; "
              "Keras' own AdamW (not what the factory builds): eps 1e-7 added before the bias correction, 32 x "
              "torch's at step 1", explained=True)  # fmt: skip
    return cmp.finish(args.json)


def objective_targets(objective, batch) -> list:
    """Our batch-standardised targets, in the action's order (what `parameter_regression` regresses)."""
    from keras_eqssl.losses.parameter_regression import _standardize

    return [_standardize(objective._targets(batch)[key], 1e-5) for key, _ in ACTION]


if __name__ == "__main__":
    sys.exit(main())
