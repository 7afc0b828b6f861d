"""tools/bench_train.py (precision x jit settings, the gtsa row, end-to-end mode) and tools/bench_pipeline.py,
run in-process in a tiny setting: the tables and JSON have their rows and ratio fields, with positive finite figures."""

import importlib.util
import json
import math
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--width", "0.125", "--steps", "1", "--repeats", "1", "--in-process"]


def load_tool(name: str):
    """tools/<name>.py as a module (tools/ on sys.path, as when it runs as a script)."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_machine_reports_the_bf16_flags():
    from keras_eqssl.machine import BF16_FLAGS, bf16_support, cpu_features_line, cpu_flags, machine_line

    support = bf16_support()
    assert tuple(support) == BF16_FLAGS and all(isinstance(v, bool) for v in support.values())
    flags = cpu_flags()
    assert all(present == (flag in flags) for flag, present in support.items())
    line = cpu_features_line()
    assert line.startswith("CPU flags: ")
    if flags:
        assert all(f"{flag} {'yes' if present else 'no'}" in line for flag, present in support.items())
    assert machine_line().startswith("CPU: ")


def test_recon_target_divides_the_view_and_is_the_grid_times_a_power_of_two():
    bench_train = load_tool("bench_train")
    assert bench_train.recon_target_size(64, 64, 8) == 64  # the old default, unchanged
    assert bench_train.recon_target_size(32, 64, 8) == 32
    assert bench_train.recon_target_size(96, 64, 8) == 48  # 12 x 4: --size 96 works with recon
    assert bench_train.recon_target_size(96, 64, 32) == 48  # imagenet stem: 3 x 16


def test_bench_train_bad_precision_is_a_usage_error():
    bench_train = load_tool("bench_train")
    with pytest.raises(SystemExit):
        bench_train.main(["--precision", "float64", "--methods", "simclr"])
    with pytest.raises(SystemExit):
        bench_train.main(["--end-to-end", "--methods", "no_such_config"])


@pytest.mark.slow
def test_bench_train_times_every_precision_and_jit_setting(tmp_path, capsys):
    bench_train = load_tool("bench_train")
    out = tmp_path / "bench.json"
    args = ["--methods", "simclr", "--batch", "4", "--size", "16", "--no-jit", *TINY, "--json", str(out)]
    result = bench_train.main(args)  # default --precision float32,mixed_bfloat16
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "CPU flags: " in printed
    assert "x mixed_bfloat16/off" in printed and "target recon x" in printed
    data = json.loads(out.read_text())
    assert data["cpu"]["cores"] >= 1 and set(data["cpu"]["flags"]) == {"avx512f", "avx512_bf16", "amx_bf16"}
    keys = {(r["method"], r["precision"], r["jit"]) for r in data["rows"]}
    assert keys == {(m, p, False) for m in ("simclr", "simclr+recon") for p in ("float32", "mixed_bfloat16")}
    for row in data["rows"]:
        assert "error" not in row, row
        assert positive(row["pairs_per_s"]) and positive(row["ms_per_pair"]) and positive(row["cpu_ms_per_pair"])
        assert positive(row["ratio"]) and positive(row["cpu_ratio"]), row
        if row["method"] == "simclr+recon":
            assert positive(row["base_ratio"]) and positive(row["base_ratio_cpu"]), row
    for method in ("simclr", "simclr+recon"):
        entry = data["settings"][method]
        assert entry["reference"] == "float32/off" and entry["fastest"] in entry["settings"]
        ref, bf16 = entry["settings"]["float32/off"], entry["settings"]["mixed_bfloat16/off"]
        assert ref["ratio"] == 1.0 and ref["cpu_ratio"] == 1.0 and positive(bf16["ratio"])
        assert bf16["cpu_ratio"] == pytest.approx(bf16["cpu_ms_per_pair"] / ref["cpu_ms_per_pair"])
        assert bf16["ratio"] == pytest.approx(bf16["ms_per_pair"] / ref["ms_per_pair"])
    assert result["settings"] == data["settings"]


@pytest.mark.slow
def test_bench_train_gtsa_row(tmp_path):
    bench_train = load_tool("bench_train")
    out = tmp_path / "bench.json"
    bench_train.main(
        ["--methods", "gtsa", "--batch", "4", "--precision", "float32", "--no-jit", *TINY, "--json", str(out)]
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["precision"], r["jit"]) for r in rows] == [("gtsa", "float32", False)]
    assert "error" not in rows[0], rows[0]
    assert positive(rows[0]["pairs_per_s"]) and rows[0]["ratio"] == 1.0 and "base_ratio" not in rows[0]


@pytest.mark.slow
def test_bench_train_at_96px_with_the_imagenet_stem(tmp_path, capsys):
    bench_train = load_tool("bench_train")
    out = tmp_path / "bench.json"
    args = ["--methods", "simclr", "--batch", "4", "--size", "96", "--backbone-stem", "imagenet", "--optimizer", "sgd"]
    bench_train.main([*args, "--precision", "float32", "--no-jit", *TINY, "--json", str(out)])
    assert "imagenet stem" in capsys.readouterr().out
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"simclr", "simclr+recon"}  # recon's target: 48 px, 3 x 16, divides 96
    for row in rows.values():
        assert "error" not in row, row
        assert positive(row["pairs_per_s"]) and row["ratio"] == 1.0
    assert positive(rows["simclr+recon"]["base_ratio"])


@pytest.mark.slow
def test_bench_train_end_to_end_reports_source_images_per_second(tmp_path, capsys):
    bench_train = load_tool("bench_train")
    out = tmp_path / "e2e.json"
    args = ["--end-to-end", "--methods", "stl", "--size", "32", "--batch", "4", "--backbone-stem", "imagenet"]
    bench_train.main([*args, "--optimizer", "sgd", "--no-jit", *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "STL reference" in printed and "not comparable" in printed  # not the reference's 96 px, batch 64
    assert "CPU flags: " in printed and "e2e / step" in printed
    data = json.loads(out.read_text())
    keys = {(r["method"], r["precision"], r["jit"]) for r in data["rows"]}
    assert keys == {("stl", "float32", False), ("stl", "mixed_bfloat16", False)}
    for row in data["rows"]:
        assert "error" not in row, row
        assert row["batch"] == 4
        for key in ("images_per_s", "ms_per_image", "cpu_ms_per_image", "step_alone_images_per_s", "e2e_over_step"):
            assert positive(row[key]), (key, row)
    entry = data["settings"]["stl"]
    assert entry["settings"]["float32/off"]["ratio"] == 1.0
    assert positive(entry["settings"]["mixed_bfloat16/off"]["ratio"])
    assert "policy stl" in data["configs"]["stl"] and "batch 4 images" in data["configs"]["stl"]


def check_pipeline_rows(rows, policies, jits=("off",)):
    assert [r["policy"] for r in rows] == list(policies)
    for row in rows:
        assert "error" not in row, row
        assert positive(row["supply_images_per_s"]) and positive(row["supply_cpu_ms_per_image"]), row
        for jit in jits:
            consume = row[f"consume_jit_{jit}_images_per_s"]
            assert positive(consume), row
            assert row[f"ratio_jit_{jit}"] == pytest.approx(row["supply_images_per_s"] / consume)
            assert 0 < row[f"pipeline_cpu_share_jit_{jit}"] < 1, row
        assert row["min_ratio"] == min(row[f"ratio_jit_{jit}"] for jit in jits)


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_bench_pipeline_reports_supply_over_consume(tmp_path, capsys):
    bench_pipeline = load_tool("bench_pipeline")
    out = tmp_path / "pipeline.json"
    args = ["--policies", "stl", "--size", "32", "--batch", "4", "--batches", "2", "--warmup", "1", "--jit", "off"]
    bench_pipeline.main([*args, *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "CPU flags: " in printed and "ratio jit off" in printed
    assert "target supply / consume >= 2 for every policy: " in printed
    data = json.loads(out.read_text())
    assert data["cpu"]["cores"] >= 1
    check_pipeline_rows(data["rows"], ["stl"])


@pytest.mark.slow
def test_bench_pipeline_gtsa_jit_off_and_on(tmp_path):
    """GTSA's multi-crop policy with and without XLA (the one XLA once failed to compile). Every
    policy: the full run in docs/performance.md; here STL's (above) and GTSA's, to keep CI short."""
    bench_pipeline = load_tool("bench_pipeline")
    args = ["--size", "32", "--batch", "4", "--batches", "1", "--warmup", "1"]
    bench_pipeline.main([*args, "--policies", "gtsa", "--jit", "off,on", *TINY, "--json", str(tmp_path / "on.json")])
    check_pipeline_rows(json.loads((tmp_path / "on.json").read_text())["rows"], ["gtsa"], jits=("off", "on"))


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_bench_batch_norm_times_keras_and_fused_per_precision(tmp_path, capsys):
    bench_batch_norm = load_tool("bench_batch_norm")
    out = tmp_path / "bn.json"
    args = ["--width", "0.125", "--size", "32", "--batch", "4", "--calls", "1", "--repeats", "1"]
    bench_batch_norm.main([*args, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "CPU flags: " in printed and "| fused / Keras |" in printed
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"float32", "mixed_bfloat16"}
    for rows in results.values():
        assert set(rows) == {"bn", "resnet18"}
        for row in rows.values():
            assert positive(row["keras_ms"]) and positive(row["fused_ms"]), row
            assert row["ratio"] == pytest.approx(row["fused_ms"] / row["keras_ms"])
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # left as found


def test_bench_pipeline_says_what_its_on_disk_source_measures(tmp_path):
    bench_pipeline = load_tool("bench_pipeline")
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(b"\xff\xd8" + bytes(100 * i) + b"\xff\xd9")
    line = bench_pipeline.folder_line(str(tmp_path))
    assert line.startswith("source: 3 JPEG files") and "no tf.data cache" in line and "page cache" in line


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_bench_pipeline_reads_an_on_disk_folder(tmp_path, capsys):
    bench_pipeline = load_tool("bench_pipeline")
    out = tmp_path / "disk.json"
    args = ["--policies", "simclr", "--size", "32", "--image-size", "40", "--batch", "4", "--batches", "2"]
    args += ["--warmup", "1", "--jit", "off", "--disk-images", "12", "--disk-side", "48"]
    bench_pipeline.main([*args, *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "source: 12 JPEG files" in printed and "wrote 12 JPEGs of 48 px" in printed
    data = json.loads(out.read_text())
    assert data["source"].startswith("source: 12 JPEG files")
    check_pipeline_rows(data["rows"], ["simclr"])
