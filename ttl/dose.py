"""The pretraining dose-response (notebook 04): does ``ttl``'s advantage over ``sup-minority`` grow with the budget
of pretraining?

For each budget factor of ``f_dose`` (besides x1, the study's own teachers and student), T1, T2 and the distillation
are trained again with ``factor`` times their steps (``t1_steps``, ``t2_steps``, ``d_steps``; same data, seed and
recipe), the student is fine-tuned like ``ttl`` (``ttl``'s chosen learning rate, searched at x1; best validation
checkpoint) on ``f_dose_draws`` minority draws, the same at every budget: those after the lr search's
(``f_search_draws``, ``f_search_draws + 1``, ...; the search's trials would favour x1, where the lr was chosen), and
compared with ``sup-minority`` on the same draws. The budgets run side by side on CPU workers (``f_workers``,
:mod:`ttl.parallel`). Teacher quality is measured
the same way at every budget, on notebook 02's test sets: T1's ROC-AUC on held-out real-domain crops (real rainy
photographs and realistic renders, alternating) against rain-free photographs' crops, T2's PSNR-Y gain over its
degraded input on held-out real-domain images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["teacher_quality", "dose_response", "dose_table"]


def _teacher_tests(cfg: dict, seed: int, real_dir=None, clean_dir=None):
    from .datasets import RealDomainUnlabeled
    from .teachers import RecognitionDataset, ScatteringDataset

    def real(folder):
        return RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_eval"], seed=seed, split="test", real_dir=folder,
                                   clean_dir=clean_dir, photo_size=cfg["photo_size"])

    t1_real = real_dir if clean_dir is not None else None  # as ttl.teachers.train_teachers builds T1's test set
    return RecognitionDataset(real(t1_real), negatives_dir=clean_dir), ScatteringDataset(real(real_dir))


def teacher_quality(t1: nn.Module, t2: nn.Module, cfg: dict, seed: int, real_dir=None, clean_dir=None) -> dict:
    """T1's held-out ROC-AUC and T2's held-out PSNR-Y gain over its input (the test sets of notebook 02)."""
    from .teachers import evaluate_recognition, evaluate_scattering

    rec, scat = _teacher_tests(cfg, seed, real_dir, clean_dir)
    r2 = evaluate_scattering(t2, scat, n=cfg["t_eval"])
    return {"t1_auc": evaluate_recognition(t1, rec, n=cfg["t_eval"])["roc_auc"],
            "t2_gain_db": r2["mean_psnr_y"] - r2["mean_input_psnr_y"]}


def dose_response(cfg: dict, seed: int, device: str, out: dict[str, Any], teachers_dir, out_dir, real_dir=None,
                  clean_dir=None, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the dose-response after :func:`ttl.finetune.run_finetuning` (its result ``out`` gives the data, ``ttl``'s
    chosen learning rate and the x1 point). Returns ``{"points": [{"budget", "t1_auc", "t2_gain_db", "runs"}...]}``
    where ``runs`` are per-draw results like ``out["runs"]["ttl"]``, the x1 point being ``ttl`` itself."""
    from .distill import distil, load_teachers
    from .finetune import checkpoint_name, evaluate_model, finetune, prepare_start, selection_scores, start_batch
    from .models import build_model, save_model
    from .parallel import run_jobs, worker_plan
    from .teachers import train_teachers
    from .utils import resolve_device

    out_dir = Path(out_dir)
    r = out["rows"]["ttl"]
    lr = out["search"]["ttl"]["lr"]
    pairs = out["pairs"]
    calib = start_batch(pairs)
    small = out["val_select"]  # the crops that chose every checkpoint of notebook 04; out["val"] reports
    first = out["search"]["ttl"].get("draws", 1)  # the draws after the lr search's: unbiased at every budget
    draws = list(range(first, first + cfg["f_dose_draws"]))
    if draws[-1] >= len(out["runs"]["ttl"]):
        raise ValueError(f"f_dose_draws={cfg['f_dose_draws']} needs f_draws >= {draws[-1] + 1} (f_draws is "
                         f"{len(out['runs']['ttl'])}, f_search_draws {first}): every budget runs draws {draws}, "
                         "which ttl and sup-minority must have run")
    t1, t2 = load_teachers(teachers_dir)
    points = [{"budget": 1.0, **teacher_quality(t1, t2, cfg, seed, real_dir, clean_dir),
               "steps": {k: cfg[k] for k in ("t1_steps", "t2_steps", "d_steps")},
               "runs": [out["runs"]["ttl"][k] for k in draws]}]
    plan = worker_plan(cfg["f_workers"], resolve_device(device))
    bars = progress and plan["workers"] <= 1  # workers print no bars (ttl.parallel counts finished budgets)

    def point(factor: float) -> dict[str, Any]:
        c = dict(cfg, **{k: max(1, round(factor * cfg[k])) for k in ("t1_steps", "t2_steps", "d_steps")})
        root = out_dir / "runs" / f"dose-x{factor:g}"
        t = train_teachers(c, seed, device, root, real_dir, clean_dir, resume, bars)
        d, d_log, *_ = distil(t["t1"], t["t2"], c, seed, device, root / "student", real_dir, resume, progress=bars,
                              desc=f"distillation (x{factor:g})", clean_dir=clean_dir)
        state = {k: v.clone() for k, v in d.student.state_dict().items()}
        runs = []
        for k in draws:
            torch.manual_seed(seed + k)
            model = build_model(d.student.spec)
            model.load_state_dict(state)
            scale = prepare_start(model, cfg, calib, seed + k)  # as run_finetuning prepares ttl's start
            log = finetune(model, pairs, r, cfg, seed + k, device, root / "finetune" / f"lr{lr:g}" / f"seed{k}",
                           validate=lambda m: selection_scores(m, small), resume=resume, progress=bars, lr=lr)
            log["start_scale"] = scale
            model = model.cpu().eval()
            ckpt = out_dir / "checkpoints" / checkpoint_name(f"ttl-dose-x{factor:g}", k)
            save_model(ckpt, model, recipe=f"ttl-dose-x{factor:g}", seed=seed + k, lr=lr, step=log["best"]["step"])
            runs.append({"seed": seed + k, "checkpoint": str(ckpt), "log": log, "lr": lr,
                         "step": log["best"]["step"], "val": evaluate_model(model, out["val"])})
        return {"budget": factor, **teacher_quality(t["t1"], t["t2"], c, seed, real_dir, clean_dir),
                "steps": {k: c[k] for k in ("t1_steps", "t2_steps", "d_steps")}, "runs": runs,
                "pretraining_logs": {"t1": t["t1_log"], "t2": t["t2_log"], "distillation": d_log}}

    factors = sorted(cfg["f_dose"], reverse=True)  # the longest first
    points += run_jobs(point, [(f,) for f in factors], plan, "dose-response budgets", progress,
                       label=lambda j: f"budget x{j[0]:g}")
    return {"points": sorted(points, key=lambda p: p["budget"]), "lr": lr}


def dose_table(dose: dict[str, Any], sup_runs: list[dict], n_boot: int = 1000, seed: int = 0):
    """One line per budget and validation set: teacher quality and ``ttl - sup-minority`` PSNR-Y on the draws the
    budget ran (``sup-minority``'s runs of the same seeds; 95 % interval over draws and images, draws paired: seed k
    shares its minority)."""
    import pandas as pd

    from .scores import compare, model_scores

    lines = []
    for p in dose["points"]:
        k = len(p["runs"])
        ran = [r["seed"] for r in p["runs"]]
        runs = {"ttl": p["runs"], "sup-minority": sorted((r for r in sup_runs if r["seed"] in ran),
                                                         key=lambda r: ran.index(r["seed"]))}
        scores = {n: model_scores(v, n_boot, seed) for n, v in runs.items()}
        for dom, c in compare(scores, runs, "ttl", "sup-minority", n_boot, seed).items():
            if dom == "realistic_clean":
                continue
            r = c["psnr_y"]
            lines.append({"budget (x preset)": p["budget"], "T1 steps": p["steps"]["t1_steps"],
                          "T1 AUC": round(p["t1_auc"], 3), "T2 gain (dB)": round(p["t2_gain_db"], 2),
                          "draws": k, "set": dom, "ttl minus sup-minority PSNR-Y (dB)": round(r["mean_diff"], 3),
                          "low": round(r["low"], 3), "high": round(r["high"], 3)})
    return pd.DataFrame(lines)
