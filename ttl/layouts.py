"""Public deraining datasets on disk: the layouts they ship in, how their files pair up, and a paired dataset.

* :func:`detect_layout` recognises the layouts the public sets ship in (:data:`LAYOUTS`) and pairs their files;
  a folder that matches none gets a :class:`LayoutError` listing them.
* :func:`load_pair` reads one :class:`PairedItem`; :class:`PairedFolderDataset` is a scene-split dataset of them.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from .imageops import luminance, rain_layer_estimate
from .io import ImageReadError, list_images, read_image
from .scenes import random_crop, scene_split
from .utils import generator, seed_of

__all__ = ["LAYOUTS", "LayoutError", "PairedItem", "detect_layout", "load_pair", "PairedFolderDataset", "SHARED_PUBLIC",
           "public_role", "training_only"]


LAYOUTS = {
    "rain1400": "Rain1400/DDN: rainy_image/{id}_{k}.* (k = 1..14) and ground_truth/{id}.*",
    "rain13k": "Rain13K layout (its train set, and the test sets Rain100L/H, Test100, Rain800, Test1200 as MPRNet "
               "ships them): input/ and target/ with matching names",
    "rain200": "JORDER-E re-release of Rain100L/H and Rain200L/H: rain/norain-K.* and norain/norain-K.* (the same "
               "file name in both folders)",
    "heavyrain": "Heavy Rain (Li et al., CVPR 2019): in/im_K_sS_aA.* (rain streak and haze settings in the name) "
                 "and gt/im_K.*",
    "ddn-folder": "DDN samples in one folder: Krain.* beside Kground_truth.*",
    "rain100-old": "old Rain100L/H: rainy/rain-XXX.* with norain-XXX.* beside rainy/ (or in norain/)",
    "spa-data": "SPA-Data (real paired): rain/ and gt/ (or norain/), clean files named like the rainy ones, "
                "optionally with a 'gt' suffix",
    "paired": "generic paired folder: one subfolder of rainy images (rainy, rain, input, data, lq) and one of clean "
              "images (clean, gt, target, norain, ground_truth, groundtruth, label, hq) with matching file stems",
    "rain800": "Rain800/ID-CGAN: each file holds the clean and the rainy image side by side (pass layout='rain800'; "
               "the rainy half is detected automatically)",
    "unpaired": "unpaired real rain (DDN-SIRR real, Internet-Data, SPA real_Internet...): a folder of rainy images, "
                "no ground truth",
}
RAINY_NAMES = ("rainy", "rain", "input", "data", "lq", "degraded", "rainy_image")
CLEAN_NAMES = ("clean", "gt", "target", "norain", "ground_truth", "groundtruth", "label", "hq")


class LayoutError(FileNotFoundError):
    """A folder matches no known dataset layout; the message lists the layouts."""


@dataclass(frozen=True)
class PairedItem:
    """One rainy file, its clean file (``None`` when unpaired), its scene id and, for side-by-side files, the
    half that holds the rainy image (``"left"``/``"right"``)."""

    rainy: Path
    clean: Path | None
    scene: str
    half: str | None = None


def _images(d: Path) -> list[Path]:
    return list_images(d) if d.is_dir() else []


def _norm(stem: str) -> str:
    s = stem.lower()
    s = re.sub(r"^(no)?rain[-_]?", "", s)
    s = re.sub(r"[-_]?(gt|clean|norain|target)$", "", s)
    return s


def _match(rainy: list[Path], clean: list[Path], folder: Path, layout: str) -> list[PairedItem]:
    by = {}
    for c in clean:
        by.setdefault(_norm(c.stem), c)
    items, missing = [], []
    for r in rainy:
        c = by.get(_norm(r.stem))
        if c is None:
            missing.append(r.name)
        else:
            items.append(PairedItem(r, c, _norm(r.stem)))
    if missing:
        raise LayoutError(f"{folder}: layout {layout!r}, but {len(missing)} rainy files have no clean partner "
                          f"(e.g. {', '.join(missing[:3])}). Fix the names or remove those files.")
    return items


def _by_scene(folder: Path, rainy_dir: str, clean_dir: str, scene_of, layout: str) -> list[PairedItem]:
    """Pairs of a layout where several rainy files share one clean file: ``scene_of(rainy stem)`` is the clean stem."""
    gts = {p.stem: p for p in _images(folder / clean_dir)}
    items, missing = [], []
    for r in _images(folder / rainy_dir):
        sid = scene_of(r.stem)
        (items.append(PairedItem(r, gts[sid], sid)) if sid in gts else missing.append(r.name))
    if missing:
        raise LayoutError(f"{folder}: layout {layout!r}, but {len(missing)} rainy files have no ground truth in "
                          f"{clean_dir}/ (e.g. {', '.join(missing[:3])})")
    return items


def _subdir(folder: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        for d in folder.iterdir():
            if d.is_dir() and d.name.lower() == n:
                return d
    return None


def detect_layout(folder: str | os.PathLike, layout: str | None = None) -> tuple[str, list[PairedItem]]:
    """Recognise the dataset layout of ``folder`` (or use ``layout``) and list its items.

    Returns ``(layout name, items)``. Raises :class:`LayoutError` naming the layouts when nothing matches, or
    when a paired layout has rainy files without a clean partner."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a folder")
    if layout is not None and layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    known = "\n".join(f"  - {k}: {v}" for k, v in LAYOUTS.items())

    def want(name: str) -> bool:
        return layout is None or layout == name

    if want("rain1400") and (folder / "rainy_image").is_dir() and (folder / "ground_truth").is_dir():
        items = _by_scene(folder, "rainy_image", "ground_truth", lambda stem: stem.rsplit("_", 1)[0], "rain1400")
        if items:
            return "rain1400", items
    if want("rain13k") and (folder / "input").is_dir() and (folder / "target").is_dir():
        return "rain13k", _match(_images(folder / "input"), _images(folder / "target"), folder, "rain13k")
    if want("rain200") and (folder / "rain").is_dir() and (folder / "norain").is_dir():
        rain, clean = _images(folder / "rain"), _images(folder / "norain")
        if rain and {p.name for p in rain} <= {p.name for p in clean}:
            return "rain200", [PairedItem(p, folder / "norain" / p.name, _norm(p.stem)) for p in rain]
    if want("heavyrain") and (folder / "in").is_dir() and (folder / "gt").is_dir():
        items = _by_scene(folder, "in", "gt", lambda stem: re.sub(r"_s\d+(\.\d+)?_a\d+(\.\d+)?$", "", stem),
                          "heavyrain")
        if items:
            return "heavyrain", items
    if want("ddn-folder"):
        files = _images(folder)
        rain = {p.stem[:-4]: p for p in files if p.stem.lower().endswith("rain") and len(p.stem) > 4}
        gt = {p.stem[:-12]: p for p in files if p.stem.lower().endswith("ground_truth") and len(p.stem) > 12}
        if rain and gt and set(rain) <= set(gt):
            return "ddn-folder", [PairedItem(rain[k], gt[k], k) for k in sorted(rain)]
    if want("rain100-old") and (folder / "rainy").is_dir():
        rain = [p for p in _images(folder / "rainy") if p.stem.lower().startswith("rain-")]
        clean = [p for p in _images(folder) + _images(folder / "norain") if p.stem.lower().startswith("norain-")]
        if rain and clean:
            return "rain100-old", _match(rain, clean, folder, "rain100-old")
    if want("spa-data"):
        r = _subdir(folder, ("rain",))
        c = _subdir(folder, ("gt", "norain"))
        if r is not None and c is not None and _images(r) and _images(c):
            return "spa-data", _match(_images(r), _images(c), folder, "spa-data")
    if want("paired"):
        r = _subdir(folder, RAINY_NAMES)
        c = _subdir(folder, CLEAN_NAMES)
        if r is not None and c is not None and _images(r) and _images(c):
            return "paired", _match(_images(r), _images(c), folder, "paired")
    if layout == "rain800":
        items = []
        for p in _images(folder):
            items.append(PairedItem(p, p, p.stem, half=_rainy_half(p)))
        if items:
            return "rain800", items
    if want("unpaired"):
        imgs = _images(folder)
        if imgs:
            return "unpaired", [PairedItem(p, None, p.stem) for p in imgs]
    raise LayoutError(f"{folder}: no known dataset layout{' ' + repr(layout) if layout else ''} found. Known layouts:\n"
                      f"{known}")


def _rainy_half(path: Path) -> str:
    """Which half of a side-by-side Rain800 file is rainy: the one with more thin bright structure."""
    im = read_image(path)
    w = im.shape[-1] // 2
    left, right = im[..., :w], im[..., w:2 * w]
    energy = [float(rain_layer_estimate(luminance(x)).mean()) for x in (left, right)]
    return "left" if energy[0] > energy[1] else "right"


def load_pair(item: PairedItem, min_size: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read an item as ``(rainy, clean)`` tensors (clean is ``None`` for unpaired items)."""
    if item.half is not None:
        im = read_image(item.rainy, min_size=min_size)
        w = im.shape[-1] // 2
        left, right = im[..., :w], im[..., w:2 * w]
        return (left, right) if item.half == "left" else (right, left)
    rainy = read_image(item.rainy, min_size=min_size)
    clean = read_image(item.clean, min_size=min_size) if item.clean is not None else None
    if clean is not None and clean.shape != rainy.shape:
        raise ImageReadError(item.clean, f"size {tuple(clean.shape[1:])} differs from its rainy partner "
                             f"{item.rainy.name} {tuple(rainy.shape[1:])}", "Pairs must have the same size.")
    return rainy, clean


# Public folders that serve two roles are split once, by a hash of each rainy file's name (fixed for good, so that no
# run can move a file between roles): the "fit" part calibrates the synthetic preset fitted to that folder
# (:data:`ttl.calibrate.SYNTHETIC_TARGETS`) and trains the shipped model (:mod:`ttl.ship`); the "test" part only scores
# models (notebook 05, ``make weights``). Every other public folder has one role, by its name (``*_train`` trains).
SHARED_PUBLIC = ("rain13k_sample",)
ROLES = ("fit", "test")


def training_only(folder_name: str) -> bool:
    """A public folder named ``*_train`` holds training pairs only: it trains and calibrates, and never scores."""
    return folder_name.endswith("_train")


def public_role(file_name: str) -> str:
    """``"fit"`` or ``"test"``: the role of a pair of a :data:`SHARED_PUBLIC` folder, from its rainy file's name."""
    return ROLES[int(hashlib.sha1(f"ttl-calib:{file_name}".encode()).hexdigest(), 16) % 2]


class PairedFolderDataset(Dataset):
    """A public (or any paired) dataset on disk, split by scene: ``{"rainy", "clean"}`` items.

    ``crop``: random aligned crops of that size (training); ``None``: whole images (evaluation). ``role`` (``"fit"``
    or ``"test"``): in a folder of :data:`SHARED_PUBLIC`, only the pairs of that role (:func:`public_role`); other
    folders are read whole."""

    def __init__(self, folder: str | os.PathLike, split: str | None = None, crop: int | None = None,
                 layout: str | None = None, seed: int = 0, role: str | None = None):
        if role not in (None, *ROLES):
            raise ValueError(f"role={role!r}: use one of {ROLES} or None")
        self.folder = Path(folder)
        self.layout, items = detect_layout(folder, layout)
        if self.layout == "unpaired":
            raise LayoutError(f"{folder}: holds unpaired images only (no ground truth); use RealDomainUnlabeled")
        self.role = role if self.folder.name in SHARED_PUBLIC else None
        self.items = [it for it in items if (split is None or scene_split(it.scene) == split)
                      and (self.role is None or public_role(it.rainy.name) == self.role)]
        if not self.items:
            raise LayoutError(f"{folder}: no scene falls in the {split!r} split / {role!r} role "
                              f"({len(items)} items in all)")
        self.crop, self.seed, self.epoch = crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """New crops each epoch (item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rainy, clean = load_pair(self.items[i], min_size=self.crop or 1)
        if self.crop:
            g = generator(seed_of(self.seed, i) if self.epoch == 0 else seed_of(self.seed, self.epoch, i))
            rainy, clean = random_crop(rainy, self.crop, g, clean)
        return {"rainy": rainy, "clean": clean, "name": self.items[i].rainy.name}

    def manifest(self) -> dict:
        """The files read, for the run record."""
        from .config import folder_manifest

        return {"source": "folder", "folder": str(self.folder), "layout": self.layout, "role": self.role,
                "files": folder_manifest([it.rainy for it in self.items])}
