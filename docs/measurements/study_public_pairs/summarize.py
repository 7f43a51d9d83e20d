"""The table and intervals of README.md from `exp.py`'s per-image results (result.json: seed 0, result_seed1.json:
seed 1), with the project's bootstrap (`ttl.stats`): per draw, the gain over the input on the 14 test pairs and by
rain amount (`ttl.metrics.amount_of_bias` of the input, as notebook 05 splits); over the draws, each pool's gain
[95 % CI over images] and the difference, over images and with the draws resampled too (`draw_bootstrap`).

Usage: python summarize.py [OUT_JSON]   (default summary.json beside this file)"""
import json
import sys
from pathlib import Path

import numpy as np

from ttl.metrics import amount_of_bias
from ttl.stats import bootstrap_ci, draw_bootstrap

here = Path(__file__).resolve().parent
STUDY, PUBLIC = "rerun, study pool", "rerun, study pool + public training pairs"
runs = {k: json.loads((here / f).read_text())["per_image"] for k, f in ((0, "result.json"), (1, "result_seed1.json"))}
inp = np.asarray(runs[0]["input"]["psnr_y"])
light = np.array([amount_of_bias(b) == "light" for b in runs[0]["input"]["bias_y"]])
out: dict = {"n": len(inp), "light": int(light.sum()), "draws": {}}
for seed, r in runs.items():
    for pool in (STUDY, PUBLIC):
        gain, bias = np.asarray(r[pool]["psnr_y"]) - inp, np.asarray(r[pool]["bias_y"])
        out["draws"][f"seed {seed}, {pool}"] = {
            **r[pool + " (training)"], "gain": bootstrap_ci(gain), "gain_light": float(gain[light].mean()),
            "gain_heavy": float(gain[~light].mean()), "light_bias_y": float(bias[light].mean())}
per = {pool: np.array([runs[s][pool]["psnr_y"] for s in runs]) for pool in (STUDY, PUBLIC)}  # (draws, images)
out["over draws"] = {pool: {"gain": bootstrap_ci(v.mean(0) - inp)} for pool, v in per.items()}
out["difference"] = {"images": bootstrap_ci(per[PUBLIC].mean(0) - per[STUDY].mean(0)),
                     "draws and images": draw_bootstrap(per[PUBLIC], per[STUDY], paired_draws=True)}
text = json.dumps(out, indent=1)
print(text)
(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "summary.json").write_text(text + "\n")
