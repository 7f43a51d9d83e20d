"""No-reference image quality (NIQE, PIQE) for real rainy photographs, which have no clean reference.

**NIQE** (Mittal, Soundararajan & Bovik, IEEE SPL 2013) follows the authors' MATLAB release
(``computequality.m``, ``computefeature.m``, ``estimateaggdparam.m``, ``estimatemodelparam.m``):

* 8-bit luminance: ``round(255 x)``, then MATLAB ``rgb2gray`` on ``uint8`` (weights 0.2989, 0.5870, 0.1140,
  rounded); the image is cropped to a multiple of 96 px. MSCN: 7x7 Gaussian, sigma 7/6, replicate padding, C=1.
* 96x96 blocks at two scales; the second is MATLAB ``imresize(im, 0.5)`` reimplemented exactly (bicubic,
  a=-0.5, kernel widened x2 for antialiasing, symmetric borders), with 48x48 blocks.
* 18 features per block and scale, as the released ``computefeature.m`` (the paper's "GGD shape and
  variance" is, in that code, the AGGD shape and ``(beta_l+beta_r)/2`` of the MSCN coefficients), then for
  the H, V and two diagonal neighbour products: AGGD shape, mean, ``beta_l``, ``beta_r``. Moment matching on
  the grid 0.2:0.001:10.
* Score ``sqrt(d^T pinv((S_p+S_t)/2) d)``, ``d = mu_p - mu_t``; the test MVG is ``nanmean``/``nancov``.

The default pristine model (``ttl/niqe_pristine.json``) is fitted by ``estimatemodelparam.m``'s procedure
(blocks sharper than 0.75 x the image's sharpest) on the 7 photographs of ``ttl.scenes.bundled_photos()``
(40 blocks kept), not the paper's 125 images: its absolute values are **not** comparable with published
NIQE numbers, only with each other on the same images. For published-scale values pass
``load_official_niqe_params("modelparameters.mat")`` as ``model``.

**PIQE** (Venkatanath N et al., NCC 2015) follows MATLAB's ``piqe.m``, quirks included: replicate padding to a
multiple of 16, MATLAB's N-1 variances, and a "surround" that drops columns 8 and 10 (1-based) of the block
(``piqe.m`` deletes column 8, then column 9 of the shrunk block). Only departure: the score is clipped to
[0, 100] (it can exceed 100 only if noisy blocks have MSCN variance above 1). Inputs: ``(3,H,W)`` RGB or
``(H,W)`` gray in [0, 1], torch or numpy, quantised to 8 bits first. Lower is better for both.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage
from scipy.special import gamma

__all__ = ["NIQEModel", "niqe", "piqe", "noref_scores", "fit_niqe_model", "default_niqe_model",
           "load_official_niqe_params", "estimate_ggd_param", "estimate_aggd_param"]

DEFAULT_MODEL_PATH = Path(__file__).with_name("niqe_pristine.json")
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray
_GAM = 0.2 + 0.001 * np.arange(9801)  # 0.2:0.001:10
_R_AGGD = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))
_G7 = np.exp(-np.arange(-3, 4) ** 2 / (2 * (7 / 6) ** 2))
_G7 /= _G7.sum()
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _gray255(img: Any) -> np.ndarray:
    """Validate a [0,1] image and return its 8-bit MATLAB ``rgb2gray`` luminance as float64 ``(H, W)``."""
    a = img.detach().cpu().double().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[0] == 3)) or 0 in a.shape:
        hint = " (channels last? pass arr.transpose(2, 0, 1))" if a.ndim == 3 and a.shape[-1] in (3, 4) else ""
        raise ValueError(f"expected a (3,H,W) RGB or (H,W) grayscale image in [0,1], got shape {a.shape}{hint}")
    if not np.isfinite(a).all():
        raise ValueError("image contains NaN or inf: pass a finite image with values in [0,1]")
    if a.min() < 0 or a.max() > 1:
        raise ValueError(f"image values must lie in [0,1], got [{a.min():g}, {a.max():g}]: divide 8-bit images "
                         "by 255 and clamp network outputs with .clamp(0, 1)")
    q = np.floor(a * 255 + 0.5)
    return np.floor(np.tensordot(_RGB2GRAY, q, 1) + 0.5) if q.ndim == 3 else q


def estimate_ggd_param(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``estimateggdparam.m``: GGD (shape, sigma) by moment matching over the last axis of ``x``."""
    x = np.asarray(x, np.float64)
    var = (x**2).mean(-1)
    rho = var / np.abs(x).mean(-1) ** 2
    return _GAM[np.argmin(np.abs(np.asarray(rho)[..., None] - 1 / _R_AGGD), -1)], np.sqrt(var)


def estimate_aggd_param(x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``estimateaggdparam.m``: AGGD (shape, beta_left, beta_right) over the last axis (NaN if one side is empty)."""
    x = np.asarray(x, np.float64)
    neg, pos, sq = x < 0, x > 0, x**2
    with np.errstate(divide="ignore", invalid="ignore"):
        lstd, rstd = np.sqrt((sq * neg).sum(-1) / neg.sum(-1)), np.sqrt((sq * pos).sum(-1) / pos.sum(-1))
        g = lstd / rstd
        rhat = np.abs(x).mean(-1) ** 2 / sq.mean(-1)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        alpha = _GAM[np.argmin((_R_AGGD - np.asarray(rnorm)[..., None]) ** 2, -1)]  # all-NaN -> first, as MATLAB
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, lstd * k, rstd * k


def _mscn(im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blur = lambda a: ndimage.correlate1d(ndimage.correlate1d(a, _G7, 0, mode="nearest"), _G7, 1, mode="nearest")
    mu = blur(im)
    sigma = np.sqrt(np.abs(blur(im * im) - mu * mu))
    return (im - mu) / (sigma + 1), sigma


def _blocks(a: np.ndarray, b: int) -> np.ndarray:
    h, w = a.shape[0] // b, a.shape[1] // b
    return a[: h * b, : w * b].reshape(h, b, w, b).swapaxes(1, 2).reshape(h * w, b, b)


def _half_matrix(n: int) -> np.ndarray:
    """Matrix of MATLAB ``imresize(.., 0.5)`` (bicubic, antialiased, symmetric padding) along an axis of length n."""
    m, scale, width = -(-n // 2), 0.5, 8.0
    x = np.arange(1, m + 1)[:, None] / scale + 0.5 * (1 - 1 / scale)
    idx = np.floor(x - width / 2) + np.arange(int(width) + 2)  # 1-based, as imresize's contributions()
    t = np.abs(scale * (x - idx))
    w = scale * ((1.5 * t**3 - 2.5 * t**2 + 1) * (t <= 1)
                 + (-0.5 * t**3 + 2.5 * t**2 - 4 * t + 2) * ((t > 1) & (t <= 2)))  # Keys cubic, a = -0.5
    w /= w.sum(1, keepdims=True)
    aux = np.r_[np.arange(n), np.arange(n)[::-1]]
    mat = np.zeros((m, n))
    np.add.at(mat, (np.repeat(np.arange(m), idx.shape[1]), aux[np.mod(idx.astype(int) - 1, 2 * n)].ravel()), w.ravel())
    return mat


def _block_features(mscn: np.ndarray, b: int) -> np.ndarray:
    blk = _blocks(mscn, b)
    a, bl, br = estimate_aggd_param(blk.reshape(len(blk), -1))
    feats = [a, (bl + br) / 2]
    for s in _SHIFTS:  # circshift inside each block, as blkproc + computefeature
        a, bl, br = estimate_aggd_param((blk * np.roll(blk, s, axis=(1, 2))).reshape(len(blk), -1))
        feats += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
    return np.stack(feats, 1)


def _niqe_features(gray: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """36 features and the sharpness (mean local sigma) of each ``block`` x ``block`` block."""
    im = gray[: gray.shape[0] // block * block, : gray.shape[1] // block * block]
    mscn, sigma = _mscn(im)
    half = _half_matrix(im.shape[0]) @ im @ _half_matrix(im.shape[1]).T
    feats = np.hstack([_block_features(mscn, block), _block_features(_mscn(half)[0], block // 2)])
    return feats, _blocks(sigma, block).mean((1, 2))


def _mvg(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    full = f[np.isfinite(f).all(1)]
    if len(full) < 2:
        raise ValueError(f"only {len(full)} textured block(s) without NaN features: NIQE needs an image with texture")
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isfinite(f), f, np.nan), 0), np.cov(full, rowvar=False)


@dataclass
class NIQEModel:
    """Pristine multivariate Gaussian: ``mu`` (36,), ``cov`` (36, 36), ``meta`` (provenance, ``block``)."""

    mu: np.ndarray
    cov: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mu, self.cov = np.asarray(self.mu, np.float64).ravel(), np.asarray(self.cov, np.float64)
        if self.cov.shape != (self.mu.size, self.mu.size):
            raise ValueError(f"NIQE model: cov shape {self.cov.shape} does not match mu of length {self.mu.size}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as JSON (one covariance row per line)."""
        rows = ",\n  ".join(json.dumps(r) for r in self.cov.tolist())
        head = f'{{\n "meta": {json.dumps(self.meta)},\n "mu": {json.dumps(self.mu.tolist())},\n'
        Path(path).write_text(head + f' "cov": [\n  {rows}\n ]\n}}\n')
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NIQEModel:
        """Read a model written by :meth:`save`."""
        d = json.loads(Path(path).read_text())
        return cls(d["mu"], d["cov"], d.get("meta", {}))


def load_official_niqe_params(mat_path: str | os.PathLike) -> NIQEModel:
    """Read the authors' ``modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``)."""
    from scipy.io import loadmat

    d = loadmat(str(mat_path))
    missing = [k for k in ("mu_prisparam", "cov_prisparam") if k not in d]
    if missing:
        raise ValueError(f"{mat_path}: missing {', '.join(missing)}; expected the official NIQE modelparameters.mat")
    return NIQEModel(d["mu_prisparam"], d["cov_prisparam"], {"source": str(mat_path), "block": 96})


def fit_niqe_model(images: Iterable[Any], block: int = 96, sharpness_threshold: float = 0.75) -> NIQEModel:
    """Fit a pristine model (``estimatemodelparam.m``) on clean images: tensors/arrays in [0,1] or file paths."""
    from .io import read_image

    rows, n_img = [], 0
    for img in images:
        gray = _gray255(read_image(img) if isinstance(img, (str, os.PathLike)) else img)
        if min(gray.shape) < block:
            continue
        f, sharp = _niqe_features(gray, block)
        rows.append(f[sharp > sharpness_threshold * sharp.max()])
        n_img += 1
    if not rows:
        raise ValueError(f"no image has a {block}x{block} block: pass clean images of at least {block} px a side")
    f = np.vstack(rows)
    mu, cov = _mvg(f)
    return NIQEModel(mu, cov, {"block": block, "sharpness_threshold": sharpness_threshold, "n_images": n_img,
                               "n_blocks": len(f)})


@functools.lru_cache(maxsize=1)
def default_niqe_model() -> NIQEModel:
    """The bundled pristine model (``ttl/niqe_pristine.json``), fitted and written there if absent."""
    if DEFAULT_MODEL_PATH.is_file():
        return NIQEModel.load(DEFAULT_MODEL_PATH)
    from .config import folder_manifest
    from .scenes import bundled_photos

    paths = [p.path for p in bundled_photos()]
    model = fit_niqe_model(paths)
    model.meta.update(source="ttl.scenes.bundled_photos()", files=folder_manifest(paths),
                      note="small pristine set: compare NIQE only across versions of the same images")
    try:
        model.save(DEFAULT_MODEL_PATH)
    except OSError:  # read-only install: keep the in-memory model
        pass
    return model


def niqe(img: Any, model: NIQEModel | None = None) -> float:
    """NIQE of a ``(3,H,W)`` or ``(H,W)`` image in [0,1] (lower is better); sides must be >= 2 blocks (192 px)."""
    gray = _gray255(img)
    model = model or default_niqe_model()
    block = int(model.meta.get("block", 96))
    if min(gray.shape) < 2 * block:
        raise ValueError(f"NIQE needs at least {2 * block}x{2 * block} pixels (two {block}-px blocks a side), got "
                         f"{gray.shape[0]}x{gray.shape[1]}: upscale the image or skip it")
    mu, cov = _mvg(_niqe_features(gray, block)[0])
    d = model.mu - mu
    s = (model.cov + cov) / 2
    return float(np.sqrt(d @ np.linalg.pinv(s, rcond=max(s.shape) * np.finfo(float).eps) @ d))


def piqe(img: Any) -> float:
    """PIQE (MATLAB ``piqe``) of a ``(3,H,W)`` or ``(H,W)`` image in [0,1]: score in [0,100], lower is better."""
    gray = _gray255(img)
    gray = np.pad(gray, ((0, -gray.shape[0] % 16), (0, -gray.shape[1] % 16)), mode="edge")
    blk = _blocks(_mscn(gray)[0], 16)
    var = blk.reshape(-1, 256).var(1, ddof=1)
    active = var > 0.1
    blk, var = blk[active], var[active]
    edges = np.stack([blk[:, 0, :], blk[:, :, 15], blk[:, 15, :], blk[:, :, 0]], 1)
    impaired = (sliding_window_view(edges, 6, axis=-1).std(-1, ddof=1) < 0.1).any((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        csd = blk[:, :, 7:9].reshape(-1, 32).std(1, ddof=1) / np.delete(blk, [7, 9], 2).reshape(-1, 224).std(1, ddof=1)
        csd = np.where(np.isnan(csd), 0.0, csd)
        sig = np.sqrt(var)
        noisy = sig > 2 * np.abs(sig - csd) / np.maximum(sig, csd)
    dist = float((impaired * (1 - var) + noisy * var).sum())
    return float(np.clip((dist + 1) / (int(active.sum()) + 1) * 100, 0, 100))


def noref_scores(images: Iterable[Any], model: NIQEModel | None = None) -> dict[str, list[float]]:
    """NIQE and PIQE of each image: ``{"niqe": [...], "piqe": [...]}``."""
    model = model or default_niqe_model()
    out: dict[str, list[float]] = {"niqe": [], "piqe": []}
    for img in images:
        out["niqe"].append(niqe(img, model))
        out["piqe"].append(piqe(img))
    return out
