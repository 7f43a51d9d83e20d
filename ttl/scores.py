"""Score summaries of the study's rows (notebooks 04 and 05, and :mod:`ttl.report`'s README tables).

:func:`model_scores` summarises one row's runs (per seed, a minority draw) per set and metric: the mean over seeds,
a 95 % interval over images and one over seeds. :func:`compare` takes one row minus another, with an interval that
resamples draws and images together (minority rows of one fraction paired on their common draws,
:func:`shares_draws`). The rest turns them into tables (:func:`results_table`, :func:`comparison_table`,
:func:`search_table`, :func:`sweep_points`), text (:func:`ci_text`) and the diagnosis of notebook 04
(:func:`diagnose` over :data:`DIAGNOSIS_PAIRS`). Nothing here trains or chooses anything.
"""
from __future__ import annotations

from typing import Any

from .finetune import Recipe, recipe_steps

__all__ = ["model_scores", "shares_draws", "compare", "comparison_table", "ci_text", "results_table", "search_table",
           "sweep_points", "DIAGNOSIS_PAIRS", "diagnose"]


def _t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    import numpy as np
    from scipy import stats as sps

    v = np.asarray(values, float)
    if v.size < 2:
        return float("nan"), float("nan")
    h = sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean() - h), float(v.mean() + h)


def model_scores(runs: list[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """One row's scores over its seeds (minority draws), per domain and metric: the mean over seeds, a 95 % interval
    over images (bootstrap of the seed-averaged per-image values) and over seeds (t-interval; needs >= 2 seeds),
    the per-seed means, the seed-averaged per-image values and (PSNR-Y, SSIM-Y) the per-seed per-image values."""
    import numpy as np

    from .stats import bootstrap_ci

    out: dict[str, dict[str, Any]] = {}
    for dom in runs[0]["val"]:
        out[dom] = {}
        for m in [k for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb") if k in runs[0]["val"][dom]["per_image"]]:
            per_seed = np.array([r["val"][dom]["per_image"][m] for r in runs])  # (seeds, images)
            seed_means = per_seed.mean(1).tolist()
            avg = per_seed.mean(0)
            _, lo, hi = bootstrap_ci(avg, n_boot=n_boot, seed=seed)
            out[dom][m] = float(np.mean(seed_means))
            out[dom][f"{m}_ci_images"] = [lo, hi]
            out[dom][f"{m}_ci_seeds"] = list(_t_interval(seed_means))
            out[dom][f"{m}_per_seed"] = seed_means
            if m in ("psnr_y", "ssim_y"):
                out[dom][f"{m}_per_image"] = avg.tolist()
                out[dom][f"{m}_per_draw_image"] = per_seed.tolist()
    return out


def shares_draws(fractions: dict[str, float | None] | None, a: str, b: str) -> bool:
    """Whether seed k of rows ``a`` and ``b`` trained on the same minority draw: both are minority rows of one
    fraction (``fractions``: each row's scene fraction, ``None`` or 1 for all scenes)."""
    if not fractions or a not in fractions or b not in fractions:
        return False
    fa, fb = fractions[a], fractions[b]
    return fa is not None and fa == fb and fa < 1


def compare(scores: dict[str, dict], runs: dict[str, list[dict]], a: str, b: str, n_boot: int = 1000,
            seed: int = 0, fractions: dict[str, float | None] | None = None) -> dict[str, dict[str, Any]]:
    """``a`` minus ``b`` per domain and metric (PSNR-Y, SSIM-Y), on every set both rows were scored on. The interval
    (``low``, ``high``) resamples draws and images together (:func:`ttl.stats.draw_bootstrap`). When the two rows
    share their minority draws (:func:`shares_draws` on ``fractions``), the difference and its interval use the
    seeds both ran, paired (``ttl``'s five draws against a control's two: draws 0 and 1 of each); otherwise every
    seed of each row, paired only when both ran the same seeds. ``low_images``/``high_images`` resample images only
    (seed-averaged values over each row's seeds) and go with the Wilcoxon p; ``ci_seeds`` is the t-interval over the
    differences of the seeds both rows ran."""
    import numpy as np

    from .stats import draw_bootstrap, paired_bootstrap

    seeds_a = [r.get("seed", i) for i, r in enumerate(runs[a])]  # test results carry no seed: their order is it
    seeds_b = [r.get("seed", i) for i, r in enumerate(runs[b])]
    common = [s for s in seeds_a if s in seeds_b]
    shared = shares_draws(fractions, a, b) and bool(common)
    ia = [seeds_a.index(s) for s in common] if shared else list(range(len(seeds_a)))
    ib = [seeds_b.index(s) for s in common] if shared else list(range(len(seeds_b)))
    out: dict[str, dict[str, Any]] = {}
    for dom in [d for d in scores[a] if d in scores[b]]:  # the sets both rows were scored on
        out[dom] = {}
        for m in ("psnr_y", "ssim_y"):
            sa, sb = scores[a][dom], scores[b][dom]
            img = paired_bootstrap(sa[f"{m}_per_image"], sb[f"{m}_per_image"], n_boot, seed=seed)
            da = np.asarray(sa[f"{m}_per_draw_image"], float)[ia]
            db = np.asarray(sb[f"{m}_per_draw_image"], float)[ib]
            r = draw_bootstrap(da, db, shared or seeds_a == seeds_b, n_boot, seed=seed)
            r["draws_paired"] = bool(shared or seeds_a == seeds_b)
            r.update(wilcoxon_p=img["wilcoxon_p"], low_images=img["low"], high_images=img["high"],
                     interval="draws and images" if max(r["draws_a"], r["draws_b"]) > 1 else "images")
            d_seed = np.array([sa[f"{m}_per_seed"][seeds_a.index(s)] - sb[f"{m}_per_seed"][seeds_b.index(s)]
                               for s in common])
            r["per_seed_diff"] = d_seed.tolist()
            r["ci_seeds"] = list(_t_interval(d_seed.tolist()))
            out[dom][m] = r
    return out


def comparison_table(comparisons: dict[str, dict]):
    """``{baseline: compare(...)}`` as a table: ``ttl minus`` baseline, set, metric, the difference with its 95 %
    interval over draws and images, the draws on each side, the interval over images alone and its Wilcoxon p."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    return pd.DataFrame([{"ttl minus": b, "set": dom, "metric": METRIC_LABELS[m],
                          "diff [95 % CI, draws and images]":
                              f"{r['mean_diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]",
                          "draws": f"{r['draws_a']} vs {r['draws_b']}",
                          "[95 % CI, images]": f"[{r['low_images']:+.3f}, {r['high_images']:+.3f}]",
                          "Wilcoxon p": f"{r['wilcoxon_p']:.2g}"}
                         for b, c in comparisons.items() for dom, d in c.items() for m, r in d.items()])


def ci_text(v: dict[str, Any], metric: str) -> str:
    """``mean [low, high]`` of ``metric`` in one entry of :func:`model_scores` (3 decimals for SSIM, 2 for PSNR)."""
    f = ".3f" if metric.startswith("ssim") else ".2f"
    lo, hi = v[f"{metric}_ci_images"]
    return f"{v[metric]:{f}} [{lo:{f}}, {hi:{f}}]"


def results_table(rows: dict[str, Recipe], scores: dict[str, dict], params: dict[str, int], cfg: dict,
                  search: dict[str, dict] | None = None):
    """One line per row: role, size, share of the training scenes, steps, learning rate (and where it came from),
    seeds, and ``mean [95 % CI over images]`` of PSNR-Y / SSIM-Y on the validation sets: synthetic rain, realistic
    rain against its streak-free target (deraining) and, PSNR-Y only, against the clean scene (the metric convention
    in every header)."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    lines = []
    for name, r in rows.items():
        s = scores[name]
        line = {"model": name, "role": r.role, "params (M)": round(params[name] / 1e6, 3),
                "scenes (%)": 100 * (1.0 if r.fraction is None else r.fraction), "steps": recipe_steps(r, cfg)}
        if search and name in search:
            line["lr"] = f"{search[name]['lr']:g} ({search[name]['lr_source']})"
        line["seeds"] = len(s["synthetic"]["psnr_y_per_seed"])
        for dom, metrics in (("synthetic", ("psnr_y", "ssim_y")), ("realistic", ("psnr_y", "ssim_y")),
                             ("realistic_clean", ("psnr_y",))):
            for m in metrics:
                if dom in s:
                    line[f"{dom} {METRIC_LABELS[m]}"] = ci_text(s[dom], m)
        lines.append(line)
    return pd.DataFrame(lines)


def search_table(search: dict[str, dict]):
    """The learning-rate search as a table: per searched row and lr, each draw's best validation score
    (:data:`ttl.finetune.SELECT_KEY`) with the step it was reached at, ``best (step)``, and their mean, which decides;
    ``chosen`` marks the row's choice."""
    import pandas as pd

    lines = []
    for n, v in search.items():
        for lr in v.get("grid", []) if v.get("trials") else []:
            trials = [t for t in v["trials"] if t["lr"] == lr]
            line = {"row": n, "lr": f"{lr:g}"}
            for t in trials:
                line[f"draw {t.get('draw', 0)}: best (step)"] = f"{t['best']:.3f} ({t['best_step']})"
            line["mean best validation PSNR-Y (synthetic + realistic) / 2"] = round(
                sum(t["best"] for t in trials) / len(trials), 3)
            line["chosen"] = "yes" if lr == v["lr"] else ""
            lines.append(line)
    return pd.DataFrame(lines).fillna("")


def sweep_points(rows: dict[str, Recipe], scores: dict[str, dict], metric: str = "psnr_y"):
    """The fraction sweep as a long table (``method``, ``fraction``, ``domain``, ``mean``, ``low``, ``high``):
    ``ttl`` and ``ttl@...`` against ``sup-minority``, ``sup-minority@...`` and ``sup-full`` (the 100 % point of
    training from scratch). Intervals are over images."""
    import pandas as pd

    pts = []
    for name, r in rows.items():
        base = name.split("@")[0]
        if base not in ("ttl", "sup-minority", "sup-full") or r.freeze_encoder:
            continue
        method = "ttl" if base == "ttl" else "from scratch (sup-minority / sup-full)"
        for dom, s in scores[name].items():
            lo, hi = s[f"{metric}_ci_images"]
            pts.append({"method": method, "fraction": 1.0 if r.fraction is None else r.fraction, "domain": dom,
                        "mean": s[metric], "low": lo, "high": hi, "model": name})
    return pd.DataFrame(pts)


DIAGNOSIS_PAIRS = (  # (row, reference, what the difference measures), read by diagnose() and notebook 04
    # searched rows against searched rows; an ablation (trained at ttl's chosen lr) against ttl itself
    ("ttl", "sup-minority", "both teachers (ttl)"),
    ("ttl", "ssl-minority", "task transfer over generic pretraining (ttl vs masked denoising, same images, "
                            "same budget)"),
    ("ssl-minority", "sup-minority", "generic pretraining (masked denoising)"),
    ("sup-minority-large", "sup-minority", "capacity on the minority (teacher-sized from scratch)"),
    ("t1-only", "ttl", "dropping T2 (the student distilled from T1 alone)"),
    ("t2-only", "ttl", "dropping T1 (the student distilled from T2 alone)"),
    ("frozen-encoder", "ttl", "freezing the distilled encoder"),
    ("no-distillation", "sup-minority-large", "T2 itself, not distilled, against its architecture from scratch "
                                              "(T2 at ttl's lr, the reference at its own searched lr)"),
)


def diagnose(scores: dict[str, dict], runs: dict[str, list[dict]], n_boot: int = 1000, seed: int = 0,
             fractions: dict[str, float | None] | None = None) -> list[str]:
    """Why ``ttl`` does or does not beat ``sup-minority``, in sentences computed from the rows that ran: is the
    minority a constraint at this budget, does capacity help, and each pair of :data:`DIAGNOSIS_PAIRS` (which teacher
    helps, does distillation matter, is it task transfer or pretraining in general). PSNR-Y, 95 % interval over draws
    and images (:func:`compare`; minority rows paired on their common draws via ``fractions``)."""
    def diff(a: str, b: str, dom: str) -> dict | None:
        if a not in scores or b not in scores:
            return None
        return compare(scores, runs, a, b, n_boot, seed, fractions)[dom]["psnr_y"]

    def fmt(r: dict) -> str:
        return f"{r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}]"

    def sign(r: dict) -> str:
        return "better" if r["low"] > 0 else ("worse" if r["high"] < 0 else "not distinguishable")

    out = []
    if "sup-minority" in scores and "sup-full" in scores:
        r = diff("sup-minority", "sup-full", "synthetic")
        binds = r["high"] < -1.0
        out.append(f"Fraction: from scratch, the minority minus all pairs on synthetic validation {fmt(r)}: the "
                   f"minority {'is' if binds else 'is not'} a real constraint at this budget (1 dB), so pretraining "
                   f"has {'room' if binds else 'little'} to make up for.")
    if "sup-full-large" in scores and "sup-full" in scores:
        r = diff("sup-full-large", "sup-full", "synthetic")
        out.append(f"Capacity: the teacher-sized network minus the student-sized one, all pairs, synthetic validation "
                   f"{fmt(r)} ({sign(r)}).")
    doms = [d for d in ("synthetic", "realistic") if d in next(iter(scores.values()))]
    for row, ref, what in DIAGNOSIS_PAIRS:
        rs = [diff(row, ref, d) for d in doms]
        if rs and rs[0] is not None:
            parts = ", ".join(f"{d} {fmt(r)} ({sign(r)})" for d, r in zip(doms, rs))
            out.append(f"{what[0].upper() + what[1:]}: {row} minus {ref}, {parts}.")
    return out
