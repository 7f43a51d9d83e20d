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
# # 04 — Fine-tuning on a minority of synthetic pairs, the baselines and the controls
#
# *Task transfer learning for image deraining*, notebook 4 of 5. Design: [`docs/design.md`](../docs/design.md) §6. Claim C3.
#
# The distilled student of notebook 03 (`ttl`) is fine-tuned on a **minority of the scenes** (`f_fraction` of the
# training photographs) of a fixed paired synthetic training set: the train split of the clean photographs
# (`clean_dir`), each rendered `f_renders` times, once, like a dataset on disk, with a rain amount that cycles through
# `f_rain`: the calibrated synthetic light and heavy rain, and no rain at all (the rain-free renders and the context
# path are the fix for a darkening defect; notebook 05 measures it before and after). When `public_dir` holds public
# *training* pairs (`rain200_sample_train`, the fit part of the Rain13K sample; never a test pair), they join the pool,
# each folder about `f_public_share` of the items, as in the shipped model's data (`ttl.finetune.training_pool`); a
# minority holds the same share of each source's scenes (rounded: at 1 %, the 3 photographs alone; at 10 %, 28
# photographs and 2 pairs of each public folder).
#
# **Equal effort for every row** (Oliver et al., NeurIPS 2018; He et al., ICCV 2019). Every row trains with the same
# engine, loss (`f_loss`), batch, crops and warm-up + cosine schedule: `f_steps` steps on all pairs, `f_steps_minority`
# on a minority (small data peaks early). Every headline row and control searches the learning rate over the same grid
# (`f_lr_grid`), each value on the same first `f_search_draws` seeds at the headline fraction; every run, trial or not,
# validates every `f_val_every` steps and ends with its best validation checkpoint (PSNR-Y averaged over synthetic and
# realistic validation crops); the learning rate with the best mean over those draws wins, its trials are the row's
# first seeds, and it trains the rest (a single draw chose `ttl`'s worst rate in the run of 281b2f9). Rows that do not search take their parent's choice. Each row's role, draws and
# parent are defined once, in `ttl.finetune.recipes`, and written into the record:
#
# | row | role | weights start from | scenes | learning rate |
# |---|---|---|---|---|
# | `ttl` | headline | distilled student (T1 + T2) | minority, `f_draws` draws | searched |
# | `sup-minority` | headline | scratch, student architecture | the same minorities | searched |
# | `sup-full` | headline | scratch, student architecture | all | searched |
# | `syn2real` | headline | scratch + Syn2Real's Gaussian-process loss on unlabeled real-domain images (Yasarla et al., CVPR 2020) | minority | searched |
# | `sup-minority-large` | control | scratch, teacher-sized (the control of `no-distillation`) | minority | searched |
# | `ssl-minority` | control | student pretrained by masked denoising on the same unlabeled images, budget of T1 + T2 + distillation | minority | searched |
# | `sup-full-large` | evidence | scratch, teacher-sized | all | `sup-minority-large`'s (its size class: a rate does not carry across a capacity change) |
# | `sup-full-no-context`, `sup-full-before` | evidence | `sup-full` without the context path; and also without the rain-free renders (as before the darkening fix) | all | `sup-full`'s |
# | `t1-only`, `t2-only`, `no-distillation`, `frozen-encoder`, `ttl-target-ms` | ablation | one teacher; T2 itself; encoder frozen; distilled with the pre-fix feature loss (`ttl-target-ms` only where `f_optional_rows` names it, as every preset does) | minority | `ttl`'s |
# | `ttl@…`, `sup-minority@…` | sweep | the fraction sweep | 5 %, 10 % (`f_sweep_draws` draws), 100 % | `ttl`'s / `sup-minority`'s |
#
# A seed is a **minority draw**: it fixes the minority's scenes (nested across fractions, different between seeds),
# the data order and the scratch initialisation; seed *k* of every minority row shares its minority. Intervals of
# differences resample draws and images together (`ttl.stats.draw_bootstrap`). Every model is scored on held-out
# **validation** data: centre crops of the val-split photographs with synthetic rain, and the same crops with
# realistic rain scored against its streak-free target (`realistic`, deraining) and against the clean scene
# (`realistic_clean`). The first `f_val_select` crops of each set choose checkpoints and learning rates; every
# number reported here is scored on the remaining crops (`ttl.heldout.split_validation`). The ground truths only
# score and select; nothing trains on them. The test photographs are notebook 05's; nothing here is scored on them
# (the dose-response reads the teachers' own held-out sets of notebook 02 to report their quality, and chooses
# nothing by it).

# %% tags=["parameters"]
preset = "default"  # smoke | default | paper
seed = 0
device = "auto"  # "auto" picks CUDA, then MPS, then CPU
results_dir = "results"
figures_dir = "figures"
clean_dir = None  # clean photographs (the scene bank): their train split makes the synthetic pairs (None: procedural)
synthetic_dir = None  # a paired synthetic dataset on disk (Rain100L/H, Rain13K, ...): replaces the rendered pairs
real_dir = None  # real rainy photographs (train split): with clean_dir's rendered realistic rain, the unlabeled
#                  real-domain images of Syn2Real, of the masked-denoising pretraining and of the distillations
public_dir = None  # public paired sets: their training pairs join the pool (f_public_share); test pairs: notebook 05
teachers_dir = None  # folder with t1.pt and t2.pt (None: notebook 02's checkpoints of this preset)
student_path = None  # the distilled student (None: notebook 03's checkpoint of this preset)
resume = False  # True continues killed runs from their last checkpoints
only = None  # a list of row names to train only those (e.g. ["ttl", "sup-minority"])
# sizes: None = from the preset; any other size of ttl.config.PRESETS may be passed too (papermill -p NAME VALUE)
f_fraction = None
f_sweep = None
f_draws = None
f_seeds = None
f_steps = None
f_steps_minority = None
f_lr_grid = None
f_search_draws = None
f_dose = None
f_loss = None
f_public_share = None

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

import ttl
from ttl import config as C
from ttl import dose as D
from ttl import evaluation as E
from ttl import report
from ttl import finetune as FT
from ttl import plots
from ttl import scores as S
from ttl import transfer
from ttl.metrics import METRIC_LABELS

NAME = "04_finetuning"
started, revision = time.time(), C.git_revision()
cfg = C.resolve_config(preset, C.notebook_settings(globals(), preset))  # the sizes above, or any other passed
real_path, clean_path = C.check_dir(real_dir, "real_dir"), C.check_dir(clean_dir, "clean_dir")
synthetic_path = C.check_dir(synthetic_dir, "synthetic_dir")
public_path = C.check_dir(public_dir, "public_dir")
teachers_path = Path(teachers_dir or Path(results_dir) / "02_teacher_pretraining" / preset / "checkpoints")
student_file = Path(student_path or Path(results_dir) / "03_distillation" / preset / "checkpoints" / "student.pt")
dev = ttl.resolve_device(device)
ttl.seed_everything(seed)
res_dir, fig_dir = C.run_dirs(results_dir, figures_dir, NAME, preset)
pd.set_option("display.max_rows", None, "display.max_columns", None, "display.width", 250,
              "display.max_colwidth", None)
print(f"preset={preset} seed={seed} device={dev} fraction={cfg['f_fraction']} draws={cfg['f_draws']} "
      f"seeds={cfg['f_seeds']} steps={cfg['f_steps']}/{cfg['f_steps_minority']} lr grid={cfg['f_lr_grid']} x "
      f"{cfg['f_search_draws']} draws "
      f"loss={cfg['f_loss']} student={student_file}")
print("scene source:", "clean_dir " + str(clean_path) if clean_path else ("synthetic_dir " + str(synthetic_path)
                                                                        if synthetic_path else "procedural (fallback)"))

# %% [markdown]
# ## 1. Train every row: the learning-rate search first
# Pretrained rows (`ttl`, `ssl-minority`, the ablations, the sweep) start from a zero output head, i.e. from the
# identity like every scratch row (`f_reset_head`): the transferred knowledge is in the features. Each of their layers
# is also rescaled to the output scale of a fresh network's (`f_rescale_start`, on training inputs; §7 says why).
# On a CPU the runs go two at a time to worker processes of one thread each (`f_workers`, `ttl.parallel`): small
# networks use two cores better that way, and each run's numbers do not depend on which worker takes it.

# %%
out = FT.run_finetuning(cfg, seed, str(dev), student_file, teachers_path, res_dir, real_dir=real_path,
                        clean_dir=clean_path, synthetic_dir=synthetic_path, resume=resume, only=only,
                        public_dir=public_path)
rows, runs, search = out["rows"], out["runs"], out["search"]
print("paired pool:", len(out["pairs"]), "items;", {k: f"{v['n']} pairs x {v['repeats']} ({v['share']:.0%})"
                                                    for k, v in out["pairs"].info.get("public", {}).items()} or
      "no public training pairs")
scores = {n: S.model_scores(r, cfg["bootstrap"], seed) for n, r in runs.items()}
params = {n: r[0]["params"] for n, r in runs.items()}

# %% [markdown]
# ## 2. The learning-rate search
# Every trial of every searched row: per draw, its best validation score and the step it was reached at, and the mean
# over the draws that decides (the full curves in the figure, one line style per draw; the star is draw 0's chosen
# checkpoint at the chosen rate). The chosen learning rate trains every other seed of the row.

# %%
search_tab = S.search_table(search)
search_tab.to_csv(res_dir / "search.csv", index=False)
display(search_tab)
fig = plots.plot_search(search, fig_dir / "lr_search.png", key=FT.SELECT_KEY)

# %% [markdown]
# ## 3. Every row on the validation sets
# Mean over seeds, `[95 % CI over images]` (bootstrap of the seed-averaged per-image values). These are the
# validation crops that chose nothing: checkpoints and learning rates were chosen on a disjoint set of selection crops
# (`f_val_select` per set, `ttl.heldout.split_validation`). Notebook 05's test sets are scored once, at the end.
# In the figure the thick bar is that interval, the thin black bar the t-interval over seeds, the dashed line the
# rainy input.

# %%
table = S.results_table(rows, scores, params, cfg, search)
table.to_csv(res_dir / "results_table.csv", index=False)
display(table)
inp = {d: v["psnr_y"] for d, v in out["input"].items()}
print("rainy input:", {d: f"PSNR-Y {v['psnr_y']:.2f} dB, SSIM-Y {v['ssim_y']:.3f}" for d, v in out["input"].items()})
fig = plots.plot_rows(scores, fig_dir / "rows_psnr_y.png", reference=inp)

# %% [markdown]
# ## 4. The headline comparisons (C3) and the controls
# `ttl` minus each headline row and control: the difference with its 95 % interval over draws and images (the one the
# verdicts use), the draws on each side, and the interval over images alone with its Wilcoxon p. Positive = `ttl`
# better.

# %%
baselines = [n for n, r in rows.items() if r.role in ("headline", "control") and n != "ttl" and "ttl" in runs]
fractions = {n: r.fraction for n, r in rows.items()}  # minority rows of one fraction are paired on common draws
comparisons = {b: S.compare(scores, runs, "ttl", b, cfg["bootstrap"], seed, fractions) for b in baselines}
comp = S.comparison_table(comparisons)
comp.to_csv(res_dir / "comparisons.csv", index=False)
display(comp)

# %% [markdown]
# ## 5. The pretraining dose-response
# Teachers and distillation trained again at `f_dose` times their steps (the study's own, x1, is the headline `ttl`),
# each student fine-tuned like `ttl` (its chosen learning rate, best validation checkpoint) on `f_dose_draws` minority
# draws and compared with `sup-minority` on the same draws. They are the same draws at every budget, those after the lr
# search's (`f_search_draws`, `f_search_draws + 1`, ...): the search's winning trials were chosen at x1 and would
# favour it (the chosen lr itself still does). If pretraining is what helps, `ttl - sup-minority` should
# grow with the budget and with the teachers' quality.

# %%
dose = D.dose_response(cfg, seed, str(dev), out, teachers_path, res_dir, real_dir=real_path, clean_dir=clean_path,
                       resume=resume) if "ttl" in runs and "sup-minority" in runs and cfg["f_dose"] else None
if dose:
    dose_tab = D.dose_table(dose, runs["sup-minority"], cfg["bootstrap"], seed)
    dose_tab.to_csv(res_dir / "dose_response.csv", index=False)
    display(dose_tab)
    fig = plots.plot_dose(dose_tab, fig_dir / "dose_response.png")
    print(E.dose_trend(dose_tab.to_dict(orient="records")))
    print(E.dose_trend(dose_tab.to_dict(orient="records"), "realistic"))

# %% [markdown]
# ## 6. The fraction sweep
# `ttl` against training the same architecture from scratch, as the share of paired data grows (100 % from
# scratch is `sup-full`). Intervals over images; points with several draws are averaged over them.

# %%
sweep = S.sweep_points(rows, scores)
sweep.to_csv(res_dir / "sweep.csv", index=False)
fig = plots.plot_sweep(sweep, fig_dir / "fraction_sweep.png")
display(sweep.pivot_table(index=["domain", "fraction"], columns="method", values="mean").round(2))

# %% [markdown]
# ## 7. Why the distilled start was no better than a random one: the diagnosis, and the fix
# The study's earlier runs found `ttl` no better than `sup-minority`. Measured on the starts (`ttl.transfer`,
# validation renders, nothing trained): the weights and activation scale of each stage, the linear CKA between each
# start and its fine-tuned end (1: kept, near 0: replaced), and ridge probes of each stage's features for the rain
# layer (R² on held-out pixels). The starts: `distilled` (this study's student as fine-tuning gets it: head reset,
# layers rescaled), `distilled-raw` (the same student before the rescaling), `student-target-ms` (a distillation with
# the feature loss before an earlier fix, teacher features at their raw scale: the `ttl-target-ms` ablation
# fine-tunes it) and `random` (the scratch rows' start).
#
# The defect this found: a distilled student's deep activations run about 200x a fresh network's (its features are
# distilled towards standardised targets), so a zeroed head multiplied by them moves the output about 200x faster
# than a scratch row's head. At the chosen learning rate one of five minority draws of the run of 1765cbc fell from
# 21 to 19 dB PSNR-Y in its first 200 steps and never recovered, and that draw alone set most of `ttl`'s deficit.
# Rescaled to a fresh network's layer scale, the same features fine-tuned on draws 1–3 gained +2.55 dB
# [+0.01, +6.26] on realistic validation over the unrescaled start and ended level with a random start
# (`docs/measurements/start_scale`). Every pretrained start is now rescaled (`ttl.finetune.prepare_start`).

# %%
start_rows = [r for r in ("ttl", "ttl-target-ms", "sup-minority") if r in runs]
diag = transfer.diagnose(cfg, seed, student_file, {r: runs[r][0]["checkpoint"] for r in start_rows},
                         {d: out["val"][d] for d in ("synthetic", "realistic")}, bool(runs["ttl"][0]["context"]),
                         FT.start_batch(out["pairs"]), rows=start_rows, extra_starts={k: v for k, v in out["starts"].items() if k == "student-target-ms"},
                         start_of={"ttl-target-ms": "student-target-ms"}) if "ttl" in runs else None
if diag:
    C.write_json(res_dir / "transfer_diagnosis.json", diag)
    print(transfer.summary(diag))

# %% [markdown]
# ## 8. Why: the ablations and the controls
# Each pair of `ttl.scores.DIAGNOSIS_PAIRS` (row minus reference, paired by image, 95 % interval over draws and
# images): what each teacher, distillation itself, a trainable encoder, the feature-loss fix, capacity and generic
# (not task) pretraining contribute. Keep in mind what T2 learns: its label is the real-domain rainy image itself
# (before the extra scattering), so its features, and the output the student is taught to copy, *keep* rain streaks —
# the opposite of what fine-tuning on synthetic pairs asks for — while T1's features only have to *see* rain.

# %%
pairs_run = [(a, b, w) for a, b, w in S.DIAGNOSIS_PAIRS + (("ttl", "ttl-target-ms", "the feature-loss fix"),)
             if a in runs and b in runs]
abl = pd.DataFrame([{"row": a, "minus": b, "what": w, "validation": dom,
                     f"{METRIC_LABELS['psnr_y']} difference": f"{r['psnr_y']['mean_diff']:+.2f} "
                                                              f"[{r['psnr_y']['low']:+.2f}, {r['psnr_y']['high']:+.2f}]",
                     f"{METRIC_LABELS['ssim_y']} difference": f"{r['ssim_y']['mean_diff']:+.3f} "
                                                              f"[{r['ssim_y']['low']:+.3f}, {r['ssim_y']['high']:+.3f}]"}
                    for a, b, w in pairs_run
                    for dom, r in S.compare(scores, runs, a, b, cfg["bootstrap"], seed, fractions).items()
                    if dom != "realistic_clean"])
abl.to_csv(res_dir / "ablations.csv", index=False)
display(abl)
diagnosis = S.diagnose(scores, runs, cfg["bootstrap"], seed, fractions)
print("\n".join(diagnosis))

# %% [markdown]
# ## 9. Curves and examples
# Validation PSNR-Y during training (first seed of the headline rows, at their chosen learning rate), and outputs on
# synthetic and realistic validation crops (downscaled crops of the val-split photographs).

# %%
headline = [n for n, r in rows.items() if r.role == "headline"]
fig = plots.plot_val_curves({n: runs[n][0]["log"] for n in headline}, fig_dir / "validation_curves.png")
for dom in ("synthetic", "realistic"):
    fig = plots.image_grid(FT.example_rows(out["val"][dom], {n: runs[n][0]["checkpoint"] for n in headline}, n=4,
                                           target="streak-free target" if dom == "realistic" else "clean"),
                           fig_dir / f"examples_{dom}.png")

# %% [markdown]
# ## 10. Record
# Checkpoints: `checkpoints/<model>.pt` (first seed) and `<model>.seed<k>.pt`; each loads alone with
# `ttl.models.load_model` (and `ttl derain --checkpoint`).

# %%
models = {n: {**scores[n], "params": params[n], "fraction": rows[n].fraction, "init": rows[n].init,
              "role": rows[n].role, "parent": rows[n].parent, "tuned": rows[n].tune,
              "lr": search[n]["lr"], "lr_source": search[n]["lr_source"],
              "chosen_steps": [r["step"] for r in runs[n]],
              "steps": FT.recipe_steps(rows[n], cfg), "rain": rows[n].rain or cfg["f_rain"],
              "context": runs[n][0]["context"], "note": rows[n].note, "seeds": [r["seed"] for r in runs[n]],
              "checkpoints": [r["checkpoint"] for r in runs[n]]} for n in runs}
dose_rec = None
if dose:
    dose_rec = {"lr": dose["lr"], "table": dose_tab.to_dict(orient="records"),
                "points": [{k: v for k, v in p.items() if k != "runs"} | {
                    "seeds": [r["seed"] for r in p["runs"]], "chosen_steps": [r["step"] for r in p["runs"]],
                    **({"logs": [r["log"] for r in p["runs"]]} if p["budget"] != 1 else {})}  # x1: ttl's own logs
                    for p in dose["points"]]}
metrics = {"models": models, "input": {d: {k: v for k, v in s.items() if k != "per_image"}
                                       for d, s in out["input"].items()},
           "search": search, "comparisons": comparisons, "dose": dose_rec, "sweep": sweep.to_dict(orient="records"),
           "diagnosis": diagnosis, "transfer_diagnosis": diag,
           "logs": {n: [r["log"] for r in rs] for n, rs in runs.items()}, "pretraining_logs": out["pretraining_logs"],
           "workers": out["workers"]}
manifest = {**out["manifest"], "data_source": C.data_source(clean_dir=clean_path, real_dir=real_path,
                                                           synthetic_dir=synthetic_path, public_dir=public_path)}
record = C.run_record(NAME, cfg, seed, str(dev), manifest, metrics, started, revision)
C.write_json(res_dir / "metrics.json", record)
print(f"wrote {res_dir / 'metrics.json'} ({record['wall_time_s']:.0f} s)")
if "sup-minority" in comparisons:
    for dom in comparisons["sup-minority"]:
        r = comparisons["sup-minority"][dom]["psnr_y"]
        verdict = "better" if r["low"] > 0 else ("worse" if r["high"] < 0 else "not distinguishable")
        print(f"{dom}: ttl minus sup-minority PSNR-Y {r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}] "
              f"({r['draws_a']} vs {r['draws_b']} draws) -> ttl is {verdict}")

# %% [markdown]
# ## What we found
# Generated from this run's record (`ttl.report.findings`): the same text as this notebook's part of the README's
# results section, every number read from `metrics.json`.

# %%
display(Markdown(report.findings(record)))
