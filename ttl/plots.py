"""Figures of the study. Each function draws one figure, saves it as PNG (and returns it)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .gap import ORIENTATION_BINS, STATISTICS, STREAK_THRESHOLD
from .imageops import luminance, rain_layer_estimate

DOMAIN_COLORS = {"synthetic": "#d95f02", "realistic": "#1b9e77", "real": "#7570b3", "clean": "#666666"}

__all__ = ["save", "image_grid", "plot_distributions", "plot_spectra", "plot_distances", "plot_curves", "plot_rows",
           "plot_sweep", "plot_val_curves", "gallery",
           "DOMAIN_COLORS"]


def _bars(centre, low, high) -> list:
    """Error-bar lengths below and above ``centre`` for an interval ``[low, high]``, clipped at 0: a bootstrap
    interval of a distance or a mean can exclude its point estimate, which matplotlib refuses."""
    return [np.clip(np.asarray(centre, float) - np.asarray(low, float), 0, None),
            np.clip(np.asarray(high, float) - np.asarray(centre, float), 0, None)]


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _show(ax, img: torch.Tensor, title: str | None = None, cmap=None):
    a = img.detach().float().cpu()
    a = a.permute(1, 2, 0).clamp(0, 1).numpy() if a.ndim == 3 else a.numpy()
    ax.imshow(a, cmap=cmap, vmin=0 if cmap else None, vmax=(a.max() or 1) if cmap else None)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def image_grid(rows: dict[str, Sequence[torch.Tensor]], path: str | Path, cols: int = 4, size: float = 2.4,
               cmap_rows: Sequence[str] = ()):
    """A grid: one row per named list of images (``cmap_rows`` are shown as gray maps)."""
    names = list(rows)
    fig, axes = plt.subplots(len(names), cols, figsize=(size * cols, size * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(cols):
            ax = axes[r, c]
            if c < len(rows[name]):
                _show(ax, rows[name][c], None, "magma" if name in cmap_rows else None)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.tight_layout()
    save(fig, path)
    return fig


def rain_layer_rows(images: dict[str, Sequence[torch.Tensor]], n: int) -> dict[str, list[torch.Tensor]]:
    """Images and their rain-layer estimates (gray), for :func:`image_grid`."""
    rows = {}
    for k, ims in images.items():
        rows[k] = list(ims[:n])
        rows[f"{k}: rain-layer est."] = [rain_layer_estimate(x).mean(0) for x in ims[:n]]
    return rows


def plot_distributions(frame: pd.DataFrame, full: dict, path: str | Path):
    """Orientation and rain-intensity distributions plus every per-image statistic by domain."""
    doms = list(full)
    fig = plt.figure(figsize=(16, 15))
    gs = fig.add_gridspec(5, 4)
    ax = fig.add_subplot(gs[0, :2])
    centres = 0.5 * (ORIENTATION_BINS[1:] + ORIENTATION_BINS[:-1])
    for d in doms:
        h = np.sum([s.orientation_hist for s in full[d]], 0)
        ax.plot(centres, h / max(h.sum(), 1e-12), label=d, color=DOMAIN_COLORS.get(d), lw=2)
    ax.set(xlabel="streak angle from vertical (deg)", ylabel="share of rain-layer energy",
           title="Streak orientation (pooled over images)")
    ax.legend()
    ax = fig.add_subplot(gs[0, 2:])
    bins = np.linspace(STREAK_THRESHOLD, 0.5, 31)
    for d in doms:
        v = np.concatenate([s.intensity_values for s in full[d]] or [np.zeros(0)])
        ax.hist(v, bins, density=True, histtype="step", lw=2, label=d, color=DOMAIN_COLORS.get(d))
    ax.set(xlabel="rain-layer value on streak pixels", ylabel="density", yscale="log",
           title="Rain-layer intensity (pooled)")
    ax.legend()
    for i, stat in enumerate(STATISTICS):
        ax = fig.add_subplot(gs[1 + i // 4, i % 4])
        sns.boxplot(data=frame, x="domain", y=stat, hue="domain", palette=DOMAIN_COLORS, ax=ax, fliersize=2,
                    legend=False, order=doms)
        ax.set_xlabel("")
        ax.set_title(stat, fontsize=10)
        ax.set_ylabel("")
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_spectra(full: dict, path: str | Path):
    """Radially averaged power spectra (median over images, with the inter-quartile band)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for d, stats in full.items():
        f = stats[0].spectrum[0]
        p = np.stack([s.spectrum[1] for s in stats])
        ok = np.isfinite(p).any(0)  # the lowest bins are empty for small images
        f, p = f[ok], p[:, ok]
        med, q1, q3 = np.nanmedian(p, 0), np.nanquantile(p, 0.25, 0), np.nanquantile(p, 0.75, 0)
        ax.loglog(f, med, label=d, color=DOMAIN_COLORS.get(d), lw=2)
        ax.fill_between(f, q1, q3, color=DOMAIN_COLORS.get(d), alpha=0.15)
    ax.set(xlabel="spatial frequency (cycles/px)", ylabel="power", title="Radially averaged power spectrum")
    ax.legend()
    save(fig, path)
    return fig


def plot_distances(dist: pd.DataFrame, path: str | Path, title: str = "Distance to real photographs"):
    """Forest plot: distance of each domain to the reference, per statistic, with 95 % intervals."""
    stats = list(dict.fromkeys(dist["statistic"]))
    doms = list(dict.fromkeys(dist["domain"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * len(stats) + 1.5),
                             gridspec_kw={"width_ratios": [3, 1]})
    for j, (measure, ax) in enumerate(zip(("W1/sd", "JS"), axes)):
        sub = dist[dist["measure"] == measure]
        ss = [s for s in stats if s in set(sub["statistic"])]
        for k, d in enumerate(doms):
            r = sub[sub["domain"] == d].set_index("statistic").loc[ss]
            y = np.arange(len(ss)) + (k - (len(doms) - 1) / 2) * 0.25
            ax.errorbar(r["distance"], y, xerr=_bars(r["distance"], r["low"], r["high"]), fmt="o",
                        color=DOMAIN_COLORS.get(d), label=d, capsize=2)
        ax.set_yticks(np.arange(len(ss)), ss)
        ax.invert_yaxis()
        ax.set_xlabel("standardised 1-Wasserstein (units of the reference's sd)" if measure == "W1/sd"
                      else "Jensen-Shannon divergence (bits)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_curves(log: dict, path: str | Path, title: str = "training", val_key: str = "val_psnr_y",
                val_label: str = "PSNR-Y (dB)"):
    """Training loss (smoothed) and a validation metric against steps."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    loss = np.asarray(log["loss"])
    k = max(1, len(loss) // 50)
    sm = np.convolve(loss, np.ones(k) / k, mode="valid")
    axes[0].plot(np.arange(len(sm)) + k, sm)
    axes[0].set(xlabel="step", ylabel="training loss", title=f"{title}: training loss", yscale="log")
    if log["val"]:
        v = pd.DataFrame(log["val"])
        axes[1].plot(v["step"], v[val_key], marker="o")
        axes[1].set(xlabel="step", ylabel=val_label, title="validation")
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_rows(scores: dict[str, dict], path: str | Path, metric: str = "psnr_y", label: str = "PSNR-Y (dB)",
              reference: dict[str, float] | None = None):
    """Forest plot of every row of notebook 04 on both validation sets: mean over seeds with the 95 % interval
    over images (thick) and over seeds (thin, when there are several seeds); ``reference``: the rainy input."""
    names = list(scores)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.32 * len(names) + 1.4), sharey=True)
    for ax, dom in zip(axes, ("synthetic", "realistic")):
        y = np.arange(len(names))
        for k, n in enumerate(names):
            s = scores[n][dom]
            lo, hi = s[f"{metric}_ci_images"]
            ax.plot([lo, hi], [k, k], color=DOMAIN_COLORS[dom], lw=4, alpha=0.5, solid_capstyle="butt")
            slo, shi = s[f"{metric}_ci_seeds"]
            if np.isfinite(slo):
                ax.plot([slo, shi], [k, k], color="k", lw=1)
            ax.plot(s[metric], k, "o", color=DOMAIN_COLORS[dom] if n != "ttl" else "k")
        if reference:
            ax.axvline(reference[dom], ls="--", color="grey", lw=1, label="rainy input")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_yticks(y, names)
        ax.set(xlabel=label, title=f"{dom} validation")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_sweep(points: pd.DataFrame, path: str | Path, label: str = "PSNR-Y (dB)"):
    """The fraction sweep: ``points`` has columns ``method``, ``fraction``, ``domain``, ``mean``, ``low``,
    ``high``; one panel per domain, x on a log scale."""
    doms = list(dict.fromkeys(points["domain"]))
    fig, axes = plt.subplots(1, len(doms), figsize=(5 * len(doms), 3.8))
    for ax, dom in zip(np.atleast_1d(axes), doms):
        sub = points[points["domain"] == dom]
        for method, g in sub.groupby("method", sort=False):
            g = g.sort_values("fraction")
            ax.errorbar(100 * g["fraction"], g["mean"], yerr=_bars(g["mean"], g["low"], g["high"]),
                        marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set(xlabel="paired synthetic data used (%)", ylabel=label, title=f"{dom} validation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_calibration(report: pd.DataFrame, path: str | Path):
    """The synthetic presets' calibration (:func:`ttl.calibrate.synthetic_calibration_report`): per statistic, the
    distance of the hand-set and the calibrated recipe to the public rain layers, with 95 % intervals."""
    presets = list(dict.fromkeys(report["preset"]))
    fig, axes = plt.subplots(1, len(presets), figsize=(5.5 * len(presets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], presets):
        d = report[(report["preset"] == name) & report["low"].notna()]
        stats = list(dict.fromkeys(d["statistic"]))
        for k, (recipe, color) in enumerate((("hand-set", "C3"), ("calibrated", "C0"))):
            r = d[d["recipe"] == recipe].set_index("statistic").loc[stats]
            y = np.arange(len(stats)) + (k - 0.5) * 0.3
            ax.errorbar(r["distance"], y, xerr=_bars(r["distance"], r["low"], r["high"]), fmt="o",
                        color=color, label=recipe, capsize=2)
        ax.set_yticks(range(len(stats)), stats)
        ax.set(xlabel="standardised W1 to the public rain layers", title=f"{name} vs {d['target'].iloc[0]}")
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_public(public_scores: dict[str, dict], path: str | Path, models: Sequence[str]):
    """PSNR-Y on each public set for the rainy input and each model: mean with its 95 % interval over images."""
    sets = list(public_scores)
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 0.35 * len(models) + 1.6), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], sets):
        per = public_scores[name]
        shown = [m for m in models if m in per]
        for k, m in enumerate(shown):
            v = per[m]
            lo, hi = v["psnr_y_ci_images"]
            color = "grey" if m == "input" else ("k" if m == "ttl" else "C0")
            ax.plot([lo, hi], [k, k], color=color, lw=4, alpha=0.4, solid_capstyle="butt")
            ax.plot(v["psnr_y"], k, "o", color=color)
        ax.set_yticks(range(len(shown)), shown)
        ax.set(xlabel="PSNR-Y (dB)", title=f"{name} (n={per['input']['n']})")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_val_curves(logs: dict[str, dict], path: str | Path, domains: Sequence[str] = ("synthetic", "realistic")):
    """Validation PSNR-Y against steps for several runs (their logs hold ``val_<domain>_psnr_y``)."""
    fig, axes = plt.subplots(1, len(domains), figsize=(5 * len(domains), 3.5))
    for ax, dom in zip(np.atleast_1d(axes), domains):
        for name, log in logs.items():
            v = pd.DataFrame(log["val"])
            if f"val_{dom}_psnr_y" in v:
                ax.plot(v["step"], v[f"val_{dom}_psnr_y"], marker="o", ms=3, label=name)
        ax.set(xlabel="step", ylabel="PSNR-Y (dB)", title=f"{dom} validation (selection crops)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_search(search: dict[str, dict], path: str | Path, key: str = "val_select_psnr_y"):
    """The learning-rate search: one panel per searched row, every trial's validation curve (``key`` against
    steps; one colour per learning rate, one line style per draw), draw 0's best checkpoint at the chosen rate marked."""
    rows = [n for n, v in search.items() if v.get("trials")]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.4 * len(rows), 3.2), sharey=True, squeeze=False)
    styles = ("-", "--", ":", "-.")
    for ax, name in zip(axes[0], rows):
        v = search[name]
        colours = {lr: f"C{i}" for i, lr in enumerate(v["grid"])}
        for t in v["trials"]:
            c, chosen, draw = pd.DataFrame(t["curve"]), t["lr"] == v["lr"], t.get("draw", 0)
            mean = v.get("mean_best", {}).get(f"{t['lr']:g}", t["best"])
            ax.plot(c["step"], c[key], marker="o", ms=2, lw=1.2 if chosen else 0.8, color=colours[t["lr"]],
                    ls=styles[draw % len(styles)],
                    label=f"lr {t['lr']:g}, mean {mean:.2f}" + (" (chosen)" if chosen else "") if draw == 0 else None)
            if chosen and draw == 0:
                ax.plot([t["best_step"]], [t["best"]], "k*", ms=10)
        ax.set(title=name, xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation PSNR-Y, mean of\nsynthetic and realistic (dB)")
    fig.tight_layout()
    save(fig, path)
    return fig


def plot_dose(table: pd.DataFrame, path: str | Path, diff: str = "ttl minus sup-minority PSNR-Y (dB)"):
    """The dose-response: ``ttl - sup-minority`` (95 % interval over draws and images) against the pretraining
    budget and against the teachers' quality (T1 AUC, T2 gain), one line per validation set."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, x in zip(axes, ("budget (x preset)", "T1 AUC", "T2 gain (dB)")):
        for dom, g in table.groupby("set"):
            g = g.sort_values(x)
            ax.errorbar(g[x], g[diff], yerr=_bars(g[diff], g["low"], g["high"]), marker="o", capsize=3,
                        label=dom)
        ax.axhline(0, color="k", lw=0.8, ls="--")
        ax.set(xlabel=x + (" (log scale)" if x.startswith("budget") else ""))
        if x.startswith("budget"):
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ttl minus sup-minority,\nvalidation PSNR-Y (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def rainiest_window(img: torch.Tensor, size: int) -> tuple[int, int]:
    """``(top, left)`` of the ``size`` x ``size`` window of ``img`` (3,H,W) with the most rain-layer energy (white
    top-hat luminance): where a zoomed crop shows the rain, and what a model left of it, best."""
    size = min(size, *img.shape[-2:])
    e = luminance(rain_layer_estimate(img[None]))
    box = torch.nn.functional.avg_pool2d(e, size, stride=max(1, size // 8))[0, 0]
    k = int(box.argmax())
    return (k // box.shape[1]) * max(1, size // 8), (k % box.shape[1]) * max(1, size // 8)


def gallery(columns: dict[str, Sequence[torch.Tensor]], path: str | Path, zoom: float = 0.3, size: float = 2.6,
            crop_px: int | None = None, captions: dict[str, Sequence[str]] | None = None):
    """Side-by-side outputs with zoomed crops: one column per named list (input, baselines, ours...), two rows
    per image (the whole image with the crop box drawn, then the crop enlarged). Images may differ in size. The
    crop is the centre ``zoom`` share of the short side, or, with ``crop_px``, the ``crop_px``-pixel window of the
    first column with the most rain (:func:`rainiest_window`), shown at full resolution. ``captions[name][i]`` is
    written under image ``i`` of column ``name`` (e.g. its measures)."""
    from matplotlib.patches import Rectangle

    names = list(columns)
    n = len(columns[names[0]])
    fig, axes = plt.subplots(2 * n, len(names), figsize=(size * len(names), 2 * size * n), squeeze=False)
    for i in range(n):
        h, w = columns[names[0]][i].shape[-2:]
        if crop_px:
            c = min(crop_px, h, w)
            top, left = rainiest_window(columns[names[0]][i], c)
        else:
            c = max(8, int(zoom * min(h, w)))
            top, left = (h - c) // 2, (w - c) // 2
        for j, name in enumerate(names):
            img = columns[name][i]
            _show(axes[2 * i, j], img, name if i == 0 else None)
            axes[2 * i, j].add_patch(Rectangle((left, top), c, c, fill=False, ec="yellow", lw=1.2))
            _show(axes[2 * i + 1, j], img[..., top:top + c, left:left + c])
            if captions and name in captions:
                axes[2 * i + 1, j].set_xlabel(captions[name][i], fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig
