import numpy as np
import pytest
import torch
from PIL import Image

from ttl.gap import STATISTICS, image_statistics, radial_power_spectrum
from ttl.imageops import rain_layer_estimate
from ttl.stats import auc, bootstrap_ci, c2st, js_divergence, paired_bootstrap, wasserstein_distance_ci


def test_rain_layer_estimate_keeps_thin_lines_drops_wide_objects():
    img = torch.zeros(1, 64, 64)
    img[:, 10:54, 20] = 0.8  # a thin streak
    img[:, 30:50, 35:55] = 0.8  # a wide bright object
    r = rain_layer_estimate(img)
    assert r[0, 30, 20] > 0.7  # the streak survives
    assert r[0, 40, 45] < 1e-6  # the object's interior is gone
    assert r[0, 40, 35] < 1e-6  # and so is its edge (edge-preserving)


def test_rain_layer_estimate_is_the_top_hat_with_a_square():
    """The row-then-column maximum gives exactly the square opening (replicate border) the estimate is defined by."""
    import torch.nn.functional as F

    x = torch.rand(2, 3, 37, 52, generator=torch.Generator().manual_seed(0))
    for size in (3, 7, 15):
        p = size // 2
        eroded = -F.max_pool2d(F.pad(-x, (p, p, p, p), mode="replicate"), size, stride=1)
        opened = F.max_pool2d(F.pad(eroded, (p, p, p, p), mode="replicate"), size, stride=1)
        assert torch.equal(rain_layer_estimate(x, size), (x - opened).clamp(min=0))


def test_statistics_are_all_present_and_finite_on_a_rainy_image():
    from ttl.rain import SyntheticRain
    from ttl.scenes import dead_leaves
    from ttl.utils import generator

    clean, _ = dead_leaves(1, 128, seed=0)
    rainy = SyntheticRain("light")(clean, generator(0)).rainy[0]
    st = image_statistics(rainy)
    assert list(st.scalars) == STATISTICS
    assert all(np.isfinite(v) for v in st.scalars.values())
    assert abs(st.orientation_hist.sum() - 1) < 1e-6


def test_noise_sigma_estimate_is_close_to_the_truth():
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(0.2, 0.8, 128), (128, 1))
    for sigma in (0.01, 0.03):
        img = torch.from_numpy(np.clip(base + rng.normal(0, sigma, base.shape), 0, 1)).float().expand(3, -1, -1)
        est = image_statistics(img).scalars["noise_sigma"]
        assert abs(est - sigma) / sigma < 0.2


def test_blockiness_detects_jpeg():
    import io

    rng = np.random.default_rng(1)
    smooth = (np.cumsum(np.cumsum(rng.normal(0, 1, (128, 128)), 0), 1))
    smooth = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    rgb = np.stack([smooth] * 3, -1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=15)
    jpg = np.asarray(Image.open(buf)).astype(np.float32) / 255
    b_png = image_statistics(torch.from_numpy(rgb / 255.0).float().permute(2, 0, 1)).scalars["blockiness"]
    b_jpg = image_statistics(torch.from_numpy(jpg).permute(2, 0, 1)).scalars["blockiness"]
    assert b_jpg > b_png + 0.2


def test_power_spectrum_slope_of_brownian_noise():
    rng = np.random.default_rng(2)
    f = np.fft.fftfreq(256)
    fr = np.sqrt(f[:, None] ** 2 + f[None] ** 2)
    fr[0, 0] = 1
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(256, 256))) / fr))  # power ~ f^-2
    freq, p = radial_power_spectrum(field)
    sel = (freq > 0.02) & (freq < 0.3)
    slope = np.polyfit(np.log(freq[sel]), np.log(p[sel]), 1)[0]
    assert -2.4 < slope < -1.6


def test_bootstrap_and_paired_tests():
    rng = np.random.default_rng(0)
    est, lo, hi = bootstrap_ci(rng.normal(1.0, 1.0, 400), n_boot=500, seed=0)
    assert lo < 1.0 < hi and hi - lo < 0.3
    a = rng.normal(0, 1, 50)
    r = paired_bootstrap(a + 0.5, a, n_boot=300)
    assert abs(r["mean_diff"] - 0.5) < 1e-9 and r["low"] == pytest.approx(0.5) and r["wilcoxon_p"] < 1e-6
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1, 2], [1])


def test_wasserstein_and_js():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 300), rng.normal(1, 1, 300)
    d, lo, hi = wasserstein_distance_ci(x, y, n_boot=200)
    assert lo < d < hi and 0.8 < d < 1.2
    d0, _, _ = wasserstein_distance_ci(x, x, n_boot=10)
    assert d0 == 0
    assert js_divergence([1, 0], [1, 0]) == pytest.approx(0, abs=1e-9)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1, abs=1e-6)


def test_auc_and_c2st():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([1, 1, 1, 1.0]), np.array([0, 1, 0, 1])) == 0.5
    rng = np.random.default_rng(0)
    same = c2st(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), n_boot=200, permutations=20, seed=0)
    apart = c2st(rng.normal(size=(60, 4)) + 1.5, rng.normal(size=(60, 4)), n_boot=200, permutations=20, seed=0)
    assert same.auc < 0.7 and same.p_value > 0.05
    assert apart.auc > 0.9 and apart.p_value < 0.06 and apart.low > 0.8
    with_nan = rng.normal(size=(30, 3))
    with_nan[0, 0] = np.nan
    assert np.isfinite(c2st(with_nan, rng.normal(size=(30, 3)), n_boot=50, permutations=5).auc)


def test_gap_verdicts():
    import pandas as pd

    from ttl.gap import gap_verdicts

    dist = pd.DataFrame([
        {"statistic": "a", "domain": "synthetic", "distance": 2.0, "measure": "W1/sd"},
        {"statistic": "a", "domain": "realistic", "distance": 0.5, "measure": "W1/sd"},
        {"statistic": "b", "domain": "synthetic", "distance": 0.2, "measure": "W1/sd"},
        {"statistic": "b", "domain": "realistic", "distance": 0.4, "measure": "W1/sd"},
    ])
    c2 = {"synthetic": {"auc": 0.99, "low": 0.95, "p_value": 0.01}, "realistic": {"auc": 0.7, "low": 0.55, "p_value": 0.02}}
    yes = {"psnr_y": {"low": 1.0}}
    no = {"psnr_y": {"low": -0.5}}
    v = gap_verdicts(dist, c2, yes, yes)
    assert v == {"realistic_closer_on_statistics": "1/2", "realistic_closer_on_c2st": True, "C1": "supported",
                 "C2": "supported"}
    # C2 is read on the gain over the input (the two rains start from different input qualities), not on the drop
    assert gap_verdicts(dist, c2, no, yes)["C2"] == "supported"
    assert gap_verdicts(dist, c2, yes, no)["C2"] == "not supported"
    c2["synthetic"]["low"] = 0.45
    assert gap_verdicts(dist, c2, yes, yes)["C1"] == "not supported"
    assert set(gap_verdicts(dist, c2, yes, yes, reference="realistic")) == {"C2"}


def test_real_and_folder_domains(tmp_path):
    from conftest import rand_img, write_png
    from ttl.gap import folder_domain, real_domain

    for i in range(5):
        write_png(tmp_path / "real" / f"{i}.jpg", rand_img(60, 80, seed=i))
        write_png(tmp_path / "syn" / "input" / f"{i}.png", rand_img(60, 80, seed=i))
        write_png(tmp_path / "syn" / "target" / f"{i}.png", rand_img(60, 80, seed=9))
    imgs, man = real_domain(tmp_path / "real", 32, limit=4)
    assert len(imgs) == 4 and imgs[0][0].shape == (3, 32, 32) and man["calibration_files_excluded"] == 0
    imgs, man = folder_domain(tmp_path / "syn", 32)
    assert len(imgs) == 5 and man["layout"] == "rain13k"


def test_draw_bootstrap_carries_the_draw_to_draw_variance():
    """Rows that agree closely image by image but whose draws scatter: the image-only interval excludes 0, the
    interval over draws and images covers it; with one draw per side it is the image bootstrap again."""
    from ttl.stats import draw_bootstrap

    rng = np.random.default_rng(0)
    base = rng.normal(25, 2, 40)
    a = np.array([base + s + rng.normal(0, 0.05, 40) for s in (1.5, -1.0, 0.8, -1.3, 1.2)])
    b = np.array([base + s + rng.normal(0, 0.05, 40) for s in (0.0, 0.1, -0.1, 0.05, -0.05)])
    img = paired_bootstrap(a.mean(0), b.mean(0), n_boot=500)
    r = draw_bootstrap(a, b, paired_draws=True, n_boot=500)
    assert abs(r["mean_diff"] - img["mean_diff"]) < 1e-9 and (img["low"] > 0 or img["high"] < 0)
    assert r["low"] < 0 < r["high"] and r["draws_a"] == r["draws_b"] == 5 and r["n"] == 40
    one = draw_bootstrap(a[:1], b[:1], paired_draws=False, n_boot=500)
    assert one["low"] > 0  # one draw each: images only (draw 0 of a is 1.5 dB above)
    with pytest.raises(ValueError, match="same images"):
        draw_bootstrap(a, b[:, :10], paired_draws=False)
    with pytest.raises(ValueError, match="paired draws"):
        draw_bootstrap(a, b[:3], paired_draws=True)
