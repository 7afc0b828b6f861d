"""Pictures of probe results, one module per job; matplotlib is imported only when a plot is drawn.

- `bars`: `score_bars` (the key metrics per model) and `probe_bars` (one probe's target, the parts
  side by side), with error bars of ± one standard deviation over the probe repeats.
- `images`: `reconstruction_grid` (targets above, reconstructions below) and `denormalise`.
- `maps`: `embedding_map` (t-SNE or PCA of features, coloured by labels), `pca_2d`,
  `tsne_available`.

Figures are drawn on matplotlib's Agg canvas without pyplot (`_canvas`), so nothing here changes
the process's backend or needs a display, and nothing imports TensorFlow.
"""

from keras_eqssl.probes.plots.bars import BarData, model_colours, probe_bars, score_bars
from keras_eqssl.probes.plots.images import PAD, denormalise, reconstruction_grid
from keras_eqssl.probes.plots.maps import Map2D, embedding_map, pca_2d, tsne_available

__all__ = [
    "PAD",
    "BarData",
    "Map2D",
    "denormalise",
    "embedding_map",
    "model_colours",
    "pca_2d",
    "probe_bars",
    "reconstruction_grid",
    "score_bars",
    "tsne_available",
]
