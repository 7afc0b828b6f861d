"""`cached_render`: reuse a complete copy, replace a killed one, and two processes rendering at once."""

import json
import multiprocessing

from keras_eqssl.data.render.dataset import cached_render

SETTINGS = dict(num_objects=3, views=2, size=16, seed=0, progress=False)
NAME = "m3d-3x2-16px-seed0"


def test_renders_once_then_reuses_the_copy(tmp_path):
    root, rendered = cached_render(tmp_path, **SETTINGS)
    assert rendered and root == tmp_path / NAME
    assert json.loads((root / "render_info.json").read_text())["num_objects"] == 3
    first = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    again, rendered = cached_render(tmp_path, **SETTINGS)
    assert again == root and not rendered
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == first
    assert [p.name for p in tmp_path.iterdir()] == [NAME]  # no partial folder left behind


def test_an_incomplete_copy_is_rendered_again(tmp_path):
    killed = tmp_path / NAME
    (killed / "stale").mkdir(parents=True)  # a render killed before render_info.json was written
    (killed / "stale" / "image_0.png").write_bytes(b"half")
    root, rendered = cached_render(tmp_path, **SETTINGS)
    assert rendered and root == killed
    assert (root / "render_info.json").exists() and not (root / "stale").exists()
    other, rendered = cached_render(tmp_path, **{**SETTINGS, "views": 3})  # other settings: own folder
    assert rendered and other.name == "m3d-3x3-16px-seed0" and (root / "render_info.json").exists()


def _render(cache_dir: str, queue) -> None:
    root, rendered = cached_render(cache_dir, **SETTINGS)
    queue.put((str(root), rendered, (root / "render_info.json").exists()))


def test_two_processes_at_once_end_with_one_complete_copy(tmp_path):
    context = multiprocessing.get_context("spawn")  # no TensorFlow state carried into the children
    queue = context.Queue()
    children = [context.Process(target=_render, args=(str(tmp_path), queue)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert {root for root, _, _ in results} == {str(tmp_path / NAME)}
    assert all(complete for _, _, complete in results)  # each saw a finished copy when it returned
    assert any(rendered for _, rendered, _ in results)
    assert [p.name for p in tmp_path.iterdir()] == [NAME]
    _, rendered = cached_render(tmp_path, **SETTINGS)
    assert not rendered  # and a third process reuses it
