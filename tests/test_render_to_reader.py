"""End to end: a root written by the renderer reads back through both 3DIEBench readers."""

import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def rendered_root(tmp_path_factory):
    """A root made the way a user makes one: the render CLI."""
    root = tmp_path_factory.mktemp("m3d")
    args = ["--out", str(root), "--num_objects", "12", "--views", "4", "--size", "32", "--workers", "1", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.render", *args],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return root


def test_raw_reader_reads_the_rendered_root(rendered_root):
    from keras_eqssl.data import relative_quaternion, threedie_pairs

    elements = list(threedie_pairs(rendered_root, "train", seed=0).as_numpy_iterator())
    assert len(elements) >= 8  # 12 objects, about 80% train; never silently empty
    for e in elements:
        assert e["views"]["v1"].shape == (32, 32, 3) and e["views"]["v1"].dtype == np.uint8
        expected = relative_quaternion(e["latent"]["v1"], e["latent"]["v2"])
        np.testing.assert_allclose(e["rel_rotation"], expected, atol=1e-5)
        np.testing.assert_allclose(e["rel_color"], e["latent"]["v2"][[3, 6]] - e["latent"]["v1"][[3, 6]], atol=1e-6)
        assert not np.array_equal(e["latent"]["v1"], e["latent"]["v2"])  # two distinct renders
