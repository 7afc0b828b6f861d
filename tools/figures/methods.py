"""One diagram per method, with the tensor names and shapes of its config (`configs/<method>.py`).

B is the batch. Shapes are those of the config named in each title; the docs page of each method
(`docs/methods/<method>.md`) has the equations.
"""

from __future__ import annotations

from figures.diagram import Arrow, Box, draw


def recon(path: str) -> str:
    """Cross-attention reconstruction, as the main job (the default config) trains it."""
    boxes = [
        Box("v1", 1.1, 4.5, "view x1\n(B, 32, 32, 3)", "data", w=1.6),
        Box("v2", 1.1, 2.3, "view x2\n(B, 32, 32, 3)", "data", w=1.6),
        Box("f1", 3.3, 4.5, "backbone f\nResNet-18, cifar stem, x1/4", "net", w=2.1),
        Box("f2", 3.3, 2.3, "backbone f\n(the same weights)", "net", w=2.1),
        Box("z1", 5.6, 4.5, "Z1: 4 x 4 tokens\n(B, 16, 128)", w=1.7),
        Box("z2", 5.6, 2.3, "Z2: 4 x 4 tokens\n(B, 16, 128)", w=1.7),
        Box("inv", 8.0, 5.4, "y_inv,k = mean over tokens of\nZ_k[..., :64], k = 1, 2   (B, 64)", "op", w=2.6),
        Box("e1", 8.0, 4.0, "E1 = Z1[..., 64:]\n(B, 16, 64)", w=1.8),
        Box("e2", 8.0, 2.3, "E2 = Z2[..., 64:]\n(B, 16, 64)", w=1.8),
        Box("proj", 10.6, 5.4, "VICReg projector", "net", w=1.8, h=0.5),
        Box("ssl", 12.6, 5.4, "L_VICReg(y_inv,1, y_inv,2)", "loss", w=2.0, h=0.5),
        Box(
            "att",
            10.8,
            3.2,
            "cross-attention, no weights\nA = softmax(E2 E1^T / sqrt 64)\n(B, 16, 16)\nH2 = A E1   (B, 16, 64)",
            "op",
            w=2.6,
            h=1.1,
        ),  # fmt: skip
        Box("dec", 10.8, 1.6, "decoder (ConvDecoder)\n4 x 4 -> 32 x 32", "net", w=2.1),
        Box("xhat", 13.0, 1.6, "x2_hat\n(B, 32, 32, 3)", "data", w=1.5),
        Box("rec", 13.0, 3.2, "L_recon =\nmean((x2_hat - x2)^2)", "loss", w=1.8, h=0.7),
    ]
    arrows = [
        Arrow("v1", "f1"), Arrow("v2", "f2"), Arrow("f1", "z1"), Arrow("f2", "z2"),
        Arrow("z1", "inv", "invariant\nchannels"), Arrow("inv", "proj"),
        Arrow("proj", "ssl"), Arrow("z1", "e1"), Arrow("z2", "e2", "equivariant\nchannels"),
        Arrow("e1", "att", "keys, values"), Arrow("e2", "att", "queries"), Arrow("att", "dec", "H2"),
        Arrow("dec", "xhat"), Arrow("xhat", "rec"),
    ]  # fmt: skip
    notes = (
        "L = L_VICReg + lambda * L_recon   (lambda = 5; x2: the normalised view the encoder saw)\n"
        "The decoder needs view 2's layout (queries) and view 1's content (values): the transformation\n"
        "has to stay in the equivariant channels. Only the backbone is exported."
    )
    title = "Cross-attention reconstruction (the main job: VICReg + recon, default config)"
    return draw(path, 14.2, 6.3, boxes, arrows, title, notes)


def stl(path: str) -> str:
    """STL: aligned image pairs, transformation codes and the hypernetwork (`configs/stl.py`)."""
    boxes = [
        Box(
            "pair",
            1.4,
            3.6,
            "aligned pairs: images\nA_i = 2i, B_i = 2i+1 share\nt1 (view 1), t2 (view 2)",
            "data",
            w=2.3,
            h=0.95,
        ),  # fmt: skip
        Box("v1", 1.4, 5.3, "view 1: t1(x)\n(B, 96, 96, 3)", "data", w=1.7),
        Box("v2", 1.4, 1.9, "view 2: t2(x)\n(B, 96, 96, 3)", "data", w=1.7),
        Box("f", 3.9, 3.6, "backbone\nResNet-18, x1\n(both views)", "net", w=1.7, h=0.9),
        Box("y1", 6.0, 5.3, "y1  (B, 512)", w=1.5, h=0.5),
        Box("y2", 6.0, 1.9, "y2  (B, 512)", w=1.5, h=0.5),
        Box("g", 6.0, 3.6, "transformation\nencoder g: MLP\n1024 -> 128 -> 128", "net", w=1.9, h=0.9),
        Box("u", 8.4, 3.6, "u12 = g([y1, y2])\nu21 = g([y2, y1])\n(B, 128) each", w=1.9, h=0.9),
        Box(
            "hyper",
            10.8,
            3.6,
            "hypernetwork W(u)\nDense(128 -> 512*512)\nu from the partner: u[swap]",
            "net",
            w=2.4,
            h=0.9,
        ),  # fmt: skip
        Box("yhat", 10.8, 5.3, "y1_hat = W(u21[swap]) y2\ny2_hat = W(u12[swap]) y1\n(B, 512)", w=2.4, h=0.9),
        Box("linv", 8.4, 6.1, "L_inv = NT-Xent(P_inv(y1), P_inv(y2))", "loss", w=3.2, h=0.45),
        Box("lequi", 13.4, 5.3, "L_equi = NT-Xent(\nP_eq(y), P_eq(y_hat))", "loss", w=2.0, h=0.7),
        Box(
            "ltrans",
            10.8,
            1.9,
            "L_trans = NT-Xent(P_t(u_A), P_t(u_B))\nsame t, other image = positive",
            "loss",
            w=3.1,
            h=0.7,
        ),  # fmt: skip
    ]
    arrows = [
        Arrow("pair", "v1"), Arrow("pair", "v2"), Arrow("v1", "f"), Arrow("v2", "f"), Arrow("f", "y1"),
        Arrow("f", "y2"), Arrow("y1", "g"), Arrow("y2", "g"), Arrow("g", "u"), Arrow("u", "hyper"),
        Arrow("hyper", "yhat", "linear map\n512 x 512"), Arrow("y1", "yhat", rad=-0.12),
        Arrow("yhat", "lequi"), Arrow("u", "ltrans"), Arrow("y1", "linv"),
    ]  # fmt: skip
    notes = (
        "L = L_inv + 1.0 * L_equi + 0.1 * L_trans   (NT-Xent, temperature 0.2; no split: all 512 channels)\n"
        "swap = each image's pair partner (2i <-> 2i+1): the map applied to A uses the code computed from B,\n"
        "so u helps only if it carries the shared transformation, not the image."
    )
    return draw(path, 14.8, 6.9, boxes, arrows, "STL: Self-supervised Transformation Learning (configs/stl.py)", notes)


def gtsa(path: str) -> str:
    """GTSA: student and EMA teacher ViTs on rotated multi-crops (`configs/gtsa.py`, tiny ViT)."""
    boxes = [
        Box("img", 1.2, 3.7, "source image\n(B, 128, 128, 3)", "data", w=1.7),
        Box("glob", 3.6, 5.0, "2 global crops g1, g2\n(B, 64, 64, 3), rot90 k\nscale 0.3-1", "data", w=2.1, h=0.9),
        Box("loc", 3.6, 2.3, "4 local crops l1..l4\n(B, 32, 32, 3), rot90 k\nscale 0.1-0.3", "data", w=2.1, h=0.9),
        Box("teacher", 6.4, 5.0, "teacher ViT + projector\nEMA of the student\n(no gradient)", "net", w=2.3, h=0.9),
        Box(
            "student",
            6.4,
            2.3,
            "student ViT (patch 8, dim 32,\ndepth 2) + projector\n+ conv predictor",
            "net",
            w=2.5,
            h=0.9,
        ),  # fmt: skip
        Box("tmap", 9.2, 5.0, "t_q: 8 x 8 map\n(B, 8, 8, 64)", w=1.8),
        Box("smap", 9.2, 2.3, "s_v: 8 x 8 or 4 x 4\n(B, h, w, 64)", w=1.9),
        Box("pairs", 11.4, 3.65, "every pair (q, v):\nteacher global q,\nstudent view v != q", "op", w=1.9, h=0.9),
        Box("roi", 14.0, 4.75, "RoIAlign on the shared box;\nteacher RoI turned\nrot90(k_v - k_q)", "op", w=2.4, h=0.9),
        Box(
            "pc",
            14.0,
            2.9,
            "patch correspondence:\neach token's most similar\ntoken (top half kept)",
            "op",
            w=2.4,
            h=0.9,
        ),
        Box("lcrop", 16.6, 4.75, "L_crop:\n-cos per cell", "loss", w=1.7),
        Box("lpc", 16.6, 2.9, "L_pc: -cos,\nboth ways", "loss", w=1.7),
        Box("rot", 14.0, 1.3, "rotation head on the\nmean student token -> 4", "net", w=2.4, h=0.65),
        Box("lrot", 16.6, 1.3, "L_rot: CE(k)", "loss", w=1.7, h=0.5),
    ]
    arrows = [
        Arrow("img", "glob"), Arrow("img", "loc"), Arrow("glob", "teacher"), Arrow("glob", "student", rad=0.15),
        Arrow("loc", "student"), Arrow("teacher", "tmap"), Arrow("student", "smap"), Arrow("tmap", "pairs"),
        Arrow("smap", "pairs"), Arrow("pairs", "roi"), Arrow("pairs", "pc"), Arrow("roi", "lcrop"),
        Arrow("pc", "lpc"), Arrow("student", "rot", rad=0.15), Arrow("rot", "lrot"),
        Arrow("student", "teacher", "EMA 0.996 -> 1", dashed=True, rad=-0.35),
    ]  # fmt: skip
    notes = (
        "L = L_crop + 0.5 * [step >= warm-up] * L_pc + 0.5 * L_rot, over every (teacher global q, student view v != q)\n"
        "pair. The teacher's region is turned by the crops' rotation difference, so the student must know how\n"
        "its crop was turned."
    )
    title = "GTSA: geometric-transformation-sensitive student/teacher ViT (configs/gtsa.py, tiny ViT)"
    return draw(path, 17.6, 6.6, boxes, arrows, title, notes)


def ciper(path: str) -> str:
    """CIPER: SimCLR on the invariant part, parameter prediction on the equivariant part."""
    boxes = [
        Box("v", 1.2, 3.6, "views x1, x2\n(B, 32, 32, 3)\n+ recorded params w", "data", w=1.8, h=0.9),
        Box("f", 3.5, 3.6, "backbone\nResNet-18, x1/4", "net", w=1.8),
        Box("fk", 5.8, 3.6, "f_k pooled\n(B, 128)", w=1.5),
        Box("inv", 8.0, 5.0, "f_k^inv = f_k[:, :64]\n(B, 64)", w=2.0),
        Box("equi", 8.0, 2.2, "f_k^equi = f_k[:, 64:]\n(B, 64)", w=2.0),
        Box("proj", 10.5, 5.0, "projector g 512 -> 128\nz_k (B, 128)", "net", w=2.1),
        Box(
            "pred", 10.5, 2.2, "head h on\nconcat[f_1^equi, f_2^equi]\nDense(256)-BN-ReLU-Dense(m)", "net", w=2.5, h=0.9
        ),  # fmt: skip
        Box("lssl", 13.4, 5.0, "L_inv = NT-Xent(z1, z2)\ntau = 0.1", "loss", w=2.1),
        Box("lpar", 13.4, 2.2, "L_params = MSE(y_hat, t)\ny_hat (B, m)", "loss", w=2.1, h=0.7),
        Box(
            "w",
            13.4,
            1.05,
            "t = the pair's recorded params w,\nstandardised over the batch (B, m)",
            "data",
            w=2.9,
            h=0.6,
        ),  # fmt: skip
    ]
    arrows = [
        Arrow("v", "f"), Arrow("f", "fk"), Arrow("fk", "inv", "invariant\npart"), Arrow("fk", "equi", "equivariant\npart"),
        Arrow("inv", "proj"), Arrow("proj", "lssl"), Arrow("equi", "pred"),
        Arrow("pred", "lpar"), Arrow("w", "lpar"),
    ]  # fmt: skip
    notes = (
        "L = L_inv + L_params   (ParameterPrediction, mode='pair'; m = the number of recorded parameters)\n"
        "Both heads are dropped after training; the backbone's 128 channels are exported."
    )
    return draw(path, 15.2, 6.3, boxes, arrows, "CIPER: contrastive head + parameter-prediction head", notes)


def augself(path: str) -> str:
    """AugSelf: SimCLR plus one head per augmentation predicting the two views' difference."""
    boxes = [
        Box("v", 1.2, 3.6, "views x1, x2\n(B, 32, 32, 3)\n+ params w1, w2", "data", w=1.8, h=0.9),
        Box("f", 3.5, 3.6, "backbone\nResNet-18, x1/4", "net", w=1.8),
        Box("fk", 5.8, 3.6, "f1, f2 pooled\n(B, 128) each\n(no split)", w=1.6, h=0.9),
        Box("proj", 8.3, 5.1, "SimCLR projector", "net", w=1.9, h=0.5),
        Box("lssl", 11.0, 5.1, "L_SimCLR (tau = 0.2)", "loss", w=2.1, h=0.5),
        Box("cat", 8.3, 2.6, "concat[f1, f2] (B, 256)\nand the reversed pair", "op", w=2.3),
        Box("hcrop", 11.0, 3.3, "h_crop: MLP 512-512 -> 4", "net", w=2.4, h=0.5),
        Box("hcol", 11.0, 1.9, "h_color: MLP 512-512 -> 4", "net", w=2.4, h=0.5),
        Box("lcrop", 13.9, 3.3, "mean((tanh(y_hat) - d_crop)^2)\nd: w1 - w2 of centre, size", "loss", w=2.6),
        Box("lcol", 13.9, 1.9, "mean((tanh(y_hat) - d_color)^2)\nd: jitter factors / range", "loss", w=2.6),
    ]
    arrows = [
        Arrow("v", "f"), Arrow("f", "fk"), Arrow("fk", "proj"), Arrow("proj", "lssl"), Arrow("fk", "cat"),
        Arrow("cat", "hcrop"), Arrow("cat", "hcol"), Arrow("hcrop", "lcrop"), Arrow("hcol", "lcol"),
    ]  # fmt: skip
    notes = (
        "L = L_SimCLR + sum_a lambda_a * L_a  over a in {crop, color}   (ParameterPrediction, mode='difference')\n"
        "Targets: the policy's recorded v1[key] - v2[key]; the heads see both orders of the pair."
    )
    return draw(path, 15.4, 6.0, boxes, arrows, "AugSelf: predicting how two views' augmentations differ", notes)


def essl(path: str) -> str:
    """E-SSL: SimCLR plus four-way rotation prediction on a small extra crop (`configs/essl.py`)."""
    boxes = [
        Box("v", 1.3, 4.9, "views v1, v2\n(B, 32, 32, 3)", "data", w=1.8),
        Box(
            "rot",
            1.3,
            2.2,
            "small crop in 4 turns\nrot0..rot3 = rot90(crop, k)\n(B, 16, 16, 3) each",
            "data",
            w=2.3,
            h=0.9,
        ),  # fmt: skip
        Box("f", 4.2, 3.55, "backbone\nResNet-18, x1/4\n(one call, all views)", "net", w=2.1, h=0.9),
        Box("fp", 6.9, 4.9, "f(v1), f(v2)\n(B, 128) each", w=1.8),
        Box("fr", 6.9, 2.2, "f(concat[rot0..rot3])\n(4B, 128)", w=2.1),
        Box("proj", 9.4, 4.9, "SimCLR projector", "net", w=1.9, h=0.5),
        Box("head", 9.4, 2.2, "head: Linear-LN-ReLU x 2\n(512-512) -> Linear(4)", "net", w=2.4),
        Box("lssl", 12.2, 4.9, "L_SimCLR(v1, v2)", "loss", w=1.9, h=0.5),
        Box("lrot", 12.2, 2.2, "L_rot = cross-entropy\n(logits (4B, 4), k)", "loss", w=2.1),
    ]
    arrows = [
        Arrow("v", "f"), Arrow("rot", "f"), Arrow("f", "fp"), Arrow("f", "fr"), Arrow("fp", "proj"),
        Arrow("proj", "lssl"), Arrow("fr", "head"), Arrow("head", "lrot"),
    ]  # fmt: skip
    notes = (
        "L = L_SimCLR + 0.4 * L_rot   (no split: the head reads the whole 128-d vector)\n"
        "The backbone runs in training mode on the rotated crops too (their own BatchNorm statistics)."
    )
    return draw(path, 13.6, 6.0, boxes, arrows, "E-SSL: rotation prediction beside SimCLR (configs/essl.py)", notes)


def sie(path: str) -> str:
    """SIE: VICReg on the invariant part, a rotation-conditioned linear predictor on the equivariant part."""
    boxes = [
        Box("v", 1.3, 4.1, "two renders x1, x2\nof one object\n(B, 32, 32, 3)", "data", w=1.9, h=0.9),
        Box("q", 1.3, 1.9, "q = quaternion of R1^-1 R2\nrel_rotation (B, 4)", "data", w=2.3),
        Box("f", 3.9, 4.1, "backbone\nResNet-18, x1/4", "net", w=1.8),
        Box("inv", 6.3, 5.3, "h_inv,k = h_k[:, :64]\n(B, 64)", w=2.0),
        Box("equi", 6.3, 3.4, "h_equi,k = h_k[:, 64:]\n(B, 64)", w=2.0),
        Box("vic", 8.9, 5.3, "VICReg projector", "net", w=1.8, h=0.5),
        Box("lvic", 12.0, 5.3, "L_VICReg (sim 10, std 10, cov 1)", "loss", w=2.8, h=0.5),
        Box("g", 8.9, 3.4, "g_equi: MLP\n512-512-512", "net", w=1.8),
        Box("z", 11.1, 3.4, "z1, z2\n(B, 512) each", w=1.6),
        Box("hyper", 6.3, 1.9, "hypernetwork A:\nDense(4 -> 512*512), no bias", "net", w=2.6),
        Box("zhat", 11.1, 1.9, "z2_hat = W(q) z1\n(B, 512)", w=1.9),
        Box("lsie", 13.8, 2.65, "L_SIE: 4.5 * MSE(z2_hat, z2)\n+ std + cov + pred_std", "loss", w=2.5, h=0.7),
    ]
    arrows = [
        Arrow("v", "f"), Arrow("f", "inv"), Arrow("f", "equi"), Arrow("inv", "vic"), Arrow("vic", "lvic"),
        Arrow("equi", "g"), Arrow("g", "z"), Arrow("q", "hyper"), Arrow("hyper", "zhat", "W(q): 512 x 512"),
        Arrow("z", "zhat"), Arrow("zhat", "lsie"), Arrow("z", "lsie"),
    ]  # fmt: skip
    notes = (
        "L = L_VICReg(h_inv) + L_SIE   (equi-factor 0.45 x sim 10 = 4.5 on the MSE; no stop-gradient)\n"
        "The rotation between the renders is known: the hypernetwork turns it into a linear map in embedding space."
    )
    return draw(
        path, 15.4, 6.3, boxes, arrows, "SIE: split invariant-equivariant representations (configs/sie.py)", notes
    )


DIAGRAMS = {
    "method_recon": recon,
    "method_stl": stl,
    "method_gtsa": gtsa,
    "method_ciper": ciper,
    "method_augself": augself,
    "method_essl": essl,
    "method_sie": sie,
}
