"""Image operations every other module builds on: BT.601 luminance, the white top-hat rain-layer estimate, and a
separable Gaussian blur. No dependency on the rest of ``ttl``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["luminance", "rain_layer_estimate", "gaussian_blur", "gaussian_kernel1d", "to_uint8"]


def luminance(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB in [0,1]: ``(…,3,H,W) -> (…,1,H,W)``."""
    w = torch.tensor([0.299, 0.587, 0.114], device=img.device, dtype=img.dtype).view(3, 1, 1)
    return (img * w).sum(-3, keepdim=True)


def rain_layer_estimate(img: torch.Tensor, size: int = 7) -> torch.Tensor:
    """White top-hat ``img - opening(img)`` with a ``size`` x ``size`` square, per channel; ``(…,C,H,W)``.

    Thin bright streaks survive; structures wider than ``size`` px (and all edges of large objects) do not. The square
    maximum is taken as a row maximum then a column maximum: the same numbers, a fraction of the time."""
    x = img if img.ndim == 4 else img[None]
    p = size // 2

    def square_max(t: torch.Tensor) -> torch.Tensor:
        t = F.max_pool2d(F.pad(t, (p, p, p, p), mode="replicate"), (1, size), stride=1)
        return F.max_pool2d(t, (size, 1), stride=1)

    eroded = -square_max(-x)
    opened = square_max(eroded)
    out = (x - opened).clamp(min=0)
    return out if img.ndim == 4 else out[0]


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel of radius ceil(3 sigma)."""
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, sigma_y: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``(B,C,H,W)`` with reflect padding (sigma in px). ``sigma_y``: a different vertical
    sigma (``sigma`` is then the horizontal one); an axis whose sigma is 0 is left as it is."""
    c = x.shape[1]
    sy = sigma if sigma_y is None else sigma_y
    if sigma > 0:
        k = gaussian_kernel1d(sigma).to(x)
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    if sy > 0:
        k = gaussian_kernel1d(sy).to(x)
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` float image(s) to uint8 (rounded): how fixed data are kept in memory, as they would be on disk."""
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
