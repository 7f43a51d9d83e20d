"""Which part of the two-teacher distillation makes the distilled start worse than a random one? seed 0, default
preset, the teachers of distil_norm_experiment.py.

The committed default run (cc028d1) holds the lead: after 1000 fine-tuning steps on the minority, the student
distilled from T1 alone (`t1-only`) and from T2 alone (`t2-only`) score 28.6 and 29.1 dB PSNR-Y on realistic
validation, level with or above a random start (`sup-minority-short`, 28.0), while the student distilled from both
(`ttl-short`) scores 22.9. This experiment distils students that differ in one thing each and fine-tunes every one
with the same recipe (lr 2e-3, 1000 steps, head reset, validation every 200 steps on 16 crops):
  both          T1 encoder terms + T2 encoder, decoder and output terms (the study's student)
  t1            T1 encoder terms only (decoder never trained)
  t2            T2 terms only
  both-no-out   both, without the output term
  both-fresh-decoder   the `both` student with its decoder and context path re-initialised (encoder kept)
  t2-fresh-decoder     the `t2` student, the same
  scratch       a random start
"""
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import ttl.distill as D  # noqa: E402
from ttl.config import PRESETS  # noqa: E402
from ttl.finetune import Recipe, evaluate_model, finetune, synthetic_pairs  # noqa: E402
from ttl.heldout import validation_sets  # noqa: E402
from ttl.models import RestorationNet, load_model  # noqa: E402

torch.set_num_threads(2)
cfg = dict(PRESETS["default"], f_steps=1000, f_steps_minority=1000, f_val_every=200, d_norm="target-ms")
real, clean = Path("/work/shared/data/real_rainy"), Path("/work/shared/data/clean_scenes")
out = Path("/work/explore/distil")
t1, t2 = load_model(out / "teachers" / "t1.pt")[0], load_model(out / "teachers" / "t2.pt")[0]
val = validation_sets(cfg, 0, clean)
small = {k: {kk: vv[:16] for kk, vv in v.items()} for k, v in val.items()}
x = val["realistic"]["rainy"][:16]


def validate(m):
    r = evaluate_model(m, small, "cpu")
    o = {f"val_{d}_psnr_y": r[d]["psnr_y"] for d in r}
    return {**o, "val_select_psnr_y": sum(o.values()) / len(o)}


def rms(m):
    with torch.no_grad():
        f = m.features(x)
    return [round(float(e.pow(2).mean().sqrt()), 3) for e in f["enc"] + f["dec"]]


def make():
    return RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"], blocks=t2.spec["blocks"],
                          context=t2.spec.get("context", False))


ORIGINAL = D.Distiller


class NoOutput(ORIGINAL):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.output_weight = 0.0


students = {}
for name, kw in (("both", {}), ("t1", {"use_t2": False}), ("t2", {"use_t1": False}), ("both-no-out", {})):
    D.Distiller = NoOutput if name == "both-no-out" else ORIGINAL  # distil() builds D.Distiller
    t0 = time.time()
    d, log, _, _ = D.distil(t1, t2, cfg, 0, "cpu", out / "runs" / f"teach-{name}", real, progress=False,
                            clean_dir=clean, **kw)
    students[name] = {k: v.clone() for k, v in d.student.state_dict().items()}
    print(name, "distil", round(time.time() - t0), "s rms", rms(d.student), "val", log["val"][-1], flush=True)
D.Distiller = ORIGINAL
torch.manual_seed(0)
print("fresh rms", rms(make()), flush=True)

pairs = synthetic_pairs(cfg, 0, "train", clean)
res = {}
for name in ("scratch", "both", "t1", "t2", "both-no-out", "both-fresh-decoder", "t2-fresh-decoder"):
    torch.manual_seed(0)
    m = make()
    if name != "scratch":
        fresh = {k: v.clone() for k, v in m.state_dict().items()}
        m.load_state_dict(students[name.replace("-fresh-decoder", "")])
        if name.endswith("fresh-decoder"):
            m.load_state_dict({k: (fresh[k] if k.startswith(("decoder.", "context.")) else v)
                               for k, v in m.state_dict().items()})
        nn.init.zeros_(m.head.weight)
        nn.init.zeros_(m.head.bias)
    t0 = time.time()
    log = finetune(m, pairs, Recipe(name, "x", 0.01), cfg, 0, "cpu", None, validate=validate, progress=False, lr=2e-3)
    curve = [(v["step"], round(v["val_synthetic_psnr_y"], 2), round(v["val_realistic_psnr_y"], 2)) for v in log["val"]]
    res[name] = curve
    print(name, round(time.time() - t0), "s", curve, flush=True)
json.dump(res, open(out / "curves_teachers.json", "w"))
