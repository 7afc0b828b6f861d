"""tools/make_figures.py writes the documentation's pictures (the cheap ones here: no TensorFlow)."""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_figures  # noqa: E402
from figures import charts  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_method_diagram_and_chart_are_written_through_the_command_line(tmp_path):
    make_figures.main(["--only", "method_essl", "--only", "speed_end_to_end", "--out", str(tmp_path)])
    for name in ("method_essl", "speed_end_to_end"):
        path = tmp_path / f"{name}.png"
        width, height = _png_size(path)
        assert 600 <= width <= 2000 and 250 <= height <= 1000, (name, width, height)
        assert 10_000 < path.stat().st_size < 150_000, (name, path.stat().st_size)


def test_diagnosis_chart_reads_the_runs_of_its_json(tmp_path):
    runs = {"base": [{"rotation R² (pooled)": 0.1 * s, "recon R² (paired)": 0.2} for s in range(3)],
            "other": [{"rotation R² (pooled)": -0.1 * s} for s in range(3)]}  # fmt: skip
    source = tmp_path / "d.json"
    source.write_text(json.dumps(runs))
    path = charts.diagnosis(str(tmp_path / "d.png"), "test", source=source)
    assert _png_size(pathlib.Path(path))[0] == 2 * 520  # two panels: rotation and the other measures
    source.write_text(json.dumps({"base": runs["other"]}))
    path = charts.diagnosis(str(tmp_path / "one.png"), "test", source=source)
    assert _png_size(pathlib.Path(path))[0] == 520


def test_markdown_table_refuses_a_missing_table():
    assert charts.markdown_table("| a | b |\n|---|---|\n| 1 | 2 |\n\ntext", "| a |") == [["1", "2"]]
    with pytest.raises(ValueError, match="no table"):
        charts.markdown_table("| a | b |\n|---|---|\n", "| c |")


def test_unknown_figure_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown figure"):
        make_figures.make("no_such_figure", tmp_path)
