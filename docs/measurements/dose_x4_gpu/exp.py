"""The x4 pretraining budget of issue 14's dose-response, run outside `make study` on a lent GPU (one H200).

The default study's dose-response stops at x1 (its own teachers and student) because x4 (T1 6000, T2 2800,
distillation 3200 steps) does not fit its time on 2 CPU cores. This script runs the same experiment on a GPU at the
default preset's sizes: teachers and distillation at x1 and x4, each student fine-tuned like `ttl` on minority draws
1..3 (the default's draws; draw 0 is the study's search winner) at `ttl`'s learning rate chosen by the committed
default study's search, `sup-minority` on the same draws at its own chosen rate, and `ttl - sup-minority` on the
validation report crops with 95 % intervals over draws and images (ttl.dose.dose_table), plus teacher quality per
budget. It reuses the library's functions (ttl.teachers, ttl.distill, ttl.dose, ttl.finetune, ttl.heldout,
ttl.scores) unchanged.

Departures from the CPU study, so its numbers compare within this run only: CUDA with bf16 autocast (the CPU run is
fp32), the GPU image's torch, and the photographs re-encoded as JPEG at 320 px short side (the study's photo_size)
to fit the 64 MiB transfer limit of the lent machine.

Usage: python docs/measurements/dose_x4_gpu/exp.py DATA_DIR OUT_DIR [--lr-ttl 5e-3 --lr-sup 2e-3]
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
from ttl.distill import distil  # noqa: E402
from ttl.dose import dose_response, dose_table, teacher_quality  # noqa: E402
from ttl.finetune import (evaluate_model, finetune, prepare_start, recipes, selection_scores,  # noqa: E402
                          start_batch, synthetic_pairs)
from ttl.heldout import split_validation, validation_sets  # noqa: E402
from ttl.models import save_model  # noqa: E402
from ttl.teachers import train_teachers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--lr-ttl", type=float, default=5e-3)  # results/04_finetuning/default/metrics.json: search
    ap.add_argument("--lr-sup", type=float, default=2e-3)
    ap.add_argument("--budgets", type=float, nargs="+", default=[4.0])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--revision", default=None, help="the git revision of the code (the copy sent has no .git)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale every step count (a quick check: 0.05)")
    a = ap.parse_args()
    t0 = time.time()
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = C.resolve_config(a.preset, {})
    if a.steps_scale != 1.0:
        for k in ("t1_steps", "t2_steps", "d_steps", "f_steps", "f_steps_minority"):
            cfg[k] = max(2, round(cfg[k] * a.steps_scale))
        cfg["f_val_every"] = max(1, round(cfg["f_val_every"] * a.steps_scale))
    cfg["f_dose"], cfg["f_dose_draws"] = a.budgets, a.draws
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    real, clean = Path(a.data) / "real_rainy", Path(a.data) / "clean_scenes"
    seed = 0
    root = out_dir / "runs"
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
           "threads": torch.get_num_threads()}
    print(env, flush=True)

    pairs = synthetic_pairs(cfg, seed, "train", clean)
    small, val = split_validation(validation_sets(cfg, seed, clean), cfg["f_val_select"])
    rows = {r.name: r for r in recipes(cfg)}
    print(f"data ready {time.time() - t0:.0f} s", flush=True)

    # x1: the study's own budget, trained here like notebooks 02 and 03 do
    t = train_teachers(cfg, seed, dev, root / "x1", real, clean, resume=True)
    tdir = root / "x1" / "teachers"
    save_model(tdir / "t1.pt", t["t1"])
    save_model(tdir / "t2.pt", t["t2"])
    d, d_log, *_ = distil(t["t1"], t["t2"], cfg, seed, dev, root / "x1" / "student", real, resume=True, clean_dir=clean)
    student = {k: v.clone() for k, v in d.student.state_dict().items()}
    print(f"x1 pretraining done {time.time() - t0:.0f} s", flush=True)

    def tune(name: str, init, k: int, lr: float) -> dict:
        torch.manual_seed(seed + k)
        model = init(seed + k)
        log = finetune(model, pairs, rows[name], cfg, seed + k, dev, root / name / f"seed{k}",
                       validate=lambda m: selection_scores(m, small), resume=True, lr=lr)
        model = model.cpu().eval()
        return {"seed": seed + k, "lr": lr, "step": log["best"]["step"], "log": {"best": log["best"]},
                "val": evaluate_model(model, val)}

    calib = start_batch(pairs)

    def from_student(s: int):  # as ttl.finetune.run_finetuning prepares ttl's start (head reset, layers rescaled)
        from ttl.models import build_model

        m = build_model(d.student.spec)
        m.load_state_dict(student)
        prepare_start(m, cfg, calib, s)
        return m

    def scratch(s: int):
        from ttl.models import RestorationNet

        return RestorationNet(width=cfg["s_width"], depth=t["t2"].spec["depth"], blocks=t["t2"].spec["blocks"],
                              context=t["t2"].spec.get("context", False))

    draws = range(1, a.draws + 1)
    ttl_runs = [None] + [tune("ttl", from_student, k, a.lr_ttl) for k in draws]  # index = draw
    sup_runs = [tune("sup-minority", scratch, k, a.lr_sup) for k in draws]
    print(f"x1 fine-tuning done {time.time() - t0:.0f} s", flush=True)

    out = {"rows": rows, "search": {"ttl": {"lr": a.lr_ttl}}, "pairs": pairs, "val_select": small, "val": val,
           "runs": {"ttl": ttl_runs}}
    dose = dose_response(cfg, seed, dev, out, tdir, root, real_dir=real, clean_dir=clean, resume=True)
    table = dose_table(dose, sup_runs, cfg["bootstrap"], seed)
    print(table.to_string(), flush=True)
    table.to_csv(out_dir / "dose_x4.csv", index=False)
    slim = [{k: v for k, v in p.items() if k not in ("runs", "pretraining_logs")}
            | {"draws": [{"seed": r["seed"], "step": r["step"], "lr": r["lr"],
                          **{f"{s}_psnr_y": r["val"][s]["psnr_y"] for s in ("synthetic", "realistic")}}
                         for r in p["runs"]]} for p in dose["points"]]
    record = {"experiment": "pretraining dose-response x1 vs x4 on a GPU (issue 14)", "preset": a.preset,
              "steps_scale": a.steps_scale, "seed": seed, "git_revision": a.revision or C.git_revision(), "environment": env,
              "config": cfg, "lr": {"ttl": a.lr_ttl, "sup-minority": a.lr_sup}, "points": slim,
              "sup_minority": [{"seed": r["seed"], "step": r["step"], **{f"{s}_psnr_y": r["val"][s]["psnr_y"]
                                                                        for s in ("synthetic", "realistic")}}
                               for r in sup_runs],
              "x1_teacher_quality": teacher_quality(t["t1"], t["t2"], cfg, seed, real, clean),
              "table": table.to_dict(orient="records"), "wall_s": round(time.time() - t0, 1)}
    (out_dir / "dose_x4.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"done {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
