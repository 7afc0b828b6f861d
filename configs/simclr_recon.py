"""SimCLR (Chen et al., ICML 2020) + cross-attention reconstruction.

SimCLR (Chen et al., ICML 2020): NT-Xent (temperature 0.1) on a 512-128 projector.
Plus the cross-attention reconstruction branch (Wang, Krajsek & Scharr, arXiv 2412.03314): 128
channels split 64 invariant (the loss above) / 64 equivariant; the equivariant tokens of view 2
query those of view 1 (no learned weights) and a small decoder rebuilds view 2.
Data: the rendered mini-3DIEBench (pairs = two renders of one object, no augmentation, as SIE);
photos with the SimCLR policy instead: `--config.data.source=skimage_photos`. Settings shared by
all methods, and each method's projector, are in keras_eqssl/default_config.py.

    keras-eqssl-train --config=configs/simclr_recon.py
    keras-eqssl-train --config=configs/simclr_recon.py --config.data.source=skimage_photos --config.workdir=runs/simclr_recon_photos
"""

from keras_eqssl.default_config import method_config


def get_config():
    return method_config("simclr", recon=True)
