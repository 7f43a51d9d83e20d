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
# # 01 — Statistical gap analysis: synthetic rain vs realistic rain vs real photographs
#
# *Task transfer learning for image deraining*, notebook 1 of 5. Design: `STUDY.md` §3.
#
# Claims under test here:
# - **C1 (the gap)**: Photoshop-style synthetic rain differs substantially from real rain.
# - **C2 (the failure)**: a model trained with supervision on synthetic pairs loses much of its quality on
#   realistic rain.
#
# We compare three domains on the same statistics, computed **without ground truth** on a rain-layer
# estimate (white top-hat: image minus its morphological opening):
# 1. **synthetic**: bundled photographs + the Rain100L/H recipe (`ttl.rain.SyntheticRain`, light and heavy);
# 2. **realistic**: the same crops + our physically motivated renderer (`ttl.rain.RealisticRain`), calibrated
#    on one half of the real photographs (`ttl calibrate`);
# 3. **real**: real rainy photographs (`real_dir`): the *held-out* half, never seen by the calibration.
#
# Real photographs are never shown here unless `show_real_examples=True` (their copyright is unknown); only
# statistics computed from them are.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # folder of clean images for training the C2 model (None: procedural scenes)
synthetic_dir = None  # a paired synthetic set (Rain100L/H, Rain1400, ...): replaces the rendered synthetic domain
real_dir = None  # folder of real rainy photographs (None: realistic rain stands in for real)
show_real_examples = False  # draw real photographs in the example panel (keep False for committed runs)
# sizes: None = from the preset (see ttl.config.PRESETS)
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
from IPython.display import display

import ttl
from ttl import config as C
from ttl import gap, plots
from ttl.experiments import gap_experiment_table, synthetic_to_real_gap
from ttl.stats import c2st

NAME = "01_statistical_gap_analysis"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, dict(gap_size=gap_size, gap_n_rendered=gap_n_rendered, gap_n_real=gap_n_real,
                                    bootstrap=bootstrap, c2st_permutations=c2st_permutations, c2_steps=c2_steps,
                                    c2_width=c2_width, c2_n_test=c2_n_test))
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
syn_path = C.check_dir(synthetic_dir, "synthetic_dir")
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
pd.set_option("display.precision", 3)
print(f"preset={preset} seed={seed} device={dev} real_dir={real_path} clean_dir={clean_path} synthetic_dir={syn_path}")
print({k: v for k, v in cfg.items()})

# %% [markdown]
# ## 1. The three domains
# Synthetic and realistic rain are rendered on the same crops of the bundled photographs (scikit-image,
# matplotlib), so any difference between them is the rain. Real photographs are resized to the same working
# resolution; their noise and JPEG statistics are measured at native resolution.

# %%
domains = gap.render_domains(cfg["gap_n_rendered"], cfg["gap_size"], seed)
images = {"synthetic": domains["synthetic"], "realistic": domains["realistic"]}
manifest = {"rendered": {"source": "bundled photographs", "n": cfg["gap_n_rendered"], "size": cfg["gap_size"],
                         "seed": seed}}
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
# ## 2. Statistics per image
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
# ## 3. Distances to the reference, with bootstrap intervals
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
# ## 4. Classifier two-sample test
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
# ## 5. The motivating experiment (C2)
# A U-Net trained with supervision on synthetic pairs (procedural scenes + light/heavy synthetic rain), then
# tested on the bundled photographs with synthetic rain and with realistic rain: the same clean crops, so
# the comparison is paired by image. Because realistic rain may simply be harder, we also report the gain
# over the rainy input.

# %%
exp = synthetic_to_real_gap(cfg, seed=seed, device=str(dev), clean_dir=clean_path, synthetic_dir=syn_path)
fig = plots.plot_curves(exp["log"], fig_dir / "c2_training.png", title="supervised on synthetic")
c2_table = gap_experiment_table(exp["summary"])
c2_table.to_csv(res_dir / "c2_table.csv", index=False)
display(c2_table)

# %%
dr, gd = exp["drop_synthetic_minus_realistic"], exp["gain_over_input_drop"]
print(f"PSNR-Y drop synthetic -> realistic: {dr['psnr_y']['mean_diff']:.2f} dB "
      f"[{dr['psnr_y']['low']:.2f}, {dr['psnr_y']['high']:.2f}] (Wilcoxon p={dr['psnr_y']['wilcoxon_p']:.2g}, "
      f"n={dr['psnr_y']['n']})")
print(f"SSIM-Y drop: {dr['ssim_y']['mean_diff']:.3f} [{dr['ssim_y']['low']:.3f}, {dr['ssim_y']['high']:.3f}]")
print(f"gain over input, synthetic minus realistic: {gd['psnr_y']['mean_diff']:.2f} dB "
      f"[{gd['psnr_y']['low']:.2f}, {gd['psnr_y']['high']:.2f}]")
rows = {}
for dom in ("synthetic", "realistic"):
    rainy, derained = exp["outputs"][dom]
    rows[f"{dom} rain"], rows[f"{dom}: derained"] = list(rainy[:4]), list(derained[:4])
rows["clean"] = list(exp["clean"][:4])
fig = plots.image_grid(rows, fig_dir / "c2_examples.png")

# %% [markdown]
# ## 6. Verdicts and the run record

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
                                          "gain_over_input", "per_image", "params")},
    "c2_training_log": exp["log"],
    "verdicts": verdicts,
    "reference": ref,
}
if ref == "real":
    metrics["distance_to_real"] = {s: {"synthetic": float(wide.loc[s, "synthetic"]),
                                       "realistic": float(wide.loc[s, "realistic"])} for s in wide.index}
manifest["c2_train"] = exp["train_manifest"]
record = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record)
print(f"wrote {res_dir / 'metrics.json'} and figures in {fig_dir} ({record['wall_time_s']:.0f} s)")
