# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — Real-world evaluation and the verdicts
#
# *Task transfer learning for image deraining*, notebook 5 of 5. Design: [`docs/design.md`](../docs/design.md) §7. Claims C1–C4.
#
# Every model of notebook 04 (every seed) on data no training step saw:
#
# * **photographs with rendered rain** — the test split of the clean photographs (`clean_dir`), whole, with synthetic
#   rain (`synthetic`) and with realistic rain, scored against its streak-free target (`realistic`: deraining, the
#   primary score) and against the clean scene (`realistic_clean`: whole restoration); and the same on crops of the
#   photographs bundled with scikit-image and matplotlib (`bundled_...`), a second, independent set;
# * **public pairs** — every paired set under `public_dir` (samples of Rain13K, Rain200, Heavy Rain, DDN), found by
#   layout detection, whole images;
# * **real photographs** (`real_dir`, its val and test splits: the teachers, the distillation and the renderer's
#   calibration used the train split) — no ground truth: the judge of `ttl.realrain` (the rain left, from a small
#   network fitted on the train splits of `real_dir` and `clean_dir`, read together with the scene kept), validated
#   below on pairs whose answer is known, on nuisances that must not pass, and by a ranking check where the
#   streak-free target is known; beside it the earlier measures of `ttl.rainleft` (P(rain) of oriented-line
#   statistics, oriented streak energy), NIQE and PIQE (`ttl.noref`);
# * a real paired set when `real_paired_dir` is given (e.g. SPA-Data).
#
# Full-reference scores are computed as the field's MATLAB scripts do (Y = BT.601 luma of 8-bit RGB; SSIM with an
# 11×11 Gaussian window, σ = 1.5; no border crop; `ttl.metrics`), plus RGB columns. Then the paired comparisons, a
# gallery of real photographs, the size/speed table and the verdict on each claim, every number read from the run
# records of notebooks 01–04 and from this run.

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # clean photographs: their test split is the main test set (None: the bundled photographs)
synthetic_dir = None  # unused here
real_dir = None  # real rainy photographs (val and test splits are evaluated)
public_dir = None  # a folder of public paired sets (each subfolder in any known layout): scored whole
real_paired_dir = None  # a real paired dataset (e.g. SPA-Data test): full-reference scores on real rain
finetuning_dir = None  # notebook 04's run folder (None: results/04_finetuning/<preset>)
weights_dir = None  # where the headline models are shipped (None: weights/ beside results_dir: weights/<preset>/)
niqe_params = None  # the official NIQE modelparameters.mat (None: the pristine model fitted on bundled photos)
gallery_photos = 4  # real photographs in the gallery (full resolution, with zoomed crops)
# sizes: None = from the preset; any other size of ttl.config.PRESETS may be passed too (papermill -p NAME VALUE)
e_n_test = None
e_real_size = None

# %%
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import report
from ttl import evaluation as E
from ttl import heldout as H
from ttl import plots
from ttl import realrain as RR
from ttl import scores as S
from ttl.inference import SHIPPED
from ttl.noref import default_niqe_model, load_official_niqe_params

NAME = "05_real_world_evaluation"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, C.notebook_settings(globals(), preset))  # the sizes above, or any other passed
real_path, paired_path = C.check_dir(real_dir, "real_dir"), C.check_dir(real_paired_dir, "real_paired_dir")
clean_path, public_path = C.check_dir(clean_dir, "clean_dir"), C.check_dir(public_dir, "public_dir")
C.check_dir(synthetic_dir, "synthetic_dir")
ft_dir = Path(finetuning_dir or Path(results_dir) / "04_finetuning" / preset)
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
checkpoints = E.finetuned_checkpoints(ft_dir)
niqe_model = load_official_niqe_params(niqe_params) if niqe_params else default_niqe_model()
roles = E.finetuned_roles(ft_dir)  # each row's role, as notebook 04 recorded it (ttl.finetune.recipes)
headline = [n for n in checkpoints if roles[n] == "headline"]
# scored on the public pairs, the second test set (`bundled_...`) and the real photographs too; controls, ablations and
# the sweep on the main test renders only
extended = [n for n in checkpoints if roles[n] in E.SCORED_EVERYWHERE]
pd.set_option("display.max_rows", None, "display.max_columns", None, "display.width", 250,
              "display.max_colwidth", None)  # tables are shown whole; the long ones are summarised, CSVs hold all
print(f"preset={preset} device={dev} models={list(checkpoints)}\nclean_dir={clean_path} real_dir={real_path} "
      f"public_dir={public_path} real_paired_dir={paired_path}")

# %% [markdown]
# ## 1. Test data, and the measures of the rain left validated where the answer is known
# The rain classifier is fitted on the *train* splits (real rainy vs rain-free photographs) and never on a model's
# output. Both measures must order clean < half-derained (the rainy image with half its exact rain layer removed)
# < rainy on the public pairs and on realistic rain rendered on the test photographs.

# %%
sets = H.test_sets(cfg, seed, clean_path)
public = H.public_sets(public_path, cfg["e_public_n"], cfg["e_public_size"]) if public_path else {}
sets.update({f"public/{k}": {"rainy": v["rainy"], "clean": v["clean"]} for k, v in public.items()})
if paired_path:
    sets["real-paired"] = dict(zip(("rainy", "clean"), H.paired_real(paired_path)[:2]))
real, real_names, real_manifest = (H.real_test_images(real_path, cfg["e_real_size"], limit=cfg["e_real_n"]) if real_path
                                   else ([], [], None))
classifier, rain_measures = E.rain_left_measures(real_path, clean_path, public, sets, cfg, seed)
if rain_measures:
    display(pd.DataFrame(rain_measures["table"]))
print({k: len(v["rainy"]) for k, v in sets.items()}, f"{len(real)} real photographs")

# %% [markdown]
# ### The judge of real deraining: the rain left *and* the scene kept
# A "how rainy does it look" score alone rewards destroying the scene (a horizontal blur wipes out vertical streaks
# and every vertical edge with them). The judge (`ttl.realrain`) reads two measures together: the **rain left**
# (P(rain) from a small network fitted on the train splits of real rainy vs rain-free photographs, floored at the
# median rain-free photograph: nothing scores "less rainy than no rain") and the **scene kept** (SSIM-Y of the output
# against its input wherever the input has no streak candidate). A photograph counts as **derained** when its rain left
# fell and its scene kept reaches the floor that nine in ten streak-free targets reach on realistic rain rendered on
# *train* photographs — targets rendered through the rainy input's own sensor noise, since a derainer is not asked to
# denoise; rain removed where the scene was not kept is not credited. Below: the share of images judged derained for
# each case (the noise-kept target should pass; the noise-free and public targets are also charged for the noise or
# faint rain they remove; no nuisance may), then the two measures on the test photographs and the real
# photographs; every row with intervals in `judge_validation.csv`. The judge may decide something on real
# photographs only if no nuisance is judged derained on more than 10 % of them *and* the noise-kept target is judged
# derained on at least half the realistic renders of the test photographs (`ttl.realrain.judge_validity`). A known
# limit: public sets whose targets keep dense faint rain (Rain13K) are credited on few pairs.

# %%
judge, judge_rows = (RR.fit_judge(real_path, clean_path, cfg, seed) if real_path and clean_path else None), []
judge_check = None
if judge is not None:
    known = {f"public/{k}": (v["rainy"], v["clean"]) for k, v in public.items()}
    known["realistic (test photographs)"] = (sets["realistic"]["rainy"], sets["realistic"]["clean"])
    if "streak_free_noisy" in sets["realistic"]:  # the target the floor is set on: through the input's own noise
        known[RR.TARGET_SET] = (sets["realistic"]["rainy"], sets["realistic"]["streak_free_noisy"])
    judge_rows = RR.validate_judge(judge, known, real, cfg["bootstrap"], seed, limit=cfg["e_real_n"] or None)
    jv = pd.DataFrame(judge_rows)
    jv.to_csv(res_dir / "judge_validation.csv", index=False)
    r = judge.report
    print(f"rain-left network: test AUC {r['test_auc']:.3f} [{r['test_low']:.3f}, {r['test_high']:.3f}] "
          f"({r['n_test_rainy']} real rainy vs {r['n_test_clean']} rain-free test photographs; train AUC "
          f"{r['train_auc']:.3f}); floor P(rain) {r['p_floor']:.3f}; scene-kept floor {r['scene_floor']:.3f} "
          f"(q{r['scene_floor_quantile'] * 100:.0f} of the noise-kept streak-free targets on train photographs; "
          f"their median {r['scene_kept_targets_median']:.3f}, noise-free targets "
          f"{r['scene_kept_noise_free_targets_median']:.3f})")
    display(jv.pivot(index="case", columns="set", values="derained_share").loc[jv["case"].unique()].round(2))
    judge_check = RR.judge_validity(judge_rows)
    if judge_check["worst"]:
        ts = judge_check["target_share"]
        print(f"valid on real photographs (no nuisance judged derained on more than {judge_check['max_share']:.0%}, "
              f"the noise-kept target on at least {judge_check['min_target_share']:.0%} of the test renders): "
              f"{judge_check['valid']} (worst nuisance: {judge_check['worst']}, {judge_check['share']:.0%}; target: "
              + ("not measured" if ts is None else f"{ts:.0%}") + ")")
    jt = RR.judge_table(judge_rows)
    display(jt[jt["set"].isin(["realistic (test photographs)", RR.TARGET_SET, "real photographs (no target)"])])

# %%
results = E.evaluate_checkpoints(checkpoints, sets, real, str(dev), niqe_model=niqe_model,
                                 rain_classifier=classifier, extended=extended, judge=judge)
scores = {n: S.model_scores(r, cfg["bootstrap"], seed) for n, r in results.items()}

# %% [markdown]
# ## 2. Full-reference results on photographs with rendered rain
# Mean over seeds, `[95 % CI over images]` (bootstrap of the seed-averaged per-image values). `input` is the
# rainy image itself. Shown: the input and the headline rows on the test photographs; every row, every set and
# the RGB columns are in `test_results.csv`.

# %%
table = E.score_table(scores)
table.to_csv(res_dir / "test_results.csv", index=False)
display(table[table["model"].isin(["input"] + headline) & ~table["test set"].str.startswith(("public/", "bundled"))]
      [["model", "test set", "seeds", "PSNR-Y (dB)", "SSIM-Y"]])

# %% [markdown]
# ## 3. Public pairs
# Every model and the rainy input on each public *test* set, whole images, PSNR-Y / SSIM-Y in the MATLAB convention.
# The `*_train` folders are not scored: they calibrated the synthetic `heavy` preset (notebook 01) and are in notebook
# 04's pool, so the full-data rows and the larger sweep points train on them. `rain13k_sample` is split for good
# (`ttl.layouts.SHARED_PUBLIC`): its *fit* part calibrated the `light` preset and is in the same pool; only its *test*
# part is scored here.

# %%
public_scores = E.public_summary(scores, results, list(public), cfg["bootstrap"], seed)
public_table = E.public_table(public_scores, headline)
public_table.to_csv(res_dir / "public_results.csv", index=False)
display(public_table)
if public:
    fig = plots.plot_public(public_scores, fig_dir / "public_pairs.png", models=["input"] + headline)

# %% [markdown]
# ### Light rain and heavy rain: does each model remove as much as there is?
# Each public set (and the test photographs with synthetic rain, light and heavy alternating) split by the rain amount
# of the *input* (light: on average less than 15 grey levels of Y brighter than its target). For every headline model:
# the PSNR-Y gain over the rainy input and the output's mean brightness error against the target (ΔY, grey levels;
# negative = darker than the target), 95 % intervals over images (in `by_rain_amount.csv`). `sup-full-before` is
# `sup-full` without the darkening fix (its light and heavy renders only, no context path), `sup-full-no-context` has
# the rain-free renders but no context path: the before/after of the fix, with the same steps.

# %%
amount_models = extended
amount_sets = [k for k in sets if k.startswith("public/")] + ["synthetic"]
amounts = E.by_rain_amount(results, amount_sets, amount_models, cfg["bootstrap"], seed)
E.amount_frame(amounts).to_csv(res_dir / "by_rain_amount.csv", index=False)  # with 95 % intervals
display(E.amount_frame(amounts, wide=True))
if clean_path:  # how much each preset brightens the test photographs (photograph i has light rain for even i)
    syn_bias = results["input"][0]["val"]["synthetic"]["per_image"]["bias_y"]
    print(f"synthetic test rain brightens the photographs by {np.mean(syn_bias[0::2]):.1f} grey levels of Y on "
          f"average (light preset) and {np.mean(syn_bias[1::2]):.1f} (heavy preset)")

# %% [markdown]
# ## 4. `ttl` against each baseline, image by image
# `ttl` minus the baseline (positive = `ttl` better): the mean difference with its 95 % interval over minority draws
# and test images together (the verdicts use it), the draws on each side, and the interval over images alone
# (seed-averaged) with its Wilcoxon signed-rank p-value. Shown: the headline rows and the controls.

# %%
baselines = [n for n in checkpoints if n != "ttl"]
fractions = E.finetuned_fractions(ft_dir)  # minority rows of one fraction are paired on their common draws
comparisons = {b: S.compare(scores, results, "ttl", b, cfg["bootstrap"], seed, fractions) for b in baselines}
comp = S.comparison_table(comparisons)
comp.to_csv(res_dir / "comparisons.csv", index=False)
display(comp[comp["ttl minus"].map(roles).isin(["headline", "control"])])

# %% [markdown]
# ### Does the experiment bind?
# A minority can only be made up for if it costs something, and a bigger network should be better: on the same test
# images, all scenes minus the minority (from scratch) and the teacher-sized minus the student-sized network.

# %%
binds = E.binding(scores, results, cfg["bootstrap"], seed)
bind_table = S.comparison_table({k: v["diff"] for k, v in binds.items()}).rename(columns={"ttl minus": "difference"})
bind_table.to_csv(res_dir / "binding.csv", index=False)
display(bind_table[bind_table["metric"].str.startswith("PSNR") & ~bind_table["set"].str.startswith("public/")])

# %% [markdown]
# ## 5. Real photographs: the judge, and the earlier measures beside it
# The credited rain left (lower is better) and the scene kept (higher is better) of the judge; beside them P(rain) of
# the line statistics and the streak energy (both fooled by blur), NIQE and PIQE (lower is better; NIQE's pristine
# model is fitted on the 7 bundled photographs, or the official parameters when `niqe_params` is given, so only
# differences between models on the same images matter). `ttl - model`: paired by photograph.

# %%
noref = E.noref_table(results, list(checkpoints), cfg["bootstrap"], seed) if real else {}
nr = E.noref_frame(noref)
nr.to_csv(res_dir / "noref.csv", index=False)
display(nr[[c for c in nr.columns if not c.startswith("ttl - model")]] if real else
        "no real photographs given (real_dir=None)")  # the paired differences are in noref.csv

# %% [markdown]
# ### Ranking check: does the judge order models as the streak-free target does?
# On the realistic test renders, where the streak-free target is known, the rainy input and the models scored on real
# photographs are ranked by PSNR-Y against the target and by each ground-truth-free measure; Kendall's τ between the
# two orders with a 95 % bootstrap interval over images. C3c counts the real photographs only if the interval of the
# credited rain left lies above 0 (`ttl.evaluation.VERDICT_RULES`).

# %%
ranking = E.judge_ranking(scores, results, extended, cfg["bootstrap"], seed) if judge is not None else {}
display(pd.DataFrame([{"measure": k, "Kendall τ vs PSNR-Y [95 % CI]": f"{v['tau']:+.2f} [{v['low']:+.2f}, "
                       f"{v['high']:+.2f}]", "models ranked": len(v["models"])} for k, v in ranking.items()])
        if ranking else "no judge (needs real_dir and clean_dir)")

# %% [markdown]
# ## 6. Galleries
# Realistic test rain on the test photographs (committed), and real photographs chosen by a fixed rule (the first
# `gallery_photos` of the val and test splits by file name): each whole (downscaled to fit the page) and a crop at full
# resolution around its rainiest region, for the input and every headline row (first seed), each captioned with the
# judge's rain left and scene kept for that photograph.

# %%
shown = [n for n in headline if n in checkpoints]
cols = E.gallery_columns({n: checkpoints[n][0] for n in shown}, sets["realistic"]["rainy"][:3], str(dev),
                         clean=sets["realistic"]["clean"][:3], target="streak-free target")
fig = plots.gallery(cols, fig_dir / "gallery_realistic.png")
if real_path:
    full = H.real_gallery_images(real_path, gallery_photos)
    real_cols = E.gallery_columns({n: checkpoints[n][0] for n in shown}, full, str(dev))
    captions = None
    if judge is not None:
        left_in = judge.rain_left(full)
        captions = {}
        for n, outs in real_cols.items():
            j = judge.measure(full, outs, left_in)
            captions[n] = [f"rain left {a:.2f}, scene kept {b:.2f}" for a, b in zip(j["rain_left"], j["scene_kept"])]
    g = plots.gallery(real_cols, fig_dir / "gallery_real.png", crop_px=160, captions=captions)
    b = plots.gallery(E.gallery_columns({"ttl": checkpoints["ttl"][0]}, full[:1], str(dev)),
                      fig_dir / "real_before_after.png", crop_px=160, size=3.2)

# %% [markdown]
# ## 7. Size and speed
# Parameters, GFLOPs for one 256×256 image, and the median latency per megapixel of tiled inference
# (`ttl derain`'s code path) over `e_repeats` runs on a `e_latency_size`² image, on this machine's CPU (and GPU
# when there is one).

# %%
devices = ("cpu",) + (("cuda",) if torch.cuda.is_available() else ())
speed = E.size_speed(checkpoints, cfg["e_latency_size"], cfg["e_repeats"], devices)
speed.to_csv(res_dir / "size_speed.csv", index=False)
display(speed)

# %% [markdown]
# ## 8. Verdicts
# Each claim, the rule that decides it (fixed before looking at the numbers; `ttl.evaluation.VERDICT_RULES`) and
# the numbers behind it. C1 and C2 come from notebook 01, C4 from notebook 03, C3 from the test sets above.

# %%
def record(nb: str):
    p = ft_dir / "metrics.json" if nb == "04_finetuning" else Path(results_dir) / nb / preset / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


m04 = record("04_finetuning")
verdict_rows = E.verdicts(record("01_statistical_gap_analysis"), record("03_distillation"), comparisons, noref,
                          cfg["e_margin_db"], ranking, judge_check, dose=((m04 or {}).get("dose") or {}).get("table"))
verdict_table = pd.DataFrame(verdict_rows)[["claim", "verdict", "evidence"]]
verdict_table.to_csv(res_dir / "verdicts.csv", index=False)
with pd.option_context("display.max_colwidth", None):
    display(verdict_table)

# %%
models = {n: {dom: {k: v for k, v in s.items() if not k.endswith("per_image")} for dom, s in scores[n].items()
              if not dom.startswith("public/")} for n in scores}
metrics = {"models": models, "roles": roles, "public": public_scores, "by_rain_amount": amounts, "comparisons": comparisons,
           "binding": binds, "noref": noref,
           "rain_measures": rain_measures, "judge": judge.report if judge is not None else {},
           "judge_validation": judge_rows, "judge_check": judge_check, "ranking_check": ranking, "verdicts": verdict_rows, "size_speed": speed.to_dict(orient="records"),
           "real_photographs": real_names,
           "per_image": {n: {dom: {k: v for k, v in s.items() if k.endswith("per_image")} for dom, s in scores[n].items()}
                         for n in scores}}
manifest = {"test_sets": {k: len(v["rainy"]) for k, v in sets.items()},
            "public": {k: v["manifest"] for k, v in public.items()}, "real": real_manifest,
            "real_paired": str(paired_path) if paired_path else None,
            "checkpoints": {n: [str(p) for p in ps] for n, ps in checkpoints.items()},
            "data_source": C.data_source(clean_dir=clean_path, real_dir=real_path, public_dir=public_path)}
record_ = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record_)
print(f"wrote {res_dir / 'metrics.json'} ({record_['wall_time_s']:.0f} s)")

# %% [markdown]
# ## 9. The shipped models
# The first seed of each headline model, with a record of what it is (preset, revision, data manifest digest, how long
# it trained, its test metrics), goes to `weights/<preset>/`: `ttl derain IN OUT --checkpoint ttl` (or `sup-full`, ...)
# uses them; without `--checkpoint`, `ttl derain` uses the shipped deraining model of `make weights`.

# %%
m02, m03 = record("02_teacher_pretraining"), record("03_distillation")
pre_s = (sum(m02["logs"][t]["time_s"] for t in ("t1", "t2")) if m02 else 0) + (m03["log"]["time_s"] if m03 else 0)
shipped = E.ship_weights(checkpoints, SHIPPED, Path(weights_dir or Path(results_dir).parent / "weights") / preset,
                         preset, revision, record("04_finetuning"), scores, public_scores, pre_s)
print("shipped:", [str(p) for p in shipped])

# %% [markdown]
# ## What we found
# Generated from this run's record (`ttl.report.findings`): the same text as this notebook's part of the README's
# results section, every number read from `metrics.json`.

# %%
display(Markdown(report.findings(record_)))
