"""The held-out data: every image that scores a model and that no training step sees.

* **Validation** (notebook 04; :func:`validation_sets`): centre crops (``f_size``) of the val-split scenes, with
  synthetic rain (``synthetic``, or ``synthetic_dir``'s val pairs) and, on the same scenes, realistic rain scored
  against its streak-free target (``realistic``, deraining) and against the clean scene (``realistic_clean``).
  :func:`split_validation` cuts them in two: the selection crops choose checkpoints and learning rates, the report
  crops score the chosen runs.
* **Test** (notebook 05), none of it reached any training step:

  * ``synthetic`` / ``realistic`` / ``realistic_clean`` (:func:`test_sets`) — the test-split photographs of
    ``clean_dir``, whole, with synthetic rain and, on the very same photographs, realistic rain (streak-free and clean
    targets), plus the same on crops of the bundled photographs (``bundled_...``); full-reference PSNR/SSIM.
  * ``public/<set>`` (:func:`public_sets`) — the public paired test sets under ``public_dir``, whole images: not the
    training folders (``*_train``, :func:`ttl.layouts.training_only`) nor the Rain13K sample's fit part.
  * ``real`` (:func:`real_test_images`, :func:`real_gallery_images`) — the real rainy photographs of ``real_dir``
    outside its train split (the val and test splits of :func:`ttl.scenes.split_files`; no model trained on them);
    no ground truth, so no-reference measures only, and only as comparisons between models on the same images.
  * ``real-paired`` (:func:`paired_real`) — when given, a real paired dataset on disk (e.g. SPA-Data), whole images.

The rule: none of it shapes training. Ground truths score and select, never train: the validation selection crops
choose checkpoints and learning rates; the test sets score notebook 04's models once, in notebook 05, and choose
nothing. (Notebook 01 cuts its rendered domains from the same test photographs, :func:`ttl.gap.test_photographs`,
and its C2 experiment scores its own network on :func:`test_sets`.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .finetune import _render_photos, synthetic_pairs
from .scenes import dead_leaves
from .utils import generator, seed_of

__all__ = ["validation_sets", "split_validation", "test_sets", "public_sets", "real_test_images", "paired_real",
           "real_gallery_images"]


# ------------------------------------------------------------------------------------------- validation
def validation_sets(cfg: dict, seed: int, clean_dir=None, synthetic_dir=None) -> dict[str, dict[str, torch.Tensor]]:
    """Held-out validation data, centre crops (``f_size``) of the val-split scenes: ``synthetic`` (synthetic rain, or
    ``synthetic_dir``'s val pairs), ``realistic`` (the same scenes with realistic rain, scored against its streak-free
    target) and ``realistic_clean`` (the same rainy images scored against the clean scenes). Their ground truths are
    for scoring only; nothing trains on them."""
    from .datasets import split_paths
    from .rain import RealisticRain

    syn = synthetic_pairs(cfg, seed + 1, "val", clean_dir, synthetic_dir)
    if synthetic_dir is not None:
        size = min(min(r.shape[-2:]) for r in syn.rainy + [torch.zeros(1, cfg["f_size"], cfg["f_size"])])
        crop = lambda x: x[..., (x.shape[-2] - size) // 2:(x.shape[-2] - size) // 2 + size,  # noqa: E731
                           (x.shape[-1] - size) // 2:(x.shape[-1] - size) // 2 + size]
        s_r, s_c = torch.stack([crop(it["rainy"]) for it in syn]), torch.stack([crop(it["clean"]) for it in syn])
    else:
        items = syn.__getitems__(list(range(len(syn))))
        s_r, s_c = torch.stack([it["rainy"] for it in items]), torch.stack([it["clean"] for it in items])
    if clean_dir is not None:
        r = _render_photos(split_paths(clean_dir, "val", "clean_dir"), cfg["photo_size"], seed, 19, crop=cfg["f_size"],
                           realistic=True)
        rainy, clean, free = (torch.stack(r[k]) for k in ("rainy", "clean", "streak_free"))
    else:
        clean, depth = dead_leaves(cfg["f_val"], cfg["f_size"], seed=seed + 1, split="val")
        o = RealisticRain()(clean, generator(seed_of(seed, 19)), depth)
        rainy, free = o.rainy, o.streak_free
    return {"synthetic": {"rainy": s_r, "clean": s_c}, "realistic": {"rainy": rainy, "clean": free},
            "realistic_clean": {"rainy": rainy, "clean": clean}}


def split_validation(val: dict[str, dict[str, torch.Tensor]], n_select: int):
    """The validation crops split in two: the first ``min(n_select, n // 2)`` of each set choose checkpoints and
    learning rates, the rest report the chosen runs (so no reported validation number is scored on the images that
    chose it). Returns ``(select, report)``."""
    n = min(len(v["rainy"]) for v in val.values())
    k = min(n_select, n // 2)
    if k < 1:
        raise ValueError(f"{n} validation crops cannot be split into selection and report crops: use f_val >= 2")
    cut = lambda a, b: {d: {kk: vv[a:b] for kk, vv in v.items()} for d, v in val.items()}  # noqa: E731
    return cut(0, k), cut(k, None)


# ------------------------------------------------------------------------------------------------- test
def _with_realistic_targets(name: str, rainy_syn: list, rainy_rea: list, clean: list, free: list) -> dict:
    return {name + "synthetic": {"rainy": rainy_syn, "clean": clean},
            name + "realistic": {"rainy": rainy_rea, "clean": free},
            name + "realistic_clean": {"rainy": rainy_rea, "clean": clean}}


def test_sets(cfg: dict, seed: int, clean_dir=None) -> dict[str, dict[str, list[torch.Tensor]]]:
    """The full-reference test sets, as lists of ``(3,H,W)`` images (sizes may differ):

    * with ``clean_dir``: its test-split photographs (the first ``e_test_photos`` when that is not 0), whole, at the
      working scale (``photo_size``), with synthetic rain (light and heavy alternating; ``synthetic``) and with
      realistic rain scored against its streak-free target (``realistic``, deraining) and against the clean scene
      (``realistic_clean``, whole restoration); ``realistic`` also carries ``streak_free_noisy``, the streak-free
      rendering through the rainy render's own sensor noise (for :func:`ttl.realrain.judge_validity`, not scored);
      plus the same three on ``e_n_test`` crops of the bundled photographs (``bundled_...``), a second, independent
      set;
    * without: the bundled photographs are the test set (``synthetic``, ``realistic``, ``realistic_clean``).
    """
    from .datasets import split_paths
    from .gap import render_domains

    d = render_domains(cfg["e_n_test"], cfg["e_test_size"], seed=seed + 5000)
    bundled = _with_realistic_targets("" if clean_dir is None else "bundled_", d["synthetic"], d["realistic"],
                                      d["clean"], d["realistic_streak_free"])
    if clean_dir is None:
        return bundled
    paths = split_paths(clean_dir, "test", "clean_dir")
    paths = paths[:cfg["e_test_photos"]] if cfg["e_test_photos"] else paths
    syn = _render_photos(paths, cfg["photo_size"], seed + 5000, 41)
    rea = _render_photos(paths, cfg["photo_size"], seed + 5000, 43, realistic=True, noisy_target=True)
    out = {**_with_realistic_targets("", syn["rainy"], rea["rainy"], syn["clean"], rea["streak_free"]), **bundled}
    out["realistic"]["streak_free_noisy"] = rea["streak_free_noisy"]  # the judge's check only; never a score
    return out


def public_sets(public_dir, limit: int = 0, short_side: int = 0, only: str | None = None) -> dict[str, dict[str, Any]]:
    """Every public paired set under ``public_dir`` (each subfolder whose layout :func:`ttl.layouts.detect_layout`
    recognises as paired), whole images: ``{set name: {"rainy": [...], "clean": [...], "manifest": ...}}``. No
    per-set code: a new folder in any known layout is picked up as it is. ``limit`` (first pairs only) and
    ``short_side`` (resize) are for smoke runs; the study scores every pair at its native size (0, 0). ``only``: that
    subfolder alone. A folder whose other part calibrates and trains (:data:`ttl.layouts.SHARED_PUBLIC`) gives its
    ``"test"`` part only, and a ``*_train`` folder (training pairs: :func:`ttl.layouts.training_only`) none, unless
    ``only`` names it."""
    from .layouts import LayoutError, PairedFolderDataset, training_only
    from .scenes import resize_short_side

    out = {}
    for d in sorted(p for p in Path(public_dir).iterdir()
                    if p.is_dir() and (p.name == only or only is None and not training_only(p.name))):
        try:
            ds = PairedFolderDataset(d, role="test")
        except LayoutError:
            continue
        items = [ds[i] for i in range(min(len(ds), limit) if limit else len(ds))]
        if short_side:
            items = [{k: resize_short_side(it[k], short_side) for k in ("rainy", "clean")} for it in items]
        out[d.name] = {"rainy": [it["rainy"] for it in items], "clean": [it["clean"] for it in items],
                       "manifest": {**ds.manifest(), "n": len(items)}}
    if not out:
        raise FileNotFoundError(f"public_dir={str(public_dir)!r} holds no paired dataset folder in a known layout")
    return out


def real_test_images(real_dir, short_side: int = 0, splits: tuple[str, ...] = ("val", "test"), min_side: int = 192,
                     limit: int = 0) -> tuple[list[torch.Tensor], list[str], dict]:
    """Real rainy photographs of ``real_dir`` in ``splits`` (never the train split, which the teachers and the
    distillation saw), downscaled so the short side is at most ``short_side`` (0: native size). Photographs
    whose short side is below ``min_side`` (NIQE needs two 96-px blocks a side) are skipped and listed in the
    manifest. ``limit``: the first photographs only (smoke runs)."""
    from .config import folder_manifest
    from .io import list_images, read_image
    from .scenes import resize_short_side, split_files

    parts = split_files(list_images(real_dir, recursive=True))
    paths = sorted(p for s in splits for p in parts[s])[:limit or None]
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


def real_gallery_images(real_dir, n: int = 4, splits: tuple[str, ...] = ("val", "test")) -> list[torch.Tensor]:
    """The first ``n`` real photographs of ``splits`` at their native resolution (for the full-resolution gallery)."""
    from .datasets import split_paths
    from .io import read_image

    paths = sorted(p for s in splits for p in split_paths(real_dir, s, "real_dir"))[:n]
    return [read_image(p) for p in paths]
