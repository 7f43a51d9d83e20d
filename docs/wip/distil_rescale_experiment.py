"""Is the distilled start's activation scale what makes it worse than a random start? seed 0, default preset.
Takes the target-ms distilled student of distil_norm_experiment.py (same teachers, same data), rescales every
convolution in forward order so that its output RMS on 16 training crops equals a fresh network's at the same layer
(LSUV-style; ReLU is positively homogeneous, so feature directions are kept), resets the head, and fine-tunes it with
the same 1000-step recipe, beside the raw distilled start and a random one (validation PSNR-Y every 200 steps)."""
import json, sys, time
from pathlib import Path
import torch, torch.nn as nn
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ttl.config import PRESETS
from ttl.models import RestorationNet
from ttl.finetune import synthetic_pairs, finetune, Recipe, evaluate_model
from ttl.heldout import validation_sets
torch.set_num_threads(2)
cfg = dict(PRESETS["default"]); cfg["f_steps"] = 1000; cfg["f_val_every"] = 200
clean = Path("/work/shared/data/clean_scenes")
out = Path("/work/explore/distil")
ck = torch.load(out / "runs" / "distil-target-ms" / "last.pt", weights_only=True)["model"]
state = {k[len("student."):]: v for k, v in ck.items() if k.startswith("student.")}
make = lambda: RestorationNet(width=cfg["s_width"], depth=3, blocks=1, context=True)
val = validation_sets(cfg, 0, clean)
small = {k: {kk: vv[:16] for kk, vv in v.items()} for k, v in val.items()}
def validate(m):
    r = evaluate_model(m, small, "cpu")
    out = {f"val_{d}_psnr_y": r[d]["psnr_y"] for d in r}
    return {**out, "val_select_psnr_y": sum(out.values()) / len(out)}
pairs = synthetic_pairs(cfg, 0, "train", clean)
x = torch.stack([pairs[i]["rainy"] for i in range(16)]) if isinstance(pairs[0], dict) else val["synthetic"]["rainy"][:16]
xr = val["realistic"]["rainy"][:16]
def rms(m, inp):
    with torch.no_grad():
        f = m.features(inp)
    return [round(float(e.pow(2).mean().sqrt()), 3) for e in f["enc"]] + [round(float(d.pow(2).mean().sqrt()), 3) for d in f["dec"]]
def rescale_like(m, ref, inp):
    mods, rmods = dict(m.named_modules()), dict(ref.named_modules())
    names = [n for n, mod in mods.items() if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) and n != "head"]
    for n in names:
        got = {}
        h1 = mods[n].register_forward_hook(lambda _m, _i, o: got.__setitem__("a", o))
        h2 = rmods[n].register_forward_hook(lambda _m, _i, o: got.__setitem__("b", o))
        with torch.no_grad():
            m.features(inp); ref.features(inp)
        h1.remove(); h2.remove()
        s = float(got["a"].pow(2).mean().sqrt() / got["b"].pow(2).mean().sqrt().clamp_min(1e-8))
        with torch.no_grad():
            mods[n].weight /= s
            if mods[n].bias is not None:
                mods[n].bias /= s
    return m
torch.manual_seed(0)
fresh = make()
res = {}
for lr, start in ((2e-3, "scratch"), (2e-3, "distilled"), (2e-3, "rescaled"), (5e-4, "scratch"), (5e-4, "rescaled")):
    torch.manual_seed(0)
    m = make()
    if start != "scratch":
        m.load_state_dict(state)
        if start == "rescaled":
            before = rms(m, xr)
            rescale_like(m, fresh, x)
            print("rms realistic: distilled", before, "rescaled", rms(m, xr), "fresh", rms(fresh, xr), flush=True)
        nn.init.zeros_(m.head.weight); nn.init.zeros_(m.head.bias)
    t0 = time.time()
    log = finetune(m, pairs, Recipe(start, "x", 0.01), cfg, 0, "cpu", None, validate=validate, progress=False, lr=lr)
    curve = [(v["step"], round(v["val_synthetic_psnr_y"], 2), round(v["val_realistic_psnr_y"], 2)) for v in log["val"]]
    res[f"{start}@{lr}"] = curve
    print(start, lr, round(time.time() - t0), "s", curve, flush=True)
json.dump(res, open(out / "curves_rescaled.json", "w"))
