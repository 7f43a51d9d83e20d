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
# # 01 — Statistical gap analysis: synthetic rain vs realistic rain vs real photographs
#
# *Task transfer learning for image deraining*, notebook 1 of 5. Design: [`docs/design.md`](../docs/design.md) §3.
#
# Claims under test here:
# - **C1 (the gap)**: Photoshop-style synthetic rain differs substantially from real rain.
# - **C2 (the failure)**: a model trained with supervision on synthetic pairs loses much of its quality on
#   realistic rain.
#
# We compare three domains on the same statistics, computed **without ground truth** on a rain-layer
# estimate (white top-hat: image minus its morphological opening):
# 1. **synthetic**: test photographs (the test split of `clean_dir`, else the bundled photographs) + the
#    Photoshop-style recipe of Rain100L/H and Rain13K (`ttl.rain.SyntheticRain`, light and heavy), whose presets
#    are calibrated on the exact rain layers of public *training* pairs (section 2);
# 2. **realistic**: the same crops + our physically motivated renderer (`ttl.rain.RealisticRain`), calibrated
#    on the train split of the real photographs (`ttl calibrate`);
# 3. **real**: real rainy photographs (`real_dir`): the *held-out* val and test splits, never seen by the calibration
#    (the same photographs notebook 05 scores the models on; nothing here shapes a model or a choice).
#
# Real photographs are never shown here unless `show_real_examples=True` (their copyright is unknown); only
# statistics computed from them are.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # clean photographs: scenes of every rendered domain and of the C2 model's training pairs
synthetic_dir = None  # a paired synthetic set (Rain100L/H, Rain1400, ...): replaces the rendered synthetic domain
real_dir = None  # folder of real rainy photographs (None: realistic rain stands in for real)
public_dir = None  # public paired sets: the synthetic presets' calibration is checked on their training pairs
show_real_examples = False  # draw real photographs in the example panel (keep False for committed runs)
# sizes: None = from the preset; any other size of ttl.config.PRESETS may be passed too (papermill -p NAME VALUE)
gap_size = None
gap_n_rendered = None
gap_n_real = None
bootstrap = None
c2st_permutations = None
c2_steps = None
c2_width = None
c2_n_test = None

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import report
from ttl import gap, plots
from ttl.calibrate import synthetic_calibration_report
from ttl.experiments import gap_experiment_table, synthetic_to_real_gap
from ttl.stats import c2st

NAME = "01_statistical_gap_analysis"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, C.notebook_settings(globals(), preset))  # the sizes above, or any other passed
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
syn_path, public_path = C.check_dir(synthetic_dir, "synthetic_dir"), C.check_dir(public_dir, "public_dir")
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
pd.set_option("display.precision", 3)
print(f"preset={preset} seed={seed} device={dev} real_dir={real_path} clean_dir={clean_path} synthetic_dir={syn_path} "
      f"public_dir={public_path}")
print({k: v for k, v in cfg.items()})

# %% [markdown]
# ## 1. The three domains
# Synthetic and realistic rain are rendered on the same crops of the test photographs, so any difference between
# them is the rain. Real photographs are resized to the same working resolution; their noise and JPEG statistics
# are measured at native resolution.

# %%
scenes = gap.test_photographs(clean_path, cfg["photo_size"])
domains = gap.render_domains(cfg["gap_n_rendered"], cfg["gap_size"], seed, clean_images=scenes["images"])
images = {"synthetic": domains["synthetic"], "realistic": domains["realistic"]}
manifest = {"rendered": {"source": scenes["source"], "n": cfg["gap_n_rendered"], "size": cfg["gap_size"],
                         "seed": seed, "files": scenes["files"]}}
if syn_path is not None:  # a public synthetic set (Rain100L/H, Rain1400...) stands for the synthetic domain
    images["synthetic"], manifest["synthetic"] = gap.folder_domain(syn_path, cfg["gap_size"], cfg["gap_n_rendered"])
if real_path is not None:
    images["real"], manifest["real"] = gap.real_domain(real_path, cfg["gap_size"], cfg["gap_n_real"])
    print(f"real photographs: {len(images['real'])} held out, "
          f"{manifest['real']['calibration_files_excluded']} used for calibration (excluded)")
ref = "real" if "real" in images else "realistic"
example = {"clean": domains["clean"][:4], "synthetic": [x[0] if isinstance(x, tuple) else x for x in images["synthetic"][:4]],
           "realistic": domains["realistic"][:4]}
if ref == "real" and show_real_examples:
    example["real"] = [x[0] for x in images["real"][:4]]
fig = plots.image_grid(plots.rain_layer_rows(example, 4), fig_dir / "examples.png", cmap_rows=[
    f"{k}: rain-layer est." for k in example])

# %% [markdown]
# ## 2. The synthetic recipe against public synthetic rain
# The `light` and `heavy` presets were calibrated (`ttl calibrate --what synthetic`, record in
# `ttl/calibration_synthetic.json`) on the exact rain layers (rainy minus clean) of public *training* pairs:
# `light` on the Rain13K sample, `heavy` on the Rain200H sample, rendering on the very same clean images. Below:
# the distance of the hand-set recipe and of the calibrated one to those rain layers (standardised W1, 95 %
# bootstrap intervals). This is the fit itself; the public *test* pairs are used in notebook 05 only.

# %%
if public_path is not None:
    calib = synthetic_calibration_report(public_path, cfg["calib_size"], cfg["bootstrap"], seed, cfg["calib_n"])
    calib.to_csv(res_dir / "synthetic_calibration.csv", index=False)
    display(calib.pivot_table(index=["preset", "statistic"], columns="recipe", values="distance").round(2))
    fig = plots.plot_calibration(calib, fig_dir / "synthetic_calibration.png")
else:
    calib = None
    print("no public_dir: the synthetic calibration is not checked here")

# %% [markdown]
# ## 3. Statistics per image
# Orientation (structure tensor), streak geometry (connected components), rain-layer intensity and chroma,
# spectrum, veiling (dark channel, RMS contrast, saturation), noise and JPEG blocking. See `ttl.gap`.

# %%
frames, full = {}, {}
for dom, ims in images.items():
    frames[dom], full[dom] = gap.statistics_frame(ims, dom)
frame = pd.concat(frames.values(), ignore_index=True)
frame.to_csv(res_dir / "image_statistics.csv", index=False)
summary = frame.groupby("domain")[gap.STATISTICS].median().T
summary.to_csv(res_dir / "statistics_median.csv")
display(summary)

# %%
fig = plots.plot_distributions(frame, full, fig_dir / "distributions.png")

# %%
fig = plots.plot_spectra(full, fig_dir / "spectra.png")

# %% [markdown]
# ## 4. Distances to the reference, with bootstrap intervals
# Standardised 1-Wasserstein distance between per-image values (in units of the reference's standard
# deviation) and Jensen–Shannon divergence of pooled histograms, with 95 % bootstrap intervals over images.
# The reference is the held-out real photographs when `real_dir` is given, otherwise realistic rain.

# %%
dist = gap.gap_distances(frames, full, ref=ref, n_boot=cfg["bootstrap"], seed=seed)
dist.to_csv(res_dir / "distances.csv", index=False)
wide = dist.pivot(index="statistic", columns="domain", values="distance")
if ref == "real":
    wide["realistic closer"] = wide["realistic"] < wide["synthetic"]
display(wide)
fig = plots.plot_distances(dist, fig_dir / "distances.png", title=f"Distance to {ref}")

# %% [markdown]
# ## 5. Classifier two-sample test
# A small classifier (L2-regularised logistic regression on the standardised per-image statistics) tries to
# tell each domain from the reference; we report the cross-validated ROC-AUC (0.5: indistinguishable) with a
# bootstrap interval and a permutation p-value.

# %%
X = {d: f[gap.STATISTICS].to_numpy() for d, f in frames.items()}
c2 = {d: c2st(X[d], X[ref], n_boot=cfg["bootstrap"], permutations=cfg["c2st_permutations"], seed=seed).as_dict()
      for d in X if d != ref}
if ref == "real":
    c2["synthetic_vs_realistic"] = c2st(X["synthetic"], X["realistic"], n_boot=cfg["bootstrap"],
                                        permutations=cfg["c2st_permutations"], seed=seed).as_dict()
display(pd.DataFrame(c2).T)

# %% [markdown]
# ## 6. The motivating experiment (C2)
# A U-Net trained with supervision on synthetic pairs (the fixed training set of notebook 04: train-split
# photographs with light and heavy synthetic rain), then tested on the test photographs with synthetic rain and
# with realistic rain: the same clean scenes, so the comparison is paired by image. Realistic rain is scored
# against its streak-free target (what a deraining model should produce: the veil, tone curve and compression of
# the rainy image stay) and, beside it, against the clean scene. The two kinds of rain differ in how hard they
# are, so the claim is read on the **gain over the rainy input**.

# %%
exp = synthetic_to_real_gap(cfg, seed=seed, device=str(dev), clean_dir=clean_path, synthetic_dir=syn_path)
fig = plots.plot_curves(exp["log"], fig_dir / "c2_training.png", title="supervised on synthetic")
c2_table = gap_experiment_table(exp["summary"])
c2_table.to_csv(res_dir / "c2_table.csv", index=False)
display(c2_table)

# %%
dr, gd, gc = exp["drop_synthetic_minus_realistic"], exp["gain_over_input_drop"], exp["gain_over_input_drop_clean_target"]
for name, r in (("gain over the input, synthetic minus realistic (streak-free target)", gd["psnr_y"]),
                ("the same against the clean scene", gc["psnr_y"]),
                ("PSNR-Y of the outputs, synthetic minus realistic (streak-free target)", dr["psnr_y"])):
    print(f"{name}: {r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}] (Wilcoxon p={r['wilcoxon_p']:.2g}, "
          f"n={r['n']})")
rows = {}
for dom in ("synthetic", "realistic"):
    rainy, derained = exp["outputs"][dom]
    rows[f"{dom} rain"], rows[f"{dom}: derained"] = list(rainy[:4]), list(derained[:4])
rows["streak-free target"], rows["clean"] = list(exp["streak_free"][:4]), list(exp["clean"][:4])
fig = plots.image_grid(rows, fig_dir / "c2_examples.png")

# %% [markdown]
# ## 7. Verdicts and the run record

# %%
verdicts = gap.gap_verdicts(dist, c2, dr, gd, reference=ref)
for k, v in verdicts.items():
    print(f"{k}: {v}")

# %%
metrics = {
    "statistics_median": summary.to_dict(),
    "distances": dist.to_dict(orient="records"),
    "c2st_auc": {d: v["auc"] for d, v in c2.items() if d in ("synthetic", "realistic")},
    "c2st": c2,
    "c2_experiment": {k: exp[k] for k in ("summary", "drop_synthetic_minus_realistic", "gain_over_input_drop",
                                          "gain_over_input_drop_clean_target", "gain_over_input", "per_image",
                                          "params", "test")},
    "synthetic_calibration": calib.to_dict(orient="records") if calib is not None else None,
    "c2_training_log": exp["log"],
    "verdicts": verdicts,
    "reference": ref,
}
if ref == "real":
    metrics["distance_to_real"] = {s: {"synthetic": float(wide.loc[s, "synthetic"]),
                                       "realistic": float(wide.loc[s, "realistic"])} for s in wide.index}
manifest["c2_train"] = exp["train_manifest"]
manifest["data_source"] = C.data_source(clean_dir=clean_path, real_dir=real_path, public_dir=public_path,
                                        synthetic_dir=syn_path)
record = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record)
print(f"wrote {res_dir / 'metrics.json'} and figures in {fig_dir} ({record['wall_time_s']:.0f} s)")

# %% [markdown]
# ## What we found
# Generated from this run's record (`ttl.report.findings`): the same text as this notebook's part of the README's
# results section, every number read from `metrics.json`.

# %%
display(Markdown(report.findings(record)))
