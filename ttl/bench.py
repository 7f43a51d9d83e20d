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
