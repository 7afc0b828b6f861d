"""VICReg + cross-attention reconstruction (arXiv 2412.03314) on the real 3DIEBench, in SIE's setting.

The package's reconstruction method (`method_config("vicreg", recon=True)`) trained as
`sie_3diebench.py` trains SIE: the renders at 256 px (no augmentation, the other render is the
view), SIE's ResNet-18 (512-d, split 256 invariant / 256 equivariant), VICReg with SIE's
coefficients 10 / 10 / 1 ("consistent with SIE") on a 1024-1024-1024 projector, reconstruction
weight 1 (the paper's lambda), `torch.optim.Adam` lr 1e-3 constant with an L2 weight decay 1e-6,
batch 1024 for 2000 epochs (80,000 steps).

Aims at: the paper's 3DIEBench comparison with SIE ("parity with SIE"; its numbers are not
public in a form we could read): train
`sie_3diebench.py` at the same budget and compare the two exports.
[INFERRED]: the whole recipe past "VICReg, as SIE, split evenly" (the paper's 3DIEBench
hyper-parameters were not found): SIE's optimizer, budget and projector. The probes are off (they
load every render in memory); evaluate the export with `keras-eqssl-evaluate` on a subset.

    keras-eqssl-train --config=configs/papers/recon_3diebench.py --config.data.threedie.root=/data/3DIEBench
"""

from configs.common import method_config
from configs.papers import threedie_bench_resnet18


def get_config():
    c = method_config("vicreg", recon=True)
    c.workdir = "runs/recon_3diebench"
    threedie_bench_resnet18(c)
    c.model.invariance.vicreg.update(dict(sim_weight=10.0, std_weight=10.0, cov_weight=1.0))
    c.model.invariance.vicreg.projector_units = "1024-1024-1024"
    c.model.recon.weight = 1.0
    return c
