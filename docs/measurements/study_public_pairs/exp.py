"""Would the study's `sup-full` reach issue 13's +3 dB on the Rain13K test part if its paired pool held the public
training pairs, as the shipped model's does? One draw (seed 0 by default), the study's `sup-full` recipe and
chosen rate (2e-3, 2000 steps, checkpoint chosen on the study's validation selection crops), with and without the
public training pairs (the Rain13K sample's fit part and rain200_sample_train, each repeated to about 10 % of the
items like the shipped recipe, `ttl.ship.public_repeats`). Scored on the Rain13K sample's test part only, as
notebook 05 scores it.

The pool with the public pairs is `ttl.finetune.training_pool`, notebook 04's pool since 0547330 (its pairs, amounts
and manifest equal what this script built by hand before, checked item by item); "study pool" is the pool before
0547330 (`synthetic_pairs`). The committed checkpoint scored for seed 0 is whatever `weights/default/sup-full.pt`
holds: at the time of the measurement the study's pool without the public pairs, since 0547330 the pool with them.

Usage: python exp.py DATA_DIR OUT_JSON [SEED]   (DATA_DIR holds clean_scenes/ and paired_public/; SEED: the draw,
default 0, whose committed checkpoint is also scored as a check). `summarize.py` reads the per-image results."""
import json
import sys
import time
from pathlib import Path

import torch

from ttl.config import resolve_config
from ttl.finetune import finetune, recipes, selection_scores, synthetic_pairs, training_pool
from ttl.heldout import public_sets, split_validation, validation_sets
from ttl.inference import derain_image
from ttl.metrics import Target, image_metrics
from ttl.models import RestorationNet, load_model

data, out_json = Path(sys.argv[1]), Path(sys.argv[2])
cfg, lr = resolve_config("default"), 2e-3
base = 0  # the study's seed: its pool, validation crops and test sets
seed = base + (int(sys.argv[3]) if len(sys.argv) > 3 else 0)  # the draw's seed (notebook 04: seed + k)
torch.set_num_threads(2)
clean_dir, public_dir = data / "clean_scenes", data / "paired_public"
recipe = next(r for r in recipes(cfg) if r.name == "sup-full")
study_ckpt = Path(__file__).resolve().parents[3] / "weights" / "default" / "sup-full.pt"  # the study's seed 0
spec = load_model(study_ckpt)[0].spec

pairs = synthetic_pairs(cfg, base, "train", clean_dir)
small, _ = split_validation(validation_sets(cfg, base, clean_dir), cfg["f_val_select"])
test = public_sets(public_dir, only="rain13k_sample")["rain13k_sample"]


def score(model) -> dict:
    vals = {"psnr_y": [], "bias_y": []}
    for x, y in zip(test["rainy"], test["clean"]):
        pred = x if model is None else derain_image(model, x, device="cpu")
        for k, v in image_metrics(pred[None], Target(y[None]), which=("psnr_y", "bias_y")).items():
            vals[k].append(float(v[0]))
    return vals


res = {"input": score(None)}
if seed == 0:
    res["study sup-full (seed 0, committed)"] = score(load_model(study_ckpt)[0].eval())
with_public = training_pool(cfg, base, clean_dir, public_dir=public_dir)  # notebook 04's pool since 0547330
for name, p in (("rerun, study pool", pairs), ("rerun, study pool + public training pairs", with_public)):
    torch.manual_seed(seed)
    model = RestorationNet(width=spec["width"], depth=spec["depth"], blocks=spec["blocks"],
                           context=spec.get("context", False))
    t = time.time()
    log = finetune(model, p, recipe, cfg, seed, "cpu", None, validate=lambda m: selection_scores(m, small), lr=lr)
    res[name] = score(model.eval())
    res[name + " (training)"] = {"best_step": log["best"]["step"], "best_select": log["best"]["value"],
                                 "items": len(p), "time_s": time.time() - t}
    print(name, res[name + " (training)"], flush=True)
out_json.write_text(json.dumps({"per_image": res, "n_test": len(test["rainy"])}, indent=1))
