"""Is the distilled start's scale a defect? (issue 14, item 1: "fix what is a defect; report what is a finding")

Notebook 04 §7 finds the distilled student's deep activations about 200x those of a fresh network, its features no
better than random ones at predicting the rain layer, and `ttl` no better than `sup-minority`. If the scale alone
makes the distilled start a poor one, the same features brought to a fresh network's scale should fine-tune better.

This script fine-tunes three starts on the same minority draws (1..3; draw 0 won the learning-rate search) exactly as
notebook 04 fine-tunes `ttl` (its recipe, steps, learning rate and checkpoint selection):
- `distilled`: the committed study's student, as `ttl` starts (output head zeroed);
- `distilled-rescaled`: the same weights, each convolution and linear layer (in forward order) rescaled, weight and
  bias together, so that its output's RMS on a batch of training crops equals that of the same layer in a fresh
  network (a data-driven, LSUV-style rescaling: directions kept, scale reset; GELU is not exactly homogeneous, so the
  function changes a little beyond scale), then the head zeroed;
- `random`: a fresh network (`sup-minority`'s start).
It reports validation PSNR-Y (the report crops, disjoint from the selection crops) per draw and the paired
differences with 95 % intervals over draws and images (ttl.stats.draw_bootstrap, draws paired).

Usage: python docs/measurements/start_scale/exp.py DATA_DIR STUDENT_PT OUT_DIR [--lr 2e-3 --draws 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl import config as C  # noqa: E402
from ttl.finetune import evaluate_model, finetune, recipes, selection_scores, synthetic_pairs  # noqa: E402
from ttl.heldout import split_validation, validation_sets  # noqa: E402
from ttl.models import RestorationNet, layer_rms, load_model, match_layer_scale  # noqa: E402
from ttl.stats import draw_bootstrap  # noqa: E402

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("student")
    ap.add_argument("out")
    ap.add_argument("--lr", type=float, default=2e-3)  # ttl's and sup-minority's chosen rate in the committed run
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--preset", default="default")
    a = ap.parse_args()
    t0 = time.time()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = C.resolve_config(a.preset, {})
    seed, dev = 0, "cpu"
    clean = Path(a.data) / "clean_scenes"
    pairs = synthetic_pairs(cfg, seed, "train", clean)
    small, val = split_validation(validation_sets(cfg, seed, clean), cfg["f_val_select"])
    rows = {r.name: r for r in recipes(cfg)}
    distilled, _ = load_model(a.student)
    spec = distilled.spec

    def fresh(s: int) -> nn.Module:
        torch.manual_seed(s)
        return RestorationNet(width=spec["width"], depth=spec["depth"], blocks=spec["blocks"],
                              context=spec.get("context", False))

    g = torch.Generator().manual_seed(123)
    idx = torch.randperm(len(pairs), generator=g)[:32].tolist()
    def centre(t: torch.Tensor, n: int = 128) -> torch.Tensor:
        h, w = t.shape[-2:]
        return t[..., (h - n) // 2:(h - n) // 2 + n, (w - n) // 2:(w - n) // 2 + n]

    calib = torch.stack([centre(pairs.rainy[i]).float() / 255 for i in idx])  # centre crops of training pairs only
    rms = {"random": layer_rms(fresh(0), calib), "distilled": layer_rms(distilled, calib)}

    def start(kind: str, k: int) -> nn.Module:
        if kind == "random":
            return fresh(seed + k)
        m, _ = load_model(a.student)
        if kind == "distilled-rescaled":
            match_layer_scale(m, fresh(seed + k), calib)
        nn.init.zeros_(m.head.weight)
        nn.init.zeros_(m.head.bias)
        return m

    results: dict[str, list] = {}
    for kind, row in (("distilled", "ttl"), ("distilled-rescaled", "ttl"), ("random", "sup-minority")):
        results[kind] = []
        for k in range(1, a.draws + 1):
            m = start(kind, k)
            if kind == "distilled-rescaled" and k == 1:
                rms["distilled-rescaled"] = layer_rms(m, calib)
            log = finetune(m, pairs, rows[row], cfg, seed + k, dev, out_dir / "runs" / kind / f"seed{k}",
                           validate=lambda mm: selection_scores(mm, small), resume=True, lr=a.lr)
            m = m.cpu().eval()
            results[kind].append({"seed": seed + k, "step": log["best"]["step"], "val": evaluate_model(m, val)})
            print(kind, k, {s: round(results[kind][-1]["val"][s]["psnr_y"], 3) for s in ("synthetic", "realistic")},
                  f"{time.time() - t0:.0f} s", flush=True)

    def per_image(kind: str, s: str) -> np.ndarray:  # draws x images
        return np.stack([np.asarray(r["val"][s]["per_image"]["psnr_y"]) for r in results[kind]])

    table = []
    for a_kind, b_kind in (("distilled-rescaled", "distilled"), ("distilled-rescaled", "random"),
                           ("distilled", "random")):
        row = {"difference": f"{a_kind} minus {b_kind}"}
        for s in ("synthetic", "realistic"):
            b = draw_bootstrap(per_image(a_kind, s), per_image(b_kind, s), paired_draws=True,
                               n_boot=cfg["bootstrap"], seed=seed)
            row[s] = [b["mean_diff"], b["low"], b["high"]]
        table.append(row)
        print(row, flush=True)
    record = {"experiment": "is the distilled start's scale a defect (issue 14, item 1)", "preset": a.preset,
              "git_revision": C.git_revision(), "lr": a.lr, "student": str(a.student),
              "means": {k: {s: float(np.mean([r["val"][s]["psnr_y"] for r in v])) for s in ("synthetic", "realistic")}
                        for k, v in results.items()},
              "draws": {k: [{"seed": r["seed"], "step": r["step"],
                             **{f"{s}_psnr_y": r["val"][s]["psnr_y"] for s in ("synthetic", "realistic")}} for r in v]
                        for k, v in results.items()},
              "layer_rms": rms, "differences": table, "wall_s": round(time.time() - t0, 1)}
    (out_dir / "start_scale.json").write_text(json.dumps(record, indent=1))
    print(f"done {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
