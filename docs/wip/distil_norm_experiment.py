"""Does standardised feature distillation fix the distilled start? seed 0, default preset."""
import json, sys, time
from pathlib import Path
import torch, torch.nn as nn
sys.path.insert(0, "/work/main")
from ttl.config import PRESETS
from ttl.teachers import train_teachers
from ttl.distill import distil
from ttl.models import save_model, load_model, RestorationNet
from ttl.finetune import synthetic_pairs, finetune, Recipe, evaluate_model
from ttl.heldout import validation_sets
torch.set_num_threads(2)
cfg = dict(PRESETS["default"]); cfg["f_steps"] = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
real, clean = Path("/work/shared/data/real_rainy"), Path("/work/shared/data/clean_scenes")
out = Path("/work/explore/distil"); out.mkdir(exist_ok=True, parents=True)
tdir = out / "teachers"
if not (tdir / "t2.pt").is_file():
    t = train_teachers(cfg, 0, "cpu", out / "runs", real, clean, progress=False)
    tdir.mkdir(exist_ok=True)
    save_model(tdir / "t1.pt", t["t1"]); save_model(tdir / "t2.pt", t["t2"])
    print("teachers", t["t1_eval"]["roc_auc"], t["t2_eval"]["mean_psnr_y"], flush=True)
t1, t2 = load_model(tdir / "t1.pt")[0], load_model(tdir / "t2.pt")[0]
val = validation_sets(cfg, 0, clean)
small = {k: {kk: vv[:16] for kk, vv in v.items()} for k, v in val.items()}
def validate(m):
    r = evaluate_model(m, small, "cpu")
    return {f"val_{d}_psnr_y": r[d]["psnr_y"] for d in r}
x = val["realistic"]["rainy"][:16]
def rms(m):
    with torch.no_grad():
        f = m.features(x)
    return [round(float(e.pow(2).mean().sqrt()), 3) for e in f["enc"]] + [round(float(d.pow(2).mean().sqrt()), 3) for d in f["dec"]]
starts = {}
for norm in ("target-ms", "standardise"):
    c = dict(cfg, d_norm=norm)
    t0 = time.time()
    d, log, _, _ = distil(t1, t2, c, 0, "cpu", out / "runs" / f"distil-{norm}", real, progress=False, clean_dir=clean)
    starts[norm] = {k: v.clone() for k, v in d.student.state_dict().items()}
    spec = d.student.spec
    print(norm, "distil", round(time.time() - t0), "s rms", rms(d.student), "val", log["val"][-1], flush=True)
torch.manual_seed(0)
fresh = RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"], blocks=t2.spec["blocks"], context=t2.spec.get("context", False))
print("fresh rms", rms(fresh), flush=True)
pairs = synthetic_pairs(cfg, 0, "train", clean)
res = {}
for lr in [float(a) for a in (sys.argv[2].split(",") if len(sys.argv) > 2 else ["2e-3"])]:
    for name in ("standardise", "target-ms", "scratch"):
        torch.manual_seed(0)
        m = RestorationNet(width=cfg["s_width"], depth=t2.spec["depth"], blocks=t2.spec["blocks"], context=t2.spec.get("context", False))
        if name != "scratch":
            m.load_state_dict(starts[name]); nn.init.zeros_(m.head.weight); nn.init.zeros_(m.head.bias)
        r = Recipe(name, "x", 0.01)
        c = dict(cfg, f_lr=lr)
        t0 = time.time()
        log = finetune(m, pairs, r, c, 0, "cpu", None, validate=validate, progress=False)
        curve = [(v["step"], round(v["val_synthetic_psnr_y"], 2), round(v["val_realistic_psnr_y"], 2)) for v in log["val"]]
        res[f"{name}@{lr}"] = curve
        print(name, lr, round(time.time() - t0), "s", curve, flush=True)
json.dump(res, open(out / "curves.json", "w"))
