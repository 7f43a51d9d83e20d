"""Reading and writing images safely.

Every reader returns a float32 tensor ``(3, H, W)`` in ``[0, 1]``. What happens to unusual files:

=================  =====================================================================================
file               behaviour
=================  =====================================================================================
grayscale          converted to RGB (the channel is repeated)
RGBA / LA / P      alpha is composited over white (fully opaque images are unchanged); palettes expanded
16-bit (PNG/TIFF/  read at full precision and scaled to [0, 1] (never truncated to 8 bits; colour and
PPM/PGM)           grey+alpha PNGs through pypng and 16-bit PPM/PGM by hand, since Pillow reduces them to 8 bits)
EXIF orientation   applied, so a phone photo is upright
corrupt/truncated  :class:`ImageReadError` naming the file and the fix
tiny               :class:`ImageReadError` when a side is below ``min_size`` (default 1 px)
huge               :class:`ImageReadError` above ``max_pixels`` (default 100 MP), checked on the header before
                   any decoding; raise the limit or downscale the file
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

__all__ = ["ImageReadError", "read_image", "save_image", "list_images", "pnm_header", "IMAGE_EXTENSIONS",
           "DEFAULT_MAX_PIXELS"]


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


TOO_LARGE_FIX = "Downscale it, or raise the limit (read_image's max_pixels; ttl derain --max-megapixels)."


def _check_pixels(path: Path, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ImageReadError(path, f"image is {w}x{h} = {w * h / 1e6:.3g} MP, above the limit of "
                             f"{max_pixels / 1e6:.3g} MP", TOO_LARGE_FIX)


def _read_png16_color(path: Path, max_pixels: int) -> np.ndarray | None:
    """16-bit RGB, RGBA and grey+alpha PNGs as ``uint16`` (Pillow would truncate them to 8 bits); ``None`` for any
    other file (16-bit grey PNGs Pillow reads in full)."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[24] != 16 \
            or head[25] not in (2, 4, 6):
        return None
    _check_pixels(path, int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), max_pixels)
    import png  # pypng

    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    except (png.Error, ValueError, EOFError, OSError, zlib_error) as e:
        raise ImageReadError(path, f"corrupt or truncated image data ({e})",
                             "Download or re-export the file again, or remove it from the folder.") from None


def pnm_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """``(width, height, maxval, planes, data offset)`` of a binary PGM/PPM (P5/P6) file; ``None`` for other files
    or a malformed header (Pillow then reads or reports the file)."""
    with open(path, "rb") as f:
        data = f.read(512)
    if data[:2] not in (b"P5", b"P6"):
        return None
    fields, pos = [], 2
    while len(fields) < 3:  # width, height, maxval: whitespace-separated, '#' comments to the end of the line
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos)
            if pos < 0:
                return None
            continue
        end = pos
        while end < len(data) and data[end:end + 1].isdigit():
            end += 1
        if end == pos:
            return None
        fields.append(int(data[pos:end]))
        pos = end
    return (*fields, 3 if data[:2] == b"P6" else 1, pos + 1)  # one whitespace byte ends the header


def _read_pnm16(path: Path, max_pixels: int) -> np.ndarray | None:
    """PGM/PPM files with a maximum value above 255 as float32 in [0, 1] (Pillow would read a 16-bit PPM at 8 bits);
    ``None`` for any other file."""
    head = pnm_header(path)
    if head is None or head[2] <= 255:
        return None
    w, h, maxval, planes, offset = head
    _check_pixels(path, w, h, max_pixels)
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read(w * h * planes * 2)
    if len(raw) < w * h * planes * 2:
        raise ImageReadError(path, f"corrupt or truncated image data ({len(raw)} of {w * h * planes * 2} bytes)",
                             "Download or re-export the file again, or remove it from the folder.")
    arr = np.frombuffer(raw, ">u2").reshape(h, w, planes).astype(np.float32) / maxval
    return arr[..., 0] if planes == 1 else arr


def read_image(path: str | os.PathLike, min_size: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image file as a float32 tensor ``(3, H, W)`` in ``[0, 1]`` (see the module doc for odd files)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file", "Check the path.")
    arr = _read_png16_color(path, max_pixels)
    if arr is None:
        arr = _read_pnm16(path, max_pixels)
    if arr is None and path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                shape = tif.pages[0].shape  # from the header: a huge image is refused before it is decoded
                hw = shape[1:3] if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4) \
                    else shape[:2]
                if len(hw) == 2:
                    _check_pixels(path, hw[1], hw[0], max_pixels)
                arr = tif.asarray()
            if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
                arr = np.moveaxis(arr, 0, -1)
        except ImageReadError:
            raise
        except Exception:  # not a TIFF tifffile can read: let Pillow try and report
            arr = None
    if arr is None:
        # Pillow's own bomb limit (89 MP) would override max_pixels: it is lifted while this file is opened, and
        # max_pixels is checked on the header instead, before any pixel is decoded
        bomb_limit = Image.MAX_IMAGE_PIXELS
        try:
            Image.MAX_IMAGE_PIXELS = None
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:  # reads the header only
                    _check_pixels(path, *im.size, max_pixels)
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
            raise ImageReadError(path, f"image too large ({e})", TOO_LARGE_FIX) from None
        except UnidentifiedImageError:
            raise ImageReadError(path, "not a readable image (unknown format or corrupt header)",
                                 "Re-export it as PNG or JPEG, or remove it from the folder.") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(path, f"corrupt or truncated image data ({e})",
                                 "Download or re-export the file again, or remove it from the folder.") from None
        finally:
            Image.MAX_IMAGE_PIXELS = bomb_limit
    if arr.ndim < 2 or min(arr.shape[:2]) < min_size:
        raise ImageReadError(path, f"image is {arr.shape[1] if arr.ndim > 1 else 0}x{arr.shape[0]} px, smaller than "
                             f"{min_size} px on a side", f"Use images of at least {min_size}x{min_size} px.")
    _check_pixels(path, arr.shape[1], arr.shape[0], max_pixels)
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
