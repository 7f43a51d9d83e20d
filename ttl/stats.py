"""Statistical inference: bootstrap intervals, distribution distances, classifier two-sample tests.

Conventions: intervals are percentile bootstrap intervals at ``level`` (default 95 %), resampling the
independent unit (images). Every function takes a ``seed`` and is deterministic for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import stats as sps

__all__ = ["bootstrap_ci", "paired_bootstrap", "draw_bootstrap", "auc_ci", "wasserstein_distance_ci", "js_divergence",
           "js_divergence_ci", "auc", "c2st", "C2STResult"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)``: ``stat`` of ``values`` with a percentile bootstrap interval."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    rng = _rng(seed)
    boots = np.array([stat(v[rng.integers(0, v.size, v.size)]) for _ in range(n_boot)])
    a = (1 - level) / 2
    return float(stat(v)), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """Mean of the per-item differences ``a - b`` with a bootstrap interval, plus the Wilcoxon signed-rank
    p-value (two-sided). ``a`` and ``b`` are paired item by item (same images)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same length, got {a.shape} and {b.shape}")
    d = a - b
    est, lo, hi = bootstrap_ci(d, np.mean, n_boot, level, seed)
    try:
        p = float(sps.wilcoxon(d).pvalue) if np.any(d != 0) and d.size >= 2 else 1.0
    except ValueError:
        p = float("nan")
    return {"mean_diff": est, "low": lo, "high": hi, "wilcoxon_p": p, "n": int(d.size)}


def draw_bootstrap(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], paired_draws: bool,
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean difference ``a - b`` of two rows scored on the same images, with an interval that carries both sources
    of variance: ``a`` and ``b`` are ``(draws, images)`` arrays (one line per seed / minority draw); each replicate
    resamples the images (the same for both rows) and the draws (the same draw indices for both rows when
    ``paired_draws``, i.e. seed k of both rows shares its minority; independently otherwise) and averages. With a
    single draw on each side it reduces to the image bootstrap. Returns ``mean_diff``, ``low``, ``high``, the
    number of draws on each side and of images."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both rows need the same images, got {a.shape[1]} and {b.shape[1]}")
    if paired_draws and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired draws need as many draws on each side, got {a.shape[0]} and {b.shape[0]}")
    rng = _rng(seed)
    ka, kb, n = a.shape[0], b.shape[0], a.shape[1]
    boots = np.empty(n_boot)
    for i in range(n_boot):
        img = rng.integers(0, n, n)
        da = rng.integers(0, ka, ka)
        db = da if paired_draws else rng.integers(0, kb, kb)
        boots[i] = a[np.ix_(da, img)].mean() - b[np.ix_(db, img)].mean()
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"mean_diff": float(a.mean() - b.mean()), "low": float(lo), "high": float(hi), "draws_a": ka,
            "draws_b": kb, "n": n}


def wasserstein_distance_ci(x: Sequence[float], ref: Sequence[float], n_boot: int = 1000, level: float = 0.95,
                            seed: int = 0, scale: float | None = None) -> tuple[float, float, float]:
    """1-Wasserstein distance between samples ``x`` and ``ref``, divided by ``scale`` (default: the std of
    ``ref``, so distances of different statistics are comparable), with a bootstrap interval that resamples
    both samples."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    ref = np.asarray(ref, float)
    ref = ref[np.isfinite(ref)]
    if x.size == 0 or ref.size == 0:
        return (float("nan"),) * 3
    sc = scale if scale is not None else max(ref.std(), 1e-12)
    rng = _rng(seed)
    est = sps.wasserstein_distance(x, ref) / sc
    boots = [sps.wasserstein_distance(x[rng.integers(0, x.size, x.size)], ref[rng.integers(0, ref.size, ref.size)]) / sc
             for _ in range(n_boot)]
    a = (1 - level) / 2
    return float(est), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0,1]) between two histograms."""
    p = np.asarray(p, float) + 1e-12
    q = np.asarray(q, float) + 1e-12
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def js_divergence_ci(hists_x: np.ndarray, hists_ref: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """JS divergence between the pooled per-image histograms (rows) of two samples, resampling images."""
    hx, hr = np.asarray(hists_x, float), np.asarray(hists_ref, float)
    rng = _rng(seed)
    est = js_divergence(hx.sum(0), hr.sum(0))
    boots = [js_divergence(hx[rng.integers(0, len(hx), len(hx))].sum(0), hr[rng.integers(0, len(hr), len(hr))].sum(0))
             for _ in range(n_boot)]
    a = (1 - level) / 2
    return est, float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the Mann–Whitney rank statistic (ties count one half)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n1, n0 = labels.sum(), (~labels).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = sps.rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_ci(scores: Sequence[float], labels: Sequence[bool], n_boot: int = 1000, level: float = 0.95,
           seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC with a percentile bootstrap interval over items (resamples lacking a class are skipped)."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    rng = _rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if y[i].any() and (~y[i]).any():
            boots.append(auc(s[i], y[i]))
    a = (1 - level) / 2
    return auc(s, y), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def _oof_scores(x: np.ndarray, y: np.ndarray, folds: int, l2: float, rng: np.random.Generator) -> np.ndarray:
    idx_pos, idx_neg = rng.permutation(np.flatnonzero(y)), rng.permutation(np.flatnonzero(~y))
    fold = np.empty(len(y), int)
    fold[idx_pos] = np.arange(len(idx_pos)) % folds
    fold[idx_neg] = np.arange(len(idx_neg)) % folds
    scores = np.zeros(len(y))
    for k in range(folds):
        tr, te = fold != k, fold == k
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
        xt = torch.from_numpy((x[tr] - mu) / sd)
        w = _fit_logistic(xt, torch.from_numpy(y[tr].astype(float)), l2)
        xe = torch.from_numpy((x[te] - mu) / sd)
        scores[te] = (torch.cat([xe, torch.ones(len(xe), 1, dtype=torch.float64)], 1) @ w).numpy()
    return scores


@dataclass
class C2STResult:
    """Classifier two-sample test: cross-validated AUC (0.5 = indistinguishable, 1 = fully separable)."""

    auc: float
    low: float
    high: float
    p_value: float
    n_a: int
    n_b: int

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "low": self.low, "high": self.high, "p_value": self.p_value,
                "n_a": self.n_a, "n_b": self.n_b}


def c2st(a: np.ndarray, b: np.ndarray, folds: int = 5, l2: float = 1e-2, n_boot: int = 1000,
         permutations: int = 100, seed: int = 0) -> C2STResult:
    """How well an L2-regularised logistic regression tells sample ``a`` (rows = items, columns = features)
    from sample ``b``: stratified ``folds``-fold out-of-fold ROC-AUC, a bootstrap interval over items, and a
    permutation p-value (labels shuffled, whole cross-validation rerun). Missing values are imputed with the
    column median."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    x = np.concatenate([a, b])
    med = np.nanmedian(x, axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    x = np.where(np.isfinite(x), x, med)
    y = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
    folds = max(2, min(folds, len(a), len(b)))
    rng = _rng(seed)
    scores = _oof_scores(x, y, folds, l2, rng)
    est = auc(scores, y)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        boots.append(auc(scores[i], y[i]))
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    null = [auc(_oof_scores(x, yp, folds, l2, rng), yp) for yp in (rng.permutation(y) for _ in range(permutations))]
    p = (1 + np.sum(np.asarray(null) >= est)) / (1 + len(null))
    return C2STResult(est, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), float(p), len(a), len(b))
