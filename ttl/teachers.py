"""The connected tasks and their teachers (notebook 02; STUDY §4). Only real-domain data reach them.

* **T1, rain recognition** — is this image rainy? Positives are real-domain rainy images
  (:class:`ttl.datasets.RealDomainUnlabeled`: real rainy photographs and realistic rain rendered on the clean
  photographs of the train split, so that scenes appear in both classes and T1 learns rain, not the collection).
  Negatives are the rain-free train photographs through the same camera (noise, tone curve, JPEG), so that T1
  must find rain, not sensor artefacts. A label "rainy / rain-free" is free; no pairing of a rainy image with its
  clean scene ever reaches training (the positives' dataset cannot return one). Without photographs, procedural
  scenes of a disjoint scene seed are the negatives.
* **T2, rain-scattering reconstruction** — undo veiling, forward-scattering blur and glow. The input is a
  real-domain rainy image further degraded by :func:`ttl.rain.rain_scattering`; the target is that rainy image
  itself: the label is free and no clean image is involved.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import RealDomainUnlabeled
from .rain import RealisticRain, ScatteringConfig, rain_scattering
from .scenes import dead_leaves
from .stats import auc
from .train import evaluate_pairs
from .utils import generator, seed_of

__all__ = ["RecognitionDataset", "ScatteringDataset", "camera_only", "recognition_step", "scattering_step",
           "evaluate_recognition", "evaluate_scattering", "same_scene_recognition_set", "real_recognition_set",
           "train_teachers"]

NEGATIVE_SEED_OFFSET = 7_919  # negatives come from another scene seed: never the positives' scenes


def camera_only(renderer: RealisticRain) -> RealisticRain:
    """The same camera (noise, tone curve, JPEG) with no rain at all: no streaks, no scattering."""
    cfg = copy.deepcopy(renderer.config)
    cfg.density = 1e-12
    cfg.scattering = ScatteringConfig(beta=0.0, airlight=cfg.scattering.airlight, airlight_tint=0.0,
                                      forward_blur=0.3, glow=0.0, crf_gamma=cfg.scattering.crf_gamma)
    return RealisticRain(cfg)


class RecognitionDataset(Dataset):
    """``{"image", "label"}``: even items are rainy (label 1) from ``positives``, odd items rain-free (label 0)
    procedural scenes of a disjoint scene seed through the same camera (or images of ``negatives_dir``)."""

    def __init__(self, positives: RealDomainUnlabeled, n_negative_scenes: int | None = None,
                 negatives_dir=None):
        self.pos = positives
        self.camera = camera_only(positives.renderer)
        self.neg_seed = positives.seed + NEGATIVE_SEED_OFFSET
        self.n_neg = n_negative_scenes or positives.n
        self.neg_bank = None
        if negatives_dir is not None:
            from .datasets import SceneBank

            self.neg_bank = SceneBank("folder", positives.split, positives.size, folder=negatives_dir,
                                      photo_size=positives.photo_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.pos.set_epoch(epoch)

    def __len__(self) -> int:
        return 2 * len(self.pos)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        pos_idx = [i // 2 for i in idx if i % 2 == 0]
        neg_idx = [i // 2 for i in idx if i % 2 == 1]
        pos = iter(self.pos.__getitems__(pos_idx)) if pos_idx else iter(())
        neg = iter(self._negatives(neg_idx)) if neg_idx else iter(())
        return [{"image": next(pos)["rainy"], "label": torch.tensor(1.0)} if i % 2 == 0 else
                {"image": next(neg), "label": torch.tensor(0.0)} for i in idx]

    def _negatives(self, idx: list[int]) -> list[torch.Tensor]:
        g = generator(seed_of(self.neg_seed, self.epoch, *idx))
        if self.neg_bank is not None:
            scenes = [self.neg_bank.get(i, g) for i in idx]
            img, depth = torch.stack([s[0] for s in scenes]), torch.stack([s[1] for s in scenes])
            return list(self.camera(img, g, depth, scale=self.neg_bank.scale).rainy)
        scenes = [dead_leaves(1, self.pos.size, seed=self.neg_seed, split=self.pos.split, start=i % self.n_neg)
                  for i in idx]
        img, depth = torch.cat([s[0] for s in scenes]), torch.cat([s[1] for s in scenes])
        return list(self.camera(img, g, depth).rainy)


class ScatteringDataset(Dataset):
    """``{"input", "target"}``: a real-domain rainy image degraded by rain scattering, and the image itself."""

    def __init__(self, images: RealDomainUnlabeled, scattering: ScatteringConfig | None = None):
        self.images, self.scattering = images, scattering or ScatteringConfig()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.images.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        target = torch.stack([it["rainy"] for it in self.images.__getitems__(idx)])
        g = generator(seed_of(self.images.seed, 11, self.epoch, *idx))
        degraded = rain_scattering(target, None, g, self.scattering).rainy
        return [{"input": degraded[k], "target": target[k]} for k in range(len(idx))]


def same_scene_recognition_set(clean_dir, split: str, size: int, seed: int, photo_size: int, n: int | None = None,
                               renderer: RealisticRain | None = None) -> dict[str, torch.Tensor]:
    """T1's held-out test (a): one random crop of each clean photograph of ``split``, once through the camera alone
    (label 0) and once with realistic rain (label 1) — the same scenes in both classes, so only rain tells them
    apart. ``{"image", "label", "scene"}`` stacked (scene = index of the photograph)."""
    from .datasets import SceneBank

    renderer = renderer or RealisticRain()
    bank = SceneBank("folder", split, size, folder=clean_dir, photo_size=photo_size)
    g = generator(seed_of(seed, 29))
    k = len(bank) if n is None else min(n, len(bank))
    scenes = [bank.get(i, g) for i in range(k)]
    img, depth = torch.stack([s[0] for s in scenes]), torch.stack([s[1] for s in scenes])
    rainy = renderer(img, g, depth, scale=bank.scale).rainy
    dry = camera_only(renderer)(img, g, depth, scale=bank.scale).rainy
    return {"image": torch.cat([dry, rainy]), "label": torch.cat([torch.zeros(k), torch.ones(k)]),
            "scene": torch.cat([torch.arange(k), torch.arange(k)])}


def real_recognition_set(real_dir, clean_dir, split: str, size: int, seed: int, photo_size: int
                         ) -> dict[str, torch.Tensor]:
    """T1's held-out test (b): one random crop of each real rainy photograph of ``split`` (label 1) and of each clean
    photograph of ``split`` (label 0), both at the working scale; no rendering at all."""
    from .datasets import split_paths
    from .scenes import load_photo, random_crop

    g = generator(seed_of(seed, 31))
    imgs, labels = [], []
    for label, folder, name in ((1.0, real_dir, "real_dir"), (0.0, clean_dir, "clean_dir")):
        for p in split_paths(folder, split, name):
            imgs.append(random_crop(load_photo(p, max(photo_size, size), min_size=size), size, g)[0])
            labels.append(label)
    return {"image": torch.stack(imgs), "label": torch.tensor(labels)}


def recognition_step(model: nn.Module, batch: dict) -> torch.Tensor:
    """Binary cross-entropy of T1's logit."""
    return F.binary_cross_entropy_with_logits(model(batch["image"]).float(), batch["label"].float())


def scattering_step(model: nn.Module, batch: dict) -> torch.Tensor:
    """MSE of T2's reconstruction (see :mod:`ttl.train` for why MSE)."""
    return F.mse_loss(model(batch["input"]).float(), batch["target"])


def _stack(data: Dataset, n: int) -> dict[str, torch.Tensor]:
    items = data.__getitems__(list(range(min(n, len(data)))))
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@torch.no_grad()
def evaluate_recognition(model: nn.Module, data: Dataset | dict, n: int = 256, batch: int = 32) -> dict[str, Any]:
    """Accuracy (threshold 0.5) and ROC-AUC of T1 on the first ``n`` items of ``data`` (a dataset, or stacked
    ``{"image", "label"}`` tensors)."""
    b = data if isinstance(data, dict) else _stack(data, n)
    model.eval()
    dev = next(model.parameters()).device
    logits = torch.cat([model(b["image"][k:k + batch].to(dev)).float().cpu() for k in range(0, len(b["image"]), batch)])
    y = b["label"].numpy().astype(bool)
    pred = (logits.numpy() > 0)
    return {"accuracy": float((pred == y).mean()), "roc_auc": auc(logits.numpy(), y), "n": int(len(y)),
            "per_item_correct": (pred == y).astype(int).tolist(), "scores": logits.numpy().tolist(),
            "labels": y.astype(int).tolist()}


@torch.no_grad()
def evaluate_scattering(model: nn.Module, data: Dataset, n: int = 64, batch: int = 16) -> dict[str, Any]:
    """PSNR-Y/SSIM-Y of T2's reconstructions (and of the degraded input) on the first ``n`` items."""
    b = _stack(data, n)
    dev = str(next(model.parameters()).device)
    m_out = evaluate_pairs(model, b["input"], b["target"], dev, batch)
    m_in = evaluate_pairs(None, b["input"], b["target"], dev, batch)
    return {"psnr_y": m_out["psnr_y"].numpy().tolist(), "ssim_y": m_out["ssim_y"].numpy().tolist(),
            "input_psnr_y": m_in["psnr_y"].numpy().tolist(), "input_ssim_y": m_in["ssim_y"].numpy().tolist(),
            "mean_psnr_y": float(np.mean(m_out["psnr_y"].numpy())),
            "mean_input_psnr_y": float(np.mean(m_in["psnr_y"].numpy()))}


def train_teachers(cfg: dict, seed: int, device: str, run_root, real_dir=None, clean_dir=None, resume: bool = False,
                   progress: bool = True) -> dict[str, Any]:
    """Build both connected-task datasets (train and test splits), train T1 and T2 through the engine
    (checkpoints under ``run_root/t1`` and ``run_root/t2``; ``resume=False`` starts afresh) and evaluate them on
    held-out data. With photographs, T1 is also reported separately on (a) the same test scenes clean vs with
    realistic rain and (b) real rainy vs clean test photographs. Returns models, logs, evaluations and the data
    manifest."""
    from pathlib import Path

    from .engine import TrainConfig, train
    from .models import RecognitionNet, RestorationNet

    def real(split, n, folder):
        return RealDomainUnlabeled(cfg["t_patch"], n=n, seed=seed, split=split, real_dir=folder, clean_dir=clean_dir,
                                   photo_size=cfg["photo_size"])

    # T1 needs rain-free negatives like its positives: real photographs as positives only with clean_dir
    t1_real = real_dir if clean_dir is not None else None
    t1_data = RecognitionDataset(real("train", cfg["t_scenes"], t1_real), negatives_dir=clean_dir)
    t1_test = RecognitionDataset(real("test", cfg["t_eval"], t1_real), negatives_dir=clean_dir)
    t2_data = ScatteringDataset(real("train", cfg["t_scenes"], real_dir))
    t2_test = ScatteringDataset(real("test", cfg["t_eval"], real_dir))
    out: dict[str, Any] = {"manifest": {"t1_positives": t1_data.pos.manifest(), "t1_negatives": {
        "source": "clean_dir (camera only)" if clean_dir else "procedural, disjoint scene seed",
        "seed": t1_data.neg_seed}, "t2_images": t2_data.images.manifest()}}
    jobs = {"t1": (RecognitionNet, t1_data, recognition_step, cfg["t1_steps"], lambda m: {
                "val_roc_auc": evaluate_recognition(m, t1_test, n=min(64, cfg["t_eval"]))["roc_auc"]}),
            "t2": (RestorationNet, t2_data, scattering_step, cfg["t2_steps"], lambda m: {
                "val_psnr_y": evaluate_scattering(m, t2_test, n=min(32, cfg["t_eval"]))["mean_psnr_y"]})}
    for name, (cls, data, step, steps, val) in jobs.items():  # learning rates: the preset's t1_lr, t2_lr
        run_dir = Path(run_root) / name
        torch.manual_seed(seed)
        model = cls(width=cfg["t_width"], depth=cfg["t_depth"],
                    **({"context": cfg["context"]} if cls is RestorationNet else {}))
        tc = TrainConfig(steps=steps, batch=cfg["t_batch"], lr=cfg[f"{name}_lr"], val_every=max(1, steps // 5),
                         ckpt_every=max(1, steps // 5), seed=seed, device=device, progress=progress, desc=name)
        out[f"{name}_log"] = train(model, data, step, tc, run_dir=run_dir, validate=val, resume=resume)
        out[name] = model.cpu().eval()
    out["t1_eval"] = evaluate_recognition(out["t1"], t1_test, n=cfg["t_eval"])
    if clean_dir is not None:
        out["t1_same_scenes"] = evaluate_recognition(out["t1"], same_scene_recognition_set(
            clean_dir, "test", cfg["t_patch"], seed, cfg["photo_size"]))
        if real_dir is not None:
            out["t1_real_vs_clean"] = evaluate_recognition(out["t1"], real_recognition_set(
                real_dir, clean_dir, "test", cfg["t_patch"], seed, cfg["photo_size"]))
    out["t2_eval"] = evaluate_scattering(out["t2"], t2_test, n=cfg["t_eval"])
    out["examples"] = {"t1": _stack(t1_test, 8), "t2": _stack(t2_test, 4)}
    return out
