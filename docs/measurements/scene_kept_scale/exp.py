"""Can the judge's scene kept credit true derainings and still fail every nuisance? (issue 15)

Train splits only (the judge is fitted there; no photograph that scores a model is read): realistic rain rendered on
the train photographs of clean_dir against its streak-free target (true derainings), the targets of the Rain13K
sample's fit part (public light rain), and the nuisances of ttl.realrain.NUISANCES applied to the train split of the
real rainy photographs. For each variant of the scene kept, the floor is a low quantile of the rendered targets' scene
kept; reported: the share of each case that reaches the floor.

Variants: the committed measure (``base``), and the same measure computed after a Gaussian pre-blur of input and
output (``blur s``; the streak mask still from the sharp input), which leaves out pixel-scale differences (sensor noise
that a streak-free target lacks) and keeps scene structure at larger scales.

usage: exp.py DATA_DIR OUT_JSON
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ttl import realrain as R
from ttl.finetune import _render_photos
from ttl.imageops import gaussian_blur, luminance
from ttl.io import list_images
from ttl.layouts import PairedFolderDataset
from ttl.metrics import ssim_map
from ttl.rainleft import _working as work
from ttl.scenes import resize_short_side, split_files

torch.set_num_threads(1)
data, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.time()


def kept(rainy, output, sigma):
    """ttl.realrain.scene_kept, with both images blurred by ``sigma`` px after the streak mask is found."""
    if sigma == 0:
        return R.scene_kept(rainy, output)
    inp = R._input_side(rainy)
    mask = inp["mask"]
    a = gaussian_blur(inp["a"][None], sigma)[0]
    b = gaussian_blur(work(output.float().clamp(0, 1), R._work_size(rainy), crop=False)[None], sigma)[0]
    ref = torch.where(mask, b, a)
    ssim = float(ssim_map(b[None], ref[None]).mean())
    ya, yb, keep = luminance(a)[0].double(), luminance(b)[0].double(), ~mask[0]
    ratios = []
    for d in (-1, -2):
        k = keep[:, 1:] & keep[:, :-1] if d == -1 else keep[1:] & keep[:-1]
        den = float(ya.diff(dim=d)[k].pow(2).sum())
        ratios.append(min(1.0, float(yb.diff(dim=d)[k].pow(2).sum()) / den) if den > 0 else 1.0)
    return min(ssim, *ratios)


clean_train = split_files(list_images(data / "clean_scenes", recursive=True))["train"][:64]
renders = _render_photos(clean_train, 320, 0, 23, realistic=True)
real_train = split_files(list_images(data / "real_rainy", recursive=True))["train"]
from ttl.io import read_image  # noqa: E402

real = [resize_short_side(read_image(p, min_size=16)[None], 384)[0] for p in real_train]
pub = PairedFolderDataset(data / "paired_public" / "rain13k_sample", role="fit")
pub_pairs = [(it["rainy"], it["clean"]) for it in (pub[i] for i in range(len(pub)))]
cases = {"target (realistic renders)": list(zip(renders["rainy"], renders["streak_free"])),
         "target (rain13k fit part)": pub_pairs}
for name, f in R.NUISANCES.items():
    cases[f"{name} (real train photographs)"] = [(x, f(x.float().clamp(0, 1)).clamp(0, 1)) for x in real]
sigmas = [0, 1, 2]
values = {s: {c: [kept(r, o, s) for r, o in pairs] for c, pairs in cases.items()} for s in sigmas}
res = {"n": {c: len(p) for c, p in cases.items()}, "variants": {}}
for s in sigmas:
    tg = np.asarray(values[s]["target (realistic renders)"])
    row = {}
    for q in (0.1, 0.2, 0.5):
        floor = float(np.quantile(tg, q))
        row[f"q{int(q * 100)}"] = {"floor": floor, "share": {c: float(np.mean(np.asarray(v) >= floor))
                                                             for c, v in values[s].items()}}
    row["median"] = {c: float(np.median(v)) for c, v in values[s].items()}
    res["variants"][f"blur {s}" if s else "base"] = row
res["wall_time_s"] = round(time.time() - t0, 1)
out.write_text(json.dumps(res, indent=1))
for v, row in res["variants"].items():
    print(f"== {v}")
    for c in cases:
        print(f"  {c:60s} median {row['median'][c]:.3f}  " + "  ".join(
            f"{q}(floor {row[q]['floor']:.3f}) {row[q]['share'][c]:.0%}" for q in ("q10", "q20", "q50")))
print(f"{res['wall_time_s']} s")
