"""Results pages: each is what its JSON gives, and its marks follow the stated rule."""

from __future__ import annotations

import copy
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import results_page  # noqa: E402

PAGES = sorted(p for p in (ROOT / "docs").glob("*.json") if "sections" in json.loads(p.read_text()))


def _page() -> dict:
    """A small page: a method that clearly beats its base on one column and not on the other."""
    seeds = [0, 1, 2, 3, 4]
    return {
        "title": "Test page", "command": ".venv/bin/python tools/compare.py --seeds=0,1,2,3,4", "commits": ["abc"],
        "dirty": False, "cpu": "test CPU", "cores": 2, "wall_minutes": 1.0, "json": "t.json", "intro": ["Intro."],
        "sections": [{
            "key": "photos", "title": "Photos", "short_title": "Photos", "description": "Held-out crops.",
            "seeds": seeds, "repeats": 3, "columns": ["a R²", "b R²"],
            "rows": [
                {"label": "Base", "base": None, "values": {"a R²": [0.50, 0.52, 0.49, 0.51, 0.50],
                                                           "b R²": [0.30, 0.31, 0.29, 0.32, 0.30]}},
                {"label": "Method", "base": "Base", "values": {"a R²": [0.70, 0.71, 0.70, 0.72, 0.70],
                                                               "b R²": [0.33, 0.29, 0.31, 0.30, 0.32]}},
            ],
            "init": {"label": "random init", "values": {"a R²": [0.40, 0.41, 0.39, 0.42, 0.40]}},
            "constant": {"a R²": -0.001, "b R²": -0.002}, "contrasts": [], "glance": ["a R²"], "figure": "",
        }],
    }  # fmt: skip


@pytest.mark.parametrize("path", PAGES, ids=[p.stem for p in PAGES])
def test_each_results_page_is_regenerated_from_its_json(path):
    assert results_page.check(path, docs=True) == [], f"rerun: .venv/bin/python tools/results_page.py {path} --docs"


def test_the_results_pages_record_commit_cpu_command_and_seeds():
    assert PAGES, "docs/ has no results page with its JSON"
    for path in PAGES:
        page = json.loads(path.read_text())
        assert page["commits"] and all(len(c) == 40 for c in page["commits"]), path
        assert page["cpu"] and page["cores"] >= 1 and page["command"].startswith(".venv/bin/python tools/"), path
        assert page["wall_minutes"] > 0, path
        md = path.with_suffix(".md").read_text()
        assert page["commits"][0][:12] in md and page["cpu"] in md and "Holm" in md, path


def test_marks_follow_the_corrected_test():
    md = results_page.render(_page())
    diff_lines = [line for line in md.splitlines() if line.startswith("| Method − Base")]
    assert len(diff_lines) == 1
    cells = [c.strip() for c in diff_lines[0].strip("|").split("|")]
    assert cells[1].endswith("*") and cells[1].startswith("+0.2")  # clear: 5 seeds, every one +0.2
    assert not cells[2].endswith("*")  # b: inside the noise
    assert "tests 4 differences; 3 survive" in md  # Method − init a, Base − init a, Method − Base a and b


def test_a_changed_value_makes_the_check_fail(tmp_path):
    page = _page()
    path = tmp_path / "t.json"
    path.write_text(json.dumps(page))
    results_page.write_page(path)
    assert results_page.check(path) == []
    changed = copy.deepcopy(page)
    changed["sections"][0]["rows"][1]["values"]["b R²"][0] = 0.9
    path.write_text(json.dumps(changed))
    assert results_page.check(path) == [str(tmp_path / "t.md")]


def test_method_block_shows_the_pages_verdicts():
    block = results_page.method_block(_page(), "Method")
    assert "| Method " in block and "| Base " in block and "| random init " in block
    line = next(x for x in block.splitlines() if x.startswith("| Δ Method − Base"))
    assert line.split("|")[2].strip().endswith("*") and not line.split("|")[3].strip().endswith("*")
    start, end = results_page._marker("Method", "t.json")
    text = f"intro\n{start}\nold figures\n{end}\nrest\n"
    updated = results_page._with_blocks(text, _page(), "page.md")
    assert "old figures" not in updated and block in updated and updated.endswith(f"{end}\nrest\n")


def test_glance_block_has_intervals_for_init_and_base():
    block = results_page.glance(_page())
    assert block.startswith(results_page.GLANCE_START) and block.endswith(results_page.GLANCE_END)
    assert "| Method − random init" in block and "| Method − Base" in block and "[" in block
