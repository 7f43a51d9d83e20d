"""Real-world evaluation (notebook 05; STUDY §7): every model of notebook 04 on held-out test data, the
no-reference scores on real photographs, the size/speed table and the verdicts on claims C1-C4.

Test sets (none of them reached any training step):

* ``synthetic`` / ``realistic`` — crops of the bundled photographs (test-only scenes) with synthetic rain and,
  on the very same crops, realistic rain; full-reference PSNR/SSIM.
* ``real`` — the real rainy photographs of ``real_dir`` outside its train split (the val and test splits of
  :func:`ttl.scenes.scene_split`; no model trained on them); no ground truth, so NIQE and PIQE only, and only
  as comparisons between models on the same images.
* ``real-paired`` — when given, a real paired dataset on disk (e.g. SPA-Data), whole images.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .finetune import ci_text, evaluate_model
from .metrics import image_metrics

__all__ = ["test_sets", "real_test_images", "paired_real", "finetuned_checkpoints", "evaluate_checkpoints",
           "noref_table", "latency_per_mp", "size_speed", "verdicts", "VERDICT_RULES", "score_table", "gallery_columns"]


def test_sets(cfg: dict, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """``e_n_test`` crops (``e_test_size`` px) of the bundled photographs with synthetic and realistic rain."""
    from .gap import render_domains

    d = render_domains(cfg["e_n_test"], cfg["e_test_size"], seed=seed + 5000)
    clean = torch.stack(d["clean"])
    return {dom: {"rainy": torch.stack(d[dom]), "clean": clean} for dom in ("synthetic", "realistic")}


def real_test_images(real_dir, short_side: int = 0, splits: tuple[str, ...] = ("val", "test"), min_side: int = 192
                     ) -> tuple[list[torch.Tensor], list[str], dict]:
    """Real rainy photographs of ``real_dir`` in ``splits`` (never the train split, which the teachers and the
    distillation saw), downscaled so the short side is at most ``short_side`` (0: native size). Photographs
    whose short side is below ``min_side`` (NIQE needs two 96-px blocks a side) are skipped and listed in the
    manifest."""
    from .config import folder_manifest
    from .scenes import scene_split
    from .io import list_images, read_image
    from .scenes import resize_short_side

    paths = [p for p in list_images(real_dir, recursive=True) if scene_split(p.stem) in splits]
    if not paths:
        raise FileNotFoundError(f"real_dir={str(real_dir)!r}: no image falls in the {'/'.join(splits)} splits; "
                                "add more photographs")
    imgs, kept, skipped = [], [], []
    for p in paths:
        im = read_image(p, min_size=16)
        if short_side and min(im.shape[-2:]) > max(short_side, min_side):
            im = resize_short_side(im[None], max(short_side, min_side))[0]
        if min(im.shape[-2:]) < min_side:
            skipped.append(p.name)
            continue
        imgs.append(im)
        kept.append(p)
    return imgs, [p.name for p in kept], {"folder": str(real_dir), "splits": list(splits),
                                          "files": folder_manifest(kept), "skipped_too_small": skipped}


def paired_real(folder, limit: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor], dict]:
    """A real paired dataset on disk (any layout of :func:`ttl.layouts.detect_layout`), whole images."""
    from .layouts import PairedFolderDataset

    ds = PairedFolderDataset(folder)
    n = len(ds) if not limit else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    return [it["rainy"] for it in items], [it["clean"] for it in items], {**ds.manifest(), "n": n}


def finetuned_checkpoints(finetuning_dir) -> dict[str, list[Path]]:
    """Every model of notebook 04 and its checkpoints (one per seed), in the notebook's order, from its
    ``metrics.json``; paths are resolved inside ``{finetuning_dir}/checkpoints``."""
    finetuning_dir = Path(finetuning_dir)
    rec = finetuning_dir / "metrics.json"
    if not rec.is_file():
        raise FileNotFoundError(f"{rec} not found: run notebook 04 first (make study, or ttl study --notebooks 04) "
                                "or pass finetuning_dir")
    models = json.loads(rec.read_text())["models"]
    out = {}
    for name, m in models.items():
        paths = [finetuning_dir / "checkpoints" / Path(p).name for p in m["checkpoints"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"checkpoints of {name!r} missing: {', '.join(missing)}; run notebook 04 again")
        out[name] = paths
    return out


def _per_image(model: nn.Module | None, rainy: list[torch.Tensor], clean: list[torch.Tensor],
               run: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> dict[str, Any]:
    vals: dict[str, list[float]] = {}
    for x, y in zip(rainy, clean):
        pred = x if model is None else run(model, x)
        for k, v in image_metrics(pred[None], y[None]).items():
            vals.setdefault(k, []).append(float(v[0]))
    return {**{k: float(np.mean(v)) for k, v in vals.items()}, "per_image": vals}


def evaluate_checkpoints(checkpoints: dict[str, list[Path]], sets: dict[str, dict[str, torch.Tensor]],
                         real: list[torch.Tensor] | None = None, paired: tuple[list, list] | None = None,
                         device: str = "cpu", tile: int = 512, overlap: int = 128, niqe_model=None,
                         progress: bool = True
                         ) -> dict[str, list[dict[str, Any]]]:
    """Score every checkpoint: full-reference metrics on ``sets`` (and on ``paired`` real data, image by image,
    tiled), NIQE and PIQE of its outputs on the ``real`` photographs. Returns ``{name: [per-seed results]}``
    shaped like notebook 04's runs (``result["val"][set]["per_image"][metric]``); the rainy input is ``"input"``."""
    from tqdm.auto import tqdm

    from .inference import derain_image
    from .models import load_model
    from .noref import noref_scores

    def run(m, x):
        return derain_image(m, x, tile=tile, overlap=overlap, device=device)

    jobs = [("input", None)] + [(n, p) for n, ps in checkpoints.items() for p in ps]
    out: dict[str, list[dict[str, Any]]] = {}
    for name, path in tqdm(jobs, desc="evaluating", disable=not progress):
        model = None if path is None else load_model(path)[0].to(device)
        res = evaluate_model(model, sets, device)
        if paired is not None:
            res["real-paired"] = _per_image(model, paired[0], paired[1], run)
        entry = {"checkpoint": str(path) if path else None, "val": res}
        if real:
            with torch.no_grad():
                outs = real if model is None else [run(model, x) for x in real]
            entry["noref"] = noref_scores(outs, niqe_model)
        out.setdefault(name, []).append(entry)
    return out


def noref_table(results: dict[str, list[dict]], names: list[str], n_boot: int = 1000, seed: int = 0) -> dict:
    """NIQE and PIQE per model: mean over seeds of the per-image scores, 95 % CI over images, and the paired
    difference ``ttl - model`` (bootstrap CI, Wilcoxon p; negative = ``ttl`` better, both are lower-better)."""
    from .stats import bootstrap_ci, paired_bootstrap

    per = {n: {k: np.mean([r["noref"][k] for r in results[n]], 0) for k in ("niqe", "piqe")}
           for n in names + ["input"] if n in results and "noref" in results[n][0]}
    out: dict[str, Any] = {}
    for n, v in per.items():
        out[n] = {}
        for k, arr in v.items():
            est, lo, hi = bootstrap_ci(arr, n_boot=n_boot, seed=seed)
            out[n][k] = {"mean": est, "low": lo, "high": hi, "per_image": arr.tolist()}
            if "ttl" in per and n != "ttl":
                out[n][k]["ttl_minus"] = paired_bootstrap(per["ttl"][k], arr, n_boot, seed=seed)
    return out


@torch.no_grad()
def latency_per_mp(model: nn.Module, size: int = 1024, repeats: int = 5, device: str = "cpu",
                   tile: int = 512) -> float:
    """Median seconds per megapixel of tiled inference (:func:`ttl.inference.derain_image`) on a
    ``size`` x ``size`` image, after one warm-up run."""
    from .inference import derain_image

    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    derain_image(model, x, tile=tile, device=device)
    ts = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        derain_image(model, x, tile=tile, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) / (size * size / 1e6)


def size_speed(checkpoints: dict[str, list[Path]], size: int = 1024, repeats: int = 5,
               devices: tuple[str, ...] = ("cpu",)):
    """Parameters, GFLOPs at 256x256 and median latency per megapixel on each device, one line per distinct
    architecture (models sharing an architecture are listed together)."""
    import pandas as pd

    from .models import count_flops, count_params, load_model

    groups: dict[str, list[str]] = {}
    models: dict[str, nn.Module] = {}  # one model per architecture
    for name, paths in checkpoints.items():
        model, _ = load_model(paths[0])
        key = json.dumps(model.spec, sort_keys=True)
        groups.setdefault(key, []).append(name)
        models.setdefault(key, model)
    lines = []
    for key, names in groups.items():
        model = models[key]
        line = {"models": ", ".join(names), "params (M)": round(count_params(model) / 1e6, 3),
                "GFLOPs @256x256": round(count_flops(model, 256) / 1e9, 2)}
        for dev in devices:
            line[f"{dev.split(':')[0].upper()} s/MP"] = round(latency_per_mp(model.to(dev), size, repeats, dev), 3)
        lines.append(line)
    return pd.DataFrame(lines)


# ------------------------------------------------------------------------------------------- verdicts
VERDICT_RULES = {
    "C1": "supported if synthetic rain is told apart from real photographs (C2ST AUC interval above 0.5) and the "
          "realistic renderer is closer to them on most statistics; no real photographs: not assessed",
    "C2": "supported if a model trained on synthetic pairs loses PSNR-Y from synthetic to realistic test rain "
          "(paired 95 % interval above 0), not supported if the interval is below or covers 0",
    "C3a": "supported if ttl is non-inferior to sup-full on the synthetic test set (interval of ttl - sup-full "
           "above -margin dB PSNR-Y), not supported if entirely below -margin, mixed otherwise",
    "C3b": "supported if ttl beats the semi-supervised baseline on the synthetic test set (interval of the "
           "PSNR-Y difference above 0), not supported if below 0, mixed if it covers 0",
    "C3c": "supported if ttl beats both sup-full and the semi-supervised baseline on realistic test rain "
           "(PSNR-Y intervals above 0) and is not worse on real photographs (NIQE), not supported if it is worse "
           "than either on realistic rain, mixed otherwise",
    "C4": "supported if the student has at most 1/3 of the teachers' parameters and keeps their tasks (T2-task "
          "PSNR-Y within 1 dB of T2, linear-probe accuracy within 0.05 of T1's); mixed if only the size holds",
}


def _interval(r: dict) -> str:
    return f"{r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}]"


def verdicts(m01: dict | None, m03: dict | None, comparisons: dict[str, dict], noref: dict | None,
             margin_db: float = 0.5) -> list[dict[str, str]]:
    """The verdict on each claim from the run records: ``m01`` (notebook 01), ``m03`` (notebook 03),
    ``comparisons[baseline][set][metric]`` (``ttl - baseline`` on the test sets, see
    :func:`ttl.finetune.compare`) and ``noref`` (:func:`noref_table`). Rules: :data:`VERDICT_RULES`."""
    rows = []

    def add(claim: str, verdict: str, evidence: str) -> None:
        rows.append({"claim": claim, "verdict": verdict, "evidence": evidence, "rule": VERDICT_RULES[claim]})

    # C1: the gap
    if m01 and m01.get("reference") == "real" and "synthetic" in m01.get("c2st", {}):
        c = m01["c2st"]["synthetic"]
        closer = {}
        for r in m01["distances"]:
            closer.setdefault((r["statistic"], r["measure"]), {})[r["domain"]] = r["distance"]
        n_closer = sum(d.get("realistic", np.inf) < d.get("synthetic", -np.inf) for d in closer.values())
        ok = c["low"] > 0.5 and n_closer > len(closer) / 2
        add("C1", "supported" if ok else "not supported",
            f"C2ST AUC synthetic vs real {c['auc']:.3f} [{c['low']:.3f}, {c['high']:.3f}]; realistic rain closer to "
            f"real on {n_closer} of {len(closer)} distances")
    else:
        add("C1", "not assessed", "notebook 01 ran without real photographs")
    # C2: the failure
    if m01 and "c2_experiment" in m01:
        r = m01["c2_experiment"]["drop_synthetic_minus_realistic"]["psnr_y"]
        v = "supported" if r["low"] > 0 else "not supported"
        add("C2", v, f"supervised U-Net, PSNR-Y synthetic minus realistic test rain {_interval(r)} "
                     f"(Wilcoxon p = {r['wilcoxon_p']:.2g})")
    else:
        add("C2", "not assessed", "notebook 01's record is missing")
    # C3: the method
    full = comparisons.get("sup-full", {})
    if "synthetic" in full:
        r = full["synthetic"]["psnr_y"]
        v = "supported" if r["low"] > -margin_db else ("not supported" if r["high"] < -margin_db else "mixed")
        add("C3a", v, f"ttl minus sup-full on synthetic test rain {_interval(r)}; margin {margin_db} dB")
    semi = next((comparisons[b] for b in comparisons if b not in ("sup-full", "sup-minority", "sup-full-large")
                 and b.startswith("syn2real")), {})
    if "synthetic" in semi:
        r = semi["synthetic"]["psnr_y"]
        v = "supported" if r["low"] > 0 else ("not supported" if r["high"] < 0 else "mixed")
        add("C3b", v, f"ttl minus syn2real on synthetic test rain {_interval(r)}")
    if "realistic" in full and "realistic" in semi:
        a, b = full["realistic"]["psnr_y"], semi["realistic"]["psnr_y"]
        niqe_txt, niqe_ok = "no real photographs", True
        if noref and "sup-full" in noref and "ttl_minus" in noref["sup-full"]["niqe"]:
            d = noref["sup-full"]["niqe"]["ttl_minus"]
            niqe_ok = d["low"] <= 0  # not significantly worse (higher NIQE is worse)
            niqe_txt = f"NIQE on real photographs, ttl minus sup-full {d['mean_diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
        if a["low"] > 0 and b["low"] > 0 and niqe_ok:
            v = "supported"
        elif a["high"] < 0 or b["high"] < 0:
            v = "not supported"
        else:
            v = "mixed"
        add("C3c", v, f"realistic test rain, ttl minus sup-full {_interval(a)}, minus syn2real {_interval(b)}; "
                      f"{niqe_txt}")
    # C4: the size
    if m03:
        ratio = m03["size_ratio_teachers_over_student"]
        kept = {(r["task"].split(":")[0], r["who"]): r["mean"] for r in m03["kept"]}
        d2 = kept[("T2", "T2")] - kept[("T2", "student")]
        d1 = kept[("T1", "T1 encoder")] - kept[("T1", "student")]
        small, keeps = ratio >= 3, d2 <= 1.0 and d1 <= 0.05
        add("C4", "supported" if small and keeps else ("mixed" if small else "not supported"),
            f"student = 1/{ratio:.1f} of T1+T2; T2 task: T2 minus student {d2:+.2f} dB; T1 task: T1 probe minus "
            f"student probe {d1:+.3f}")
    return rows


def score_table(scores: dict[str, dict], metrics: tuple[str, ...] = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")):
    """One line per (model, test set): ``mean [95 % CI over images]`` per metric, the metric convention in every
    header (``PSNR-Y (dB)``, ``SSIM-Y``, ...), and the number of seeds."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    lines = []
    for name, s in scores.items():
        for dom, v in s.items():
            line = {"model": name, "test set": dom, "seeds": len(v["psnr_y_per_seed"])}
            for m in metrics:
                line[METRIC_LABELS[m]] = ci_text(v, m)
            lines.append(line)
    return pd.DataFrame(lines)


@torch.no_grad()
def gallery_columns(checkpoints: dict[str, Path], images: list[torch.Tensor], device: str = "cpu",
                    clean: list[torch.Tensor] | None = None, tile: int = 512) -> dict[str, list[torch.Tensor]]:
    """Columns for :func:`ttl.plots.gallery`: the rainy inputs, each model's outputs (tiled inference from its
    saved checkpoint, any image size) and, when known, the clean images."""
    from .inference import derain_image
    from .models import load_model

    cols = {"rainy input": list(images)}
    for name, path in checkpoints.items():
        model = load_model(path)[0]
        cols[name] = [derain_image(model, x, tile=tile, device=device) for x in images]
    if clean is not None:
        cols["clean"] = list(clean)
    return cols
