"""Experiments that notebooks orchestrate. :func:`synthetic_to_real_gap` is notebook 01's motivating
experiment for claim C2: a supervised deraining model trained on synthetic pairs, tested on the same clean
photographs with synthetic rain and with realistic rain (scored against its streak-free target and against the
clean scene)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .metrics import image_metrics
from .models import UNet, count_params
from .stats import bootstrap_ci, paired_bootstrap
from .train import evaluate_pairs, fit_restorer

__all__ = ["synthetic_to_real_gap", "gap_experiment_table"]


def synthetic_to_real_gap(cfg: dict[str, Any], seed: int = 0, device: str = "auto", clean_dir=None,
                          synthetic_dir=None, progress: bool = True) -> dict[str, Any]:
    """Train a U-Net on synthetic pairs, then score it on the same test photographs with synthetic rain and with
    realistic rain (every comparison is paired by image). Realistic rain is scored against its streak-free target
    (``realistic``: deraining) and against the clean scene (``realistic_clean``).

    Training pairs: the fixed synthetic training set of notebook 04 (:func:`ttl.finetune.synthetic_pairs`: the
    train-split photographs of ``clean_dir``, or ``synthetic_dir``'s pairs, or procedural scenes); test: the test
    split of ``clean_dir`` (whole photographs), else crops of the bundled photographs. Returns metrics, per-image
    values, the curves, the model and example tensors."""
    from .finetune import synthetic_pairs
    from .heldout import test_sets, validation_sets
    from .inference import derain_image

    train = synthetic_pairs(cfg, seed, "train", clean_dir, synthetic_dir)
    train.patch = cfg["c2_patch"]
    val = validation_sets(cfg, seed, clean_dir, synthetic_dir)["synthetic"]
    v_rainy, v_clean = val["rainy"][:32], val["clean"][:32]

    def validate(m):
        r = evaluate_pairs(m, v_rainy, v_clean, device)
        return {"val_psnr_y": float(r["psnr_y"].mean()), "val_ssim_y": float(r["ssim_y"].mean())}

    torch.manual_seed(seed)
    model = UNet(width=cfg["c2_width"], depth=3)
    log = fit_restorer(model, train, cfg["c2_steps"], cfg["c2_batch"], device=device, seed=seed, loss=cfg["f_loss"],
                       val_every=cfg["val_every"], validate=validate, progress=progress, desc="supervised (synthetic)")
    model = model.cpu().eval()
    c2cfg = dict(cfg, e_n_test=cfg["c2_n_test"], e_test_size=cfg["c2_test_size"])
    sets = {k: v for k, v in test_sets(c2cfg, seed + 1000, clean_dir).items() if not k.startswith("bundled_")}
    per_image: dict[str, dict[str, np.ndarray]] = {}
    outputs: dict[int, list[torch.Tensor]] = {}
    for dom, s in sets.items():
        if id(s["rainy"]) not in outputs:
            outputs[id(s["rainy"])] = [derain_image(model, x, tile=512, device="cpu") for x in s["rainy"]]
        for who, preds in (("input", s["rainy"]), ("model", outputs[id(s["rainy"])])):
            vals: dict[str, list[float]] = {}
            for p, c in zip(preds, s["clean"]):
                for k, v in image_metrics(p[None], c[None]).items():
                    vals.setdefault(k, []).append(float(v[0]))
            per_image[f"{who}/{dom}"] = {k: np.asarray(v) for k, v in vals.items()}
    nb = cfg["bootstrap"]
    summary = {}
    for key, vals in per_image.items():
        summary[key] = {}
        for metric in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
            est, lo, hi = bootstrap_ci(vals[metric], n_boot=nb, seed=seed)
            summary[key][metric] = {"mean": est, "low": lo, "high": hi}
    gain = {dom: {m: per_image[f"model/{dom}"][m] - per_image[f"input/{dom}"][m] for m in ("psnr_y", "ssim_y")}
            for dom in sets}
    drop = {m: paired_bootstrap(per_image["model/synthetic"][m], per_image["model/realistic"][m], nb, seed=seed)
            for m in ("psnr_y", "ssim_y")}
    gain_drop = {m: paired_bootstrap(gain["synthetic"][m], gain["realistic"][m], nb, seed=seed) for m in ("psnr_y", "ssim_y")}
    gain_drop_clean = {m: paired_bootstrap(gain["synthetic"][m], gain["realistic_clean"][m], nb, seed=seed)
                       for m in ("psnr_y", "ssim_y")}
    shown = {dom: (s["rainy"][:4], outputs[id(s["rainy"])][:4]) for dom, s in sets.items() if dom != "realistic_clean"}
    return {
        "summary": summary,
        "drop_synthetic_minus_realistic": drop,
        "gain_over_input_drop": gain_drop,
        "gain_over_input_drop_clean_target": gain_drop_clean,
        "gain_over_input": {dom: {m: bootstrap_ci(v, n_boot=nb, seed=seed) for m, v in d.items()} for dom, d in gain.items()},
        "per_image": {k: {m: v.tolist() for m, v in d.items()} for k, d in per_image.items()},
        "log": log,
        "params": count_params(model),
        "model": model,
        "outputs": shown,
        "clean": sets["synthetic"]["clean"][:4],
        "streak_free": sets["realistic"]["clean"][:4],
        "train_manifest": train.manifest(),
        "test": "clean_dir test split (whole photographs)" if clean_dir is not None else "bundled photographs (crops)",
    }


TEST_RAIN = {"synthetic": "synthetic", "realistic": "realistic, vs streak-free target",
             "realistic_clean": "realistic, vs clean scene"}


def gap_experiment_table(summary: dict[str, dict[str, dict[str, float]]]):
    """The experiment's summary as a table: one row per (model, test rain), ``mean [low, high]`` per metric,
    with the metric convention in every header (PSNR-Y, SSIM-Y, PSNR-RGB, SSIM-RGB)."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    rows = []
    for key, metrics in summary.items():
        who, dom = key.split("/")
        row = {"model": "rainy input" if who == "input" else "supervised on synthetic", "test rain": TEST_RAIN.get(dom, dom)}
        for m, v in metrics.items():
            f = ".3f" if m.startswith("ssim") else ".2f"
            row[METRIC_LABELS[m]] = f"{v['mean']:{f}} [{v['low']:{f}}, {v['high']:{f}}]"
        rows.append(row)
    return pd.DataFrame(rows)
