"""Ground-truth-free measures of the rain left in an image (notebook 05), validated where the answer is known.

NIQE and PIQE reward texture, so they rate every network output worse than its rainy input. The two measures
here look only at *oriented thin bright structure*, the signature of rain streaks, and are computed the same
way for every method under test (nothing is fitted to any deraining model).

**Line field.** At a fixed working size (short side :data:`WORK_SIZE` = 256 px: 2 of the 350 rain-free and 3 of
the 92 real rainy photographs are smaller, at 320 px it would be 14 and 3, and upsampling blurs), the luminance
of the white top-hat rain-layer estimate (:func:`ttl.imageops.rain_layer_estimate`, 7 px) is filtered by 12
oriented line detectors (negative second derivative of a Gaussian across, sigma 1 px, times a Gaussian along,
sigma 5 px; zero mean). Per pixel, ``w`` is the strongest positive response and ``theta`` its orientation
(angle of the streak from vertical; positive = top-left to bottom-right).

**1. P(rain)** (:class:`RainClassifier`): a class-balanced, L2-regularised logistic regression on standardised
per-image statistics, fitted on real rainy photographs (``real_rainy``) versus rain-free photographs
(``clean_scenes``), their ``train`` splits by :func:`ttl.scenes.split_files`; applied to the centre
``WORK_SIZE`` crop. Default statistics (:data:`ORIENTED_FEATURES`): the *vertical excess* of the line field
``sum(w cos 2theta) / sum(w)`` (in [-1, 1]: thin structure along the vertical minus across it, as a share of
all thin structure) over the whole crop, and its median and lower quartile over 32 px tiles (rain covers the
whole frame; vertical scene structure is local). Being ratios, they are unchanged by blur, JPEG q50 and noise
(median shift of rain-free photographs <= 0.06 sd), whereas the gap statistics ``coherence``,
``streak_density``, ``rain_intensity`` move by 0.7-1.8 sd under a 1-2 px blur, and ``rain_intensity``,
``streak_length``, ``coherence``, ``orientation_spread`` separate real rain from the rain-free collection in the
*opposite* direction to the one that orders known pairs (the rain-free photographs are sharper and busier
than the web JPEGs of rain). Any name of :data:`ttl.gap.STATISTICS` can still be passed as a feature.

**2. Oriented streak energy** (:func:`streak_energy`): ``mean(w cos 2(theta - theta0))`` over the image (per
pixel, in top-hat luminance units): thin-line energy along the streak direction ``theta0`` minus that across
it, so isotropic texture cancels. ``theta0`` is the dominant direction of the rainy input, within +-30 deg of
vertical. :func:`streak_energy_removed` ``= 1 - E(derained) / E(rainy)`` with ``theta0`` taken from the rainy
input (1 = all removed, 0 = none, < 0 = added); NaN when the input has less than :data:`MIN_ENERGY`.
Over a set of images, :func:`streak_energy_removed_total` (``1 - sum E(derained) / sum E(rainy)``) is stabler.

**Validated on** (:func:`validate_measures`, ``python -m ttl.rainleft``): the 68 public pairs of
``shared/data/paired_public`` (rain13k, Rain200 train/test, heavy rain, DDN samples) and the calibrated
realistic renderer on the 35 ``clean_scenes`` test images, each as clean / oracle (half the exact rain layer
removed) / rainy, with paired bootstrap intervals. P(rain) ordered clean < oracle < rainy on 68/68 public pairs
and 32/35 renders, the energy on 68/68 and 30/35; pooled over each set, the oracle removed 0.49-0.59 of the
streak energy and the clean image 0.79-1.04 (heavy-rain sample excepted, see below). Blur check: a Gaussian
blur (sigma 1, 2 px) of clean or rain-free images moves P(rain) by at most 0.04, and lowers the energy by at
most a quarter of the clean-to-rainy gap (the renders at sigma 2, borderline).
Cross-validated AUC of P(rain), real rainy vs rain-free photographs: 0.805 (test splits: 0.75, 9 vs 35 images).
The seven rain-layer gap statistics (:data:`GAP_RAIN_FEATURES`) reach a higher AUC (0.90) but order the
Rain200 pairs backwards (0/23) - they learn "sharp, busy photograph" versus "soft web JPEG", not rain.

**Known failure modes.** Both measures assume rain within about +-30 deg (energy) or +-45 deg (P(rain)) of
vertical: rain blown sideways is missed, and scenes full of thin vertical bright structure (railings, fences,
grass, waterfalls, striped clothes) look rainy; a scene's own orientation imbalance makes single-image energies
noisy (rain-free photographs span about +-0.01, as much as faint real rain), so compare methods on the same
images, paired. The energy is *not* blur-proof: blurring a rainy image by 1 / 2 px "removes" 50-60 % / 85-93 %
of its streak energy (thin streaks do fade), while P(rain) drops by only 0.01-0.10 (0.18-0.27 on the small
DDN and hazy heavy-rain samples); read them together (and with NIQE, which punishes blur). Faint or hazy rain
(the heavy-rain sample) has little oriented energy, so its removed fraction is unstable (> 1) or NaN.
P(rain) separates real rain from rain-free photographs only moderately: it ranks methods on average over
images, not single images.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .imageops import gaussian_blur, luminance, rain_layer_estimate

__all__ = ["WORK_SIZE", "ORIENTED_FEATURES", "DEFAULT_FEATURES", "GAP_RAIN_FEATURES", "MIN_ENERGY",
           "line_field", "oriented_features", "rain_features", "streak_direction", "streak_energy",
           "streak_energy_removed", "streak_energy_removed_total", "RainClassifier", "load_working",
           "fit_rain_classifier", "load_public_pairs", "realistic_pairs", "validate_measures", "validation_table"]

WORK_SIZE = 256
TOPHAT = 7
N_ORIENT = 12
SIGMA_ACROSS, SIGMA_ALONG, RADIUS = 1.0, 5.0, 11
TILE = 32
MAX_TILT = 30.0  # degrees: the energy's streak direction is searched within this of vertical
MIN_ENERGY = 5e-4  # below this a rainy input has no measurable oriented streak energy
ORIENTED_FEATURES = ["vertical_excess", "vertical_excess_median", "vertical_excess_q25"]
DEFAULT_FEATURES = list(ORIENTED_FEATURES)
# the rain-layer gap statistics the brief proposed; kept as the alternative design the validation compares
GAP_RAIN_FEATURES = ["orientation_spread", "orientation_tilt", "coherence", "streak_length", "streak_width",
                     "streak_density", "rain_intensity"]
_ANGLES = torch.arange(N_ORIENT, dtype=torch.float32) * math.pi / N_ORIENT  # streak angle from vertical


# ----------------------------------------------------------------------------------------------- inputs
def _as_image(img: Any, what: str = "image") -> torch.Tensor:
    """A validated float32 ``(3,H,W)`` tensor clamped to [0,1]; ValueError for anything else."""
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(img)
    if not isinstance(img, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor (3,H,W) in [0,1], got {type(img).__name__}")
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"{what} must have shape (3,H,W) (one RGB image), got {tuple(img.shape)}; "
                         "pass batches as a list of images")
    if min(img.shape[-2:]) < 8:
        raise ValueError(f"{what} is {img.shape[-1]}x{img.shape[-2]} px; at least 8x8 is needed")
    img = img.detach().float().cpu()
    if not torch.isfinite(img).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return img.clamp(0, 1)


def _working(img: torch.Tensor, size: int | None, crop: bool) -> torch.Tensor:
    """Resize the short side to ``size`` (``None``: keep) and optionally take the centre square crop."""
    from .scenes import resize_short_side

    if size is not None and min(img.shape[-2:]) != size:
        img = resize_short_side(img, size)
    if crop:
        s = min(img.shape[-2:])
        h, w = img.shape[-2:]
        y, x = (h - s) // 2, (w - s) // 2
        img = img[:, y:y + s, x:x + s]
    return img


# ------------------------------------------------------------------------------------------- line field
@functools.lru_cache(maxsize=1)
def _line_bank() -> torch.Tensor:
    """``(N_ORIENT,1,k,k)`` zero-mean line detectors; positive lobe sums to 1."""
    r = RADIUS
    y, x = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
    ks = []
    for t in _ANGLES.tolist():
        dx, dy = math.sin(t), math.cos(t)  # streak direction (x right, y down)
        along, across = x * dx + y * dy, x * dy - y * dx
        k = (1 - across ** 2 / SIGMA_ACROSS ** 2) * torch.exp(-across ** 2 / (2 * SIGMA_ACROSS ** 2)
                                                              - along ** 2 / (2 * SIGMA_ALONG ** 2))
        k = k - k.mean()
        ks.append(k / k.clamp(min=0).sum())
    return torch.stack(ks)[:, None]


def line_field(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The line field of ``(B,3,H,W)`` images in [0,1] (already at the working size): ``(w, cos 2theta,
    sin 2theta)``, each ``(B,H,W)``; ``w`` is the strongest positive oriented-line response of the top-hat
    luminance, ``theta`` its streak angle from vertical."""
    r = luminance(rain_layer_estimate(images.float().clamp(0, 1), TOPHAT))
    resp = F.conv2d(F.pad(r, (RADIUS,) * 4, mode="replicate"), _line_bank()).clamp(min=0)
    w, k = resp.max(1)
    ang = _ANGLES[k]
    return w, torch.cos(2 * ang), torch.sin(2 * ang)


def _tile_excess(w: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Vertical excess per ``TILE`` px tile: ``(B, n_tiles)`` (0 where a tile holds no line energy)."""
    t = min(TILE, *w.shape[-2:])
    num = F.avg_pool2d((w * c2)[:, None], t).flatten(1)
    den = F.avg_pool2d(w[:, None], t).flatten(1)
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def oriented_features(images: Sequence[torch.Tensor], size: int | None = WORK_SIZE, batch: int = 16) -> np.ndarray:
    """:data:`ORIENTED_FEATURES` of each image (centre ``size`` crop), ``(n, 3)`` float64."""
    crops = [_working(_as_image(im, f"images[{i}]"), size, crop=True) for i, im in enumerate(images)]
    out = []
    for i in range(0, len(crops), batch):
        group: dict[tuple[int, int], list[int]] = {}
        chunk = crops[i:i + batch]
        for j, c in enumerate(chunk):
            group.setdefault(tuple(c.shape[-2:]), []).append(j)
        rows = [None] * len(chunk)
        for idx in group.values():
            w, c2, _ = line_field(torch.stack([chunk[j] for j in idx]))
            tot = w.sum((1, 2))
            glob = torch.where(tot > 0, (w * c2).sum((1, 2)) / tot.clamp(min=1e-12), torch.zeros_like(tot))
            tiles = _tile_excess(w, c2)
            med, q25 = tiles.median(1).values, tiles.quantile(0.25, dim=1)
            for n, j in enumerate(idx):
                rows[j] = [float(glob[n]), float(med[n]), float(q25[n])]
        out += rows
    return np.asarray(out, dtype=np.float64).reshape(len(crops), len(ORIENTED_FEATURES))


def rain_features(images: Sequence[torch.Tensor], features: Sequence[str] = DEFAULT_FEATURES,
                  size: int | None = WORK_SIZE) -> np.ndarray:
    """The named per-image statistics, ``(n, len(features))``: :data:`ORIENTED_FEATURES` and/or any of
    :data:`ttl.gap.STATISTICS` (computed by :func:`ttl.gap.image_statistics` on the centre ``size`` crop;
    ``noise_sigma`` and ``blockiness`` then see the resized crop, not the native image). May hold NaN."""
    from .gap import STATISTICS, image_statistics

    unknown = [f for f in features if f not in ORIENTED_FEATURES and f not in STATISTICS]
    if unknown:
        raise ValueError(f"unknown features {unknown}; valid: {ORIENTED_FEATURES + STATISTICS}")
    images = list(images)
    cols: dict[str, np.ndarray] = {}
    if any(f in ORIENTED_FEATURES for f in features):
        of = oriented_features(images, size)
        cols.update({f: of[:, k] for k, f in enumerate(ORIENTED_FEATURES)})
    gap = [f for f in features if f in STATISTICS]
    if gap:
        st = [image_statistics(_working(_as_image(im, f"images[{i}]"), size, crop=True)).scalars
              for i, im in enumerate(images)]
        cols.update({f: np.array([s[f] for s in st], dtype=np.float64) for f in gap})
    return np.stack([cols[f] for f in features], 1) if images else np.zeros((0, len(features)))


# ------------------------------------------------------------------------------------------- energy
def _energy_terms(img: torch.Tensor, size: int | None) -> tuple[float, float, float]:
    w, c2, s2 = line_field(_working(img, size, crop=False)[None])
    return float((w * c2).mean()), float((w * s2).mean()), float(w.mean())


def _direction(ec: float, es: float) -> float:
    """Dominant streak angle (rad, from vertical) clipped to +-MAX_TILT, from the doubled-angle resultant."""
    if ec == 0 and es == 0:
        return 0.0
    lim = math.radians(MAX_TILT)
    return float(np.clip(0.5 * math.atan2(es, ec), -lim, lim))


def streak_direction(img: torch.Tensor, size: int | None = WORK_SIZE) -> float:
    """Dominant streak direction of ``img`` (3,H,W), degrees from vertical (positive = top-left to
    bottom-right), searched within +-30 deg of vertical."""
    ec, es, _ = _energy_terms(_as_image(img), size)
    return math.degrees(_direction(ec, es))


def streak_energy(img: torch.Tensor, direction: float | None = None, size: int | None = WORK_SIZE) -> float:
    """Oriented streak energy of one image ``(3,H,W)`` in [0,1], any size (its short side is resized to
    ``size``; ``None`` keeps it): ``mean(w cos 2(theta - theta0))`` over pixels, in top-hat luminance units.
    ``direction`` is ``theta0`` in degrees from vertical (default: the image's own, :func:`streak_direction`).
    Near 0 (either sign) for rain-free images; grows with the contrast and number of streaks."""
    ec, es, _ = _energy_terms(_as_image(img), size)
    t0 = _direction(ec, es) if direction is None else math.radians(direction)
    return ec * math.cos(2 * t0) + es * math.sin(2 * t0)


def streak_energy_removed(rainy: torch.Tensor, derained: torch.Tensor, size: int | None = WORK_SIZE,
                          min_energy: float = MIN_ENERGY) -> float:
    """``1 - E(derained) / E(rainy)``: the fraction of the input's oriented streak energy that the output
    removed (1 = all, 0 = none, negative = added), both measured along the rainy input's streak direction.
    Both images ``(3,H,W)``, same shape. NaN when ``E(rainy) < min_energy`` (no measurable streaks)."""
    r, d = _as_image(rainy, "rainy"), _as_image(derained, "derained")
    if r.shape != d.shape:
        raise ValueError(f"rainy and derained must have the same shape, got {tuple(r.shape)} and {tuple(d.shape)}")
    ec, es, _ = _energy_terms(r, size)
    t0 = _direction(ec, es)
    e_r = ec * math.cos(2 * t0) + es * math.sin(2 * t0)
    if not e_r >= min_energy:
        return float("nan")
    dc, ds, _ = _energy_terms(d, size)
    return 1.0 - (dc * math.cos(2 * t0) + ds * math.sin(2 * t0)) / e_r


def streak_energy_removed_total(rainy: Sequence[torch.Tensor], derained: Sequence[torch.Tensor],
                                size: int | None = WORK_SIZE) -> float:
    """``1 - sum E(derained) / sum E(rainy)`` over a set of images (each pair measured along its rainy
    input's direction): the share of the set's streak energy removed. Stabler than averaging
    :func:`streak_energy_removed` when single inputs have little oriented energy (faint or hazy rain)."""
    if len(rainy) != len(derained) or not rainy:
        raise ValueError(f"need equally many rainy and derained images, got {len(rainy)} and {len(derained)}")
    num = den = 0.0
    for i, (r, d) in enumerate(zip(rainy, derained)):
        r, d = _as_image(r, f"rainy[{i}]"), _as_image(d, f"derained[{i}]")
        if r.shape != d.shape:
            raise ValueError(f"pair {i}: rainy and derained differ in shape, {tuple(r.shape)} vs {tuple(d.shape)}")
        ec, es, _ = _energy_terms(r, size)
        t0 = _direction(ec, es)
        dc, ds, _ = _energy_terms(d, size)
        den += ec * math.cos(2 * t0) + es * math.sin(2 * t0)
        num += dc * math.cos(2 * t0) + ds * math.sin(2 * t0)
    return 1.0 - num / den if den > 0 else float("nan")


# --------------------------------------------------------------------------------------- classifier
def _fit_weighted_logistic(z: np.ndarray, y: np.ndarray, l2: float, balanced: bool) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression on standardised ``z`` (LBFGS, float64): mean of per-sample
    (class-balanced if asked) cross-entropy plus ``l2 * |coef|^2``. Returns ``(coef, bias)``."""
    x = torch.from_numpy(np.asarray(z, np.float64))
    t = torch.from_numpy(np.asarray(y, np.float64))
    if balanced:
        n1, n0 = float(t.sum()), float(len(t) - t.sum())
        sw = torch.where(t > 0.5, len(t) / (2 * n1), len(t) / (2 * n0)).double()
    else:
        sw = torch.ones_like(t)
    p = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], lr=1.0, max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = x @ p[:-1] + p[-1]
        loss = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * sw).sum() / sw.sum()
        loss = loss + l2 * (p[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    p = p.detach().numpy()
    return p[:-1].copy(), float(p[-1])


def _standardise(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mean) / sd
    return np.where(np.isfinite(z), z, 0.0)  # missing statistics are imputed with the training mean


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(x, 0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    sd = np.nanstd(x, 0)
    return mean, np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)


@dataclass
class RainClassifier:
    """P(rain) of an image from ground-truth-free rain-layer statistics (see the module doc). Build it with
    :meth:`fit`; it serialises to a small JSON-able dict (:meth:`to_dict` / :meth:`from_dict`)."""

    features: list[str]
    mean: list[float]
    sd: list[float]
    weights: list[float]
    bias: float
    size: int = WORK_SIZE
    l2: float = 1e-2
    balanced: bool = True
    cv_auc: float | None = None
    n_rainy: int = 0
    n_clean: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, rainy: list[torch.Tensor], clean: list[torch.Tensor], features: Sequence[str] = DEFAULT_FEATURES,
            l2: float = 1e-2, size: int = WORK_SIZE, folds: int = 5, seed: int = 0,
            balanced: bool = True) -> "RainClassifier":
        """Fit on rainy photographs (label 1) and rain-free ones (label 0), each a list of ``(3,H,W)`` images
        (centre ``size`` crops are taken). Classes are weighted equally unless ``balanced=False``, so P = 0.5
        means "as likely rain as not" whatever the class sizes. ``cv_auc`` is the stratified ``folds``-fold
        out-of-fold ROC-AUC on these images (NaN with fewer than 2 images per class)."""
        if len(rainy) == 0 or len(clean) == 0:
            raise ValueError(f"need rainy and clean images, got {len(rainy)} and {len(clean)}")
        features = list(features)
        x = np.concatenate([rain_features(rainy, features, size), rain_features(clean, features, size)])
        y = np.r_[np.ones(len(rainy)), np.zeros(len(clean))]
        clf = cls._fit_arrays(x, y, features, l2, size, balanced)
        clf.cv_auc = cls._cv_auc(x, y, folds, l2, balanced, seed)
        return clf

    @classmethod
    def _fit_arrays(cls, x: np.ndarray, y: np.ndarray, features: list[str], l2: float, size: int,
                    balanced: bool) -> "RainClassifier":
        mean, sd = _moments(x)
        coef, bias = _fit_weighted_logistic(_standardise(x, mean, sd), y, l2, balanced)
        return cls(features, [float(v) for v in mean], [float(v) for v in sd], [float(v) for v in coef], float(bias),
                   int(size), float(l2), bool(balanced), None, int(y.sum()), int(len(y) - y.sum()))

    @staticmethod
    def _cv_auc(x: np.ndarray, y: np.ndarray, folds: int, l2: float, balanced: bool, seed: int) -> float:
        from .stats import auc

        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        folds = min(folds, len(pos), len(neg))
        if folds < 2:
            return float("nan")
        rng = np.random.default_rng(seed)
        fold = np.empty(len(y), int)
        fold[rng.permutation(pos)] = np.arange(len(pos)) % folds
        fold[rng.permutation(neg)] = np.arange(len(neg)) % folds
        scores = np.zeros(len(y))
        for k in range(folds):
            tr, te = fold != k, fold == k
            mean, sd = _moments(x[tr])
            coef, bias = _fit_weighted_logistic(_standardise(x[tr], mean, sd), y[tr], l2, balanced)
            scores[te] = _standardise(x[te], mean, sd) @ coef + bias
        return auc(scores, y.astype(bool))

    def logit(self, images: Iterable[torch.Tensor]) -> np.ndarray:
        """Log-odds of rain per image."""
        x = rain_features(list(images), self.features, self.size)
        return _standardise(x, np.asarray(self.mean), np.asarray(self.sd)) @ np.asarray(self.weights) + self.bias

    def probability(self, images: Iterable[torch.Tensor]) -> np.ndarray:
        """P(rain) per image ``(3,H,W)`` in [0,1] (any size; the centre ``size`` crop is measured)."""
        return 1.0 / (1.0 + np.exp(-self.logit(images)))

    def auc(self, rainy: list[torch.Tensor], clean: list[torch.Tensor], n_boot: int = 1000,
            seed: int = 0) -> dict[str, float]:
        """ROC-AUC of P(rain) for telling ``rainy`` from ``clean`` images, with a bootstrap interval."""
        from .stats import auc_ci

        s = np.r_[self.logit(rainy), self.logit(clean)]
        est, lo, hi = auc_ci(s, np.r_[np.ones(len(rainy), bool), np.zeros(len(clean), bool)], n_boot, seed=seed)
        return {"auc": est, "low": lo, "high": hi, "n_rainy": len(rainy), "n_clean": len(clean)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters (plain lists and floats)."""
        return {"kind": "ttl.rainleft.RainClassifier", "version": 1, "features": list(self.features),
                "mean": list(self.mean), "sd": list(self.sd), "weights": list(self.weights), "bias": self.bias,
                "size": self.size, "l2": self.l2, "balanced": self.balanced,
                "cv_auc": self.cv_auc if self.cv_auc is not None and math.isfinite(self.cv_auc) else None,
                "n_rainy": self.n_rainy, "n_clean": self.n_clean, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RainClassifier":
        """Inverse of :meth:`to_dict` (ValueError on a malformed dict)."""
        need = ("features", "mean", "sd", "weights", "bias")
        missing = [k for k in need if k not in d]
        if missing:
            raise ValueError(f"not a RainClassifier dict: missing {missing}")
        k = len(d["features"])
        if not (len(d["mean"]) == len(d["sd"]) == len(d["weights"]) == k):
            raise ValueError("RainClassifier dict: features, mean, sd and weights must have the same length")
        return cls([str(f) for f in d["features"]], [float(v) for v in d["mean"]], [float(v) for v in d["sd"]],
                   [float(v) for v in d["weights"]], float(d["bias"]), int(d.get("size", WORK_SIZE)),
                   float(d.get("l2", 1e-2)), bool(d.get("balanced", True)),
                   None if d.get("cv_auc") is None else float(d["cv_auc"]), int(d.get("n_rainy", 0)),
                   int(d.get("n_clean", 0)), dict(d.get("extra", {})))


# ------------------------------------------------------------------------------------------- data
def load_working(paths: Iterable, size: int = WORK_SIZE, crop: bool = True) -> list[torch.Tensor]:
    """Read image files at the working size: short side resized to ``size``, centre square crop if ``crop``
    (as :func:`ttl.gap.load_real`, without keeping the native image)."""
    from .io import read_image

    return [_working(read_image(p, min_size=8), size, crop) for p in paths]


def fit_rain_classifier(real_dir: str | Path, clean_dir: str | Path, size: int = WORK_SIZE,
                        features: Sequence[str] = DEFAULT_FEATURES, l2: float = 1e-2, seed: int = 0,
                        limit: int | None = None, n_boot: int = 1000) -> tuple[RainClassifier, dict[str, Any]]:
    """Fit :class:`RainClassifier` on the ``train`` splits (:func:`ttl.scenes.split_files`) of ``real_dir`` (rain)
    and ``clean_dir`` (no rain) and report its cross-validated AUC on them and its AUC on the two ``test`` splits
    (with a bootstrap interval). ``limit`` caps the images per folder and split."""
    from .io import list_images
    from .scenes import split_files

    splits = {}
    for name, folder in (("real_dir", real_dir), ("clean_dir", clean_dir)):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{name}={str(folder)!r} not found: the rain classifier needs real rainy and "
                                    "rain-free photographs")
        splits[name] = split_files(list_images(folder, recursive=True))
    tr_r = load_working(splits["real_dir"]["train"][:limit], size)
    tr_c = load_working(splits["clean_dir"]["train"][:limit], size)
    clf = RainClassifier.fit(tr_r, tr_c, features, l2=l2, size=size, seed=seed)
    te_r = load_working(splits["real_dir"]["test"][:limit], size)
    te_c = load_working(splits["clean_dir"]["test"][:limit], size)
    test = clf.auc(te_r, te_c, n_boot=n_boot, seed=seed)
    report = {"features": list(features), "cv_auc": clf.cv_auc, "n_train_rainy": len(tr_r),
              "n_train_clean": len(tr_c), "test_auc": test["auc"], "test_low": test["low"],
              "test_high": test["high"], "n_test_rainy": len(te_r), "n_test_clean": len(te_c)}
    clf.extra = {"data": "real rainy vs clean photographs, train splits", "test_auc": test["auc"]}
    return clf, report


def load_public_pairs(root: str | Path, size: int | None = WORK_SIZE,
                      datasets: Sequence[str] | None = None) -> dict[str, tuple[list, list]]:
    """The public paired sets under ``root`` (each subfolder in a layout :func:`ttl.layouts.detect_layout` pairs)
    as ``{folder name: (rainy, clean)}``, each image's short side resized to ``size`` (full frame); ``datasets``
    keeps only those folder names. A folder of :data:`ttl.layouts.SHARED_PUBLIC` gives its ``"test"`` part only."""
    from .layouts import LayoutError, PairedFolderDataset

    out = {}
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if datasets is not None and d.name not in datasets:
            continue
        try:
            ds = PairedFolderDataset(d, role="test")
        except LayoutError:
            continue
        items = [ds[i] for i in range(len(ds))]
        out[d.name] = ([_working(it["rainy"], size, crop=False) for it in items],
                       [_working(it["clean"], size, crop=False) for it in items])
    return out


def realistic_pairs(clean: list[torch.Tensor], seed: int = 0, size: int = WORK_SIZE,
                    batch: int = 8) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(rainy, clean)``: centre ``size`` crops of ``clean`` rendered with the calibrated
    :class:`ttl.rain.RealisticRain` (heuristic depth), ``batch`` images per generator seed."""
    from .rain import RealisticRain
    from .utils import generator

    crops = torch.stack([_working(_as_image(c), size, crop=True) for c in clean])
    ren = RealisticRain()
    rainy = [ren(crops[k:k + batch], generator(seed * 7919 + k), depth=None).rainy for k in range(0, len(crops), batch)]
    return list(torch.cat(rainy)), list(crops)


# ------------------------------------------------------------------------------------------- validation
def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(img[None], sigma)[0].clamp(0, 1)


def validate_measures(pairs: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]], classifier: RainClassifier,
                      rain_free: list[torch.Tensor] | None = None, blur_sigmas: Sequence[float] = (1.0, 2.0),
                      size: int = WORK_SIZE, n_boot: int = 1000, seed: int = 0, blur_margin: float = 0.25,
                      ) -> dict[str, Any]:
    """Check the measures where the answer is known. For every dataset of ``pairs`` (``{name: (rainy,
    clean)}``) each image gives clean, oracle = ``clean + 0.5 (rainy - clean)`` and rainy, and

    * ``p_rain`` and ``energy`` (along the rainy input's direction) must order clean < oracle < rainy;
    * ``removed`` (:func:`streak_energy_removed` from the rainy input) must order rainy (0) < oracle < clean.

    Rows of ``ordering``: means, per-image count ordered correctly, and paired bootstrap intervals of
    ``rainy - oracle`` and ``oracle - clean``. Rows of ``blur``: the shift of each measure when the clean image
    (or the ``rain_free`` images) is blurred by each sigma, as a fraction of the dataset's clean-to-rainy gap
    (pooled gap for ``rain_free``); ``passes`` when it is above ``-blur_margin`` (blur must not make an image
    look much less rainy). Blurring the *rainy* image is reported too (``target="rainy"``): there a drop is
    the known failure mode, not a check. ``per_image`` is a DataFrame of every value."""
    import pandas as pd

    from .stats import paired_bootstrap

    per, blur_rows, order_rows = [], [], []
    gaps: dict[str, dict[str, float]] = {}
    for name, (rainy, clean) in pairs.items():
        if len(rainy) != len(clean) or not rainy:
            raise ValueError(f"{name}: need equally many rainy and clean images, got {len(rainy)} and {len(clean)}")
        rainy = [_as_image(r, f"{name} rainy") for r in rainy]
        clean = [_as_image(c, f"{name} clean") for c in clean]
        oracle = [c + 0.5 * (r - c) for r, c in zip(rainy, clean)]
        v: dict[str, dict[str, np.ndarray]] = {"p_rain": {}, "energy": {}, "removed": {}}
        versions = {"clean": clean, "oracle": oracle, "rainy": rainy}
        for s in blur_sigmas:
            versions[f"clean_blur{s:g}"] = [_blur(c, s) for c in clean]
            versions[f"rainy_blur{s:g}"] = [_blur(r, s) for r in rainy]
        terms_r = [_energy_terms(r, size) for r in rainy]
        t0 = [_direction(ec, es) for ec, es, _ in terms_r]
        for key, ims in versions.items():
            v["p_rain"][key] = classifier.probability(ims)
            terms = terms_r if key == "rainy" else [_energy_terms(im, size) for im in ims]
            v["energy"][key] = np.array([ec * math.cos(2 * a) + es * math.sin(2 * a)
                                         for (ec, es, _), a in zip(terms, t0)])
        e_r = v["energy"]["rainy"]
        ok = e_r >= MIN_ENERGY
        for key in versions:
            v["removed"][key] = np.where(ok, 1 - v["energy"][key] / np.where(ok, e_r, 1.0), np.nan)
        for i in range(len(rainy)):
            per.append({"dataset": name, "image": i, **{f"{m}_{k}": float(v[m][k][i]) for m in v for k in versions}})
        for m in v:
            c, o, r = v[m]["clean"], v[m]["oracle"], v[m]["rainy"]
            good = np.isfinite(c) & np.isfinite(o) & np.isfinite(r)
            ordered = (r < o) & (o < c) if m == "removed" else (c < o) & (o < r)
            ro = paired_bootstrap(r[good], o[good], n_boot, seed=seed) if good.sum() else {}
            oc = paired_bootstrap(o[good], c[good], n_boot, seed=seed + 1) if good.sum() else {}
            order_rows.append({"dataset": name, "measure": m, "n": len(c), "n_valid": int(good.sum()),
                               "clean": float(np.mean(c[good])) if good.any() else float("nan"),
                               "oracle": float(np.mean(o[good])) if good.any() else float("nan"),
                               "rainy": float(np.mean(r[good])) if good.any() else float("nan"),
                               "n_ordered": int((ordered & good).sum()),
                               "frac_ordered": float((ordered & good).sum() / max(good.sum(), 1)),
                               "rainy_minus_oracle": ro, "oracle_minus_clean": oc})
            if m == "removed":  # pooled over images: 1 - sum E / sum E(rainy), stable when single E(rainy) are small
                e = v["energy"]
                order_rows[-1]["pooled"] = {k: float(1 - e[k].sum() / e["rainy"].sum()) for k in ("clean", "oracle")}
            gaps.setdefault(name, {})[m] = float(np.nanmean(r - c))
        for m in ("p_rain", "energy"):
            for s in blur_sigmas:
                for target in ("clean", "rainy"):
                    shift = v[m][f"{target}_blur{s:g}"] - v[m][target]
                    blur_rows.append(_blur_row(name, m, s, target, shift, gaps[name][m], n_boot, seed, blur_margin))
        for s in blur_sigmas:
            rem = v["removed"][f"rainy_blur{s:g}"]
            rem = rem[np.isfinite(rem)]
            est = float(np.mean(rem)) if rem.size else float("nan")
            blur_rows.append({"dataset": name, "measure": "removed", "sigma": s, "target": "rainy", "n": int(rem.size),
                              "shift": est, "low": float("nan"), "high": float("nan"), "gap": 1.0,
                              "shift_over_gap": est, "passes": None})
    if rain_free:
        free = [_as_image(c, "rain_free") for c in rain_free]
        pooled = {m: float(np.mean([g[m] for g in gaps.values()])) for m in ("p_rain", "energy")} if gaps else {}
        base_p = classifier.probability(free)
        base_e = np.array([streak_energy(c, 0.0, size) for c in free])
        for s in blur_sigmas:
            bl = [_blur(c, s) for c in free]
            sp = classifier.probability(bl) - base_p
            se = np.array([streak_energy(c, 0.0, size) for c in bl]) - base_e
            for m, shift in (("p_rain", sp), ("energy", se)):
                blur_rows.append(_blur_row("rain_free", m, s, "clean", shift, pooled.get(m, float("nan")), n_boot,
                                           seed, blur_margin))
    return {"ordering": order_rows, "blur": blur_rows, "per_image": pd.DataFrame(per)}


def _blur_row(name: str, m: str, s: float, target: str, shift: np.ndarray, gap: float, n_boot: int, seed: int,
              margin: float) -> dict[str, Any]:
    from .stats import bootstrap_ci

    est, lo, hi = bootstrap_ci(shift, np.mean, n_boot, seed=seed)
    rel = est / gap if gap and np.isfinite(gap) and gap > 0 else float("nan")
    return {"dataset": name, "measure": m, "sigma": s, "target": target, "n": int(np.isfinite(shift).sum()),
            "shift": est, "low": lo, "high": hi, "gap": gap, "shift_over_gap": rel,
            "passes": (bool(rel > -margin) if np.isfinite(rel) else None) if target == "clean" else None}


def validation_table(result: dict[str, Any]) -> tuple[Any, Any]:
    """The :func:`validate_measures` result as two printable DataFrames ``(ordering, blur)``."""
    import pandas as pd

    def ci(d: dict) -> str:
        return f"{d['mean_diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else "-"

    rows = []
    for r in result["ordering"]:
        rows.append({"measure": r["measure"], "dataset": r["dataset"], "n": r["n_valid"],
                     "clean": round(r["clean"], 4), "oracle": round(r["oracle"], 4), "rainy": round(r["rainy"], 4),
                     "ordered": f"{r['n_ordered']}/{r['n_valid']}", "rainy-oracle": ci(r["rainy_minus_oracle"]),
                     "oracle-clean": ci(r["oracle_minus_clean"]),
                     "pooled c/o": (f"{r['pooled']['clean']:.2f}/{r['pooled']['oracle']:.2f}"
                                    if "pooled" in r else "")})
    order = pd.DataFrame(rows).sort_values(["measure", "dataset"], kind="stable").reset_index(drop=True)
    blur = pd.DataFrame([{"measure": b["measure"], "dataset": b["dataset"], "blurred": b["target"],
                          "sigma": b["sigma"], "n": b["n"], "shift": round(b["shift"], 4),
                          "ci": "-" if not np.isfinite(b["low"]) else f"[{b['low']:+.4f}, {b['high']:+.4f}]",
                          "shift/gap": round(b["shift_over_gap"], 2), "passes": b["passes"]} for b in result["blur"]])
    return order, blur


# ------------------------------------------------------------------------------------------- script
def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m ttl.rainleft [DATA_ROOT]``: fit P(rain) (default and gap-statistics designs), validate both
    measures on the public pairs and realistic renders, print the tables."""
    import argparse
    import time

    import pandas as pd

    from .io import list_images
    from .scenes import split_files

    ap = argparse.ArgumentParser(description=_main.__doc__)
    default_root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    ap.add_argument("data_root", nargs="?", default=str(default_root))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-gap", action="store_true", help="skip the gap-statistics comparison design")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    root = Path(a.data_root)
    t = time.time()
    designs = {"oriented": DEFAULT_FEATURES} if a.no_gap else {"oriented": DEFAULT_FEATURES, "gap7": GAP_RAIN_FEATURES}
    clfs = {}
    for nm, feats in designs.items():
        clfs[nm], rep = fit_rain_classifier(root / "real_rainy", root / "clean_scenes", features=feats)
        print(f"[{nm}] features={feats}\n  cv AUC (train, {rep['n_train_rainy']} rainy vs "
              f"{rep['n_train_clean']} clean) = {rep['cv_auc']:.3f}; test AUC ({rep['n_test_rainy']} vs "
              f"{rep['n_test_clean']}) = {rep['test_auc']:.3f} "
              f"[{rep['test_low']:.3f}, {rep['test_high']:.3f}]; weights={np.round(clfs[nm].weights, 2).tolist()} "
              f"({time.time() - t:.0f} s)")
    pairs = load_public_pairs(root / "paired_public")
    test_clean = load_working(split_files(list_images(root / "clean_scenes"))["test"])
    pairs["realistic"] = realistic_pairs(test_clean, seed=0)
    for nm, clf in clfs.items():
        res = validate_measures(pairs, clf, rain_free=test_clean)
        order, blur = validation_table(res)
        if nm != "oriented":
            order = order[order.measure == "p_rain"]
            blur = blur[blur.measure == "p_rain"]
        print(f"\n=== design {nm}: ordering (p_rain, energy: clean < oracle < rainy; "
              "removed: rainy=0 < oracle < clean)")
        print(order.to_string(index=False))
        print(f"--- design {nm}: blur check (shift of the measure when blurred; passes: shift/gap > -0.25)")
        print(blur.to_string(index=False))
        print(f"({time.time() - t:.0f} s)")


if __name__ == "__main__":
    _main()
