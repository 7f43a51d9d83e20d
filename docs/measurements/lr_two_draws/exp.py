"""Would a learning-rate search over more than one draw choose differently? (after the 281b2f9 study)

Notebook 04 searches each row's learning rate over ``f_lr_grid`` on draw 0 only and trains the other draws at the
winner. In the committed run of 281b2f9, `ttl` chose 5e-3 over 2e-3 by 0.42 dB on the selection crops, and at 5e-3
its draws 1-3 peaked within 100-200 steps. This script repeats the search of `ttl` and `sup-minority` on draws 1
and 2, exactly as notebook 04 runs a trial (its recipe, steps, start preparation and checkpoint selection), and
writes, per row, learning rate and draw, the best selection score (the quantity the search compares) and the
validation report scores. Draw 0's trials are read from the study's record. Nothing here touches test data.

Usage: python docs/measurements/lr_two_draws/exp.py DATA_DIR STUDY_RESULTS_DIR OUT_DIR [--draws 1 2]
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
from ttl.finetune import (evaluate_model, finetune, prepare_start, recipes, selection_scores,  # noqa: E402
                          start_batch, synthetic_pairs)
from ttl.heldout import split_validation, validation_sets  # noqa: E402
from ttl.models import RestorationNet, load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("results", help="the study's results/ folder (notebooks 03 and 04 finished)")
    ap.add_argument("out")
    ap.add_argument("--draws", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--preset", default="default")
    a = ap.parse_args()
    t0 = time.time()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = Path(a.results)
    rec = json.loads((res / "04_finetuning" / a.preset / "metrics.json").read_text())
    cfg = C.resolve_config(a.preset, {})
    seed, dev = int(rec["seed"]), "cpu"
    clean = Path(a.data) / "clean_scenes"
    pairs = synthetic_pairs(cfg, seed, "train", clean)
    small, val = split_validation(validation_sets(cfg, seed, clean), cfg["f_val_select"])
    rows = {r.name: r for r in recipes(cfg)}
    calib = start_batch(pairs)
    student_path = res / "03_distillation" / a.preset / "checkpoints" / "student.pt"
    spec = load_model(student_path)[0].spec

    def start(row: str, s: int):
        torch.manual_seed(s)
        if row == "sup-minority":
            return RestorationNet(width=cfg["s_width"], depth=spec["depth"], blocks=spec["blocks"],
                                  context=spec.get("context", False))
        m = load_model(student_path)[0]
        prepare_start(m, cfg, calib, s)
        return m

    trials = []
    for row in ("ttl", "sup-minority"):
        recorded = {t.get("draw", 0) for t in rec["search"][row]["trials"]}  # one-draw records (before 8db6ecf): 0
        for t in rec["search"][row]["trials"]:
            trials.append({"row": row, "lr": t["lr"], "draw": t.get("draw", 0), "best": t["best"],
                           "step": t["best_step"], "source": "study record"})
        for k in [k for k in a.draws if k not in recorded]:
            for lr in cfg["f_lr_grid"]:
                m = start(row, seed + k)
                log = finetune(m, pairs, rows[row], cfg, seed + k, dev, out_dir / "runs" / row / f"lr{lr:g}" / f"seed{k}",
                               validate=lambda mm: selection_scores(mm, small), resume=True, lr=lr)
                v = evaluate_model(m.cpu().eval(), val)
                trials.append({"row": row, "lr": lr, "draw": k, "best": log["best"]["value"], "step": log["best"]["step"],
                               **{f"{s}_psnr_y": v[s]["psnr_y"] for s in ("synthetic", "realistic")}, "source": "this run"})
                print(trials[-1], f"{time.time() - t0:.0f} s", flush=True)
    summary = {}
    for row in ("ttl", "sup-minority"):
        by_lr = {lr: [t["best"] for t in trials if t["row"] == row and t["lr"] == lr] for lr in cfg["f_lr_grid"]}
        means = {f"{lr:g}": sum(v) / len(v) for lr, v in by_lr.items()}
        summary[row] = {"mean_selection_by_lr": means, "chosen_on_draw0": rec["search"][row]["lr"],
                        "chosen_on_all_draws": max(means, key=means.get)}
        print(row, summary[row], flush=True)
    record = {"experiment": "lr search over draws 0..k (after the 281b2f9 study)", "preset": a.preset,
              "git_revision": C.git_revision(), "study_revision": rec.get("git_revision"), "grid": cfg["f_lr_grid"],
              "trials": trials, "summary": summary, "wall_s": round(time.time() - t0, 1)}
    (out_dir / "lr_two_draws.json").write_text(json.dumps(record, indent=1))
    print(f"done {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
