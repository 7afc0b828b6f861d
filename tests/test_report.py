"""The report layer: Markdown tables, `report.md`, `metrics.json` and PNGs from `{model: ModelResults}`
(no TensorFlow, no training)."""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_eqssl.probes import plots, report, results, tables
from keras_eqssl.probes.results import KEY_METRICS, PARTS, ModelResults, Score, compare, read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASE, MODEL, CLASS_ONLY = "random init", "cross-attn", "byol"

# The key metrics' scores, with a known answer: (baseline values, model values, beyond the noise?).
# The (probe, target, part, head, metric) of each is the first one its KeyMetric looks for.
KEY_CASES = {
    ("3diebench", "rotation", "equivariant", "linear", "r2"): ((0.10, 0.12, 0.11), (0.30, 0.31, 0.33), True),
    # Large spread, small paired mean: within the noise.
    ("3diebench", "color", "equivariant", "linear", "r2"): ((0.50, 0.60, 0.40), (0.55, 0.70, 0.30), False),
    # Unpaired it would be noise (std ~0.2 each); paired, the per-repeat differences are 0.022 ± 0.008.
    ("params", "rotation", "equivariant", "linear", "r2"): ((0.30, 0.50, 0.70), (0.32, 0.53, 0.715), True),
    ("params", "rotation", "invariant", "linear", "r2"): ((0.60, 0.62, 0.61), (0.40, 0.41, 0.42), True),
    ("params", "all", "equivariant", "linear", "r2"): ((0.40, 0.41, 0.42), (0.41, 0.40, 0.42), False),
    ("classification", "class", "invariant", "linear", "top1"): ((0.20, 0.21, 0.22), (0.25, 0.27, 0.26), True),
    ("classification", "class", "invariant", "knn", "top1"): ((0.30, 0.31, 0.29), (0.32, 0.28, 0.30), False),
}
LAYOUT = (  # probe, targets -> metrics, parts, heads
    ("3diebench", {"rotation": ("r2", "r2_global"), "color": ("r2",)}, PARTS, ("constant", "linear", "mlp")),
    ("params", {"rotation": ("r2",), "all": ("r2",)}, PARTS, ("constant", "linear", "mlp")),
    ("classification", {"class": ("top1",)}, ("embedding", "invariant"), ("constant", "linear", "knn")),
)
COMPONENTS = {("3diebench", "rotation"): ("qx", "qy", "qz", "qw"), ("params", "all"): ("rotation", "blur")}


def two_models(rng) -> dict:
    """`random init` (the baseline) and `cross-attn`, three repeats of every probe, part and head."""
    scores = {BASE: [], MODEL: []}
    for probe, targets, parts, heads in LAYOUT:
        for target, metrics in targets.items():
            for metric in metrics:
                for part in parts:
                    for head in heads:
                        key = (probe, target, part, head, metric)
                        if key in KEY_CASES:
                            values = dict(zip((BASE, MODEL), KEY_CASES[key][:2]))
                        elif head == "constant":  # the train mean: the same for every model
                            same = tuple(rng.uniform(-0.05, 0.0, 3).round(4))
                            values = {BASE: same, MODEL: same}
                        else:
                            values = {m: tuple(rng.uniform(0.0, 0.9, 3).round(4)) for m in scores}
                        for m in scores:
                            scores[m].append(Score(probe, target, part, head, metric, values[m]))
                        for dim in COMPONENTS.get((probe, target), ()) if head == "linear" and metric == "r2" else ():
                            for m in scores:
                                scores[m].append(Score(probe, target, part, head, metric, rng.uniform(0, 1, 3), dim))
    info = {"probes": "3 repeats; a repeat re-draws the train objects and resamples the test objects.",
            "train": {"steps": 2000, "seconds": 754.2, "final_losses": {"total": 1.25, "recon": 0.0312}}}  # fmt: skip
    return {BASE: ModelResults(scores[BASE], {"probes": info["probes"]}), MODEL: ModelResults(scores[MODEL], info)}


def classification_only(values=(0.7, 0.72, 0.71)) -> ModelResults:
    return ModelResults(
        [
            Score("classification", "class", "invariant", "linear", "top1", values),
            Score("classification", "class", "invariant", "knn", "top1", (0.6, 0.65, 0.62)),
            Score("classification", "class", "invariant", "constant", "top1", (0.1, 0.1, 0.1)),
        ],
        {"skipped": ["3diebench: the data has no 3DIEBench root", "params: turned off"]},
    )


def _name(key: tuple) -> str:
    """The key metric a KEY_CASES key is the figure of."""
    return next(k.name for k in KEY_METRICS if k.find([Score(*key, values=(0.0,))]) is not None)


def _assert_png(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, (path, len(data))


def _section(md: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n") + len(heading) + 1
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", md[start:], re.M)]
    return md[start : start + ends[0]] if ends else md[start:]


def _table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The first Markdown table in `text`: its header cells, and {first cell: cells} per row."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return cells[0], {row[0] + ("/" + row[1] if cells[0][1] in ("head", "component") else ""): row for row in cells[2:]}


def test_report_for_two_models_with_a_baseline(tmp_path, rng):
    res = two_models(rng)
    res[CLASS_ONLY] = classification_only()
    recon = tmp_path / "elsewhere" / "recon.png"
    recon.parent.mkdir()
    plots.reconstruction_grid(rng.uniform(size=(4, 16, 16, 3)), rng.uniform(size=(4, 16, 16, 3)), recon)
    out = tmp_path / "report"
    paths = report.write_report(
        res, out, title="Probe report", command=["keras-eqssl-evaluate", "--model", "runs/a b"],
        images={"reconstructions": recon, "missing": tmp_path / "nope.png"}, notes=["Tiny synthetic run."],
        baseline=BASE,
    )  # fmt: skip
    assert list(paths)[:2] == ["report", "metrics"]
    charts = {"key_bars", "bars_3diebench_rotation", "bars_3diebench_color", "bars_params_rotation",
              "bars_params_all", "bars_classification_class"}  # fmt: skip
    assert set(paths) == {"report", "metrics", *charts}
    md = pathlib.Path(paths["report"]).read_text()
    assert md.startswith("# Probe report\n\n```bash\nkeras-eqssl-evaluate --model 'runs/a b'\n```\n")

    # The key table: a row per model and the constant row, cells mean ± std.
    header, rows = _table(_section(md, "## Key metrics"))
    assert header == ["model", *(k.name for k in KEY_METRICS)]
    assert set(rows) == {BASE, MODEL, CLASS_ONLY, tables.CONSTANT_ROW}
    for k in KEY_METRICS:
        j = header.index(k.name)
        assert rows[MODEL][j] == k.find(res[MODEL].scores).text()
        constant = results.one(res[BASE].scores, probe=k.probe, target=k.target, metric=k.metric,
                               part=k.parts[0], head="constant")  # fmt: skip
        assert rows[tables.CONSTANT_ROW][j] == constant.text() and "±" in constant.text()
    assert rows[CLASS_ONLY][header.index("linear top-1")] == "0.710 ± 0.010"
    assert rows[CLASS_ONLY][header.index("3DIE rotation R²")] == tables.MISSING

    # Equivariant vs invariant: a row per model with both parts, Δ paired by repeat.
    header, rows = _table(_section(md, "## Equivariant vs invariant part"))
    assert header[0] == "equivariant − invariant" and set(rows) == {BASE, MODEL}  # CLASS_ONLY has no R²
    equi, inv = (results.one(res[MODEL].scores, probe="params", target="rotation", part=p, head="linear",
                             metric="r2", dim="") for p in ("equivariant", "invariant"))  # fmt: skip
    assert rows[MODEL][header.index("params rotation R²")] == compare(equi, inv).text()

    # The difference table: a star exactly where the paired difference is beyond the noise.
    diff_section = _section(md, f"## Difference from {BASE}")
    header, rows = _table(diff_section)
    assert header[0] == f"Δ vs {BASE}" and set(rows) == {MODEL, CLASS_ONLY}
    for key, (base, model, beyond) in KEY_CASES.items():
        d = compare(Score(*key, values=model), Score(*key, values=base))
        assert d.beyond_noise == beyond and d.paired
        assert rows[MODEL][header.index(_name(key))] == f"{d.delta:+.3f}" + (" *" if beyond else "")
    unpaired = math.hypot(np.std((0.30, 0.50, 0.70), ddof=1), np.std((0.32, 0.53, 0.715), ddof=1))
    assert 0.022 < 2 * unpaired  # pairing is what puts the star on params rotation (equi)
    assert rows[CLASS_ONLY][header.index("3DIE rotation R²")] == tables.MISSING
    paragraph = next(line for line in diff_section.splitlines() if line.startswith(f"{MODEL} vs {BASE}:"))
    verdict, other = paragraph.split(f" {CLASS_ONLY} vs {BASE}: ")  # one paragraph, a sentence per model
    assert other == ("ahead beyond the noise on linear top-1 (+0.500 *), kNN top-1 (+0.323 *); "
                     "behind beyond the noise on none; no difference (within the noise) on none.")  # fmt: skip
    ahead, behind, same = verdict.split("; ")
    assert ahead.startswith(f"{MODEL} vs {BASE}: ahead beyond the noise on ")
    assert behind.startswith("behind beyond the noise on ") and same.startswith("no difference (within the noise) on ")
    for key, (base, model, beyond) in KEY_CASES.items():
        d = compare(Score(*key, values=model), Score(*key, values=base))
        clause = (ahead if d.delta > 0 else behind) if beyond else same
        assert f"{_name(key)} ({d.text()})" in clause, (key, verdict)
    assert behind == "behind beyond the noise on params rotation R² (inv) (-0.200 *)"
    assert same.startswith("no difference (within the noise) on 3DIE colour R²")

    # How to read this: the repeats, the star.
    how = _section(md, "## How to read this")
    assert "mean ± standard deviation" in how and "|Δ| > 2 × the standard deviation of the paired" in how
    assert "Repeats:" in how and "a repeat re-draws the train objects" in how

    # Per-probe tables: the parts side by side as columns, a row per (model, head), constant included.
    rotation = _section(_section(md, "## 3DIEBench"), "### rotation: R²")
    header, rows = _table(rotation)
    assert header == ["model", "head", "embedding", "invariant", "equivariant"]
    assert list(rows) == [f"{m}/{h}" for m in (BASE, MODEL) for h in ("constant", "linear", "mlp")]
    for j, part in enumerate(PARTS):
        score = results.one(res[MODEL].scores, probe="3diebench", target="rotation", part=part, head="mlp", metric="r2")
        assert rows[f"{MODEL}/mlp"][2 + j] == score.text()
    assert "### rotation: R² (SIE global mean)" in md
    header, rows = _table(_section(_section(md, "## classification"), "### class: top-1"))
    assert header == ["model", "head", "embedding", "invariant"]
    assert f"{CLASS_ONLY}/knn" in rows and rows[f"{CLASS_ONLY}/knn"][2] == tables.MISSING

    # Per-component tables (linear head) in a <details> block, components in the target's order.
    details = md[md.index("<details>") : md.index("</details>")]
    header, rows = _table(details)
    assert header == ["model", "component", *PARTS]
    assert list(rows)[:4] == [f"{BASE}/{d}" for d in ("qx", "qy", "qz", "qw")]
    assert "**augmentation parameters, all combined: R²**" in details

    header, rows = _table(_section(md, "## Training"))
    assert header == ["model", "steps", "time", "steps/s", "total", "recon"]
    assert rows[MODEL][1:5] == ["2000", "12 min 34 s", "2.652", "1.250"]

    # Charts and images are linked relative to the report; notes and skipped reasons are listed.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted([f"{c}.png" for c in charts] + ["../elsewhere/recon.png"])
    for link in links:
        _assert_png(out / link)
    assert "Tiny synthetic run." in md and "nope.png" in md
    assert f"- {CLASS_ONLY}: params: turned off" in _section(md, "## Skipped")

    assert read_metrics(paths["metrics"]) == res  # metrics.json round-trips exactly


def test_a_model_with_only_classification_scores(tmp_path):
    res = {CLASS_ONLY: classification_only()}
    paths = report.write_report(res, tmp_path, title="BYOL")
    assert set(paths) == {"report", "metrics", "key_bars", "bars_classification_class"}
    md = pathlib.Path(paths["report"]).read_text()
    header, rows = _table(_section(md, "## Key metrics"))
    assert header == ["model", "linear top-1", "kNN top-1"]
    assert rows[CLASS_ONLY][1:] == ["0.710 ± 0.010", "0.623 ± 0.025"]
    assert rows[tables.CONSTANT_ROW][1:] == ["0.100 ± 0.000", "0.100 ± 0.000"]
    assert "## Difference" not in md and "## 3DIEBench" not in md and "<details>" not in md and "## Training" not in md
    assert read_metrics(paths["metrics"]) == res
    with pytest.raises(ValueError, match="baseline"):
        report.write_report(res, tmp_path, title="x", baseline="nope")


def test_single_repeat_and_empty_results(tmp_path):
    res = {"one": ModelResults([Score("params", "blur", "embedding", "linear", "r2", (0.4,))])}
    paths = report.write_report(res, tmp_path / "a", title="One repeat", plots=False)
    md = pathlib.Path(paths["report"]).read_text()
    assert set(paths) == {"report", "metrics"} and "| one   | linear |     0.400 |" in md
    assert "## Key metrics" not in md  # blur is not a key metric
    empty = report.write_report({}, tmp_path / "b", title="Nothing")
    assert "No results." in pathlib.Path(empty["report"]).read_text()


def test_score_bars_draw_the_standard_deviations_as_error_bars(tmp_path, rng, monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    errorbar = Axes.errorbar

    def spy(self, x, y, *args, yerr=None, **kwargs):
        drawn.append((np.asarray(y).copy(), np.asarray(yerr).copy()))
        return errorbar(self, x, y, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    res = two_models(rng)
    res[CLASS_ONLY] = classification_only()
    data = plots.score_bars(res, tmp_path / "key.png", baseline=BASE)
    _assert_png(data.path)
    assert data.groups == [k.name for k in KEY_METRICS] and data.models == [BASE, MODEL, CLASS_ONLY]
    assert data.means.shape == data.stds.shape == (3, len(KEY_METRICS))
    numbers = results.key_numbers(res)
    for i, model in enumerate(data.models):
        for j, name in enumerate(data.groups):
            score = numbers[model].get(name)
            if score is None:
                assert np.isnan(data.means[i, j]) and np.isnan(data.stds[i, j])
            else:
                assert data.means[i, j] == pytest.approx(score.mean) and data.stds[i, j] == pytest.approx(score.std)
    assert np.all(data.stds[:2] > 0)
    constants = results.key_constants(res, BASE)
    np.testing.assert_allclose(data.reference, [constants[g].mean for g in data.groups])
    # One errorbar call per model, with the finite stds as the error bars.
    assert len(drawn) == 3
    for (y, yerr), means, stds in zip(drawn, data.means, data.stds):
        ok = np.isfinite(means)
        np.testing.assert_allclose(y, means[ok])
        np.testing.assert_allclose(yerr, stds[ok])

    parts = plots.probe_bars(res, tmp_path / "rot.png", "3diebench", "rotation")
    _assert_png(parts.path)
    assert parts.groups == list(PARTS) and parts.models == [BASE, MODEL]  # byol has no 3DIEBench scores
    score = results.one(res[MODEL].scores, probe="3diebench", target="rotation", part="invariant", head="linear",
                        metric="r2")  # fmt: skip
    assert parts.means[1, 1] == pytest.approx(score.mean) and parts.stds[1, 1] == pytest.approx(score.std)
    assert np.all(np.isfinite(parts.reference))
    mlp = plots.probe_bars(res, tmp_path / "g.png", "3diebench", "rotation", metric="r2_global", head="mlp")
    assert mlp.means.shape == (2, 3)
    with pytest.raises(ValueError, match="head"):
        plots.probe_bars(res, tmp_path / "x.png", "3diebench", "rotation", head="knn")
    with pytest.raises(ValueError, match="no model"):
        plots.score_bars({"x": ModelResults([])}, tmp_path / "y.png")


def test_bars_survive_nan_and_very_negative_scores(tmp_path):
    res = {
        "a": ModelResults([Score("params", "all", "equivariant", "linear", "r2", (-250.0, -240.0, -260.0)),
                           Score("params", "all", "invariant", "linear", "r2", (np.nan, 0.1, 0.2))]),
        "b": ModelResults([Score("params", "all", "equivariant", "linear", "r2", (0.5, 0.6, 0.55))]),
    }  # fmt: skip
    _assert_png(plots.probe_bars(res, tmp_path / "p.png", "params", "all").path)
    _assert_png(plots.score_bars(res, tmp_path / "k.png").path)


def test_markdown_table_and_cells():
    table = tables.markdown_table(["model", "head", "x"], [["a|b", "linear", 1 / 3], ["c", "mlp"]], left=2)
    lines = table.splitlines()
    assert lines[0] == "| model | head   |     x |"
    assert lines[1] == "|:------|:-------|------:|"
    assert lines[2] == r"| a\|b  | linear | 0.333 |"
    assert lines[3] == "| c     | mlp    |     – |"
    s = Score("params", "blur", "embedding", "linear", "r2", (0.5, 0.7))
    assert tables.cell(s) == "0.600 ± 0.141" and tables.cell(float("inf")) == "inf"
    assert tables.cell(compare(s, Score("params", "blur", "embedding", "constant", "r2", (0.0, 0.0)))) == "+0.600 *"


def test_metrics_json_is_strict(tmp_path):
    res = {"m": ModelResults([Score("params", "blur", "embedding", "linear", "r2", (np.nan, 0.5))],
                             {"seconds": np.float32(2.5), "bad": math.inf, "steps": np.int64(3)})}  # fmt: skip
    path = results.write_metrics(res, tmp_path / "metrics.json")

    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    data = json.loads(pathlib.Path(path).read_text(), parse_constant=refuse)
    assert data["m"]["scores"][0]["values"] == [None, 0.5]
    assert data["m"]["info"] == {"seconds": 2.5, "bad": None, "steps": 3}
    back = read_metrics(path)["m"]
    assert np.isnan(back.scores[0].values[0]) and back.scores[0].values[1] == 0.5


def test_embedding_map_with_two_colourings(tmp_path, rng):
    labels = rng.integers(0, 4, 200)
    features = rng.normal(size=(200, 32)) + 3.0 * np.eye(32)[labels]
    features[5] = np.nan
    angles = rng.uniform(0, 360, 200)
    out = plots.embedding_map(features, tmp_path / "map.png", {"class": labels, "rotation (deg)": angles},
                              method="tsne", cmaps={"rotation (deg)": "twilight"})  # fmt: skip
    _assert_png(tmp_path / "map.png")
    assert out.method == ("tsne" if plots.tsne_available() else "pca")
    assert out.coords.shape == (199, 2) and 5 not in out.index
    pca = plots.embedding_map(features, tmp_path / "pca.png", {"class": labels}, method="pca", max_points=100)
    assert pca.method == "pca" and pca.coords.shape == (100, 2)
    with pytest.raises(ValueError, match="values for 200 points"):
        plots.embedding_map(features, tmp_path / "bad.png", {"class": labels[:10]}, method="pca")


def test_pca_matches_the_principal_axes(rng):
    x = rng.normal(size=(500, 3)) * [4.0, 1.0, 0.1]
    coords, ratio = plots.pca_2d(x)
    assert ratio[0] > 0.9 and ratio[0] > ratio[1]
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(x[:, 0] - x[:, 0].mean()), atol=0.2)


def test_reconstruction_grid_denormalises_and_clips(tmp_path, rng):
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.1])
    targets = rng.normal(size=(10, 8, 6, 3)).astype(np.float32)
    recons = rng.normal(size=(10, 4, 3, 3)).astype(np.float32)  # half size: resized by nearest neighbour
    recons[0, 0, 0, 0] = np.nan
    grid = plots.reconstruction_grid(targets, recons, tmp_path / "g.png", mean=mean, std=std, max_images=5)
    pad = plots.PAD
    assert grid.shape == (2 * 8 + pad, 5 * 6 + 4 * pad, 3) and grid.dtype == np.float32
    expected_t = np.clip(targets[:5] * std + mean, 0, 1)
    expected_r = np.clip(recons[:5] * std + mean, 0, 1).repeat(2, axis=1).repeat(2, axis=2)
    expected_r[0, :2, :2, 0] = 0.0  # NaN pixel shown black
    for c in range(5):
        x = c * (6 + pad)
        np.testing.assert_allclose(grid[:8, x : x + 6], expected_t[c], atol=1e-6)
        np.testing.assert_allclose(grid[8 + pad :, x : x + 6], expected_r[c], atol=1e-6)
    assert grid.min() >= 0 and grid.max() <= 1 and np.all(grid[8 : 8 + pad] == 1.0)
    assert pathlib.Path(tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC
    gray = plots.reconstruction_grid(np.zeros((2, 4, 4)), np.full((2, 4, 4, 1), 255, np.uint8), tmp_path / "h.png")
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[4 + pad, 0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="0..255"):
        plots.reconstruction_grid(targets, recons, tmp_path / "i.png", mean=[123.7, 116.3, 103.5], std=58.0)


def test_importing_the_report_layer_loads_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys; import keras_eqssl.probes.report, keras_eqssl.probes.plots, keras_eqssl.probes.tables; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_merge_seeds_makes_the_seeds_the_repeats_and_pairs_them():
    def run(rotation, top1, extra=True):
        scores = [Score("params", "rotation", "embedding", "linear", "r2", rotation)]
        if extra:
            scores.append(Score("classification", "class", "embedding", "linear", "top1", top1))
        return ModelResults(scores, {"eval_seconds": 1.0})

    base = results.merge_seeds([run((0.1, 0.3), (0.5,)), run((0.2, 0.2), (0.6,)), run((0.3, 0.5), (0.7,))])
    better = results.merge_seeds([run((0.3, 0.5), (0.5,)), run((0.4, 0.4), (0.6,)), run((0.5, 0.7), (0.7,), False)])
    rotation = results.one(base.scores, target="rotation")
    assert rotation.values == (0.2, 0.2, 0.4)  # one value per seed: the mean of its probe repeats
    assert len(base.info["runs"]) == 3
    assert [s.target for s in better.scores] == ["rotation"]  # a score missing from one seed is dropped
    d = compare(results.one(better.scores, target="rotation"), rotation)
    assert d.paired and math.isclose(d.delta, 0.2) and d.std < 1e-9 and d.beyond_noise  # +0.2 on every seed
    with pytest.raises(ValueError, match="at least one run"):
        results.merge_seeds([])


def test_tables_and_bars_take_their_own_key_metrics(tmp_path):
    metric = results.KeyMetric("blur R²", "params", "blur", "r2")
    scores = lambda *v: ModelResults(  # noqa: E731
        [
            Score("params", "blur", "embedding", "linear", "r2", v),
            Score("params", "blur", "embedding", "constant", "r2", (0.0,) * len(v)),
        ]
    )
    models = {"a": scores(0.1, 0.2, 0.3), "b": scores(0.5, 0.6, 0.7)}
    table = tables.key_table(models, metrics=[metric])
    assert table.splitlines()[0].split("|")[2].strip() == "blur R²" and "0.600 ± 0.100" in table
    assert tables.key_table(models) is None  # none of the default key metrics is there
    assert "+0.400 *" in tables.difference_table(models, "a", metrics=[metric])
    assert "ahead beyond the noise on blur R²" in tables.verdict(models, "a", metrics=[metric])
    drawn = plots.score_bars(models, tmp_path / "bars.png", metrics=[metric])
    assert drawn.groups == ["blur R²"] and np.allclose(drawn.stds[:, 0], 0.1) and os.path.exists(drawn.path)
