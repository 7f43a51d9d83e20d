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
from .imageops import to_uint8
from .scenes import (PHOTO_SIZE, SPLITS, bundled_photos, dead_leaves, heuristic_depth, load_photo, random_crop,
                     split_files)
from .utils import generator, seed_of

__all__ = ["SceneBank", "PairedRainDataset", "RealDomainUnlabeled", "FixedPairs", "assert_unlabeled",
           "to_uint8"]


def _augment(x: torch.Tensor, g: torch.Generator, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    flip = bool(torch.rand(1, generator=g) < 0.5)
    return tuple(t.flip(-1) if flip else t for t in (x, *others))


class SceneBank:
    """Clean scenes of one split, drawn as ``(3,S,S)`` crops with a depth map ``(1,S,S)``.

    ``source``: ``"procedural"`` (dead leaves; ``n`` scenes made once and kept in memory), ``"photos"``
    (the bundled photographs; **test split only**) or ``"folder"`` (``folder`` of clean photographs, split by file
    and stratified by collection with :func:`ttl.scenes.split_files`). Photographs are worked on at a common scale
    (short side ``photo_size``, :func:`ttl.scenes.load_photo`), cut into random crops with a heuristic depth;
    :attr:`scale` is what renderers must be told so that rain on a crop looks like rain on the whole photograph.
    """

    def __init__(self, source: str = "procedural", split: str = "train", size: int = 64, n: int = 256, seed: int = 0,
                 folder: str | os.PathLike | None = None, photo_size: int = PHOTO_SIZE):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.source, self.split, self.size, self.seed = source, split, size, seed
        self.photo_size = max(photo_size, size)
        self.scale: float | None = self.photo_size / 256
        if source == "procedural":
            self.images, self.depth = dead_leaves(n, size, seed=seed, split=split)
            self.paths: list[Path] = []
            self.scale = None
        elif source == "photos":
            if split != "test":
                raise ValueError("the bundled photographs are for test splits only; use source='procedural' or "
                                 "'folder' for training and validation")
            self.paths = [p.path for p in bundled_photos()]
        elif source == "folder":
            self.paths = split_paths(folder, split, "clean_dir")
        else:
            raise ValueError(f"unknown scene source {source!r}; valid: procedural, photos, folder")

    def __len__(self) -> int:
        return len(self.images) if self.source == "procedural" else len(self.paths)

    def get(self, i: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Scene ``i`` (a random crop and flip drawn from ``g`` for photographs)."""
        if self.source == "procedural":
            img, depth = self.images[i % len(self.images)], self.depth[i % len(self.images)]
            return _augment(img, g, depth)
        photo = load_photo(self.paths[i % len(self.paths)], self.photo_size, min_size=self.size)
        crop = _augment(random_crop(photo, self.size, g)[0], g)[0]
        return crop, heuristic_depth(crop[None])[0]

    def manifest(self) -> dict:
        """What the bank holds, for the run record."""
        from .config import folder_manifest

        if self.source == "procedural":
            return {"source": "procedural", "split": self.split, "n": len(self), "size": self.size, "seed": self.seed}
        return {"source": self.source, "split": self.split, "size": self.size, "photo_size": self.photo_size,
                "files": folder_manifest(self.paths)}


def split_paths(folder: str | os.PathLike | None, split: str, name: str = "folder") -> list[Path]:
    """The image files of ``folder`` (searched recursively) in ``split`` (:func:`ttl.scenes.split_files`; a folder
    too small to have that split gives all its files to ``train``). Clear errors for a missing or empty folder."""
    if folder is None:
        raise ValueError(f"{name} is needed here: pass a folder of images")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{name}={str(folder)!r} is not a folder; pass a folder of images")
    allp = list_images(folder, recursive=True)
    if not allp:
        raise FileNotFoundError(f"{name}={str(folder)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    paths = split_files(allp)[split]
    if not paths:
        raise FileNotFoundError(f"{name}={str(folder)!r}: no image falls in the {split!r} split ({len(allp)} images "
                                "in all, split 80/10/10 by file); add more images")
    return paths


class FixedPairs(Dataset):
    """Fixed ``{"rainy", "clean"}`` pairs of any sizes, held in memory as 8-bit images: a paired dataset on disk,
    rendered once. ``scenes[i]`` names the scene of pair ``i`` (several renders may share one), so that minorities can
    be drawn by scene. With ``patch`` (an int, or a function of the epoch), item ``i`` of epoch ``e`` is a random
    ``patch`` crop and flip fixed by ``(seed, e, i)``; without, the whole images (evaluation)."""

    def __init__(self, rainy: list[torch.Tensor], clean: list[torch.Tensor], scenes: list[str] | None = None,
                 patch=None, seed: int = 0, manifest: dict | None = None):
        if len(rainy) != len(clean) or not rainy:
            raise ValueError(f"need as many rainy as clean images (and at least one), got {len(rainy)} and {len(clean)}")
        for r, c in zip(rainy, clean):
            if r.shape != c.shape:
                raise ValueError(f"a rainy image {tuple(r.shape)} and its clean image {tuple(c.shape)} differ in size")
        self.rainy = [to_uint8(r) if r.is_floating_point() else r for r in rainy]
        self.clean = [to_uint8(c) if c.is_floating_point() else c for c in clean]
        self.scenes = list(scenes) if scenes is not None else [str(i) for i in range(len(rainy))]
        self.patch, self.seed, self.epoch, self.info = patch, seed, 0, dict(manifest or {})

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def patch_size(self) -> int | None:
        """The crop size of the current epoch (``None``: whole images)."""
        return self.patch(self.epoch) if callable(self.patch) else self.patch

    def __len__(self) -> int:
        return len(self.rainy)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        p = self.patch_size()
        if not p:
            return [{"rainy": self.rainy[i].float() / 255, "clean": self.clean[i].float() / 255} for i in idx]
        g = generator(seed_of(self.seed, 3, self.epoch, *idx))
        out = []
        for i in idx:
            r, c = random_crop(self.rainy[i], p, g, self.clean[i])
            r, c = _augment(r, g, c)
            out.append({"rainy": r.float() / 255, "clean": c.float() / 255})
        return out

    def subset(self, indices: list[int]) -> "FixedPairs":
        """The pairs ``indices`` (the same tensors, not copies), with this dataset's patch and seed."""
        return FixedPairs([self.rainy[i] for i in indices], [self.clean[i] for i in indices],
                          [self.scenes[i] for i in indices], self.patch, self.seed, self.info)

    def manifest(self) -> dict:
        return {**self.info, "pairs": len(self), "scenes": len(set(self.scenes))}


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
        s = self.bank.scale
        out = r(clean, g, depth, scale=s) if isinstance(r, RealisticRain) else r(clean, g, scale=s)
        return [{"rainy": out.rainy[k], "clean": out.clean[k]} for k in range(len(idx))]


class RealDomainUnlabeled(Dataset):
    """Unlabeled real-domain images: every item is ``{"rainy": (3,S,S)}`` and nothing else.

    Sources, mixed item by item (even items real, odd items rendered, when both are given):

    * ``real_dir``: random crops of the real rainy photographs of ``split``;
    * ``clean_dir``: realistic rain rendered on random crops of the clean photographs of ``split``. The photograph
      is read from its file inside ``__getitems__`` and dropped once rendered: the object keeps file paths only;
    * neither: realistic rain on procedural scenes of ``split`` (``n`` scenes), regenerated from their seed inside
      ``__getitems__`` and never stored.

    So no clean image of the real domain can be reached from this object (a file that cannot be read raises
    :class:`ttl.io.ImageReadError` naming it). Photographs are cropped at the common working scale (short side
    ``photo_size``) and rain is rendered for that scale.
    """

    def __init__(self, size: int = 64, n: int | None = None, seed: int = 0, split: str = "train",
                 real_dir: str | os.PathLike | None = None, renderer: RealisticRain | None = None,
                 clean_dir: str | os.PathLike | None = None, photo_size: int = PHOTO_SIZE):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.size, self.seed, self.split, self.epoch = size, seed, split, 0
        self.photo_size = max(photo_size, size)
        self.renderer = renderer or RealisticRain()
        self.paths = split_paths(real_dir, split, "real_dir") if real_dir is not None else []
        self.render_paths = split_paths(clean_dir, split, "clean_dir") if clean_dir is not None else []
        self.n = n or (len(self.paths) + len(self.render_paths)) or 256

    def set_epoch(self, epoch: int) -> None:
        """New rain (and crops) each epoch; item ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def _source(self, i: int) -> tuple[str, int]:
        if self.paths and self.render_paths:
            return ("real", i // 2) if i % 2 == 0 else ("render", i // 2)
        return ("real", i) if self.paths else ("render", i)

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        g = generator(seed_of(self.seed, 7, self.epoch, *idx))
        out: list[torch.Tensor | None] = [None] * len(idx)
        todo, crops, depths = [], [], []
        for k, i in enumerate(idx):
            kind, j = self._source(i)
            if kind == "real":
                photo = load_photo(self.paths[j % len(self.paths)], self.photo_size, min_size=self.size)
                out[k] = _augment(random_crop(photo, self.size, g)[0], g)[0]
                continue
            if self.render_paths:
                photo = load_photo(self.render_paths[j % len(self.render_paths)], self.photo_size, min_size=self.size)
                crop = _augment(random_crop(photo, self.size, g)[0], g)[0]
                depth = heuristic_depth(crop[None])[0]
            else:  # scene j of this split, regenerated from its seed (dead_leaves is deterministic per index)
                imgs, d = dead_leaves(1, self.size, seed=self.seed, split=self.split, start=j % self.n)
                crop, depth = imgs[0], d[0]
            todo.append(k)
            crops.append(crop)
            depths.append(depth)
        if todo:
            scale = self.photo_size / 256 if self.render_paths else None
            rainy = self.renderer(torch.stack(crops), g, torch.stack(depths), scale=scale).rainy  # clean dropped here
            for k, r in zip(todo, rainy):
                out[k] = r
        return [{"rainy": x} for x in out]

    def manifest(self) -> dict:
        from .config import folder_manifest

        m: dict = {"split": self.split, "size": self.size, "n": self.n}
        if self.paths:
            m["real_dir"] = folder_manifest(self.paths)
        if self.render_paths:
            m["clean_dir_rendered"] = {"files": folder_manifest(self.render_paths),
                                       "rain": "realistic (clean discarded)", "photo_size": self.photo_size}
        if not self.paths and not self.render_paths:
            m["procedural"] = {"rain": "realistic (clean discarded)", "seed": self.seed}
        return m


def assert_unlabeled(batch: dict) -> dict:
    """Raise if a real-domain training batch carries anything but the rainy image (a ground-truth leak)."""
    extra = set(batch) - {"rainy"}
    if extra:
        raise RuntimeError(f"real-domain training batch carries {sorted(extra)}: the real domain's ground truth must "
                           "never reach training. Use ttl.datasets.RealDomainUnlabeled for real-domain data.")
    return batch
