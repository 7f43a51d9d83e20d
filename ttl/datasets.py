"""Datasets: paired synthetic data, unlabeled real-domain data, public dataset layouts, scene-disjoint splits.

* :class:`SceneBank` — clean scenes of one split (procedural, bundled photos, or a user folder) with depth.
* :class:`PairedRainDataset` — ``{"rainy", "clean"}`` pairs made on the fly by a renderer (synthetic rain
  for supervised training; realistic rain for *evaluation*).
* :class:`RealDomainUnlabeled` — ``{"rainy"}`` only. Built from a folder of real rainy photographs, or by
  rendering realistic rain on procedural scenes; in the second case the clean scene exists only as a local
  variable inside ``__getitem__`` and is discarded, so this dataset **cannot** yield the real domain's ground
  truth. Training code for the real domain takes this class (see :func:`assert_unlabeled`).
Public datasets on disk (their layouts, :class:`ttl.layouts.PairedFolderDataset`) live in :mod:`ttl.layouts`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .io import IMAGE_EXTENSIONS, list_images, read_image
from .rain import RealisticRain
from .scenes import SPLITS, bundled_photos, dead_leaves, heuristic_depth, scene_split, zoomed_crop
from .utils import generator, seed_of

__all__ = ["SceneBank", "PairedRainDataset", "RealDomainUnlabeled", "assert_unlabeled"]


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
        g = generator(seed_of(self.seed, self.epoch, *idx))
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
        g = generator(seed_of(self.seed, 7, self.epoch, *idx))
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
