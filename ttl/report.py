"""Build the README's results section from the files the study wrote (never typed by hand).

``ttl report`` replaces the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
``README.md`` with tables generated from ``results/*/default/metrics.json``."""
from __future__ import annotations

import json
from pathlib import Path

from .experiments import gap_experiment_table
from .finetune import ci_text

START, END = "<!-- results:start -->", "<!-- results:end -->"

__all__ = ["results_markdown", "update_readme"]


def _markdown_table(df) -> list[str]:
    """A pandas DataFrame as GitHub markdown lines (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return lines


def _header(m: dict, title: str) -> str:
    return (f"### {title} (preset `{m['preset']}`, seed {m['seed']}, revision `{m['git_revision'][:12]}`, "
            f"{m.get('wall_time_s', 0):.0f} s)")


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
    e = m["c2_experiment"]
    out += ["Motivating experiment (C2): a U-Net "
            f"({e['params'] / 1e6:.2f} M parameters) trained on procedural scenes + synthetic rain, tested on the same "
            f"{len(e['per_image']['model/synthetic']['psnr_y'])} photograph crops with synthetic or realistic rain "
            "(mean [95 % CI]):", ""]
    out += _markdown_table(gap_experiment_table(e["summary"]))
    d, g = e["drop_synthetic_minus_realistic"]["psnr_y"], e["gain_over_input_drop"]["psnr_y"]
    out += ["", f"PSNR-Y drop from synthetic to realistic rain: **{d['mean_diff']:.2f} dB** [{d['low']:.2f}, "
            f"{d['high']:.2f}] (paired, Wilcoxon p = {d['wilcoxon_p']:.2g}); drop of the gain over the input: "
            f"{g['mean_diff']:.2f} dB [{g['low']:.2f}, {g['high']:.2f}].", ""]
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
    out = [_header(m, "Notebook 04 — fine-tuning and baselines"), "",
           f"{c['f_steps']} steps per model, batch {c['f_batch']}, {c['t_patch']} px crops from {c['f_pairs']} fixed "
           f"synthetic pairs; minority = {100 * c['f_fraction']:g} %. Held-out **validation** scenes, mean over seeds "
           "[95 % CI over images]:", "",
           "| model | params (M) | pairs | seeds | synthetic PSNR-Y (dB) | synthetic SSIM-Y | realistic PSNR-Y (dB) | "
           "realistic SSIM-Y |", "|---|---|---|---|---|---|---|---|"]
    inp = m.get("input", {})
    if inp:
        out.append(f"| rainy input | | | | {inp['synthetic']['psnr_y']:.2f} | {inp['synthetic']['ssim_y']:.3f} | "
                   f"{inp['realistic']['psnr_y']:.2f} | {inp['realistic']['ssim_y']:.3f} |")
    for n, v in m["models"].items():
        frac = 100 * (1.0 if v["fraction"] is None else v["fraction"])
        out.append(f"| {n} | {v['params'] / 1e6:.3f} | {frac:g} % | {len(v['seeds'])} | {ci_text(v['synthetic'], 'psnr_y')} | "
                   f"{ci_text(v['synthetic'], 'ssim_y')} | {ci_text(v['realistic'], 'psnr_y')} | "
                   f"{ci_text(v['realistic'], 'ssim_y')} |")
    out += ["", "`ttl` minus each baseline, PSNR-Y (dB), paired by image [95 % CI] (Wilcoxon p):", "",
            "| baseline | synthetic validation | realistic validation |", "|---|---|---|"]
    for b, d in m["comparisons"].items():
        out.append(f"| {b} | {_diff(d['synthetic']['psnr_y'])} | {_diff(d['realistic']['psnr_y'])} |")
    out.append("")
    if m.get("diagnosis"):
        out += ["Why (computed from the sweep and the ablations, `ttl.finetune.diagnose`):", ""]
        out += [f"- {line}" for line in m["diagnosis"]] + [""]
    return out


def _evaluation_section(m: dict) -> list[str]:
    out = [_header(m, "Notebook 05 — test sets and verdicts"), "",
           f"Photographs never used in training ({m['config']['e_n_test']} crops) with synthetic or realistic rain, "
           f"and {len(m.get('real_photographs', []))} real rainy photographs outside the train split (no ground "
           "truth: NIQE/PIQE, lower is better, pristine model fitted on the bundled photographs). Mean over seeds "
           "[95 % CI over images]:", ""]
    head = [n for n in ("input", "ttl", "sup-minority", "sup-full", "sup-full-large", "syn2real", "no-distillation")
            if n in m["models"]]
    nr = m.get("noref") or {}
    out += ["| model | synthetic PSNR-Y (dB) | synthetic SSIM-Y | realistic PSNR-Y (dB) | realistic SSIM-Y | "
            "real NIQE | real PIQE |", "|---|---|---|---|---|---|---|"]
    for n in head:
        v = m["models"][n]
        q = nr.get(n, {})
        cell = lambda k: f"{q[k]['mean']:.2f} [{q[k]['low']:.2f}, {q[k]['high']:.2f}]" if k in q else ""  # noqa: E731
        out.append(f"| {n} | {ci_text(v['synthetic'], 'psnr_y')} | {ci_text(v['synthetic'], 'ssim_y')} | "
                   f"{ci_text(v['realistic'], 'psnr_y')} | {ci_text(v['realistic'], 'ssim_y')} | {cell('niqe')} | "
                   f"{cell('piqe')} |")
    out += ["", "`ttl` minus each baseline on the test sets, PSNR-Y (dB), paired by image [95 % CI] (Wilcoxon p):", "",
            "| baseline | synthetic test | realistic test |", "|---|---|---|"]
    for b in head[2:]:
        d = m["comparisons"][b]
        out.append(f"| {b} | {_diff(d['synthetic']['psnr_y'])} | {_diff(d['realistic']['psnr_y'])} |")
    out += ["", "**Verdicts** (rules fixed in `ttl.evaluation.VERDICT_RULES`):", "",
            "| claim | verdict | evidence |", "|---|---|---|"]
    out += [f"| {v['claim']} | **{v['verdict']}** | {v['evidence']} |" for v in m["verdicts"]]
    out += ["", "Size and speed (tiled inference, median over runs):", ""]
    out += ["| " + " | ".join(m["size_speed"][0]) + " |", "|" + "---|" * len(m["size_speed"][0])]
    out += ["| " + " | ".join(str(x) for x in r.values()) + " |" for r in m["size_speed"]]
    out.append("")
    return out


def results_markdown(results_dir: str | Path = "results") -> str:
    """Markdown for every notebook that has a ``default`` run record."""
    results_dir = Path(results_dir)
    parts: list[str] = []
    p = results_dir / "01_statistical_gap_analysis" / "default" / "metrics.json"
    if p.is_file():
        parts += _gap_section(json.loads(p.read_text()))
    p = results_dir / "02_teacher_pretraining" / "default" / "metrics.json"
    if p.is_file():
        parts += _teacher_section(json.loads(p.read_text()))
    for nb, section in (("03_distillation", _distill_section), ("04_finetuning", _finetune_section),
                        ("05_real_world_evaluation", _evaluation_section)):
        p = results_dir / nb / "default" / "metrics.json"
        if p.is_file():
            parts += section(json.loads(p.read_text()))
    if not parts:
        parts = ["No `default` run has been recorded yet: run `make study`."]
    t = results_dir / "study_times_default.json"
    if t.is_file():
        st = json.loads(t.read_text())
        parts += [f"Wall time of `make study` (`default`, {st.get('machine', 'this machine')}): "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in st["seconds"].items())
                  + f"; total **{st['total_s'] / 60:.1f} min**.", ""]
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
