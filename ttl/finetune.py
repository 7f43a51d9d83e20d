"""Fine-tuning on a minority of paired synthetic data, and every baseline of STUDY §6 (notebook 04).

Every model here is a :class:`ttl.models.RestorationNet` trained by the same engine, loss (MSE), number of steps,
batch, patch size and learning-rate schedule; rows differ only in where the weights start, which pairs they see
and, for the semi-supervised baseline, an extra loss on unlabeled real-domain images:

==================  ============================================================================================
row                 what it is
==================  ============================================================================================
``ttl``             the distilled student (notebook 03), fine-tuned on the minority (``f_fraction``)
``sup-minority``    the student's architecture from scratch on the same minority (the key control)
``sup-full``        the student's architecture from scratch on all pairs
``sup-full-large``  a teacher-sized network (``t_width``) from scratch on all pairs
``syn2real``        Syn2Real (Yasarla, Sindagi & Patel, CVPR 2020): the minority plus unlabeled real-domain
                    images, whose latent vectors are pulled towards Gaussian-process pseudo-labels built from
                    the labeled latents (:class:`GPPseudoLabels`)
``t1-only``         a student distilled from T1 alone, fine-tuned like ``ttl``
``t2-only``         a student distilled from T2 alone, fine-tuned like ``ttl``
``no-distillation`` T2 itself (teacher-sized) fine-tuned on the minority
``frozen-encoder``  the distilled student with its encoder frozen (decoder and head fine-tuned)
``ttl@1pct`` ...    the fraction sweep (also ``sup-minority@...``)
==================  ============================================================================================

The paired synthetic training set is *fixed* (``f_pairs`` pairs rendered once, like a dataset on disk: a
minority means fewer distinct rainy images, not fewer steps); training draws random crops and flips from it.
Minorities are nested for one seed (the 1 % pairs are among the 5 %, which are among the 10 %) and differ between
seeds. No clean image of the real domain reaches any of this: the semi-supervised baseline's real-domain stream
is :class:`ttl.datasets.RealDomainUnlabeled`, checked with :func:`ttl.datasets.assert_unlabeled`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import RealDomainUnlabeled, SceneBank, _augment, assert_unlabeled
from .layouts import LayoutError, PairedFolderDataset
from .rain import SyntheticRain
from .scenes import random_crop
from .train import evaluate_pairs
from .utils import generator, seed_of

__all__ = ["PairSet", "Minority", "WithUnlabeled", "UnlabeledPool", "GPPseudoLabels", "Recipe", "recipes", "synthetic_pairs",
           "validation_sets", "finetune", "evaluate_model", "pct", "checkpoint_name", "run_finetuning",
           "model_scores", "compare", "results_table", "sweep_points", "example_rows", "diagnose", "ci_text"]


def pct(fraction: float) -> str:
    """``0.05 -> "5pct"`` (used in model names and file names)."""
    return f"{fraction * 100:g}pct"


# ------------------------------------------------------------------------------------------------- data
class PairSet(Dataset):
    """Fixed ``{"rainy", "clean"}`` pairs held in memory (``(N,3,S,S)`` tensors); item ``i`` of epoch ``e`` is
    a random ``patch`` crop and flip fixed by ``(seed, e, i)`` (no crop when ``patch`` is ``None``)."""

    def __init__(self, rainy: torch.Tensor, clean: torch.Tensor, patch: int | None = None, seed: int = 0,
                 manifest: dict | None = None):
        if rainy.shape != clean.shape:
            raise ValueError(f"rainy {tuple(rainy.shape)} and clean {tuple(clean.shape)} differ")
        self.rainy, self.clean, self.patch, self.seed, self.epoch = rainy, clean, patch, seed, 0
        self.info = manifest or {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rainy)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        out = []
        for i in idx:
            r, c = self.rainy[i], self.clean[i]
            if self.patch:
                g = generator(seed_of(self.seed, 3, self.epoch, i))
                r, c = random_crop(r, self.patch, g, c)
                r, c = _augment(r, g, c)
            out.append({"rainy": r, "clean": c})
        return out

    def manifest(self) -> dict:
        return {**self.info, "n": len(self), "size": list(self.rainy.shape[-2:])}


def synthetic_pairs(cfg: dict, seed: int, split: str = "train", clean_dir=None, synthetic_dir=None,
                    n: int | None = None, size: int | None = None, patch: int | None = None,
                    bank: SceneBank | None = None) -> Dataset:
    """The paired synthetic set of ``split``: ``n`` (``f_pairs``) clean scenes of ``size`` (``f_size``; procedural,
    or ``clean_dir``, or the given ``bank``) with light or heavy synthetic rain rendered once, or the train split of
    ``synthetic_dir`` (any layout of :func:`ttl.layouts.detect_layout`). Training sets give random ``patch``
    crops."""
    if synthetic_dir is not None and split == "train":
        return PairedFolderDataset(synthetic_dir, split="train", crop=patch or cfg["t_patch"], seed=seed)
    if synthetic_dir is not None:
        try:
            ds = PairedFolderDataset(synthetic_dir, split=split, crop=size or cfg["f_size"], seed=seed + 1)
            items = [ds[i] for i in range(min(len(ds), n or cfg["f_val"]))]
            return PairSet(torch.stack([it["rainy"] for it in items]), torch.stack([it["clean"] for it in items]),
                           manifest={"source": "synthetic_dir", "split": split, "layout": ds.layout})
        except LayoutError:  # too few scenes for this split: fall back to procedural validation data
            pass
    n = n or (cfg["f_pairs"] if split == "train" else cfg["f_val"])
    size = size or cfg["f_size"]
    bank = bank or SceneBank("folder" if clean_dir else "procedural", split, size, n=n, seed=seed, folder=clean_dir)
    g = generator(seed_of(seed, 17, ["train", "val", "test"].index(split)))
    rainy, clean = [], []
    for k, rain in ((0, SyntheticRain("light")), (1, SyntheticRain("heavy"))):
        idx = list(range(k, n, 2))  # even items light rain, odd items heavy rain
        scenes = torch.stack([bank.get(i, g)[0] for i in idx])
        out = rain(scenes, g)
        rainy.append(out.rainy)
        clean.append(out.clean)
    order = torch.tensor([i for k in (0, 1) for i in range(k, n, 2)]).argsort()
    rainy, clean = torch.cat(rainy)[order], torch.cat(clean)[order]
    return PairSet(rainy, clean, patch if split == "train" else None, seed,
                   {"source": bank.manifest(), "rain": "synthetic light (even items) / heavy (odd items)",
                    "split": split})


def validation_sets(cfg: dict, seed: int, clean_dir=None, synthetic_dir=None) -> dict[str, dict[str, torch.Tensor]]:
    """Held-out validation data: ``synthetic`` (val-split scenes with synthetic rain, or ``synthetic_dir``'s val
    split) and ``realistic`` (the same val-split scenes with realistic rain). The realistic clean images are for
    scoring only; nothing trains on them."""
    from .rain import RealisticRain

    bank = SceneBank("folder" if clean_dir else "procedural", "val", cfg["f_size"], n=cfg["f_val"], seed=seed + 1,
                     folder=clean_dir)
    syn = synthetic_pairs(cfg, seed + 1, "val", clean_dir, synthetic_dir, bank=bank)
    g = generator(seed_of(seed, 19))
    scenes = [bank.get(i, g) for i in range(len(bank) if clean_dir is None else cfg["f_val"])]
    out = RealisticRain()(torch.stack([s[0] for s in scenes]), g, torch.stack([s[1] for s in scenes]))
    return {"synthetic": {"rainy": syn.rainy, "clean": syn.clean},
            "realistic": {"rainy": out.rainy, "clean": out.clean}}


class Minority(Dataset):
    """The first ``ceil(fraction * N)`` items of a seeded permutation of ``data`` (nested across fractions for
    one seed), repeated so that an epoch holds at least ``min_len`` items."""

    def __init__(self, data: Dataset, fraction: float, seed: int, min_len: int = 1):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.data, self.fraction = data, fraction
        perm = torch.randperm(len(data), generator=generator(seed_of(seed, 23)))
        self.indices = sorted(perm[:max(1, math.ceil(fraction * len(data)))].tolist())
        self.length = max(len(self.indices), min_len)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        j = [self.indices[i % len(self.indices)] for i in idx]
        return self.data.__getitems__(j) if hasattr(self.data, "__getitems__") else [self.data[k] for k in j]

    def views(self) -> torch.Tensor:
        """Every distinct labeled rainy input, uncropped augmentations aside (centre crops of ``patch``)."""
        items = [self.data.rainy[k] if isinstance(self.data, PairSet) else self.data[k]["rainy"] for k in self.indices]
        p = getattr(self.data, "patch", None) or min(items[0].shape[-2:])
        return torch.stack([x[..., (x.shape[-2] - p) // 2:(x.shape[-2] - p) // 2 + p,
                              (x.shape[-1] - p) // 2:(x.shape[-1] - p) // 2 + p] for x in items])


class WithUnlabeled(Dataset):
    """Labeled pairs, each with one unlabeled real-domain image beside it: ``{"rainy", "clean", "real"}``.
    The unlabeled stream cycles through ``unlabeled`` (:class:`RealDomainUnlabeled` or :class:`UnlabeledPool`:
    rainy images only, checked on every item)."""

    def __init__(self, labeled: Dataset, unlabeled: Dataset):
        self.labeled, self.unlabeled, self.epoch = labeled, unlabeled, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for d in (self.labeled, self.unlabeled):
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.labeled)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        lab = self.labeled.__getitems__(idx)
        n = len(self.labeled)
        real = self.unlabeled.__getitems__([(self.epoch * n + i) % len(self.unlabeled) for i in idx])
        return [{**a, "real": assert_unlabeled(b)["rainy"]} for a, b in zip(lab, real)]


class UnlabeledPool(Dataset):
    """A fixed set of unlabeled real-domain images, like a folder of real photographs: the rainy images of
    ``source`` (a :class:`RealDomainUnlabeled`) rendered once. Items are ``{"rainy"}`` only; nothing else is
    stored. Rendering realistic rain on every step would cost more than the training step itself."""

    def __init__(self, source: RealDomainUnlabeled, batch: int = 64):
        imgs = []
        for k in range(0, len(source), batch):
            imgs += [assert_unlabeled(it)["rainy"] for it in source.__getitems__(list(range(k, min(k + batch, len(source)))))]
        self.images, self.info = torch.stack(imgs), source.manifest()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"rainy": self.images[i]}

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        return [{"rainy": self.images[i]} for i in idx]

    def manifest(self) -> dict:
        return {**self.info, "pool": "rendered once"}


# --------------------------------------------------------------------------------- Syn2Real (CVPR 2020)
class _Latent(nn.Module):
    """Wraps a restoration network so that one forward pass returns its output and its bottleneck latent (so
    that DDP sees every parameter used)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net.features(x)
        return f["out"], f["enc"][-1]


class GPPseudoLabels:
    """Syn2Real's Gaussian-process pseudo-labels for unlabeled images (Yasarla, Sindagi & Patel, "Syn2Real
    Transfer Learning for Image Deraining using Gaussian Processes", CVPR 2020).

    The latent vectors ``Z_l`` (bottleneck features) of every labeled image are stored and refreshed every
    ``refresh`` steps. For an unlabeled latent ``z``, its ``k`` nearest labeled latents (Euclidean) form a GP with
    the normalised linear (cosine) kernel ``K`` and noise ``sigma``; the pseudo-label is the GP mean
    ``mu = K(z, Z_k) [K(Z_k, Z_k) + sigma^2 I]^-1 Z_k`` with variance
    ``v = K(z, z) - K(z, Z_k) [...]^-1 K(Z_k, z) + sigma^2``, and the loss is
    ``mean((z - mu)^2) / v + lambda_var * log v`` (the reference code's defaults: ``k = 16``, ``sigma = 0.1``,
    ``lambda_var = 0.33``, weight ``0.0015``; as there, gradients flow through the kernel terms too).
    """

    def __init__(self, labeled_views: torch.Tensor, k: int = 16, sigma: float = 0.1, lambda_var: float = 0.33,
                 refresh: int = 50):
        self.views, self.k, self.sigma, self.lambda_var, self.refresh = labeled_views, k, sigma, lambda_var, refresh
        self.bank: torch.Tensor | None = None
        self.step: int | None = None

    def on_step(self, step: int) -> None:
        self.step = step

    @torch.no_grad()
    def update(self, model: nn.Module, device: torch.device, batch: int = 32) -> None:
        was = model.training
        model.eval()
        self.bank = torch.cat([model(self.views[i:i + batch].to(device))[1].flatten(1).float()
                               for i in range(0, len(self.views), batch)])
        model.train(was)

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        z = z.flatten(1).float()
        bank = self.bank.to(z.device)
        k = min(self.k, len(bank))
        with torch.no_grad():
            nn_idx = torch.cdist(z, bank).topk(k, largest=False).indices  # (B, k)
        zk = bank[nn_idx]  # (B, k, D), constants
        zn, zkn = F.normalize(z, dim=-1), F.normalize(zk, dim=-1)
        k_ll = zkn @ zkn.transpose(1, 2) + self.sigma ** 2 * torch.eye(k, device=z.device)
        k_ul = (zn[:, None] @ zkn.transpose(1, 2))  # (B, 1, k)
        a = torch.linalg.solve(k_ll, k_ul.transpose(1, 2)).transpose(1, 2)  # k_ul K_ll^-1, (B, 1, k)
        mu = (a @ zk)[:, 0]
        var = (1.0 - (a @ k_ul.transpose(1, 2))[:, 0, 0] + self.sigma ** 2).clamp_min(1e-6)
        return (((z - mu) ** 2).mean(-1) / var + self.lambda_var * torch.log(var)).mean()


# ------------------------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Recipe:
    """One row of the table: where the weights start (``init``: ``scratch``, ``scratch-large``, ``student``,
    ``student-t1``, ``student-t2``, ``t2``), the fraction of pairs it sees (``None``: all of them),
    whether the encoder is frozen, and whether Syn2Real's unlabeled loss is added."""

    name: str
    init: str
    fraction: float | None = None
    freeze_encoder: bool = False
    semi: bool = False
    seeds: int = 1  # how many seeds (the preset's ``f_seeds`` for headline rows)
    note: str = ""


def recipes(cfg: dict) -> list[Recipe]:
    """Every row of notebook 04 for a preset: headline rows (``f_seeds`` seeds), ablations and the sweep."""
    s, f = cfg["f_seeds"], cfg["f_fraction"]
    rows = [
        Recipe("ttl", "student", f, seeds=s, note="distilled student fine-tuned on the minority"),
        Recipe("sup-minority", "scratch", f, seeds=s, note="student architecture from scratch, same minority"),
        Recipe("sup-full", "scratch", 1.0, seeds=s, note="student architecture from scratch, all pairs"),
        Recipe("sup-full-large", "scratch-large", 1.0, seeds=s, note="teacher-sized network, all pairs"),
        Recipe("syn2real", "scratch", f, semi=True, seeds=s,
               note="Syn2Real GP pseudo-labels on unlabeled real-domain images, same minority"),
        Recipe("t1-only", "student-t1", f, note="student distilled from T1 only"),
        Recipe("t2-only", "student-t2", f, note="student distilled from T2 only"),
        Recipe("no-distillation", "t2", f, note="T2 itself fine-tuned on the minority"),
        Recipe("frozen-encoder", "student", f, freeze_encoder=True, note="distilled encoder frozen"),
    ]
    for frac in cfg["f_sweep"]:
        if frac == f:
            continue
        rows.append(Recipe(f"ttl@{pct(frac)}", "student", frac, note="fraction sweep"))
        if frac < 1:
            rows.append(Recipe(f"sup-minority@{pct(frac)}", "scratch", frac, note="fraction sweep"))
    return rows


def finetune(model: nn.Module, pairs: Dataset, recipe: Recipe, cfg: dict, seed: int, device: str, run_dir=None,
             unlabeled: Dataset | None = None, validate: Callable[[nn.Module], dict] | None = None,
             resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` on the recipe's fraction of ``pairs`` for ``f_steps`` steps (MSE; Syn2Real's GP loss on
    ``unlabeled`` added with weight ``f_gp_weight`` when ``recipe.semi``). Returns the engine's log."""
    from .engine import TrainConfig, train

    fraction = 1.0 if recipe.fraction is None else recipe.fraction
    data: Dataset = Minority(pairs, fraction, seed, min_len=cfg["f_batch"])
    params = None
    if recipe.freeze_encoder:
        model.encoder.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
    refresh = max(1, min(50, cfg["f_steps"] // 10))
    tc = TrainConfig(steps=cfg["f_steps"], batch=cfg["f_batch"], lr=cfg["f_lr"], seed=seed, device=device,
                     val_every=max(1, cfg["f_steps"] // 5), ckpt_every=refresh * max(1, cfg["f_steps"] // (5 * refresh)),
                     progress=progress, desc=f"{recipe.name} (seed {seed})")
    if not recipe.semi:
        step = lambda m, b: F.mse_loss(m(b["rainy"]).float(), b["clean"])  # noqa: E731
        return train(model, data, step, tc, run_dir=run_dir, validate=validate, parameters=params, resume=resume)
    if unlabeled is None:
        raise ValueError(f"{recipe.name}: the semi-supervised recipe needs unlabeled real-domain images")
    gp = GPPseudoLabels(data.views(), refresh=refresh)
    wrapped = _Latent(model)

    def step(m, b):
        if gp.bank is None or (gp.step is not None and gp.step % gp.refresh == 0):
            gp.update(wrapped, b["rainy"].device)
        out, z = m(torch.cat([b["rainy"], b["real"]]))
        n = len(b["rainy"])
        return F.mse_loss(out[:n].float(), b["clean"]) + cfg["f_gp_weight"] * gp.loss(z[n:])

    return train(wrapped, WithUnlabeled(data, unlabeled), step, tc, run_dir=run_dir,
                 validate=(lambda w: validate(w.net)) if validate else None, resume=resume, on_step=gp.on_step)


@torch.no_grad()
def evaluate_model(model: nn.Module, sets: dict[str, dict[str, torch.Tensor]], device: str = "cpu") -> dict:
    """Per-image ``psnr_y``, ``ssim_y``, ``psnr_rgb``, ``ssim_rgb`` of ``model`` (``None``: the rainy input) on
    each validation set, with their means."""
    out = {}
    for name, s in sets.items():
        m = evaluate_pairs(model, s["rainy"], s["clean"], device, batch=16)
        out[name] = {**{k: float(v.mean()) for k, v in m.items()}, "per_image": {k: v.tolist() for k, v in m.items()}}
    return out


def checkpoint_name(name: str, seed_index: int) -> str:
    """``<model>.pt`` for the first seed, ``<model>.seed<k>.pt`` for the others."""
    return f"{name}.pt" if seed_index == 0 else f"{name}.seed{seed_index}.pt"


def run_finetuning(cfg: dict, seed: int, device: str, student_path, teachers_dir, out_dir, real_dir=None,
                   clean_dir=None, synthetic_dir=None, resume: bool = False, progress: bool = True,
                   only: list[str] | None = None) -> dict[str, Any]:
    """Train every row of :func:`recipes` (or those named in ``only``) and score each on the validation sets.

    Seeds of a row are ``seed, seed + 1, ...``. Checkpoints go to ``{out_dir}/checkpoints/`` (see
    :func:`checkpoint_name`; each loads alone with :func:`ttl.models.load_model`), engine runs to
    ``{out_dir}/runs/<model>/seed<k>``. Returns ``{"rows": {name: recipe}, "runs": {name: [per-seed results]},
    "input": input scores, "manifest": ...}``."""
    from pathlib import Path

    from .distill import distil, load_teachers
    from .engine import is_main
    from .models import RestorationNet, count_params, load_model, save_model

    out_dir = Path(out_dir)
    rows = [r for r in recipes(cfg) if only is None or r.name in only]
    pairs = synthetic_pairs(cfg, seed, "train", clean_dir, synthetic_dir, patch=cfg["t_patch"])
    val = validation_sets(cfg, seed, clean_dir, synthetic_dir)
    small = {k: {kk: vv[:16] for kk, vv in v.items()} for k, v in val.items()}

    def validate(m):
        r = evaluate_model(m, small, str(next(m.parameters()).device))
        return {f"val_{d}_psnr_y": r[d]["psnr_y"] for d in r}

    t1, t2 = load_teachers(teachers_dir)
    student_path = Path(student_path)
    if not student_path.is_file():
        raise FileNotFoundError(f"{student_path} not found: run notebook 03 first (make study, or ttl study "
                                "--notebooks 03) or pass student_path")
    inits: dict[str, Callable[[], nn.Module]] = {
        "student": lambda: load_model(student_path)[0],
        "t2": lambda: load_model(Path(teachers_dir) / "t2.pt")[0],
        "scratch": lambda: RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"], blocks=t2.spec["blocks"]),
        "scratch-large": lambda: RestorationNet(width=t2.spec["width"], depth=t2.spec["depth"],
                                                blocks=t2.spec["blocks"]),
    }
    distil_logs = {}
    for teacher in ("t1", "t2"):
        if any(r.init == f"student-{teacher}" for r in rows):
            d, log, _, _ = distil(t1, t2, cfg, seed, device, out_dir / "runs" / f"distil-{teacher}-only",
                                  real_dir, resume, use_t1=teacher == "t1", use_t2=teacher == "t2",
                                  progress=progress, desc=f"distillation ({teacher} only)")
            distil_logs[teacher] = log
            state = {k: v.clone() for k, v in d.student.state_dict().items()}
            spec = dict(d.student.spec)
            inits[f"student-{teacher}"] = lambda state=state, spec=spec: _rebuild(spec, state)
    unlabeled: Dataset = RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_scenes"], seed=seed, split="train",
                                             real_dir=real_dir)
    if any(r.semi for r in rows) and not unlabeled.paths:  # rendered real domain: render the pool once
        unlabeled = UnlabeledPool(unlabeled)
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        runs[r.name] = []
        for k in range(r.seeds):
            s = seed + k
            torch.manual_seed(s)
            model = inits[r.init]()
            if cfg["f_reset_head"] and not r.init.startswith("scratch"):
                nn.init.zeros_(model.head.weight)  # start at the identity, as every scratch row does
                nn.init.zeros_(model.head.bias)
            log = finetune(model, pairs, r, cfg, s, device, out_dir / "runs" / r.name / f"seed{k}",
                           unlabeled=unlabeled if r.semi else None, validate=validate, resume=resume,
                           progress=progress)
            model = model.cpu().eval().requires_grad_(True)
            ckpt = out_dir / "checkpoints" / checkpoint_name(r.name, k)
            if is_main():
                save_model(ckpt, model, recipe=r.name, seed=s, fraction=r.fraction, init=r.init)
            runs[r.name].append({"seed": s, "checkpoint": str(ckpt), "log": log, "params": count_params(model),
                                 "val": evaluate_model(model, val)})
    return {"rows": {r.name: r for r in rows}, "runs": runs, "input": evaluate_model(None, val),
            "distil_logs": distil_logs, "val": val,
            "manifest": {"pairs": pairs.manifest(), "unlabeled_real_domain": unlabeled.manifest(),
                         "student": str(student_path), "teachers": str(teachers_dir)}}


def _rebuild(spec: dict, state: dict) -> nn.Module:
    from .models import build_model

    m = build_model(spec)
    m.load_state_dict(state)
    return m


# ------------------------------------------------------------------------------------------- summaries
def _t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    import numpy as np
    from scipy import stats as sps

    v = np.asarray(values, float)
    if v.size < 2:
        return float("nan"), float("nan")
    h = sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean() - h), float(v.mean() + h)


def model_scores(runs: list[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """One row's validation scores over its seeds, per domain and metric: the mean over seeds, a 95 % interval
    over images (bootstrap of the seed-averaged per-image values) and over seeds (t-interval; needs >= 2 seeds),
    the per-seed means and the seed-averaged per-image values."""
    import numpy as np

    from .stats import bootstrap_ci

    out: dict[str, dict[str, Any]] = {}
    for dom in runs[0]["val"]:
        out[dom] = {}
        for m in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
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
    return out


def compare(scores: dict[str, dict], runs: dict[str, list[dict]], a: str, b: str, n_boot: int = 1000,
            seed: int = 0) -> dict[str, dict[str, Any]]:
    """``a`` minus ``b`` per domain and metric (PSNR-Y, SSIM-Y): paired by image (seed-averaged values; bootstrap
    interval and Wilcoxon p) and paired by seed where both rows have the same seeds (t-interval over seeds)."""
    import numpy as np

    from .stats import paired_bootstrap

    out: dict[str, dict[str, Any]] = {}
    for dom in scores[a]:
        out[dom] = {}
        for m in ("psnr_y", "ssim_y"):
            r = paired_bootstrap(scores[a][dom][f"{m}_per_image"], scores[b][dom][f"{m}_per_image"], n_boot, seed=seed)
            k = min(len(runs[a]), len(runs[b]))
            d_seed = (np.array(scores[a][dom][f"{m}_per_seed"][:k]) - np.array(scores[b][dom][f"{m}_per_seed"][:k]))
            r["per_seed_diff"] = d_seed.tolist()
            r["ci_seeds"] = list(_t_interval(d_seed.tolist()))
            out[dom][m] = r
    return out


def ci_text(v: dict[str, Any], metric: str) -> str:
    """``mean [low, high]`` of ``metric`` in one entry of :func:`model_scores` (3 decimals for SSIM, 2 for PSNR)."""
    f = ".3f" if metric.startswith("ssim") else ".2f"
    lo, hi = v[f"{metric}_ci_images"]
    return f"{v[metric]:{f}} [{lo:{f}}, {hi:{f}}]"


def results_table(rows: dict[str, Recipe], scores: dict[str, dict], params: dict[str, int]):
    """One line per row: size, pairs used, seeds, and PSNR-Y / SSIM-Y on both validation sets as
    ``mean [95 % CI over images]`` (the metric convention in every header)."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    lines = []
    for name, r in rows.items():
        s = scores[name]
        line = {"model": name, "params (M)": round(params[name] / 1e6, 3),
                "pairs (%)": 100 * (1.0 if r.fraction is None else r.fraction), "seeds": len(s["synthetic"]["psnr_y_per_seed"])}
        for dom in ("synthetic", "realistic"):
            for m in ("psnr_y", "ssim_y"):
                line[f"{dom} {METRIC_LABELS[m]}"] = ci_text(s[dom], m)
        lines.append(line)
    return pd.DataFrame(lines)


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


@torch.no_grad()
def example_rows(data: dict[str, torch.Tensor], checkpoints: dict[str, Any], n: int = 4) -> dict[str, list]:
    """Rows for :func:`ttl.plots.image_grid`: the first ``n`` rainy inputs, each model's output (loaded from its
    saved checkpoint) and the clean images."""
    from .models import load_model

    x = data["rainy"][:n]
    rows = {"rainy input": list(x)}
    for name, path in checkpoints.items():
        rows[name] = list(load_model(path)[0](x).clamp(0, 1))
    rows["clean"] = list(data["clean"][:n])
    return rows


def diagnose(scores: dict[str, dict], runs: dict[str, list[dict]], n_boot: int = 1000, seed: int = 0) -> list[str]:
    """Why ``ttl`` does or does not beat ``sup-minority``, in sentences computed from the rows that ran: is the
    minority a constraint at this budget (the from-scratch sweep), which teacher helps (``t1-only``,
    ``t2-only``), and does distillation matter (``no-distillation``)? PSNR-Y, paired by image, 95 % CI."""
    def diff(a: str, b: str, dom: str) -> dict | None:
        if a not in scores or b not in scores:
            return None
        return compare(scores, runs, a, b, n_boot, seed)[dom]["psnr_y"]

    def fmt(r: dict) -> str:
        return f"{r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}]"

    def sign(r: dict) -> str:
        return "better" if r["low"] > 0 else ("worse" if r["high"] < 0 else "not distinguishable")

    out = []
    scratch = sorted((n for n in scores if n.startswith("sup-minority@")), key=lambda n: float(n.split("@")[1][:-3]))
    if scratch and "sup-full" in scores:
        r = diff(scratch[0], "sup-full", "synthetic")
        gap = "is not" if r["low"] > -0.5 else "is"
        out.append(f"Fraction: from scratch, {scratch[0].split('@')[1].replace('pct', ' %')} of the pairs minus all "
                   f"pairs on synthetic validation {fmt(r)}: at this step budget the minority {gap} a real "
                   "constraint (0.5 dB margin), so pretraining has "
                   f"{'little' if gap == 'is not' else 'room'} to make up for.")
    for row, what in (("t1-only", "the recognition teacher T1 alone"), ("t2-only", "the scattering teacher T2 alone"),
                      ("ttl", "both teachers (ttl)"), ("no-distillation", "T2 itself, not distilled"),
                      ("frozen-encoder", "the distilled encoder, frozen")):
        rs = [diff(row, "sup-minority", d) for d in ("synthetic", "realistic")]
        if rs[0] is not None:
            out.append(f"{what[0].upper() + what[1:]} vs sup-minority: synthetic {fmt(rs[0])} ({sign(rs[0])}), realistic {fmt(rs[1])} "
                       f"({sign(rs[1])}).")
    return out
