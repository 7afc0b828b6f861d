"""The parity tools start without torch (`--help`), and docs/parity.md is what their JSON gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = os.path.join(ROOT, "tools", "parity")
TOOLS = ("stl", "gtsa", "sie", "essl", "augself", "ciper", "augment")

# Runs a tool as a script with torch made unimportable, as on a machine without the [parity] extra.
_WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; "
    "sys.path.insert(0, sys.argv[1]); path = sys.argv[2]; sys.argv = [path, '--help']; "
    "runpy.run_path(path, run_name='__main__')"
)


@pytest.mark.parametrize("tool", TOOLS)
def test_parity_tool_help_runs_without_torch(tool):
    path = os.path.join(PARITY, f"{tool}.py")
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, PARITY, path], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_parity_page_is_regenerated_from_its_json():
    out = subprocess.run(
        [sys.executable, os.path.join(PARITY, "make_page.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_method_has_a_parity_json_with_its_commit():
    import json

    for tool in TOOLS:
        with open(os.path.join(ROOT, "docs", "parity", f"{tool}.json")) as f:
            run = json.load(f)
        assert len(run["commit"]) == 40, tool
        assert run["rows"], tool
        assert "/work" not in run["command"], tool
