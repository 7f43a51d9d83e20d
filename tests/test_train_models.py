import torch

from ttl.datasets import PairedRainDataset, SceneBank
from ttl.models import UNet, count_flops, count_params
from ttl.rain import SyntheticRain
from ttl.train import cosine_lr, evaluate_pairs, fit_restorer


def test_unet_any_size_and_counts():
    m = UNet(width=4, depth=2)
    for h, w in ((1, 1), (7, 13), (33, 20)):
        assert m(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)
    assert count_params(m) > 0
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1))
    assert count_flops(conv_only, 16) == 2 * 8 * 16 * 16 * 3 * 9


def test_unknown_loss_is_refused():
    import pytest

    with pytest.raises(ValueError, match="valid: mse, l1, charbonnier"):
        fit_restorer(UNet(4, 1), [], steps=1, loss="ssim", progress=False)


def test_cosine_schedule():
    assert cosine_lr(0, 100, 1.0, warmup=10) == 0.1
    assert cosine_lr(10, 100, 1.0, warmup=10) == 1.0
    assert abs(cosine_lr(100, 100, 1.0, warmup=10) - 0.02) < 1e-9


def _train(seed):
    bank = SceneBank("procedural", "train", 32, n=32, seed=0)
    ds = PairedRainDataset(bank, SyntheticRain("heavy"), seed=0)
    torch.manual_seed(seed)
    m = UNet(width=8, depth=2)
    log = fit_restorer(m, ds, steps=120, batch=4, lr=3e-3, device="cpu", seed=seed, progress=False)
    return m, log, ds


def test_training_learns_and_is_reproducible():
    m1, log1, ds = _train(0)
    m2, log2, _ = _train(0)
    assert log1["loss"] == log2["loss"]  # same seed, same numbers on CPU
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    batch = ds.__getitems__(list(range(16)))
    rainy = torch.stack([b["rainy"] for b in batch])
    clean = torch.stack([b["clean"] for b in batch])
    before = evaluate_pairs(None, rainy, clean, "cpu")
    after = evaluate_pairs(m1, rainy, clean, "cpu")
    assert set(after) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
    assert after["psnr_y"].mean() > before["psnr_y"].mean() + 1.0  # it removes rain, not only copies the input
