"""E-SSL against its official CIFAR-10 code: the ResNet, the heads, the losses, gradients and one SGD step.

Written against rdangovs/essl at commit 70b2cd0 (`cifar10/main.py`, `cifar10/resnet.py`), with the
README's SimCLR + rotation command (`--loss=simclr --lr=0.06 --lmbd=0.4`, batch 512, wd 5e-4,
10 warmup epochs). The official code calls `.cuda()` in `rotate_images` and `info_nce_loss`; the
tool runs them on CPU with `Tensor.cuda` replaced by the identity (nothing else is changed), and
rebuilds `ssl_loop`'s `forward_step` (a closure) from the same official functions. The model is
the official `Branch` (ResNet-18 CIFAR, projector `--dim_proj 64,32` instead of 2048,2048, the
2048-wide rotation head), BN parameters and statistics randomised; its weights go into ours through
`load_resnet_weights` and `TorchWeightLoader`. Batch: 4 pairs of 32 px images and 4 rotated 16 px crops.
Our side is `SimCLR` with E-SSL's options (`config.model`: `negatives="cross_view"`,
`projector_last_bn="non_affine"`, `projector_last_bias="off"`, `temperature=0.5`); one row keeps our
default NT-Xent (`negatives="all"`) beside the official loss, marked explained.

Command (the checkout is a plain clone of rdangovs/essl):

    python tools/parity/essl.py --official <checkout of rdangovs/essl> --json docs/parity/essl.json
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import common
import numpy as np
from variable_map import variable_map

REPOSITORY = "rdangovs/essl"
COMMAND = "python tools/parity/essl.py --official <checkout of rdangovs/essl> --json docs/parity/essl.json"
BATCH, SIZE, CROP, PROJ = 4, 32, 16, (64, 32)
LMBD, TEMPERATURE = 0.4, 0.5
BSZ, LR, WD, EPOCHS, WARMUP = 512, 0.06, 5e-4, 800, 10  # the README's run; CIFAR-10: 50000 // 512 steps per epoch
STEPS_PER_EPOCH = 50000 // BSZ


def main() -> int:
    args = common.parser(__doc__.split("\n\n")[0]).parse_args()

    sys.modules.setdefault("triton", None)  # importing triton beside TensorFlow crashes; CPU torch needs none
    import keras
    import tensorflow as tf
    import torch
    import torch.nn.functional as F

    from keras_eqssl.augment.geometric import rot90
    from keras_eqssl.losses import nt_xent
    from keras_eqssl.methods import ESSL, PairModel, SimCLR
    from keras_eqssl.methods.coupled_sgd import CoupledSGD
    from keras_eqssl.nn import ResNetBackbone, load_resnet_weights
    from keras_eqssl.nn.torch_weights import TorchWeightLoader

    torch.Tensor.cuda = lambda self, *a, **k: self  # the official functions move tensors to the GPU; CPU here
    common.seed_everything(args.seed)
    (official_main,) = common.import_official(os.path.join(args.official, "cifar10"), "main")
    cmp = common.Comparison("essl", args.official, REPOSITORY, COMMAND)
    rng = np.random.default_rng(args.seed)

    ns = argparse.Namespace(dim_proj=",".join(map(str, PROJ)), loss="simclr", lmbd=LMBD)
    branch = official_main.Branch(ns)
    common.randomise_batch_norms(branch, args.seed)
    branch.train()
    initial = {k: v.clone() for k, v in branch.state_dict().items()}
    sd = common.numpy_state_dict(branch)

    x1, x2 = (rng.standard_normal((BATCH, SIZE, SIZE, 3)).astype(np.float32) for _ in range(2))
    crop = rng.standard_normal((BATCH, CROP, CROP, 3)).astype(np.float32)

    # --- the four rotations and their labels -------------------------------------------------------
    rotated, rot_labels = official_main.rotate_images(common.nchw(crop))
    ours_rot = np.concatenate([np.asarray(rot90(crop, tf.fill([BATCH, 1], k))) for k in range(4)])
    cmp.compare("augment", "rotate_images vs rot90(crop, k), k = 0..3", ours_rot,
                rotated.numpy().transpose(0, 2, 3, 1), common.OUTPUT_TOL,
                note="flip(3).transpose(2, 3) = counter-clockwise, as tf.image.rot90")  # fmt: skip
    views = {"v1": x1, "v2": x2, **{f"rot{k}": ours_rot[k * BATCH : (k + 1) * BATCH] for k in range(4)}}
    batch = {"views": {k: tf.constant(v) for k, v in views.items()}}

    # --- ours --------------------------------------------------------------------------------------
    backbone = ResNetBackbone([2, 2, 2, 2], stem="cifar")
    # E-SSL's SimCLR: cross-view InfoNCE at temperature 0.5; its projector Linear(no bias)-BN-ReLU-Linear(no bias)-
    # BN(affine=False). Our hidden Dense keeps a bias (zero here): the BN after it cancels it, in value and gradient.
    simclr = SimCLR(projector_units=list(PROJ), temperature=TEMPERATURE, negatives="cross_view",
                    projector_last_bias=False, projector_last_bn="non_affine")  # fmt: skip
    essl = ESSL(weight=LMBD, hidden_units=(2048, 2048))
    model = PairModel(backbone, simclr, objectives=[essl], image_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    model.compute_losses(batch, training=False)

    def load_all(state):
        load_resnet_weights(backbone, state, "encoder.")
        loader = TorchWeightLoader(state, "projector.net.")
        hidden, last = simclr.projector.dense_layers
        loader.assign(hidden.kernel, loader.take("0.weight").T, "0.weight")
        hidden.bias.assign(np.zeros(hidden.bias.shape, np.float32))
        loader.batch_norm(simclr.projector.norm_layers[0], "1")
        loader.assign(last.kernel, loader.take("3.weight").T, "3.weight")
        loader.batch_norm(simclr.projector.norm_layers[1], "4")  # no gamma, beta: running statistics only
        head = TorchWeightLoader(state, "predictor2.")
        for dense, key in zip(essl.head.dense_layers, ("0", "3", "6")):
            head.dense(dense, key)
        for norm, key in zip(essl.head.norm_layers, ("1", "4")):
            head.layer_norm(norm, key)

    names = variable_map(load_all, sd, model.variables)
    trainable = {n: v for n, v in names.items() if any(v is t for t in model.trainable_variables)}
    missing = sorted(n for n, _ in branch.named_parameters() if n not in trainable and not n.startswith("net."))
    if missing:
        raise SystemExit(f"official parameters with no Keras variable: {missing}")

    # --- backbone, heads, losses -------------------------------------------------------------------
    enc = branch.encoder
    branch.eval()
    with torch.no_grad():
        theirs_eval = enc(common.nchw(x1))
    branch.train()
    cmp.compare("backbone", "pooled, eval (running stats)", backbone(x1, training=False)["pooled"], theirs_eval,
                common.OUTPUT_TOL)  # fmt: skip
    branch.load_state_dict(initial)

    def official_forward(b=branch, dtype=torch.float32):
        """`ssl_loop`'s forward_step for --loss=simclr, with its pieces."""
        enc, proj = b.encoder, b.projector
        b1, b2 = enc(common.nchw(x1).to(dtype)), enc(common.nchw(x2).to(dtype))
        z1, z2 = proj(b1), proj(b2)
        simclr_loss = official_main.info_nce_loss(z1, z2) / 2 + official_main.info_nce_loss(z2, z1) / 2
        images, labels = official_main.rotate_images(common.nchw(crop).to(dtype))
        logits = b.predictor2(enc(images.to(dtype)))
        rot_loss = F.cross_entropy(logits, labels)
        return dict(b1=b1, z1=z1, logits=logits, simclr=simclr_loss, rot=rot_loss, total=simclr_loss + LMBD * rot_loss)

    theirs = official_forward()
    branch.load_state_dict(initial)

    def our_forward():
        pair = model.pair_outputs(batch, training=True)
        z1 = simclr.project(pair["invariant"]["v1"], training=True)
        logits, _ = essl.logits(pair, training=True)
        _, terms = model.compute_losses(batch, training=True)
        z2 = simclr.project(pair["invariant"]["v2"], training=True)
        return dict(b1=pair["features"]["v1"], z1=z1, z2=z2, logits=logits, terms=terms)

    load_all(sd)
    ours = our_forward()
    cmp.compare("backbone", "pooled, train (batch stats)", ours["b1"], theirs["b1"], common.OUTPUT_TOL)
    cmp.compare("loss", "projection z1 (BN(affine=False) output)", ours["z1"], theirs["z1"], common.OUTPUT_TOL)
    cmp.compare("loss", "rotation logits (4B rotated crops, one BN batch)", ours["logits"], theirs["logits"],
                common.OUTPUT_TOL)  # fmt: skip
    cmp.compare("loss", "rotation cross-entropy", ours["terms"]["essl"], theirs["rot"], common.LOSS_TOL)
    cmp.compare("loss", "SimCLR: nt_xent(negatives='cross_view') vs info_nce_loss, symmetrised",
                ours["terms"]["simclr"], theirs["simclr"], common.LOSS_TOL)  # fmt: skip
    cmp.compare("loss", "SimCLR: our default nt_xent(negatives='all') vs info_nce_loss",
                nt_xent(ours["z1"], ours["z2"], temperature=TEMPERATURE), theirs["simclr"], common.LOSS_TOL,
                explained=True, note="explained: the library default (NT-Xent: each embedding against the 2B - 1 "
                "others, same-view negatives too); config.model.invariance.simclr.negatives='cross_view' is E-SSL's")  # fmt: skip
    total = ours["terms"]["simclr"] + LMBD * ours["terms"]["essl"]
    cmp.compare("loss", "total = SimCLR + 0.4 rotation", total, theirs["total"], common.LOSS_TOL)

    # --- gradients of the rotation term (all of E-SSL's own part), and of the total -----------------
    branch.load_state_dict(initial)
    branch.zero_grad()
    official_forward()["rot"].backward()
    rot_grads = {
        n: p.grad.numpy().copy() for n, p in branch.named_parameters() if n in trainable and p.grad is not None
    }
    load_all(sd)
    ours_rot_grads = dict(zip(trainable, common.keras_gradients(lambda: our_forward()["terms"]["essl"],
                                                                list(trainable.values()))))  # fmt: skip
    # float32 rounding: the rotated 16 px crops give gradients with strong cancellation in the first layers; the
    # official code in float64 is the reference both float32 results are measured against.
    branch64 = copy.deepcopy(branch).double()
    branch64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in initial.items()})
    branch64.zero_grad()
    official_forward(branch64, torch.float64)["rot"].backward()
    rot64 = {n: p.grad.numpy().copy() for n, p in branch64.named_parameters() if n in rot_grads}
    ours_rot = {n: common.torch_layout(ours_rot_grads[n], g.shape) for n, g in rot_grads.items()}
    cmp.compare_many("gradients", [(n, rot_grads[n], rot64[n]) for n in rot_grads], 1.0,
                             note="reference: the official float32 gradients of the rotation CE vs the same in float64")  # fmt: skip
    cmp.compare_many("gradients", [(n, ours_rot[n], rot64[n]) for n in rot_grads], common.GRAD_TOL,
                     note="ours (float32) vs the official code in float64, gradients of the rotation CE")  # fmt: skip
    cmp.compare_many("gradients", [(n, ours_rot[n], rot_grads[n]) for n in rot_grads], common.GRAD_TOL,
                   note="explained: ours vs the official float32 gradients of the rotation CE: the official float32 "
                   "result is the one far from float64 (rows above; cancellation in the first layers)", explained=True)  # fmt: skip

    branch.load_state_dict(initial)
    lr0 = LR * BSZ / 256
    sgd = torch.optim.SGD(branch.parameters(), momentum=0.9, lr=lr0, weight_decay=WD)
    lr1 = official_main.adjust_learning_rate(EPOCHS, WARMUP, lr0, sgd, range(STEPS_PER_EPOCH), step=1)
    branch.zero_grad()
    official_forward()["total"].backward()
    grads = {n: p.grad.numpy().copy() for n, p in branch.named_parameters() if n in trainable}
    sgd.step()
    after = common.numpy_state_dict(branch)
    load_all(sd)

    def our_total():
        terms = our_forward()["terms"]
        return terms["simclr"] + LMBD * terms["essl"]

    ours_grads = dict(zip(trainable, common.keras_gradients(our_total, list(trainable.values()))))
    ours_total = {n: common.torch_layout(ours_grads[n], g.shape) for n, g in grads.items()}
    branch64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in initial.items()})
    branch64.zero_grad()
    official_forward(branch64, torch.float64)["total"].backward()
    total64 = {n: p.grad.numpy().copy() for n, p in branch64.named_parameters() if n in grads}
    cmp.compare_many("gradients", [(n, grads[n], total64[n]) for n in grads], 1.0,
                     note="reference: the official float32 gradients of the total vs the same in float64")  # fmt: skip
    cmp.compare_many("gradients", [(n, ours_total[n], total64[n]) for n in grads], common.GRAD_TOL,
                     note="ours (float32, E-SSL's SimCLR options) vs the official code in float64, gradients of the "
                     "total")  # fmt: skip
    cmp.compare_many("gradients", [(n, ours_total[n], grads[n]) for n in grads], common.GRAD_TOL, explained=True,
                     note="explained: ours vs the official float32 gradients of the total: as for the rotation CE, the "
                     "official float32 result is the one far from float64 (rows above; the first layers' BN biases)")  # fmt: skip
    hidden_bias = simclr.projector.dense_layers[0].bias  # ours only: E-SSL's first projector Linear has no bias
    load_all(sd)
    (bias_grad,) = common.keras_gradients(our_total, [hidden_bias])
    cmp.compare("gradients", "projector hidden Dense bias (ours only) vs 0", bias_grad,
                np.zeros(hidden_bias.shape, np.float32), common.GRAD_TOL,
                note="the BN after it cancels it: zero gradient (absolute difference), so it stays 0 as E-SSL's "
                "Linear(bias=False)")  # fmt: skip

    # one step: torch SGD(momentum 0.9, coupled wd 5e-4) at the lr of step 1 of the warmup, on the official gradients
    official_g = {n: common.keras_layout(grads[n], tuple(trainable[n].shape)) for n in grads}
    load_all(sd)
    CoupledSGD(lr1, momentum=0.9, weight_decay=WD).apply_gradients([(official_g[n], trainable[n]) for n in grads])
    stepped = {n: common.torch_layout(np.asarray(trainable[n]), after[n].shape) for n in grads}
    cmp.compare_many("step", [(n, stepped[n], after[n]) for n in grads], common.GRAD_TOL,
                     note=f"CoupledSGD(lr {lr1:.3g} = step 1 of the warmup, momentum 0.9, wd 5e-4), official gradients")  # fmt: skip
    load_all(sd)
    keras.optimizers.SGD(lr1, momentum=0.9, weight_decay=WD).apply_gradients(
        [(official_g[n], trainable[n]) for n in grads]
    )
    cmp.compare_many("step", [(n, common.torch_layout(np.asarray(trainable[n]), after[n].shape) - sd[n],
                                  after[n] - sd[n]) for n in grads], common.GRAD_TOL,
                   note="explained: the update w1 - w0 of Keras SGD(weight_decay=5e-4): decoupled decay "
                   "(optim.weight_decay_mode='decoupled', the library default; 'coupled' is the row above)", explained=True)  # fmt: skip
    return cmp.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
