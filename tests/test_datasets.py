import numpy as np
import pytest
import torch

from conftest import rand_img, write_png
from ttl.datasets import PairedRainDataset, RealDomainUnlabeled, SceneBank, assert_unlabeled
from ttl.layouts import LAYOUTS, LayoutError, PairedFolderDataset, detect_layout
from ttl.scenes import scene_split
from ttl.io import ImageReadError
from ttl.rain import SyntheticRain
from ttl.scenes import dead_leaves


# ------------------------------------------------------------------ fixture folders in the public layouts
def make_rain1400(root):
    for sid in range(1, 4):
        write_png(root / "ground_truth" / f"{sid}.png", rand_img(seed=sid))
        for k in range(1, 15):
            write_png(root / "rainy_image" / f"{sid}_{k}.png", rand_img(seed=100 * sid + k))
    return root


def make_rain13k(root, n=5):
    for i in range(n):
        write_png(root / "input" / f"{i}.png", rand_img(seed=i))
        write_png(root / "target" / f"{i}.png", rand_img(seed=50 + i))
    return root


def make_rain100_old(root, in_subdir=False):
    for i in range(1, 4):
        write_png(root / "rainy" / f"rain-{i:03d}.png", rand_img(seed=i))
        write_png(root / ("norain" if in_subdir else ".") / f"norain-{i:03d}.png", rand_img(seed=9 + i))
    return root


def make_spa(root):
    for i in range(3):
        write_png(root / "rain" / f"{i}.png", rand_img(seed=i))
        write_png(root / "gt" / f"{i}gt.png", rand_img(seed=20 + i))
    return root


def test_rain1400_layout_pairs_many_rainy_per_clean(tmp_path):
    name, items = detect_layout(make_rain1400(tmp_path))
    assert name == "rain1400" and len(items) == 42
    assert all(it.clean.stem == it.rainy.stem.split("_")[0] for it in items)
    assert len({it.scene for it in items}) == 3


def test_rain13k_layout(tmp_path):
    name, items = detect_layout(make_rain13k(tmp_path))
    assert name == "rain13k" and len(items) == 5
    assert all(it.rainy.name == it.clean.name for it in items)


@pytest.mark.parametrize("in_subdir", [False, True])
def test_rain100_old_layout(tmp_path, in_subdir):
    name, items = detect_layout(make_rain100_old(tmp_path, in_subdir))
    assert name == "rain100-old" and len(items) == 3
    assert all(it.rainy.stem.replace("rain-", "") == it.clean.stem.replace("norain-", "") for it in items)


def test_rain200_heavyrain_and_ddn_folder_layouts(tmp_path):
    for k in (1, 2):
        for sub in ("rain", "norain"):
            write_png(tmp_path / "r200" / sub / f"norain-{k}.png", rand_img(seed=k))
        write_png(tmp_path / "heavy" / "in" / f"im_000{k}_s80_a04.png", rand_img(seed=k))
        write_png(tmp_path / "heavy" / "gt" / f"im_000{k}.png", rand_img(seed=k + 9))
        write_png(tmp_path / "ddn" / f"{k}rain.jpg", rand_img(seed=k))
        write_png(tmp_path / "ddn" / f"{k}ground_truth.jpg", rand_img(seed=k + 9))
    name, items = detect_layout(tmp_path / "r200")
    assert name == "rain200" and {(it.rainy.parent.name, it.clean.parent.name) for it in items} == {("rain", "norain")}
    name, items = detect_layout(tmp_path / "heavy")
    assert name == "heavyrain" and {(it.rainy.stem, it.clean.stem) for it in items} == {
        ("im_0001_s80_a04", "im_0001"), ("im_0002_s80_a04", "im_0002")}
    name, items = detect_layout(tmp_path / "ddn")
    assert name == "ddn-folder" and {(it.rainy.name, it.clean.name) for it in items} == {
        ("1rain.jpg", "1ground_truth.jpg"), ("2rain.jpg", "2ground_truth.jpg")}
    (tmp_path / "heavy" / "gt" / "im_0002.png").unlink()
    with pytest.raises(LayoutError, match="im_0002_s80_a04"):
        detect_layout(tmp_path / "heavy")


def test_the_shared_public_samples_are_found_by_their_layouts():
    from conftest import PUBLIC_DIR

    if not PUBLIC_DIR.is_dir():
        pytest.skip(f"no public samples at {PUBLIC_DIR}")
    found = {d.name: detect_layout(d) for d in sorted(PUBLIC_DIR.iterdir()) if d.is_dir()}
    assert {k: (v[0], len(v[1])) for k, v in found.items()} == {
        "ddn_sample": ("ddn-folder", 3), "heavyrain_sample": ("heavyrain", 4), "rain13k_sample": ("rain13k", 38),
        "rain200_sample_test": ("rain200", 5), "rain200_sample_train": ("rain200", 18)}


def test_spa_layout_strips_gt_suffix(tmp_path):
    name, items = detect_layout(make_spa(tmp_path))
    assert name == "spa-data" and {(it.rainy.stem, it.clean.stem) for it in items} == {("0", "0gt"), ("1", "1gt"),
                                                                                         ("2", "2gt")}


def test_generic_paired_and_unpaired(tmp_path):
    for i in range(3):
        write_png(tmp_path / "p" / "lq" / f"x{i}.png", rand_img(seed=i))
        write_png(tmp_path / "p" / "hq" / f"x{i}.png", rand_img(seed=i + 5))
        write_png(tmp_path / "u" / f"real{i}.jpg", rand_img(seed=i))
    assert detect_layout(tmp_path / "p")[0] == "paired"
    name, items = detect_layout(tmp_path / "u")
    assert name == "unpaired" and all(it.clean is None for it in items)


def test_rain800_side_by_side_finds_the_rainy_half(tmp_path):
    from ttl.rain import SyntheticRain
    from ttl.utils import generator

    clean, _ = dead_leaves(2, 64, seed=0)
    rainy = SyntheticRain("heavy")(clean, generator(0)).rainy
    for i in range(2):
        left_rainy = i == 0
        pair = torch.cat([rainy[i], clean[i]] if left_rainy else [clean[i], rainy[i]], -1)
        write_png(tmp_path / f"{i}.png", (pair.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    name, items = detect_layout(tmp_path, layout="rain800")
    assert name == "rain800" and [it.half for it in items] == ["left", "right"]


def test_no_layout_lists_the_known_ones(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError) as e:
        detect_layout(tmp_path / "empty")
    for k in LAYOUTS:
        assert k in str(e.value)
    with pytest.raises(LayoutError, match="unknown layout"):
        detect_layout(tmp_path, layout="rain42")


def test_missing_partner_is_reported(tmp_path):
    make_rain13k(tmp_path)
    write_png(tmp_path / "input" / "orphan.png", rand_img())
    with pytest.raises(LayoutError, match="no clean partner.*orphan.png"):
        detect_layout(tmp_path)


def test_scene_split_is_stable_and_scene_disjoint(tmp_path):
    ds_items = detect_layout(make_rain1400(tmp_path))[1]
    by_split = {}
    for it in ds_items:
        by_split.setdefault(scene_split(it.scene), set()).add(it.scene)
    scenes = [s for ss in by_split.values() for s in ss]
    assert len(scenes) == len(set(scenes))  # a scene never lands in two splits
    counts = {s: 0 for s in ("train", "val", "test")}
    for i in range(3000):
        counts[scene_split(f"scene-{i}")] += 1
    assert 0.75 < counts["train"] / 3000 < 0.85 and counts["val"] > 200 and counts["test"] > 200


def test_paired_folder_dataset_crops_and_errors(tmp_path):
    make_rain13k(tmp_path / "d", n=12)
    ds = PairedFolderDataset(tmp_path / "d", crop=16)
    item = ds[0]
    assert item["rainy"].shape == (3, 16, 16) and item["clean"].shape == (3, 16, 16)
    # a corrupt file is named in the error
    (tmp_path / "d" / "input" / "0.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="0.png"):
        PairedFolderDataset(tmp_path / "d")[0]
    write_png(tmp_path / "u" / "a.png", rand_img())
    with pytest.raises(LayoutError, match="unpaired"):
        PairedFolderDataset(tmp_path / "u")


def test_paired_rain_dataset_is_deterministic_and_batched():
    bank = SceneBank("procedural", "train", 32, n=8, seed=0)
    ds = PairedRainDataset(bank, [SyntheticRain("light"), SyntheticRain("heavy")], seed=3)
    a, b = ds.__getitems__([1, 2, 3]), ds.__getitems__([1, 2, 3])
    assert all(torch.equal(x["rainy"], y["rainy"]) for x, y in zip(a, b))
    assert set(a[0]) == {"rainy", "clean"} and a[0]["rainy"].shape == (3, 32, 32)
    ds.set_epoch(1)
    assert not torch.equal(ds.__getitems__([1, 2, 3])[0]["rainy"], a[0]["rainy"])


def test_photos_are_for_test_splits_only():
    with pytest.raises(ValueError, match="test splits only"):
        SceneBank("photos", "train", 32)
    bank = SceneBank("photos", "test", 32)
    img, depth = bank.get(0, torch.Generator().manual_seed(0))
    assert img.shape == (3, 32, 32) and depth.shape == (1, 32, 32)


def test_scene_bank_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        SceneBank("folder", "train", 32, folder=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        SceneBank("folder", "train", 32, folder=tmp_path / "empty")
    with pytest.raises(ValueError, match="valid: procedural, photos, folder"):
        SceneBank("imagenet", "train", 32)


# ------------------------------------------------------------- the real domain's ground truth cannot leak
def _tensors_reachable(obj, depth=0, seen=None):
    seen = seen if seen is not None else set()
    if id(obj) in seen or depth > 4:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    out = []
    if isinstance(obj, dict):
        vals = obj.values()
    elif isinstance(obj, (list, tuple)):
        vals = obj
    elif hasattr(obj, "__dict__"):
        vals = vars(obj).values()
    else:
        return []
    for v in vals:
        out += _tensors_reachable(v, depth + 1, seen)
    return out


def test_real_domain_dataset_cannot_yield_clean_images():
    ds = RealDomainUnlabeled(size=32, n=6, seed=0)
    items = ds.__getitems__(list(range(6)))
    assert all(set(it) == {"rainy"} for it in items)
    # the clean scenes this dataset renders on, regenerated independently
    clean, _ = dead_leaves(6, 32, seed=0, split="train")
    for it, c in zip(items, clean):
        assert (it["rainy"] - c).abs().mean() > 0.01
    # no image-sized tensor is stored anywhere in the dataset object: scenes are never kept
    for t in _tensors_reachable(ds):
        assert t.ndim < 3 or t.shape[-1] != 32, "dataset holds an image tensor"
    assert not any(hasattr(ds, a) for a in ("clean", "images", "bank", "scenes", "targets"))
    ds.set_epoch(1)  # new rain each epoch, still rainy only
    again = ds.__getitems__(list(range(6)))
    assert all(set(it) == {"rainy"} for it in again)
    assert not torch.equal(again[0]["rainy"], items[0]["rainy"])


def test_real_domain_from_photographs_yields_rainy_renders_only_and_stores_no_image(tmp_path):
    from ttl.scenes import PHOTO_SIZE, load_photo

    for i in range(10):
        write_png(tmp_path / "clean" / f"c_{i}.png", rand_img(50, 60, seed=i))
        write_png(tmp_path / "real" / f"r_{i}.jpg", rand_img(50, 60, seed=100 + i))
    ds = RealDomainUnlabeled(size=32, seed=0, real_dir=tmp_path / "real", clean_dir=tmp_path / "clean", photo_size=48)
    assert len(ds) == len(ds.paths) + len(ds.render_paths) == 16  # the train splits of both folders
    items = ds.__getitems__(list(range(8)))
    assert all(set(it) == {"rainy"} and it["rainy"].shape == (3, 32, 32) for it in items)
    # odd items are realistic rain on clean photographs: never the clean photograph itself, nor its streak-free target
    for k in range(1, 8, 2):
        clean = load_photo(ds.render_paths[k // 2], 48)
        crops = clean.unfold(1, 32, 1).unfold(2, 32, 1)  # every 32x32 crop of the clean photograph
        flipped = clean.flip(-1).unfold(1, 32, 1).unfold(2, 32, 1)
        err = min(float((crops - items[k]["rainy"][:, None, None]).abs().mean((0, 3, 4)).min()),
                  float((flipped - items[k]["rainy"][:, None, None]).abs().mean((0, 3, 4)).min()))
        assert err > 0.005
    # the object keeps file paths only: no image-sized tensor is reachable from it
    for t in _tensors_reachable(ds):
        assert t.ndim < 2, "the real-domain dataset holds an image tensor"
    assert not any(hasattr(ds, a) for a in ("clean", "images", "bank", "scenes", "targets", "streak_free"))
    assert PHOTO_SIZE == 320 and ds.photo_size == 48


def test_real_domain_dataset_from_folder(tmp_path):
    for i in range(12):
        write_png(tmp_path / f"r{i}.jpg", rand_img(40, 50, seed=i))
    ds = RealDomainUnlabeled(size=32, real_dir=tmp_path, split="train")
    assert set(ds[0]) == {"rainy"} and ds[0]["rainy"].shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="real_dir"):
        RealDomainUnlabeled(real_dir=tmp_path / "missing")


def test_assert_unlabeled_refuses_ground_truth():
    assert_unlabeled({"rainy": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="ground truth must never reach training"):
        assert_unlabeled({"rainy": torch.zeros(1), "clean": torch.zeros(1)})


def test_scene_bank_from_a_folder_crops_and_names_bad_files(tmp_path):
    for i in range(20):
        write_png(tmp_path / "clean" / f"img{i:02d}.png", rand_img(50, 70, seed=i))
    bank = SceneBank("folder", "train", 32, folder=tmp_path / "clean")
    assert 10 <= len(bank) < 20  # about 80 % of the scenes
    img, depth = bank.get(0, torch.Generator().manual_seed(0))
    assert img.shape == (3, 32, 32) and depth.shape == (1, 32, 32)
    assert bank.manifest()["files"][0]["sha256"]
    write_png(bank.paths[1], rand_img(8, 8))  # replace a train image by a tiny one
    with pytest.raises(ImageReadError, match=f"{bank.paths[1].name}.*at least 32"):
        bank.get(1, torch.Generator().manual_seed(0))
