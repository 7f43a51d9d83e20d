"""Datasets: paired synthetic data, unlabeled real-domain data, public dataset layouts, scene-disjoint splits.

* :class:`SceneBank` — clean scenes of one split (procedural, bundled photos, or a user folder) with depth.
* :class:`PairedRainDataset` — ``{"rainy", "clean"}`` pairs made on the fly by a renderer (synthetic rain
  for supervised training; realistic rain for *evaluation*).
* :class:`RealDomainUnlabeled` — ``{"rainy"}`` only. Built from a folder of real rainy photographs, or by
  rendering realistic rain on procedural scenes; in the second case the clean scene exists only as a local
  variable inside ``__getitem__`` and is discarded, so this dataset **cannot** yield the real domain's ground
  truth. Training code for the real domain takes this class (see :func:`assert_unlabeled`).
* :func:`detect_layout` — recognises the layouts the public deraining sets ship in and pairs their files.
* :func:`scene_split` — a stable, scene-disjoint train/val/test assignment.
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

from .io import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image
from .rain import RealisticRain
from .scenes import SPLITS, bundled_photos, dead_leaves, heuristic_depth, random_crop, zoomed_crop
from .utils import generator

__all__ = ["SceneBank", "PairedRainDataset", "RealDomainUnlabeled", "PairedFolderDataset", "assert_unlabeled",
           "detect_layout", "LAYOUTS", "LayoutError", "PairedItem", "scene_split", "SPLITS"]

def scene_split(scene_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), salt: str = "ttl") -> str:
    """Stable split of a scene by the SHA-1 of its id: every image of one scene lands in the same split."""
    u = int(hashlib.sha1(f"{salt}:{scene_id}".encode()).hexdigest()[:12], 16) / 16 ** 12
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def _seed_of(*parts: int) -> int:
    h = hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()
    return int(h[:15], 16)


def _augment(x: torch.Tensor, g: torch.Generator, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    flip = bool(torch.rand(1, generator=g) < 0.5)
    return tuple(t.flip(-1) if flip else t for t in (x, *others))


class SceneBank:
    """Clean scenes of one split, each ``(3,S,S)`` with a depth map ``(1,S,S)``.

    ``source``: ``"procedural"`` (dead leaves; ``n`` scenes made once and kept in memory), ``"photos"``
    (bundled photographs; **test split only**) or ``"folder"`` (``folder`` of clean images, split by
    :func:`scene_split` on the file stem). Photos and folders give random crops (resized so the short side is
    ``size * zoom`` with zoom in [1, 1.5]) and a heuristic depth.
    """

    def __init__(self, source: str = "procedural", split: str = "train", size: int = 64, n: int = 256, seed: int = 0,
                 folder: str | os.PathLike | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.source, self.split, self.size, self.seed = source, split, size, seed
        if source == "procedural":
            self.images, self.depth = dead_leaves(n, size, seed=seed, split=split)
            self.paths: list[Path] = []
        elif source == "photos":
            if split != "test":
                raise ValueError("the bundled photographs are for test splits only; use source='procedural' or "
                                 "'folder' for training and validation")
            self.paths = [p.path for p in bundled_photos()]
            self._cache = [read_image(p) for p in self.paths]
        elif source == "folder":
            if folder is None:
                raise ValueError("source='folder' needs folder=<a folder of clean images>")
            folder = Path(folder)
            if not folder.is_dir():
                raise FileNotFoundError(f"clean_dir={str(folder)!r} is not a folder; pass a folder of clean images")
            allp = list_images(folder, recursive=True)
            if not allp:
                raise FileNotFoundError(f"clean_dir={str(folder)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.paths = [p for p in allp if scene_split(p.stem) == split] or (allp if split == "train" else [])
            if not self.paths:
                raise FileNotFoundError(f"clean_dir={str(folder)!r}: no image falls in the {split!r} split "
                                        f"({len(allp)} images in all); add more images")
            self._cache = {}
        else:
            raise ValueError(f"unknown scene source {source!r}; valid: procedural, photos, folder")

    def __len__(self) -> int:
        return len(self.images) if self.source == "procedural" else len(self.paths)

    CACHE_IMAGES = 256  # folder images kept in memory (the rest are read again when drawn)

    def _load(self, i: int) -> torch.Tensor:
        if self.source == "photos":
            return self._cache[i]
        if i in self._cache:
            return self._cache[i]
        img = read_image(self.paths[i], min_size=self.size)
        if len(self._cache) < self.CACHE_IMAGES:
            self._cache[i] = img
        return img

    def get(self, i: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Scene ``i`` (a random crop and flip drawn from ``g`` for photos and folders)."""
        if self.source == "procedural":
            img, depth = self.images[i % len(self.images)], self.depth[i % len(self.images)]
            return _augment(img, g, depth)
        crop = zoomed_crop(self._load(i % len(self.paths)), self.size, g)
        return crop, heuristic_depth(crop[None])[0]

    def manifest(self) -> dict:
        """What the bank holds, for the run record."""
        from .config import folder_manifest

        if self.source == "procedural":
            return {"source": "procedural", "split": self.split, "n": len(self), "size": self.size, "seed": self.seed}
        return {"source": self.source, "split": self.split, "size": self.size, "files": folder_manifest(self.paths)}


class PairedRainDataset(Dataset):
    """``{"rainy", "clean"}`` pairs: scenes from ``bank`` with rain from ``renderer``, made on the fly.

    ``renderer`` is a :class:`SyntheticRain` / :class:`RealisticRain` or a list of them (drawn per batch).
    Item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``; ``length`` sets the epoch size (default: the bank's
    size). Batches are rendered together (``__getitems__``), which is much faster than one by one."""

    def __init__(self, bank: SceneBank, renderer, seed: int = 0, length: int | None = None):
        self.bank = bank
        self.renderers = list(renderer) if isinstance(renderer, (list, tuple)) else [renderer]
        self.seed, self.length, self.epoch = seed, length or len(bank), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        g = generator(_seed_of(self.seed, self.epoch, *idx))
        scenes = [self.bank.get(i, g) for i in idx]
        clean = torch.stack([s[0] for s in scenes])
        depth = torch.stack([s[1] for s in scenes])
        r = self.renderers[int(torch.randint(0, len(self.renderers), (1,), generator=g))]
        out = r(clean, g, depth) if isinstance(r, RealisticRain) else r(clean, g)
        return [{"rainy": out.rainy[k], "clean": out.clean[k]} for k in range(len(idx))]


class RealDomainUnlabeled(Dataset):
    """Unlabeled real-domain images: every item is ``{"rainy": (3,S,S)}`` and nothing else.

    With ``real_dir``: random crops of real rainy photographs (a file that cannot be read raises
    :class:`ttl.io.ImageReadError` naming it). Without: realistic rain rendered on procedural scenes of
    ``split`` (``n`` scenes); the scenes are regenerated inside ``__getitem__`` from their seed and never stored,
    so no clean image of the real domain can be reached from this object.
    """

    def __init__(self, size: int = 64, n: int = 256, seed: int = 0, split: str = "train",
                 real_dir: str | os.PathLike | None = None, renderer: RealisticRain | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.size, self.n, self.seed, self.split, self.epoch = size, n, seed, split, 0
        self.renderer = renderer or RealisticRain()
        self.paths: list[Path] = []
        if real_dir is not None:
            real_dir = Path(real_dir)
            if not real_dir.is_dir():
                raise FileNotFoundError(f"real_dir={str(real_dir)!r} is not a folder; pass a folder of real rainy images")
            allp = list_images(real_dir, recursive=True)
            self.paths = [p for p in allp if scene_split(p.stem) == split] or (allp if split == "train" else [])
            if not self.paths:
                raise FileNotFoundError(f"real_dir={str(real_dir)!r} has no images for split {split!r}")
            self.n = len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """New rain (and crops) each epoch; item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        g = generator(_seed_of(self.seed, 7, self.epoch, *idx))
        if self.paths:
            out = []
            for i in idx:
                im = read_image(self.paths[i % len(self.paths)], min_size=16)
                out.append({"rainy": _augment(zoomed_crop(im, self.size, g), g)[0]})
            return out
        imgs, depth = zip(*(self._scene(i) for i in idx))
        rainy = self.renderer(torch.stack(imgs), g, torch.stack(depth)).rainy  # the clean scene is dropped here
        return [{"rainy": rainy[k]} for k in range(len(idx))]

    def _scene(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # scene i of this split, regenerated from its seed (dead_leaves is deterministic per index)
        imgs, depth = dead_leaves(1, self.size, seed=self.seed, split=self.split, start=i % self.n)
        return imgs[0], depth[0]

    def manifest(self) -> dict:
        from .config import folder_manifest

        if self.paths:
            return {"source": "real_dir", "split": self.split, "files": folder_manifest(self.paths)}
        return {"source": "procedural+realistic rain (clean discarded)", "split": self.split, "n": self.n,
                "size": self.size, "seed": self.seed}


def assert_unlabeled(batch: dict) -> dict:
    """Raise if a real-domain training batch carries anything but the rainy image (a ground-truth leak)."""
    extra = set(batch) - {"rainy"}
    if extra:
        raise RuntimeError(f"real-domain training batch carries {sorted(extra)}: the real domain's ground truth must "
                           "never reach training. Use ttl.datasets.RealDomainUnlabeled for real-domain data.")
    return batch


# ------------------------------------------------------------------------------------------ public layouts
LAYOUTS = {
    "rain1400": "Rain1400/DDN: rainy_image/{id}_{k}.* (k = 1..14) and ground_truth/{id}.*",
    "rain13k-test": "Rain13K test layout (Rain100L/H, Test100, Rain800, Test1200...): input/ and target/ with matching names",
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
        gts = {p.stem: p for p in _images(folder / "ground_truth")}
        items, missing = [], []
        for r in _images(folder / "rainy_image"):
            sid = r.stem.rsplit("_", 1)[0]
            (items.append(PairedItem(r, gts[sid], sid)) if sid in gts else missing.append(r.name))
        if missing:
            raise LayoutError(f"{folder}: layout 'rain1400', but {len(missing)} rainy files have no ground truth "
                              f"(e.g. {', '.join(missing[:3])})")
        if items:
            return "rain1400", items
    if want("rain13k-test") and (folder / "input").is_dir() and (folder / "target").is_dir():
        return "rain13k-test", _match(_images(folder / "input"), _images(folder / "target"), folder, "rain13k-test")
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
    from .gap import luminance, rain_layer_estimate

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


class PairedFolderDataset(Dataset):
    """A public (or any paired) dataset on disk, split by scene: ``{"rainy", "clean"}`` items.

    ``crop``: random aligned crops of that size (training); ``None``: whole images (evaluation)."""

    def __init__(self, folder: str | os.PathLike, split: str | None = None, crop: int | None = None,
                 layout: str | None = None, seed: int = 0):
        self.folder = Path(folder)
        self.layout, items = detect_layout(folder, layout)
        if self.layout == "unpaired":
            raise LayoutError(f"{folder}: holds unpaired images only (no ground truth); use RealDomainUnlabeled")
        self.items = [it for it in items if split is None or scene_split(it.scene) == split]
        if not self.items:
            raise LayoutError(f"{folder}: no scene falls in the {split!r} split ({len(items)} items in all)")
        self.crop, self.seed, self.epoch = crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """New crops each epoch (item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rainy, clean = load_pair(self.items[i], min_size=self.crop or 1)
        if self.crop:
            g = generator(_seed_of(self.seed, i) if self.epoch == 0 else _seed_of(self.seed, self.epoch, i))
            rainy, clean = random_crop(rainy, self.crop, g, clean)
        return {"rainy": rainy, "clean": clean, "name": self.items[i].rainy.name}

    def manifest(self) -> dict:
        """The files read, for the run record."""
        from .config import folder_manifest

        return {"source": "folder", "folder": str(self.folder), "layout": self.layout,
                "files": folder_manifest([it.rainy for it in self.items])}
