"""Regenerates the documentation's pictures into docs/images/ (PNG, 100 dpi).

    python tools/make_figures.py                       # every picture
    python tools/make_figures.py --only method_recon   # one (repeat --only for more)
    python tools/make_figures.py --list                # the names

Pictures (the code is in tools/figures/):

- `method_<name>` (recon, stl, gtsa, ciper, augself, essl, sie): one diagram per method, boxes
  and arrows with the tensor names and shapes of its config (`figures/methods.py`). Instant.
- `views_<policy>` (simclr, byol, stl, gtsa, essl): a scikit-image photo and its views under the
  policy, each with its recorded parameters, drawn by `keras-eqssl-views` (`figures/pictures.py`).
  About 30 s each.
- `recon_grid`: the main job's reconstructions (targets above, decoder outputs below). It needs a
  short main-job run first (about 5 min on 2 CPU cores; `--recon-workdir` to read another one):

      keras-eqssl-train --config.workdir=/tmp/keras_eqssl_figures/main_job --config.eval.enabled=False \\
          --config.train.steps=150 --config.train.checkpoint_every=50 --config.train.image_every=0

- `diagnosis_photos`, `diagnosis_renders`: docs/diagnosis/<data>.json as dot charts, mean ± std
  over seeds, each seed a small dot (`figures/charts.py`).
- `speed_per_method`, `speed_end_to_end`: tables of docs/performance.md as charts, with the CPU
  model the page gives for them.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from figures.charts import CHARTS  # noqa: E402
from figures.methods import DIAGRAMS  # noqa: E402
from figures.pictures import PICTURES  # noqa: E402

FIGURES = {**DIAGRAMS, **CHARTS, **PICTURES}


def make(name: str, out: pathlib.Path, recon_workdir: str | None = None) -> pathlib.Path:
    """Writes figure `name` to `out/<name>.png` and returns that path."""
    if name not in FIGURES:
        raise SystemExit(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    if name == "recon_grid" and recon_workdir:
        FIGURES[name](str(path), workdir=recon_workdir)
    else:
        FIGURES[name](str(path))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="a figure's name (repeatable); default: all")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="where the PNGs go")
    parser.add_argument("--recon-workdir", default=None, help="the main-job run recon_grid reads")
    parser.add_argument("--list", action="store_true", help="print the figures' names and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(FIGURES))
        return
    for name in args.only or FIGURES:
        path = make(name, pathlib.Path(args.out), args.recon_workdir)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
