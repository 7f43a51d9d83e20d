# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — Real-world evaluation and the verdicts
#
# *Task transfer learning for image deraining*, notebook 5 of 5. Design: `STUDY.md` §7. Claims C1–C4.
#
# Every model of notebook 04 (every seed) on data no training step saw:
#
# * **synthetic test** — crops of the bundled photographs (test-only scenes; training used procedural scenes)
#   with synthetic rain, and **realistic test** — the very same crops with realistic rain: full-reference
#   PSNR/SSIM computed as the field's MATLAB scripts do (Y = BT.601 luma of 8-bit RGB; SSIM with an 11×11
#   Gaussian window, σ = 1.5; no border crop; `ttl.metrics`), plus RGB columns;
# * **real photographs** (`real_dir`, only its val and test splits: the teachers and the distillation used the
#   train split) — no ground truth, so NIQE and PIQE (`ttl.noref`), and only as comparisons between models on
#   the same images;
# * **real paired data** when `real_paired_dir` is given (e.g. SPA-Data), whole images, tiled inference.
#
# Then the per-image paired comparisons of `ttl` against every baseline, a gallery, the size/speed table and the
# verdict on each claim, every number read from the run records of notebooks 01–04 and from this run.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # unused here (test scenes are the bundled photographs)
synthetic_dir = None  # unused here
real_dir = None  # real rainy photographs (val and test splits are evaluated)
real_paired_dir = None  # a real paired dataset (e.g. SPA-Data test): full-reference scores on real rain
finetuning_dir = None  # notebook 04's run folder (None: results/04_finetuning/<preset>)
niqe_params = None  # the official NIQE modelparameters.mat (None: the pristine model fitted on bundled photos)
show_real_gallery = False  # draw the gallery of real photographs inline (keep False for committed runs)
# sizes: None = from the preset (see ttl.config.PRESETS)
e_n_test = None
e_real_size = None

# %%
import json
import time
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Image, display

import ttl
from ttl import config as C
from ttl import evaluation as E
from ttl import finetune as FT
from ttl import plots
from ttl.noref import default_niqe_model, load_official_niqe_params

NAME = "05_real_world_evaluation"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, dict(e_n_test=e_n_test, e_real_size=e_real_size))
real_path, paired_path = C.check_dir(real_dir, "real_dir"), C.check_dir(real_paired_dir, "real_paired_dir")
C.check_dir(clean_dir, "clean_dir"), C.check_dir(synthetic_dir, "synthetic_dir")
ft_dir = Path(finetuning_dir or Path(results_dir) / "04_finetuning" / preset)
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
checkpoints = E.finetuned_checkpoints(ft_dir)
niqe_model = load_official_niqe_params(niqe_params) if niqe_params else default_niqe_model()
print(f"preset={preset} device={dev} models={list(checkpoints)} real_dir={real_path} real_paired_dir={paired_path}")

# %% [markdown]
# ## 1. Test data and scores

# %%
sets = E.test_sets(cfg, seed)
real, real_names, real_manifest = E.real_test_images(real_path, cfg["e_real_size"]) if real_path else ([], [], None)
paired = E.paired_real(paired_path) if paired_path else None
results = E.evaluate_checkpoints(checkpoints, sets, real, paired[:2] if paired else None, str(dev),
                                 niqe_model=niqe_model)
scores = {n: FT.model_scores(r, cfg["bootstrap"], seed) for n, r in results.items()}
print(f"{cfg['e_n_test']} test crops per rain; {len(real)} real photographs; "
      f"{len(paired[0]) if paired else 0} real pairs")

# %% [markdown]
# ## 2. Full-reference results
# Mean over seeds, `[95 % CI over images]` (bootstrap of the seed-averaged per-image values). `input` is the
# rainy image itself.

# %%
table = E.score_table(scores)
table.to_csv(res_dir / "test_results.csv", index=False)
display(table[table["test set"] != "real-paired"] if not paired else table)

# %% [markdown]
# ## 3. `ttl` against each baseline, image by image
# `ttl` minus the baseline (positive = `ttl` better): mean of the per-image differences (seed-averaged) with a
# bootstrap 95 % interval and the Wilcoxon signed-rank p-value, and the interval over seed-matched differences.

# %%
baselines = [n for n in checkpoints if n != "ttl"]
comparisons = {b: FT.compare(scores, results, "ttl", b, cfg["bootstrap"], seed) for b in baselines}
comp = pd.DataFrame([{"ttl minus": b, "test set": dom, "metric": {"psnr_y": "PSNR-Y (dB)", "ssim_y": "SSIM-Y"}[m],
                      "diff [95 % CI, images]": f"{r['mean_diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]",
                      "Wilcoxon p": f"{r['wilcoxon_p']:.2g}",
                      "diff [95 % CI, seeds]": f"[{r['ci_seeds'][0]:+.3f}, {r['ci_seeds'][1]:+.3f}]"}
                     for b, c in comparisons.items() for dom, d in c.items() for m, r in d.items()])
comp.to_csv(res_dir / "comparisons.csv", index=False)
display(comp[comp["ttl minus"].isin(["sup-minority", "sup-full", "sup-full-large", "syn2real"])])

# %% [markdown]
# ## 4. Real photographs: NIQE and PIQE
# Lower is better for both. The NIQE pristine model is fitted on the 7 bundled photographs (or the official
# parameters when `niqe_params` is given), so its absolute values are not comparable with published NIQE
# numbers; the paired difference `ttl - model` (negative = `ttl` better) is what matters.

# %%
noref = E.noref_table(results, list(checkpoints), cfg["bootstrap"], seed) if real else {}
nr = pd.DataFrame([{"model": n, **{f"{k.upper()} [95 % CI]": f"{v[k]['mean']:.2f} [{v[k]['low']:.2f}, {v[k]['high']:.2f}]"
                                   for k in ("niqe", "piqe")},
                    **{f"ttl - model, {k.upper()}": (f"{v[k]['ttl_minus']['mean_diff']:+.2f} [{v[k]['ttl_minus']['low']:+.2f}, "
                                                      f"{v[k]['ttl_minus']['high']:+.2f}]") if "ttl_minus" in v[k] else ""
                       for k in ("niqe", "piqe")}} for n, v in noref.items()])
nr.to_csv(res_dir / "noref.csv", index=False)
display(nr if real else "no real photographs given (real_dir=None)")

# %% [markdown]
# ## 5. Gallery
# Realistic test rain on the bundled photographs (committed), and, when real photographs are given, the same
# on them: that one is written to `results/05_real_world_evaluation/<preset>/private/` (never committed: the
# photographs are not ours to publish) and shown inline only with `show_real_gallery=True`.

# %%
shown = [n for n in ("sup-minority", "sup-full", "syn2real", "ttl") if n in checkpoints]
cols = E.gallery_columns({n: checkpoints[n][0] for n in shown}, list(sets["realistic"]["rainy"][:3]), str(dev),
                         clean=list(sets["realistic"]["clean"][:3]))
fig = plots.gallery(cols, fig_dir / "gallery_realistic.png")
if real:
    g = plots.gallery(E.gallery_columns({n: checkpoints[n][0] for n in shown}, real[:4], str(dev)),
                      res_dir / "private" / "gallery_real.png")
    plots.plt.close(g)
    if show_real_gallery:
        display(Image(filename=str(res_dir / "private" / "gallery_real.png")))

# %% [markdown]
# ## 6. Size and speed
# Parameters, GFLOPs for one 256×256 image, and the median latency per megapixel of tiled inference
# (`ttl derain`'s code path) over `e_repeats` runs on a `e_latency_size`² image, on this machine's CPU (and GPU
# when there is one).

# %%
devices = ("cpu",) + (("cuda",) if torch.cuda.is_available() else ())
speed = E.size_speed(checkpoints, cfg["e_latency_size"], cfg["e_repeats"], devices)
speed.to_csv(res_dir / "size_speed.csv", index=False)
display(speed)

# %% [markdown]
# ## 7. Verdicts
# Each claim, the rule that decides it (fixed before looking at the numbers; `ttl.evaluation.VERDICT_RULES`) and
# the numbers behind it. C1 and C2 come from notebook 01, C4 from notebook 03, C3 from the test sets above.

# %%
def record(nb: str):
    p = Path(results_dir) / nb / preset / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


verdict_rows = E.verdicts(record("01_statistical_gap_analysis"), record("03_distillation"), comparisons, noref,
                          cfg["e_margin_db"])
verdict_table = pd.DataFrame(verdict_rows)[["claim", "verdict", "evidence"]]
verdict_table.to_csv(res_dir / "verdicts.csv", index=False)
with pd.option_context("display.max_colwidth", None):
    display(verdict_table)

# %%
models = {n: {dom: {k: v for k, v in s.items() if not k.endswith("per_image")} for dom, s in scores[n].items()}
          for n in scores}
metrics = {"models": models, "comparisons": comparisons, "noref": noref, "verdicts": verdict_rows,
           "size_speed": speed.to_dict(orient="records"), "real_photographs": real_names,
           "per_image": {n: {dom: {k: v for k, v in s.items() if k.endswith("per_image")} for dom, s in scores[n].items()}
                         for n in scores}}
manifest = {"test_sets": {"source": "bundled photographs", "n": cfg["e_n_test"], "size": cfg["e_test_size"]},
            "real": real_manifest, "real_paired": paired[2] if paired else None,
            "checkpoints": {n: [str(p) for p in ps] for n, ps in checkpoints.items()}}
record_ = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record_)
print(f"wrote {res_dir / 'metrics.json'} ({record_['wall_time_s']:.0f} s)")
