"""Image statistics that tell synthetic, realistic and real rain apart (notebook 01).

Everything works **without ground truth**, identically for every domain, on a *rain-layer estimate*: the
white top-hat of the image (image minus its morphological opening), which keeps thin bright structures
(streaks) and drops everything wider than the structuring element while preserving scene edges. Where pairs
exist, :func:`image_statistics` can be given the exact rain layer instead.

Per-image statistics (:data:`STATISTICS`):

=====================  ==============================================================================
``orientation_spread``  circular std (deg) of streak orientation (structure tensor of the rain layer)
``orientation_tilt``    absolute mean streak angle from vertical (deg)
``coherence``           mean structure-tensor coherence on streak pixels (1 = perfectly line-like)
``streak_length``       median major axis (px) of connected streak components
``streak_width``        median minor axis (px) of the components
``streak_density``      fraction of pixels on streaks
``rain_intensity``      mean rain-layer value on streak pixels
``rain_chroma``         relative spread of the rain layer across R, G, B on streak pixels (0 = gray)
``spectral_slope``      slope of the log radially averaged power spectrum (photographs: about -2)
``dark_channel``        mean dark channel (veiling raises it; He et al. 2009)
``rms_contrast``        standard deviation of luminance
``saturation``          mean HSV saturation
``noise_sigma``         noise level (robust MAD of a Laplacian-like response; Immerkaer 1996), native res
``blockiness``          JPEG blocking: gradient energy on the 8-px grid over that off the grid, native res
=====================  ==============================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .imageops import gaussian_blur, luminance, rain_layer_estimate
from .layouts import detect_layout

__all__ = ["STATISTICS", "image_statistics", "ImageStats",
           "radial_power_spectrum", "ORIENTATION_BINS", "real_split", "load_real", "render_domains", "test_photographs",
           "statistics_frame", "gap_distances", "real_domain", "folder_domain", "gap_verdicts"]

STATISTICS = ["orientation_spread", "orientation_tilt", "coherence", "streak_length", "streak_width",
              "streak_density", "rain_intensity", "rain_chroma", "spectral_slope", "dark_channel", "rms_contrast",
              "saturation", "noise_sigma", "blockiness"]
ORIENTATION_BINS = np.linspace(-90, 90, 37)  # 5-degree bins, angle from vertical
STREAK_THRESHOLD = 0.04
MIN_COMPONENT = 4


def radial_power_spectrum(gray: np.ndarray, bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a (Hann-windowed) grayscale image over log-spaced frequencies
    (cycles/px, 1/min(H,W) .. 0.5). Returns ``(frequencies, power)``."""
    h, w = gray.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    g = (gray - gray.mean()) * win
    p = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2 / (win ** 2).sum()
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    edges = np.geomspace(1.0 / min(h, w), 0.5, bins + 1)
    idx = np.digitize(f.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < bins)
    sums = np.bincount(idx[ok], weights=p.ravel()[ok], minlength=bins)
    cnt = np.bincount(idx[ok], minlength=bins)
    centres = np.sqrt(edges[:-1] * edges[1:])
    power = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    return centres, power


def _noise_sigma(gray: np.ndarray) -> float:
    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    r = ndimage.convolve(gray.astype(np.float32), m, mode="reflect")[1:-1, 1:-1]
    return float(np.median(np.abs(r)) / 0.6745 / 6.0)


def _blockiness(gray: np.ndarray) -> float:
    h, w = gray.shape
    if h < 32 or w < 32:
        return float("nan")
    dx = np.abs(np.diff(gray, axis=1))  # dx[:, j] = |I[:, j+1] - I[:, j]|: boundary when (j+1) % 8 == 0
    dy = np.abs(np.diff(gray, axis=0))
    on_x = dx[:, 7::8].mean()
    off_x = np.delete(dx, np.s_[7::8], axis=1).mean()
    on_y = dy[7::8, :].mean()
    off_y = np.delete(dy, np.s_[7::8], axis=0).mean()
    return float(0.5 * (on_x / (off_x + 1e-8) + on_y / (off_y + 1e-8)))


@dataclass
class ImageStats:
    """Statistics of one image: scalars (see :data:`STATISTICS`), plus distributions for plots/distances."""

    scalars: dict[str, float]
    orientation_hist: np.ndarray  # weighted histogram over ORIENTATION_BINS (sums to 1, or zeros)
    intensity_values: np.ndarray  # rain-layer values on streak pixels (subsampled)
    spectrum: tuple[np.ndarray, np.ndarray]


def image_statistics(img: torch.Tensor, native: torch.Tensor | None = None, rain_layer: torch.Tensor | None = None,
                     max_values: int = 2000) -> ImageStats:
    """All gap statistics of one RGB image ``(3,H,W)`` in [0,1] at the working resolution.

    ``native`` is the image at its native resolution (noise and JPEG blocking must be measured before any
    resampling); ``rain_layer`` replaces the top-hat estimate with an exact rain layer (``rainy - clean``)."""
    img = img.float().clamp(0, 1)
    native = img if native is None else native.float().clamp(0, 1)
    gray_t = luminance(img)
    rc = rain_layer_estimate(img) if rain_layer is None else rain_layer.float().clamp(min=0)
    r = luminance(rc)[0].numpy()
    mask = r > STREAK_THRESHOLD
    s: dict[str, float] = {}

    # orientation from the structure tensor of the rain layer
    rl = torch.from_numpy(r)[None, None]
    gx = F.conv2d(F.pad(rl, (1, 1, 1, 1), mode="replicate"),
                  torch.tensor([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]]], dtype=torch.float32) / 8)
    gy = F.conv2d(F.pad(rl, (1, 1, 1, 1), mode="replicate"),
                  torch.tensor([[[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]]], dtype=torch.float32) / 8)
    jxx, jxy, jyy = (gaussian_blur(t, 1.5)[0, 0].numpy() for t in (gx * gx, gx * gy, gy * gy))
    tr = jxx + jyy + 1e-12
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / tr
    # gradient direction phi (from x axis, image y down); a streak runs perpendicular to its gradient.
    phi = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
    # streak angle from vertical: a vertical streak has horizontal gradient (phi = 0) -> angle 0
    ang = np.degrees(phi)
    ang = (ang + 90) % 180 - 90
    wts = (r * coh)[mask]
    if wts.sum() > 0:
        a2 = np.radians(2 * ang[mask])
        cm = np.sum(wts * np.exp(1j * a2)) / wts.sum()
        rbar = float(np.clip(np.abs(cm), 1e-9, 1))
        s["orientation_spread"] = float(np.degrees(np.sqrt(-2 * np.log(rbar)) / 2))
        s["orientation_tilt"] = float(abs(np.degrees(np.angle(cm) / 2)))
        s["coherence"] = float(np.average(coh[mask], weights=r[mask]))
        hist, _ = np.histogram(ang[mask], bins=ORIENTATION_BINS, weights=wts)
        hist = hist / max(hist.sum(), 1e-12)
    else:
        s["orientation_spread"] = s["orientation_tilt"] = s["coherence"] = float("nan")
        hist = np.zeros(len(ORIENTATION_BINS) - 1)

    # streak geometry from connected components (second moments)
    lab, n = ndimage.label(mask)
    if n > 0:
        yy, xx = np.nonzero(lab)
        ids = lab[yy, xx]
        cnt = np.bincount(ids, minlength=n + 1).astype(float)
        mx, my = np.bincount(ids, xx, n + 1) / np.maximum(cnt, 1), np.bincount(ids, yy, n + 1) / np.maximum(cnt, 1)
        dx, dy = xx - mx[ids], yy - my[ids]
        cxx = np.bincount(ids, dx * dx, n + 1) / np.maximum(cnt, 1) + 1 / 12
        cyy = np.bincount(ids, dy * dy, n + 1) / np.maximum(cnt, 1) + 1 / 12
        cxy = np.bincount(ids, dx * dy, n + 1) / np.maximum(cnt, 1)
        disc = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy ** 2)
        l1, l2 = (cxx + cyy) / 2 + disc, np.maximum((cxx + cyy) / 2 - disc, 1e-6)
        keep = cnt >= MIN_COMPONENT
        keep[0] = False
        s["streak_length"] = float(np.median(4 * np.sqrt(l1[keep]))) if keep.any() else float("nan")
        s["streak_width"] = float(np.median(4 * np.sqrt(l2[keep]))) if keep.any() else float("nan")
    else:
        s["streak_length"] = s["streak_width"] = float("nan")
    s["streak_density"] = float(mask.mean())
    s["rain_intensity"] = float(r[mask].mean()) if mask.any() else 0.0
    if mask.any():
        rcn = rc.numpy()[:, mask]
        s["rain_chroma"] = float(np.mean(rcn.std(0) / (rcn.mean(0) + 0.01)))
    else:
        s["rain_chroma"] = float("nan")

    gray = gray_t[0].numpy()
    f, p = radial_power_spectrum(gray)
    sel = (f > 0.02) & (f < 0.35) & np.isfinite(p) & (p > 0)
    s["spectral_slope"] = float(np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0]) if sel.sum() >= 3 else float("nan")
    k = max(3, (min(img.shape[-2:]) // 40) | 1)
    dark = -F.max_pool2d(-img.min(0, keepdim=True).values[None], k, stride=1, padding=k // 2)
    s["dark_channel"] = float(dark.mean())
    s["rms_contrast"] = float(gray.std())
    mx_, mn_ = img.max(0).values, img.min(0).values
    s["saturation"] = float(((mx_ - mn_) / (mx_ + 1e-6)).mean())
    ngray = luminance(native)[0].numpy()
    s["noise_sigma"] = _noise_sigma(ngray)
    s["blockiness"] = _blockiness(ngray * 255.0)

    vals = r[mask]
    if vals.size > max_values:
        vals = vals[np.linspace(0, vals.size - 1, max_values).astype(int)]
    return ImageStats(s, hist, vals, (f, p))


# ------------------------------------------------------------------------------------- domain pipelines
def real_split(paths: list, calibration_digests: set[str] | None = None) -> tuple[list, list]:
    """Split real photographs into (calibration, held-out). Files whose SHA-256 is in ``calibration_digests`` are
    calibration files; with no digests, the ``train`` split of :func:`ttl.scenes.split_files` is, so that no
    photograph of the val and test splits (the ones that score the models in notebook 05) shapes the renderer."""
    from .config import file_digest
    from .scenes import split_files

    paths = sorted(paths)
    if calibration_digests is None:
        parts = split_files(paths)
        return parts["train"], sorted(parts["val"] + parts["test"])
    cal = [p for p in paths if file_digest(p) in calibration_digests]
    held = [p for p in paths if file_digest(p) not in calibration_digests]
    return cal, held


def load_real(paths: list, size: int, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """Real photographs as ``(working image, native image, name)``: the working image is the centre square
    crop after resizing the short side to ``size``; the native one is kept for noise and JPEG statistics."""
    from .io import read_image
    from .scenes import resize_short_side

    out = []
    for p in list(paths)[:limit]:
        native = read_image(p, min_size=16)
        im = resize_short_side(native, size)
        h, w = im.shape[-2:]
        y, x = (h - size) // 2, (w - size) // 2
        out.append((im[:, y:y + size, x:x + size], native, str(getattr(p, "name", p))))
    return out


def render_domains(n: int, size: int, seed: int, realistic=None, clean_images: list[torch.Tensor] | None = None,
                   batch: int = 8, scale: float | None = None) -> dict[str, list[torch.Tensor]]:
    """``n`` crops of clean photographs (the bundled photos unless ``clean_images`` is given), each rendered
    with synthetic rain (alternating the ``light`` and ``heavy`` presets, as Rain100L/H) and with realistic
    rain (``scale``: of the photographs the crops come from; default: the crop's). Returns ``{"clean",
    "synthetic", "realistic", "realistic_streak_free"}`` lists of ``(3,size,size)`` tensors; the rainy domains
    share their clean crops, so every comparison between them is paired."""
    from .io import read_image
    from .rain import RealisticRain, SyntheticRain
    from .scenes import bundled_photos, zoomed_crop
    from .utils import generator

    g = generator(seed)
    if clean_images is None:
        clean_images = [read_image(p.path) for p in bundled_photos()]
    crops = []
    for i in range(n):
        crops.append(zoomed_crop(clean_images[i % len(clean_images)], size, g))
    clean = torch.stack(crops)
    real_r = realistic if realistic is not None else RealisticRain()
    syn, rea, free = [], [], []
    for k in range(0, n, batch):
        x = clean[k:k + batch]
        half = (k // batch) % 2
        syn.append(SyntheticRain("heavy" if half else "light")(x, generator(seed * 7919 + k), scale=scale).rainy)
        o = real_r(x, generator(seed * 104729 + k), scale=scale)
        rea.append(o.rainy)
        free.append(o.streak_free)
    return {"clean": list(clean), "synthetic": list(torch.cat(syn)), "realistic": list(torch.cat(rea)),
            "realistic_streak_free": list(torch.cat(free))}


def test_photographs(clean_dir=None, photo_size: int = 320) -> dict:
    """The clean photographs every rendered test domain is cut from: the test split of ``clean_dir`` at the working
    scale (:func:`ttl.scenes.load_photo`), else the photographs bundled with scikit-image and matplotlib.
    ``{"images": [...], "source": ..., "files": manifest}``."""
    from .config import folder_manifest
    from .io import read_image
    from .scenes import bundled_photos, load_photo

    if clean_dir is None:
        paths = [p.path for p in bundled_photos()]
        return {"images": [read_image(p) for p in paths], "source": "bundled photographs",
                "files": folder_manifest(paths)}
    from .datasets import split_paths

    paths = split_paths(clean_dir, "test", "clean_dir")
    return {"images": [load_photo(p, photo_size) for p in paths], "source": "clean_dir, test split",
            "files": folder_manifest(paths)}


def real_domain(folder, size: int, limit: int | None = None) -> tuple[list, dict]:
    """Real rainy photographs of ``folder`` that the shipped calibration did **not** use, loaded as in
    :func:`load_real`, with their manifest. A folder the calibration never saw is used whole."""
    from .config import folder_manifest
    from .io import list_images
    from .rain import calibration_digests

    cal, held = real_split(list_images(folder), calibration_digests())
    if not held:  # no file of this folder was calibrated on
        cal, held = [], cal
    if not held:
        raise FileNotFoundError(f"real_dir={str(folder)!r} holds no images; pass a folder of real rainy photographs")
    held = held[:limit]
    return load_real(held, size), {"folder": str(folder), "held_out": folder_manifest(held),
                                   "calibration_files_excluded": len(cal)}


def folder_domain(folder, size: int, limit: int | None = None) -> tuple[list, dict]:
    """The rainy images of a dataset folder in any known layout (e.g. Rain100L/H as the synthetic domain),
    loaded as in :func:`load_real`, with their manifest."""
    from .config import folder_manifest

    layout, items = detect_layout(folder)
    paths = [it.rainy for it in items][:limit]
    return load_real(paths, size), {"folder": str(folder), "layout": layout, "files": folder_manifest(paths)}


def gap_verdicts(dist, c2st_results: dict, drop: dict, gain_drop: dict, reference: str = "real") -> dict:
    """Verdicts of notebook 01. C1 (the gap) is supported when a classifier tells synthetic rain from real
    photographs (AUC interval above 0.5, permutation p < 0.05); C2 (the failure) when the gain over the rainy input
    (PSNR-Y; realistic rain scored against its streak-free target) is smaller on realistic than on synthetic test
    rain, interval above 0 (``gain_drop``; ``drop``, the difference of the outputs' PSNR-Y, is reported only: the
    two kinds of rain start from different input qualities). Also: on how many statistics, and on the two-sample
    test, realistic rain is closer to the real photographs than synthetic rain (only when ``reference`` is
    ``"real"``)."""
    v: dict = {}
    if reference == "real":
        w1 = dist[dist["measure"] == "W1/sd"].pivot(index="statistic", columns="domain", values="distance")
        v["realistic_closer_on_statistics"] = f"{int((w1['realistic'] < w1['synthetic']).sum())}/{len(w1)}"
        v["realistic_closer_on_c2st"] = bool(c2st_results["realistic"]["auc"] < c2st_results["synthetic"]["auc"])
        syn = c2st_results["synthetic"]
        v["C1"] = "supported" if syn["low"] > 0.5 and syn["p_value"] < 0.05 else "not supported"
    v["C2"] = "supported" if gain_drop["psnr_y"]["low"] > 0 else "not supported"
    return v


def statistics_frame(images: list, domain: str):
    """Per-image statistics of a domain as a pandas DataFrame (one row an image), plus the list of
    :class:`ImageStats`. ``images`` holds tensors, or ``(working, native, name)`` tuples."""
    import pandas as pd

    rows, full = [], []
    for i, item in enumerate(images):
        img, native, name = item if isinstance(item, tuple) else (item, None, f"{domain}-{i:03d}")
        st = image_statistics(img, native)
        rows.append({"domain": domain, "image": name, **st.scalars})
        full.append(st)
    return pd.DataFrame(rows), full


def gap_distances(frames: dict, full: dict, ref: str = "real", n_boot: int = 1000, seed: int = 0):
    """Distance of every domain to ``ref`` on every statistic: standardised 1-Wasserstein over images (in
    units of the reference's standard deviation) with a bootstrap interval, plus the Jensen–Shannon divergence
    of the pooled orientation histograms and of the pooled rain-intensity histograms."""
    import pandas as pd

    from .stats import js_divergence_ci, wasserstein_distance_ci

    rows = []
    ref_df = frames[ref]
    for dom, df in frames.items():
        if dom == ref:
            continue
        for k, stat in enumerate(STATISTICS):
            d, lo, hi = wasserstein_distance_ci(df[stat].to_numpy(), ref_df[stat].to_numpy(), n_boot, seed=seed + k)
            rows.append({"statistic": stat, "domain": dom, "distance": d, "low": lo, "high": hi, "measure": "W1/sd"})
        hx = np.stack([s.orientation_hist for s in full[dom]])
        hr = np.stack([s.orientation_hist for s in full[ref]])
        d, lo, hi = js_divergence_ci(hx, hr, n_boot, seed=seed + 101)
        rows.append({"statistic": "orientation_hist", "domain": dom, "distance": d, "low": lo, "high": hi, "measure": "JS"})
        bins = np.linspace(STREAK_THRESHOLD, 0.5, 31)
        ix = np.stack([np.histogram(s.intensity_values, bins)[0] for s in full[dom]]).astype(float)
        ir = np.stack([np.histogram(s.intensity_values, bins)[0] for s in full[ref]]).astype(float)
        d, lo, hi = js_divergence_ci(ix, ir, n_boot, seed=seed + 102)
        rows.append({"statistic": "intensity_hist", "domain": dom, "distance": d, "low": lo, "high": hi, "measure": "JS"})
    return pd.DataFrame(rows)
