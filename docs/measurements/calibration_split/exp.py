"""How much does the `light` preset owe to the Rain13K pairs it is then scored on (issue 13's calibration leak)?

`ttl/calibration_synthetic.json` fitted the `light` preset to the rain layers of all 38 pairs of rain13k_sample, the
set notebook 05 and `make weights` then score light rain on. Here the pairs are split by a hash of their file name
into a fitting half (A) and a held-out half (B); the preset is refitted on A alone with the committed procedure
(`ttl.calibrate._evolve`, same settings and seed), and both presets are measured on B: mean standardised W1 of
rain-layer statistics (`ttl.calibrate.rain_layer_distance`), and the rain-layer PSNR-Y a render gives on B's clean
images. Usage: python docs/measurements/calibration_split/exp.py DATA_DIR OUT_JSON
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402

from ttl import calibrate as K  # noqa: E402
from ttl.layouts import PairedFolderDataset  # noqa: E402
from ttl.rain import SYNTHETIC_DEFAULTS, synthetic_preset  # noqa: E402

torch.set_num_threads(1)  # as ttl calibrate
data, out = Path(sys.argv[1]), Path(sys.argv[2])
folder = data / "paired_public" / "rain13k_sample"
rec = json.loads(K.SYNTHETIC_CALIBRATION_FILE.read_text())["light"]
settings = rec["settings"]
pairs = K.public_rain_layers(folder, settings["size"])
names = [Path(it.rainy).name for it in PairedFolderDataset(folder).items]
half = [int(hashlib.sha1(f"ttl-calib:{n}".encode()).hexdigest(), 16) % 2 for n in names]
A = [p for p, h in zip(pairs, half) if h == 0]
B = [p for p, h in zip(pairs, half) if h == 1]
refA, refB = K.rain_layer_frame(A, "public"), K.rain_layer_frame(B, "public")
base = SYNTHETIC_DEFAULTS["light"]


def objective(f):
    return K.rain_layer_distance(K.rain_layer_frame(K.render_on(A, K._apply(base, f, K.SYNTHETIC_SEARCH_SPACE),
                                                                settings["seed"]), "synthetic"), refA)


t0 = time.time()
best, best_obj, best_per, trace = K._evolve(objective, K.SYNTHETIC_SEARCH_SPACE, settings["iterations"],
                                            settings["offspring"], settings["seed"], True, "calibrating light on A",
                                            shift_step=1.0)
fit_s = time.time() - t0
presets = {"committed (fitted on A+B)": synthetic_preset("light"),
           "refitted on A only": K._apply(base, best, K.SYNTHETIC_SEARCH_SPACE),
           "hand-set default": synthetic_preset("light", calibrated=False)}
rows = []
for name, cfg in presets.items():
    row = {"preset": name}
    for part, P, ref in (("A", A, refA), ("B", B, refB)):
        obj, per = K.rain_layer_distance(K.rain_layer_frame(K.render_on(P, cfg, settings["seed"]), "synthetic"), ref)
        row[f"W1_{part}"] = obj
        row[f"per_statistic_{part}"] = per
    rows.append(row)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                      if not k.startswith("per_")}), flush=True)
res = {"split": {"A": [n for n, h in zip(names, half) if h == 0], "B": [n for n, h in zip(names, half) if h == 1]},
       "settings": settings, "fit_seconds": fit_s, "factors_committed": rec["factors"], "factors_A": best,
       "objective_A": best_obj, "rows": rows}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(res, indent=1, default=float))
