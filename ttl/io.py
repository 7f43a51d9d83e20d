"""Reading and writing images safely.

Every reader returns a float32 tensor ``(3, H, W)`` in ``[0, 1]``. What happens to unusual files:

=================  =====================================================================================
file               behaviour
=================  =====================================================================================
grayscale          converted to RGB (the channel is repeated)
RGBA / LA / P      alpha is composited over white (fully opaque images are unchanged); palettes expanded
16-bit (PNG/TIFF)  read at full precision and scaled by 1/65535 (never truncated to 8 bits; colour PNGs
                   through pypng, since Pillow reduces them to 8 bits)
EXIF orientation   applied, so a phone photo is upright
corrupt/truncated  :class:`ImageReadError` naming the file and the fix
tiny               :class:`ImageReadError` when a side is below ``min_size`` (default 1 px)
huge               :class:`ImageReadError` above ``max_pixels`` (default 100 MP); raise the limit or
                   downscale the file
not an image       :class:`ImageReadError` (unsupported format)
=================  =====================================================================================
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from zlib import error as zlib_error

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_MAX_PIXELS = 100_000_000

__all__ = ["ImageReadError", "read_image", "save_image", "list_images", "IMAGE_EXTENSIONS"]


class ImageReadError(ValueError):
    """An image file cannot be used; the message names the file and what to do."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}. {fix}")


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive), sorted; hidden files are skipped."""
    folder = Path(folder)
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _flatten_alpha(arr: np.ndarray) -> np.ndarray:
    """(H,W,4) or (H,W,2) float in [0,1] -> RGB composited over white."""
    color, alpha = arr[..., :-1], arr[..., -1:]
    if color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    return color * alpha + (1.0 - alpha)


def _to_rgb_float(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype in (np.int32, np.uint32):  # PIL mode "I" (16-bit PNG grayscale lands here)
        peak = 65535.0 if arr.max(initial=0) > 255 or arr.dtype == np.int32 else 255.0
        arr = arr.astype(np.float32) / peak
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if arr.max(initial=0.0) > 1.0 + 1e-3:
            raise ImageReadError(path, "floating-point image with values above 1", "Save it as 8- or 16-bit PNG.")
    else:
        raise ImageReadError(path, f"unsupported pixel type {arr.dtype}", "Save it as 8- or 16-bit PNG.")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] in (2, 4):
        arr = _flatten_alpha(arr)
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif not (arr.ndim == 3 and arr.shape[-1] == 3):
        raise ImageReadError(path, f"unsupported array shape {arr.shape}", "Use an RGB or grayscale image.")
    return np.clip(arr, 0.0, 1.0)


def _read_png16_color(path: Path, max_pixels: int) -> np.ndarray | None:
    """16-bit RGB/RGBA PNGs as ``uint16`` (Pillow would truncate them to 8 bits); ``None`` for any other file."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[24] != 16 \
            or head[25] not in (2, 6):
        return None
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if w * h > max_pixels:
        raise ImageReadError(path, f"image is {w}x{h} = {w * h / 1e6:.0f} MP, above the limit of "
                             f"{max_pixels / 1e6:.0f} MP", "Downscale it, or pass a larger max_pixels.")
    import png  # pypng

    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    except (png.Error, ValueError, EOFError, OSError, zlib_error) as e:
        raise ImageReadError(path, f"corrupt or truncated image data ({e})",
                             "Download or re-export the file again, or remove it from the folder.") from None


def read_image(path: str | os.PathLike, min_size: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image file as a float32 tensor ``(3, H, W)`` in ``[0, 1]`` (see the module doc for odd files)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file", "Check the path.")
    arr = _read_png16_color(path, max_pixels)
    if arr is None and path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            arr = tifffile.imread(str(path))
            if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
                arr = np.moveaxis(arr, 0, -1)
        except Exception:  # not a TIFF tifffile can read: let Pillow try and report
            arr = None
    if arr is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise ImageReadError(path, f"image is {w}x{h} = {w * h / 1e6:.0f} MP, above the limit of "
                                             f"{max_pixels / 1e6:.0f} MP", "Downscale it, or pass a larger max_pixels.")
                    im = ImageOps.exif_transpose(im)
                    im.load()
                    if im.mode == "P":
                        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                        im = im.convert("RGB")
                    elif im.mode == "1":
                        im = im.convert("L")
                    arr = np.asarray(im)
        except ImageReadError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise ImageReadError(path, f"image too large ({e})", "Downscale it, or pass a larger max_pixels.") from None
        except UnidentifiedImageError:
            raise ImageReadError(path, "not a readable image (unknown format or corrupt header)",
                                 "Re-export it as PNG or JPEG, or remove it from the folder.") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(path, f"corrupt or truncated image data ({e})",
                                 "Download or re-export the file again, or remove it from the folder.") from None
    if arr.ndim < 2 or min(arr.shape[:2]) < min_size:
        raise ImageReadError(path, f"image is {arr.shape[1] if arr.ndim > 1 else 0}x{arr.shape[0]} px, smaller than "
                             f"{min_size} px on a side", f"Use images of at least {min_size}x{min_size} px.")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise ImageReadError(path, f"image has {arr.shape[0] * arr.shape[1] / 1e6:.0f} MP, above the limit of "
                             f"{max_pixels / 1e6:.0f} MP", "Downscale it, or pass a larger max_pixels.")
    rgb = _to_rgb_float(np.asarray(arr), path)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()


def save_image(img: torch.Tensor, path: str | os.PathLike, bits: int = 8) -> Path:
    """Save a ``(3,H,W)`` tensor in [0,1] as PNG (8-bit, or 16-bit TIFF/PNG-free when ``bits=16``: .tif).

    The file is written to a temporary name and renamed, so a crash never leaves a half-written image.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    tmp = path.with_name(path.name + ".part")
    if bits == 16:
        import tifffile

        tifffile.imwrite(str(tmp), np.round(arr * 65535).astype(np.uint16), photometric="rgb")
    else:
        Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(tmp, format=_pil_format(path))
    os.replace(tmp, path)
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}.get(ext, "PNG")
