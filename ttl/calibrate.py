"""Calibrate the realistic rain renderer against real rainy photographs.

The objective is the mean, over the gap statistics of :mod:`ttl.gap`, of the standardised 1-Wasserstein
distance between realistic renders (bundled photographs + realistic rain) and the *calibration half* of the
real photographs (each distance capped at 5 so that one statistic cannot dominate). The search is a simple
(1+λ) evolution strategy on log-scale factors applied to the renderer's parameter ranges, with common random
numbers (the same crops and seeds for every candidate), so that differences between candidates are not noise.

The other half of the photographs is never looked at here: notebook 01 and the tests measure the calibrated
renderer on it. The result (config, search trace, file digests of both halves) is written to
``ttl/calibration.json``, which :func:`ttl.rain.calibrated_realistic_config` reads.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import file_digest, write_json
from .gap import STATISTICS, load_real, real_split, render_domains, statistics_frame
from .io import list_images
from .rain import CALIBRATION_FILE, RealisticRain, RealisticRainConfig
from .stats import wasserstein_distance_ci

# (field, kind, lower, upper): "scale" multiplies both ends of a range, "shift" adds to both; nested
# "scattering.x". The bounds are physical priors, not only search limits: falling drops are streaks many times
# longer than wide within a camera's exposure, so length, width and defocus may move only so far; without
# these bounds the summary statistics (which also see scene texture) pull near streaks towards round blobs.
SEARCH_SPACE: list[tuple[str, str, float, float]] = [
    ("density", "scale", 0.2, 5.0),
    ("length", "scale", 0.6, 2.5),
    ("width", "scale", 0.6, 1.4),
    ("defocus", "scale", 0.3, 1.5),
    ("opacity", "scale", 0.2, 3.0),
    ("far_opacity", "scale", 0.2, 3.0),
    ("wind_variation", "scale", 0.4, 2.5),
    ("wind_angle", "scale", 0.3, 2.0),
    ("radiance_gain", "scale", 0.6, 1.8),
    ("radiance_env", "scale", 0.5, 2.0),
    ("scattering.beta", "scale", 0.2, 3.0),
    ("scattering.airlight", "scale", 0.7, 1.1),
    ("scattering.forward_blur", "scale", 0.3, 3.0),
    ("scattering.glow", "scale", 0.2, 3.0),
    ("noise_poisson", "scale", 0.1, 10.0),
    ("noise_gauss", "scale", 0.1, 10.0),
    ("jpeg_quality", "shift", -25.0, 8.0),
]


def _apply(base: RealisticRainConfig, factors: dict[str, float]) -> RealisticRainConfig:
    cfg = copy.deepcopy(base)
    for name, kind, _, _ in SEARCH_SPACE:
        f = factors.get(name)
        if f is None:
            continue
        obj, attr = (cfg.scattering, name.split(".")[1]) if name.startswith("scattering.") else (cfg, name)
        val = getattr(obj, attr)
        if kind == "scale":
            new = tuple(float(v) * f for v in val) if isinstance(val, tuple) else float(val) * f
        else:
            new = tuple(min(98.0, max(10.0, float(v) + f)) for v in val)
        if attr in ("airlight",):
            new = tuple(min(1.0, v) for v in new)
        setattr(obj, attr, new)
    return cfg


def calibration_objective(cfg: RealisticRainConfig, real_frame, size: int, n: int, seed: int) -> tuple[float, dict]:
    """Mean capped standardised W1 distance of realistic renders under ``cfg`` to ``real_frame``."""
    doms = render_domains(n, size, seed, realistic=RealisticRain(cfg))
    frame, _ = statistics_frame(doms["realistic"], "realistic")
    per = {}
    for s in STATISTICS:
        d, _, _ = wasserstein_distance_ci(frame[s].to_numpy(), real_frame[s].to_numpy(), n_boot=1)
        per[s] = d
    vals = [min(v, 5.0) for v in per.values() if np.isfinite(v)]
    return float(np.mean(vals)), per


def calibrate(real_dir: str | Path, size: int = 256, n: int = 24, iterations: int = 12, offspring: int = 5,
              seed: int = 0, out: str | Path | None = CALIBRATION_FILE, base: RealisticRainConfig | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run the calibration (see the module doc) and write its record to ``out`` (``None``: do not write).

    It runs on one thread, so that the search path is the same on every machine (multi-threaded reductions
    can differ in the last bits and flip an accept/reject decision)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _calibrate(real_dir, size, n, iterations, offspring, seed, out, base, progress)
    finally:
        torch.set_num_threads(threads)


def _calibrate(real_dir, size, n, iterations, offspring, seed, out, base, progress) -> dict[str, Any]:
    paths = list_images(real_dir)
    if len(paths) < 4:
        raise FileNotFoundError(f"real_dir={str(real_dir)!r} holds {len(paths)} images; calibration needs at least 4.")
    cal, held = real_split(paths)
    real_frame, _ = statistics_frame(load_real(cal, size), "real")
    base = base or RealisticRainConfig()
    rng = np.random.default_rng(seed)
    best = {name: (1.0 if kind == "scale" else 0.0) for name, kind, _, _ in SEARCH_SPACE}
    best_obj, best_per = calibration_objective(_apply(base, best), real_frame, size, n, seed)
    trace = [{"iteration": 0, "objective": best_obj}]
    sigma = 0.5
    t0 = time.time()
    bar = tqdm(range(1, iterations + 1), desc="calibrating", disable=not progress)
    for it in bar:
        improved = False
        for _ in range(offspring):
            cand = {}
            for name, kind, lo, hi in SEARCH_SPACE:
                if kind == "scale":
                    v = best[name] * math.exp(rng.normal(0, sigma))
                else:
                    v = best[name] + rng.normal(0, 10 * sigma)
                cand[name] = float(np.clip(v, lo, hi))
            obj, per = calibration_objective(_apply(base, cand), real_frame, size, n, seed)
            if obj < best_obj:
                best, best_obj, best_per, improved = cand, obj, per, True
        sigma = sigma * (1.1 if improved else 0.7)
        trace.append({"iteration": it, "objective": best_obj, "sigma": sigma})
        bar.set_postfix(objective=f"{best_obj:.3f}")
    cfg = _apply(base, best)
    record = {
        "procedure": "ttl.calibrate: (1+lambda) evolution strategy on log-scale factors of the realistic renderer's "
                     "ranges; objective = mean standardised W1 (capped at 5) over the gap statistics, against the "
                     "calibration half of the real photographs",
        "settings": {"size": size, "n": n, "iterations": iterations, "offspring": offspring, "seed": seed},
        "objective_start": trace[0]["objective"],
        "objective": best_obj,
        "per_statistic": best_per,
        "factors": best,
        "trace": trace,
        "wall_time_s": round(time.time() - t0, 1),
        "calibration_files": [{"file": p.name, "sha256": file_digest(p)} for p in cal],
        "held_out_files": [{"file": p.name, "sha256": file_digest(p)} for p in held],
        "config": cfg.to_dict(),
    }
    if out is not None:
        write_json(out, record)
    return record
