"""The comparisons with seeds: each method against its base and its init, on held-out data.

For each data set (`--data`) and each run of the grid (`--runs`), trains one encoder per seed
(`--seeds`) with the same budget, evaluates it with the probes on data no pretraining saw, and
writes `docs/results.json` (every per-seed value, the commit and CPU of the runs, the command and
the wall time) and, from it alone, `docs/results.md` (`tools/results_page.py`): per data set a
table of mean ± std over the seeds, each run against the network at initialisation and against
its base (paired by seed, with 95% t intervals, Holm–Bonferroni across the page:
`keras_eqssl.probes.statistics`), a bar chart and a plain verdict. The random-init row is the
first run's network before training (same seeds).

    .venv/bin/python tools/compare.py                                    # docs/results.md, 5 seeds, 150 steps
    .venv/bin/python tools/compare.py --seeds=0,1,2,3,4,5,6              # adds seeds 5 and 6 to the runs done
    .venv/bin/python tools/compare.py --only-done                        # rewrite the page from the runs done
    .venv/bin/python tools/compare.py --data=renders --runs=vicreg_recon_l5 --steps=600 --seeds=0,1,2 \
        --repeats=5 --out=runs/main_job --docs=docs/results_main_job.md --title="The main job over seeds"
    .venv/bin/python tools/compare.py --data=renders --seeds=0 --steps=50 --out=/tmp/cmp --docs=/tmp/cmp.md

Data sets:
- `photos`: pretraining on crops of 12 scikit-image photos with the combined augmentations (crop,
  colour jitter, grayscale, blur, rotation ±45°, translation ±2 px at 32 px); the parameter probe
  regresses each family's parameter from `[f(I), f(g(I))]` on crops of the 4 `HELD_OUT_PHOTOS`,
  each cut into 4x4 tiles that never overlap (each probe repeat holds out a quarter of the tiles);
- `renders`: the main job's data (the rendered mini-3DIEBench, pairs = two renders of an object,
  each rotated in-plane by up to ±45°); probes on the val split's objects;
- `multicrop`: GTSA and its DINO-like baseline on their own multi-crops of the photos.

Every (data, run, seed) keeps its workdir under `--out` with `eval.json` and `provenance.json`
(commit, CPU, command, wall time): a rerun skips what is done, so an interrupted comparison
resumes where it stopped, more seeds add to the ones done, and the page can be rewritten without
training. Runs are taken seed by seed, so an interrupted comparison has whole seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_eqssl.machine import cpu_model, usable_cores  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of the comparison: a config file, its overrides, and the run it is compared with."""

    name: str  # folder name
    label: str  # row name on the page
    config: str  # configs/<config>.py
    overrides: tuple = ()
    base: str | None = None  # the `name` of the run this one is compared with


# What STL's config changes from the base's backbone and optimizer, set back for a like-for-like run.
SAME_AS_BASE = (
    "model.stem=cifar", "model.width=0.25", "optim.name=adamw", "optim.lr=0.001", "optim.weight_decay=1e-06",
)  # fmt: skip
RUNS = {
    r.name: r
    for r in (
        Run("vicreg", "VICReg", "vicreg"),
        Run("vicreg_recon_l0.1", "VICReg + recon λ=0.1", "vicreg_recon", ("model.recon.weight=0.1",), "vicreg"),
        Run("vicreg_recon_l1", "VICReg + recon λ=1", "vicreg_recon", ("model.recon.weight=1.0",), "vicreg"),
        Run("vicreg_recon_l5", "VICReg + recon λ=5", "vicreg_recon", ("model.recon.weight=5.0",), "vicreg"),
        Run("simclr", "SimCLR", "simclr"),
        Run("simclr_recon_l5", "SimCLR + recon λ=5", "simclr_recon", ("model.recon.weight=5.0",), "simclr"),
        # STL, E-SSL (photos) and SIE (renders) beside their bases: the base's backbone and optimizer
        # (STL's recipe is SGD 0.03 on a full-width ImageNet-stem ResNet-18 at 96 px for 200 epochs).
        Run("stl", "STL", "stl", SAME_AS_BASE, "simclr"),
        Run("stl_augmix", "STL + AugMix", "stl_augmix", SAME_AS_BASE, "simclr"),
        Run("essl", "E-SSL", "essl", (), "simclr"),
        # SIE's pairs have no in-plane rotation (its action label is the 3D relative rotation), so
        # its base is VICReg on the same pairs.
        Run("vicreg_rot0", "VICReg, no in-plane rotation", "vicreg", ("data.threedie.rotation=0.0",)),
        Run("sie", "SIE", "sie", (), "vicreg_rot0"),
        # CIPER and AugSelf beside SimCLR (their invariance loss): CIPER on photos and renders,
        # AugSelf on photos (its recipe: crop scale 0.2-1, temperature 0.2, no split)
        Run("ciper", "CIPER", "ciper", (), "simclr"),
        Run("augself", "AugSelf", "augself", (), "simclr"),
        # GTSA beside its DINO-like baseline (same tiny ViT, multi-crops, optimizer and budget)
        Run("gtsa_dino", "DINO-like (ViT-tiny)", "gtsa_dino"),
        Run("gtsa", "GTSA (ViT-tiny)", "gtsa", (), "gtsa_dino"),
        # Wirings the paper leaves open (not in the default grid): --runs=vicreg,vicreg_recon_l5,vicreg_recon_source,...
        Run(
            "vicreg_recon_source",
            "VICReg + recon λ=5, queries from the source view",
            "vicreg_recon",
            ("model.recon.weight=5.0", "model.recon.query_from=source"),
            "vicreg",
        ),
        Run(
            "vicreg_recon_code",
            "VICReg + recon λ=5, target code",
            "vicreg_recon",
            ("model.recon.weight=5.0", "model.recon.target_code=True"),
            "vicreg",
        ),
        Run(
            "vicreg_recon_both",
            "VICReg + recon λ=5, both views reconstructed",
            "vicreg_recon",
            ("model.recon.weight=5.0", "model.recon.reconstruct=both"),
            "vicreg",
        ),
        # The rebuilt view reaches the decoder only through its pooled equivariant code: queries and
        # keys/values from the other view, the target's mean token beside every fused token.
        Run(
            "vicreg_recon_code_only",
            "VICReg + recon λ=5, code only",
            "vicreg_recon",
            ("model.recon.weight=5.0", "model.recon.query_from=source", "model.recon.target_code=True"),
            "vicreg_recon_l5",
        ),
    )
}
DEFAULT_RUNS = {  # CIPER and AugSelf vs SimCLR, the branch vs VICReg on photos; the branch (two wirings) vs
    # VICReg and CIPER vs SimCLR on renders. More rows: --runs (e.g. stl,essl on photos, vicreg_rot0,sie on renders).
    "photos": ("simclr", "ciper", "augself", "vicreg", "vicreg_recon_l5"),
    "renders": ("vicreg", "vicreg_recon_l5", "vicreg_recon_code_only", "simclr", "ciper"),
    "multicrop": ("gtsa_dino", "gtsa"),
}
RANDOM_INIT = "random init"
# Within one model: (equivariant column, invariant column) pairs the page compares seed by seed.
CONTRASTS = {"renders": (("params rotation R² (equi)", "params rotation R² (inv)"),)}
# The README's "Results at a glance" columns per data set.
GLANCE = {
    "photos": ("rotation R²", "colour R²", "blur R²", "translation R²"),
    "renders": ("3DIE colour R²", "3DIE rotation R²", "params rotation R²", "linear top-1"),
    "multicrop": ("rotation R²", "crop R²", "photo top-1 (linear)"),
}

DATA = {
    "photos": dict(
        overrides=(
            "data.source=skimage_photos", "data.photos=train", "data.image_size=64", "augment.size=32",
            "augment.rotation.degrees=45.0", "augment.translation.pixels=2.0",
        ),
        title="Crops of real photos (scikit-image), combined augmentations",
        short_title="Held-out photos",
    ),
    "renders": dict(
        overrides=(), title="The rendered mini-3DIEBench (the main job's data)", short_title="Mini-3DIEBench renders"
    ),
    # GTSA's case: non-object-centric photos, multi-crops at 64 / 32 px (the configs' own data).
    "multicrop": dict(
        overrides=(), title="Multi-crops of real photos: GTSA vs its DINO-like baseline", short_title="GTSA multi-crops"
    ),
}  # fmt: skip
EVAL_SIZE = {"photos": 32, "multicrop": 64}  # side of the held-out photo crops the probes see
PHOTO_PROBE_IMAGES = 4000  # crops of the quadrants of the 4 held-out photos (a repeat fits on 3,000)
TILES = 4  # each held-out photo is cut into TILES x TILES tiles; a probe repeat holds out a quarter of them
PROBE_SEED = 0  # the probes' draws, the same for every model and seed (paired)
PHOTO_FAMILIES = ("rotation", "color", "blur", "translation")
MULTICROP_FAMILIES = ("rotation", "crop", "translation", "color")
RENDER_FAMILIES = ("rotation",)


def _metrics(data: str):
    """The page's columns for one data set (`KeyMetric`s): the whole embedding of every model,
    then the equivariant part where a model has one."""
    from keras_eqssl.probes.results import KeyMetric, label

    if data == "photos":
        families = PHOTO_FAMILIES
        whole = [KeyMetric(f"{label(f)} R²", "params", f, "r2") for f in families]
        equi = [KeyMetric(f"{label(f)} R² (equi)", "params", f, "r2", parts=("equivariant",)) for f in families]
        return whole + equi
    if data == "multicrop":
        return [
            *(KeyMetric(f"{label(f)} R²", "params", f, "r2") for f in MULTICROP_FAMILIES),
            KeyMetric("photo top-1 (linear)", "classification", "class", "top1"),
            KeyMetric("photo top-1 (kNN)", "classification", "class", "top1", heads=("knn",)),
        ]
    return [
        KeyMetric("3DIE colour R²", "3diebench", "color", "r2"),
        KeyMetric("3DIE rotation R²", "3diebench", "rotation", "r2"),
        KeyMetric("params rotation R²", "params", "rotation", "r2"),
        KeyMetric("linear top-1", "classification", "class", "top1"),
        KeyMetric("kNN top-1", "classification", "class", "top1", heads=("knn",)),
        KeyMetric("3DIE colour R² (equi)", "3diebench", "color", "r2", parts=("equivariant",)),
        KeyMetric("3DIE rotation R² (equi)", "3diebench", "rotation", "r2", parts=("equivariant",)),
        KeyMetric("params rotation R² (equi)", "params", "rotation", "r2", parts=("equivariant",)),
        KeyMetric("params rotation R² (inv)", "params", "rotation", "r2", parts=("invariant",)),
    ]


def _train(run: Run, data: str, seed: int, args, workdir: pathlib.Path, random_init: bool) -> dict:
    if (workdir / "train_metrics.json").exists() and (workdir / "export").is_dir():
        return json.loads((workdir / "train_metrics.json").read_text())
    sets = [*DATA[data]["overrides"], *run.overrides, *args.set]
    command = [
        sys.executable, "-m", "keras_eqssl.cli.train", f"--config=configs/{run.config}.py",
        f"--config.workdir={workdir}", f"--config.train.steps={args.steps}",
        f"--config.train.checkpoint_every={args.steps}", f"--config.data.batch_size={args.batch}",
        f"--config.seed={seed}", "--config.eval.enabled=False", f"--config.eval.random_init={random_init}",
        "--config.train.progress=False", *[f"--config.{s}" for s in sets],
    ]  # fmt: skip
    print(f"[compare] {data}/{run.name}/seed{seed}: training", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(
            f"[compare] training {data}/{run.name} seed {seed} failed ({shlex.join(command)}):\n{result.stderr[-4000:]}"
        )
    provenance = {**source_version(), "cpu": cpu_model(), "cores": usable_cores(), "command": shlex.join(command),
                  "wall_seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    (workdir / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    return json.loads((workdir / "train_metrics.json").read_text())


def source_version() -> dict:
    """`{"commit": HEAD's hash, "dirty": whether tracked files differ from it}` of this checkout."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                            text=True).stdout  # fmt: skip
    return {"commit": commit or "unknown", "dirty": bool(status.strip())}


def _overridden_config(sets):
    """The default config with the `--set key=value` overrides of every run (values parsed as
    Python literals where they are one), so the probes read the data the runs trained on."""
    from keras_eqssl.default_config import get_config

    return _apply_sets(get_config(), sets)


def _apply_sets(config, sets):
    """`config` with each `key=value` of `sets` applied (values parsed by `_literal`)."""
    for item in sets:
        key, _, text = item.partition("=")
        config.update_from_flattened_dict({key.strip(): _literal(text)})
    return config


def _literal(text: str):
    """A `--set` value: a Python literal where it is one (5.0, True, (64, 64)), else the string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _has_split(run: Run) -> bool:
    """Whether the run's model splits its representation (then its parts are probed too)."""
    from keras_eqssl.cli._config import load_config_file

    config = load_config_file(ROOT / "configs" / f"{run.config}.py")
    config = _apply_sets(config, [s for s in run.overrides if s.startswith("model.split")])
    return tuple(config.model.split) != (0, 0)


def _eval_data(data: str, repeats: int, sets=()):
    from keras_eqssl.probes.evaluate import EvalData

    if data in EVAL_SIZE:
        import numpy as np

        from keras_eqssl.data.photos import HELD_OUT_PHOTOS, skimage_photos

        size = EVAL_SIZE[data]
        families = PHOTO_FAMILIES if data == "photos" else MULTICROP_FAMILIES
        crops = list(skimage_photos(size, PHOTO_PROBE_IMAGES, seed=1234, photos="test", tiles=TILES).batch(4096))
        images = np.concatenate([c["image"].numpy() for c in crops])
        tiles = np.concatenate([c["label"].numpy() for c in crops])
        return EvalData(
            images=(images, tiles // TILES**2), groups=tiles, group_name="tile", families=families,
            repeats=repeats,
            description=f"{len(images)} crops ({size} px) of {TILES}x{TILES} tiles of each held-out photo "
            f"({', '.join(HELD_OUT_PHOTOS)}); each probe repeat holds out a quarter of the tiles.",
        )  # fmt: skip
    from keras_eqssl.data.train_batches import threedie_root

    config = _overridden_config(sets)
    return EvalData(
        threedie_root=threedie_root(config, progress=False), image_size=config.augment.size,
        families=RENDER_FAMILIES, repeats=repeats, pairs_per_object=config.eval.pairs_per_object,
    )  # fmt: skip


def _evaluate(export: pathlib.Path, out: pathlib.Path, eval_data, views, split: bool, info: dict):
    """The probes on one export, cached in `out` (a `write_metrics` file); only the embedding
    when the model has no invariant/equivariant `split` (its parts would all be the embedding)."""
    from keras_eqssl.export import load_encoder
    from keras_eqssl.probes.evaluate import evaluate_encoder
    from keras_eqssl.probes.results import read_metrics, write_metrics

    if out.exists():
        return read_metrics(out)["model"]
    if not split:
        eval_data = dataclasses.replace(eval_data, parts=("embedding",))
    results = evaluate_encoder(load_encoder(export), eval_data, views=views, seed=PROBE_SEED)
    results.info["train"] = info
    write_metrics({"model": results}, out)
    return results


def run_one(data: str, run: Run, seed: int, first: bool, inputs: dict, args) -> tuple | None:
    """Trains (unless done) and evaluates one (data, run, seed): `(trained, init or None)` as
    `ModelResults`; None when `--only-done` and it is not done."""
    workdir = ROOT / args.out / data / run.name / f"seed{seed}"
    if args.only_done and not (workdir / "eval.json").exists():
        return None
    if data not in inputs:
        from keras_eqssl.probes.evaluate import load_views

        eval_data = _eval_data(data, args.repeats, args.set)
        inputs[data] = (eval_data, load_views(eval_data) if eval_data.threedie_root else None)
    eval_data, views = inputs[data]
    start = time.perf_counter()
    metrics = _train(run, data, seed, args, workdir, random_init=first)
    split = _has_split(run)
    info = {"steps": metrics["steps"], "seconds": metrics["seconds"],
            "final_losses": {k: v[-1] for k, v in metrics["history"].items()}}  # fmt: skip
    trained = _evaluate(workdir / "export", workdir / "eval.json", eval_data, views, split, info)
    init = None
    if first:
        init = _evaluate(workdir / "export_init", workdir / "eval_init.json", eval_data, views, split, {})
    print(f"[compare] {data}/{run.name}/seed{seed}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    return trained, init


def run_grid(datas: list[str], runs: dict[str, list[Run]], args) -> tuple[dict, list]:
    """Every (seed, data, run), seed by seed (an interrupted comparison has whole seeds):
    `({data: {label: {seed: ModelResults}}}, [each run's provenance])`, the base network at init
    under `RANDOM_INIT`."""
    inputs: dict = {}
    grid = {data: {RANDOM_INIT: {}, **{run.label: {} for run in runs[data]}} for data in datas}
    provenance = []
    for seed in args.seeds:
        for data in datas:
            for i, run in enumerate(runs[data]):
                found = run_one(data, run, seed, i == 0, inputs, args)
                if found is None:
                    continue
                grid[data][run.label][seed] = found[0]
                if found[1] is not None:
                    grid[data][RANDOM_INIT][seed] = found[1]
                path = ROOT / args.out / data / run.name / f"seed{seed}" / "provenance.json"
                record = json.loads(path.read_text()) if path.exists() else {"commit": "unknown", "dirty": False}
                record["eval_seconds"] = sum(r.info.get("eval_seconds", 0.0) for r in found if r is not None)
                provenance.append(record)
    return grid, provenance


def section_json(data: str, runs: list[Run], per_run: dict, figures: pathlib.Path, args) -> dict:
    """One data set's part of the page's JSON (see `tools/results_page.py`), and its bar chart."""
    from keras_eqssl.probes.plots import score_bars
    from keras_eqssl.probes.results import key_constants, key_numbers, merge_seeds

    metrics = _metrics(data)
    done = {label: r for label, r in per_run.items() if r}
    seeds = [s for s in args.seeds if all(s in r for r in done.values())]
    if not seeds:
        raise SystemExit(
            f"[compare] {data}: no seed is done for every row ("
            + ", ".join(f"{label}: {sorted(r)}" for label, r in done.items())
            + "); train the missing runs or narrow --runs / --seeds"
        )
    note = ""
    if any(len(r) != len(seeds) for r in done.values()):
        note = " Rows with seeds beyond those every row has (only the common seeds are shown): " + ", ".join(
            f"{label} {sorted(r)}" for label, r in done.items() if len(r) != len(seeds)
        ) + "."  # fmt: skip
    labels = [run.label for run in runs if run.label in done]
    names = {run.name: run.label for run in runs}
    bases = {run.label: names.get(run.base) for run in runs}
    # one Score per metric whose values are the seeds' figures (merge_seeds: each seed's mean over its repeats)
    merged = {label: merge_seeds([done[label][s] for s in seeds]) for label in [*labels, RANDOM_INIT] if label in done}
    per_seed = {
        label: {name: [round(v, 6) for v in score.values] for name, score in row.items()}
        for label, row in key_numbers(merged, metrics).items()
    }
    rows = [{"label": label, "base": bases[label], "values": per_seed[label]} for label in labels]
    constants = key_constants(merged, baseline=RANDOM_INIT, metrics=metrics)
    png = figures / f"{data}.png"
    figures.mkdir(parents=True, exist_ok=True)
    score_bars(merged, png, metrics=metrics, baseline=RANDOM_INIT, ylabel="R² / top-1",
               title=f"{DATA[data]['title']}: mean ± std over {len(seeds)} seeds")  # fmt: skip
    return {
        "key": data,
        "title": DATA[data]["title"],
        "short_title": DATA[data]["short_title"],
        "description": _eval_data_text(data, done)
        + f" The random-init row is {labels[0]}'s network before training, with the same seeds."
        + note,
        "seeds": seeds,
        "repeats": args.repeats,
        "columns": [m.name for m in metrics],
        "rows": rows,
        "init": {"label": RANDOM_INIT, "values": per_seed[RANDOM_INIT]} if RANDOM_INIT in done else None,
        "constant": {name: round(score.mean, 6) for name, score in constants.items()},
        "contrasts": [list(c) for c in CONTRASTS.get(data, ())],
        "glance": list(GLANCE.get(data, ())),
        "figure": f"{figures.name}/{png.name}",
    }


def _eval_data_text(data: str, per_run: dict) -> str:
    first = next(r for runs in per_run.values() for r in runs.values())
    probes = first.info.get("probes", "")
    if data == "multicrop":
        where = (
            "Pretraining: the configs' own data (crops of the 12 train photos at 128 px, the `gtsa` multi-crop: 2 "
            "global crops of 64 px and 4 local crops of 32 px; GTSA turns each by k × 90°, the baseline keeps them "
            f"upright). Probes: on {PHOTO_PROBE_IMAGES} crops (64 px) of the 4 held-out photos cut into "
            f"{TILES}x{TILES} tiles, as for the photos above: rotation (±45°), crop (RandomResizedCrop scale 0.3-1: "
            "box, area, ratio), translation and colour parameters regressed from `[f(I), f(g(I))]`, and which of the "
            "4 held-out photos a crop comes from (linear and kNN on `f(I)`, bootstrap over test tiles)."
        )
    elif data == "photos":
        where = (
            f"Pretraining: crops of the 12 train photos (`{' '.join(DATA[data]['overrides'])}`). Probes: each "
            f"family's parameters regressed from `[f(I), f(g(I))]` on {PHOTO_PROBE_IMAGES} crops of the 4 held-out "
            f"photos (never seen in pretraining), each cut into {TILES}x{TILES} tiles that never overlap: each "
            f"repeat fits on {3 * TILES**2} tiles and scores on the other {TILES**2} (pixels the heads never saw)."
        )
    else:
        where = "Pretraining on the train split's objects; probes fit on train objects and score on val objects."
    return f"{where} {probes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="photos,renders", help=f"comma list of {list(DATA)}")
    parser.add_argument(
        "--runs", default="", help=f"comma list of {list(RUNS)} for every data set (default: DEFAULT_RUNS per data set)"
    )
    parser.add_argument(
        "--seeds", default="0,1,2,3,4", help="training seeds (paired across runs); more seeds add to the runs done"
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="probe repeats per seed")
    parser.add_argument(
        "--set", action="append", default=[], help="config override for every run, e.g. model.width=0.5"
    )
    parser.add_argument("--out", default="runs/compare", help="workdirs of the runs (reused when present)")
    parser.add_argument("--docs", default="docs/results.md", help="the Markdown page to write")
    parser.add_argument("--only-done", action="store_true", help="train nothing: write the page from the runs done")
    parser.add_argument("--title", default="Results: the methods compared, with seeds", help="the page's title")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    datas = [d.strip() for d in args.data.split(",") if d.strip()]
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [d for d in datas if d not in DATA] + [r for r in names if r not in RUNS]
    if unknown or not args.seeds:
        parser.error(f"unknown data sets or runs {unknown} (or no seeds); data: {list(DATA)}, runs: {list(RUNS)}")
    runs = {data: [RUNS[n] for n in (names or DEFAULT_RUNS[data])] for data in datas}

    docs = ROOT / args.docs if not os.path.isabs(args.docs) else pathlib.Path(args.docs)
    figures = docs.parent / docs.stem
    # the command that makes the page from scratch (--only-done only rewrites it from cached runs)
    command = shlex.join(["tools/compare.py", *(a for a in sys.argv[1:] if a != "--only-done")])
    print(
        f"[compare] using {usable_cores()} of {os.cpu_count()} cores ({cpu_model()}): one run at a time, each with "
        "all of them (restrict with taskset -c)",
        flush=True,
    )
    grid, provenance = run_grid(datas, runs, args)
    sections = []
    for data in datas:
        if not any(grid[data].values()):
            print(f"[compare] {data}: no run done yet; left out of the page", flush=True)
            continue
        sections.append(section_json(data, runs[data], grid[data], figures, args))
    if not sections:
        raise SystemExit("[compare] no run is done: nothing to write")
    page = {
        "title": args.title,
        "command": ".venv/bin/python " + command,
        "commits": sorted({p["commit"] for p in provenance}),
        "dirty": any(p.get("dirty") for p in provenance),
        "cpu": next((p["cpu"] for p in provenance if "cpu" in p), cpu_model()),
        "cores": next((p["cores"] for p in provenance if "cores" in p), usable_cores()),
        "wall_minutes": round(sum(p.get("wall_seconds", 0.0) + p["eval_seconds"] for p in provenance) / 60, 1),
        "json": docs.with_suffix(".json").name,
        "intro": _intro(args, sorted({run.name for data in datas for run in runs[data]})),
        "sections": sections,
    }
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.with_suffix(".json").write_text(json.dumps(page, indent=1, ensure_ascii=False) + "\n")
    from results_page import write_page

    write_page(docs.with_suffix(".json"), docs=docs.parent.resolve() == (ROOT / "docs").resolve())
    print(f"[compare] wrote {docs}, {docs.with_suffix('.json').name} and {figures}/")


# What each kind of run adds to the budget's sentence on a page (by the prefix of the run's name).
RUN_NOTES = {
    "vicreg_recon": "`+ recon` adds the cross-attention reconstruction branch on the equivariant half of a 64/64 split "
    "with weight λ (`code only`: the rebuilt view reaches the decoder only through its pooled equivariant vector, "
    "the attention's queries and keys both coming from the other view)",
    "simclr_recon": "`SimCLR + recon`: the same branch beside SimCLR",
    "ciper": "CIPER: SimCLR on the invariant half and an MLP on both views' equivariant halves regressing the pair's "
    "transformation (configs/ciper.py)",
    "augself": "AugSelf: SimCLR (τ 0.2, crop scale 0.2-1) on the whole representation and one MLP per augmentation "
    "predicting the difference of the crop and colour parameters (configs/augself.py)",
    "stl": "STL: its objectives beside SimCLR (configs/stl.py)",
    "essl": "E-SSL: 4-way rotation prediction of a small crop beside SimCLR (configs/essl.py)",
    "sie": "SIE: its hypernetwork map beside VICReg, on pairs without in-plane rotation (configs/sie.py)",
    "gtsa": "GTSA and its DINO-like baseline: their own multi-crop setting (configs/gtsa.py, configs/gtsa_dino.py)",
}


def _intro(args, names: list[str]) -> list[str]:
    """The page's opening paragraphs: the budget, the settings of the methods on the page (`names`
    of its runs), the claim under test."""
    notes = [text for prefix, text in RUN_NOTES.items() if any(n.startswith(prefix) for n in names)]
    return [
        " ".join(
            [
                f"Every run: {args.steps} steps × {args.batch} pairs, ResNet-18 (cifar stem, width 1/4), AdamW 1e-3 "
                "cosine, 32 px views.",
                *(f"{note}." for note in notes),
                "`docs/methods/` has a page per method.",
            ]
        ),
        "The claim under test (arXiv 2412.03314): the reconstruction branch keeps the transformation parameters "
        "(rotation, colour, blur, translation) in the representation beside what the invariance loss learns; "
        "[methods/cross_attention_reconstruction.md](methods/cross_attention_reconstruction.md) discusses it.",
    ]


if __name__ == "__main__":
    main()
