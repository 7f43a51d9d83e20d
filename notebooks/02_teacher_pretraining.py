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
# # 02 — Teachers on connected tasks (real-domain data only)
#
# *Task transfer learning for image deraining*, notebook 2 of 5. Design: [`docs/design.md`](../docs/design.md) §4.
#
# Two tasks whose labels are free on real rainy data, so the teachers never need a clean ground truth:
# - **T1, rain recognition**: rainy vs rain-free photographs. Positives are real-domain rainy images: the real rainy
#   photographs (`real_dir`) and realistic rain rendered on the clean photographs (`clean_dir`); negatives are those
#   clean photographs through the same camera (noise, tone curve, JPEG). The same scenes appear in both classes, so
#   T1 must learn rain, not the collection or the sensor.
# - **T2, rain-scattering reconstruction**: a real-domain rainy image is degraded further by rain scattering
#   (veiling, forward-scattering blur, glow); T2 restores the image before that degradation.
#
# Everything uses the *train* splits (by file, stratified by collection, `ttl.scenes.split_files`); held-out
# results use the test splits. No clean image of the real domain is ever given to training:
# `ttl.datasets.RealDomainUnlabeled` yields rainy images only (it keeps file paths, renders inside, and drops the
# clean crop). Without photographs, realistic rain on procedural scenes stands in.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # rain-free photographs: T1's negatives, and the scenes of the rendered real-domain images
synthetic_dir = None  # unused here: teachers never see synthetic pairs
real_dir = None  # real rainy photographs (train split: T2's images, and T1's positives together with clean_dir)
public_dir = None  # unused here
resume = False  # True continues killed training runs from their last checkpoint
# sizes: None = from the preset; any other size of ttl.config.PRESETS may be passed too (papermill -p NAME VALUE)
t_width = None
t1_steps = None
t2_steps = None
t_scenes = None

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import report
from ttl import plots
from ttl.models import count_flops, count_params, save_model
from ttl.stats import auc_ci, bootstrap_ci
from ttl.teachers import train_teachers

NAME = "02_teacher_pretraining"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, C.notebook_settings(globals(), preset))  # the sizes above, or any other passed
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
C.check_dir(synthetic_dir, "synthetic_dir"), C.check_dir(public_dir, "public_dir")
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
print(f"preset={preset} seed={seed} device={dev} real_dir={real_path} clean_dir={clean_path}")
print({k: v for k, v in cfg.items() if k.startswith("t")})

# %% [markdown]
# ## 1. Train both teachers
# One engine for both (`ttl.engine.train`): AdamW, warm-up + cosine, clipping, validation on the held-out
# split, atomic checkpoints under `results/02_teacher_pretraining/<preset>/runs/` (pass `resume=True` to
# continue a killed run).

# %%
out = train_teachers(cfg, seed, str(dev), res_dir / "runs", real_dir=real_path, clean_dir=clean_path, resume=resume)
ex = out["examples"]
rows = {"T1 input": list(ex["t1"]["image"][:4]), "T2 input": list(ex["t2"]["input"][:4]),
        "T2 output": list(out["t2"](ex["t2"]["input"][:4]).detach().clamp(0, 1)), "T2 target": list(ex["t2"]["target"][:4])}
fig = plots.image_grid(rows, fig_dir / "examples.png")
print("T1 labels of the first row:", ex["t1"]["label"][:4].tolist())

# %%
fig = plots.plot_curves(out["t1_log"], fig_dir / "t1_training.png", title="T1 (recognition)",
                        val_key="val_roc_auc", val_label="ROC-AUC (held out)")
fig = plots.plot_curves(out["t2_log"], fig_dir / "t2_training.png", title="T2 (scattering)",
                        val_key="val_psnr_y", val_label="PSNR-Y (dB, held out)")

# %% [markdown]
# ## 2. Each teacher on its own task, on held-out data
# T1: accuracy and ROC-AUC on the test split (rainy and rain-free images in equal numbers), and, with photographs,
# separately on (a) the same test scenes, clean and with realistic rain, and (b) real rainy vs clean test
# photographs. T2: PSNR-Y / SSIM-Y of the reconstruction against the image before the scattering degradation, and
# of the degraded input itself. 95 % bootstrap intervals over images.

# %%
nb = cfg["bootstrap"]
e1, e2 = out["t1_eval"], out["t2_eval"]
gain = [a - b for a, b in zip(e2["psnr_y"], e2["input_psnr_y"])]
rows = []
for label, ev in (("T1 recognition", e1), ("T1 (a): same scenes, clean vs realistic rain", out.get("t1_same_scenes")),
                  ("T1 (b): real rainy vs clean photographs", out.get("t1_real_vs_clean"))):
    if ev is None:
        continue
    rows += [{"teacher": label, "metric": f"accuracy (n={ev['n']})",
              **dict(zip(("mean", "low", "high"), bootstrap_ci(ev["per_item_correct"], n_boot=nb, seed=seed)))},
             {"teacher": label, "metric": "ROC-AUC",
              **dict(zip(("mean", "low", "high"), auc_ci(ev["scores"], ev["labels"], nb, seed=seed)))}]
rows += [
    {"teacher": "T2 scattering", "metric": "PSNR-Y (dB)", **dict(zip(("mean", "low", "high"), bootstrap_ci(e2["psnr_y"], n_boot=nb, seed=seed)))},
    {"teacher": "T2 scattering", "metric": "input PSNR-Y (dB)", **dict(zip(("mean", "low", "high"), bootstrap_ci(e2["input_psnr_y"], n_boot=nb, seed=seed)))},
    {"teacher": "T2 scattering", "metric": "gain PSNR-Y (dB)", **dict(zip(("mean", "low", "high"), bootstrap_ci(gain, n_boot=nb, seed=seed)))},
    {"teacher": "T2 scattering", "metric": "SSIM-Y", **dict(zip(("mean", "low", "high"), bootstrap_ci(e2["ssim_y"], n_boot=nb, seed=seed)))},
]
table = pd.DataFrame(rows)
table.to_csv(res_dir / "teacher_metrics.csv", index=False)
display(table.round(3))

# %% [markdown]
# ## 3. Sizes, and the teachers for notebook 03

# %%
sizes = {name: {"params": count_params(out[name]), "gflops_256": count_flops(out[name], 256) / 1e9}
         for name in ("t1", "t2")}
display(pd.DataFrame(sizes).T.astype({"params": int}).round(3))
for name in ("t1", "t2"):
    save_model(res_dir / "checkpoints" / f"{name}.pt", out[name], preset=preset, seed=seed, revision=revision)

# %%
metrics = {
    "t1": e1, "t2": e2, "t1_same_scenes": out.get("t1_same_scenes"), "t1_real_vs_clean": out.get("t1_real_vs_clean"),
    "table": table.to_dict(orient="records"), "sizes": sizes,
    "logs": {"t1": out["t1_log"], "t2": out["t2_log"]},
}
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
