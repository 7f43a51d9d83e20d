"""Why does the shipped model gain only ~+2.4 dB on light public rain (issue 13)? Measured on validation photographs.

The shipped model (weights/derain/derain.pt) derains the *validation* photographs of clean_dir (never trained on,
never a test image) carrying the calibrated `light` and `heavy` synthetic rain, with the rain layer scaled by alpha
(rainy = clean + alpha * (render - clean)): alpha 1 is the rain the model trained on, smaller alphas are fainter rain
of the same streak shapes. For each condition: the input's PSNR-Y and mean brightness excess (dY, grey levels), the
model's PSNR-Y gain over the input and its output's dY. If the gain falls with the rain's strength on these
photographs too, faint rain itself is what the model fails on, whatever its style; if not, the gap to the public light
pairs is their style. No public pair is read here. Usage:
python docs/measurements/light_rain_gap/exp.py DATA_DIR OUT_JSON
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ttl.datasets import split_paths  # noqa: E402
from ttl.finetune import _render_photos  # noqa: E402
from ttl.inference import derain_image  # noqa: E402
from ttl.metrics import image_metrics  # noqa: E402
from ttl.models import load_model  # noqa: E402
from ttl.ship import RECIPE, SHIP_DIR  # noqa: E402
from ttl.stats import bootstrap_ci  # noqa: E402

torch.set_num_threads(2)
data, out = Path(sys.argv[1]), Path(sys.argv[2])
model = load_model(SHIP_DIR / "derain.pt")[0].eval()
paths = split_paths(data / "clean_scenes", "val", "clean_dir")
t0 = time.time()
rows = []
for amount in ("light", "heavy"):
    r = _render_photos(paths, RECIPE["photo_size"], 5, 91, renders=1, amounts=(amount,))
    for alpha in ((0.25, 0.5, 0.75, 1.0) if amount == "light" else (0.5, 1.0)):
        vals: dict[str, list[float]] = {"in_psnr": [], "in_dy": [], "gain": [], "out_dy": []}
        for rainy, clean in zip(r["rainy"], r["clean"]):
            x = (clean + alpha * (rainy - clean)).clamp(0, 1)
            y = derain_image(model, x, tile=512, device="cpu")
            mi = image_metrics(x[None], clean[None], which=("psnr_y", "bias_y"))
            mo = image_metrics(y[None], clean[None], which=("psnr_y", "bias_y"))
            vals["in_psnr"].append(float(mi["psnr_y"][0]))
            vals["in_dy"].append(float(mi["bias_y"][0]))
            vals["gain"].append(float(mo["psnr_y"][0] - mi["psnr_y"][0]))
            vals["out_dy"].append(float(mo["bias_y"][0]))
        g, lo, hi = bootstrap_ci(np.asarray(vals["gain"]), n_boot=1000, seed=0)
        rows.append({"rain": amount, "alpha": alpha, "n": len(vals["gain"]),
                     "input_psnr_y": float(np.mean(vals["in_psnr"])), "input_dy": float(np.mean(vals["in_dy"])),
                     "gain_psnr_y": g, "gain_low": lo, "gain_high": hi, "output_dy": float(np.mean(vals["out_dy"]))})
        print(json.dumps(rows[-1]), flush=True)
rec = {"model": str(SHIP_DIR / "derain.pt"), "photographs": [p.name for p in paths], "split": "val",
       "render_seed": 5, "seconds": time.time() - t0, "rows": rows}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(rec, indent=1))
