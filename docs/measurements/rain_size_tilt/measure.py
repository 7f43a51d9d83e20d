"""Shipped recipe (ttl.ship.RECIPE), seed 0, N steps, training streaks leaning up to TILT degrees; PSNR-Y gain and
mean Y error (grey levels) per public test set and rain amount. Usage: python measure.py TILT STEPS [DATA_DIR].
The four runs in measure.log: tilt 0 / 45 before and after the renderers' size fix (ttl.rain, seeds thin out as
streaks grow with the render size), 1500 steps each, about 5 minutes each on 2 CPU cores."""
from pathlib import Path
import sys, time, json, torch, numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from ttl import ship
from ttl.engine import TrainConfig, train
from ttl.models import RestorationNet
from ttl.train import LOSSES
from ttl.heldout import public_sets
from ttl.metrics import rain_amount, psnr, bias_y

torch.set_num_threads(2)
tilt = float(sys.argv[1]); steps = int(sys.argv[2])
rc = {**ship.RECIPE, "tilt": tilt, "steps": steps}
D = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[4] / 'shared' / 'data'
t0 = time.time()
tr, te = ship.public_split(D / 'paired_public')
pairs = ship.training_pairs(rc, D / 'clean_scenes', tr)
print('render', round(time.time() - t0), 's', len(pairs), flush=True)
torch.manual_seed(0)
m = RestorationNet(width=rc["width"], depth=rc["depth"], blocks=rc["blocks"], context=rc["context"])
tc = TrainConfig(steps=steps, batch=rc["batch"], lr=rc["lr"], seed=0, device='cpu', ckpt_every=steps, progress=False)
log = train(m, pairs, lambda mm, b: LOSSES['l1'](mm(b["rainy"]).float(), b["clean"]), tc, run_dir=Path(f'runs/tilt{int(tilt)}_{steps}'), resume=False)
print('train', round(time.time() - t0), 's', flush=True)
m.eval()
out = {}
for name in ('rain13k_sample', 'rain200_sample_test', 'ddn_sample', 'heavyrain_sample'):
    S = public_sets(D / 'paired_public', only=name)[name]
    g = {}
    for x, y in zip(S['rainy'], S['clean']):
        with torch.no_grad(): o = m(x[None])[0].clamp(0, 1)
        a = rain_amount(x, y)
        g.setdefault(a, []).append((float(psnr(o, y) - psnr(x, y)), float(bias_y(o, y)) ))
    out[name] = {a: (round(np.mean([v[0] for v in l]), 2), round(np.mean([v[1] for v in l]), 2), len(l)) for a, l in g.items()}
print(json.dumps({"tilt": tilt, "steps": steps, "gain_dB_biasY": out}), flush=True)
