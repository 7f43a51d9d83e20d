from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TTL_SHARED_DATA", ROOT.parent / "shared" / "data"))
REAL_DIR = Path(os.environ.get("TTL_REAL_DIR", SHARED_DATA / "real_rainy"))
SCENES_DIR = SHARED_DATA / "clean_scenes"
PUBLIC_DIR = SHARED_DATA / "paired_public"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# rendered sets cached by the tests (and the notebooks they run) stay out of the user's ~/.cache/ttl
os.environ.setdefault("TTL_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="ttl-cache-"))


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def rand_img(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def real_dir() -> Path:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real rainy photographs not found at {REAL_DIR} (set TTL_REAL_DIR to a folder of them)")
    return REAL_DIR
