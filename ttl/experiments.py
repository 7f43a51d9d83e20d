"""Experiments that notebooks orchestrate. :func:`synthetic_to_real_gap` is notebook 01's motivating
experiment for claim C2: a supervised deraining model trained on synthetic pairs, tested on the same clean
photographs with synthetic rain and with realistic rain."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .datasets import PairedRainDataset, SceneBank
from .layouts import LayoutError, PairedFolderDataset
from .gap import render_domains
from .models import UNet, count_params
from .rain import SyntheticRain
from .stats import bootstrap_ci, paired_bootstrap
from .train import evaluate_pairs, fit_restorer

__all__ = ["synthetic_to_real_gap", "gap_experiment_table"]


def synthetic_to_real_gap(cfg: dict[str, Any], seed: int = 0, device: str = "auto", clean_dir=None,
                          synthetic_dir=None, progress: bool = True) -> dict[str, Any]:
    """Train a U-Net on synthetic pairs, then score it on bundled photographs with synthetic rain and with
    realistic rain (the same clean crops, so every comparison is paired by image).

    Training pairs: procedural scenes (or ``clean_dir``) with light and heavy synthetic rain, or the train
    split of a paired synthetic dataset ``synthetic_dir`` (any layout of :func:`ttl.layouts.detect_layout`).
    Returns metrics, per-image values, the curves, the model and the test tensors."""
    renderers = [SyntheticRain("light"), SyntheticRain("heavy")]
    if synthetic_dir is not None:
        train = PairedFolderDataset(synthetic_dir, split="train", crop=cfg["c2_patch"], seed=seed)
        try:
            val = PairedFolderDataset(synthetic_dir, split="val", crop=cfg["c2_patch"], seed=seed + 1)
        except LayoutError:  # too few scenes for a validation split: validate on the train split's pairs
            val = train
        vb = [val[i] for i in range(min(len(val), 32))]
        manifest = {**train.manifest(), "source": "synthetic_dir"}
    else:
        src = "folder" if clean_dir else "procedural"
        train_bank = SceneBank(src, "train", cfg["c2_patch"], n=max(64, cfg["c2_steps"] * cfg["c2_batch"] // 4),
                               seed=seed, folder=clean_dir)
        val_bank = SceneBank(src, "val", cfg["c2_patch"], n=32, seed=seed, folder=clean_dir)
        train = PairedRainDataset(train_bank, renderers, seed=seed)
        vb = PairedRainDataset(val_bank, renderers, seed=seed + 1).__getitems__(list(range(len(val_bank))))
        manifest = train_bank.manifest()
    v_rainy, v_clean = torch.stack([b["rainy"] for b in vb]), torch.stack([b["clean"] for b in vb])

    def validate(m):
        r = evaluate_pairs(m, v_rainy, v_clean, device)
        return {"val_psnr_y": float(r["psnr_y"].mean()), "val_ssim_y": float(r["ssim_y"].mean())}

    torch.manual_seed(seed)
    model = UNet(width=cfg["c2_width"], depth=3)
    log = fit_restorer(model, train, cfg["c2_steps"], cfg["c2_batch"], device=device, seed=seed,
                       val_every=cfg["val_every"], validate=validate, progress=progress, desc="supervised (synthetic)")
    model = model.cpu().eval()
    test = render_domains(cfg["c2_n_test"], cfg["c2_test_size"], seed=seed + 1000)
    clean = torch.stack(test["clean"])
    per_image: dict[str, dict[str, np.ndarray]] = {}
    outputs = {}
    for dom in ("synthetic", "realistic"):
        rainy = torch.stack(test[dom])
        per_image[f"input/{dom}"] = {k: v.numpy() for k, v in evaluate_pairs(None, rainy, clean, "cpu").items()}
        per_image[f"model/{dom}"] = {k: v.numpy() for k, v in evaluate_pairs(model, rainy, clean, "cpu").items()}
        with torch.no_grad():
            outputs[dom] = (rainy, model(rainy).clamp(0, 1))
    nb = cfg["bootstrap"]
    summary = {}
    for key, vals in per_image.items():
        summary[key] = {}
        for metric in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
            est, lo, hi = bootstrap_ci(vals[metric], n_boot=nb, seed=seed)
            summary[key][metric] = {"mean": est, "low": lo, "high": hi}
    gain = {dom: {m: np.asarray(per_image[f"model/{dom}"][m]) - np.asarray(per_image[f"input/{dom}"][m])
                  for m in ("psnr_y", "ssim_y")} for dom in ("synthetic", "realistic")}
    drop = {m: paired_bootstrap(per_image["model/synthetic"][m], per_image["model/realistic"][m], nb, seed=seed)
            for m in ("psnr_y", "ssim_y")}
    gain_drop = {m: paired_bootstrap(gain["synthetic"][m], gain["realistic"][m], nb, seed=seed) for m in ("psnr_y", "ssim_y")}
    return {
        "summary": summary,
        "drop_synthetic_minus_realistic": drop,
        "gain_over_input_drop": gain_drop,
        "gain_over_input": {dom: {m: bootstrap_ci(v, n_boot=nb, seed=seed) for m, v in d.items()} for dom, d in gain.items()},
        "per_image": {k: {m: v.tolist() for m, v in d.items()} for k, d in per_image.items()},
        "log": log,
        "params": count_params(model),
        "model": model,
        "outputs": outputs,
        "clean": clean,
        "train_manifest": manifest,
    }


def gap_experiment_table(summary: dict[str, dict[str, dict[str, float]]]):
    """The experiment's summary as a table: one row per (model, test rain), ``mean [low, high]`` per metric,
    with the metric convention in every header (PSNR-Y, SSIM-Y, PSNR-RGB, SSIM-RGB)."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    rows = []
    for key, metrics in summary.items():
        who, dom = key.split("/")
        row = {"model": "rainy input" if who == "input" else "supervised on synthetic", "test rain": dom}
        for m, v in metrics.items():
            f = ".3f" if m.startswith("ssim") else ".2f"
            row[METRIC_LABELS[m]] = f"{v['mean']:{f}} [{v['low']:{f}}, {v['high']:{f}}]"
        rows.append(row)
    return pd.DataFrame(rows)
