from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.io import savemat
from scipy.stats import gennorm

from ttl import noref
from ttl.io import read_image
from ttl.scenes import bundled_photos


@pytest.fixture(scope="module")
def versions() -> dict[str, np.ndarray]:
    """A 256x256 crop of a bundled photograph, blurred (sigma 2) and noisy (sigma 0.05) versions."""
    photo = next(p for p in bundled_photos() if p.name == "astronaut")
    img = read_image(photo.path).double().numpy()
    h, w = img.shape[1:]
    crop = img[:, (h - 256) // 2:(h - 256) // 2 + 256, (w - 256) // 2:(w - 256) // 2 + 256]
    blur = np.stack([ndimage.gaussian_filter(c, 2) for c in crop])
    noise = np.clip(crop + np.random.default_rng(0).normal(0, 0.05, crop.shape), 0, 1)
    return {"original": crop, "blur": blur, "noise": noise}


def test_scores_worsen_with_blur_and_noise(versions):
    s = noref.noref_scores(versions.values())
    print({k: dict(zip(versions, np.round(v, 2))) for k, v in s.items()})
    for name in ("niqe", "piqe"):
        orig, blur, noise = s[name]
        assert orig < blur and orig < noise, (name, s[name])
        assert all(np.isfinite(s[name]))
    assert all(0 <= v <= 100 for v in s["piqe"])


def test_deterministic_and_input_types(versions):
    img = versions["original"]
    t = torch.from_numpy(img).float()
    assert noref.niqe(img) == noref.niqe(img.copy()) == noref.niqe(t)
    assert noref.piqe(img) == noref.piqe(img.copy()) == noref.piqe(t)
    gray = img.mean(0)  # (H, W) and (1, H, W) are both grayscale
    assert noref.niqe(gray) == noref.niqe(gray[None])
    assert noref.piqe(np.full((3, 40, 40), 0.5)) == 100.0  # uniform image: worst score, as MATLAB


def test_default_model_file():
    model = noref.default_niqe_model()
    assert noref.DEFAULT_MODEL_PATH.is_file()
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36)
    assert np.allclose(model.cov, model.cov.T)
    meta = json.loads(noref.DEFAULT_MODEL_PATH.read_text())["meta"]
    assert meta["block"] == 96 and meta["sharpness_threshold"] == 0.75 and meta["n_blocks"] >= 2
    assert {f["file"] for f in meta["files"]} == {p.path.name for p in bundled_photos()}
    assert all(len(f["sha256"]) == 64 for f in meta["files"])


def test_model_json_roundtrip(tmp_path, versions):
    images = [versions["original"], torch.from_numpy(versions["noise"])]
    model = noref.fit_niqe_model(images, sharpness_threshold=0.0)
    assert model.meta["n_blocks"] == 8  # 2x2 blocks of 96 px per 256-px image, all kept at threshold 0
    assert noref.fit_niqe_model(images).meta["n_blocks"] < 8
    back = noref.NIQEModel.load(model.save(tmp_path / "m.json"))
    assert np.array_equal(back.mu, model.mu) and np.array_equal(back.cov, model.cov) and back.meta == model.meta
    assert noref.niqe(versions["blur"], back) == noref.niqe(versions["blur"], model)


def test_load_official_params(tmp_path, versions):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(36, 36))
    mu, cov = rng.normal(size=(1, 36)), a @ a.T
    savemat(tmp_path / "modelparameters.mat", {"mu_prisparam": mu, "cov_prisparam": cov})
    model = noref.load_official_niqe_params(tmp_path / "modelparameters.mat")
    assert np.allclose(model.mu, mu.ravel()) and np.allclose(model.cov, cov)
    assert np.isfinite(noref.niqe(versions["original"], model))
    savemat(tmp_path / "other.mat", {"something": mu})
    with pytest.raises(ValueError, match=r"other\.mat.*mu_prisparam"):
        noref.load_official_niqe_params(tmp_path / "other.mat")


@pytest.mark.parametrize("fn", [noref.niqe, noref.piqe])
def test_bad_inputs(fn):
    ok = np.full((3, 256, 256), 0.5)
    bad_nan = ok.copy()
    bad_nan[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(bad_nan)
    with pytest.raises(ValueError, match=r"\[0,1\].*255"):
        fn(ok * 255)
    with pytest.raises(ValueError, match="transpose"):
        fn(np.moveaxis(ok, 0, -1))
    with pytest.raises(ValueError, match="shape"):
        fn(torch.zeros(1, 3, 256, 256))


def test_niqe_too_small(versions):
    with pytest.raises(ValueError, match="192x192.*upscale"):
        noref.niqe(versions["original"][:, :150, :])


@pytest.mark.parametrize("beta", [0.6, 1.0, 2.0, 3.0])
def test_ggd_estimator(beta):
    x = gennorm.rvs(beta, scale=0.7, size=100_000, random_state=0)
    shape, sigma = noref.estimate_ggd_param(x)
    assert shape == pytest.approx(beta, rel=0.05)
    assert sigma == pytest.approx(gennorm.std(beta, scale=0.7), rel=0.02)


@pytest.mark.parametrize("beta", [0.8, 2.0])
def test_aggd_estimator(beta):
    x = gennorm.rvs(beta, scale=0.7, size=100_000, random_state=1)
    alpha, bl, br = noref.estimate_aggd_param(x)  # symmetric: both sides share the scale
    assert alpha == pytest.approx(beta, rel=0.05)
    assert bl == pytest.approx(0.7, rel=0.03) and br == pytest.approx(0.7, rel=0.03)
    left = np.random.default_rng(2).random(x.size) < 1 / 3  # AGGD, beta_l = beta_r / 2: a third of the mass left
    alpha, bl, br = noref.estimate_aggd_param(np.where(left, -0.5, 1.0) * np.abs(x))
    assert alpha == pytest.approx(beta, rel=0.05) and bl / br == pytest.approx(0.5, rel=0.03)


def test_default_model_refits_when_missing(tmp_path, monkeypatch):
    shipped = noref.default_niqe_model()
    monkeypatch.setattr(noref, "DEFAULT_MODEL_PATH", tmp_path / "niqe_pristine.json")
    noref.default_niqe_model.cache_clear()
    try:
        fitted = noref.default_niqe_model()
    finally:
        noref.default_niqe_model.cache_clear()
    assert (tmp_path / "niqe_pristine.json").is_file()
    assert np.allclose(fitted.mu, shipped.mu) and np.allclose(fitted.cov, shipped.cov)
    assert fitted.meta == shipped.meta
