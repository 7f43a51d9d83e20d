"""Build the README's results section from the files the study wrote (never typed by hand).

``ttl report`` replaces the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
``README.md`` with tables generated from ``results/*/default/metrics.json``, ``results/*.json`` and the shipped
deraining model's record ``weights/derain/derain.json``."""
from __future__ import annotations

import json
from pathlib import Path

from .experiments import gap_experiment_table
from .layouts import SHARED_PUBLIC
from .metrics import LIGHT_RAIN_MAX
from .scores import ci_text
from .ship import PRENET

START, END = "<!-- results:start -->", "<!-- results:end -->"

__all__ = ["results_markdown", "update_readme", "shipped_section", "findings"]


def _markdown_table(df) -> list[str]:
    """A pandas DataFrame as GitHub markdown lines (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return lines


def _header(m: dict, title: str) -> str:
    src = m.get("data_manifest", {}).get("data_source", {})
    clean = src.get("clean_dir")
    scenes = ("photographs (`clean_dir`, " + clean["origin"] + ")" if isinstance(clean, dict)
              else "procedural scenes (no photographs found)") if src else "not recorded"
    return (f"### {title} (preset `{m['preset']}`, seed {m['seed']}, revision `{m['git_revision'][:12]}`, "
            f"{m.get('wall_time_s', 0):.0f} s; scenes: {scenes})")


def _gap_section(m: dict) -> list[str]:
    out = [_header(m, "Notebook 01 — the gap"), ""]
    ref = m.get("reference", "real")
    n_real = len(m["data_manifest"].get("real", {}).get("held_out", []))
    if ref == "real":
        out += [f"Distance to **{n_real} held-out real rainy photographs** (never used for calibration): standardised "
                "1-Wasserstein over images (units of the real photographs' sd) or Jensen–Shannon divergence (bits) "
                "of pooled histograms, with 95 % bootstrap intervals. Lower is closer.", "",
                "| statistic | measure | synthetic rain | realistic rain | closer |", "|---|---|---|---|---|"]
    else:
        out += ["No real photographs were given: distances are to realistic rain.", "",
                "| statistic | measure | synthetic rain | | |", "|---|---|---|---|---|"]
    rows = {}
    for r in m["distances"]:
        rows.setdefault((r["statistic"], r["measure"]), {})[r["domain"]] = r
    for (stat, meas), d in rows.items():
        s = d.get("synthetic")
        rr = d.get("realistic")
        fmt = ".3f" if meas == "JS" else ".2f"
        cell = lambda r: f"{r['distance']:{fmt}} [{r['low']:{fmt}}, {r['high']:{fmt}}]" if r else ""  # noqa: E731
        closer = "realistic" if rr and s and rr["distance"] < s["distance"] else ("synthetic" if rr else "")
        out.append(f"| {stat} | {meas} | {cell(s)} | {cell(rr)} | {closer} |")
    out.append("")
    c2 = m.get("c2st", {})
    if c2:
        out += ["Classifier two-sample test (logistic regression on the per-image statistics, 5-fold ROC-AUC; 0.5 = "
                "indistinguishable):", "", "| pair | AUC [95 % CI] | permutation p |", "|---|---|---|"]
        for k, v in c2.items():
            name = {"synthetic": f"synthetic vs {ref}", "realistic": f"realistic vs {ref}"}.get(k, k.replace("_", " "))
            out.append(f"| {name} | {v['auc']:.3f} [{v['low']:.3f}, {v['high']:.3f}] | {v['p_value']:.3g} |")
        out.append("")
    cal = m.get("synthetic_calibration")
    if cal:
        out += ["The synthetic recipe against public synthetic rain: standardised W1 distance of rendered rain layers to "
                "the exact rain layers of the public *training* pairs each preset was calibrated on (`light`: the "
                "Rain13K sample, `heavy`: the Rain200H sample; 95 % bootstrap intervals):", "",
                "| preset | statistic | hand-set recipe | calibrated |", "|---|---|---|---|"]
        rows: dict = {}
        for r in cal:
            rows.setdefault((r["preset"], r["statistic"]), {})[r["recipe"]] = r
        for (preset, stat), d in rows.items():
            cell = (lambda r: f"{r['distance']:.2f}" + (f" [{r['low']:.2f}, {r['high']:.2f}]"
                                                        if r["low"] is not None and r["low"] == r["low"] else ""))
            out.append(f"| {preset} | {stat} | {cell(d['hand-set'])} | {cell(d['calibrated'])} |")
        out.append("")
    e = m["c2_experiment"]
    out += ["Motivating experiment (C2): a U-Net "
            f"({e['params'] / 1e6:.2f} M parameters) trained on the synthetic training pairs, tested on the same "
            f"{len(e['per_image']['model/synthetic']['psnr_y'])} photographs ({e.get('test', 'test photographs')}) "
            "with synthetic or realistic rain; realistic rain scored against its streak-free target and against the "
            "clean scene (mean [95 % CI]):", ""]
    out += _markdown_table(gap_experiment_table(e["summary"]))
    g = e["gain_over_input_drop"]["psnr_y"]
    gc = e.get("gain_over_input_drop_clean_target", {}).get("psnr_y")
    out += ["", f"Gain over the rainy input, synthetic minus realistic rain (streak-free target): **{g['mean_diff']:.2f} "
            f"dB** [{g['low']:.2f}, {g['high']:.2f}] (paired, Wilcoxon p = {g['wilcoxon_p']:.2g})"
            + (f"; against the clean scene {gc['mean_diff']:.2f} dB [{gc['low']:.2f}, {gc['high']:.2f}]." if gc else "."),
            ""]
    v = m.get("verdicts", {})
    if v:
        out += ["Verdicts: " + "; ".join(f"{k} — {val}" for k, val in v.items()) + ".", ""]
    return out


def _teacher_section(m: dict) -> list[str]:
    out = [_header(m, "Notebook 02 — teachers"), "",
           "Each teacher on its own task, on the held-out test split (mean [95 % bootstrap CI over images]):", "",
           "| teacher | metric | value |", "|---|---|---|"]
    for r in m["table"]:
        ci = f" [{r['low']:.3f}, {r['high']:.3f}]" if r.get("low") is not None else ""
        out.append(f"| {r['teacher']} | {r['metric']} | {r['mean']:.3f}{ci} |")
    s = m["sizes"]
    out += ["", "Sizes: " + "; ".join(f"{k.upper()} {v['params'] / 1e6:.2f} M parameters, {v['gflops_256']:.1f} GFLOPs "
                                     "at 256x256" for k, v in s.items()) + ".", ""]
    return out


def _distill_section(m: dict) -> list[str]:
    p = m["params"]
    out = [_header(m, "Notebook 03 — distillation"), "",
           f"Parameters: T1 {p['t1'] / 1e6:.2f} M, T2 {p['t2'] / 1e6:.2f} M, student {p['student'] / 1e6:.2f} M: the "
           f"student is **1/{m['size_ratio_teachers_over_student']:.1f}** of the teachers together. What it kept, "
           "on held-out data (mean [95 % CI]):", "", "| task | model | value |", "|---|---|---|"]
    for r in m["kept"]:
        out.append(f"| {r['task']} | {r['who']} | {r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}] |")
    out.append("")
    return out


def _diff(r: dict, f: str = "+.2f") -> str:
    return f"{r['mean_diff']:{f}} [{r['low']:{f}}, {r['high']:{f}}] (p = {r['wilcoxon_p']:.2g})"


def _finetune_section(m: dict) -> list[str]:
    c = m["config"]
    pairs = m["data_manifest"].get("pairs", {})
    grid = ", ".join(f"{x:g}" for x in c.get("f_lr_grid", [c["f_lr"]]))
    out = [_header(m, "Notebook 04 — fine-tuning, baselines and controls"), "",
           f"{c['f_steps']} steps on all pairs, {c.get('f_steps_minority', c['f_steps'])} on a minority, batch "
           f"{c['f_batch']}, {c['f_patch']} px crops, {c['f_loss'].upper()} loss, from {pairs.get('pairs', '?')} fixed "
           f"synthetic pairs of {pairs.get('scenes', '?')} training scenes; minority = {100 * c['f_fraction']:g} % of the "
           f"scenes. Headline rows and controls searched the learning rate over {{{grid}}} on "
           f"{c.get('f_search_draws', 1)} draw(s), choosing the best mean; every run ends "
           "with its best validation checkpoint. Held-out **validation** crops (disjoint from the crops that chose "
           "checkpoints and learning rates), mean over seeds [95 % CI over images]; realistic rain against its "
           "streak-free target (and, last column, against the clean scene):", "",
           "| model | role | params (M) | scenes | steps | lr | seeds | synthetic PSNR-Y (dB) | synthetic SSIM-Y | "
           "realistic PSNR-Y (dB) | realistic SSIM-Y | realistic vs clean PSNR-Y (dB) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    inp = m.get("input", {})
    if inp:
        out.append(f"| rainy input | | | | | | | {inp['synthetic']['psnr_y']:.2f} | {inp['synthetic']['ssim_y']:.3f} | "
                   f"{inp['realistic']['psnr_y']:.2f} | {inp['realistic']['ssim_y']:.3f} | "
                   f"{inp.get('realistic_clean', {}).get('psnr_y', float('nan')):.2f} |")
    for n, v in m["models"].items():
        frac = 100 * (1.0 if v["fraction"] is None else v["fraction"])
        steps = v.get("steps", "?")  # recorded per row by notebook 04 (ttl.finetune.recipe_steps)
        lr = f"{v['lr']:g}" + ("" if v.get("lr_source") == "search" else f" ({v.get('lr_source', '')})") \
            if "lr" in v else ""
        rc = ci_text(v["realistic_clean"], "psnr_y") if "realistic_clean" in v else ""
        out.append(f"| {n} | {v.get('role', '')} | {v['params'] / 1e6:.3f} | {frac:g} % | {steps} | {lr} | "
                   f"{len(v['seeds'])} | {ci_text(v['synthetic'], 'psnr_y')} | {ci_text(v['synthetic'], 'ssim_y')} | "
                   f"{ci_text(v['realistic'], 'psnr_y')} | {ci_text(v['realistic'], 'ssim_y')} | {rc} |")
    out += ["", "`ttl` minus each headline row and control, PSNR-Y (dB) [95 % CI over draws and images] (draws):", "",
            "| baseline | synthetic validation | realistic validation |", "|---|---|---|"]
    for b, d in m["comparisons"].items():
        s_, r_ = d["synthetic"]["psnr_y"], d["realistic"]["psnr_y"]
        out.append(f"| {b} | {_diff(s_)} ({s_.get('draws_a', '?')} vs {s_.get('draws_b', '?')}) | {_diff(r_)} |")
    out.append("")
    dose = m.get("dose")
    if dose:
        from .evaluation import dose_trend

        out += ["Pretraining dose-response (teachers and distillation at each budget, `ttl` fine-tuned at its chosen "
                "learning rate, compared with `sup-minority` on the same draws):", "",
                "| budget | T1 steps | T1 AUC | T2 gain (dB) | draws | synthetic: ttl - sup-minority (dB) | "
                "realistic: ttl - sup-minority (dB) |", "|---|---|---|---|---|---|---|"]
        by = {}
        for r in dose["table"]:
            by.setdefault(r["budget (x preset)"], {})[r["set"]] = r
        for b, d in sorted(by.items()):
            r0 = next(iter(d.values()))
            cell = lambda r: (f"{r['ttl minus sup-minority PSNR-Y (dB)']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]"  # noqa: E731
                              if r else "")
            out.append(f"| x{b:g} | {r0['T1 steps']} | {r0['T1 AUC']:.3f} | {r0['T2 gain (dB)']:+.2f} | {r0['draws']} | "
                       f"{cell(d.get('synthetic'))} | {cell(d.get('realistic'))} |")
        out += ["", f"In words: {dose_trend(dose['table'])}; {dose_trend(dose['table'], 'realistic')}.", ""]
    if m.get("diagnosis"):
        out += ["Why (computed from the sweep, the ablations and the controls, `ttl.scores.diagnose`):", ""]
        rms = (m.get("transfer_diagnosis") or {}).get("activation_rms") or {}
        if {"distilled-raw", "distilled", "random"} <= set(rms):
            deep = [k for k in rms["random"] if k.startswith("enc")][-1]
            raw, rnd, now = (rms[k][deep] for k in ("distilled-raw", "random", "distilled"))
            out += [f"- Pretrained starts are rescaled layer by layer to a fresh network's output scale on training "
                    f"inputs (`f_rescale_start`, `ttl.finetune.prepare_start`): the distilled student's deepest encoder "
                    f"stage ({deep}) ran at an activation RMS of {raw:.3g}, {raw / rnd:.0f}x a fresh network's "
                    f"({rnd:.3g}); {now:.3g} after the rescaling."]
        out += [f"- {line}" for line in m["diagnosis"]] + [""]
    return out


def _amount_lines(records: list[dict], models: list[str]) -> list[str]:
    """The by-rain-amount records of notebook 05 (or of the shipped model) as markdown: one line per (set, amount),
    the input's PSNR-Y and ΔY, then per model the PSNR-Y gain [95 % CI] and the output's ΔY."""
    models = [x for x in models if any(r["model"] == x for r in records)]
    out = ["| set | rain | n | input PSNR-Y (dB) | input ΔY | " + " | ".join(f"{x}: gain (dB) [95 % CI], ΔY" for x in models)
           + " |", "|---|---|---|---|---|" + "---|" * len(models)]
    lines: dict[tuple, dict] = {}
    for r in records:
        lines.setdefault((r["set"], r["rain"]), {})[r["model"]] = r
    for (name, rain), per in lines.items():
        i = per["input"]
        cells = [f"{per[x]['gain_psnr_y']:+.2f} [{per[x]['gain_psnr_y_ci'][0]:+.2f}, {per[x]['gain_psnr_y_ci'][1]:+.2f}], "
                 f"{per[x]['bias_y']:+.1f}" if x in per else "" for x in models]
        out.append(f"| {name} | {rain} | {i['n']} | {i['psnr_y']:.2f} | {i['bias_y']:+.1f} | " + " | ".join(cells) + " |")
    return out


def shipped_section(rec: dict) -> list[str]:
    """The shipped deraining model (``weights/derain/derain.json``, written by ``make weights``) as markdown."""
    r, t, sp = rec["recipe"], rec["training"], rec["speed"]
    data = rec.get("data", {})
    parts = []
    clean = data.get("clean_dir")
    if clean:
        parts.append(f"{len(clean['files'])} training photographs of `clean_dir` rendered {clean['renders']} times "
                     f"(rain amounts {', '.join(f'{k} {v}' for k, v in clean['amounts'].items())})")
    parts += [f"the {v['n']} {'fit-part ' if v.get('role') == 'fit' else ''}pairs of `{k}` (x{v['repeats']}"
              + (f", {v['share']:.0%} of the items)" if "share" in v else ")") for k, v in data.items()
              if k not in ("clean_dir", "pairs", "scenes") and isinstance(v, dict) and "repeats" in v]
    calib = rec.get("calibration_sets") or []
    split = [k for k in calib if data.get(k, {}).get("role") == "fit"]  # two-role folders: scored on their test part
    whole = [k for k in calib if k not in split]
    out = [f"### The shipped deraining model (`weights/derain/derain.pt`, `make weights`, revision "
           f"`{rec['git_revision'][:12]}`)", "",
           f"A {rec['spec']['width']}-channel, depth-{rec['spec']['depth']} restoration network "
           f"{'with' if rec['spec'].get('context') else 'without'} the context path "
           f"({rec['params'] / 1e6:.3f} M parameters, {rec['gflops_256']:.2f} GFLOPs at 256²), trained from scratch for "
           f"{t['steps']} steps (batch {r['batch']}, {r['patch']} px crops, {r['loss'].upper()} loss, lr {r['lr']:g}) in "
           f"**{t['time_s'] / 60:.1f} min** on {t['threads']} {t['device'].upper()} threads, on "
           + "; ".join(parts) + f" ({t['pairs']} pairs in all). Scored once on the public test pairs "
           f"({', '.join(rec['public_test_sets'])}), which it never saw"
           + (f" ({', '.join(whole)}: its rain layers calibrated the synthetic light preset's streak shapes)"
              if whole else "")
           + (f" ({', '.join(split)}: its test part only, split by file name; the other part calibrated the synthetic "
              "light preset and trains the model)" if split else "")
           + "; PSNR-Y gain over the rainy input [95 % CI over images] and the output's mean ΔY against the target "
           "(grey levels; negative = darker):", ""]
    out += _amount_lines(rec["public"].get("by_rain_amount", []), [rec["model"]])
    tiled = (f"; tiled as `ttl derain` runs by default ({sp['tile']}-px tiles overlapping by 128 px, which at "
             f"{sp['size']}² computes about 2.3 pixels per output pixel, for bounded memory): "
             f"{sp['ours_tiled_s_per_mp']:.3f} s/MP" if "ours_tiled_s_per_mp" in sp else "")
    out += ["", f"Speed ({sp['size']}² image, median of {sp['repeats']}, {sp['threads']} threads): whole image "
            f"**{sp['ours_s_per_mp']:.3f} s/MP**{tiled}. PReNet ({PRENET['params_m']} M parameters; "
            f"{PRENET['rain100l_psnr_y']} dB PSNR-Y on Rain100L with its official weights) takes about "
            f"{PRENET['s_per_480x320_2cpu']} s per 480×320 image on 2 CPU cores, "
            f"{sp['prenet_published_s_per_mp']:.1f} s/MP (whole image): ours is **{sp['speedup_vs_prenet_published']:.0f}x** "
            f"faster; its architecture timed here the same way as ours: {sp['prenet_arch_s_per_mp']:.2f} s/MP "
            f"({sp['speedup_vs_prenet']:.0f}x; our re-implementation of PReNet is slower than the published time).", ""]
    return out



def _evaluation_section(m: dict) -> list[str]:
    sets = [d for d in ("synthetic", "realistic", "realistic_clean") if d in m["models"]["input"]]
    n_test = m["data_manifest"].get("test_sets", {}).get("synthetic", "?")
    out = [_header(m, "Notebook 05 — test sets and verdicts"), "",
           f"**Photographs no model saw** ({n_test} test photographs, whole) with synthetic rain and with realistic "
           "rain (against its streak-free target, and against the clean scene). Mean over seeds [95 % CI over images]:",
           ""]
    roles = m.get("roles", {})  # each row's role, as notebook 04 recorded it (ttl.finetune.recipes)
    head = ["input", "ttl"] + [n for n in m["models"] if n != "ttl" and roles.get(n) in ("headline", "control")]
    head = [n for n in head if n in m["models"]]
    from .evaluation import SCORED_EVERYWHERE

    everywhere = [n for n in m["models"] if roles.get(n) in SCORED_EVERYWHERE]
    labels = {"synthetic": "synthetic", "realistic": "realistic", "realistic_clean": "realistic vs clean"}
    out += ["| model | " + " | ".join(f"{labels[d]} PSNR-Y (dB) | {labels[d]} SSIM-Y" for d in sets) + " |",
            "|---|" + "---|---|" * len(sets)]
    for n in head:
        v = m["models"][n]
        out.append(f"| {n} | " + " | ".join(f"{ci_text(v[d], 'psnr_y')} | {ci_text(v[d], 'ssim_y')}" for d in sets) + " |")
    pub = m.get("public") or {}
    if pub:
        # a column for every model scored on each public set
        models = [n for n in everywhere if all(n in per for per in pub.values())]
        roles = {k: v.get("role") for k, v in m["data_manifest"].get("public", {}).items() if isinstance(v, dict)}
        split = [k for k, r in roles.items() if r == "test"]  # two-role folders, scored on their test part
        note = ("the `_train` samples are not scored: they calibrated the synthetic renderer and train notebook 04's "
                "full-data rows; "
                + (f"of {', '.join(f'`{k}`' for k in split)} only the test part (split by file name; the other part "
                   "calibrated the `light` preset and is in that pool)" if split else
                   f"{', '.join(f'`{k}`' for k in SHARED_PUBLIC)}, scored whole here, also calibrated the `light` "
                   "preset"))
        out += ["", f"**Public pairs** (whole images, PSNR-Y / SSIM-Y as the field's MATLAB scripts; mean over seeds; "
                f"{note}):", "",
                "| set | n | input | " + " | ".join(models) + " |", "|---|---|---|" + "---|" * len(models)]
        for name, per in pub.items():
            cells = [f"{per[x]['psnr_y']:.2f} / {per[x]['ssim_y']:.3f}" for x in ["input"] + models]
            out.append(f"| {name} | {per['input']['n']} | " + " | ".join(cells) + " |")
        out += ["", "Gain over the rainy input on the public test pairs, PSNR-Y (dB) [95 % CI over images]:", "",
                "| set | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for name, per in pub.items():
            out.append(f"| {name} | " + " | ".join(
                f"{per[x]['gain_over_input']['psnr_y']['mean_diff']:+.2f} [{per[x]['gain_over_input']['psnr_y']['low']:+.2f}, "
                f"{per[x]['gain_over_input']['psnr_y']['high']:+.2f}]" for x in models) + " |")
    amounts = m.get("by_rain_amount") or []
    if amounts:
        out += ["", "**Light rain and heavy rain** (each set split by the input's rain amount: light = on average less "
                f"than {LIGHT_RAIN_MAX:g} grey levels of Y brighter than its target): PSNR-Y gain over the input [95 % CI "
                "over images] and the output's mean ΔY against the target (grey levels; negative = darker). "
                "`sup-full-before` is `sup-full` without the darkening fix (its light and heavy renders only, no context "
                "path), `sup-full-no-context` without the context path:", ""]
        out += _amount_lines([r for r in amounts if r["rain"] != "all" or not any(
            q["set"] == r["set"] and q["rain"] != "all" for q in amounts)],
            everywhere)
    out += ["", "`ttl` minus each headline row and control, PSNR-Y (dB) [95 % CI over minority draws and images] "
            "(Wilcoxon p over images):", "",
            "| baseline | draws | " + " | ".join(labels[d] for d in sets) + " |", "|---|---|" + "---|" * len(sets)]
    for b in [x for x in head[2:] if x in m["comparisons"]]:
        d = m["comparisons"][b]
        r0 = d[sets[0]]["psnr_y"]
        out.append(f"| {b} | {r0.get('draws_a', '?')} vs {r0.get('draws_b', '?')} | "
                   + " | ".join(_diff(d[s]["psnr_y"]) for s in sets) + " |")
    bind = m.get("binding") or {}
    if bind:
        out += ["", "Does the experiment bind? On the same test images, more data and a bigger network must help "
                "(`ttl.evaluation.BINDING_PAIRS`), PSNR-Y (dB) paired by image [95 % CI] (Wilcoxon p):", "",
                "| difference | what | " + " | ".join(labels[d] for d in sets) + " |", "|---|---|" + "---|" * len(sets)]
        for name, b in bind.items():
            out.append(f"| {name} | {b['what']} | " + " | ".join(_diff(b["diff"][s]["psnr_y"]) for s in sets) + " |")
    nr = m.get("noref") or {}
    if nr:
        jr = m.get("judge") or {}
        out += ["", f"**Real rainy photographs** ({len(m.get('real_photographs', []))}, outside the train split; no "
                "ground truth), judged by `ttl.realrain`: the *rain left* (P(rain) of a small network fitted on the train "
                "splits of real rainy vs rain-free photographs, floored at the median rain-free photograph"
                + (f"; test AUC {jr['test_auc']:.2f} [{jr['test_low']:.2f}, {jr['test_high']:.2f}], "
                   f"{jr['n_test_rainy']} vs {jr['n_test_clean']} photographs" if jr else "")
                + ") counted only where the *scene kept* (the least of SSIM-Y and the horizontal and vertical gradient energy "
                "against the input, outside its streak candidates) "
                "reaches the level of nine in ten noise-kept streak-free targets"
                + (f" ({jr['scene_floor']:.2f})" if jr else "") + "; beside it P(rain) of the oriented-line "
                "statistics and the streak energy (both fooled by blur), NIQE and PIQE. Mean [95 % CI]; higher is "
                "better for the scene kept only:", "",
                "| model | credited rain left | scene kept | P(rain), lines | streak energy | NIQE | PIQE |",
                "|---|---|---|---|---|---|---|"]
        for n in ["input"] + everywhere:
            q = nr.get(n)
            if not q:
                continue
            cell = lambda k, x=1.0, f=".2f": (f"{q[k]['mean'] * x:{f}} [{q[k]['low'] * x:{f}}, {q[k]['high'] * x:{f}}]"  # noqa: E731
                                              if k in q else "")
            out.append(f"| {n} | {cell('credited_rain_left', f='.3f')} | {cell('scene_kept', f='.3f')} | "
                       f"{cell('p_rain', f='.3f')} | {cell('streak_energy', 1000)} | {cell('niqe')} | {cell('piqe')} |")
        val = m.get("judge_validation") or []
        if val:
            sets_ = list(dict.fromkeys(r["set"] for r in val))
            cases = list(dict.fromkeys(r["case"] for r in val))
            share = {(r["set"], r["case"]): r["derained_share"] for r in val}
            out += ["", "The judge where the answer is known: share of images judged derained (rain left below the "
                    "input's and scene kept above the floor). The noise-kept target should pass (the noise-free and public "
                    "targets are also charged for the noise or faint rain they remove); no nuisance may:", "",
                    "| case | " + " | ".join(sets_) + " |", "|---|" + "---|" * len(sets_)]
            out += [f"| {c} | " + " | ".join(f"{share[(s_, c)]:.0%}" if (s_, c) in share else "" for s_ in sets_) + " |"
                    for c in cases]
            jc = m.get("judge_check") or {}
            if jc.get("worst"):
                ts = jc.get("target_share")
                target = ("" if "min_target_share" not in jc else
                          f"; the noise-kept streak-free target judged derained on at least "
                          f"{jc['min_target_share']:.0%} of the test renders: "
                          + ("not measured" if ts is None else f"{ts:.0%}"))
                out += ["", f"On the real photographs the judge is **{'valid' if jc['valid'] else 'not valid'}** by its "
                        f"rule (no nuisance judged derained on more than {jc['max_share']:.0%} of them; worst: "
                        f"{jc['worst']}, {jc['share']:.0%}{target})."]
        rk = m.get("ranking_check") or {}
        if rk:
            out += ["", "Ranking check on the realistic test renders (streak-free target known): Kendall's τ between "
                    "the models' PSNR-Y against the target and each ground-truth-free measure [95 % CI over images]: "
                    + "; ".join(f"{k} {v['tau']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]" for k, v in rk.items())
                    + f" ({len(next(iter(rk.values()))['models'])} models, the input included)."]
    out += ["", "**Verdicts** (rules fixed in `ttl.evaluation.VERDICT_RULES` before the run):", "",
            "| claim | verdict | evidence |", "|---|---|---|"]
    out += [f"| {v['claim']} | **{v['verdict']}** | {v['evidence']} |" for v in m["verdicts"]]
    out += ["", "Size and speed (tiled inference, median over runs):", ""]
    out += ["| " + " | ".join(m["size_speed"][0]) + " |", "|" + "---|" * len(m["size_speed"][0])]
    out += ["| " + " | ".join(str(x) for x in r.values()) + " |" for r in m["size_speed"]]
    out.append("")
    return out


SECTIONS = {"01_statistical_gap_analysis": _gap_section, "02_teacher_pretraining": _teacher_section,
            "03_distillation": _distill_section, "04_finetuning": _finetune_section,
            "05_real_world_evaluation": _evaluation_section}  # notebook -> its part of the results


def findings(record: dict) -> str:
    """A notebook's "What we found" cell: its part of the results (the same text as in the README), built from its
    run record (``metrics.json``: claims, numbers, intervals)."""
    name = record.get("notebook")
    if name not in SECTIONS:
        raise ValueError(f"record of notebook {name!r}: no findings section; known: {', '.join(SECTIONS)}")
    return "\n".join(SECTIONS[name](record)).rstrip() + "\n"


def results_markdown(results_dir: str | Path = "results") -> str:
    """Markdown for every notebook that has a ``default`` run record."""
    results_dir = Path(results_dir)
    parts: list[str] = []
    for nb, section in SECTIONS.items():
        p = results_dir / nb / "default" / "metrics.json"
        if p.is_file():
            parts += section(json.loads(p.read_text()))
    if not parts:
        parts = ["No `default` run has been recorded yet: run `make study`."]
    shipped = Path(results_dir).resolve().parent / "weights" / "derain" / "derain.json"
    if shipped.is_file():
        parts += shipped_section(json.loads(shipped.read_text()))
    t = results_dir / "study_times_default.json"
    if t.is_file():
        st = json.loads(t.read_text())
        parts += [f"Wall time of `make study` (`default`, {st.get('machine', 'this machine')}): "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in st["seconds"].items())
                  + f"; total **{st['total_s'] / 60:.1f} min**.", ""]
    b = results_dir / "benchmark_training.json"
    if b.is_file():
        bm = json.loads(b.read_text())
        parts += [f"Training throughput (`make benchmark`, `ttl benchmark --training`): the engine's loop (data, L1 loss, "
                  f"backward, AdamW) on 64 px crops, {bm['threads']} threads, {bm['repeats']} rounds with every setting "
                  f"once per round; patches/s is the median over rounds, *vs before* the median of the per-round "
                  f"ratios, with their range ({bm['machine']}):", "",
                  "| network | engine setting | patches/s | vs before | range over rounds |", "|---|---|---|---|---|"]
        parts += [f"| {r['network']} | {r['setting']} | {r['median_patches_per_s']:.0f} | x{r['speedup_vs_before']:.2f} "
                  f"| x{r.get('speedup_range', [r['speedup_vs_before']] * 2)[0]:.2f}–"
                  f"x{r.get('speedup_range', [r['speedup_vs_before']] * 2)[1]:.2f} |"
                  for r in bm["results"].values()]
        parts.append("")
    b = results_dir / "benchmark_recipes.json"
    if b.is_file():
        bm = json.loads(b.read_text())
        parts += ["Short-schedule choices (`ttl benchmark --recipes`): `sup-full` trained once per variant on notebook "
                  "04's pairs, scored on the **validation** crops:", "",
                  "| recipe | steps | train s | synthetic PSNR-Y (dB) | realistic PSNR-Y (dB) |", "|---|---|---|---|---|"]
        parts += [f"| {k} | {r['steps']} | {r['train_s']:.0f} | {r['synthetic']['psnr_y']:.2f} | "
                  f"{r['realistic']['psnr_y']:.2f} |" for k, r in bm["results"].items()]
        parts.append("")
    b = results_dir / "benchmark_renderers.json"
    if b.is_file():
        bm = json.loads(b.read_text())
        parts += [f"Rendering throughput (`make benchmark`): {bm['size']}x{bm['size']} procedural patches, batches of "
                  f"{bm['batch']}, {bm['threads']} thread(s), median of {bm['repeats']} runs:", "",
                  "| renderer | patches/s |", "|---|---|"]
        parts += [f"| {k} | {v['median_patches_per_s']:.0f} |" for k, v in bm["results"].items()]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def update_readme(readme: str | Path = "README.md", results_dir: str | Path = "results") -> bool:
    """Replace the README's results block; returns whether the file changed."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{results_markdown(results_dir)}{END}{tail}"
    if new != text:
        readme.write_text(new)
        return True
    return False
