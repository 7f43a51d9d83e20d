"""The connected tasks: no clean ground truth of the real domain reaches teacher training."""
import torch

from ttl.datasets import RealDomainUnlabeled
from ttl.engine import TrainConfig, train
from ttl.models import RecognitionNet, RestorationNet, load_model, save_model
from ttl.scenes import dead_leaves, scene_seed
from ttl.teachers import (RecognitionDataset, ScatteringDataset, camera_only, evaluate_recognition,
                          evaluate_scattering, recognition_step, scattering_step)


def _positives(n=8, size=32):
    return RealDomainUnlabeled(size=size, n=n, seed=0, split="train")


def test_t2_items_come_from_rainy_images_only():
    pos = _positives()
    ds = ScatteringDataset(pos)
    items = ds.__getitems__(list(range(4)))
    rainy = pos.__getitems__(list(range(4)))
    clean, _ = dead_leaves(4, 32, seed=0, split="train")
    for it, r, c in zip(items, rainy, clean):
        assert set(it) == {"input", "target"}
        assert torch.equal(it["target"], r["rainy"])  # the label is the rainy image itself
        assert (it["target"] - c).abs().mean() > 0.01  # never the clean scene
        assert (it["input"] - it["target"]).abs().mean() > 0.005  # scattering degraded it


def test_t1_negatives_are_other_scenes_than_the_positives():
    pos = _positives(n=16)
    ds = RecognitionDataset(pos)
    items = ds.__getitems__(list(range(8)))
    assert [float(it["label"]) for it in items] == [1, 0] * 4
    pos_seeds = {scene_seed("train", pos.seed, i) for i in range(pos.n)}
    neg_seeds = {scene_seed("train", ds.neg_seed, i) for i in range(ds.n_neg)}
    assert not pos_seeds & neg_seeds  # no positive's clean scene is ever a negative
    # negatives are rain-free but went through the camera: not the bare scenes
    bare, _ = dead_leaves(1, 32, seed=ds.neg_seed, split="train")
    assert 0 < (items[1]["image"] - bare[0]).abs().mean() < 0.05


def test_camera_only_adds_no_rain():
    clean, depth = dead_leaves(4, 64, seed=3)
    rain = RealDomainUnlabeled(size=32, n=4).renderer
    cam = camera_only(rain)
    assert cam.config.density < 1e-9 and cam.config.scattering.beta == 0.0 and cam.config.scattering.glow == 0.0
    assert cam.config.noise_gauss == rain.config.noise_gauss and cam.config.jpeg_quality == rain.config.jpeg_quality
    out = cam(clean, torch.Generator().manual_seed(0), depth).rainy
    full = rain(clean, torch.Generator().manual_seed(0), depth).rainy
    # zero-mean camera noise and JPEG only: no streaks or veiling brightening the image
    assert (out.mean() - clean.mean()).abs() < 0.01 < (full.mean() - clean.mean()).abs()


def test_teachers_train_and_evaluate_and_save(tmp_path):
    pos = _positives(n=16)
    t1, t2 = RecognitionNet(4, depth=2), RestorationNet(4, depth=2)
    cfg = TrainConfig(steps=3, batch=4, progress=False, device="cpu")
    train(t1, RecognitionDataset(pos), recognition_step, cfg)
    train(t2, ScatteringDataset(pos), scattering_step, cfg)
    e1 = evaluate_recognition(t1, RecognitionDataset(_positives()), n=8)
    e2 = evaluate_scattering(t2, ScatteringDataset(_positives()), n=4)
    assert 0 <= e1["accuracy"] <= 1 and e1["n"] == 8
    assert len(e2["psnr_y"]) == 4
    save_model(tmp_path / "t2.pt", t2, preset="smoke")
    again, meta = load_model(tmp_path / "t2.pt")
    assert meta == {"preset": "smoke"}
    x = torch.rand(1, 3, 20, 20)
    assert torch.equal(again(x), t2.eval()(x))
