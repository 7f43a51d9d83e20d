# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 — Knowledge distillation: both teachers into one small student
#
# *Task transfer learning for image deraining*, notebook 3 of 5. Design: [`docs/design.md`](../docs/design.md) §5. Claim C4 (the size).
#
# The teachers of notebook 02 are frozen. One student encoder-decoder, several times smaller than T1 and T2
# together, learns from unlabeled real-domain images only: light 1x1 adapters map its encoder stages onto T1's
# and T2's encoder stages and its decoder stages onto T2's decoder stages, and its output is matched to T2's.
# Features are compared after standardising both sides per image (`d_norm = "standardise"`,
# `ttl.distill.FEATURE_LOSSES`): the study before this fix matched the teachers' raw feature scale, and its
# distilled student started fine-tuning with deep activations 38-230x those of a fresh network (README ledger;
# notebook 04 §7 measures both starts side by side and fine-tunes both).
# We report the size ratio and how much of each teacher the student kept: the held-out matching losses, the
# student on T2's task, and a linear probe of its encoder on T1's task.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # clean photographs (train split): realistic rain is rendered on them, the clean crop is dropped
synthetic_dir = None  # unused here: distillation never sees synthetic pairs
real_dir = None  # real rainy photographs (train split): with the rendered ones, the unlabeled real-domain images
public_dir = None  # unused here
teachers_dir = None  # folder with t1.pt and t2.pt (None: notebook 02's checkpoints of this preset)
resume = False  # True continues a killed distillation run from its last checkpoint
# sizes: None = from the preset; any other size of ttl.config.PRESETS may be passed too (papermill -p NAME VALUE)
s_width = None
d_steps = None
d_norm = None

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import report
from ttl import plots
from ttl.distill import run_distillation
from ttl.models import count_flops, count_params, save_model
from ttl.stats import bootstrap_ci

NAME = "03_distillation"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, C.notebook_settings(globals(), preset))  # the sizes above, or any other passed
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
C.check_dir(synthetic_dir, "synthetic_dir"), C.check_dir(public_dir, "public_dir")
teachers_path = Path(teachers_dir) if teachers_dir else Path(results_dir) / "02_teacher_pretraining" / preset / "checkpoints"
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
print(f"preset={preset} seed={seed} device={dev} real_dir={real_path} teachers={teachers_path}")

# %% [markdown]
# ## 1. Distil

# %%
out = run_distillation(cfg, seed, str(dev), teachers_path, res_dir / "runs" / "student", real_dir=real_path,
                       resume=resume, clean_dir=clean_path)
fig = plots.plot_curves(out["log"], fig_dir / "training.png", title="distillation", val_key="val_total",
                        val_label="matching loss (held out)")

# %% [markdown]
# ## 2. Size, and what the student kept
# Parameters and FLOPs at 256x256; held-out matching losses (per stage, as `d_norm` compares features, averaged over stages);
# the student on T2's task (scattering reconstruction, PSNR-Y against the image before the degradation) next to
# T2; a linear probe (logistic regression on the pooled last encoder stage) on T1's task for the student and,
# as the references, for T1's own encoder (above) and for a randomly initialised student (below: what the
# architecture gives for free). 95 % bootstrap intervals over images.

# %%
nets = {"t1": out["t1"], "t2": out["t2"], "student": out["student"]}
params = {k: count_params(v) for k, v in nets.items()}
sizes = pd.DataFrame({k: {"params (M)": params[k] / 1e6, "GFLOPs @256": count_flops(v, 256) / 1e9}
                      for k, v in nets.items()}).T
ratio = (params["t1"] + params["t2"]) / params["student"]
display(sizes)
print(f"student / (T1 + T2) = 1 / {ratio:.1f}")
nb = cfg["bootstrap"]
ci = lambda v: dict(zip(("mean", "low", "high"), bootstrap_ci(v, n_boot=nb, seed=seed)))  # noqa: E731
t2s, t1s = out["t2_task"], out["t1_task"]
kept = pd.DataFrame([
    {"task": "T2: scattering, PSNR-Y (dB)", "who": "student", **ci(t2s["student"]["psnr_y"])},
    {"task": "T2: scattering, PSNR-Y (dB)", "who": "T2", **ci(t2s["t2"]["psnr_y"])},
    {"task": "T2: scattering, PSNR-Y (dB)", "who": "degraded input", **ci(t2s["t2"]["input_psnr_y"])},
    {"task": "T1: recognition, linear-probe accuracy", "who": "student", **ci(t1s["student_probe"]["per_item_correct"])},
    {"task": "T1: recognition, linear-probe accuracy", "who": "T1 encoder", **ci(t1s["t1_probe"]["per_item_correct"])},
    {"task": "T1: recognition, linear-probe accuracy", "who": "random student",
     **ci(t1s["random_probe"]["per_item_correct"])},
])
kept.to_csv(res_dir / "kept.csv", index=False)
display(kept)
display(pd.Series(out["held_out_losses"], name="held-out matching loss"))

# %%
save_model(res_dir / "checkpoints" / "student.pt", out["student"], preset=preset, seed=seed, revision=revision,
           teachers=str(teachers_path))
metrics = {"params": params, "size_ratio_teachers_over_student": ratio, "sizes": sizes.to_dict(orient="index"),
           "held_out_losses": out["held_out_losses"], "kept": kept.to_dict(orient="records"),
           "t2_task": t2s, "t1_task": t1s, "log": out["log"]}
manifest = {**out["manifest"], "data_source": C.data_source(clean_dir=clean_path, real_dir=real_path)}
record = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record)
print(f"wrote {res_dir / 'metrics.json'} ({record['wall_time_s']:.0f} s)")

# %% [markdown]
# ## What we found
# Generated from this run's record (`ttl.report.findings`): the same text as this notebook's part of the README's
# results section, every number read from `metrics.json`.

# %%
display(Markdown(report.findings(record)))
