"""Small helpers shared by the library: device choice and seeding."""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

__all__ = ["resolve_device", "seed_everything", "generator", "seed_of", "error_brief"]


def error_brief(e: BaseException, empty: str | None = None) -> str:
    """``"Type: first line of the message"`` (200 characters at most) for an error message; an empty message gives
    ``"Type: <empty>"`` when ``empty`` is given, else ``"Type"``."""
    lines = str(e).splitlines() or ([empty] if empty else [])
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; any other value is passed to :class:`torch.device`."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available here; use device='auto' or 'cpu'.")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU :class:`torch.Generator` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return generator(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (all of ttl's randomness flows through explicit generators)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def seed_of(*parts) -> int:
    """A 60-bit seed from a tuple of values (SHA-1 of their text): item ``i`` of epoch ``e`` of a dataset with seed
    ``s`` draws from ``generator(seed_of(s, e, i))``, whatever happened before."""
    h = hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()
    return int(h[:15], 16)
