"""Networks: the U-Net of notebook 01's motivating experiment, and the method's networks — the recognition
teacher T1 (:class:`RecognitionNet`), the scattering-reconstruction teacher T2 and the student
(:class:`RestorationNet`, one family at two widths) and the distillation :class:`Adapters`.

Any input size works: inputs are padded (reflect) to the network's multiple and the output is cropped back.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UNet", "RestorationNet", "RecognitionNet", "Encoder", "Decoder", "Adapters", "build_model", "save_model", "load_model", "count_params",
           "count_flops", "pad_to_multiple", "layer_rms", "match_layer_scale", "WEIGHT_LAYERS"]


WEIGHT_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)  # the weighted layers count_flops, layer_rms and ttl.transfer measure


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
        self.spec = {"kind": "unet", "width": width, "depth": depth, "in_ch": in_ch, "out_ch": out_ch}
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
    """Number of parameters (frozen ones included: this is the network's size)."""
    return sum(p.numel() for p in model.parameters())


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

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    model(torch.zeros(1, in_ch, size, size, device=dev))
    model.train(was)
    for h in hs:
        h.remove()
    return total


# ------------------------------------------------------------------------ the method's networks (STUDY §4-5)
class ResBlock(nn.Module):
    """conv-GELU-conv with a residual connection."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """The encoder family shared by the teachers and the student: a stem, then ``depth + 1`` stages of
    ``blocks`` residual blocks; stage ``i`` has ``width * 2**i`` channels at 1/2**i resolution (stride-2
    convolutions between stages). ``forward`` returns the feature of every stage."""

    def __init__(self, width: int = 16, depth: int = 3, blocks: int = 1, in_ch: int = 3):
        super().__init__()
        self.channels = [width * 2 ** i for i in range(depth + 1)]
        self.stem = nn.Conv2d(in_ch, width, 3, padding=1)
        self.stages = nn.ModuleList()
        for i, ch in enumerate(self.channels):
            down = nn.Identity() if i == 0 else nn.Sequential(nn.Conv2d(self.channels[i - 1], ch, 3, stride=2, padding=1),
                                                              nn.GELU())
            self.stages.append(nn.Sequential(down, *[ResBlock(ch) for _ in range(blocks)]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return feats


class Decoder(nn.Module):
    """Mirror of :class:`Encoder`: upsample, concatenate the skip feature, fuse, residual blocks. Returns the
    feature of every decoder stage (coarse to fine)."""

    def __init__(self, channels: list[int], blocks: int = 1):
        super().__init__()
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.up.append(nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2))
            self.fuse.append(nn.Sequential(nn.Conv2d(2 * channels[i], channels[i], 1), *[ResBlock(channels[i])
                                                                                        for _ in range(blocks)]))
        self.channels = list(reversed(channels[:-1]))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        y, outs = feats[-1], []
        for k, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            y = fuse(torch.cat([up(y), feats[-2 - k]], 1))
            outs.append(y)
        return outs


class GlobalContext(nn.Module):
    """Context for a feature map from everything the network sees at once (a training crop, a tile, or a whole
    image): the mean and standard deviation of each channel over all positions, through a small MLP, scale and shift
    every channel (FiLM). On the bottleneck of :class:`RestorationNet` it lets the network measure *how much* rain its
    input holds (and how much brighter the rain made it) before deciding how much to remove, instead of assuming the
    training set's average. Starts as the identity (zero last layer). A 1x1 map has no spread: its deviation is 0."""

    def __init__(self, ch: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * ch, ch), nn.GELU(), nn.Linear(ch, 2 * ch))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.std((-2, -1)) if x.shape[-2] * x.shape[-1] > 1 else torch.zeros_like(x[..., 0, 0])
        stats = torch.cat([x.mean((-2, -1)), spread], 1)
        gamma, beta = self.mlp(stats).chunk(2, 1)
        return x * (1 + gamma[..., None, None]) + beta[..., None, None]


class RestorationNet(nn.Module):
    """Encoder-decoder that predicts a residual (``output = input - net(input)``): the scattering teacher T2,
    the student, and the supervised baselines. :meth:`features` also returns every encoder and decoder feature
    (what distillation matches). Any input size works (padding to the network's multiple, cropped back).
    ``context``: a :class:`GlobalContext` on the bottleneck (whole-image statistics modulate its channels)."""

    def __init__(self, width: int = 16, depth: int = 3, blocks: int = 1, context: bool = False):
        super().__init__()
        self.spec = {"kind": "restoration", "width": width, "depth": depth, "blocks": blocks}
        if context:
            self.spec["context"] = True
        self.encoder = Encoder(width, depth, blocks)
        self.context = GlobalContext(self.encoder.channels[-1]) if context else None
        self.decoder = Decoder(self.encoder.channels, blocks)
        self.head = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start as the identity (see UNet)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return 2 ** self.spec["depth"]

    def features(self, x: torch.Tensor) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        xp, (h, w) = pad_to_multiple(x, self.multiple)
        enc = self.encoder(xp)
        if self.context is not None:
            enc = [*enc[:-1], self.context(enc[-1])]
        dec = self.decoder(enc)
        out = (xp - self.head(dec[-1]))[..., :h, :w]
        return {"enc": enc, "dec": dec, "out": out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["out"]


class RecognitionNet(nn.Module):
    """The rain-recognition teacher T1: an :class:`Encoder` of the student's family, global average pooling
    and a linear head giving the logit of "rainy"."""

    def __init__(self, width: int = 16, depth: int = 3, blocks: int = 1):
        super().__init__()
        self.spec = {"kind": "recognition", "width": width, "depth": depth, "blocks": blocks}
        self.encoder = Encoder(width, depth, blocks)
        self.head = nn.Linear(self.encoder.channels[-1], 1)

    def features(self, x: torch.Tensor) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        enc = self.encoder(x)
        return {"enc": enc, "logit": self.head(enc[-1].mean((-2, -1))).squeeze(-1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["logit"]


class Adapters(nn.Module):
    """Light 1x1 convolutions mapping student features onto teacher features, one per matched stage."""

    def __init__(self, student_channels: list[int], teacher_channels: list[int]):
        super().__init__()
        if len(student_channels) != len(teacher_channels):
            raise ValueError(f"{len(student_channels)} student stages cannot match {len(teacher_channels)} teacher stages")
        self.maps = nn.ModuleList(nn.Conv2d(s, t, 1) for s, t in zip(student_channels, teacher_channels))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [m(f) for m, f in zip(self.maps, feats)]


MODEL_KINDS = {"restoration": RestorationNet, "recognition": RecognitionNet, "unet": UNet}


def build_model(spec: dict) -> nn.Module:
    """Rebuild a network from its ``spec`` (what checkpoints carry): ``{"kind": ..., **constructor args}``."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind](**spec)


@torch.no_grad()
def layer_rms(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Output root mean square of every convolution and linear layer of ``model`` on ``x``, keyed by module name in
    the order the layers ran."""
    out: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, o, name=name: out.__setitem__(name, float(o.float().pow(2).mean().sqrt())))
             for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return out


@torch.no_grad()
def match_layer_scale(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Rescale ``model``'s layers in place, in the order they run, so that each one's output RMS on ``x`` equals that
    of the same layer in ``reference`` (a network of the same architecture, e.g. a fresh initialisation): weight and
    bias of a layer are multiplied by one factor, so every filter keeps its direction (a data-driven, LSUV-style
    rescaling; the activations are not exactly homogeneous, so the function changes slightly beyond its scale).
    Layers whose output is zero (a reset head) or that ``reference`` lacks are left alone. Returns the factors."""
    target = layer_rms(reference, x)
    mods = dict(model.named_modules())
    factors: dict[str, float] = {}
    for name in layer_rms(model, x):
        now = layer_rms(model, x)[name]  # after the layers before it were rescaled
        if now == 0 or not target.get(name):
            continue
        f = target[name] / now
        mods[name].weight.mul_(f)
        if mods[name].bias is not None:
            mods[name].bias.mul_(f)
        factors[name] = f
    return factors


def save_model(path, model: nn.Module, **meta):
    """Save a model alone (its ``spec`` and weights, plus JSON-able ``meta``) atomically: one file that
    :func:`load_model` can rebuild without any other code or state."""
    import json

    from .engine import save_checkpoint

    return save_checkpoint(path, {"spec": json.dumps(model.spec), "model": model.state_dict(),
                                  "meta": json.dumps(meta)})


def load_model(path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild and load a model saved by :func:`save_model` (``weights_only=True``); returns ``(model, meta)``."""
    import json

    from .engine import CheckpointError, load_checkpoint

    state = load_checkpoint(path, map_location)
    fix = "save models with ttl.models.save_model, or pass a checkpoint written by ttl (e.g. weights/derain/derain.pt)"
    if not isinstance(state, dict) or "spec" not in state or "model" not in state:
        raise CheckpointError(f"{path}: not a ttl model file (no spec and weights); {fix}")
    try:
        spec, meta = json.loads(state["spec"]), json.loads(state.get("meta", "{}"))
        if not isinstance(spec, dict):
            raise TypeError(f"the spec is a {type(spec).__name__}, not a dict")
        model = build_model(spec)
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:  # bad JSON, unknown kind or argument, wrong weights
        detail = " ".join(str(e).split())[:300] or type(e).__name__
        raise CheckpointError(f"{path}: not a loadable ttl model ({detail}); {fix}") from None
    return model.eval(), meta
