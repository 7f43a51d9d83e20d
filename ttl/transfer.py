"""Why a distilled start helps fine-tuning or not: what the transferred weights hold, and what fine-tuning does to them.

Notebook 04 finds the distilled student (``ttl``) no better a start than a random one (``sup-minority``). This module
measures the two starts and the two fine-tuned networks side by side, on the held-out validation renders, with
nothing trained (forward passes and closed-form probes only):

- **weights** (:func:`weight_report`): the norm of every convolution at the start and the relative change
  ``||w_end - w_start|| / ||w_start||`` that fine-tuning made (the effective step size per layer);
- **activations** (:func:`activation_rms`): the root mean square of every encoder and decoder stage's output, for
  the distilled start as fine-tuning gets it (rescaled, :func:`ttl.finetune.prepare_start`) and before the rescaling;
- **feature drift** (:func:`feature_cka`): linear CKA between a stage's features at the start and at the end of
  fine-tuning (1: the representation was kept up to a rotation and scale; near 0: replaced);
- **what the features know about rain** (:func:`rain_probe`): a ridge regression from a stage's features (upsampled
  to the image) to the luminance of the rain layer (rainy minus target), fitted on the pixels of half the
  validation images and scored (R²) on the other half; the raw input pixels are the floor.

``python -m ttl.transfer`` (``make diagnose``) runs it on a finished notebook 04 and writes
``results/transfer_diagnosis_<preset>.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .imageops import luminance
from .models import WEIGHT_LAYERS

__all__ = ["weight_report", "activation_rms", "linear_cka", "feature_cka", "rain_probe", "starts", "diagnose"]

def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().double() for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def weight_report(start: nn.Module, end: nn.Module | None = None) -> dict[str, dict[str, float]]:
    """Per layer (convolutions and linear layers, by module name): the weight norm at ``start`` and, when ``end``
    is given, the norm there and the relative change ``||end - start|| / ||start||`` (``inf`` when a zero start,
    e.g. a reset head, moved)."""
    a = _weights(start)
    b = _weights(end) if end is not None else {}
    out = {}
    for name, w in a.items():
        row = {"norm_start": float(w.norm())}
        if name in b:
            d = float((b[name] - w).norm())
            rel = d / row["norm_start"] if row["norm_start"] else (0.0 if d == 0 else float("inf"))
            row.update(norm_end=float(b[name].norm()), rel_change=rel)
        out[name] = row
    return out


@torch.no_grad()
def _stages(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    f = model.features(x)
    return {**{f"enc{i}": t for i, t in enumerate(f["enc"])}, **{f"dec{i}": t for i, t in enumerate(f["dec"])}}


def activation_rms(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Root mean square of every stage's output (``enc0`` fine ... ``dec<k>`` fine) over ``images``."""
    return {k: float(v.double().pow(2).mean().sqrt()) for k, v in _stages(model.eval(), images).items()}


def linear_cka(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Linear centred kernel alignment of two representations of the same ``n`` items (``(n, d1)``, ``(n, d2)``):
    1 when one is a rotation and isotropic scaling of the other, 0 when they share nothing linear."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"linear_cka needs the same items in both: {a.shape[0]} vs {b.shape[0]} rows")
    a = a - a.mean(0)
    b = b - b.mean(0)
    hsic = (a.T @ b).pow(2).sum()
    norm = (a.T @ a).pow(2).sum().sqrt() * (b.T @ b).pow(2).sum().sqrt()
    return float(hsic / norm) if norm > 0 else float("nan")


def _positions(t: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` rows of ``(B, C, H, W)`` features: channel vectors at random (image, y, x) positions."""
    flat = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    idx = torch.randperm(flat.shape[0], generator=gen)[:n]
    return flat[idx]


def feature_cka(a: nn.Module, b: nn.Module, images: torch.Tensor, positions: int = 4096, seed: int = 0) -> dict[str, float]:
    """Per stage, linear CKA between the features of networks ``a`` and ``b`` at the same positions of ``images``."""
    fa, fb = _stages(a.eval(), images), _stages(b.eval(), images)
    out = {}
    for k in fa:
        gen = torch.Generator().manual_seed(seed)
        ra = _positions(fa[k], positions, gen)
        gen = torch.Generator().manual_seed(seed)
        out[k] = linear_cka(ra, _positions(fb[k], positions, gen))
    return out


def _ridge_r2(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor, l2: float) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    ztr = torch.cat([(xtr - mu) / sd, torch.ones(len(xtr), 1, dtype=xtr.dtype)], 1)
    zte = torch.cat([(xte - mu) / sd, torch.ones(len(xte), 1, dtype=xte.dtype)], 1)
    reg = l2 * len(ztr) * torch.eye(ztr.shape[1], dtype=ztr.dtype)
    reg[-1, -1] = 0
    w = torch.linalg.solve(ztr.T @ ztr + reg, ztr.T @ ytr)
    resid = (yte - zte @ w).pow(2).sum()
    total = (yte - yte.mean()).pow(2).sum()
    return float(1 - resid / total)


def rain_probe(model: nn.Module | None, rainy: torch.Tensor, clean: torch.Tensor, pixels: int = 20000,
               l2: float = 1e-3, seed: int = 0) -> dict[str, float]:
    """How linearly each stage's features predict the rain layer's luminance ``Y(rainy) - Y(clean)``: ridge
    regression (standardised features, penalty ``l2`` per pixel) fitted on ``pixels`` random pixels of the first half
    of the images, R² on as many pixels of the second half. Features are upsampled (bilinear) to the image.
    ``model=None`` probes the input itself (RGB of the pixel: the floor any useful feature must beat)."""
    n = len(rainy)
    if n < 2:
        raise ValueError("rain_probe needs at least 2 images (one half fits the probe, the other scores it)")
    target = (luminance(rainy) - luminance(clean)).double()
    feats = {"input": rainy.double()}
    if model is not None:
        feats = {k: F.interpolate(v.float(), size=rainy.shape[-2:], mode="bilinear", align_corners=False).double()
                 for k, v in _stages(model.eval(), rainy).items()}
    half = n // 2
    out = {}
    for k, f in feats.items():
        gen = torch.Generator().manual_seed(seed)
        both = torch.cat([f, target], 1)
        tr = _positions(both[:half], pixels, gen)
        te = _positions(both[half:], pixels, gen)
        out[k] = _ridge_r2(tr[:, :-1], tr[:, -1:], te[:, :-1], te[:, -1:], l2)
    return out


def starts(cfg: dict, seed: int, student_path: str | Path, context: bool, calib: torch.Tensor) -> dict[str, nn.Module]:
    """The starting points of notebook 04's minority rows for ``seed``, rebuilt exactly as
    :func:`ttl.finetune.run_finetuning` builds them: ``distilled`` (notebook 03's student made a start by
    :func:`ttl.finetune.prepare_start` on the batch ``calib``: head reset, layers rescaled when ``f_rescale_start``),
    ``distilled-raw`` (the student with its head reset only, the start before the rescaling; only when
    ``f_rescale_start``) and ``random`` (the seeded initialisation of the scratch rows)."""
    from .models import RestorationNet, load_model

    student = load_model(student_path)[0]
    out = {"distilled": _copy_start(student, cfg, calib, seed)}
    if cfg.get("f_rescale_start", False):
        out["distilled-raw"] = _copy_start(student, dict(cfg, f_rescale_start=False), calib, seed)
    torch.manual_seed(seed)
    ref = student.spec
    out["random"] = RestorationNet(width=cfg["s_width"], depth=ref["depth"], blocks=ref["blocks"],
                                   context=context).eval()
    return out


def _copy_start(model: nn.Module, cfg: dict, calib: torch.Tensor, seed: int) -> nn.Module:
    from .finetune import prepare_start
    from .models import build_model

    m = build_model(model.spec)
    m.load_state_dict(model.state_dict())
    prepare_start(m, cfg, calib, seed)
    return m.eval()


def diagnose(cfg: dict, seed: int, student_path: str | Path, checkpoints: dict[str, str | Path],
             sets: dict[str, dict[str, torch.Tensor]], context: bool, calib: torch.Tensor, rows: Sequence[str] = ("ttl", "sup-minority"),
             extra_starts: dict[str, nn.Module] | None = None, start_of: dict[str, str] | None = None
             ) -> dict[str, Any]:
    """Every measure of this module for the starts of ``seed`` and the fine-tuned ``checkpoints`` (row name ->
    file): ``ttl`` is compared with the distilled start, a row named in ``start_of`` with that start (one of
    ``extra_starts``, e.g. another distillation's student, made a start like the distilled one), every other
    row with the random one; the probe is run on every validation set of ``sets`` (``rainy``/``clean``; notebook 04's
    validation renders); ``calib`` is the batch of training inputs that sets the starts' layer scales
    (:func:`ttl.finetune.start_batch` of notebook 04's pairs)."""
    from .models import load_model

    s = starts(cfg, seed, student_path, context, calib)
    for name, m in (extra_starts or {}).items():
        s[name] = _copy_start(m, cfg, calib, seed)
    ends = {r: load_model(checkpoints[r])[0] for r in rows if r in checkpoints}
    start_of = {r: (start_of or {}).get(r, "distilled" if r == "ttl" else "random") for r in ends}
    images = next(iter(sets.values()))["rainy"]
    out: dict[str, Any] = {"seed": seed, "student": str(student_path),
                           "checkpoints": {r: str(checkpoints[r]) for r in ends}, "start_of": start_of}
    out["weights"] = {r: weight_report(s[start_of[r]], m) for r, m in ends.items()}
    out["activation_rms"] = {k: activation_rms(m, images) for k, m in {**s, **ends}.items()}
    out["cka_start_end"] = {r: feature_cka(s[start_of[r]], m, images) for r, m in ends.items()}
    out["cka_starts"] = feature_cka(s["distilled"], s["random"], images)
    out["probe_r2"] = {name: {"input": rain_probe(None, d["rainy"], d["clean"])["input"],
                              **{k: rain_probe(m, d["rainy"], d["clean"]) for k, m in {**s, **ends}.items()}}
                       for name, d in sets.items()}
    return out


def summary(result: dict[str, Any]) -> str:
    """A plain-text reading of :func:`diagnose`'s result: one table per measure, stages as columns."""
    lines = []
    stages = list(result["activation_rms"]["distilled"])
    head = f"{'':28s}" + "".join(f"{s:>8s}" for s in stages)
    lines += ["activation RMS", head]
    lines += [f"{k:28s}" + "".join(f"{v[s]:8.3f}" for s in stages) for k, v in result["activation_rms"].items()]
    lines += ["", "CKA(start, end of fine-tuning)", head]
    lines += [f"{k:28s}" + "".join(f"{v[s]:8.3f}" for s in stages) for k, v in result["cka_start_end"].items()]
    lines += [f"{'distilled vs random start':28s}" + "".join(f"{result['cka_starts'][s]:8.3f}" for s in stages)]
    for name, probes in result["probe_r2"].items():
        lines += ["", f"rain-layer probe R² ({name}; input pixels alone: {probes['input']:.3f})", head]
        lines += [f"{k:28s}" + "".join(f"{v[s]:8.3f}" for s in stages) for k, v in probes.items() if k != "input"]
    for r, layers in result["weights"].items():
        ch = [(n, v["rel_change"]) for n, v in layers.items() if np.isfinite(v.get("rel_change", np.nan))]
        med = float(np.median([c for _, c in ch])) if ch else float("nan")
        top = ", ".join(f"{n} {c:.2f}" for n, c in sorted(ch, key=lambda t: -t[1])[:3])
        lines += ["", f"{r}: median relative weight change {med:.3f} over {len(ch)} layers; largest: {top}"]
    return "\n".join(lines)


def _main(argv: Sequence[str] | None = None) -> None:
    from .config import PRESETS, data_parameters, find_data_dir, git_revision, resolve_config, write_json
    from .finetune import start_batch, training_pool
    from .heldout import validation_sets

    p = argparse.ArgumentParser(prog="python -m ttl.transfer", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--results", default="results", help="the study's results folder (notebooks 03 and 04 finished)")
    p.add_argument("--data-dir", default="auto", help="data folder with clean_scenes/ ('auto': as make study finds it)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the study run (its first minority draw)")
    p.add_argument("--out", default=None, help="JSON file (default results/transfer_diagnosis_<preset>.json)")
    a = p.parse_args(argv)
    res = Path(a.results)
    record = res / "04_finetuning" / a.preset / "metrics.json"
    if not record.is_file():
        raise SystemExit(f"{record} not found: run notebook 04 at preset {a.preset!r} first (make study)")
    rec = json.loads(record.read_text())
    # the run's own sizes (its record also names the preset, and keys of older revisions may be gone)
    cfg = resolve_config(a.preset, {k: v for k, v in rec.get("config", {}).items() if k in PRESETS[a.preset]})
    ck = res / "04_finetuning" / a.preset / "checkpoints"
    checkpoints = {r: ck / f"{r}.pt" for r in ("ttl", "sup-minority", "sup-full") if (ck / f"{r}.pt").is_file()}
    student = res / "03_distillation" / a.preset / "checkpoints" / "student.pt"
    data = find_data_dir() if a.data_dir == "auto" else (Path(a.data_dir) if a.data_dir != "none" else None)
    folders = {k: Path(v) for k, v in data_parameters(data).items()} if data is not None and data.is_dir() else {}
    clean_dir, public_dir = folders.get("clean_dir"), folders.get("public_dir")
    sets = validation_sets(cfg, a.seed, clean_dir)
    sets = {k: sets[k] for k in ("synthetic", "realistic")}
    context = bool(cfg.get("context", False))
    calib = start_batch(training_pool(cfg, a.seed, clean_dir, public_dir=public_dir))  # notebook 04's pool
    result = diagnose(cfg, a.seed, student, checkpoints, sets, context, calib, rows=tuple(checkpoints))
    out = Path(a.out or res / f"transfer_diagnosis_{a.preset}.json")
    # its own revision and the revision of the study run it diagnoses (they differ when the code moved on since)
    write_json(out, {"preset": a.preset, "data": str(data), "git_revision": git_revision(),
                     "run_revision": rec.get("git_revision"), **result})
    print(summary(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    _main()
