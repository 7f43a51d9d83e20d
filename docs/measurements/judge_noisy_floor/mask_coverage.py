"""Follow-up of exp.py: can a streak-candidate mask that covers more of the image credit the Rain13K fit part's
targets (dense, faint rain that the committed mask, top-hat above its 80th percentile, leaves out) and still fail
every nuisance? Same cases and data as exp.py (train splits only); for each STREAK_QUANTILE the floor is the 10 % and
20 % quantile of the noise-kept realistic targets' scene kept.

usage: mask_coverage.py DATA_DIR OUT_JSON [N]
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ttl import realrain as R
from cases import ROOT, load_cases  # noqa: E402  (this folder)

torch.set_num_threads(1)
data, out = Path(sys.argv[1]), Path(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
t0 = time.time()
cases = load_cases(data, n, {"shipped model": ROOT / "weights" / "derain" / "derain.pt",
                             "sup-full (committed)": ROOT / "weights" / "default" / "sup-full.pt",
                             "ttl (committed)": ROOT / "weights" / "default" / "ttl.pt"}, noise_off=False)
res = {"n": {c: len(p) for c, p in cases.items()}, "variants": {}}
for q in (0.8, 0.6, 0.4, 0.0):
    R.STREAK_QUANTILE = q
    R._INPUTS.clear()  # the input side (mask) is cached per tensor
    values = {c: [R.scene_kept(r, o) for r, o in pairs] for c, pairs in cases.items()}
    ref = values["target, noise kept (realistic renders)"]
    row = {"median": {c: float(np.median(v)) for c, v in values.items()}}
    for fq in (0.1, 0.2):
        floor = float(np.quantile(ref, fq))
        row[f"q{int(fq * 100)}"] = {"floor": floor,
                                    "share": {c: float(np.mean(np.asarray(v) >= floor)) for c, v in values.items()}}
    res["variants"][str(q)] = row
    print(f"== STREAK_QUANTILE {q}: floors {row['q10']['floor']:.3f} / {row['q20']['floor']:.3f}", flush=True)
    for c in cases:
        print(f"  {c[:55]:57s} median {row['median'][c]:.3f}  q10 {row['q10']['share'][c]:4.0%}  "
              f"q20 {row['q20']['share'][c]:4.0%}", flush=True)
res["wall_time_s"] = round(time.time() - t0, 1)
out.write_text(json.dumps(res, indent=1))
print(f"{res['wall_time_s']} s")
