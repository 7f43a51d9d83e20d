"""Two rain renderers and the rain-scattering degradation.

Both renderers take clean images ``(B,3,H,W)`` in ``[0,1]`` and return a :class:`RainSample` with the rainy
image, the clean image, the rain layer (``rainy - clean``) and the parameters drawn for every image. All
randomness comes from an explicit :class:`torch.Generator`, so a seed fixes the output. Work is vectorised
over the batch with torch (streaks are integrated along a per-pixel direction field with ``grid_sample``).

* :class:`SyntheticRain` — the "Photoshop" recipe behind Rain100L/H and Rain1400: sparse noise, threshold,
  a small blur, a motion blur along one dominant direction, scaling, screen (or additive) blend and clip.
  Presets ``"light"`` and ``"heavy"`` (several directions), calibrated by ``ttl calibrate --what synthetic`` on
  the exact rain layers of public *training* pairs (``ttl/calibration_synthetic.json``; light on the fit
  part of the Rain13K sample, heavy on Rain200H's); the hand-set starting points are :data:`SYNTHETIC_DEFAULTS`.
* :class:`RealisticRain` — our stand-in for real rain, built from what is known about real rain and
  calibrated against real photographs (``ttl.calibrate``): several depth layers with perspective (near
  streaks long, wide, defocused, translucent; far ones thin and faint) that scene objects occlude, a spatially
  varying wind direction, streak radiance taken from the environment and composited with alpha,
  veiling/accumulation ``I = J·t + A·(1−t)`` with ``t = exp(−β·depth)``, forward-scattering blur and glow,
  exposure time setting streak length, Poisson–Gaussian sensor noise in linear light, the camera's tone curve,
  and JPEG compression. It returns two ground truths, both **for evaluation only** (training code for the real
  domain uses :class:`ttl.datasets.RealDomainUnlabeled`, which cannot return them): the clean scene, and
  ``streak_free`` — the same rendering with the streak layers removed (veil, glow, tone curve and JPEG kept,
  sensor noise off), the analogue of SPA-Data's ground truth (a temporal median of the rainy video).
* :func:`rain_scattering` — the scattering part alone (veiling, forward-scattering blur, glow): the
  degradation of notebook 02's second teacher.

Ranges ``(lo, hi)`` in the configs are sampled uniformly per image; a single number fixes the value.
"""
from __future__ import annotations

import copy
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imageops import gaussian_blur
from .scenes import heuristic_depth

Range = Union[float, tuple[float, float]]

__all__ = ["SyntheticRainConfig", "RealisticRainConfig", "ScatteringConfig", "SyntheticRain", "RealisticRain",
           "RainSample", "rain_scattering", "render_streaks", "jpeg_compress", "SYNTHETIC_DEFAULTS",
           "synthetic_preset", "SYNTHETIC_CALIBRATION_FILE",
           "calibrated_realistic_config", "calibration_digests", "layer_geometry"]


@dataclass
class RainSample:
    """What a renderer returns. ``params`` maps each parameter name to a per-image tensor; ``streak_free`` (realistic
    rain only) is the rendering without its streaks, the deraining target of the realistic domain."""

    rainy: torch.Tensor
    clean: torch.Tensor
    rain_layer: torch.Tensor
    params: dict[str, torch.Tensor]
    streak_free: torch.Tensor | None = None
    # realistic rain with ``noisy_target=True``: the streak-free rendering through the same sensor noise as ``rainy``
    # (the output of a deraining that removes the rain and nothing else)
    streak_free_noisy: torch.Tensor | None = None


def _draw(r: Range, n: int, g: torch.Generator, log: bool = False) -> torch.Tensor:
    if isinstance(r, (int, float)):
        return torch.full((n,), float(r))
    lo, hi = float(r[0]), float(r[1])
    u = torch.rand(n, generator=g)
    if log and lo > 0:
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


# ----------------------------------------------------------------------------------------------- streaks
def render_streaks(seeds: torch.Tensor, angle: torch.Tensor, length: torch.Tensor, width: torch.Tensor,
                   margin: int, taper: float = 0.0) -> torch.Tensor:
    """Integrate point seeds into streaks along a per-pixel direction.

    ``seeds`` (B,1,H+2m,W+2m): seed brightness on a canvas padded by ``margin`` on every side (so streaks may
    enter from outside the frame); ``angle`` (B,1,H,W) or (B,): direction from vertical in radians; ``length``
    and ``width`` (B,): streak length in px and Gaussian cross-section sigma in px. ``taper`` in [0,1] fades the
    streak's two ends (real streaks fade; the Photoshop motion blur does not). Returns (B,1,H,W), where a
    single streak's body has about its seed's brightness.
    """
    b, _, hp, wp = seeds.shape
    h, w = hp - 2 * margin, wp - 2 * margin
    dev = seeds.device
    # Gaussian cross-section normalised to peak 1, per image (grouped conv)
    smax = float(width.max())
    r = max(1, int(math.ceil(3 * smax)))
    x = torch.arange(-r, r + 1, device=dev, dtype=torch.float32)
    k1 = torch.exp(-0.5 * (x[None] / width.to(dev)[:, None].clamp(min=0.3)) ** 2)  # (B,K)
    s = seeds.reshape(1, b, hp, wp)
    s = F.conv2d(s, k1.view(b, 1, 1, -1), padding=(0, r), groups=b)
    s = F.conv2d(s, k1.view(b, 1, -1, 1), padding=(r, 0), groups=b).view(b, 1, hp, wp)
    if angle.ndim == 1:
        angle = angle.view(b, 1, 1, 1).expand(b, 1, h, w)
    # sample positions: pixel centres of the inner frame in the padded canvas, normalised to [-1, 1]
    ys = (torch.arange(h, device=dev, dtype=torch.float32) + margin + 0.5) / hp * 2 - 1
    xs = (torch.arange(w, device=dev, dtype=torch.float32) + margin + 0.5) / wp * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy], -1)[None].expand(b, h, w, 2)
    step = torch.stack([torch.sin(angle[:, 0]) * 2 / wp, torch.cos(angle[:, 0]) * 2 / hp], -1)  # (B,h,w,2) per px
    length = length.to(dev).clamp(min=1.0)
    lmax = float(length.max())
    n = int(math.ceil(lmax)) + 1
    offsets = torch.linspace(-lmax / 2, lmax / 2, n, device=dev)
    spacing = lmax / max(n - 1, 1)
    out = torch.zeros(b, 1, h, w, device=dev)
    norm = math.sqrt(2 * math.pi) * width.to(dev).clamp(min=0.3)  # line integral across a unit-peak Gaussian
    for o in offsets:
        rel = (o.abs() / (length / 2)).clamp(max=2)  # position along each image's streak, 0 at the centre
        wgt = (rel <= 1).float()
        if taper > 0:
            wgt = wgt * (1 - taper * rel.clamp(max=1) ** 2)
        if not bool(wgt.any()):
            continue
        smp = F.grid_sample(s, base + o * step, mode="bilinear", padding_mode="zeros", align_corners=False)
        out += smp * (wgt * spacing / norm).view(b, 1, 1, 1)
    return out


def _streak_area(scale: float) -> float:
    """How much a streak's area grows at ``scale`` (length x scale, width x max(scale, 0.5)): the renderers divide their
    seed density by it, so that the share of the image under rain is the one calibrated at 256 px at any size."""
    return scale * max(scale, 0.5)


def _seed_canvas(b: int, h: int, w: int, margin: int, density: torch.Tensor, g: torch.Generator,
                 brightness: tuple[float, float] = (0.5, 1.0)) -> torch.Tensor:
    """Sparse seeds: each pixel of the padded canvas is a seed with probability ``density`` (per image)."""
    hp, wp = h + 2 * margin, w + 2 * margin
    u = torch.rand(b, 1, hp, wp, generator=g)
    v = torch.rand(b, 1, hp, wp, generator=g)
    keep = u < density.view(b, 1, 1, 1)
    return keep * (brightness[0] + (brightness[1] - brightness[0]) * v)


# --------------------------------------------------------------------------------------- synthetic rain
@dataclass
class SyntheticRainConfig:
    """The Photoshop-style recipe (Rain100L/H, Rain1400). Lengths and widths are in px at a 256-px image and
    scale with the image's short side."""

    layers: Union[int, tuple[int, int]] = 1  # number of streak layers (each with its own direction)
    density: Range = (0.002, 0.008)  # fraction of noise pixels that pass the threshold
    length: Range = (10.0, 24.0)  # motion-blur distance
    width: Range = (0.5, 0.9)  # blur before the motion blur (streak thickness, sigma)
    angle: Range = (-20.0, 20.0)  # dominant direction from vertical, degrees
    layer_spread: float = 4.0  # extra direction offset between layers, degrees (uniform +-)
    jitter: float = 2.0  # direction jitter between streaks of one layer, degrees (uniform +-)
    intensity: Range = (0.55, 0.9)  # streak brightness
    blend: str = "screen"  # "screen" or "add" (add then clip)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SyntheticRainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown synthetic-rain settings {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# the hand-set recipes (Rain100L-like light rain, Rain100H-like heavy rain): where the calibration starts
SYNTHETIC_DEFAULTS: dict[str, SyntheticRainConfig] = {
    "light": SyntheticRainConfig(),
    "heavy": SyntheticRainConfig(layers=(2, 4), density=(0.002, 0.005), length=(18.0, 40.0), width=(0.6, 1.1),
                                 layer_spread=25.0, intensity=(0.55, 0.85)),
}
SYNTHETIC_CALIBRATION_FILE = Path(__file__).with_name("calibration_synthetic.json")


def synthetic_preset(name: str, calibrated: bool = True) -> SyntheticRainConfig:
    """The ``light`` or ``heavy`` recipe: as calibrated on public training pairs (``ttl calibrate --what synthetic``,
    ``ttl/calibration_synthetic.json``) when that record exists and ``calibrated``, else the hand-set default."""
    if name not in SYNTHETIC_DEFAULTS:
        raise ValueError(f"unknown synthetic rain preset {name!r}; valid: {', '.join(SYNTHETIC_DEFAULTS)}")
    if calibrated and SYNTHETIC_CALIBRATION_FILE.is_file():
        rec = json.loads(SYNTHETIC_CALIBRATION_FILE.read_text())
        if name in rec:
            return SyntheticRainConfig.from_dict(rec[name]["config"])
    return copy.deepcopy(SYNTHETIC_DEFAULTS[name])


def widened(config: SyntheticRainConfig, tilt: float) -> SyntheticRainConfig:
    """``config`` with its dominant streak direction drawn from at least ``-tilt`` .. ``+tilt`` degrees from vertical
    (a training-data widening: the calibrated presets fit the public sets' *average* tilt, while single public images
    tilt their rain by up to about 45 degrees, and a network trained on near-vertical rain leaves such rain alone)."""
    if tilt < 0:
        raise ValueError(f"tilt={tilt} degrees; give 0 (the preset's own range) or a positive half-range")
    lo, hi = (config.angle, config.angle) if isinstance(config.angle, (int, float)) else config.angle
    out = copy.deepcopy(config)
    out.angle = (min(float(lo), -float(tilt)), max(float(hi), float(tilt)))
    return out


class SyntheticRain:
    """Photoshop-style rain. ``SyntheticRain("light")``, ``SyntheticRain("heavy")`` (calibrated presets, see
    :func:`synthetic_preset`) or a :class:`SyntheticRainConfig`."""

    def __init__(self, config: Union[str, SyntheticRainConfig] = "light"):
        if isinstance(config, str):
            config = synthetic_preset(config)
        if config.blend not in ("screen", "add"):
            raise ValueError(f"blend={config.blend!r}; valid: 'screen', 'add'")
        self.config = config

    @torch.no_grad()
    def __call__(self, clean: torch.Tensor, g: torch.Generator, scale: float | None = None) -> RainSample:
        """Rain on ``clean`` (B,3,H,W). Streak sizes are set for a 256-px image and scaled by ``scale`` (default:
        the short side / 256; pass the size of the photograph a crop was cut from, so that rain on a crop looks like
        rain on the whole photograph); seeds thin out as streaks grow, so the rain's strength (its PSNR, its
        brightening) does not depend on the size it is rendered at."""
        c = self.config
        b, _, h, w = clean.shape
        scale = min(h, w) / 256 if scale is None else scale
        nl = c.layers if isinstance(c.layers, int) else None
        n_layers = torch.full((b,), nl) if nl else torch.randint(c.layers[0], c.layers[1] + 1, (b,), generator=g)
        base_angle = _draw(c.angle, b, g)
        rain = torch.zeros(b, 1, h, w)
        params: dict[str, Any] = {"layers": n_layers, "angle": base_angle}
        lengths, densities = [], []
        for k in range(int(n_layers.max())):
            active = (k < n_layers).float()
            dens = _draw(c.density, b, g) * active * (1.0 / _streak_area(scale))
            length = _draw(c.length, b, g) * scale
            width = _draw(c.width, b, g) * max(scale, 0.5)
            ang = base_angle + (torch.rand(b, generator=g) * 2 - 1) * c.layer_spread * (k > 0)
            margin = int(math.ceil(float(length.max()) / 2)) + 4
            seeds = _seed_canvas(b, h, w, margin, dens, g)
            angle_field = torch.deg2rad(ang).view(b, 1, 1, 1).expand(b, 1, h, w)
            if c.jitter > 0:  # a smooth, small direction jitter (streaks of a layer are nearly parallel)
                noise = F.interpolate(torch.rand(b, 1, 4, 4, generator=g) * 2 - 1, size=(h, w), mode="bicubic",
                                      align_corners=False)
                angle_field = angle_field + math.radians(c.jitter) * noise
            rain = rain + render_streaks(seeds, angle_field, length, width, margin)
            lengths.append(length)
            densities.append(dens)
        intensity = _draw(c.intensity, b, g)
        rain = (rain * intensity.view(b, 1, 1, 1)).clamp(0, 1)
        r3 = rain.expand(b, 3, h, w)
        rainy = 1 - (1 - clean) * (1 - r3) if c.blend == "screen" else (clean + r3)
        rainy = rainy.clamp(0, 1)
        params.update({"length": torch.stack(lengths, 1), "density": torch.stack(densities, 1),
                       "intensity": intensity})
        return RainSample(rainy, clean, rainy - clean, params)


# ------------------------------------------------------------------------------------------- scattering
@dataclass
class ScatteringConfig:
    """Rain scattering: veiling (accumulation), forward-scattering blur and glow, in linear light."""

    beta: Range = (0.2, 1.0)  # extinction: t = exp(-beta * depth)
    airlight: Range = (0.65, 0.95)  # atmospheric light A (gray level, sRGB)
    airlight_tint: Range = (0.0, 0.06)  # blue shift of A
    forward_blur: Range = (0.5, 2.5)  # sigma (px at 256) of forward scattering, weighted by 1 - t
    glow: Range = (0.0, 0.35)  # strength of the halo around bright sources
    glow_sigma: float = 6.0  # px at 256
    glow_threshold: float = 0.75
    crf_gamma: Range = (2.0, 2.4)  # camera tone curve y = x^(1/gamma) (inverted before, re-applied after)


def _crf(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    return x.clamp(min=0).pow(1.0 / gamma.view(-1, 1, 1, 1))


def _crf_inv(y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    return y.clamp(min=0).pow(gamma.view(-1, 1, 1, 1))


def _scatter_linear(j_lin: torch.Tensor, depth: torch.Tensor, c: ScatteringConfig, g: torch.Generator,
                    gamma: torch.Tensor, scale: float | None = None
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    b, _, h, w = j_lin.shape
    scale = min(h, w) / 256 if scale is None else scale
    beta = _draw(c.beta, b, g)
    a_gray = _draw(c.airlight, b, g)
    tint = _draw(c.airlight_tint, b, g)
    a_srgb = torch.stack([a_gray - tint, a_gray, a_gray + tint], 1).clamp(0, 1)
    a_lin = _crf_inv(a_srgb.view(b, 3, 1, 1), gamma)
    t = torch.exp(-beta.view(b, 1, 1, 1) * depth)
    # forward scattering: light from neighbours scattered into the line of sight (more when more medium)
    fs = _draw(c.forward_blur, b, g) * scale
    blurred = torch.stack([gaussian_blur(j_lin[i:i + 1], max(float(fs[i]), 0.3))[0] for i in range(b)])
    mixed = t * j_lin + (1 - t) * blurred
    # glow: a wide halo around bright sources, stronger through more medium
    gl = _draw(c.glow, b, g)
    bright = (j_lin - _crf_inv(torch.tensor(c.glow_threshold), gamma).view(b, 1, 1, 1)).clamp(min=0)
    halo = gaussian_blur(bright, c.glow_sigma * max(scale, 0.25))
    mixed = mixed + gl.view(b, 1, 1, 1) * halo * (1 - t)
    out = mixed * t + a_lin * (1 - t)
    params = {"beta": beta, "airlight": a_gray, "airlight_tint": tint, "forward_blur": fs, "glow": gl}
    return out, params, a_lin


@torch.no_grad()
def rain_scattering(clean: torch.Tensor, depth: torch.Tensor | None, g: torch.Generator,
                    config: ScatteringConfig | None = None, scale: float | None = None) -> RainSample:
    """Degrade ``clean`` by rain scattering only (veiling, forward-scattering blur, glow), no streaks or noise.

    ``depth`` (B,1,H,W) in [0,1]; ``None`` uses :func:`ttl.scenes.heuristic_depth`. Returns a
    :class:`RainSample` whose ``rainy`` is the degraded image."""
    c = config or ScatteringConfig()
    b = clean.shape[0]
    depth = heuristic_depth(clean) if depth is None else depth
    gamma = _draw(c.crf_gamma, b, g)
    out, params, _ = _scatter_linear(_crf_inv(clean, gamma), depth, c, g, gamma, scale)
    rainy = _crf(out, gamma).clamp(0, 1)
    params["crf_gamma"] = gamma
    return RainSample(rainy, clean, rainy - clean, params)


# ------------------------------------------------------------------------------------------ realistic rain
@dataclass
class RealisticRainConfig:
    """Physically motivated rain. Lengths/widths are px at a 256-px image (they scale with the image)."""

    layer_depth: tuple[float, ...] = (0.12, 0.3, 0.65)  # depth of each layer of drops (0 camera, 1 far)
    density: Range = (0.0015, 0.006)  # seeds per px of the nearest layer; a layer at depth d has density*(d/d0)
    length: Range = (25.0, 60.0)  # streak length of the nearest layer; a layer at depth d has length*d0/d
    exposure: Range = (0.6, 1.4)  # exposure time, multiplies every length
    width: Range = (0.9, 1.8)  # cross-section sigma of the nearest layer; width*d0/d, at least 0.35
    defocus: Range = (0.5, 2.0)  # extra blur sigma of the nearest layer (out of focus), fading to 0 at focus
    focus_depth: float = 0.35  # layers at or beyond this depth are in focus
    opacity: Range = (0.25, 0.7)  # alpha of the nearest layer's streak body (near drops are translucent)
    far_opacity: Range = (0.15, 0.4)  # alpha of the farthest layer (thin, faint)
    taper: float = 0.6  # fade at streak ends
    wind_angle: Range = (-25.0, 25.0)  # mean direction from vertical, degrees
    wind_variation: Range = (4.0, 14.0)  # amplitude of the spatially varying direction, degrees
    wind_scale: int = 3  # the direction field varies over about image_size / wind_scale
    radiance_env: Range = (0.35, 0.75)  # share of environment light (vs airlight) in streak radiance
    radiance_gain: Range = (1.0, 1.6)  # streaks are brighter than what they refract
    scattering: ScatteringConfig = field(default_factory=ScatteringConfig)
    noise_poisson: Range = (2e-4, 3e-3)  # shot-noise variance per unit of linear signal
    noise_gauss: Range = (0.002, 0.012)  # read-noise sigma (linear)
    jpeg_quality: Union[Range, None] = (55.0, 90.0)  # None disables compression

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RealisticRainConfig":
        d = dict(d)
        if "scattering" in d and isinstance(d["scattering"], dict):
            d["scattering"] = ScatteringConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in d["scattering"].items()})
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown realistic-rain settings {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


def calibrated_realistic_config() -> RealisticRainConfig:
    """The realistic renderer's config as calibrated by ``ttl calibrate`` (``ttl/calibration.json``);
    the plain defaults when no calibration has been saved."""
    if CALIBRATION_FILE.is_file():
        data = json.loads(CALIBRATION_FILE.read_text())
        return RealisticRainConfig.from_dict(data["config"])
    return RealisticRainConfig()


def calibration_digests() -> set[str] | None:
    """SHA-256 digests of the photographs the shipped calibration used (``None`` if there is none)."""
    if not CALIBRATION_FILE.is_file():
        return None
    return {f["sha256"] for f in json.loads(CALIBRATION_FILE.read_text())["calibration_files"]}


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG round trip of each image (B,3,H,W) at its own quality (4:2:0 chroma, as cameras and the web do)."""
    out = []
    for img, q in zip(x, quality):
        arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(round(float(q))), subsampling=2)
        buf.seek(0)
        out.append(torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def layer_geometry(c: "RealisticRainConfig", d: float, len0: torch.Tensor, wid0: torch.Tensor, defoc0: torch.Tensor,
                   dens0: torch.Tensor, op_near: torch.Tensor, op_far: torch.Tensor):
    """Perspective of a layer of drops at depth ``d`` given the nearest layer's values (per image):
    ``(length, width, density, alpha)``. Length and width shrink as ``d0/d``; defocus fades to zero at
    ``focus_depth``; density grows as ``d/d0`` (more volume per pixel); alpha goes from ``op_near`` to
    ``op_far``."""
    d0, dmax = c.layer_depth[0], max(c.layer_depth)
    ratio = d0 / d
    length = (len0 * ratio).clamp(min=2.0)
    defocus = defoc0 * max(0.0, 1 - d / c.focus_depth) / max(1e-6, 1 - d0 / c.focus_depth)
    width = torch.sqrt((wid0 * ratio).clamp(min=0.35) ** 2 + defocus ** 2)
    frac = 0.0 if dmax == d0 else (d - d0) / (dmax - d0)
    return length, width, dens0 * (d / d0), op_near + (op_far - op_near) * frac


class RealisticRain:
    """Realistic rain (see the module doc). ``RealisticRain()`` uses the calibrated config."""

    def __init__(self, config: RealisticRainConfig | None = None):
        self.config = config or calibrated_realistic_config()

    @torch.no_grad()
    def __call__(self, clean: torch.Tensor, g: torch.Generator, depth: torch.Tensor | None = None,
                 scale: float | None = None, noisy_target: bool = False) -> RainSample:
        """Rain on ``clean`` (B,3,H,W) with ``depth`` (B,1,H,W; default :func:`ttl.scenes.heuristic_depth`).
        ``scale`` as in :meth:`SyntheticRain.__call__`. ``noisy_target``: also return ``streak_free_noisy``, the
        streak-free rendering with the very noise draw of ``rainy`` (the random stream, hence ``rainy``, unchanged)."""
        c = self.config
        b, _, h, w = clean.shape
        scale = min(h, w) / 256 if scale is None else scale
        depth = heuristic_depth(clean) if depth is None else depth
        gamma = _draw(c.scattering.crf_gamma, b, g)
        j_lin = _crf_inv(clean, gamma)
        img, params, a_lin = _scatter_linear(j_lin, depth, c.scattering, g, gamma, scale)
        params["crf_gamma"] = gamma
        veiled = img  # the scene through the rain's atmosphere, before any streak: the streak-free target

        # wind: a smooth direction field around a mean direction
        mean_angle = _draw(c.wind_angle, b, g)
        variation = _draw(c.wind_variation, b, g)
        coarse = torch.rand(b, 1, c.wind_scale + 1, c.wind_scale + 1, generator=g) * 2 - 1
        field_ = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).clamp(-1, 1)
        angle = torch.deg2rad(mean_angle.view(b, 1, 1, 1) + variation.view(b, 1, 1, 1) * field_)

        # streak radiance: refracted environment light (a very blurred view of the scene) mixed with airlight
        env = F.interpolate(F.avg_pool2d(img, kernel_size=max(1, min(h, w) // 8)), size=(h, w), mode="bilinear",
                            align_corners=False)
        env_share = _draw(c.radiance_env, b, g).clamp(0, 1).view(b, 1, 1, 1)
        gain = _draw(c.radiance_gain, b, g).view(b, 1, 1, 1)
        radiance = (gain * (env_share * env + (1 - env_share) * a_lin)).clamp(0, 1.5)

        dens0 = _draw(c.density, b, g, log=True) / _streak_area(scale)  # as in SyntheticRain: size-free
        len0 = _draw(c.length, b, g) * _draw(c.exposure, b, g) * scale
        wid0 = _draw(c.width, b, g) * max(scale, 0.5)
        defoc0 = _draw(c.defocus, b, g) * max(scale, 0.5)
        op_near = _draw(c.opacity, b, g)
        op_far = _draw(c.far_opacity, b, g)
        for d in sorted(c.layer_depth, reverse=True):  # far to near
            length, width, dens, alpha = layer_geometry(c, d, len0, wid0, defoc0, dens0, op_near, op_far)
            margin = int(math.ceil(float(length.max()) / 2)) + 4
            seeds = _seed_canvas(b, h, w, margin, dens, g)
            cov = render_streaks(seeds, angle, length, width, margin, taper=c.taper)
            # blur spreads a defocused streak: keep its energy, so its peak (and opacity) drops
            cov = (cov * alpha.view(b, 1, 1, 1)).clamp(0, 1)
            visible = torch.sigmoid((depth - d) / 0.03)  # drops behind a scene surface are hidden
            cov = cov * visible
            img = img * (1 - cov) + radiance * cov
        params.update({"wind_angle": mean_angle, "wind_variation": variation, "density": dens0 * _streak_area(scale),
                       "length": len0, "width": wid0, "defocus": defoc0, "opacity": op_near,
                       "far_opacity": op_far})

        # sensor: Poisson-Gaussian noise in linear light, then the tone curve, then JPEG
        pa = _draw(c.noise_poisson, b, g, log=True).view(b, 1, 1, 1)
        pb = _draw(c.noise_gauss, b, g, log=True).view(b, 1, 1, 1)
        sigma = torch.sqrt(pa * img.clamp(min=0) + pb ** 2)
        eps = torch.randn(img.shape, generator=g)
        img = img + sigma * eps
        rainy = _crf(img.clamp(0, 1), gamma).clamp(0, 1)
        streak_free = _crf(veiled.clamp(0, 1), gamma).clamp(0, 1)
        noisy = None
        if noisy_target:  # the same noise draw, at the noise level of the streak-free signal
            v = veiled.clamp(min=0)
            noisy = _crf((v + torch.sqrt(pa * v + pb ** 2) * eps).clamp(0, 1), gamma).clamp(0, 1)
        params.update({"noise_poisson": pa.view(b), "noise_gauss": pb.view(b)})
        if c.jpeg_quality is not None:
            q = _draw(c.jpeg_quality, b, g)
            rainy, streak_free = jpeg_compress(rainy, q), jpeg_compress(streak_free, q)
            noisy = None if noisy is None else jpeg_compress(noisy, q)
            params["jpeg_quality"] = q
        return RainSample(rainy, clean, rainy - clean, params, streak_free=streak_free, streak_free_noisy=noisy)
