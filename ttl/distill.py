"""Knowledge distillation of both frozen teachers into one student (notebook 03; STUDY §5).

The student (:class:`ttl.models.RestorationNet`, narrower than the teachers) sees unlabeled real-domain
images only. Light 1x1 adapters map its features onto the teachers': its encoder stages onto T1's encoder
stages and onto T2's encoder stages, its decoder stages onto T2's decoder stages; its output is matched to
T2's output. How a feature term compares the two (``d_norm`` of the preset, :data:`FEATURE_LOSSES`):

- ``"standardise"`` (the study's): both the adapted student feature and the teacher feature are standardised per
  image (zero mean, unit variance over channels and pixels) before the mean squared error. The term is blind to
  the scale of either side, so nothing pushes the student's activations away from the scale fine-tuning starts
  from.
- ``"target-ms"`` (the study before 2026-12-03): the mean squared error divided by the teacher feature's mean
  square. The adapter must reproduce the teachers' raw scale, and the distilled student's deep activations grew
  to 38-230x those of a fresh network (``make diagnose``, README ledger).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import Adapters, RecognitionNet, RestorationNet
from .stats import _fit_logistic

__all__ = ["Distiller", "FEATURE_LOSSES", "distillation_losses", "linear_probe", "distil", "load_teachers", "run_distillation"]


class Distiller(nn.Module):
    """The student and its adapters, with the frozen teachers beside them (not trained, not saved with it)."""

    def __init__(self, student: RestorationNet, t1: RecognitionNet, t2: RestorationNet, use_t1: bool = True,
                 use_t2: bool = True, output_weight: float = 1.0, norm: str = "standardise"):
        super().__init__()
        if norm not in FEATURE_LOSSES:
            raise ValueError(f"unknown feature loss {norm!r}; use one of {sorted(FEATURE_LOSSES)}")
        self.norm = norm
        self.student = student
        s_enc, s_dec = student.encoder.channels, student.decoder.channels
        self.to_t1 = Adapters(s_enc, t1.encoder.channels) if use_t1 else None
        self.to_t2_enc = Adapters(s_enc, t2.encoder.channels) if use_t2 else None
        self.to_t2_dec = Adapters(s_dec, t2.decoder.channels) if use_t2 else None
        self.teachers = [t.eval().requires_grad_(False) for t in (t1, t2)]  # a list: not submodules
        self.output_weight = output_weight

    def to(self, *args, **kwargs):
        for t in self.teachers:
            t.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return distillation_losses(self, x)


def _nmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b) / (b.pow(2).mean() + 1e-6)


def _standardised(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    mu = x.mean((1, 2, 3), keepdim=True)
    return (x - mu) / (x.var((1, 2, 3), keepdim=True, unbiased=False) + 1e-6).sqrt()


def _standardised_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(_standardised(a), _standardised(b))


FEATURE_LOSSES = {"standardise": _standardised_mse, "target-ms": _nmse}


def distillation_losses(d: Distiller, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every matching term for a batch of rainy images ``x`` and their weighted sum (``"total"``)."""
    fs = d.student.features(x)
    t1, t2 = d.teachers
    losses: dict[str, torch.Tensor] = {}
    term = FEATURE_LOSSES[getattr(d, "norm", "standardise")]
    with torch.no_grad():
        f1 = t1.features(x) if d.to_t1 is not None else None
        f2 = t2.features(x) if d.to_t2_enc is not None else None
    if f1 is not None:
        losses["t1_enc"] = sum(term(a, b) for a, b in zip(d.to_t1(fs["enc"]), f1["enc"])) / len(f1["enc"])
    if f2 is not None:
        losses["t2_enc"] = sum(term(a, b) for a, b in zip(d.to_t2_enc(fs["enc"]), f2["enc"])) / len(f2["enc"])
        losses["t2_dec"] = sum(term(a, b) for a, b in zip(d.to_t2_dec(fs["dec"]), f2["dec"])) / len(f2["dec"])
        losses["t2_out"] = F.mse_loss(fs["out"], f2["out"])
    losses["total"] = sum(v * (d.output_weight if k == "t2_out" else 1.0) for k, v in losses.items())
    return losses


@torch.no_grad()
def _pooled(model: nn.Module, images: torch.Tensor, batch: int = 32) -> np.ndarray:
    enc = model.encoder if hasattr(model, "encoder") else model
    return torch.cat([enc(images[k:k + batch])[-1].mean((-2, -1)) for k in range(0, len(images), batch)]).double().numpy()


def linear_probe(model: nn.Module, train: dict[str, torch.Tensor], test: dict[str, torch.Tensor],
                 l2: float = 1e-2) -> dict[str, Any]:
    """How much rain recognition a frozen encoder holds: logistic regression on its pooled last-stage
    features, fitted on ``train`` (``image``/``label``) and scored on ``test`` (accuracy, per-item correct)."""
    xtr, xte = _pooled(model, train["image"]), _pooled(model, test["image"])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    w = _fit_logistic(torch.from_numpy((xtr - mu) / sd), train["label"].double(), l2)
    xe = torch.from_numpy((xte - mu) / sd)
    logits = (torch.cat([xe, torch.ones(len(xe), 1, dtype=torch.float64)], 1) @ w).numpy()
    correct = ((logits > 0) == test["label"].numpy().astype(bool)).astype(int)
    return {"accuracy": float(correct.mean()), "per_item_correct": correct.tolist(), "scores": logits.tolist(),
            "labels": test["label"].numpy().astype(int).tolist()}


def distil(t1: RecognitionNet, t2: RestorationNet, cfg: dict, seed: int, device: str, run_dir, real_dir=None,
           resume: bool = False, use_t1: bool = True, use_t2: bool = True, progress: bool = True,
           desc: str = "distillation", clean_dir=None) -> tuple[Distiller, dict[str, Any], Any, torch.Tensor]:
    """Distil the frozen teachers into a new student of width ``s_width`` on unlabeled real-domain images (train
    split: real rainy photographs of ``real_dir`` and realistic rain on the clean photographs of ``clean_dir``) for
    ``d_steps`` steps, comparing features as ``d_norm`` says (:data:`FEATURE_LOSSES`). ``use_t1``/``use_t2`` switch a
    teacher off (the ablations of notebook 04). The teachers' weight digests, the teachers used and ``d_norm`` are
    the run's ``identity``: a checkpoint distilled from other teachers is not resumed. Returns the distiller (student inside), the engine's log, the training images and held-out test images."""
    from .datasets import RealDomainUnlabeled
    from .engine import TrainConfig, state_digest, train
    from .teachers import _stack

    if not (use_t1 or use_t2):
        raise ValueError("distillation needs at least one teacher (use_t1 or use_t2)")
    torch.manual_seed(seed)
    student = RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"], blocks=t2.spec["blocks"],
                             context=t2.spec.get("context", False))
    distiller = Distiller(student, t1, t2, use_t1=use_t1, use_t2=use_t2, norm=cfg.get("d_norm", "standardise"))
    data = RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_scenes"], seed=seed, split="train", real_dir=real_dir,
                               clean_dir=clean_dir, photo_size=cfg["photo_size"])
    test_images = _stack(RealDomainUnlabeled(cfg["t_patch"], n=cfg["t_eval"], seed=seed, split="test",
                                             real_dir=real_dir, clean_dir=clean_dir, photo_size=cfg["photo_size"]),
                         cfg["t_eval"])["rainy"]

    def validate(d):
        with torch.no_grad():
            return {"val_" + k: float(v) for k, v in distillation_losses(d, test_images[:32].to(
                next(d.parameters()).device)).items()}

    tc = TrainConfig(steps=cfg["d_steps"], batch=cfg["t_batch"], lr=2e-3, val_every=max(1, cfg["d_steps"] // 5),
                     ckpt_every=max(1, cfg["d_steps"] // 5), seed=seed, device=device, progress=progress, desc=desc,
                     identity=f"t1 {state_digest(t1) if use_t1 else '-'}, t2 {state_digest(t2) if use_t2 else '-'}, "
                              f"d_norm {distiller.norm}")
    log = train(distiller, data, lambda d, b: d(b["rainy"])["total"], tc, run_dir=run_dir, validate=validate,
                resume=resume)
    return distiller.cpu().eval(), log, data, test_images


def _fresh_student(student: RestorationNet, seed: int) -> RestorationNet:
    from .models import build_model

    torch.manual_seed(seed)
    return build_model(student.spec).eval()


def load_teachers(teachers_dir) -> tuple[RecognitionNet, RestorationNet]:
    """T1 and T2 from ``teachers_dir`` (``t1.pt``, ``t2.pt``), with a clear error when notebook 02 has not run."""
    from pathlib import Path

    from .models import load_model

    teachers_dir = Path(teachers_dir)
    for name in ("t1", "t2"):
        if not (teachers_dir / f"{name}.pt").is_file():
            raise FileNotFoundError(f"{teachers_dir / (name + '.pt')} not found: run notebook 02 first "
                                    "(make study, or ttl study --notebooks 02) or pass teachers_dir")
    return load_model(teachers_dir / "t1.pt")[0], load_model(teachers_dir / "t2.pt")[0]


def run_distillation(cfg: dict, seed: int, device: str, teachers_dir, run_dir, real_dir=None, resume: bool = False,
                     progress: bool = True, clean_dir=None) -> dict[str, Any]:
    """Load T1 and T2 from ``teachers_dir``, distil them into a student (:func:`distil`) and evaluate on the
    held-out test split: matching losses, the student on T2's task, and a linear probe of its encoder on T1's
    task (T1's own encoder probed the same way as the reference above, a randomly initialised student as the
    reference below)."""
    from .datasets import RealDomainUnlabeled
    from .teachers import RecognitionDataset, ScatteringDataset, _stack, evaluate_scattering

    t1, t2 = load_teachers(teachers_dir)
    distiller, log, data, test_images = distil(t1, t2, cfg, seed, device, run_dir, real_dir, resume, progress=progress,
                                               clean_dir=clean_dir)

    def real(split, n, folder=real_dir):
        return RealDomainUnlabeled(cfg["t_patch"], n=n, seed=seed, split=split, real_dir=folder, clean_dir=clean_dir,
                                   photo_size=cfg["photo_size"])

    with torch.no_grad():
        held_out = {k: float(v) for k, v in distillation_losses(distiller, test_images).items()}
    scat_test = ScatteringDataset(real("test", cfg["t_eval"]))
    # T1's task as T1 learned it (see ttl.teachers.train_teachers): real photographs only with clean negatives
    t1_real = real_dir if clean_dir is not None else None
    rec_train = _stack(RecognitionDataset(real("train", cfg["t_eval"], t1_real), negatives_dir=clean_dir),
                       2 * cfg["t_eval"])
    rec_test = _stack(RecognitionDataset(real("test", cfg["t_eval"], t1_real), negatives_dir=clean_dir),
                      2 * cfg["t_eval"])
    return {
        "student": distiller.student, "distiller": distiller, "t1": t1, "t2": t2, "log": log,
        "held_out_losses": held_out,
        "t2_task": {"student": evaluate_scattering(distiller.student, scat_test, n=cfg["t_eval"]),
                    "t2": evaluate_scattering(t2, scat_test, n=cfg["t_eval"])},
        "t1_task": {"student_probe": linear_probe(distiller.student, rec_train, rec_test),
                    "t1_probe": linear_probe(t1, rec_train, rec_test),
                    "random_probe": linear_probe(_fresh_student(distiller.student, seed), rec_train, rec_test)},
        "manifest": {"images": data.manifest(), "teachers": str(teachers_dir)},
    }
