"""Clean scenes: procedural dead-leaves images, bundled photographs, and user folders.

Every source yields float32 RGB tensors in ``[0, 1]`` with a *depth* map in ``[0, 1]`` (0 = at the camera,
1 = far away), which the realistic rain renderer needs for perspective and veiling.

* :func:`dead_leaves` renders occluding, textured, shaded leaves. Leaves painted later are nearer, so the
  occlusion order gives a depth map; nearer leaves are also larger (perspective). Dead-leaves images share the
  power-law spectrum and edge statistics of photographs.
* :func:`bundled_photos` lists the natural photographs shipped inside our dependencies (scikit-image's
  ``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``motorcycle_left``/``right``; scikit-learn's
  ``china``/``flower`` when installed; matplotlib's ``grace_hopper``). They are for **test** splits only.
* user folders of clean images are read by :class:`ttl.datasets.SceneBank` (``source="folder"``).

Photographs carry no depth; :func:`heuristic_depth` stands in (farther towards the top, bright smooth regions
such as sky farther).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .imageops import gaussian_blur, to_uint8
from .utils import generator

__all__ = ["dead_leaves", "heuristic_depth", "bundled_photos", "Photo", "random_crop", "zoomed_crop",
           "resize_short_side", "scene_seed", "SPLITS", "collection_of", "split_files", "scene_split", "load_photo", "PHOTO_SIZE"]

SPLITS = ("train", "val", "test")
PHOTO_SIZE = 320  # the short side (px) at which photographs are worked on: training crops are cut at this scale
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def scene_split(scene_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), salt: str = "ttl") -> str:
    """Stable split of a scene by the SHA-1 of its id: every image of one scene lands in the same split."""
    u = int(hashlib.sha1(f"{salt}:{scene_id}".encode()).hexdigest()[:12], 16) / 16 ** 12
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def collection_of(path: str | Path) -> str:
    """The collection a photograph belongs to: its file-name prefix before the first ``_`` (``urban_012.jpg`` ->
    ``urban``), or ``""`` for names without one."""
    stem = Path(path).stem
    return stem.split("_", 1)[0] if "_" in stem else ""


def split_files(paths, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, list[Path]]:
    """Split image files scene-disjointly (one file = one scene) into ``train``/``val``/``test``, stratified by
    collection (:func:`collection_of`): within each collection, files are ordered by a hash of their name and the
    first ``round(f_train * n)`` go to train, the next ``round(f_val * n)`` to val, the rest to test. The
    assignment depends only on the file names, so it is the same on every machine and for every seed."""
    groups: dict[str, list[Path]] = {}
    for p in sorted(Path(p) for p in paths):
        groups.setdefault(collection_of(p), []).append(p)
    out: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for files in groups.values():
        files = sorted(files, key=lambda p: hashlib.sha1(f"ttl-split:{p.name}".encode()).hexdigest())
        n_train = round(fractions[0] * len(files))
        n_val = round(fractions[1] * len(files))
        out["train"] += files[:n_train]
        out["val"] += files[n_train:n_train + n_val]
        out["test"] += files[n_train + n_val:]
    return {k: sorted(v) for k, v in out.items()}


def scene_seed(split: str, seed: int, index: int) -> int:
    """The generator seed of procedural scene ``index``: a hash of (split, seed, index), so that scenes of
    different splits (and different study seeds) never coincide."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return int(hashlib.sha1(f"dead-leaves:{split}:{seed}:{index}".encode()).hexdigest()[:15], 16)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    return v[..., None] - v[..., None] * s[..., None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _leaf_params(g: torch.Generator, n: int, size: int) -> dict[str, torch.Tensor]:
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    # depth of each leaf: painted later = nearer; sorted from far (1) to near (0.05)
    depth = torch.sort(0.05 + 0.95 * u(n), descending=True).values
    # power-law radii (density ~ r^-3 between rmin and rmax), larger when nearer
    rmin, rmax = 0.012 * size, 0.4 * size
    r = rmin / torch.sqrt(1 - u(n) * (1 - (rmin / rmax) ** 2))
    r = r * (0.6 + 0.8 * (1 - depth))
    # natural palette: foliage, earth, stone, sky/water, and some saturated objects
    family = torch.multinomial(torch.tensor([0.35, 0.25, 0.2, 0.1, 0.1]), n, replacement=True, generator=g)
    hue_c = torch.tensor([0.27, 0.08, 0.1, 0.58, 0.0])[family]
    hue_w = torch.tensor([0.08, 0.05, 0.3, 0.06, 1.0])[family]
    sat_c = torch.tensor([0.45, 0.45, 0.08, 0.35, 0.7])[family]
    hue = (hue_c + (u(n) - 0.5) * hue_w) % 1.0
    sat = (sat_c * (0.5 + u(n))).clamp(0, 1)
    val = 0.12 + 0.8 * u(n) ** 0.8
    return {
        "cx": u(n) * size, "cy": u(n) * size, "a": r, "b": r * (0.35 + 0.65 * u(n)),
        "theta": u(n) * math.pi, "depth": depth, "rgb": _hsv_to_rgb(hue, sat, val),
        # texture: an oriented grating plus its harmonic; shading: a linear light gradient across the leaf
        "tex_f": 2 * math.pi / (2 + 18 * u(n)), "tex_o": u(n) * math.pi, "tex_p": u(n) * 2 * math.pi,
        "tex_a": 0.25 * u(n) ** 1.5, "shade_o": u(n) * 2 * math.pi, "shade_a": 0.5 * u(n),
    }


def _paint_index(p: dict[str, torch.Tensor], h: int, w: int) -> np.ndarray:
    """Index of the top-most leaf at each pixel (0 = none), painting far to near within each leaf's box.

    Most leaves are small, so working inside bounding boxes is ~20x faster than testing every pixel."""
    idx = np.zeros((h, w), dtype=np.int64)
    cx, cy, a, b, th = (p[k].numpy() for k in ("cx", "cy", "a", "b", "theta"))
    ct, st = np.cos(th), np.sin(th)
    for k in range(cx.shape[0]):
        r = a[k]
        x0, x1 = max(0, int(cx[k] - r)), min(w, int(cx[k] + r) + 2)
        y0, y1 = max(0, int(cy[k] - r)), min(h, int(cy[k] + r) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx[k]
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy[k]
        inside = ((dx * ct[k] + dy * st[k]) / a[k]) ** 2 + ((-dx * st[k] + dy * ct[k]) / b[k]) ** 2 <= 1.0
        idx[y0:y1, x0:x1][inside] = k + 1
    return idx


def dead_leaves(n: int, size: int | tuple[int, int] = 128, seed: int = 0, split: str = "train",
                leaves: int = 600, blur: float = 0.6, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render scenes ``start .. start+n-1``; scene ``i`` depends only on ``(split, seed, i)`` (:func:`scene_seed`).

    Returns ``(images (n,3,H,W), depth (n,1,H,W))``. Different splits never share a scene.
    """
    h, w = (size, size) if isinstance(size, int) else size
    side = max(h, w)
    params = [_leaf_params(generator(scene_seed(split, seed, start + i)), leaves, side) for i in range(n)]
    P = {k: torch.stack([p[k] for p in params]) for k in params[0]}  # (n, leaves, ...)
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    idx = torch.from_numpy(np.stack([_paint_index(p, h, w) for p in params]))  # 0 = background; k+1 = leaf k

    # background: a sky-to-ground gradient, far away
    tone = torch.stack([torch.rand(3, generator=generator(scene_seed(split, seed, start + i) + 1)) for i in range(n)]) * 0.3
    sky = (0.55 + tone)[:, :, None, None] * (1 - ys.view(1, 1, h, 1) / h) * 0.9 + 0.1
    bg = sky.expand(n, 3, h, w)
    flat = idx.clamp(min=1) - 1  # (n,h,w)

    def gather(name: str) -> torch.Tensor:
        v = P[name]
        if v.ndim == 2:
            return torch.gather(v, 1, flat.view(n, -1)).view(n, h, w)
        return torch.stack([torch.gather(v[..., c], 1, flat.view(n, -1)).view(n, h, w) for c in range(v.shape[-1])], 1)

    X, Y = xs.view(1, 1, w).expand(n, h, w), ys.view(1, h, 1).expand(n, h, w)
    proj = X * torch.cos(gather("tex_o")) + Y * torch.sin(gather("tex_o"))
    f, ph, amp = gather("tex_f"), gather("tex_p"), gather("tex_a")
    texture = 1 + amp * (torch.sin(f * proj + ph) + 0.5 * torch.sin(2.3 * f * proj + 1.7 * ph))
    so = gather("shade_o")
    rel = ((X - gather("cx")) * torch.cos(so) + (Y - gather("cy")) * torch.sin(so)) / gather("a")
    shading = 1 + gather("shade_a") * rel.clamp(-1, 1)
    leaf_rgb = gather("rgb") * (texture * shading)[:, None]
    is_leaf = (idx > 0)[:, None]
    img = torch.where(is_leaf, leaf_rgb, bg)
    depth = torch.where(is_leaf, gather("depth")[:, None], torch.ones(n, 1, h, w))
    if blur > 0:
        img = gaussian_blur(img, blur)
        depth = gaussian_blur(depth, 1.0)
    return img.clamp(0, 1), depth.clamp(0, 1)


def heuristic_depth(img: torch.Tensor) -> torch.Tensor:
    """A plausible depth map for a photograph without one: ``(B,3,H,W) -> (B,1,H,W)`` in [0,1].

    Farther towards the top of the frame, and bright smooth regions (sky) pushed back. It only has to order
    near and far for veiling and streak perspective; it is not a depth estimator.
    """
    b, _, h, w = img.shape
    ramp = torch.linspace(1.0, 0.15, h, device=img.device).view(1, 1, h, 1).expand(b, 1, h, w)
    lum = img.mean(1, keepdim=True)
    small = F.interpolate(lum, size=(max(8, h // 8), max(8, w // 8)), mode="area")
    smooth = F.interpolate(gaussian_blur(small, 1.5), size=(h, w), mode="bilinear", align_corners=False)
    return (0.7 * ramp + 0.3 * smooth).clamp(0.05, 1.0)


@dataclass(frozen=True)
class Photo:
    """A bundled photograph: a name, its file, and the scene it shows (stereo views share a scene)."""

    name: str
    path: Path
    scene: str


def bundled_photos() -> list[Photo]:
    """The natural photographs that ship inside installed dependencies (test splits only)."""
    out: list[Photo] = []
    spec = importlib.util.find_spec("skimage")
    if spec and spec.origin:
        d = Path(spec.origin).parent / "data"
        for name, fname, scene in [("astronaut", "astronaut.png", "astronaut"), ("chelsea", "chelsea.png", "chelsea"),
                                   ("coffee", "coffee.png", "coffee"), ("rocket", "rocket.jpg", "rocket"),
                                   ("motorcycle_left", "motorcycle_left.png", "motorcycle"),
                                   ("motorcycle_right", "motorcycle_right.png", "motorcycle")]:
            if (d / fname).is_file():
                out.append(Photo(name, d / fname, scene))
    spec = importlib.util.find_spec("sklearn")
    if spec and spec.origin:
        d = Path(spec.origin).parent / "datasets" / "images"
        for fname in ("china.jpg", "flower.jpg"):
            if (d / fname).is_file():
                out.append(Photo(Path(fname).stem, d / fname, Path(fname).stem))
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.origin:
        p = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if p.is_file():
            out.append(Photo("grace_hopper", p, "grace_hopper"))
    if not out:
        raise FileNotFoundError("no bundled photographs found: install scikit-image and matplotlib (pip install -e .)")
    return out


def resize_short_side(img: torch.Tensor, short: int) -> torch.Tensor:
    """Resize ``(3,H,W)`` or ``(B,3,H,W)`` so that the short side is ``short`` (antialiased when shrinking)."""
    squeeze = img.ndim == 3
    x = img[None] if squeeze else img
    h, w = x.shape[-2:]
    s = short / min(h, w)
    size = (max(short, round(h * s)), max(short, round(w * s)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=s < 1).clamp(0, 1)
    return x[0] if squeeze else x


def zoomed_crop(img: torch.Tensor, size: int, g: torch.Generator, max_zoom: float = 1.5) -> torch.Tensor:
    """A random ``size`` x ``size`` crop after resizing the short side to ``size * zoom``, zoom uniform in
    ``[1, max_zoom]``: varied framing from a few photographs."""
    zoom = 1.0 + (max_zoom - 1.0) * float(torch.rand(1, generator=g))
    return random_crop(resize_short_side(img, int(size * zoom)), size, g)[0]


def random_crop(img: torch.Tensor, size: int, g: torch.Generator, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random ``size`` x ``size`` crop of ``img`` (…,H,W) and of each of ``others``."""
    h, w = img.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {w}x{h} image; resize it first")
    y = int(torch.randint(0, h - size + 1, (1,), generator=g))
    x = int(torch.randint(0, w - size + 1, (1,), generator=g))
    return tuple(t[..., y:y + size, x:x + size] for t in (img, *others))


@functools.lru_cache(maxsize=1024)
def _photo_u8(path: str, short_side: int, min_size: int, mtime_ns: int) -> torch.Tensor:
    from .io import read_image

    img = read_image(path, min_size=min_size)
    if short_side and min(img.shape[-2:]) != short_side:
        img = resize_short_side(img, short_side)
    return to_uint8(img)


def load_photo(path: str | os.PathLike, short_side: int = PHOTO_SIZE, min_size: int = 16) -> torch.Tensor:
    """A photograph resized so that its short side is ``short_side`` (0: as it is), as float ``(3,H,W)``; a file
    with a side below ``min_size`` px is refused (:class:`ttl.io.ImageReadError` naming it).

    Decodes are cached per process (8-bit, about 0.4 MB a photograph at 320 px), so that datasets can keep file
    paths only and still draw crops quickly; a changed file is read again."""
    p = Path(path)
    return _photo_u8(str(p), int(short_side), int(min_size), p.stat().st_mtime_ns).float() / 255
