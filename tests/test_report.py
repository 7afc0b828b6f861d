"""The reporting layer: Markdown, JSON and PNGs from plain results dicts (no TensorFlow, no training)."""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_eqssl.probes import plots, report

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _target(rng, n):
    per_dim = rng.uniform(0.2, 0.95, n).round(4).tolist()
    return {"r2_per_dim": per_dim, "r2_mean": float(np.mean(per_dim))}


def full_results(rng):
    """Two models with every section: SIE (two heads, three parts), params, classification, training."""
    results = {}
    for model, shift in (("simclr", -0.2), ("cross-attn", 0.0)):
        threedie = {
            head: {part: {"rel_rotation": _target(rng, 4), "rel_color": _target(rng, 2)} for part in report.PARTS}
            for head in ("linear", "mlp")
        }
        threedie["mlp"]["embedding"]["rel_rotation"]["r2_global_mean"] = 0.7123 + shift
        params = {
            head: {
                "rotation": {"rotation": 0.81 + shift},
                "brightness": {"brightness": 0.55 + shift},
                "blur": {"blur": 0.42 + shift},
                "translation": {"tx": 0.66 + shift, "ty": 0.64 + shift},
                "all": {"rotation": 0.75 + shift, "brightness": 0.5 + shift, "blur": 0.3 + shift},
            }
            for head in ("linear", "mlp")
        }
        results[model] = {
            "threedie": threedie,
            "params": params,
            "classification": {"linear_top1": 0.612 + shift, "knn_top1": 0.5557 + shift},
            "train": {"steps": 2000, "seconds": 754.2, "final_losses": {"total": 1.25, "recon": 0.0312}},
        }
    return results


def _assert_png(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, (path, len(data))


def test_report_for_two_models_with_every_section(tmp_path, rng):
    results = full_results(rng)
    results["cross-attn"]["params"]["linear"]["hue"] = {"hue": float("nan")}
    extra = tmp_path / "elsewhere" / "recon.png"
    extra.parent.mkdir()
    plots.reconstruction_grid(rng.uniform(size=(4, 16, 16, 3)), rng.uniform(size=(4, 16, 16, 3)), extra)
    out = tmp_path / "report"
    paths = report.write_report(
        results, out, title="Probe report", command=["keras-eqssl-probe", "--run", "runs/a b"],
        images={"reconstructions": extra, "missing": tmp_path / "nope.png"}, notes=["Tiny synthetic run."],
    )  # fmt: skip

    assert set(paths) >= {"report", "metrics", "r2_threedie_linear", "r2_threedie_mlp", "r2_params_linear",
                          "r2_params_mlp", "comparison", "image:reconstructions"}  # fmt: skip
    md = pathlib.Path(paths["report"]).read_text()
    for name in ("simclr", "cross-attn", "Probe report", "## Key numbers", "## Comparison", "## Training"):
        assert name in md
    # Numbers are formatted with 3 decimals, NaN as "nan", durations for people, deltas signed.
    assert "0.412" in md and "0.612" in md  # linear top-1 of both models
    assert "0.356" in md and "0.556" in md  # kNN top-1, rounded
    assert "0.512" in md and "0.712" in md  # SIE global mean is the rotation key number when recorded
    assert "| nan |" in md.replace(" ", "").replace("|nan|", "| nan |")
    assert "12 min 34 s" in md
    assert "+0.200" in md  # cross-attn minus simclr
    assert "'runs/a b'" in md and "Tiny synthetic run." in md and "nope.png" in md
    # Every image link is relative and points at a valid PNG in the report folder.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 6
    for link in links:
        assert not os.path.isabs(link) and not link.startswith("..")
        _assert_png(out / link)
    for name, path in paths.items():
        if path.endswith(".png"):
            assert os.path.relpath(path, out).replace(os.sep, "/") in links, name

    back = json.loads((out / "metrics.json").read_text())
    expected = json.loads(json.dumps(report.to_jsonable(results)))
    assert back == expected
    assert back["cross-attn"]["params"]["linear"]["hue"]["hue"] is None  # NaN: null in strict JSON
    del back["cross-attn"]["params"]["linear"]["hue"], results["cross-attn"]["params"]["linear"]["hue"]
    assert back == results  # finite values round-trip exactly


def test_key_numbers_follow_the_preferences_and_say_where_they_came_from(rng):
    results = full_results(rng)
    numbers = report.key_numbers(results)["simclr"]
    sources = report.key_sources(results)["simclr"]
    threedie = results["simclr"]["threedie"]
    assert numbers["rotation_r2"] == pytest.approx(0.5123)
    assert sources["rotation_r2"] == "threedie/mlp/embedding/rel_rotation/r2_global_mean"
    assert numbers["colour_r2"] == threedie["mlp"]["embedding"]["rel_color"]["r2_mean"]
    assert numbers["params_r2_translation"] == pytest.approx(0.45)
    assert numbers["params_r2_all"] == pytest.approx(np.mean([0.55, 0.3, 0.1]))
    assert numbers["train_seconds"] == 754.2
    lin = report.key_numbers(results, head="linear", part="invariant")["simclr"]
    assert lin["rotation_r2"] == threedie["linear"]["invariant"]["rel_rotation"]["r2_mean"]
    keys = list(numbers)
    assert keys.index("rotation_r2") < keys.index("params_r2_rotation") < keys.index("params_r2_all")
    assert keys.index("params_r2_all") < keys.index("linear_top1") < keys.index("train_seconds")


def test_compare_table_has_deltas_against_the_baseline(rng):
    results = full_results(rng)
    table = report.compare_table(results, baseline="cross-attn")
    header = table.splitlines()[0]
    assert "Δ simclr vs cross-attn" in header and "Δ cross-attn" not in header
    row = next(line for line in table.splitlines() if line.startswith("| linear top-1"))
    assert row.split("|")[-2].strip() == "-0.200"
    assert "-0.0 s" in table or "+0.0 s" in table  # same training time
    with pytest.raises(ValueError, match="baseline"):
        report.compare_table(results, baseline="nope")
    single = report.compare_table({"simclr": results["simclr"]})
    assert "Δ" not in single and "simclr" in single


def test_only_classification_and_a_single_model(tmp_path):
    results = {"byol": {"classification": {"linear_top1": 0.7, "knn_top1": float("nan")}}}
    paths = report.write_report(results, tmp_path, title="BYOL")
    assert set(paths) == {"report", "metrics"}  # nothing to plot for one model without R²
    md = pathlib.Path(paths["report"]).read_text()
    assert "byol" in md and "0.700" in md and "nan" in md
    assert "## Comparison" not in md and "3DIEBench" not in md and "![" not in md
    assert report.read_metrics(paths["metrics"]) == {"byol": {"classification": {"linear_top1": 0.7, "knn_top1": None}}}


def test_missing_sections_and_none_values_mix(tmp_path, rng):
    results = full_results(rng)
    results["empty"] = {}
    results["partial"] = {"threedie": {"linear": {"equivariant": {"rel_rotation": {"r2_per_dim": [0.1, 0.2, 0.3, None]}}}},
                          "train": {"steps": 10}}  # fmt: skip
    results["nones"] = {"threedie": None, "params": None, "classification": {"linear_top1": None}}
    results["simclr"]["threedie"]["mlp"]["invariant"]["rel_rotation"]["r2_per_dim"] = np.array([0.1, np.nan, 0.3, 0.4])
    paths = report.write_report(results, tmp_path, title="Mixed", baseline="simclr")
    md = pathlib.Path(paths["report"]).read_text()
    assert "| empty " in md and "| partial " in md and report.MISSING in md
    for path in paths.values():
        if path.endswith(".png"):
            _assert_png(path)
    assert report.key_numbers(results)["empty"] == {} and report.key_numbers(results)["nones"] == {}
    assert "| 0.100 |   nan | 0.300 | 0.400 |" in md


def test_bad_results_are_refused_with_the_place(tmp_path):
    with pytest.raises(ValueError, match=r"results\['m'\]\['params'\]\['linear'\]\['blur'\]\['sigma'\]"):
        report.write_report({"m": {"params": {"linear": {"blur": {"sigma": "high"}}}}}, tmp_path, title="x")


def test_markdown_table_formatting():
    table = report.markdown_table(
        [{"m": "a", "x": 1 / 3, "n": 7, "y": None}, {"m": "b|c", "x": float("inf"), "n": None, "y": np.float32(2)}],
        ["m", "x", "n", report.Column("y", "why", lambda v: f"{v:.1f}!")],
    )  # fmt: skip
    lines = table.splitlines()
    assert lines[0] == "| m    |     x |   n |  why |"
    assert lines[1] == "|:-----|------:|----:|-----:|"
    assert "0.333" in lines[2] and "–" in lines[2] and r"b\|c" in lines[3] and "inf" in lines[3] and "2.0!" in lines[3]
    assert report.format_number(float("nan")) == "nan" and report.format_number(-0.0004) == "-0.000"


def test_r2_bars_handle_nan_and_very_negative_values(tmp_path, rng):
    results = full_results(rng)
    results["simclr"]["params"]["linear"]["blur"]["blur"] = -250.0
    results["cross-attn"]["params"]["linear"]["rotation"]["rotation"] = float("nan")
    _assert_png(plots.r2_bars(results, tmp_path / "p.png", probe="params", head="linear"))
    _assert_png(plots.r2_bars(results, tmp_path / "t.png", probe="threedie"))
    with pytest.raises(ValueError, match="head"):
        plots.r2_bars(results, tmp_path / "x.png", probe="params", head="transformer")


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
        "import sys; import keras_eqssl.probes.report, keras_eqssl.probes.plots; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_json_is_strict():
    value = report.to_jsonable({"a": (np.float64(math.inf), np.int64(3), np.bool_(True)), "p": pathlib.Path("x")})
    assert json.dumps(value, allow_nan=False) == '{"a": [null, 3, true], "p": "x"}'
    with pytest.raises(TypeError):
        report.to_jsonable({"a": object()})


def test_adapters_from_the_probe_outputs(tmp_path):
    def scores(names, base):
        r2 = {n: base + 0.01 * i for i, n in enumerate(names)}
        return {"r2": r2, "r2_mean": float(np.mean(list(r2.values()))), "r2_global": base + 0.1}

    sie = {"protocol": "3diebench", "results": {
        part: {head: {"rotation": scores(["qw", "qx", "qy", "qz"], 0.5), "color": scores(["floor_hue", "light_hue"], 0.3),
                      "class": {"top1": 0.8 if part == "embedding" else 0.7}} for head in ("linear", "mlp")}
        for part in ("invariant", "embedding")}}  # fmt: skip
    params = {"protocol": "augmentation-parameters", "results": {
        part: {"linear": {"color": {"r2": {"brightness": 0.6, "hue": 0.2}, "r2_mean": 0.4},
                          "all": {"r2": {"brightness": 0.5, "tx": 0.1}, "r2_mean": 0.3}}}
        for part in ("equivariant", "embedding")}}  # fmt: skip
    model = report.merge_sections(
        report.from_threedie_probe(sie), report.from_param_probe(params, part="equivariant"),
        report.from_classification_probe({"results": {"embedding": {"knn_top1": 0.55}, "invariant": {"knn_top1": 0.4}}}),
    )  # fmt: skip
    rot = model["threedie"]["mlp"]["embedding"]["rel_rotation"]
    assert rot["r2_per_dim"] == [0.51, 0.52, 0.53, 0.5]  # reordered to qx, qy, qz, qw
    assert rot["r2_global_mean"] == pytest.approx(0.6)
    assert model["classification"] == {"linear_top1": 0.8, "mlp_top1": 0.8, "knn_top1": 0.55}
    assert model["params"] == {
        "linear": {"color": {"brightness": 0.6, "hue": 0.2}, "all": {"brightness": 0.5, "tx": 0.1}}
    }
    numbers = report.key_numbers({"m": model})["m"]
    assert numbers["rotation_r2"] == pytest.approx(0.6) and numbers["params_r2_color"] == pytest.approx(0.4)
    paths = report.write_report({"m": model}, tmp_path, title="From probes")
    md = pathlib.Path(paths["report"]).read_text()
    assert "mlp_top1" in md and "0.600" in md
    with pytest.raises(ValueError, match="no part"):
        report.from_param_probe(params, part="invariant")


@pytest.mark.parametrize("module", [report, plots], ids=["report", "plots"])
def test_docstring_examples(module):
    import doctest

    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
