"""Fine-tuning on a minority of paired synthetic data, and every baseline and control (notebook 04; design §6).

Every model here is a :class:`ttl.models.RestorationNet` trained by the same engine, loss (``f_loss``, L1 at every
preset), batch, crops and warm-up + cosine schedule: ``f_steps`` steps on all pairs, ``f_steps_minority`` on a
minority. Every row gets the same tuning effort (:func:`run_finetuning`): the headline rows and the controls search
the learning rate over ``f_lr_grid`` on the first ``f_search_draws`` seeds (best mean score), every run ends with the checkpoint of its best validation
(:data:`SELECT_KEY`, on validation data only), and rows that do not search take their parent's choice. Rows differ
only in where the weights start, which pairs they see and, for the semi-supervised baseline, an extra loss on
unlabeled real-domain images. Each row's role, draws and parent are defined once, in :func:`recipes`:

======================  ========================================================================================
row                     what it is
======================  ========================================================================================
``ttl``                 the distilled student (notebook 03), fine-tuned on the minority (``f_fraction``)
``sup-minority``        the student's architecture from scratch on the same minority (the key control)
``sup-full``            the student's architecture from scratch on all pairs
``syn2real``            Syn2Real (Yasarla, Sindagi & Patel, CVPR 2020): the minority plus unlabeled real-domain
                        images, whose latent vectors are pulled towards Gaussian-process pseudo-labels built from
                        the labeled latents (:class:`GPPseudoLabels`)
``sup-minority-large``  a teacher-sized network from scratch on the minority (control of ``no-distillation``)
``ssl-minority``        the student pretrained by masked denoising (:func:`ssl_pretrain`) on the same unlabeled
                        real-domain images with the budget of T1 + T2 + distillation, then fine-tuned like ``ttl``
``sup-full-large``      a teacher-sized network from scratch on all pairs
``sup-full-no-...``     ``sup-full`` without the context path (``-no-context``), and also without the rain-free
                        renders (``-before``: its light and heavy renders only, as before the darkening fix)
``t1-only``             a student distilled from T1 alone, fine-tuned like ``ttl``
``t2-only``             a student distilled from T2 alone, fine-tuned like ``ttl``
``no-distillation``     T2 itself (teacher-sized) fine-tuned on the minority
``frozen-encoder``      the distilled student with its encoder frozen (decoder and head fine-tuned)
``ttl-target-ms``       ``ttl`` from a student distilled with the feature loss before the fix (``d_norm``)
``ttl@5pct`` ...        the fraction sweep (also ``sup-minority@...``)
======================  ========================================================================================

The paired synthetic training set is *fixed* (rendered once, like a dataset on disk: a minority means fewer distinct
rainy images, not fewer steps); its rain amount spans rain-free, light and heavy (``f_rain``), so that a network
learns how much to remove instead of a fixed darkening; training draws random crops and flips from it. With public
training pairs at hand (``public_dir``), :func:`training_pool` adds them, each folder about ``f_public_share`` of the
items, as the shipped model's data do (:mod:`ttl.ship`); a minority draws the same share of each source's scenes
(:class:`Minority`).
Every pretrained start (the rows whose ``init`` is not ``scratch...``) is prepared by :func:`prepare_start`: its
output head is zeroed (``f_reset_head``: the identity, where every scratch row starts) and each layer is rescaled to
the output scale of the same layer in a fresh network (``f_rescale_start``, :func:`ttl.models.match_layer_scale`).
The distilled student's deep activations are about 200x a fresh network's (its features are distilled towards
standardised targets), which made its fine-tuning unstable: one minority draw of the committed run of 1765cbc fell
from 21 to 19 dB and never recovered (docs/measurements/start_scale).

Minorities are nested for one seed (the 1 % pairs are among the 5 %, which are among the 10 %, source by source) and
differ between seeds (a seed is a minority draw). No clean image of the real domain reaches any of this: the real-domain streams
(Syn2Real's, the masked-denoising pretraining's) are :class:`ttl.datasets.RealDomainUnlabeled`, checked with
:func:`ttl.datasets.assert_unlabeled`. The validation data that choose checkpoints live in :mod:`ttl.heldout`, the
summaries of the rows' scores in :mod:`ttl.scores`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .cache import cached
from .config import folder_manifest
from .datasets import FixedPairs, RealDomainUnlabeled, assert_unlabeled
from .imageops import to_uint8
from .layouts import LayoutError, PairedFolderDataset, detect_layout, load_pair
from .metrics import ALL_METRICS, rain_amount
from .rain import SyntheticRain, synthetic_preset, widened
from .scenes import SPLITS, dead_leaves, load_photo, scene_split
from .train import evaluate_pairs, restore
from .utils import resolve_device
from .utils import generator, seed_of

__all__ = ["Minority", "WithUnlabeled", "UnlabeledPool", "GPPseudoLabels", "Recipe", "recipes", "synthetic_pairs",
           "training_pool", "finetune", "evaluate_model", "pct", "checkpoint_name", "run_finetuning", "example_rows",
           "recipe_steps", "patch_schedule", "ROLES", "SELECT_DOMAINS", "SELECT_KEY", "selection_scores",
           "masked_denoising_step", "ssl_pretrain", "start_batch", "prepare_start"]


def pct(fraction: float) -> str:
    """``0.05 -> "5pct"`` (used in model names and file names)."""
    return f"{fraction * 100:g}pct"


# ------------------------------------------------------------------------------------------------- data
RAIN_AMOUNTS = ("none", "light", "heavy")


def _render_photos(paths: list, photo_size: int, seed: int, tag: int, renders: int = 1, crop: int | None = None,
                   realistic: bool = False, amounts: tuple[str, ...] | list[str] = ("light", "heavy"),
                   tilt: float = 0.0, noisy_target: bool = False) -> dict[str, Any]:
    """Each photograph (at the working scale, short side ``photo_size``) rendered ``renders`` times with synthetic rain
    whose amount cycles through ``amounts`` (render ``k`` of photo ``i`` gets ``amounts[(i + k) % len(amounts)]``:
    ``"light"`` and ``"heavy"`` are the calibrated presets, ``"none"`` leaves the photograph rain-free, so that "change
    nothing" is learned too), or once with realistic rain; ``crop``: the centre ``crop`` x ``crop`` square of
    each photograph, rain rendered at the photograph's scale; ``tilt``: synthetic streaks lean up to that many degrees
    from vertical (:func:`ttl.rain.widened`; 0 keeps the presets' ranges). Returns lists of ``rainy``, ``clean`` (and
    ``streak_free``) tensors, scene names and the amount of each render; with ``noisy_target`` (realistic rain) also
    ``streak_free_noisy``, the streak-free rendering through the rainy render's own sensor noise."""
    from .rain import RealisticRain

    unknown = set(amounts) - set(RAIN_AMOUNTS)
    if unknown or not amounts:
        raise ValueError(f"unknown rain amounts {sorted(unknown)}; valid: {', '.join(RAIN_AMOUNTS)}")
    out: dict[str, list] = {"rainy": [], "clean": [], "streak_free": [], "scenes": [], "amounts": []}
    realistic_rain = RealisticRain() if realistic else None
    synthetic = {a: SyntheticRain(widened(synthetic_preset(a), tilt)) for a in set(amounts) - {"none"}}
    for i, p in enumerate(paths):
        photo = load_photo(p, photo_size, min_size=crop or 16)
        if crop:
            h, w = photo.shape[-2:]
            photo = photo[:, (h - crop) // 2:(h - crop) // 2 + crop, (w - crop) // 2:(w - crop) // 2 + crop]
        scale = photo_size / 256 if photo_size else None
        for k in range(1 if realistic else renders):
            g = generator(seed_of(seed, tag, i, k))
            if realistic:
                o = realistic_rain(photo[None], g, scale=scale, noisy_target=noisy_target)
                out["streak_free"].append(o.streak_free[0])
                if noisy_target:
                    out.setdefault("streak_free_noisy", []).append(o.streak_free_noisy[0])
                rainy, amount = o.rainy[0], "realistic"
            else:
                amount = amounts[(i + k) % len(amounts)]
                rainy = photo if amount == "none" else synthetic[amount](photo[None], g, scale=scale).rainy[0]
            out["rainy"].append(rainy)
            out["clean"].append(photo)
            out["scenes"].append(Path(p).stem)
            out["amounts"].append(amount)
    return out


def _as_uint8(r: dict[str, Any]) -> dict[str, Any]:
    """``r["rainy"]`` and ``r["clean"]`` as the 8-bit images :class:`FixedPairs` keeps (renders of one photograph keep
    sharing its clean image), a quarter of the float size in memory and in the cache."""
    memo: dict[int, torch.Tensor] = {}
    for k in ("rainy", "clean"):
        r[k] = [memo[id(t)] if id(t) in memo else memo.setdefault(id(t), to_uint8(t)) for t in r[k]]
    return r


def synthetic_pairs(cfg: dict, seed: int, split: str = "train", clean_dir=None, synthetic_dir=None) -> FixedPairs:
    """The paired synthetic set of ``split``, fixed like a dataset on disk.

    * ``synthetic_dir`` (any layout of :func:`ttl.layouts.detect_layout`): its pairs; the ``val`` split of
      :func:`ttl.scenes.scene_split` validates, every other pair trains.
    * ``clean_dir``: the photographs of ``split`` (:func:`ttl.datasets.split_paths`) at the working scale
      (``photo_size``), each with ``f_renders`` renders for ``train`` whose rain amount cycles through ``f_rain``
      (rain-free, light and heavy), or one render of its centre ``f_size`` crop for ``val``/``test`` (light and heavy
      alternating).
    * neither: ``f_pairs`` procedural scenes of ``f_size`` (``f_val`` for ``val``/``test``), item ``i`` with rain amount
      ``f_rain[i % len(f_rain)]`` for ``train`` (light and heavy alternating for ``val``/``test``).

    The rain amount of every pair is kept in ``.amounts`` (measured with :func:`ttl.metrics.rain_amount` for
    ``synthetic_dir``), so that a row can train on some amounts only (``Recipe.rain``).

    Training sets give random ``f_patch`` crops; the scene of each pair is kept, so minorities are minorities of
    scenes."""
    from .datasets import split_paths

    patch = cfg["f_patch"] if split == "train" else None
    if synthetic_dir is not None:
        items = [it for it in PairedFolderDataset(synthetic_dir).items
                 if (scene_split(it.scene) == "val") == (split != "train")]
        if not items:
            raise LayoutError(f"synthetic_dir={str(synthetic_dir)!r}: no pair falls in the {split!r} part (the val "
                              "split of ttl.scenes.scene_split validates, the rest trains); add more pairs")
        pairs = [load_pair(it, min_size=cfg["f_patch"]) for it in items]
        out = FixedPairs([p[0] for p in pairs], [p[1] for p in pairs], [it.scene for it in items], patch, seed,
                         {"source": "synthetic_dir", "folder": str(synthetic_dir), "split": split,
                          "layout": detect_layout(synthetic_dir)[0],
                          "files": folder_manifest([it.rainy for it in items])})
        out.amounts = [rain_amount(p[0], p[1]) for p in pairs]  # measured: a dataset on disk has no f_rain
        return out
    if clean_dir is not None:
        paths = split_paths(clean_dir, split, "clean_dir")
        amounts = tuple(cfg["f_rain"]) if split == "train" else ("light", "heavy")
        files = folder_manifest(paths)
        settings = dict(photo_size=cfg["photo_size"], seed=seed, tag=17 + SPLITS.index(split),
                        renders=cfg["f_renders"] if split == "train" else 1,
                        crop=None if split == "train" else cfg["f_size"], amounts=amounts,
                        tilt=cfg["f_tilt"] if split == "train" else 0.0)
        # notebooks 01 and 04 train on the same set: render it once (ttl.cache; keyed by files, settings and code)
        r = cached("synthetic_pairs", {**settings, "files": files},
                   lambda: _as_uint8(_render_photos(paths, **settings)))
        out = FixedPairs(r["rainy"], r["clean"], r["scenes"], patch, seed,
                         {"source": "clean_dir", "split": split, "photo_size": cfg["photo_size"],
                           "renders_per_scene": cfg["f_renders"] if split == "train" else 1,
                          "rain": f"synthetic, amounts cycling {'/'.join(amounts)}",
                          "tilt_deg": cfg["f_tilt"] if split == "train" else 0.0,
                          "amounts": {a: r["amounts"].count(a) for a in amounts},
                          "files": files})
        out.amounts = r["amounts"]
        return out
    n = cfg["f_pairs"] if split == "train" else cfg["f_val"]
    clean, _ = dead_leaves(n, cfg["f_size"], seed=seed, split=split)
    g = generator(seed_of(seed, 17, SPLITS.index(split)))
    amounts = tuple(cfg["f_rain"]) if split == "train" else ("light", "heavy")
    tilt = cfg["f_tilt"] if split == "train" else 0.0
    rainy = clean.clone()
    for k, a in enumerate(amounts):  # item i gets amounts[i % len(amounts)]
        if a != "none":
            rainy[k::len(amounts)] = SyntheticRain(widened(synthetic_preset(a), tilt))(clean[k::len(amounts)], g).rainy
    out = FixedPairs(list(rainy), list(clean), [f"{split}-{i}" for i in range(n)], patch, seed,
                     {"source": "procedural", "split": split, "n": n, "size": cfg["f_size"], "seed": seed,
                      "rain": f"synthetic, item i has amount {'/'.join(amounts)}[i % {len(amounts)}]",
                      "tilt_deg": tilt})
    out.amounts = [amounts[i % len(amounts)] for i in range(n)]
    return out


def training_pool(cfg: dict, seed: int, clean_dir=None, synthetic_dir=None, public_dir=None) -> FixedPairs:
    """Notebook 04's paired pool: the ``train`` split of :func:`synthetic_pairs` and, when those pairs are rendered
    (no ``synthetic_dir``) and ``public_dir`` holds public training pairs (:func:`ttl.ship.public_split`: folders
    ``*_train`` and the ``"fit"`` part of :data:`ttl.layouts.SHARED_PUBLIC`; never a test pair), those pairs, each
    folder repeated to about ``cfg["f_public_share"]`` of the items (:func:`ttl.ship.add_public_pairs`), their rain
    amounts measured (:func:`ttl.metrics.rain_amount`). ``.sources`` names each item's source (``info["source"]`` of
    the rendered pairs, else the public folder), so that :class:`Minority` draws the same share of every source's
    scenes. The manifest lists the public folders under ``"public"``."""
    from .ship import add_public_pairs, public_split

    pairs = synthetic_pairs(cfg, seed, "train", clean_dir, synthetic_dir)
    pairs.sources = [pairs.info["source"]] * len(pairs)
    share = cfg.get("f_public_share", 0.0)
    train = public_split(public_dir)[0] if public_dir is not None and synthetic_dir is None and share else []
    if not train:
        return pairs
    n = len(pairs)
    rainy, clean, scenes = list(pairs.rainy), list(pairs.clean), list(pairs.scenes)
    public = add_public_pairs(rainy, clean, scenes, train, share, min_size=cfg["f_patch"])
    out = FixedPairs(rainy, clean, scenes, pairs.patch, seed, {**pairs.info, "public": public})
    measured: dict[int, str] = {}  # a repeated pair is measured once
    for x, y in zip(rainy[n:], clean[n:]):
        if id(x) not in measured:
            measured[id(x)] = rain_amount(x, y)
    out.amounts = list(pairs.amounts) + [measured[id(x)] for x in rainy[n:]]
    out.sources = pairs.sources + [s.split("/", 1)[0] for s in scenes[n:]]
    return out


class Minority(Dataset):
    """The pairs of the first ``ceil(fraction * S)`` of the ``S`` scenes of ``data`` in a seeded permutation (so
    minorities are nested across fractions for one seed, and a minority of scenes, not only of renders), repeated
    so that an epoch holds at least ``min_len`` items. ``fraction=1`` is every pair. ``amounts``: keep only the
    renders with these rain amounts (``data.amounts``, set by :func:`synthetic_pairs`).

    A pool of several sources (``data.sources``, set by :func:`training_pool`) is drawn source by source, each in
    its own permutation: the first source as above, every other one ``round(fraction * S)`` of its ``S`` scenes
    (none for a small fraction), so that a minority holds the sources in the pool's proportions."""

    def __init__(self, data: FixedPairs, fraction: float, seed: int, min_len: int = 1,
                 amounts: tuple[str, ...] | None = None):
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.data, self.fraction = data, fraction
        strata: dict[str, set[str]] = {}  # source -> its scenes, sources in order of first appearance
        for src, scene in zip(getattr(data, "sources", None) or [""] * len(data.scenes), data.scenes):
            strata.setdefault(src, set()).add(scene)
        drawn = []
        for k, (src, group) in enumerate(strata.items()):
            scenes = sorted(group)
            g = generator(seed_of(seed, 23) if k == 0 else seed_of(seed, 23, src))
            perm = torch.randperm(len(scenes), generator=g).tolist()
            n = max(1, math.ceil(fraction * len(scenes))) if k == 0 else round(fraction * len(scenes))
            drawn += [scenes[j] for j in perm[:n]]
        self.scenes = sorted(drawn)
        keep = set(self.scenes)
        have = getattr(data, "amounts", None)
        if amounts is not None and have is None:
            raise ValueError("these pairs do not record their rain amounts; make them with ttl.finetune.synthetic_pairs")
        self.indices = [i for i, s in enumerate(data.scenes) if s in keep and (amounts is None or have[i] in amounts)]
        if not self.indices:
            raise ValueError(f"no pair of the minority has a rain amount in {amounts}")
        self.length = max(len(self.indices), min_len)

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        return self.data.__getitems__([self.indices[i % len(self.indices)] for i in idx])

    def views(self, size: int) -> torch.Tensor:
        """Every labeled rainy input once: its centre ``size`` x ``size`` crop (Syn2Real's labeled latents)."""
        out = []
        for k in self.indices:
            x = self.data.rainy[k].float() / 255
            h, w = x.shape[-2:]
            out.append(x[:, (h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size])
        return torch.stack(out)


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
        with torch.autocast(z.device.type, enabled=False):  # a linear solve: fp32 even in a bf16 step
            return self._loss(z.flatten(1).float())

    def _loss(self, z: torch.Tensor) -> torch.Tensor:
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
ROLES = ("headline", "control", "evidence", "ablation", "sweep")
SELECT_DOMAINS = ("synthetic", "realistic")  # checkpoints and learning rates are chosen on these validation sets
SELECT_KEY = "val_select_psnr_y"  # their mean PSNR-Y (dB), the engine's selection key


@dataclass(frozen=True)
class Recipe:
    """One row of the study, defined once here and written into the record: where the weights start (``init``:
    ``scratch``, ``scratch-large``, ``student``, ``student-t1``, ``student-t2``, ``student-target-ms``, ``t2``,
    ``ssl``), the fraction of
    pairs it sees (``None``: all of them), its ``role`` (:data:`ROLES`), whether its learning rate is searched on the
    validation split (``tune``) or taken from its ``parent`` row's search, how many seeds (minority draws) it trains,
    whether the encoder is frozen, and whether Syn2Real's unlabeled loss is added."""

    name: str
    init: str
    fraction: float | None = None
    role: str = "headline"
    tune: bool = False  # searched over the preset's f_lr_grid (f_search_draws seeds; the chosen lr trains the rest)
    parent: str | None = None  # rows that do not search take this row's chosen learning rate (none: f_lr)
    seeds: int = 1  # minority draws (seed k of every minority row draws the same scenes)
    freeze_encoder: bool = False
    semi: bool = False
    rain: tuple[str, ...] | None = None  # only the training renders with these rain amounts (None: all of ``f_rain``)
    context: bool | None = None  # scratch rows: the context path on or off (None: as the preset's networks)
    note: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: unknown role {self.role!r}; use one of {ROLES}")
        if self.tune and self.parent is not None:
            raise ValueError(f"{self.name}: a row either searches its learning rate (tune) or takes its parent's")


# rows a run may leave out for time: they run only when the preset's ``f_optional_rows`` names them (every preset
# does today; ``f_optional_rows=[]`` drops them)
OPTIONAL_ROWS = ("ttl-target-ms",)


def recipes(cfg: dict) -> list[Recipe]:
    """Every row of notebook 04 for a preset, searched rows first. Headline rows and controls search the learning
    rate (``tune``); ``ttl`` and ``sup-minority`` train ``f_draws`` minority draws, the other searched rows
    ``f_seeds``; evidence rows, ablations and the sweep take their parent's choice (the sweep's points below 100 %
    ``f_sweep_draws`` draws, its 100 % point one). The evidence row ``sup-full-large`` takes the rate of
    ``sup-minority-large`` (its network size), since a rate chosen for the student-sized network did not carry across
    the capacity change; the ablation ``no-distillation`` (T2, teacher-sized) still takes ``ttl``'s, as ablations do. Rows of :data:`OPTIONAL_ROWS` run only when ``f_optional_rows``
    names them."""
    f, draws, seeds = cfg["f_fraction"], cfg["f_draws"], cfg["f_seeds"]
    rows = [
        Recipe("ttl", "student", f, tune=True, seeds=draws, note="distilled student fine-tuned on the minority"),
        Recipe("sup-minority", "scratch", f, tune=True, seeds=draws,
               note="student architecture from scratch, same minority"),
        Recipe("sup-full", "scratch", 1.0, tune=True, seeds=seeds, note="student architecture from scratch, all pairs"),
        Recipe("syn2real", "scratch", f, semi=True, tune=True, seeds=seeds,
               note="Syn2Real GP pseudo-labels on unlabeled real-domain images, same minority"),
        Recipe("sup-minority-large", "scratch-large", f, role="control", tune=True, seeds=seeds,
               note="teacher-sized network from scratch on the minority (capacity without pretraining)"),
        Recipe("ssl-minority", "ssl", f, role="control", tune=True, seeds=seeds,
               note="student pretrained by masked denoising on the same unlabeled real-domain images, "
                    "pretraining budget of T1 + T2 + distillation, then fine-tuned like ttl"),
        Recipe("sup-full-large", "scratch-large", 1.0, role="evidence", parent="sup-minority-large",
               note="teacher-sized network, all pairs (the learning rate its size class chose on the minority)"),
        Recipe("sup-full-no-context", "scratch", 1.0, role="evidence", parent="sup-full", context=False,
               note="sup-full without the context path (the rain mixture kept)"),
        Recipe("sup-full-before", "scratch", 1.0, role="evidence", parent="sup-full", context=False,
               rain=("light", "heavy"),
               note="sup-full without the darkening fix: its light and heavy renders only, no context path"),
        Recipe("t1-only", "student-t1", f, role="ablation", parent="ttl", note="student distilled from T1 only"),
        Recipe("t2-only", "student-t2", f, role="ablation", parent="ttl", note="student distilled from T2 only"),
        Recipe("no-distillation", "t2", f, role="ablation", parent="ttl", note="T2 itself fine-tuned on the minority"),
        Recipe("frozen-encoder", "student", f, role="ablation", parent="ttl", freeze_encoder=True,
               note="distilled encoder frozen"),
        Recipe("ttl-target-ms", "student-target-ms", f, role="ablation", parent="ttl",
               note="ttl distilled with the feature loss before the fix (teacher features at their raw scale)"),
    ]
    optional = set(cfg.get("f_optional_rows", ()))
    if optional - set(OPTIONAL_ROWS):
        from .config import ConfigError

        raise ConfigError(f"f_optional_rows: unknown rows {sorted(optional - set(OPTIONAL_ROWS))}; optional rows: "
                          f"{', '.join(OPTIONAL_ROWS)}")
    rows = [r for r in rows if r.name not in OPTIONAL_ROWS or r.name in optional]
    for frac in cfg["f_sweep"]:
        if frac == f:
            continue
        n = 1 if frac >= 1 else cfg["f_sweep_draws"]
        rows.append(Recipe(f"ttl@{pct(frac)}", "student", frac, role="sweep", parent="ttl", seeds=n,
                           note="fraction sweep"))
        if frac < 1:
            rows.append(Recipe(f"sup-minority@{pct(frac)}", "scratch", frac, role="sweep", parent="sup-minority",
                               seeds=n, note="fraction sweep"))
    return rows


def recipe_steps(recipe: Recipe, cfg: dict) -> int:
    """Training steps of a row: ``f_steps`` on all pairs, ``f_steps_minority`` on a minority (small data peaks
    early; the checkpoint is chosen on validation either way)."""
    return cfg["f_steps"] if recipe.fraction is None or recipe.fraction >= 1 else cfg["f_steps_minority"]


def patch_schedule(cfg: dict, steps: int, per_epoch: int):
    """Crop size by epoch: ``f_patch``, then ``f_patch_late`` for the last ``f_late`` share of the steps (the field's
    "larger patches late"; 0 or equal sizes: one size throughout)."""
    early, late = cfg["f_patch"], cfg.get("f_patch_late") or cfg["f_patch"]
    if late == early or not cfg.get("f_late"):
        return early
    start = int((1 - cfg["f_late"]) * steps) // max(1, per_epoch)
    return lambda epoch: late if epoch >= start else early


def finetune(model: nn.Module, pairs: FixedPairs, recipe: Recipe, cfg: dict, seed: int, device: str, run_dir=None,
             unlabeled: Dataset | None = None, validate: Callable[[nn.Module], dict] | None = None,
             resume: bool = False, progress: bool = True, lr: float | None = None) -> dict[str, Any]:
    """Train ``model`` on the recipe's minority of scenes of ``pairs`` (:class:`Minority`) for its steps
    (:func:`recipe_steps`) at learning rate ``lr`` (default ``f_lr``) with the ``f_loss`` loss and the crop schedule
    (:func:`patch_schedule`); Syn2Real's GP loss on ``unlabeled`` is added with weight ``f_gp_weight`` when
    ``recipe.semi``. With ``validate`` (returning :data:`SELECT_KEY`), validation runs every ``f_val_every`` steps
    and the model ends with the weights of its best validation (the log's ``best``). Returns the engine's log."""
    from .engine import TrainConfig, train
    from .train import LOSSES

    fraction = 1.0 if recipe.fraction is None else recipe.fraction
    data = Minority(pairs, fraction, seed, min_len=cfg["f_batch"], amounts=recipe.rain)
    steps = recipe_steps(recipe, cfg)
    pairs.patch = patch_schedule(cfg, steps, len(data) // cfg["f_batch"])
    loss_fn = LOSSES[cfg["f_loss"]]
    params = None
    if recipe.freeze_encoder:
        model.encoder.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
    refresh = max(1, min(50, steps // 10))
    lr = cfg["f_lr"] if lr is None else lr
    tc = TrainConfig(steps=steps, batch=cfg["f_batch"], lr=lr, seed=seed, device=device,
                     val_every=max(1, min(steps, cfg["f_val_every"])),
                     ckpt_every=refresh * max(1, steps // (5 * refresh)), progress=progress,
                     desc=f"{recipe.name} (seed {seed}, lr {lr:g})", amp=cfg.get("amp", True),
                     channels_last=cfg.get("channels_last", True), fused=cfg.get("fused", True),
                     select=SELECT_KEY if validate is not None else None)
    if not recipe.semi:
        step = lambda m, b: loss_fn(m(b["rainy"]).float(), b["clean"])  # noqa: E731
        return train(model, data, step, tc, run_dir=run_dir, validate=validate, parameters=params, resume=resume)
    if unlabeled is None:
        raise ValueError(f"{recipe.name}: the semi-supervised recipe needs unlabeled real-domain images")
    gp = GPPseudoLabels(data.views(cfg["f_patch"]), refresh=refresh)
    wrapped = _Latent(model)

    def step(m, b):
        if gp.bank is None or (gp.step is not None and gp.step % gp.refresh == 0):
            gp.update(wrapped, b["rainy"].device)
        n = len(b["rainy"])
        if b["real"].shape[-2:] == b["rainy"].shape[-2:]:
            out, z = m(torch.cat([b["rainy"], b["real"]]))
            out, z = out[:n], z[n:]
        else:  # late, larger labeled crops: the unlabeled crops go through on their own
            out, z = m(b["rainy"])[0], m(b["real"])[1]
        return loss_fn(out.float(), b["clean"]) + cfg["f_gp_weight"] * gp.loss(z)

    return train(wrapped, WithUnlabeled(data, unlabeled), step, tc, run_dir=run_dir,
                 validate=(lambda w: validate(w.net)) if validate else None, resume=resume, on_step=gp.on_step)


@torch.no_grad()
def evaluate_model(model: nn.Module, sets: dict[str, dict[str, torch.Tensor]], device: str = "cpu",
                   which: tuple[str, ...] = ALL_METRICS) -> dict:
    """Per-image ``psnr_y``, ``ssim_y``, ``psnr_rgb``, ``ssim_rgb`` (or those named in ``which``) of ``model``
    (``None``: the rainy input) on each validation set, with their means."""
    out: dict[str, Any] = {}
    outputs: dict[tuple, torch.Tensor] = {}  # sets that share their rainy images (realistic, realistic_clean) run once
    for name, s in sets.items():
        x = s["rainy"]
        if model is not None:
            key = (x.data_ptr(), tuple(x.shape), x.stride())
            if key not in outputs:
                with torch.no_grad():
                    dev = resolve_device(device)
                    outputs[key] = torch.cat([restore(model, x[k:k + 16], dev) for k in range(0, len(x), 16)])
            x = outputs[key]
        m = evaluate_pairs(None, x, s["clean"], device, batch=16, which=which)
        out[name] = {**{k: float(v.mean()) for k, v in m.items()}, "per_image": {k: v.tolist() for k, v in m.items()}}
    return out


def checkpoint_name(name: str, seed_index: int) -> str:
    """``<model>.pt`` for the first seed, ``<model>.seed<k>.pt`` for the others."""
    return f"{name}.pt" if seed_index == 0 else f"{name}.seed{seed_index}.pt"


def selection_scores(model: nn.Module, sets: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Validation PSNR-Y on each of :data:`SELECT_DOMAINS` and their mean (:data:`SELECT_KEY`), which chooses
    checkpoints and learning rates."""
    r = evaluate_model(model, {d: sets[d] for d in SELECT_DOMAINS if d in sets}, str(next(model.parameters()).device),
                       which=("psnr_y",))  # the only metric that selects: SSIM would cost time for nothing
    out = {f"val_{d}_psnr_y": r[d]["psnr_y"] for d in r}
    out[SELECT_KEY] = sum(out.values()) / len(out)
    return out


def masked_denoising_step(model: nn.Module, batch: dict, noise: float = 0.1, block: int = 8,
                          share: float = 0.25) -> torch.Tensor:
    """The ``ssl-minority`` pretext task: restore the image from a copy with Gaussian noise (``noise``) and a random
    ``share`` of ``block`` px blocks set to the image's mean; L1 to the image itself (no other label exists)."""
    x = batch["rainy"]
    n, _, h, w = x.shape
    keep = (torch.rand(n, 1, -(-h // block), -(-w // block), device=x.device) >= share).to(x.dtype)
    keep = F.interpolate(keep, scale_factor=block, mode="nearest")[..., :h, :w]
    corrupted = (x + noise * torch.randn_like(x)) * keep + x.mean((1, 2, 3), keepdim=True) * (1 - keep)
    return F.l1_loss(model(corrupted).float(), x)


def ssl_pretrain(cfg: dict, seed: int, device: str, spec: dict, run_dir, real_dir=None, clean_dir=None,
                 resume: bool = False, progress: bool = True, budget: float = 1.0) -> tuple[nn.Module, dict]:
    """The ``ssl-minority`` start: a network of the student's ``spec`` trained by :func:`masked_denoising_step` on the
    unlabeled real-domain images the teachers and the distillation learn from (train split), for the same number of
    steps as T1, T2 and the distillation together (``budget`` times ``t1_steps + t2_steps + d_steps``), at their
    batch, crop and learning rate. Returns the network and the engine's log."""
    from .engine import TrainConfig, train
    from .models import build_model

    data = RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_scenes"], seed=seed, split="train", real_dir=real_dir,
                               clean_dir=clean_dir, photo_size=cfg["photo_size"])
    torch.manual_seed(seed)
    model = build_model(spec)
    steps = max(1, round(budget * (cfg["t1_steps"] + cfg["t2_steps"] + cfg["d_steps"])))
    tc = TrainConfig(steps=steps, batch=cfg["t_batch"], lr=2e-3, seed=seed, device=device,
                     ckpt_every=max(1, steps // 5), progress=progress, desc="ssl pretraining (masked denoising)")
    log = train(model, data, masked_denoising_step, tc, run_dir=run_dir, resume=resume)
    return model.cpu().eval(), log


def _trial_lr(recipe: Recipe, chosen: dict[str, float], cfg: dict) -> tuple[float, str]:
    """The learning rate a non-searched row trains at: its parent's choice (``f_lr`` without a parent, or when the
    parent did not run)."""
    if recipe.parent in chosen:
        return chosen[recipe.parent], f"parent {recipe.parent}"
    return cfg["f_lr"], "f_lr" if recipe.parent is None else f"f_lr (parent {recipe.parent} not run)"


def run_finetuning(cfg: dict, seed: int, device: str, student_path, teachers_dir, out_dir, real_dir=None,
                   clean_dir=None, synthetic_dir=None, resume: bool = False, progress: bool = True,
                   only: list[str] | None = None, public_dir=None) -> dict[str, Any]:
    """Train every row of :func:`recipes` (or those named in ``only``) on :func:`training_pool` (with
    ``public_dir``'s training pairs) and score each on the validation sets.

    Rows with ``tune`` first search the learning rate: the first ``f_search_draws`` draws (seeds) at each lr of
    ``f_lr_grid``, every trial's checkpoint chosen by validation (:func:`selection_scores`); the lr whose chosen
    checkpoints score highest on average over those draws trains the row's other seeds, and its search trials are
    the row's first seeds. Other rows take their parent's lr. Every run ends with its best
    validation checkpoint. The pretrained starts (distillation variants, ``ssl``), the search's trials and then the
    other runs each go to ``f_workers`` CPU workers (:mod:`ttl.parallel`, longest first; the plan is returned as
    ``"workers"``). Seeds of a row are ``seed, seed + 1, ...``. Checkpoints go to
    ``{out_dir}/checkpoints/`` (see :func:`checkpoint_name`; each loads alone with
    :func:`ttl.models.load_model`), engine runs to ``{out_dir}/runs/<model>/...``. Returns ``{"rows": {name: recipe},
    "runs": {name: [per-seed results]}, "search": {name: trials and choice}, "input": input scores, ...}``."""
    from pathlib import Path

    from .distill import distil, load_teachers
    from .engine import is_main
    from .heldout import split_validation, validation_sets  # here, not at the top: ttl.heldout imports this module
    from .models import RestorationNet, count_params, load_model, save_model
    from .parallel import run_jobs, worker_plan

    out_dir = Path(out_dir)
    rows = [r for r in recipes(cfg) if only is None or r.name in only]
    pairs = training_pool(cfg, seed, clean_dir, synthetic_dir, public_dir)
    small, val = split_validation(validation_sets(cfg, seed, clean_dir, synthetic_dir), cfg["f_val_select"])
    validate = lambda m: selection_scores(m, small)  # noqa: E731

    t1, t2 = load_teachers(teachers_dir)
    student_path = Path(student_path)
    if not student_path.is_file():
        raise FileNotFoundError(f"{student_path} not found: run notebook 03 first (make study, or ttl study "
                                "--notebooks 03) or pass student_path")
    student_spec = load_model(student_path)[0].spec
    inits: dict[str, Callable[..., nn.Module]] = {  # "scratch" takes the context flag
        "student": lambda: load_model(student_path)[0],
        "t2": lambda: load_model(Path(teachers_dir) / "t2.pt")[0],
        "scratch": lambda context: RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"],
                                                  blocks=t2.spec["blocks"], context=context),
        "scratch-large": lambda: RestorationNet(width=t2.spec["width"], depth=t2.spec["depth"],
                                                blocks=t2.spec["blocks"], context=t2.spec.get("context", False)),
    }
    plan = worker_plan(cfg["f_workers"], resolve_device(device))
    variants = {"student-t1": ({"use_t1": True, "use_t2": False}, {}),  # init -> (teachers, preset overrides)
                "student-t2": ({"use_t1": False, "use_t2": True}, {}),
                "student-target-ms": ({}, {"d_norm": "target-ms"})}

    def pretrain(init: str) -> tuple[str, dict]:  # a start other than notebook 03's student, saved for the parent
        if init == "ssl":
            net, log = ssl_pretrain(cfg, seed, device, student_spec, out_dir / "runs" / "ssl-pretraining", real_dir,
                                    clean_dir, resume, progress=progress and plan["workers"] <= 1)
            path = out_dir / "runs" / "ssl-pretraining" / "start.pt"
        else:
            kw, over = variants[init]
            d, log, _, _ = distil(t1, t2, dict(cfg, **over), seed, device, out_dir / "runs" / f"distil-{init}",
                                  real_dir, resume, progress=progress and plan["workers"] <= 1,
                                  desc=f"distillation ({init})", clean_dir=clean_dir, **kw)
            net, path = d.student, out_dir / "runs" / f"distil-{init}" / "start.pt"
        save_model(path, net.cpu().eval())
        return str(path), log

    needed = [i for i in (*variants, "ssl") if any(r.init == i for r in rows)]
    pre_logs: dict[str, dict] = {}
    starts: dict[str, nn.Module] = {}  # the pretrained starts other than notebook 03's student (ttl.transfer reads them)
    for init, (path, log) in zip(needed, run_jobs(pretrain, [(i,) for i in needed], plan, "pretrained starts",
                                                  progress)):
        pre_logs[init], starts[init] = log, load_model(path)[0]
        spec, state = dict(starts[init].spec), {k: v.clone() for k, v in starts[init].state_dict().items()}
        inits[init] = lambda state=state, spec=spec: _rebuild(spec, state)
    unlabeled: Dataset = RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_scenes"], seed=seed, split="train",
                                             real_dir=real_dir, clean_dir=clean_dir, photo_size=cfg["photo_size"])
    if any(r.semi for r in rows):  # a fixed pool, like a folder of unlabeled photographs (rendered once)
        unlabeled = UnlabeledPool(unlabeled)

    calib = start_batch(pairs)  # sets every pretrained start's layer scales (training inputs only)
    by_name = {r.name: r for r in rows}

    def train_one(name: str, k: int, lr: float) -> tuple[str, dict, dict]:
        """Seed ``k`` of a row at ``lr``: its best-validation weights (saved in its run folder), log and scores."""
        r, s = by_name[name], seed + k
        run_dir = run_path(out_dir, name, lr, k)
        torch.manual_seed(s)
        context = t2.spec.get("context", False) if r.context is None else r.context
        model = inits[r.init](context) if r.init == "scratch" else inits[r.init]()
        scale = {} if r.init.startswith("scratch") else prepare_start(model, cfg, calib, s)
        log = finetune(model, pairs, r, cfg, s, device, run_dir, unlabeled=unlabeled if r.semi else None,
                       validate=validate, resume=resume, progress=progress and plan["workers"] <= 1, lr=lr)
        log["start_scale"] = scale  # the per-layer factors prepare_start applied (empty for scratch rows)
        model = model.cpu().eval()
        save_model(run_dir / "best.pt", model)
        return str(run_dir / "best.pt"), log, evaluate_model(model, val)

    def cost(job: tuple) -> float:  # the longest jobs go first, so that the workers finish together
        r = by_name[job[0]]
        return recipe_steps(r, cfg) * (2.5 if r.init in ("scratch-large", "t2") else 1) * (1.7 if r.semi else 1)

    def run_all(jobs: list[tuple], desc: str) -> dict[tuple, tuple]:
        jobs = sorted(jobs, key=cost, reverse=True)
        return dict(zip(jobs, run_jobs(train_one, jobs, plan, desc, progress,
                                       label=lambda j: f"{j[0]} draw {j[1]}, lr {j[2]:g}")))

    n_search = cfg["f_search_draws"]
    grid = list(cfg["f_lr_grid"])
    searched = {r.name: min(n_search, r.seeds) for r in rows if r.tune}
    done = run_all([(name, k, lr) for name, n in searched.items() for lr in grid for k in range(n)],
                   "learning-rate search")
    chosen: dict[str, float] = {}
    search: dict[str, dict[str, Any]] = {}
    for name, n in searched.items():  # the lr whose trials score highest on average over the search's draws
        trials = [{"lr": lr, "draw": k, "seed": seed + k, "best_step": done[(name, k, lr)][1]["best"]["step"],
                   "best": done[(name, k, lr)][1]["best"]["value"],
                   "curve": done[(name, k, lr)][1]["val"]}  # every validation: the selection key and each PSNR-Y
                  for lr in grid for k in range(n)]
        mean_best = {lr: sum(t["best"] for t in trials if t["lr"] == lr) / n for lr in grid}
        mean_best = {lr: -math.inf if math.isnan(v) else v for lr, v in mean_best.items()}  # a diverged trial loses
        lr = max(grid, key=lambda v: mean_best[v])  # ties: the first of the grid
        chosen[name] = lr
        search[name] = {"grid": grid, "draws": n, "trials": trials,
                        "mean_best": {f"{v:g}": mean_best[v] for v in grid}, "lr": lr,
                        "step": done[(name, 0, lr)][1]["best"]["step"], "select": SELECT_KEY,
                        "select_images": len(next(iter(small.values()))["rainy"]), "lr_source": "search"}
    for r in rows:
        if not r.tune:
            lr, source = _trial_lr(r, chosen, cfg)
            search[r.name] = {"lr": lr, "lr_source": source,
                              **({"grid": search[r.parent]["grid"]} if r.parent in chosen else {})}
    # the chosen lr's search trials are those draws of the row; every other draw trains now
    done.update(run_all([(r.name, k, search[r.name]["lr"]) for r in rows for k in range(r.seeds)
                         if (r.name, k, search[r.name]["lr"]) not in done], "chosen configurations"))
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        lr = search[r.name]["lr"]
        runs[r.name] = []
        for k in range(r.seeds):
            path, log, scores = done[(r.name, k, lr)]
            model = load_model(path)[0].requires_grad_(True)
            ckpt = out_dir / "checkpoints" / checkpoint_name(r.name, k)
            if is_main():
                save_model(ckpt, model, recipe=r.name, seed=seed + k, fraction=r.fraction, init=r.init, lr=lr,
                           step=log["best"]["step"])
            runs[r.name].append({"seed": seed + k, "checkpoint": str(ckpt), "log": log, "params": count_params(model),
                                 "context": bool(model.spec.get("context", False)), "lr": lr,
                                 "step": log["best"]["step"], "val": scores})
    return {"rows": by_name, "runs": runs, "search": search, "input": evaluate_model(None, val),
            "pretraining_logs": pre_logs, "starts": starts, "val": val, "val_select": small, "pairs": pairs,
            "workers": plan,
            "manifest": {"pairs": pairs.manifest(), "unlabeled_real_domain": unlabeled.manifest(),
                         "student": str(student_path), "teachers": str(teachers_dir)}}


def start_batch(pairs: FixedPairs, n: int = 16, size: int = 128, seed: int = 123) -> torch.Tensor:
    """The batch that sets a pretrained start's layer scales (:func:`prepare_start`): centre ``size`` crops of ``n``
    training inputs drawn with a fixed seed (training data only; nothing held out); smaller where an input is."""
    g = torch.Generator().manual_seed(seed)
    images = [pairs.rainy[i] for i in torch.randperm(len(pairs), generator=g)[:n].tolist()]
    s = min(size, *(min(x.shape[-2:]) for x in images))
    crops = []
    for x in images:
        h, w = x.shape[-2:]
        crops.append(x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].float() / 255)
    return torch.stack(crops)


def prepare_start(model: nn.Module, cfg: dict, calib: torch.Tensor, seed: int) -> dict[str, float]:
    """Make a pretrained network a fine-tuning start, in place: zero its output head (``f_reset_head``) and rescale
    each layer to the output RMS of the same layer of a fresh network of its architecture initialised with ``seed``,
    on ``calib`` (``f_rescale_start``; see :func:`start_batch`). The global random state is left as it was. Returns
    the per-layer factors (empty when not rescaled)."""
    from .models import build_model, match_layer_scale

    if cfg["f_reset_head"] and hasattr(model, "head"):
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
    if not cfg.get("f_rescale_start", False):
        return {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_model(model.spec)
    return match_layer_scale(model, fresh, calib)


def run_path(out_dir, row: str, lr: float, draw: int):
    """Where one training run of a row lives: its learning rate is part of the path, so a resumed study never
    continues a run that was trained at another rate (the engine also refuses, see ``ttl.engine.RUN_DEFINING``)."""
    from pathlib import Path

    return Path(out_dir) / "runs" / row / f"lr{lr:g}" / f"seed{draw}"


def _rebuild(spec: dict, state: dict) -> nn.Module:
    from .models import build_model

    m = build_model(spec)
    m.load_state_dict(state)
    return m


# ------------------------------------------------------------------------------------------- examples
@torch.no_grad()
def example_rows(data: dict[str, torch.Tensor], checkpoints: dict[str, Any], n: int = 4,
                 target: str = "clean") -> dict[str, list]:
    """Rows for :func:`ttl.plots.image_grid`: the first ``n`` rainy inputs, each model's output (loaded from its
    saved checkpoint) and the targets, labelled ``target`` (e.g. ``"streak-free target"`` for realistic rain)."""
    from .models import load_model

    x = data["rainy"][:n]
    rows = {"rainy input": list(x)}
    for name, path in checkpoints.items():
        rows[name] = list(load_model(path)[0](x).clamp(0, 1))
    rows[target] = list(data["clean"][:n])
    return rows
