"""T1's training at the default preset under the engine's precision settings and learning rates: held-out ROC-AUC
(the notebook-02 validation) after each fifth of the steps, and the largest training loss. Usage:
python docs/measurements/t1_stability/exp.py DATA_DIR 'bf16:2e-3' 'fp32:2e-3' ..."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl import config as C  # noqa: E402
from ttl.datasets import RealDomainUnlabeled  # noqa: E402
from ttl.engine import TrainConfig, train  # noqa: E402
from ttl.models import RecognitionNet  # noqa: E402
from ttl.teachers import RecognitionDataset, evaluate_recognition, recognition_step  # noqa: E402

data_dir = Path(sys.argv[1])
cfg, seed = C.resolve_config("default", {}), 0
real_dir, clean_dir = data_dir / "real_rainy", data_dir / "clean_scenes"


def real(split, n):
    return RealDomainUnlabeled(cfg["t_patch"], n=n, seed=seed, split=split, real_dir=real_dir, clean_dir=clean_dir,
                               photo_size=cfg["photo_size"])


train_set = RecognitionDataset(real("train", cfg["t_scenes"]), negatives_dir=clean_dir)
test_set = RecognitionDataset(real("test", cfg["t_eval"]), negatives_dir=clean_dir)
out = {}
for spec in sys.argv[2:]:
    prec, lr = spec.split(":")
    torch.manual_seed(seed)
    model = RecognitionNet(width=cfg["t_width"], depth=cfg["t_depth"])
    t = time.time()
    log = train(model, train_set, recognition_step,
                TrainConfig(steps=cfg["t1_steps"], batch=cfg["t_batch"], lr=float(lr), val_every=cfg["t1_steps"] // 5,
                            seed=seed, device="cpu", progress=False, amp=prec == "bf16"),
                validate=lambda m: {"auc": evaluate_recognition(m, test_set, n=64)["roc_auc"]})
    out[spec] = {"auc": [round(v["auc"], 3) for v in log["val"]], "max_loss": round(max(log["loss"]), 2),
                 "last_loss_mean": round(sum(log["loss"][-100:]) / 100, 3), "s": round(time.time() - t)}
    print(spec, out[spec], flush=True)
print(json.dumps(out))
