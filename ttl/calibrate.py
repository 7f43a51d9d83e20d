"""Calibrate the rain renderers: the realistic renderer against real rainy photographs, and the synthetic
("Photoshop") presets against the exact rain layers of public synthetic training pairs.

The objective is the mean, over the gap statistics of :mod:`ttl.gap`, of the standardised 1-Wasserstein
distance between realistic renders (bundled photographs + realistic rain) and the *train split* of the real
photographs (:func:`ttl.scenes.split_files`; each distance capped at 5 so that one statistic cannot dominate). The search is a simple
(1+λ) evolution strategy on log-scale factors applied to the renderer's parameter ranges, with common random
numbers (the same crops and seeds for every candidate), so that differences between candidates are not noise.

The val and test photographs are never looked at here (they score the models in notebook 05): notebook 01 and the
tests measure the calibrated renderer on them. The result (config, search trace, file digests of both parts) is
written to
``ttl/calibration.json``, which :func:`ttl.rain.calibrated_realistic_config` reads.

The synthetic presets (:func:`calibrate_synthetic`) are fitted the same way, on what public synthetic sets really
are: the exact rain layers (rainy minus clean) of *training* pairs — ``light`` on the "fit" part of
``rain13k_sample`` (Rain13K's train set, mostly light to moderate rain; its "test" part scores models,
:data:`ttl.layouts.SHARED_PUBLIC`), ``heavy`` on ``rain200_sample_train`` (Rain200H) — rendered on the very same clean
images, so that the objective compares rain with rain. The objective is the mean capped standardised W1 over the
rain-layer statistics (:data:`RAIN_LAYER_STATISTICS`), each fit the best of several searches. The public *test*
pairs are never looked at.
The record goes to ``ttl/calibration_synthetic.json`` (read by :func:`ttl.rain.synthetic_preset`).
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import file_digest, write_json
from .progress import progress_bar
from .gap import STATISTICS, load_real, real_split, render_domains, statistics_frame
from .io import list_images
from .layouts import PairedFolderDataset
from .rain import (CALIBRATION_FILE, SYNTHETIC_CALIBRATION_FILE, SYNTHETIC_DEFAULTS, RealisticRain,
                   RealisticRainConfig, SyntheticRain, SyntheticRainConfig)
from .stats import wasserstein_distance_ci
from .utils import generator

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


# the synthetic recipe: how far each range may move from the hand-set preset ("scale" multiplies both ends;
# "layers" shifts the number of streak layers). Streaks stay streaks: length and width move within bounds.
SYNTHETIC_SEARCH_SPACE: list[tuple[str, str, float, float]] = [
    ("density", "scale", 0.1, 12.0),
    ("length", "scale", 0.3, 3.0),
    ("width", "scale", 0.5, 2.5),
    ("intensity", "scale", 0.1, 1.15),
    ("angle", "scale", 0.1, 2.5),
    ("layer_spread", "scale", 0.1, 3.0),
    ("jitter", "scale", 0.2, 4.0),
    ("layers", "shift", -1.0, 2.0),
]
# statistics of the rain layer itself (what the synthetic recipe can change; scene and camera statistics are not)
RAIN_LAYER_STATISTICS = ["orientation_spread", "orientation_tilt", "coherence", "streak_length", "streak_width",
                         "streak_density", "rain_intensity"]
# which public training pairs each synthetic preset is calibrated on (folders under paired_public/)
SYNTHETIC_TARGETS = {"light": "rain13k_sample", "heavy": "rain200_sample_train"}


def _apply(base, factors: dict[str, float], space: list[tuple[str, str, float, float]] | None = None):
    """``base`` (a renderer config) with each searched range scaled (or shifted) by its factor."""
    cfg = copy.deepcopy(base)
    for name, kind, _, _ in space or SEARCH_SPACE:
        f = factors.get(name)
        if f is None:
            continue
        obj, attr = (cfg.scattering, name.split(".")[1]) if name.startswith("scattering.") else (cfg, name)
        val = getattr(obj, attr)
        if attr == "layers":  # an integer (range): shift and round, at least one layer
            new = (tuple(max(1, int(round(v + f))) for v in val) if isinstance(val, tuple)
                   else max(1, int(round(val + f))))
        elif kind == "scale":
            new = tuple(float(v) * f for v in val) if isinstance(val, tuple) else float(val) * f
        else:
            new = tuple(min(98.0, max(10.0, float(v) + f)) for v in val)
        if attr in ("airlight", "intensity"):
            new = tuple(min(1.0, v) for v in new) if isinstance(new, tuple) else min(1.0, new)
        setattr(obj, attr, new)
    return cfg


def _evolve(objective, space, iterations: int, offspring: int, seed: int, progress: bool, desc: str,
            shift_step: float = 10.0):
    """(1+λ) evolution strategy on the factors of ``space``; ``objective(factors) -> (value, per-statistic)``;
    "shift" factors move by ``shift_step * sigma``.
    Returns ``(best factors, best value, its per-statistic values, trace)``."""
    rng = np.random.default_rng(seed)
    best = {name: (1.0 if kind == "scale" else 0.0) for name, kind, _, _ in space}
    best_obj, best_per = objective(best)
    trace = [{"iteration": 0, "objective": best_obj}]
    sigma = 0.5
    bar = progress_bar(range(1, iterations + 1), desc=desc, disable=not progress)
    for it in bar:
        improved = False
        for _ in range(offspring):
            cand = {}
            for name, kind, lo, hi in space:
                if kind == "scale":
                    v = best[name] * math.exp(rng.normal(0, sigma))
                else:
                    v = best[name] + rng.normal(0, shift_step * sigma)
                cand[name] = float(np.clip(v, lo, hi))
            obj, per = objective(cand)
            if obj < best_obj:
                best, best_obj, best_per, improved = cand, obj, per, True
        sigma = sigma * (1.1 if improved else 0.7)
        trace.append({"iteration": it, "objective": best_obj, "sigma": sigma})
        bar.set_postfix(objective=f"{best_obj:.3f}")
    return best, best_obj, best_per, trace


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
    t0 = time.time()
    best, best_obj, best_per, trace = _evolve(
        lambda f: calibration_objective(_apply(base, f), real_frame, size, n, seed), SEARCH_SPACE, iterations,
        offspring, seed, progress, "calibrating")
    cfg = _apply(base, best)
    record = {
        "procedure": "ttl.calibrate: (1+lambda) evolution strategy on log-scale factors of the realistic renderer's "
                     "ranges; objective = mean standardised W1 (capped at 5) over the gap statistics, against the "
                     "train split of the real photographs (ttl.scenes.split_files)",
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


# ------------------------------------------------------------------------------------- synthetic presets
def public_rain_layers(folder: str | Path, size: int = 256, limit: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(rainy, clean)`` of every pair (the first ``limit``; 0: all) of a public paired folder (any layout of
    :func:`ttl.layouts.detect_layout`), resized so that the short side is ``size``; their difference is the exact
    rain layer. A folder that also scores models (:data:`ttl.layouts.SHARED_PUBLIC`) gives its ``"fit"`` part only."""
    from .scenes import resize_short_side

    ds = PairedFolderDataset(folder, role="fit")
    out = []
    for i in range(min(len(ds), limit) if limit else len(ds)):
        it = ds[i]
        out.append((resize_short_side(it["rainy"], size), resize_short_side(it["clean"], size)))
    return out


def rain_layer_frame(pairs: list[tuple[torch.Tensor, torch.Tensor]], domain: str):
    """Statistics of exact rain layers (``rainy - clean``), one row per pair (:func:`ttl.gap.image_statistics`)."""
    import pandas as pd

    from .gap import image_statistics

    return pd.DataFrame([{"domain": domain, **image_statistics(r, rain_layer=r - c).scalars} for r, c in pairs])


def render_on(pairs: list[tuple[torch.Tensor, torch.Tensor]], config: SyntheticRainConfig, seed: int = 0
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Synthetic rain of ``config`` rendered on the clean image of each pair (common random numbers: image ``i``
    always draws from the same generator), as ``(rainy, clean)`` pairs."""
    rain = SyntheticRain(config)
    out = []
    for i, (_, clean) in enumerate(pairs):
        o = rain(clean[None], generator(seed * 1_000_003 + i))
        out.append((o.rainy[0], clean))
    return out


def rain_layer_distance(frame, ref_frame, statistics: list[str] = RAIN_LAYER_STATISTICS, cap: float = 5.0
                        ) -> tuple[float, dict[str, float]]:
    """Mean capped standardised W1 distance between two frames of rain-layer statistics, and each distance."""
    per = {}
    for st in statistics:
        d, _, _ = wasserstein_distance_ci(frame[st].to_numpy(), ref_frame[st].to_numpy(), n_boot=1)
        per[st] = d
    vals = [min(v, cap) for v in per.values() if np.isfinite(v)]
    return float(np.mean(vals)), per


def calibrate_synthetic(public_dir: str | Path, presets: tuple[str, ...] = ("light", "heavy"), size: int = 256,
                        iterations: int = 20, offspring: int = 6, seed: int = 0, restarts: int = 3,
                        out: str | Path | None = SYNTHETIC_CALIBRATION_FILE, progress: bool = True) -> dict[str, Any]:
    """Fit each synthetic preset of ``presets`` to the rain layers of its public training pairs
    (:data:`SYNTHETIC_TARGETS`, folders of ``public_dir``; a folder that also scores models gives its ``"fit"`` part
    only, :data:`ttl.layouts.SHARED_PUBLIC`). Each fit is the best of ``restarts`` searches (evolution seeds ``seed``,
    ``seed + 1``, ...; the same renders for all), chosen by the objective on those same pairs: at about 20 pairs one
    search can stop in a poor basin. The record (``None``: do not write) keeps the presets not refitted from the file
    already at ``out``. One thread, as :func:`calibrate`."""
    import json

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record: dict[str, Any] = {}
        if out is not None and Path(out).is_file():
            record = {k: v for k, v in json.loads(Path(out).read_text()).items() if k not in presets}
        for name in presets:
            folder = Path(public_dir) / SYNTHETIC_TARGETS[name]
            pairs = public_rain_layers(folder, size)
            ref = rain_layer_frame(pairs, "public")
            base = SYNTHETIC_DEFAULTS[name]

            def objective(f, base=base, pairs=pairs, ref=ref):
                return rain_layer_distance(rain_layer_frame(render_on(pairs, _apply(base, f, SYNTHETIC_SEARCH_SPACE),
                                                                      seed), "synthetic"), ref)

            t0 = time.time()
            searches = []
            for r in range(restarts):
                best, best_obj, best_per, trace = _evolve(objective, SYNTHETIC_SEARCH_SPACE, iterations, offspring,
                                                          seed + r, progress, f"calibrating {name} ({r + 1}/{restarts})",
                                                          shift_step=1.0)
                searches.append({"seed": seed + r, "objective": best_obj, "per_statistic": best_per, "factors": best,
                                 "trace": trace})
            chosen = min(searches, key=lambda x: x["objective"])
            record[name] = {
                "procedure": "ttl.calibrate.calibrate_synthetic: (1+lambda) evolution strategy on factors of the "
                             "hand-set recipe's ranges, best of several searches; objective = mean standardised W1 "
                             f"(capped at 5) over {', '.join(RAIN_LAYER_STATISTICS)} of exact rain layers, renders on "
                             "the same clean images as the public pairs",
                "target": SYNTHETIC_TARGETS[name],
                "settings": {"size": size, "iterations": iterations, "offspring": offspring, "seed": seed,
                             "restarts": restarts},
                "objective_start": chosen["trace"][0]["objective"], "objective": chosen["objective"],
                "per_statistic": chosen["per_statistic"], "factors": chosen["factors"], "chosen_seed": chosen["seed"],
                "trace": chosen["trace"],
                "searches": [{k: v for k, v in x.items() if k != "trace"} for x in searches],
                "wall_time_s": round(time.time() - t0, 1),
                "files": [{"file": it.rainy.name, "sha256": file_digest(it.rainy)}
                          for it in PairedFolderDataset(folder, role="fit").items],
                "default_config": base.to_dict(),
                "config": _apply(base, chosen["factors"], SYNTHETIC_SEARCH_SPACE).to_dict(),
            }
        if out is not None:
            write_json(out, record)
        return record
    finally:
        torch.set_num_threads(threads)


def synthetic_calibration_report(public_dir: str | Path, size: int = 256, n_boot: int = 1000, seed: int = 0,
                                 limit: int = 0):
    """Distance of the hand-set and of the calibrated synthetic presets to the rain layers of the public training
    pairs each was calibrated on (:data:`SYNTHETIC_TARGETS`): per statistic, standardised W1 with a bootstrap 95 %
    interval, and the calibration objective (mean capped W1), as a long table (``preset``, ``target``,
    ``statistic``, ``recipe``, ``distance``, ``low``, ``high``). The calibration's objective was computed on the same
    pairs: this is the fit, not a held-out test. ``limit``: the first pairs of each target only (smoke runs)."""
    import pandas as pd

    from .rain import synthetic_preset

    rows = []
    for name, target in SYNTHETIC_TARGETS.items():
        folder = Path(public_dir) / target
        if not folder.is_dir():
            continue
        pairs = public_rain_layers(folder, size, limit)
        ref = rain_layer_frame(pairs, "public")
        for recipe, config in (("hand-set", SYNTHETIC_DEFAULTS[name]), ("calibrated", synthetic_preset(name))):
            frame = rain_layer_frame(render_on(pairs, config, seed), recipe)
            obj, _ = rain_layer_distance(frame, ref)
            rows.append({"preset": name, "target": target, "statistic": "objective (mean capped W1)",
                         "recipe": recipe, "distance": obj, "low": float("nan"), "high": float("nan")})
            for k, st in enumerate(RAIN_LAYER_STATISTICS):
                d, lo, hi = wasserstein_distance_ci(frame[st].to_numpy(), ref[st].to_numpy(), n_boot, seed=seed + k)
                rows.append({"preset": name, "target": target, "statistic": st, "recipe": recipe, "distance": d,
                             "low": lo, "high": hi})
    return pd.DataFrame(rows)
