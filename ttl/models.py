"""Networks. For now the restoration U-Net of the motivating experiment (notebook 01); the teachers, the
student and the adapters join it with the method (notebooks 02-04).

Any input size works: inputs are padded (reflect) to the network's multiple and the output is cropped back.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UNet", "count_params", "count_flops", "pad_to_multiple"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B,C,H,W)`` on the bottom/right to multiples of ``multiple`` (reflect where possible)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(), nn.Conv2d(cout, cout, 3, padding=1), nn.GELU())


class UNet(nn.Module):
    """A plain U-Net that predicts the rain residual: ``output = input - net(input)``.

    ``width`` channels at the first level, doubled at each of ``depth`` downsamplings."""

    def __init__(self, width: int = 16, depth: int = 3, in_ch: int = 3, out_ch: int = 3):
        super().__init__()
        self.depth = depth
        chs = [width * 2 ** i for i in range(depth + 1)]
        self.inc = _Block(in_ch, chs[0])
        self.down = nn.ModuleList(_Block(chs[i], chs[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2) for i in reversed(range(depth)))
        self.dec = nn.ModuleList(_Block(2 * chs[i], chs[i]) for i in reversed(range(depth)))
        self.out = nn.Conv2d(chs[0], out_ch, 1)
        # start as the identity (zero residual): with a random residual head the L1 loss first pulls the
        # network to "change nothing", where sparse rain gives it almost no gradient, and training stalls
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        return 2 ** self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = pad_to_multiple(x, self.multiple)
        feats = [self.inc(xp)]
        for blk in self.down:
            feats.append(blk(F.max_pool2d(feats[-1], 2)))
        y = feats.pop()
        for up, dec in zip(self.up, self.dec):
            y = dec(torch.cat([up(y), feats.pop()], 1))
        return (xp - self.out(y))[..., :h, :w]


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_flops(model: nn.Module, size: int = 256, in_ch: int = 3) -> int:
    """Multiply-accumulates x 2 of the convolutions and linear layers for one ``size`` x ``size`` input."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += 2 * out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.ConvTranspose2d):
            total += 2 * inp[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        elif isinstance(mod, nn.Linear):
            total += 2 * out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    model(torch.zeros(1, in_ch, size, size, device=dev))
    model.train(was)
    for h in hs:
        h.remove()
    return total
