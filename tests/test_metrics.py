import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ttl.metrics import Target, bias_y, image_metrics, psnr, quantize, rgb_to_y, ssim


def _pair(seed=0, h=48, w=40):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, h, w, generator=g)
    b = (a + 0.08 * torch.randn(3, h, w, generator=g)).clamp(0, 1)
    return a, b


def test_y_channel_matches_matlab_rgb2ycbcr():
    # MATLAB: rgb2ycbcr(uint8([255 255 255])) -> Y = 235; black -> 16; pure red -> 81
    x = torch.tensor([[[255.0]], [[255.0]], [[255.0]]])
    assert float(rgb_to_y(x)) == pytest.approx(235.0, abs=1e-3)
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) == pytest.approx(16.0)
    red = torch.tensor([[[255.0]], [[0.0]], [[0.0]]])
    assert float(rgb_to_y(red)) == pytest.approx(16 + 65.481, abs=1e-3)


def test_psnr_by_hand():
    a = torch.zeros(3, 16, 16)
    b = torch.full((3, 16, 16), 10 / 255)
    assert float(psnr(a, b, y_channel=False)) == pytest.approx(10 * np.log10(255 ** 2 / 100), abs=1e-9)
    # on Y: a uniform offset of 10 levels in R, G and B moves Y by 10 * (65.481+128.553+24.966)/255
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert float(psnr(a, b)) == pytest.approx(10 * np.log10(255 ** 2 / dy ** 2), abs=1e-9)
    assert torch.isinf(psnr(a, a))


def test_ssim_matches_scikit_image_with_matlab_options():
    a, b = _pair()
    ya = rgb_to_y(quantize(a))[0].numpy()
    yb = rgb_to_y(quantize(b))[0].numpy()
    # ssim_index.m: gaussian 11x11 sigma 1.5, population covariance, L=255, valid region only
    ref_map = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, full=True)[1]
    ref = ref_map[5:-5, 5:-5].mean()
    assert float(ssim(a, b)) == pytest.approx(ref, abs=1e-6)
    # RGB: the mean over channels
    qa, qb = quantize(a).numpy(), quantize(b).numpy()
    per = [structural_similarity(qa[c], qb[c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, full=True)[1][5:-5, 5:-5].mean() for c in range(3)]
    assert float(ssim(a, b, y_channel=False)) == pytest.approx(np.mean(per), abs=1e-6)


def test_identity_and_batches_and_crop():
    a, b = _pair(1)
    assert float(ssim(a, a)) == pytest.approx(1.0)
    m = image_metrics(torch.stack([a, b]), torch.stack([b, b]))
    assert set(m) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"} and m["psnr_y"].shape == (2,)
    assert torch.isinf(m["psnr_y"][1])
    c = psnr(a, b, crop_border=4)
    assert float(c) == pytest.approx(float(psnr(a[:, 4:-4, 4:-4], b[:, 4:-4, 4:-4])))


def test_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_bias_y_is_the_mean_luma_offset_in_grey_levels():
    from ttl.metrics import bias_y

    a = torch.full((3, 16, 16), 100 / 255)
    b = torch.full((3, 16, 16), 110 / 255)
    dy = 10 * (65.481 + 128.553 + 24.966) / 255  # the same offset in R, G and B, seen on Y
    assert float(bias_y(a, b)) == pytest.approx(-dy, abs=1e-9)  # a is darker than b
    assert float(bias_y(b, a)) == pytest.approx(dy, abs=1e-9)
    batch = bias_y(torch.stack([a, b]), torch.stack([b, b]))
    assert batch.shape == (2,) and float(batch[1]) == 0.0
    assert set(image_metrics(a[None], b[None], which=("psnr_y", "bias_y"))) == {"psnr_y", "bias_y"}
    with pytest.raises(ValueError, match="unknown metrics"):
        image_metrics(a[None], b[None], which=("psnr_z",))


def test_rain_amount_splits_pairs_by_how_much_brighter_the_rain_made_them():
    from ttl.metrics import LIGHT_RAIN_MAX, rain_amount

    clean = torch.full((3, 16, 16), 0.4)
    assert rain_amount(clean, clean) == "none"
    assert rain_amount(clean + 5 / 255, clean) == "light"
    assert rain_amount(clean + (LIGHT_RAIN_MAX + 5) / 255, clean) == "heavy"


@pytest.mark.parametrize("crop", [0, 3])
def test_image_metrics_and_a_cached_target_give_the_plain_functions_values_bit_for_bit(crop):
    g = torch.Generator().manual_seed(5)
    target = torch.rand(2, 3, 24, 20, generator=g)
    t = Target(target, crop_border=crop)
    for _ in range(2):  # the second prediction reuses the target's cached terms
        pred = (target + 0.1 * torch.randn(2, 3, 24, 20, generator=g)).clamp(0, 1)
        plain = {"psnr_y": psnr(pred, target, crop, True), "ssim_y": ssim(pred, target, crop, True),
                 "psnr_rgb": psnr(pred, target, crop, False), "ssim_rgb": ssim(pred, target, crop, False),
                 "bias_y": bias_y(pred, target, crop)}
        for m in (image_metrics(pred, t, which=tuple(plain)), image_metrics(pred, target, crop, which=tuple(plain))):
            assert set(m) == set(plain)
            for k in plain:
                assert torch.equal(m[k], plain[k]), k


def test_image_metrics_refuses_mismatched_shapes_and_unknown_metrics():
    with pytest.raises(ValueError, match="differ in shape"):
        image_metrics(torch.rand(1, 3, 16, 16), Target(torch.rand(1, 3, 16, 17)))
    with pytest.raises(ValueError, match="unknown metrics"):
        image_metrics(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), which=("lpips",))
