"""Why does (or doesn't) the reconstruction branch keep a transformation? Diagnostics of trained runs.

Reads the runs `tools/compare.py` trained (`--out/<data>/<run>/seed<N>/model.keras`) and, on
pairs made by each run's own augmentation policy from data it never trained on, prints:

1. **What the decoder uses** (runs with the branch). The reconstruction error, as R² against
   the per-channel mean of the target (1 = perfect, 0 = no better than the mean colour), when the
   decoder gets what it was trained with, and when one input is taken away:
   - `paired`: queries from the rebuilt view, keys/values from the other view of the same image;
   - `other source`: keys/values from another image of the batch (no content of this image);
   - `no target`: queries from the source view too (nothing of the rebuilt view: its
     transformation cannot reach the decoder);
   and the attention's entropy over log N (1 = uniform over the N source tokens, 0 = one token).
   If `no target` scores as well as `paired`, the decoder does not need the rebuilt view's
   transformation, so the branch puts no pressure on the encoder to keep it.
2. **Where the transformation is** (every run, and a random init of the base config). The
   parameter probe's pairs `(I, g(I))`, I a view of the run's stream and g a draw of one family
   (`--family`, rotation ±45° by default), and the ridge R² of g's parameters from the equivariant
   channels (the whole embedding for runs without a split) read three ways: `pooled`, the vector
   the probes and the SavedModel see, `[pool(E(I)), pool(E(g I))]`; `map`, the token maps
   `[E(I), E(g I)]` flattened (the layout kept); `attention`, the (N, N) parameter-free
   cross-attention of E(g I) over E(I) flattened (the correspondence the decoder is given).
   Fit on images of the training data, scored on held-out ones (the held-out photos, or the
   renders' val objects); the penalty is chosen by cross-validation grouped by photo (class for
   the renders).

    .venv/bin/python tools/diagnose_recon.py --data=photos --runs=vicreg,vicreg_recon_l5
    .venv/bin/python tools/diagnose_recon.py --data=renders --runs=vicreg,vicreg_recon_l5 --seeds=0

Each figure is the mean ± std over the seeds. Prints a Markdown table and, with two seeds or more,
each run's differences from the random init and from its base, paired by seed, with 95% t
intervals and Holm–Bonferroni across the table (`keras_eqssl.probes.statistics`); `--json` also
writes the per-seed figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import compare  # noqa: E402  (the runs and data sets of the comparison)
from results_page import mean_std  # noqa: E402

RECON_KEYS = ("paired", "other source", "no target")
FEATURE_KINDS = ("pooled", "map", "attention")


def run_config(run: compare.Run, data: str, seed: int, sets=()):
    """The config `compare.py` trained `run` with: its file, the data's and run's overrides."""
    from keras_eqssl.cli._config import load_config_file

    return compare._apply_sets(
        load_config_file(ROOT / "configs" / f"{run.config}.py"),
        (*compare.DATA[data]["overrides"], *run.overrides, *sets, f"seed={seed}"),
    )


def pair_batches(config, num_batches: int, held_out: bool) -> list[dict]:
    """`num_batches` batches of the run's training stream, or with `held_out` of the same stream
    on data the run never trained on (the held-out photos, or the renders' val split) and other
    draws."""
    from keras_eqssl.data.train_batches import train_batches

    config = config.copy_and_resolve_references()
    split = "train"
    if held_out:
        config.seed = config.seed + 1000
        if config.data.source == "skimage_photos":
            config.data.photos = "test"
        elif config.data.source == "threedie":
            split = "val"
    dataset, _ = train_batches(config, split=split, progress=False)
    return list(dataset.take(num_batches))


def family_pairs(batches: list[dict], family: str, seed: int) -> list[dict]:
    """The parameter probe's pairs: `(I, g(I))` with I the first view of each pair of `batches`
    and g a draw of the probe's `family` (rotation: ±45°); the targets are g's parameters."""
    import tensorflow as tf

    from keras_eqssl.augment.seeds import fold
    from keras_eqssl.probes.params import _family_transformer

    transform, out, first = _family_transformer(family), [], 0
    for step, batch in enumerate(batches):
        images = tf.cast(tf.round(tf.clip_by_value(batch["views"]["v1"], 0.0, 1.0) * 255.0), tf.uint8)
        moved, targets = transform(images, fold(seed, step), tf.constant(first, tf.int32))
        out.append({"views": {"v1": images, "v2": moved}, "target": targets.numpy(), "label": batch["label"]})
        first += len(targets)
    return out


def token_features(model, pairs: list[dict]) -> dict:
    """Per pair `(I, g I)`: the equivariant channels (the whole embedding without a split) read
    three ways, the family's targets and the group (photo or class):
    `pooled` `[pool(E(I)), pool(E(g I))]`, `map` `[E(I), E(g I)]` flattened, and `attention` the
    (N, N) parameter-free cross-attention of E(g I) over E(I) flattened (which token of I each
    token of g I draws from: the correspondence the decoder is given)."""
    from keras_eqssl.nn.cross_attention import CrossAttention

    recon = _recon_layer(model)
    attend = recon.attention if recon is not None else CrossAttention()
    pooled, maps, attention = [], [], []
    for pair in pairs:
        out = model.pair_outputs(pair, training=False)
        tokens = [np.asarray(out["tokens"][v], np.float32) for v in ("v1", "v2")]
        pooled.append(np.concatenate([t.mean(axis=1) for t in tokens], axis=1))
        maps.append(np.concatenate([t.reshape(len(t), -1) for t in tokens], axis=1))
        _, a = attend(tokens[1], tokens[0], return_attention=True)
        attention.append(np.asarray(a).reshape(len(a), -1))
    return {
        "pooled": np.concatenate(pooled),
        "map": np.concatenate(maps),
        "attention": np.concatenate(attention),
        "target": np.concatenate([p["target"] for p in pairs]),
        "groups": np.concatenate([np.asarray(p["label"]) for p in pairs]),
    }


def _recon_layer(model):
    layers = [layer for layer in model.objectives if hasattr(layer, "reconstruct_view")]
    return layers[0] if layers else None


def family_r2(train: dict, test: dict) -> dict:
    """Held-out R² of the family's parameters from the pooled vector and from the token map."""
    from sklearn.metrics import r2_score

    from keras_eqssl.probes.linear import fit_ridge

    out = {}
    for kind in FEATURE_KINDS:
        head = fit_ridge(train[kind], train["target"], train["groups"])
        out[kind] = float(r2_score(test["target"], head.predict(test[kind])))
    return out


def recon_diagnostics(model, batches: list[dict]) -> dict | None:
    """R² of the reconstruction with all inputs, without the image's content, and without the
    target's transformation; the attention's normalised entropy. None if the model has no branch."""
    from keras import ops

    layer = _recon_layer(model)
    if layer is None:
        return None
    errors = {k: [] for k in RECON_KEYS}
    constant, entropy = [], []
    for batch in batches:
        pair = model.pair_outputs(batch, training=False)
        for name in layer.views_to_reconstruct():
            other = "v1" if name == "v2" else "v2"
            target = np.asarray(layer._target(pair["views"][name]))
            source = pair["tokens"][other]
            query = pair["tokens"][name] if layer.query_from == "target" else source
            shuffled = ops.roll(source, 1, axis=0)  # another image's tokens
            other_query = query if layer.query_from == "target" else shuffled
            for key, (q, s, code) in {
                "paired": (query, source, pair["tokens"][name]),
                "other source": (other_query, shuffled, pair["tokens"][name]),
                "no target": (source, source, source),  # with target_code, the source's code
            }.items():
                x_hat = np.asarray(layer.decode(q, s, code, training=False))
                errors[key].append(np.mean((x_hat - target) ** 2))
            constant.append(np.mean((target - target.mean(axis=(1, 2), keepdims=True)) ** 2))
            _, attention = layer.attention(query, source, return_attention=True)
            a = np.asarray(attention, np.float64)
            entropy.append(np.mean(-(a * np.log(a + 1e-12)).sum(-1)) / np.log(a.shape[-1]))
    base = float(np.mean(constant))
    out = {k: 1.0 - float(np.mean(v)) / base for k, v in errors.items()}
    out["attention entropy"] = float(np.mean(entropy))
    return out


def diagnose(model, family: str, fit: list[dict], score: list[dict], held_out: list[dict]) -> dict:
    """Every figure of one model: the family's R² from the pooled vector and the token map
    (`fit` and `score` pairs), and the reconstruction's (on `held_out` training-stream batches)."""
    r2 = family_r2(token_features(model, fit), token_features(model, score))
    figures = {f"{family} R² ({k})": v for k, v in r2.items()}
    recon = recon_diagnostics(model, held_out)
    if recon:
        figures.update({f"recon R² ({k})" if k in RECON_KEYS else k: v for k, v in recon.items()})
    return figures


def _load(workdir: pathlib.Path):
    import keras

    import keras_eqssl.methods  # noqa: F401  (registers the classes model.keras names)

    path = workdir / "model.keras"
    if not path.exists():
        raise SystemExit(f"[diagnose] {path} does not exist: train it first with tools/compare.py (same --out)")
    return keras.saving.load_model(path, compile=False)


def _random_init(config):
    import keras

    from keras_eqssl.methods.factory import model_from_config

    keras.utils.set_random_seed(config.seed)
    return model_from_config(config)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="photos", choices=sorted(compare.DATA))
    parser.add_argument("--runs", default="vicreg,vicreg_recon_l5", help=f"comma list of {list(compare.RUNS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--family", default="rotation", help="the parameter probe's family to regress")
    parser.add_argument("--out", default="runs/compare", help="compare.py's --out")
    parser.add_argument("--batches", type=int, default=24, help="batches of pairs for fitting, and for scoring")
    parser.add_argument("--set", action="append", default=[], help="the overrides given to compare.py")
    parser.add_argument("--json", default="", help="also write the per-seed figures here")
    parser.add_argument("--md", default="", help="also write the tables here, with the command, commit and CPU")
    args = parser.parse_args(argv)
    runs = [compare.RUNS[name] for name in args.runs.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    per_row: dict[str, list[dict]] = {}
    for seed in seeds:
        base = run_config(runs[0], args.data, seed, args.set)
        held_out = pair_batches(base, args.batches, held_out=True)
        fit = family_pairs(pair_batches(base, args.batches, held_out=False), args.family, seed)
        score = family_pairs(held_out, args.family, seed + 1)
        per_row.setdefault(f"{runs[0].label}, random init", []).append(
            diagnose(_random_init(base), args.family, fit, score, held_out)
        )
        for run in runs:
            workdir = ROOT / args.out / args.data / run.name / f"seed{seed}"
            print(f"[diagnose] {args.data}/{run.name}/seed{seed}", flush=True)
            per_row.setdefault(run.label, []).append(diagnose(_load(workdir), args.family, fit, score, held_out))

    columns = sorted({k for rows in per_row.values() for r in rows for k in r}, key=_column_order)
    lines = [f"{args.data}, seeds {seeds}, {args.batches} batches to fit and {args.batches} held out.", ""]
    lines += figure_table(per_row, columns)
    if len(seeds) > 1:
        lines += ["", *difference_table(per_row, runs, columns)]
    print("\n" + "\n".join(lines))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(per_row, indent=1))
    if args.md:
        version = compare.source_version()
        command = shlex.join([".venv/bin/python", "tools/diagnose_recon.py", *sys.argv[1:]])
        dirty = " (with uncommitted changes)" if version["dirty"] else ""
        head = [f"Made by `{command}` at commit `{version['commit'][:12]}`{dirty}, on {compare.usable_cores()} CPU "
                f"cores ({compare.cpu_model()}).", "", *chart_lines(args.data)]  # fmt: skip
        pathlib.Path(args.md).write_text("\n".join(head + lines) + "\n")


def chart_lines(data: str) -> list[str]:
    """The page's chart of the first table (drawn by `tools/make_figures.py --only diagnosis_<data>`)."""
    return [
        f"![The diagnosis on the {data} as a chart](../images/diagnosis_{data}.png)",
        "*The first table below as a chart: each measure's mean ± std over the seeds, each seed a small dot.*",
        "",
    ]


def figure_table(per_row: dict, columns: list[str]) -> list[str]:
    """Markdown lines: mean ± std over the seeds of every figure of every row."""
    out = ["| run | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, rows in per_row.items():
        cells = [mean_std(values) if (values := [r[c] for r in rows if c in r]) else "–" for c in columns]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def difference_table(per_row: dict, runs: list, columns: list[str]) -> list[str]:
    """Markdown lines: each run against the random init and against its base (when listed),
    paired by seed, with 95% t intervals; Holm–Bonferroni across the whole table marks `*`
    (`keras_eqssl.probes.statistics`)."""
    from keras_eqssl.probes.statistics import RULE, family_verdicts, paired_difference

    init = f"{runs[0].label}, random init"
    labels = {run.name: run.label for run in runs}
    pairs = [(run.label, init) for run in runs] + [(run.label, labels[run.base]) for run in runs if run.base in labels]
    family = {}
    for a, b in pairs:
        for c in columns:
            if all(c in r for r in per_row[a] + per_row[b]):
                family[(a, b, c)] = paired_difference([r[c] for r in per_row[a]], [r[c] for r in per_row[b]])
    verdicts = family_verdicts(family)
    shown = [c for c in columns if any(k[2] == c for k in verdicts)]
    out = [f"Differences ({len(verdicts)} tested together). {RULE}", ""]
    out += ["| Δ (95% interval) | " + " | ".join(shown) + " |", "|---|" + "---:|" * len(shown)]
    for a, b in pairs:
        cells = [verdicts[(a, b, c)].text() if (a, b, c) in verdicts else "–" for c in shown]
        out.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return out


def _column_order(name: str) -> tuple:
    order = [
        *[f"{f} R² ({k})" for f in ("rotation", "color", "blur", "translation", "all") for k in FEATURE_KINDS],
        *[f"recon R² ({k})" for k in RECON_KEYS],
    ]
    return (order.index(name) if name in order else len(order), name)


if __name__ == "__main__":
    main()
