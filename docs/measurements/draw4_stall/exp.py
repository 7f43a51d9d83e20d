"""Why did `ttl`'s draw 4 never leave its start in the run of 2f8dfb5? (diagnosis after the study)

In that run `ttl` (distilled student, rescaled start, lr 5e-4 chosen by the two-draw search) scored 25.39 dB on the
selection crops at step 100 of draw 4 and never higher, while `sup-minority` on the same minority climbed to
27.48 dB at 2e-3. This script trains draw 4 again exactly as notebook 04 runs a trial (recipe, steps, start
preparation, checkpoint selection) under a few changes, one at a time:

* `ttl` at each lr of the grid (is the stall specific to 5e-4?);
* `ttl` without the rescaling of the start (``f_rescale_start`` off: is the rescaled start the cause?);
* `sup-minority` at 5e-4 (does a random start at 5e-4 also stall on this minority?);
* `ttl` on draw 0 at 5e-4 as the reference of a normal draw;

and records each run's best selection score and step, its curve, and how far its final output moved from the identity
(mean |f(x) - x| in grey levels on the selection crops). Nothing here touches test data.

Usage: python docs/measurements/draw4_stall/exp.py DATA_DIR STUDY_RESULTS_DIR OUT_DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl import config as C  # noqa: E402
from ttl.finetune import (Minority, finetune, prepare_start, recipes, selection_scores, start_batch,  # noqa: E402
                          synthetic_pairs)
from ttl.heldout import split_validation, validation_sets  # noqa: E402
from ttl.models import RestorationNet, load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("results", help="the study's results/ folder (notebooks 03 and 04 finished)")
    ap.add_argument("out")
    ap.add_argument("--preset", default="default")
    a = ap.parse_args()
    t0 = time.time()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = Path(a.results)
    rec = json.loads((res / "04_finetuning" / a.preset / "metrics.json").read_text())
    cfg = C.resolve_config(a.preset, {})
    seed = int(rec["seed"])
    clean = Path(a.data) / "clean_scenes"
    pairs = synthetic_pairs(cfg, seed, "train", clean)
    small, _ = split_validation(validation_sets(cfg, seed, clean), cfg["f_val_select"])
    rows = {r.name: r for r in recipes(cfg)}
    calib = start_batch(pairs)
    student_path = res / "03_distillation" / a.preset / "checkpoints" / "student.pt"
    spec = load_model(student_path)[0].spec

    def start(row: str, s: int, rescale: bool = True):
        torch.manual_seed(s)
        if row == "sup-minority":
            return RestorationNet(width=cfg["s_width"], depth=spec["depth"], blocks=spec["blocks"],
                                  context=spec.get("context", False))
        m = load_model(student_path)[0]
        prepare_start(m, dict(cfg, f_rescale_start=rescale), calib, s)
        return m

    @torch.no_grad()
    def moved(m) -> float:  # mean |f(x) - x| over the selection crops, grey levels
        xs = torch.cat([small[d]["rainy"] for d in small])
        return float((m.eval()(xs).clamp(0, 1) - xs).abs().mean() * 255)

    runs = [("ttl", 4, lr, True) for lr in cfg["f_lr_grid"]] + [("ttl", 4, 5e-4, False), ("sup-minority", 4, 5e-4, True),
                                                              ("ttl", 0, 5e-4, True)]
    out = []
    for row, k, lr, rescale in runs:
        m = start(row, seed + k, rescale)
        log = finetune(m, pairs, rows[row], cfg, seed + k, "cpu",
                       out_dir / "runs" / f"{row}-draw{k}-lr{lr:g}-rescale{int(rescale)}",
                       validate=lambda mm: selection_scores(mm, small), resume=True, progress=False, lr=lr)
        out.append({"row": row, "draw": k, "lr": lr, "rescale": rescale, "best": log["best"]["value"],
                    "best_step": log["best"]["step"], "moved_grey_levels": moved(m.cpu()),
                    "curve": [round(v["val_select_psnr_y"], 3) for v in log["val"]]})
        print({k2: v for k2, v in out[-1].items() if k2 != "curve"}, out[-1]["curve"], f"{time.time() - t0:.0f} s",
              flush=True)
    minority = Minority(pairs, cfg["f_fraction"], seed + 4)
    record = {"experiment": "ttl draw-4 stall (after the 2f8dfb5 study)", "preset": a.preset,
              "git_revision": C.git_revision(), "study_revision": rec.get("git_revision"),
              "draw4_scenes": minority.scenes,
              "draw4_amounts": [pairs.amounts[i] for i in minority.indices],
              "input_moved_grey_levels": 0.0, "runs": out, "wall_s": round(time.time() - t0, 1)}
    (out_dir / "draw4_stall.json").write_text(json.dumps(record, indent=1))
    print(f"done {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
