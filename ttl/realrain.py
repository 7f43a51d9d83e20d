"""Judging deraining on real photographs, where there is no ground truth: the rain left *and* the scene kept.

A single "how rainy does it look" score rewards destroying the scene: blurring a rainy photograph horizontally wipes
out its near-vertical streaks and every vertical edge with them, and such a score calls it cleaner than a rain-free
photograph. The judge here (:class:`RainJudge`) reads two measures together, both fitted or calibrated on *train*
splits only (no photograph that scores a model shapes them):

* **rain left** (:meth:`RainJudge.rain_left`): P(rain) from :class:`RainNet`, a small CNN that shares nothing with the
  study's networks, fitted once on 96 px crops of the train splits: real rainy photographs and realistic rain rendered
  on rain-free train photographs (positives) against the rain-free train photographs (negatives); it sees the
  high-passed luminance (brightness is no cue), with mirror, brightness and blur augmentation (any direction, up to
  2.5 px) on both classes (softness is no cue either), and scores an image by its mean over a grid of crops at the
  working size (short side 256 px, centre square). Its log-odds are floored at the median rain-free train photograph:
  an image can look as rain-free as a typical rain-free photograph, never "less rainy than no rain".
* **scene kept** (:func:`scene_kept`): what a model did to the input's streak candidates (bright thin structure: the
  white top-hat luminance above its 80th percentile and 8 grey levels, dilated by 1 px) costs nothing; elsewhere the
  output must keep the input: the smallest of SSIM-Y against the input (streak candidates taking the output's values)
  and the output's horizontal and vertical gradient energy relative to the input's (capped at 1), at native
  resolution. A derainer changes the streaks and leaves the rest; blur in any direction, darkening, contrast loss,
  smoothing and a flat image change the rest. The floor (:attr:`RainJudge.scene_floor`) is the 10th percentile of
  what the *noise-kept* streak-free targets of realistic rain on the train photographs reach against their rainy
  inputs: the streak-free rendering through the rainy render's own sensor noise (a derainer is not asked to denoise;
  the noise-free target would also be charged for the noise it removes, and rain the streak mask misses costs the
  targets too). Nine in ten perfect derainings keep the scene by this measure.

A photograph counts as **derained** when its rain left is below the input's and its scene kept is at least the floor;
the ``credited_rain_left`` of :meth:`RainJudge.measure` gives an output the input's rain left wherever it did not keep the scene (a
destroyed scene earns no credit for the rain it took with it). :func:`validate_judge` checks all this on pairs whose
answer is known and on nuisances that must not pass; :func:`ranking_check` checks, on realistic renders where the
streak-free target is known, whether the judge ranks models as PSNR-Y against the target does (Kendall's tau with a
bootstrap interval over images).

A run's judge may decide something on real photographs only when :func:`judge_validity` holds: no nuisance credited
on more than :data:`NUISANCE_MAX_SHARE` of the real photographs, and the noise-kept target credited on at least
:data:`TARGET_MIN_SHARE` of realistic renders of the *test* photographs (a floor that no perfect deraining reaches
would reject every model). Notebook 05 reports both checks and the ranking check on every run. Known limit: the
targets of public synthetic sets with dense faint rain (Rain13K) keep rain outside the streak mask and are credited
on few images (``docs/measurements/judge_noisy_floor``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .imageops import gaussian_blur, luminance, rain_layer_estimate

__all__ = ["WORK", "CROP", "RainNet", "fit_rain_net", "rain_logits", "scene_kept", "RainJudge", "fit_judge",
           "NUISANCES", "TARGET_SET", "validate_judge", "judge_table", "judge_validity", "kendall_tau", "ranking_check"]

WORK = 256  # working size: short side resized to this, centre square
CROP = 96  # the network's crop; images are scored on a grid of crops with stride CROP // 2
HIGHPASS = 7  # box size of the local mean removed from the luminance
STREAK_QUANTILE, STREAK_MIN = 0.8, 8 / 255  # streak candidates of an input (top-hat luminance)
SCENE_FLOOR_QUANTILE = 0.1  # of the noise-kept streak-free targets: nine in ten perfect derainings keep the scene
NUISANCE_MAX_SHARE = 0.1  # a valid judge credits no nuisance on more than this share of the real photographs
TARGET_MIN_SHARE = 0.5  # ... and credits the noise-kept streak-free target on at least this share of held-out renders
TARGET_SET = "realistic (test photographs, noise-kept target)"  # the set of validate_judge that checks it
BLUR_MAX = 2.5  # px: the largest sigma of the training augmentation's blur, per direction
SCENE_MAX = 768  # px: the scene kept is measured at native resolution up to this short side


def _working(img: torch.Tensor) -> torch.Tensor:
    from .rainleft import _working as work

    return work(img.detach().float().cpu().clamp(0, 1), WORK, crop=True)


def _highpass(x: torch.Tensor) -> torch.Tensor:
    y = luminance(x)
    p = HIGHPASS // 2
    return 10 * (y - F.avg_pool2d(F.pad(y, (p, p, p, p), mode="reflect"), HIGHPASS, stride=1))


class RainNet(nn.Module):
    """Log-odds that a crop ``(B,3,h,w)`` in [0,1] shows rain: five small convolutions on the high-passed luminance,
    two stride-2, global average pooling, a linear head (about 24 k parameters)."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(nn.Conv2d(1, w, 5, padding=2), nn.GELU(), nn.Conv2d(w, w, 3, 2, 1), nn.GELU(),
                                  nn.Conv2d(w, 2 * w, 3, padding=1), nn.GELU(), nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
                                  nn.GELU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU())
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(_highpass(x)).mean((-2, -1))).squeeze(-1)


def _crops(images: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    i = torch.randint(len(images), (n,), generator=gen)
    ys = torch.randint(0, WORK - CROP + 1, (n,), generator=gen)
    xs = torch.randint(0, WORK - CROP + 1, (n,), generator=gen)
    out = torch.stack([images[a, :, y:y + CROP, x:x + CROP] for a, y, x in zip(i.tolist(), ys.tolist(), xs.tolist())])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)  # mirror left-right only: rain falls downwards
    if float(torch.rand(1, generator=gen)) < 0.5:  # blur of any direction, for both classes: softness is no cue
        sx, sy = (float(v) * BLUR_MAX for v in torch.rand(2, generator=gen))
        out = gaussian_blur(out, sx if sx >= 0.2 else 0.0, sy if sy >= 0.2 else 0.0)  # below 0.2 px: none
    return (out * (0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen))).clamp(0, 1)


def fit_rain_net(rainy: Sequence[torch.Tensor], clean: Sequence[torch.Tensor], steps: int = 1500, batch: int = 32,
                 lr: float = 2e-3, seed: int = 0, progress: bool = True) -> RainNet:
    """Fit :class:`RainNet` on real rainy (label 1) and rain-free (label 0) photographs, balanced batches of random
    augmented crops of each image at the working size; AdamW, constant ``lr``. Deterministic for a ``seed``."""
    from .progress import progress_bar

    if len(rainy) == 0 or len(clean) == 0:
        raise ValueError(f"fit_rain_net needs rainy and rain-free photographs, got {len(rainy)} and {len(clean)}")
    r = torch.stack([_working(x) for x in rainy])
    c = torch.stack([_working(x) for x in clean])
    torch.manual_seed(seed)
    net = RainNet()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    half = batch // 2
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    for _ in progress_bar(range(steps), desc="rain-left network", disable=not progress):
        x = torch.cat([_crops(r, half, gen), _crops(c, half, gen)])
        loss = F.binary_cross_entropy_with_logits(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def rain_logits(net: RainNet, images: Sequence[torch.Tensor]) -> np.ndarray:
    """Mean log-odds of rain over the 4x4 grid of :data:`CROP` px crops (stride CROP / 2) of each image at the working
    size."""
    starts = range(0, WORK - CROP + 1, CROP // 2)
    out = []
    for img in images:
        x = _working(img)
        grid = torch.stack([x[:, a:a + CROP, b:b + CROP] for a in starts for b in starts])
        out.append(float(net(grid).mean()))
    return np.asarray(out, dtype=np.float64)


def _work_size(rainy: torch.Tensor) -> int | None:
    return SCENE_MAX if min(rainy.shape[-2:]) > SCENE_MAX else None


# what scene_kept needs of an input, kept while the input tensor lives (every model and nuisance is measured against
# the same inputs): id -> (weak reference, version counter, values)
_INPUTS: dict[int, tuple[weakref.ref, int, dict[str, Any]]] = {}


def _input_side(rainy: torch.Tensor) -> dict[str, Any]:
    """The input's working-size image, streak-candidate mask, luminance gradients outside the mask and their
    energies, computed once per input tensor (recomputed if the tensor changed in place)."""
    from .rainleft import _working as work

    key = id(rainy)
    hit = _INPUTS.get(key)
    if hit is not None and hit[0]() is rainy and hit[1] == rainy._version:
        return hit[2]
    a = work(rainy.detach().float().cpu().clamp(0, 1), _work_size(rainy), crop=False)
    top = luminance(rain_layer_estimate(a[None], 7))[0, 0]
    mask = top > max(STREAK_MIN, float(torch.quantile(top.flatten(), STREAK_QUANTILE)))
    mask = F.max_pool2d(mask[None, None].float(), 3, stride=1, padding=1)[0] > 0
    ya, keep = luminance(a)[0].double(), ~mask[0]
    grads = []
    for d in (-1, -2):  # horizontal (along x), then vertical differences
        k = keep[:, 1:] & keep[:, :-1] if d == -1 else keep[1:] & keep[:-1]
        grads.append((d, k, float(ya.diff(dim=d)[k].pow(2).sum())))
    out = {"a": a, "mask": mask, "grads": grads}
    _INPUTS[key] = (weakref.ref(rainy, lambda _, k=key: _INPUTS.pop(k, None)), rainy._version, out)
    return out


def scene_kept(rainy: torch.Tensor, output: torch.Tensor) -> float:
    """How much of the scene of ``rainy`` survives in ``output`` (both ``(3,H,W)``, at native resolution up to a short
    side of :data:`SCENE_MAX`), what a model did to the input's streak candidates left out (see the module doc): the
    smallest of (1) SSIM-Y against the input whose streak candidates take the output's values and (2) the horizontal
    and (3) the vertical gradient energy of the output's luminance relative to the input's, outside the streak
    candidates (each capped at 1). 1: nothing but streak candidates changed; blur loses (2) or (3), darkening and
    contrast loss lose (1)-(3), a flat image loses everything. What depends on the input alone is computed once per
    input tensor."""
    from .metrics import ssim_map
    from .rainleft import _working as work

    if rainy.shape != output.shape:
        raise ValueError(f"scene_kept compares an output with its own input: shapes {tuple(rainy.shape)} and "
                         f"{tuple(output.shape)} differ")
    inp = _input_side(rainy)
    a, mask = inp["a"], inp["mask"]
    b = work(output.detach().float().cpu().clamp(0, 1), _work_size(rainy), crop=False)
    reference = torch.where(mask, b, a)  # the input, with the output's values wherever a streak may have been
    ssim = float(ssim_map(b[None], reference[None]).mean())
    yb = luminance(b)[0].double()
    ratios = [min(1.0, float(yb.diff(dim=d)[k].pow(2).sum()) / den) if den > 0 else 1.0
              for d, k, den in inp["grads"]]
    return min(ssim, *ratios)


@dataclass
class RainJudge:
    """The fitted judge: :class:`RainNet`, its log-odds floor and the scene-kept floor (see the module doc)."""

    net: RainNet
    logit_floor: float
    scene_floor: float
    report: dict[str, Any] = field(default_factory=dict)

    def rain_left(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        """P(rain) per image, with the log-odds floored at the rain-free train photographs' median."""
        return 1.0 / (1.0 + np.exp(-np.maximum(rain_logits(self.net, images), self.logit_floor)))

    def scene_kept(self, rainy: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> np.ndarray:
        """:func:`scene_kept` per (input, output) pair."""
        return np.asarray([scene_kept(a, b) for a, b in zip(rainy, outputs)], dtype=np.float64)

    def measure(self, rainy: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor],
                input_rain_left: np.ndarray | None = None) -> dict[str, list]:
        """Per image: ``rain_left``, ``scene_kept``, ``derained`` (rain left below the input's and scene kept at
        least :attr:`scene_floor`) and ``credited_rain_left`` (the input's rain left where the scene was not kept)."""
        left_in = self.rain_left(rainy) if input_rain_left is None else np.asarray(input_rain_left)
        left, kept = self.rain_left(outputs), self.scene_kept(rainy, outputs)
        ok = kept >= self.scene_floor
        return {"rain_left": left.tolist(), "scene_kept": kept.tolist(),
                "derained": ((left < left_in) & ok).tolist(),
                "credited_rain_left": np.where(ok, left, np.maximum(left, left_in)).tolist()}


def fit_judge(real_dir, clean_dir, cfg: dict, seed: int = 0, progress: bool = True) -> RainJudge:
    """Fit the judge on the train splits of ``real_dir`` (rain) and ``clean_dir`` (rain-free): :class:`RainNet`
    (``cfg["e_judge_steps"]`` steps), the log-odds floor (median over the rain-free train photographs), the scene
    floor (:data:`SCENE_FLOOR_QUANTILE` of the scene kept by the noise-kept streak-free targets of realistic rain on
    ``cfg["e_judge_renders"]`` train photographs; the noise-free targets' median is recorded beside it), and its
    AUC on the val and test splits of both folders (with a bootstrap interval); ``judge.report`` records all of it.
    ``cfg["e_rain_fit_n"]`` (when not 0) caps the photographs per folder and split, as for the line classifier."""
    from pathlib import Path

    from .finetune import _render_photos
    from .io import list_images
    from .rainleft import load_working
    from .scenes import split_files
    from .stats import auc, auc_ci

    splits = {}
    for name, folder in (("real_dir", real_dir), ("clean_dir", clean_dir)):
        if folder is None or not Path(folder).is_dir():
            raise FileNotFoundError(f"{name}={str(folder)!r} not found: the rain-left judge needs real rainy and "
                                    "rain-free photographs (make data, or pass real_dir and clean_dir)")
        splits[name] = split_files(list_images(folder, recursive=True))
    cap = cfg.get("e_rain_fit_n") or None  # photographs per folder and split at most (smoke)
    tr_r = load_working(splits["real_dir"]["train"][:cap], WORK)
    tr_c = load_working(splits["clean_dir"]["train"][:cap], WORK)
    renders = _render_photos(splits["clean_dir"]["train"][:cfg["e_judge_renders"]], cfg["photo_size"], seed, 23,
                             realistic=True, noisy_target=True)
    # positives: the real rainy photographs and realistic rain on rain-free train photographs (rain on the very scenes
    # that are negatives, so that the rain itself is the cue)
    net = fit_rain_net(tr_r + renders["rainy"], tr_c, steps=cfg["e_judge_steps"], seed=seed, progress=progress)
    floor = float(np.median(rain_logits(net, tr_c)))
    kept = [scene_kept(r, t) for r, t in zip(renders["rainy"], renders["streak_free_noisy"])]
    kept_free = [scene_kept(r, t) for r, t in zip(renders["rainy"], renders["streak_free"])]
    scene_floor = float(np.quantile(kept, SCENE_FLOOR_QUANTILE))
    held = ("val", "test")  # every photograph outside the train split: scored, never fitted on
    te_r = load_working([p for h in held for p in splits["real_dir"][h]][:cap], WORK)
    te_c = load_working([p for h in held for p in splits["clean_dir"][h]][:cap], WORK)
    s = np.r_[rain_logits(net, te_r), rain_logits(net, te_c)]
    est, lo, hi = auc_ci(s, np.r_[np.ones(len(te_r), bool), np.zeros(len(te_c), bool)], cfg["bootstrap"], seed=seed)
    train_s = np.r_[rain_logits(net, tr_r), rain_logits(net, tr_c)]
    train_auc = auc(train_s, np.r_[np.ones(len(tr_r), bool), np.zeros(len(tr_c), bool)])
    report = {"steps": cfg["e_judge_steps"], "n_train_rainy": len(tr_r), "n_train_clean": len(tr_c),
              "train_auc": train_auc, "test_auc": est, "test_low": lo, "test_high": hi,
              "n_test_rainy": len(te_r), "n_test_clean": len(te_c), "logit_floor": floor,
              "p_floor": float(1 / (1 + np.exp(-floor))), "scene_floor": scene_floor,
              "scene_floor_quantile": SCENE_FLOOR_QUANTILE, "scene_floor_renders": len(kept),
              "scene_kept_targets_median": float(np.median(kept)),
              "scene_kept_noise_free_targets_median": float(np.median(kept_free))}
    return RainJudge(net, floor, scene_floor, report)


def _median3(x: torch.Tensor) -> torch.Tensor:
    p = F.pad(x[None], (1, 1, 1, 1), mode="reflect")
    return p.unfold(2, 3, 1).unfold(3, 3, 1).reshape(*p.shape[:2], x.shape[-2], x.shape[-1], 9).median(-1).values[0]


# what a "deraining" may not be: each maps a rainy (3,H,W) image to a fake output
NUISANCES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "blur (sigma 2 px)": lambda x: gaussian_blur(x[None], 2.0)[0],
    "horizontal blur (sigma 2 px)": lambda x: gaussian_blur(x[None], 2.0, 0.0)[0],
    "smoothing along the streaks (vertical, sigma 4 px)": lambda x: gaussian_blur(x[None], 0.0, 4.0)[0],
    "darkening (x 0.7)": lambda x: x * 0.7,
    "contrast loss (x 0.6 around the mean)": lambda x: (x.mean((-2, -1), keepdim=True)
                                                        + 0.6 * (x - x.mean((-2, -1), keepdim=True))),
    "denoising (3x3 median)": _median3,
    "flat image (the mean colour)": lambda x: x.mean((-2, -1), keepdim=True).expand_as(x).clone(),
}


def validate_judge(judge: RainJudge, pairs: dict[str, tuple[list, list]], real: Sequence[torch.Tensor] = (),
                   n_boot: int = 1000, seed: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The judge where the answer is known. For every set of ``pairs`` (``{name: (rainy, target)}``): the rainy input,
    the target, half the rain removed (``(rainy + target) / 2``) and every :data:`NUISANCES` applied to the input;
    for the ``real`` rainy photographs (no target): the input and the nuisances. One row per (set, case): mean rain
    left and scene kept with 95 % intervals over images, and the share of images judged derained. The target must
    pass, no nuisance should. ``limit``: the first images of each set only. Sets that share their rainy images
    (the same object, e.g. one render with two targets) measure the input and the nuisances once."""
    from .stats import bootstrap_ci

    sets = {k: (list(r)[:limit], list(t)[:limit], id(r)) for k, (r, t) in pairs.items()}
    if len(real):
        sets["real photographs (no target)"] = (list(real)[:limit], None, id(real))
    rows = []
    shared: dict[int, tuple[np.ndarray, dict[str, dict]]] = {}  # rainy source -> (inputs' rain left, target-free cases)
    for name, (rainy, target, source) in sets.items():
        if source not in shared:
            left = judge.rain_left(rainy)
            free = {"input": judge.measure(rainy, rainy, left)}
            free.update({k: judge.measure(rainy, [f(x.float().clamp(0, 1)).clamp(0, 1) for x in rainy], left)
                         for k, f in NUISANCES.items()})
            shared[source] = (left, free)
        left_in, free = shared[source]
        cases: dict[str, Any] = {"input": None}
        if target is not None:
            cases["target"] = target
            cases["half the rain removed"] = [(r + t) / 2 for r, t in zip(rainy, target)]
        cases.update(dict.fromkeys(NUISANCES))
        for case, outs in cases.items():
            m = free[case] if outs is None else judge.measure(rainy, outs, left_in)
            row = {"set": name, "case": case, "n": len(rainy)}
            for k in ("rain_left", "scene_kept"):
                est, lo, hi = bootstrap_ci(m[k], n_boot=n_boot, seed=seed)
                row.update({k: est, f"{k}_low": lo, f"{k}_high": hi})
            row["derained_share"] = float(np.mean(m["derained"]))
            rows.append(row)
    return rows


def judge_table(rows: list[dict[str, Any]]):
    """:func:`validate_judge`'s rows as a compact table (one line per set and case)."""
    import pandas as pd

    return pd.DataFrame([{"set": r["set"], "case": r["case"], "n": r["n"],
                          "rain left [95 % CI]": f"{r['rain_left']:.3f} [{r['rain_left_low']:.3f}, "
                                                 f"{r['rain_left_high']:.3f}]",
                          "scene kept [95 % CI]": f"{r['scene_kept']:.3f} [{r['scene_kept_low']:.3f}, "
                                                  f"{r['scene_kept_high']:.3f}]",
                          "judged derained": f"{r['derained_share']:.0%}"} for r in rows])


def judge_validity(rows: list[dict[str, Any]], real_set: str = "real photographs (no target)",
                   max_share: float = NUISANCE_MAX_SHARE, target_set: str = TARGET_SET,
                   min_target_share: float = TARGET_MIN_SHARE) -> dict[str, Any]:
    """Whether :func:`validate_judge`'s rows allow the judge to decide anything on real photographs: no nuisance judged
    derained on more than ``max_share`` of them, and the target of ``target_set`` (the noise-kept streak-free targets
    of realistic rain on held-out photographs) judged derained on at least ``min_target_share``. Returns ``valid``,
    the worst nuisance and its share, and the target's share (``None`` and not valid when a set is missing)."""
    shares = {r["case"]: r["derained_share"] for r in rows if r["set"] == real_set and r["case"] in NUISANCES}
    target = next((r["derained_share"] for r in rows if r["set"] == target_set and r["case"] == "target"), None)
    out = {"max_share": max_share, "target_set": target_set, "target_share": target,
           "min_target_share": min_target_share}
    if not shares:
        return {"valid": False, "worst": None, "share": None, **out}
    worst = max(shares, key=shares.get)
    valid = shares[worst] <= max_share and target is not None and target >= min_target_share
    return {"valid": valid, "worst": worst, "share": shares[worst], **out}


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two scorings of the same items (scipy)."""
    from scipy.stats import kendalltau

    t = kendalltau(a, b).statistic
    return float(t) if np.isfinite(t) else float("nan")


def ranking_check(reference: dict[str, Sequence[float]], measures: dict[str, dict[str, Sequence[float]]],
                  n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Does a ground-truth-free measure rank models as a full-reference one does? ``reference[model]``: per-image
    values where higher is better (PSNR-Y against the streak-free target); ``measures[name][model]``: per-image values
    of each GT-free measure, where *lower* is better (rain left) — pass negated values for higher-is-better ones. Per
    measure: Kendall's tau between the models' mean reference and the models' mean negated measure, and a 95 %
    bootstrap interval resampling images (the same images for every model)."""
    models = list(reference)
    ref = np.asarray([reference[m] for m in models], dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = ref.shape[1]
    idx = [rng.integers(0, n, n) for _ in range(n_boot)]
    out = {}
    for name, per in measures.items():
        val = -np.asarray([per[m] for m in models], dtype=np.float64)
        tau = kendall_tau(ref.mean(1), val.mean(1))
        boot = np.asarray([kendall_tau(ref[:, i].mean(1), val[:, i].mean(1)) for i in idx])
        boot = boot[np.isfinite(boot)]
        lo, hi = (np.quantile(boot, [0.025, 0.975]) if len(boot) else (np.nan, np.nan))
        out[name] = {"tau": tau, "low": float(lo), "high": float(hi), "models": models,
                     "reference_means": ref.mean(1).tolist(), "measure_means": (-val.mean(1)).tolist()}
    return out
