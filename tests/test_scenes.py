import pytest
import torch

from ttl.scenes import bundled_photos, dead_leaves, heuristic_depth, random_crop, resize_short_side, scene_seed
from ttl.utils import generator


def test_dead_leaves_shapes_ranges_determinism():
    a, da = dead_leaves(3, 48, seed=1)
    b, db = dead_leaves(3, 48, seed=1)
    assert a.shape == (3, 3, 48, 48) and da.shape == (3, 1, 48, 48)
    assert torch.equal(a, b) and torch.equal(da, db)
    assert a.min() >= 0 and a.max() <= 1 and da.min() >= 0 and da.max() <= 1
    assert a.std() > 0.05  # not flat


def test_scene_depends_only_on_its_index():
    a, _ = dead_leaves(4, 32, seed=2)
    b, _ = dead_leaves(2, 32, seed=2, start=2)
    assert torch.equal(a[2:], b)


def test_splits_never_share_scenes():
    seeds = {s: {scene_seed(s, 0, i) for i in range(500)} for s in ("train", "val", "test")}
    assert not (seeds["train"] & seeds["val"]) and not (seeds["train"] & seeds["test"])
    tr, _ = dead_leaves(1, 32, split="train")
    va, _ = dead_leaves(1, 32, split="val")
    assert not torch.equal(tr, va)
    with pytest.raises(ValueError, match="valid: train, val, test"):
        dead_leaves(1, 32, split="holdout")


def test_dead_leaves_has_photo_like_spectrum():
    import numpy as np

    from ttl.gap import radial_power_spectrum
    from ttl.imageops import luminance

    x, _ = dead_leaves(4, 128, seed=3)
    slopes = []
    for im in x:
        f, p = radial_power_spectrum(luminance(im)[0].numpy())
        sel = (f > 0.02) & (f < 0.3)
        slopes.append(np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0])
    assert -3.6 < np.median(slopes) < -1.6  # natural images: about -2


def test_depth_occlusion_order_near_leaves_larger():
    # the nearest leaves (small depth) cover more area per leaf than far ones: perspective
    x, d = dead_leaves(8, 96, seed=4)
    near = (d < 0.3).float().mean()
    assert near > 0.02


def test_bundled_photos_exist_and_pair_stereo_views():
    ph = bundled_photos()
    names = {p.name for p in ph}
    assert {"astronaut", "chelsea", "coffee", "grace_hopper"} <= names
    scenes = {p.name: p.scene for p in ph}
    assert scenes["motorcycle_left"] == scenes["motorcycle_right"]


def test_heuristic_depth_is_far_at_the_top():
    d = heuristic_depth(torch.rand(2, 3, 64, 64))
    assert d.shape == (2, 1, 64, 64)
    assert d[:, :, :8].mean() > d[:, :, -8:].mean()


def test_crop_and_resize():
    x = torch.rand(3, 50, 80)
    y = resize_short_side(x, 32)
    assert y.shape == (3, 32, 51)
    a, b = random_crop(x, 20, generator(0), x * 2)
    assert a.shape == (3, 20, 20) and torch.allclose(b, a * 2)
    with pytest.raises(ValueError, match="resize it first"):
        random_crop(x, 60, generator(0))
