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
# # 04 — Fine-tuning on a minority of synthetic pairs, and the baselines
#
# *Task transfer learning for image deraining*, notebook 4 of 5. Design: [`docs/design.md`](../docs/design.md) §6. Claim C3.
#
# The distilled student of notebook 03 (`ttl`) is fine-tuned on a **minority of the scenes** (`f_fraction` of the
# training photographs) of a fixed paired synthetic training set: the train split of the clean photographs
# (`clean_dir`), each rendered `f_renders` times, once, like a dataset on disk, with a rain amount that cycles through
# `f_rain`: the calibrated synthetic light and heavy rain, and no rain at all. The rain-free renders and the networks'
# context path (`context`: whole-image statistics modulate the bottleneck) are the fix for a defect found on public
# light-rain pairs: trained on light and heavy rain only, every model learned one global darkening of the size heavy
# rain needs and applied it to light rain too (notebook 05 measures it, before and after, by rain amount). Every row
# of a schedule has the same budget: the same engine, loss (`f_loss`), steps, batch, crops and learning-rate
# schedule. Rows (see `ttl.finetune`):
#
# | row | weights start from | scenes | steps |
# |---|---|---|---|
# | `ttl` | distilled student (T1 + T2) | minority | `f_steps` |
# | `sup-minority` | scratch, student architecture | minority (the key control) | `f_steps` |
# | `sup-full` | scratch, student architecture | all | `f_steps` |
# | `sup-full-large` | scratch, teacher-sized | all | `f_steps` |
# | `sup-full-no-context`, `sup-full-before` | `sup-full` without the context path; and also without the rain-free renders (as before the fix) | all | `f_steps` |
# | `syn2real` | scratch + Syn2Real's Gaussian-process loss on unlabeled real-domain images (Yasarla et al., CVPR 2020) | minority | `f_steps` |
# | `ttl@…`, `sup-minority@…` | the fraction sweep | 1 %, 5 %, 100 % | `f_steps` |
# | `t1-only`, `t2-only` | a student distilled from one teacher | minority | `f_steps_short` |
# | `no-distillation` | T2 itself (teacher-sized) | minority | `f_steps_short` |
# | `frozen-encoder` | distilled student, encoder frozen | minority | `f_steps_short` |
# | `ttl-short`, `sup-minority-short` | the ablations' references on their schedule | minority | `f_steps_short` |
#
# Headline rows use `f_seeds` seeds (3 at `default`): a seed fixes the minority's scenes (nested across fractions,
# different between seeds), the data order and the scratch initialisation; seed *k* of `ttl` and of
# `sup-minority` share their minority. Every model is scored on held-out **validation** data: centre crops of the
# val-split photographs with synthetic rain, and the same crops with realistic rain scored against its streak-free
# target (`realistic`, deraining) and against the clean scene (`realistic_clean`). The ground truths only score;
# nothing trains on them. The test sets are notebook 05's. Nothing here is tuned on test data.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # clean photographs (the scene bank): their train split makes the synthetic pairs (None: procedural)
synthetic_dir = None  # a paired synthetic dataset on disk (Rain100L/H, Rain13K, ...): replaces the rendered pairs
real_dir = None  # real rainy photographs (train split): with clean_dir's rendered realistic rain, the unlabeled
#                  real-domain images of Syn2Real and of the ablations' distillations
public_dir = None  # unused here (public pairs are test data: notebook 05)
teachers_dir = None  # folder with t1.pt and t2.pt (None: notebook 02's checkpoints of this preset)
student_path = None  # the distilled student (None: notebook 03's checkpoint of this preset)
resume = False  # True continues killed runs from their last checkpoints
only = None  # a list of row names to train only those (e.g. ["ttl", "sup-minority"])
# sizes: None = from the preset (see ttl.config.PRESETS)
f_fraction = None
f_sweep = None
f_seeds = None
f_steps = None
f_steps_short = None
f_lr = None
f_loss = None

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import report
from ttl import finetune as FT
from ttl import plots
from ttl.metrics import METRIC_LABELS

NAME = "04_finetuning"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, dict(f_fraction=f_fraction, f_sweep=f_sweep, f_seeds=f_seeds, f_steps=f_steps,
                                    f_steps_short=f_steps_short, f_lr=f_lr, f_loss=f_loss))
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
synthetic_path = C.check_dir(synthetic_dir, "synthetic_dir")
C.check_dir(public_dir, "public_dir")
teachers_path = Path(teachers_dir or Path(results_dir) / "02_teacher_pretraining" / preset / "checkpoints")
student_file = Path(student_path or Path(results_dir) / "03_distillation" / preset / "checkpoints" / "student.pt")
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
print(f"preset={preset} seed={seed} device={dev} fraction={cfg['f_fraction']} seeds={cfg['f_seeds']} "
      f"steps={cfg['f_steps']}/{cfg['f_steps_short']} loss={cfg['f_loss']} student={student_file}")
print("scene source:", "clean_dir " + str(clean_path) if clean_path else ("synthetic_dir " + str(synthetic_path)
                                                                        if synthetic_path else "procedural (fallback)"))

# %% [markdown]
# ## 1. Train every row
# Pretrained rows (`ttl`, the ablations, the sweep) start from a zero output head, i.e. from the identity like
# every scratch row (`f_reset_head`): the transferred knowledge is in the features. This was chosen on the
# *synthetic* validation set (see the README's ledger); the realistic numbers below played no part in it.

# %%
out = FT.run_finetuning(cfg, seed, str(dev), student_file, teachers_path, res_dir, real_dir=real_path,
                        clean_dir=clean_path, synthetic_dir=synthetic_path, resume=resume, only=only)
rows, runs = out["rows"], out["runs"]
scores = {n: FT.model_scores(r, cfg["bootstrap"], seed) for n, r in runs.items()}
params = {n: r[0]["params"] for n, r in runs.items()}

# %% [markdown]
# ## 2. Every row on the validation sets
# Mean over seeds, `[95 % CI over images]` (bootstrap of the seed-averaged per-image values). In the figure the
# thick bar is that interval, the thin black bar the t-interval over seeds (headline rows), the dashed line
# the rainy input.

# %%
table = FT.results_table(rows, scores, params, cfg)
table.to_csv(res_dir / "results_table.csv", index=False)
display(table)
inp = {d: v["psnr_y"] for d, v in out["input"].items()}
print("rainy input:", {d: f"PSNR-Y {v['psnr_y']:.2f} dB, SSIM-Y {v['ssim_y']:.3f}" for d, v in out["input"].items()})
fig = plots.plot_rows(scores, fig_dir / "rows_psnr_y.png", reference=inp)

# %% [markdown]
# ## 3. The headline comparisons (C3)
# `ttl` minus each baseline, paired by image (seed-averaged values; bootstrap 95 % CI, Wilcoxon signed-rank p)
# and by seed (t-interval over the seed-matched differences). Positive = `ttl` better.

# %%
baselines = [b for b in ("sup-minority", "sup-full", "sup-full-large", "syn2real") if b in runs and "ttl" in runs]
comparisons = {b: FT.compare(scores, runs, "ttl", b, cfg["bootstrap"], seed) for b in baselines}
comp = FT.comparison_table(comparisons)
comp.to_csv(res_dir / "comparisons.csv", index=False)
display(comp)

# %% [markdown]
# ## 4. The fraction sweep
# `ttl` against training the same architecture from scratch, as the share of paired data grows (100 % from
# scratch is `sup-full`). Intervals over images; the headline fraction is averaged over its seeds.

# %%
sweep = FT.sweep_points(rows, scores)
sweep.to_csv(res_dir / "sweep.csv", index=False)
fig = plots.plot_sweep(sweep, fig_dir / "fraction_sweep.png")
display(sweep.pivot_table(index=["domain", "fraction"], columns="method", values="mean").round(2))

# %% [markdown]
# ## 5. Why: the ablations
# Each ablation minus `sup-minority-short` (the same minority from scratch, on the same shorter schedule), paired by
# image: what each teacher, distillation itself and a trainable encoder contribute. The sentences under the table
# are computed from these rows and the sweep. Keep in mind what T2 learns: its label is the real-domain rainy image
# itself (before the extra scattering), so its features, and the output the student is taught to copy, *keep* rain
# streaks — the opposite of what fine-tuning on synthetic pairs asks for — while T1's features only have to *see*
# rain.

# %%
ablations = [a for a in ("ttl-short", "t1-only", "t2-only", "no-distillation", "frozen-encoder") if a in runs]
ref = "sup-minority-short"
abl = pd.DataFrame([{"row": a, "validation": dom, f"{METRIC_LABELS['psnr_y']} minus {ref}":
                     f"{r['psnr_y']['mean_diff']:+.2f} [{r['psnr_y']['low']:+.2f}, {r['psnr_y']['high']:+.2f}]",
                     f"{METRIC_LABELS['ssim_y']} minus {ref}":
                     f"{r['ssim_y']['mean_diff']:+.3f} [{r['ssim_y']['low']:+.3f}, {r['ssim_y']['high']:+.3f}]"}
                    for a in ablations if ref in runs
                    for dom, r in FT.compare(scores, runs, a, ref, cfg["bootstrap"], seed).items()])
abl.to_csv(res_dir / "ablations.csv", index=False)
display(abl)
diagnosis = FT.diagnose(scores, runs, cfg["bootstrap"], seed)
print("\n".join(diagnosis))

# %% [markdown]
# ## 6. Curves and examples
# Validation PSNR-Y during training (first seed of the headline rows), and outputs on synthetic and realistic
# validation crops (downscaled crops of the val-split photographs).

# %%
fig = plots.plot_val_curves({n: runs[n][0]["log"] for n in ("ttl", "sup-minority", "sup-full", "syn2real") if n in runs},
                            fig_dir / "validation_curves.png")
shown = [n for n in ("sup-minority", "sup-full", "syn2real", "ttl") if n in runs]
for dom in ("synthetic", "realistic"):
    fig = plots.image_grid(FT.example_rows(out["val"][dom], {n: runs[n][0]["checkpoint"] for n in shown}, n=4,
                                           target="streak-free target" if dom == "realistic" else "clean"),
                           fig_dir / f"examples_{dom}.png")

# %% [markdown]
# ## 7. Record
# Checkpoints: `checkpoints/<model>.pt` (first seed) and `<model>.seed<k>.pt`; each loads alone with
# `ttl.models.load_model` (and `ttl derain --checkpoint`).

# %%
models = {n: {**scores[n], "params": params[n], "fraction": rows[n].fraction, "init": rows[n].init,
              "steps": FT.recipe_steps(rows[n], cfg), "rain": rows[n].rain or cfg["f_rain"],
              "context": runs[n][0]["context"], "note": rows[n].note, "seeds": [r["seed"] for r in runs[n]],
              "checkpoints": [r["checkpoint"] for r in runs[n]]} for n in runs}
metrics = {"models": models, "input": {d: {k: v for k, v in s.items() if k != "per_image"}
                                       for d, s in out["input"].items()},
           "comparisons": comparisons, "sweep": sweep.to_dict(orient="records"), "diagnosis": diagnosis,
           "logs": {n: [r["log"] for r in rs] for n, rs in runs.items()}, "distil_logs": out["distil_logs"]}
manifest = {**out["manifest"], "data_source": C.data_source(clean_dir=clean_path, real_dir=real_path,
                                                           synthetic_dir=synthetic_path)}
record = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record)
print(f"wrote {res_dir / 'metrics.json'} ({record['wall_time_s']:.0f} s)")
if "sup-minority" in comparisons:
    for dom in comparisons["sup-minority"]:
        r = comparisons["sup-minority"][dom]["psnr_y"]
        verdict = "better" if r["low"] > 0 else ("worse" if r["high"] < 0 else "not distinguishable")
        print(f"{dom}: ttl minus sup-minority PSNR-Y {r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}] "
              f"-> ttl is {verdict}")

# %% [markdown]
# ## What we found
# Generated from this run's record (`ttl.report.findings`): the same text as this notebook's part of the README's
# results section, every number read from `metrics.json`.

# %%
display(Markdown(report.findings(record)))
