"""The renderer's maths, objects, on-disk format and determinism (tiny renders: 32-48 px)."""

import filecmp
import pathlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from keras_eqssl.data.render import jobs, meshes, objects, scene, sheet, writer
from keras_eqssl.data.rotations import euler_to_matrix, relative_quaternion

# Known rotations (extrinsic xyz Euler angles, all inside (-pi/2, pi/2)).
KNOWN = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, np.pi / 4], [np.pi / 3, 0.0, 0.0], [0.3, -0.7, 1.2]], np.float32)


def _latents(angles):
    lat = np.zeros((len(angles), 7), np.float32)
    lat[:, :3] = angles
    lat[:, 3:] = (0.55, 0.3, 1.0, 0.1)  # same floor and light in every view: only the rotation changes
    return lat


def test_relative_quaternion_is_sies_target():
    lat = scene.sample_latents(np.random.default_rng(0), 64)
    got = relative_quaternion(lat[:32], lat[32:])
    assert got.shape == (32, 4)
    for l1, l2, q in zip(lat[:32], lat[32:], got):
        want = (R.from_euler("xyz", l1[:3]).inv() * R.from_euler("xyz", l2[:3])).as_quat()
        np.testing.assert_allclose(q, want, atol=1e-12)
    # a single pair, and a known answer: identity then 90 degrees about z
    np.testing.assert_allclose(
        relative_quaternion([0, 0, 0], [0, 0, np.pi / 2]), [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12
    )
    # R1^-1 R2 as matrices
    m = euler_to_matrix(lat[:2, :3])
    np.testing.assert_allclose(R.from_quat(got[0]).as_matrix(), m[0].T @ euler_to_matrix(lat[32, :3]), atol=1e-6)


def test_sampled_latents_are_in_3diebench_ranges():
    lat = scene.sample_latents(np.random.default_rng(1), 5000)
    assert lat.shape == (5000, 7) and lat.dtype == np.float32
    assert np.all(np.abs(lat[:, :3]) < np.pi / 2)
    for col, (lo, hi) in {3: (0, 1), 4: (0, np.pi / 4), 5: (0, 2 * np.pi), 6: (0, 1)}.items():
        assert lat[:, col].min() >= lo and lat[:, col].max() <= hi
        assert lat[:, col].min() < lo + 0.05 * (hi - lo) and lat[:, col].max() > hi - 0.05 * (hi - lo)


def test_known_rotations_round_trip_and_change_the_image(tmp_path):
    from keras_eqssl.data.render.gl import Renderer

    mesh, colors = objects.procedural_object(0, 3)  # a car: not symmetric under these rotations
    lat = _latents(np.concatenate([KNOWN, KNOWN[:1]]))  # the last view repeats the first
    renderer = Renderer(48, samples=1)
    try:
        jobs.render_views(renderer, meshes.vertex_data(mesh, colors), lat, tmp_path)
    finally:
        renderer.release()
    saved = np.stack([np.load(tmp_path / f"latent_{k}.npy") for k in range(len(lat))])
    assert saved.dtype == np.float32 and saved.shape == (5, 7)
    np.testing.assert_array_equal(saved, lat)
    images = [np.asarray(__import__("PIL.Image").Image.open(tmp_path / f"image_{k}.jpg"), np.float32) for k in range(5)]
    assert images[0].shape == (48, 48, 3)
    for k in range(1, 4):
        diff = np.abs(images[k] - images[0]).mean()
        assert diff > 2.0, f"rotation {KNOWN[k]} barely changed the image (mean |diff| {diff:.2f})"
    assert np.array_equal(images[4], images[0]), "the same latent must give the same image"
    # what a reader computes from the saved latents is the rotation between the requested poses
    for k in range(1, 4):
        want = (R.from_euler("xyz", KNOWN[0]).inv() * R.from_euler("xyz", KNOWN[k])).as_quat()
        np.testing.assert_allclose(relative_quaternion(saved[0], saved[k]), want, atol=1e-6)


def test_light_and_floor_latents_change_the_image(tmp_path):
    from keras_eqssl.data.render.gl import Renderer

    mesh, colors = objects.procedural_object(0, 7)
    base = _latents(KNOWN[:1])[0]
    floor, light = base.copy(), base.copy()
    floor[3] = (base[3] + 0.5) % 1
    light[5] = (base[5] + np.pi) % (2 * np.pi)
    renderer = Renderer(32, samples=1)
    try:
        renderer.set_mesh(meshes.vertex_data(mesh, colors))
        a, b, c = (renderer.render(x).astype(np.float32) for x in (base, floor, light))
    finally:
        renderer.release()
    assert np.abs(a - b).mean() > 5 and np.abs(a - c).mean() > 2


def test_procedural_objects_are_deterministic_and_vary_within_a_class():
    assert len(objects.CLASSES) >= 10
    assert len({c.synset for c in objects.CLASSES}) == len(objects.CLASSES)
    assert all(len(c.synset) == 8 and c.synset.isdigit() for c in objects.CLASSES)
    n = len(objects.CLASSES)
    for label in range(n):
        a = meshes.vertex_data(*objects.procedural_object(0, label))
        again = meshes.vertex_data(*objects.procedural_object(0, label))
        other = meshes.vertex_data(*objects.procedural_object(0, label + n))  # same class, next object
        assert np.array_equal(a, again)
        assert a.shape != other.shape or not np.allclose(a, other), objects.CLASSES[label].name
        assert np.isfinite(a).all() and np.abs(a[:, :3]).max() <= 0.5 + 1e-6  # centred, unit size


def test_stratified_split_by_object():
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    is_val = writer.split_objects(labels, seed=0, val_fraction=0.2)
    assert [int(is_val[labels == k].sum()) for k in range(4)] == [2, 1, 1, 0]
    np.testing.assert_array_equal(is_val, writer.split_objects(labels, seed=0))


def _render_root(root, seed=3, num_objects=3, views=2, size=32):
    settings = jobs.Settings(str(root), views=views, size=size, seed=seed)
    report = jobs.render_jobs(jobs.procedural_jobs(num_objects), settings, workers=1, progress=False)
    writer.write_splits(
        root, [writer.object_path(j.synset, j.object_id) for j in report.done], [j.label for j in report.done], seed
    )
    return report


def test_same_seed_gives_identical_files_and_the_3diebench_layout(tmp_path):
    _render_root(tmp_path / "a")
    _render_root(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 * 2 * 2 + 4
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    other = _render_root(tmp_path / "c", seed=4)
    assert not filecmp.cmp(
        tmp_path / "a/00000001/airplane_000000/image_0.jpg",
        tmp_path / "c/00000001/airplane_000000/image_0.jpg",
        shallow=False,
    )
    assert len(other.done) == 3
    root = tmp_path / "a"
    paths = np.concatenate([np.load(root / "train_images.npy"), np.load(root / "val_images.npy")])
    labels = np.concatenate([np.load(root / "train_labels.npy"), np.load(root / "val_labels.npy")])
    assert labels.dtype == np.int64 and sorted(paths) == [
        "/00000001/airplane_000000/",
        "/00000002/bottle_000001/",
        "/00000003/bowl_000002/",
    ]
    for path in paths:
        assert (root / path.strip("/") / "image_1.jpg").exists()
        assert np.load(root / path.strip("/") / "latent_1.npy").shape == (7,)


def test_contact_sheet(tmp_path):
    _render_root(tmp_path, num_objects=2, views=3)
    png = sheet.contact_sheet(tmp_path, tmp_path / "sheet.png")
    from PIL import Image

    img = Image.open(png)
    assert img.size == (sheet.LABEL_WIDTH + 3 * 32, 2 * 32)
    with pytest.raises(FileNotFoundError, match="rendered root"):
        sheet.contact_sheet(tmp_path / "nothing", tmp_path / "x.png")


def test_shapenet_and_modelnet_folders(tmp_path):
    import trimesh

    box = trimesh.creation.box()
    (tmp_path / "chair/train").mkdir(parents=True)
    (tmp_path / "chair/test").mkdir(parents=True)
    box.export(tmp_path / "chair/train/chair_0001.off")
    box.export(tmp_path / "chair/test/chair_0002.off")
    (tmp_path / "03001627/1a2b/models").mkdir(parents=True)
    trimesh.creation.icosphere().export(tmp_path / "03001627/1a2b/models/model_normalized.obj")
    found = meshes.find_meshes(tmp_path)
    assert [(m.synset, m.label, m.object_id) for m in found] == [
        ("03001627", 0, "1a2b"),
        ("chair", 1, "chair_0002"),  # sorted by path: test/ before train/
        ("chair", 1, "chair_0001"),
    ]
    todo = jobs.mesh_dir_jobs(tmp_path)
    report = jobs.render_jobs(todo, jobs.Settings(str(tmp_path / "out"), views=1, size=32), workers=1, progress=False)
    assert len(report.done) == 3 and not report.skipped
    assert pathlib.Path(tmp_path / "out/03001627/1a2b/image_0.jpg").exists()
