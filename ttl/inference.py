"""Deraining photographs with a trained checkpoint, and scoring results against ground truth.

* :func:`derain_image` — one ``(3,H,W)`` image of any size (1x1 to tens of megapixels): overlapping tiles,
  blended with a linear taper, accumulated on the CPU, so memory is bounded by the tile size.
* :func:`derain_paths` — a file or a folder (recursive, relative paths kept) to PNG files; a bad file is
  reported (name, reason, fix) and the others are still processed. Input files are never overwritten.
* :func:`evaluate_folders` — PSNR-Y, SSIM-Y, PSNR-RGB, SSIM-RGB and mean ΔY of a folder of results against a folder of
  ground truths (matched by normalised file stem) or a public dataset root (see :func:`ttl.layouts.detect_layout`).

The command line wraps these as ``ttl derain`` and ``ttl evaluate``.
"""
from __future__ import annotations

import math
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .layouts import LayoutError, _norm, detect_layout
from .io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError, list_images, pnm_header, read_image, save_image
from .metrics import ALL_METRICS, METRIC_LABELS, image_metrics
from .models import pad_to_multiple
from .utils import error_brief, resolve_device

__all__ = ["derain_image", "derain_paths", "DerainReport", "evaluate_folders", "evaluation_table",
           "save_evaluation", "WEIGHTS_DIR", "SHIPPED", "DEFAULT_MODEL", "resolve_checkpoint"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = ("ttl", "sup-minority", "sup-full", "syn2real")  # the headline models of the committed default run
EVALUATE_METRICS = ALL_METRICS + ("bias_y",)  # ttl evaluate: the field's four, and the output's mean brightness error
DEFAULT_MODEL = "derain"  # the shipped deraining model (make weights, ttl.ship): weights/derain/derain.pt


def resolve_checkpoint(checkpoint: str | os.PathLike | None, preset: str = "default") -> Path:
    """A checkpoint argument as a file: ``None`` is the shipped deraining model (``weights/derain/derain.pt``, written
    by ``make weights``), a bare name a shipped model (``derain``, or one of the study's :data:`SHIPPED` rows in
    ``weights/<preset>/``), anything else a path. Clear errors for what does not exist."""
    if checkpoint is None:
        checkpoint = DEFAULT_MODEL
    p = Path(checkpoint)
    # a bare name is a shipped model unless a *file* of that name exists (a folder named like one, e.g. the
    # package folder `ttl/` when run from the repository root, is not a checkpoint)
    if p.suffix == "" and not p.is_file() and p.name == str(checkpoint):
        folder = WEIGHTS_DIR / (DEFAULT_MODEL if p.name == DEFAULT_MODEL else preset)
        shipped = folder / f"{p.name}.pt"
        if not shipped.is_file():
            have = sorted(q.stem for q in folder.glob("*.pt")) if folder.is_dir() else []
            hint = "run `make weights`" if p.name == DEFAULT_MODEL else "run `make study`"
            raise FileNotFoundError(f"no shipped model {p.name!r} in {folder} (shipped: {DEFAULT_MODEL}, "
                                    f"{', '.join(SHIPPED)}; found there: {', '.join(have) or 'none, ' + hint}); "
                                    "or pass a model file with --checkpoint PATH")
        return shipped
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist; pass a model file saved by ttl.models."
                                f"save_model, or a shipped name ({DEFAULT_MODEL}, {', '.join(SHIPPED)})")
    return p


# ------------------------------------------------------------------------------------------ tiling
def _spans(n: int, tile: int, stride: int, multiple: int) -> list[tuple[int, int]]:
    """Tile ``[start, end)`` spans covering ``0..n``; every start is a multiple of ``multiple`` (so the
    network's stride-2 sampling grid is the same as for the whole image); the last tile ends at ``n``."""
    if n <= tile:
        return [(0, n)]
    starts = list(range(0, n - tile, stride))
    last = (n - tile) // multiple * multiple
    if last > starts[-1]:
        starts.append(last)
    return [(s, s + tile) for s in starts[:-1]] + [(starts[-1], n)]


def _weights(spans: list[tuple[int, int]], overlap: int) -> list[torch.Tensor]:
    """1-D blending weights per tile (a partition of unity). Across each overlap of ``overlap`` px with a
    neighbour, the weight is 0 over the outer quarter (where the tile's zero-padded border corrupts the
    output), then ramps linearly to 1 over the middle half; the neighbour's ramp is the complement. The last
    tile, which may overlap its predecessor by more, ramps up only where the predecessor ramps down."""
    margin = overlap // 4
    ramp = torch.cat([torch.zeros(margin), (torch.arange(overlap - 2 * margin) + 0.5) / max(1, overlap - 2 * margin),
                      torch.ones(margin)])  # ramp[j] + ramp[overlap - 1 - j] == 1
    out = []
    for i, (s, e) in enumerate(spans):
        w = torch.ones(e - s)
        if i > 0:
            k = spans[i - 1][1] - s  # overlap with the predecessor (> overlap only for the last tile)
            w[:max(0, k - overlap)] = 0
            w[max(0, k - overlap):k] *= ramp[max(0, overlap - k):]
        if i + 1 < len(spans):
            k = min(overlap, e - s)
            w[e - s - k:] *= ramp[:k].flip(0)
        out.append(w)
    return out


@torch.inference_mode()
def derain_image(model: nn.Module, img: torch.Tensor, tile: int | None = 512, overlap: int = 128,
                 device: str | torch.device = "auto") -> torch.Tensor:
    """Derain one ``(3,H,W)`` image in [0,1]; returns a CPU float32 ``(3,H,W)`` clamped to [0,1].

    With ``tile`` (rounded up to the network's multiple), the image is cut into tiles overlapping by at least
    ``overlap`` px whose outputs are blended with a linear taper (no seams) into a CPU accumulator: memory is
    the image plus one tile's activations. Tile origins lie on the network's multiple, so for a purely
    convolutional network tiled and whole-image outputs differ only where a tile's zero-padded border reaches a
    pixel with non-negligible weight: the outer quarter of each overlap gets weight 0, so ``overlap / 4`` should
    cover the network's effective receptive field (the default, 128, kept a width-8, depth-3 student without a
    context path within 0.2/255 of the whole-image output; ``overlap=32`` left seams of up to ~25/255). A network
    with a context path (:class:`ttl.models.GlobalContext`) measures its statistics per tile, so its tiled output
    also differs from the whole-image one wherever tiles differ in content; the blending keeps that free of seams,
    and tiles (512 px) are still far larger than the crops it was trained on.
    ``tile=0``/``None`` runs the whole image at once. Tiny images (1x1) are padded (replicate) to the multiple.
    """
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected an image tensor (3,H,W), got shape {tuple(img.shape)}")
    if (tile or 0) < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    if tile and overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    m = int(getattr(model, "multiple", 1))
    cl = dev.type == "cpu"  # oneDNN convolutions are faster on channels-last tensors (same results to ~1e-6)
    img = img.detach().to("cpu", torch.float32)
    h, w = img.shape[-2:]
    if tile:
        tile = max(m, math.ceil(tile / m) * m)
        stride = max(m, (tile - overlap) // m * m)
        ys, xs = _spans(h, tile, stride, m), _spans(w, tile, stride, m)
    else:
        ys, xs, tile, stride = [(0, h)], [(0, w)], 0, 0
    wy, wx = _weights(ys, tile - stride), _weights(xs, tile - stride)
    acc = torch.zeros(3, h, w)
    for (y0, y1), wyi in zip(ys, wy):
        for (x0, x1), wxi in zip(xs, wx):
            x, _ = pad_to_multiple(img[None, :, y0:y1, x0:x1].to(dev).contiguous(), m)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            y = model(x)[0, :, :y1 - y0, :x1 - x0].float().cpu()
            acc[:, y0:y1, x0:x1].addcmul_(y, wyi[:, None] * wxi[None, :])
    sy, sx = torch.zeros(h), torch.zeros(w)
    for (y0, y1), wyi in zip(ys, wy):
        sy[y0:y1] += wyi
    for (x0, x1), wxi in zip(xs, wx):
        sx[x0:x1] += wxi
    assert bool((sy > 0).all() and (sx > 0).all()), "tile weights must cover every pixel"
    return acc.div_(sy[None, :, None]).div_(sx[None, None, :]).clamp_(0, 1)


# ------------------------------------------------------------------------------------------ files
@dataclass
class DerainReport:
    """What :func:`derain_paths` did: ``ok`` (input, output) pairs and ``failed`` (input, message) pairs."""

    ok: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return not self.failed


def _bit_depth(path: Path) -> int:
    """16 for 16-bit PNG/TIFF files and PGM/PPM files with a maximum value above 255, else 8."""
    try:
        with open(path, "rb") as f:
            head = f.read(25)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return 16 if head[24] == 16 else 8
        if head[:2] in (b"P5", b"P6"):
            pnm = pnm_header(path)
            return 16 if pnm is not None and pnm[2] > 255 else 8
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as t:
                return 16 if t.pages[0].bitspersample == 16 else 8
    except Exception:
        pass
    return 8


def _save_png16(img: torch.Tensor, path: Path) -> None:
    """Write a 16-bit RGB PNG (Pillow cannot) atomically."""
    arr = np.round(img.clamp(0, 1).numpy().transpose(1, 2, 0) * 65535).astype(">u2")
    h, w = arr.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), arr.reshape(h, w * 3).view(np.uint8)], 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
    os.replace(tmp, path)


def _file_id(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file, else ``None``: equal for two names of one file (``PHOTO.png`` and
    ``PHOTO.PNG`` on a case-insensitive disk, hard links)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _plan(inputs: Path, output: Path, out_is_dir: bool) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; raises ValueError when an output would overwrite an input or another
    output."""
    if inputs.is_file():
        pairs = [(inputs, output / f"{inputs.stem}.png" if out_is_dir else output)]
        all_inputs = [inputs]
    else:
        if output.exists() and not output.is_dir():
            raise ValueError(f"input {inputs} is a folder, so the output must be a folder, but {output} is a file")
        files = list_images(inputs, recursive=True)
        out_res = output.resolve()
        if out_res != inputs.resolve() and out_res.is_relative_to(inputs.resolve()):
            files = [p for p in files if not p.resolve().is_relative_to(out_res)]  # skip earlier results
        all_inputs = files
        pairs = [(p, output / p.relative_to(inputs).with_suffix(".png")) for p in files]
    in_res, in_ids = {p.resolve() for p in all_inputs}, {_file_id(p) for p in all_inputs} - {None}
    clash = [(i, o) for i, o in pairs if o.resolve() in in_res or _file_id(o) in in_ids]
    if clash:
        i, o = clash[0]
        more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
        raise ValueError(f"refusing to overwrite input files: the result of {i} would be written over the input "
                         f"{o}{more}. Write to another folder or file name.")
    seen: dict[Path, Path] = {}
    twins = [(prev, i, o) for i, o in pairs if (prev := seen.setdefault(o.resolve(), i)) is not i]
    if twins:
        listed = "; ".join(f"{a} and {b} -> {o}" for a, b, o in twins[:5]) + (" ..." if len(twins) > 5 else "")
        raise ValueError(f"{len(twins)} output name(s) would be written twice: {listed}. Rename one input of each "
                         "(results are always PNG, named after the input's stem)")
    return pairs


def derain_paths(inputs: str | os.PathLike, output: str | os.PathLike, checkpoint: str | os.PathLike | nn.Module,
                 device: str | torch.device = "auto", tile: int | None = 512, overlap: int = 128,
                 progress: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> DerainReport:
    """Derain a file or a folder (recursively, keeping relative paths) and write PNG files.

    ``output``: for a file input, a ``.png`` path, or a folder (existing, ending in '/', or without suffix) that
    receives ``<stem>.png``; for a folder input, a folder. 16-bit inputs give 16-bit PNGs, others 8-bit. Images
    above ``max_pixels`` are refused (each named, the others still processed).
    ``checkpoint``: a model file saved by :func:`ttl.models.save_model` (or a model). Raises before writing
    anything (``ValueError``/``FileNotFoundError``/:class:`~ttl.engine.CheckpointError`) on usage errors, such
    as an output that would overwrite an input. A file that fails is printed to stderr (name, reason, fix) and
    recorded in the report; the others are still processed.
    """
    from tqdm.auto import tqdm

    from .models import load_model
    from .progress import progress_bar

    inputs, out_str = Path(inputs), str(output)
    output = Path(output)
    if not inputs.exists():
        raise FileNotFoundError(f"input {inputs} does not exist; pass an image file or a folder of images")
    out_is_dir = output.is_dir() or out_str.endswith(("/", os.sep)) or not output.suffix
    if inputs.is_file() and not out_is_dir and output.suffix.lower() != ".png":
        raise ValueError(f"output {output}: results are written as PNG; pass a path ending in .png or a folder")
    pairs = _plan(inputs, output, out_is_dir or inputs.is_dir())
    if not pairs:
        raise FileNotFoundError(f"{inputs} holds no images (files ending in {', '.join(IMAGE_EXTENSIONS)})")
    dev = resolve_device(device)  # an unavailable device is a usage error, raised before any file is read
    model = checkpoint if isinstance(checkpoint, nn.Module) else load_model(checkpoint)[0]
    if getattr(model, "spec", {}).get("kind") == "recognition":
        raise ValueError(f"{checkpoint}: holds a rain-recognition network (it outputs a score, not an image); "
                         "pass a restoration checkpoint (student, teacher T2 or a baseline)")
    report = DerainReport()
    bar = progress_bar(pairs, desc="derain", unit="img", disable=not progress, file=sys.stderr)
    for src, dst in bar:
        try:
            out = derain_image(model, read_image(src, max_pixels=max_pixels), tile, overlap, dev)
            _save_png16(out, dst) if _bit_depth(src) == 16 else save_image(out, dst)
            report.ok.append((src, dst))
        except ImageReadError as e:
            msg = str(e)
        except (RuntimeError, MemoryError) as e:  # out of memory and the like
            msg = f"{src}: failed while deraining ({error_brief(e)}). Try a smaller --tile, or --device cpu."
        except OSError as e:
            msg = f"{src}: cannot write {dst} ({e}). Check the output folder's permissions and free space."
        except Exception as e:
            msg = f"{src}: failed ({error_brief(e)}). Check the file, or report the error."
        else:
            continue
        report.failed.append((src, msg))
        tqdm.write(f"error: {msg}", file=sys.stderr)
    return report


# ------------------------------------------------------------------------------------------ evaluation
def _key(rel: Path) -> str:
    """Matching key of a relative path: folders kept, the stem normalised (``rain-001`` ~ ``norain-001``)."""
    return "/".join([*rel.parent.parts, _norm(rel.stem)])


def _index(entries: list[tuple[str, str, Path]]) -> tuple[dict[str, tuple[str, Path]], dict[str, tuple[str, Path]]]:
    """``(key, name, path)`` entries -> (by relative key, by stem key where the stem is unique)."""
    by_rel, by_stem, dup = {}, {}, set()
    for key, name, path in entries:
        by_rel.setdefault(key, (name, path))
        stem = key.rsplit("/", 1)[-1]
        if stem in by_stem:
            dup.add(stem)
        by_stem[stem] = (name, path)
    return by_rel, {k: v for k, v in by_stem.items() if k not in dup}


def evaluate_folders(outputs: str | os.PathLike, targets: str | os.PathLike, crop_border: int = 0) -> dict:
    """Score every image in ``outputs`` against its ground truth; returns ``{"images": [...], "mean": {...}, ...}``.

    ``targets`` is a folder of ground truths (matched by relative path, else by file stem, both normalised so
    ``rain-001.png`` matches ``norain-001.png``), or a public dataset root (``input/``+``target/`` and the other
    layouts of :func:`ttl.layouts.detect_layout`), where each output matches the rainy file of the same name.
    Every output needs a ground truth and every ground truth an output (else ``ValueError`` listing them);
    sizes must agree. PSNR of identical images is ``inf`` (so is a mean containing it). The same folder as
    outputs and targets is refused; ``outputs_are_rainy_inputs`` counts the outputs that are the dataset's own rainy
    files (scoring them gives the input's scores, not a model's).
    """
    outputs, targets = Path(outputs), Path(targets)
    for p, what in ((outputs, "OUTPUTS"), (targets, "TARGETS")):
        if not p.is_dir():
            raise FileNotFoundError(f"{what} {p} is not a folder")
    if os.path.samefile(outputs, targets):
        raise ValueError(f"OUTPUTS and TARGETS are the same folder ({outputs}): every image would be scored against "
                         "itself. Pass the folder of derained results first and the ground truths second.")
    layout = "folders"
    try:
        layout, items = detect_layout(targets)
    except LayoutError as e:  # a folder tree without a known layout is compared file by file
        if "no known dataset layout" not in str(e):
            raise ValueError(str(e)) from None
        items = []
    if layout in ("folders", "unpaired"):
        layout = "folders"
        tentries = [(_key(p.relative_to(targets)), str(p.relative_to(targets)), p)
                    for p in list_images(targets, recursive=True)]
    else:
        tentries = [(_key(it.rainy.relative_to(targets)), str(it.rainy.relative_to(targets)), it.clean) for it in items]
    oentries = [(_key(p.relative_to(outputs)), str(p.relative_to(outputs)), p)
                for p in list_images(outputs, recursive=True)]
    if not oentries:
        raise FileNotFoundError(f"OUTPUTS {outputs} holds no images")
    t_rel, t_stem = _index(tentries)
    pairs, missing, used, rainy_scored = [], [], {}, 0
    for key, name, path in oentries:
        hit = t_rel.get(key) or t_stem.get(key.rsplit("/", 1)[-1])
        if hit is None:
            missing.append(name)
        elif hit[0] in used:
            raise ValueError(f"{used[hit[0]]} and {name} in {outputs} both match the ground truth {hit[0]}; "
                             "keep one of them")
        else:
            pairs.append((name, path, hit[1]))
            used[hit[0]] = name
            rainy_scored += layout != "folders" and os.path.samefile(path, targets / hit[0])
    unscored = [name for _, name, _ in tentries if name not in used]
    if missing or unscored:
        lines = [f"{outputs} and {targets} ({layout}) do not match one to one:"]
        if missing:
            lines.append(f"  {len(missing)} outputs have no ground truth: {', '.join(missing[:10])}"
                         + (" ..." if len(missing) > 10 else ""))
        if unscored:
            lines.append(f"  {len(unscored)} ground truths have no output: {', '.join(unscored[:10])}"
                         + (" ..." if len(unscored) > 10 else ""))
        lines.append("Name each output like its ground truth or rainy input (rain-001.png matches norain-001.png), "
                     "or remove the extra files.")
        raise ValueError("\n".join(lines))
    rows = []
    for name, out_p, tgt_p in sorted(pairs):
        pred, gt = read_image(out_p), read_image(tgt_p)
        if pred.shape != gt.shape:
            raise ValueError(f"{out_p} is {pred.shape[2]}x{pred.shape[1]} px but its ground truth {tgt_p} is "
                             f"{gt.shape[2]}x{gt.shape[1]} px; results must have the size of the ground truth")
        try:
            m = image_metrics(pred[None], gt[None], crop_border, which=EVALUATE_METRICS)
        except ValueError as e:
            raise ValueError(f"{out_p}: {e}") from None
        rows.append({"name": name, "output": str(out_p), "target": str(tgt_p), **{k: float(v) for k, v in m.items()}})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in EVALUATE_METRICS}
    return {"outputs": str(outputs), "targets": str(targets), "layout": layout, "crop_border": crop_border,
            "n": len(rows), "images": rows, "mean": mean, "outputs_are_rainy_inputs": rainy_scored}


def evaluation_table(result: dict) -> str:
    """A plain-text table of :func:`evaluate_folders`' result: one row per image, then the mean."""
    rows = [(r["name"], r) for r in result["images"]] + [(f"mean ({result['n']} images)", result["mean"])]
    width = max(len(n) for n, _ in rows)
    fmt = {"psnr_y": "{:.2f}", "ssim_y": "{:.4f}", "psnr_rgb": "{:.2f}", "ssim_rgb": "{:.4f}", "bias_y": "{:+.2f}"}
    labels = {**METRIC_LABELS, "bias_y": "mean ΔY"}
    head = f"{'image':<{width}}  " + "  ".join(f"{labels[k]:>13}" for k in EVALUATE_METRICS)
    lines = [head, "-" * len(head)]
    for i, (name, r) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(head))
        lines.append(f"{name:<{width}}  " + "  ".join(f"{fmt[k].format(r[k]):>13}" for k in EVALUATE_METRICS))
    return "\n".join(lines)


def save_evaluation(result: dict, path: str | os.PathLike) -> Path:
    """Write :func:`evaluate_folders`' result as JSON. JSON has no infinity: an infinite PSNR (identical
    images) is written as ``null``, and ``"psnr_inf_is_null": true`` records the convention."""
    from .config import write_json

    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return write_json(path, {**fix(result), "psnr_inf_is_null": True})
