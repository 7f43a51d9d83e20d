"""Throughput benchmarks (medians over repeats; timings on shared machines are noisy)."""
from __future__ import annotations

import statistics
import time

import torch

from .rain import RealisticRain, SyntheticRain, rain_scattering
from .scenes import dead_leaves
from .utils import generator


def benchmark_renderers(size: int = 128, batch: int = 32, repeats: int = 7, threads: int = 1) -> dict[str, dict]:
    """Patches per second of each renderer on ``batch`` procedural ``size`` x ``size`` patches."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        clean, depth = dead_leaves(batch, size, seed=0)
        jobs = {
            "synthetic-light": lambda g: SyntheticRain("light")(clean, g),
            "synthetic-heavy": lambda g: SyntheticRain("heavy")(clean, g),
            "realistic": lambda g: RealisticRain()(clean, g, depth),
            "scattering": lambda g: rain_scattering(clean, depth, g),
            "dead-leaves": lambda g: dead_leaves(batch, size, seed=int(g.initial_seed())),
        }
        out = {}
        for name, fn in jobs.items():
            fn(generator(0))  # warm-up
            ts = []
            for r in range(repeats):
                t = time.perf_counter()
                fn(generator(r + 1))
                ts.append(time.perf_counter() - t)
            out[name] = {"median_patches_per_s": batch / statistics.median(ts), "median_s": statistics.median(ts),
                         "runs_s": ts}
        return out
    finally:
        torch.set_num_threads(old)


def _training_data(n: int = 64, size: int = 128, seed: int = 0):
    """Fixed synthetic pairs (procedural scenes, light and heavy synthetic rain) for the training benchmarks."""
    from .datasets import FixedPairs

    clean, _ = dead_leaves(n, size, seed=seed)
    rainy = torch.cat([SyntheticRain("light")(clean[: n // 2], generator(seed)).rainy,
                       SyntheticRain("heavy")(clean[n // 2:], generator(seed + 1)).rainy])
    return FixedPairs(list(rainy), list(clean), patch=None, seed=seed)


def benchmark_training(widths: dict[str, int] | None = None, settings: dict[str, dict] | None = None,
                       patch: int = 64, steps: int = 30, warmup: int = 5, repeats: int = 5,
                       threads: int | None = None) -> dict[str, dict]:
    """Training throughput (patches per second, median over ``repeats``) of the study's restoration networks through
    the engine (data, forward, L1 loss, backward, clipping, AdamW, schedule), for each network width and each engine
    setting. ``settings`` maps a name to ``{"batch", "amp", "channels_last", "fused"}``; the default compares the
    loop of before (fp32, contiguous memory, for-loop AdamW, batch 8) with the loop of now (bf16 autocast where
    supported, channels-last, fused AdamW) at batch 8 and at the study's batch 16. The settings are interleaved in
    rounds and ``speedup_vs_before`` is the median over rounds of each round's ratio to the first setting (the
    before), with its range: a shared machine that slows down mid-run slows both sides of a ratio."""
    import torch.nn.functional as F

    from .engine import TrainConfig, train
    from .models import RestorationNet

    widths = widths or {"student": 8, "large": 16}
    settings = settings or {
        "fp32, contiguous, batch 8 (before)": {"batch": 8, "amp": False, "channels_last": False, "fused": False},
        "bf16 + channels-last + fused AdamW, batch 8": {"batch": 8, "amp": True, "channels_last": True, "fused": True},
        "bf16 + channels-last + fused AdamW, batch 16 (study)": {"batch": 16, "amp": True, "channels_last": True,
                                                                 "fused": True}}
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        data = _training_data()
        data.patch = patch
        rates: dict[tuple[str, str], list[float]] = {(net, name): [] for net in widths for name in settings}
        for r in range(repeats):  # rounds: every setting once per round, so drifts of the machine hit all alike
            for net, width in widths.items():
                for name, s in settings.items():
                    times: list[float] = []
                    last = [time.perf_counter()]

                    def on_step(step):
                        now = time.perf_counter()
                        if step > warmup:
                            times.append(now - last[0])
                        last[0] = now

                    torch.manual_seed(r)
                    model = RestorationNet(width=width, depth=3)
                    cfg = TrainConfig(steps=warmup + steps, batch=s["batch"], seed=r, device="cpu", progress=False,
                                      amp=s["amp"], channels_last=s["channels_last"], fused=s.get("fused", True))
                    train(model, data, lambda m, b: F.l1_loss(m(b["rainy"]).float(), b["clean"]), cfg,
                          on_step=on_step)
                    rates[net, name].append(s["batch"] / statistics.median(times))
        first = next(iter(settings))
        out: dict[str, dict] = {}
        for (net, name), runs in rates.items():
            ratios = [a / b for a, b in zip(runs, rates[net, first])]
            out[f"{net} | {name}"] = {"network": net, "width": widths[net], "setting": name, **settings[name],
                                      "patch": patch, "median_patches_per_s": statistics.median(runs), "runs": runs,
                                      "speedup_vs_before": statistics.median(ratios),
                                      "speedup_range": [min(ratios), max(ratios)]}
        return out
    finally:
        torch.set_num_threads(old)


# the short-schedule choices of notebook 04, each against the study's recipe (L1, 64 px crops, f_steps)
RECIPE_VARIANTS: dict[str, dict] = {
    "L1, 64 px crops (the study)": {},
    "MSE, 64 px crops": {"f_loss": "mse"},
    "Charbonnier, 64 px crops": {"f_loss": "charbonnier"},
    "L1, 96 px crops for the last quarter of the steps": {"f_late": 0.25, "f_patch_late": 96},
    "L1, half the steps": {"f_steps": "half"},
    "L1, 64 px crops, the plain fp32 loop (no bf16, no channels-last, unfused AdamW)": {"amp": False,
                                                                                       "channels_last": False,
                                                                                       "fused": False},
}


def compare_recipes(cfg: dict, clean_dir=None, seed: int = 0, device: str = "cpu",
                    variants: dict[str, dict] | None = None, progress: bool = False) -> dict[str, dict]:
    """Train ``sup-full`` (the student's architecture from scratch on all pairs) once per recipe variant on notebook
    04's fixed training pairs and score it on the **validation** sets (never a test set): how each short-schedule
    choice (loss, larger crops late, steps) pays within the budget, and whether the engine's bf16 + channels-last
    loop trains as well as the plain fp32 one. Returns per variant its overrides, training seconds and validation
    PSNR-Y / SSIM-Y."""
    from . import finetune as FT
    from .heldout import validation_sets
    from .models import RestorationNet

    variants = variants or RECIPE_VARIANTS
    pairs = FT.synthetic_pairs(cfg, seed, "train", clean_dir)
    val = validation_sets(cfg, seed, clean_dir)
    out: dict[str, dict] = {}
    for name, over in variants.items():
        over = {k: (cfg[k] // 2 if v == "half" else v) for k, v in over.items()}
        c = {**cfg, **over}
        torch.manual_seed(seed)
        model = RestorationNet(width=cfg["s_width"], depth=cfg["t_depth"], context=c["context"])
        log = FT.finetune(model, pairs, FT.Recipe("sup-full", "scratch", 1.0), c, seed, device, progress=progress)
        scores = FT.evaluate_model(model.cpu(), val)
        out[name] = {"overrides": over, "train_s": log["time_s"], "steps": c["f_steps"],
                     **{d: {m: scores[d][m] for m in ("psnr_y", "ssim_y")} for d in scores}}
    return out
