"""tools/bench_train.py --devices (the GPU table) and tools/bench_devices.py, on the CPU.

Fast: the device settings, the GPU header line, the peak-RSS measurement, the table's columns
from given figures, usage errors. Slow: one device with mixed_float16 in this process, and a
MirroredStrategy over two logical CPU devices (child processes, which can split the CPU)."""

import json

import numpy as np
import pytest
from test_bench_tools import TINY, load_tool, positive

DEVICE_COLUMNS = ["method", "devices", "precision", "jit", "batch", "images/s", "views/s", "ms/step"]


def device_table_columns(printed: str) -> list[str]:
    """The header cells of the per-row device table in `printed` (the table with a `devices` column)."""
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| method") and "devices" in cells:
            return cells
    raise AssertionError(f"no device table in {printed!r}")


def check_columns(printed: str, peak: str) -> None:
    assert device_table_columns(printed) == [*DEVICE_COLUMNS, f"{peak} GiB", "x base", "x 1 device"]


def test_parse_devices():
    bench_devices = load_tool("bench_devices")
    assert bench_devices.parse_devices("1,all") == ["1", "all"]
    assert bench_devices.parse_devices(" all , 2, all") == ["all", "2"]
    for bad in ("0", "two", "", ",", "-1"):
        with pytest.raises(ValueError, match="--devices"):
            bench_devices.parse_devices(bad)


def test_gpu_line_names_the_gpus_or_says_none():
    bench_devices = load_tool("bench_devices")
    line = bench_devices.gpu_line()
    if bench_devices.gpus():
        assert line.startswith("GPU: ") and " x " in line
    else:
        assert line == "GPU: none visible (the rows run on the CPU)"


def test_cpu_peak_is_the_process_peak_rss_since_the_reset():
    bench_devices = load_tool("bench_devices")
    cpu = ["/job:localhost/replica:0/task:0/device:CPU:0"]
    bench_devices.reset_peak(cpu)
    before = bench_devices.peak_memory(cpu)
    assert before["peak_what"] == bench_devices.CPU_PEAK and before["peak_bytes"] > 0
    block = np.ones(128 * 1024**2, dtype=np.uint8)  # 128 MiB, every page touched
    after = bench_devices.peak_memory(cpu)["peak_bytes"]
    del block
    assert after >= before["peak_bytes"] + 100 * 1024**2
    assert bench_devices.memory_cell({"peak_bytes": 3 * 1024**3}) == "3.00"
    assert bench_devices.memory_cell({"error": "x"}) == "n/a"


def test_device_rows_and_table(capsys):
    bench_train = load_tool("bench_train")
    args = type("Args", (), {"batch": 8})()
    one = {"step_s": 0.1, "cpu_s": 0.2, "replicas": 1, "views_per_image": 2.0, "peak_bytes": 2 * 1024**3}
    all_ = {**one, "step_s": 0.125, "replicas": 4, "peak_bytes": 3 * 1024**3}
    peak = {"peak_what": "peak GPU memory"}
    results = {
        ("1", "simclr", "mixed_float16", True): {**one, **peak},
        ("1", "simclr+recon", "mixed_float16", True): {**one, **peak, "step_s": 0.12},
        ("all", "simclr", "mixed_float16", True): {**all_, **peak},
        ("all", "simclr+recon", "mixed_float16", True): {"error": "OOM when allocating"},
    }
    rows = bench_train.device_rows(results, list(results), args)
    assert rows[0]["images_per_s"] == pytest.approx(80.0) and rows[0]["views_per_s"] == pytest.approx(160.0)
    assert rows[1]["base_ratio"] == pytest.approx(1.2) and "x_one_device" not in rows[0]
    assert rows[2]["batch"] == 32 and rows[2]["images_per_s"] == pytest.approx(256.0)
    assert rows[2]["x_one_device"] == pytest.approx(256.0 / 80.0)
    assert rows[3]["error"] == "OOM when allocating"
    bench_train.print_device_table(rows, args)
    table = capsys.readouterr().out
    check_columns(table, "peak GPU memory")
    assert "| 3.00 " in table and "| all (4) " in table and "failed: OOM when allocating" in table


def test_device_usage_errors():
    bench_train = load_tool("bench_train")
    for args in (["--devices", "0"], ["--devices", "1", "--cpu-devices", "0"], ["--cpu-devices", "2"]):
        with pytest.raises(SystemExit):
            bench_train.main([*args, "--methods", "simclr"])
    with pytest.raises(SystemExit):
        bench_train.main(["--end-to-end", "--methods", "stl", "--devices", "1"])


def check_device_rows(rows: list[dict], batch: int) -> None:
    for row in rows:
        assert "error" not in row, row
        assert row["batch"] == batch * row["replicas"]
        assert positive(row["images_per_s"]) and row["views_per_s"] == pytest.approx(2 * row["images_per_s"])
        assert isinstance(row["peak_bytes"], int) and row["peak_bytes"] > 0


@pytest.mark.slow  # builds and trains a tiny ResNet-18 in float16 (~30 s on 2 busy cores)
def test_one_device_mixed_float16_in_process(tmp_path, capsys):
    bench_train = load_tool("bench_train")
    out = tmp_path / "devices.json"
    args = ["--devices", "1", "--precision", "mixed_float16", "--methods", "ciper", "--batch", "4", "--size", "16"]
    bench_train.main([*args, "--no-jit", *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "GPU: " in printed and "CPU: " in printed
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["method"], r["devices"], r["precision"]) for r in rows] == [("ciper", "1", "mixed_float16")]
    check_device_rows(rows, 4)
    assert {r["replicas"] for r in rows} == {1} and data["gpu"].startswith("GPU: ")
    check_columns(printed, "peak RSS (process, CPU)" if "none visible" in data["gpu"] else "peak GPU memory")


@pytest.mark.slow  # a child process, a MirroredStrategy over two logical CPUs (~1 min on 2 busy cores)
def test_all_devices_mirrored_over_two_logical_cpus(tmp_path, capsys):
    bench_train = load_tool("bench_train")
    if load_tool("bench_devices").gpus():
        pytest.skip("the CPU split applies without GPUs")
    out = tmp_path / "mirrored.json"
    args = ["--devices", "all", "--cpu-devices", "2", "--methods", "ciper", "--precision", "float32"]
    bench_train.main([*args, "--batch", "4", "--size", "16", "--no-jit", *TINY[:-1], "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["devices"], r.get("replicas")) for r in rows] == [("all", 2)]
    check_device_rows(rows, 4)
    assert "| all (2) " in capsys.readouterr().out


def test_xla_over_several_replicas_fails_with_a_clear_reason():
    """What XLA with a MirroredStrategy of two logical CPUs raises (seen with --jit-only, --devices all)."""
    bench_train = load_tool("bench_train")
    err = ValueError(
        "Graph execution error:\nTrying to access resource stem_conv/kernel/replica_1/3 located in device CPU:1\n"
        " Cf. https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device"
    )
    assert bench_train.short_error(err) == bench_train.XLA_REPLICAS_ERROR
    assert bench_train.short_error(ValueError("Graph execution error:\nOOM when allocating")).endswith(
        "OOM when allocating"
    )
