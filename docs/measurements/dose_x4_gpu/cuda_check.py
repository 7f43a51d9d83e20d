"""CUDA paths at the `paper` preset's sizes (run on a lent GPU): the engine's bf16 + channels-last + fused AdamW
training step of the paper student and teacher, and tiled inference of a 2048 x 2048 image; times are medians of
repeats after warm-up. Prints one JSON line."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl import config as C  # noqa: E402
from ttl.engine import TrainConfig, bf16_supported, train  # noqa: E402
from ttl.inference import derain_image  # noqa: E402
from ttl.models import RestorationNet  # noqa: E402


class Crops(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.clean = torch.rand(n, 3, size, size, generator=g)
        self.rainy = (self.clean + 0.3 * (torch.rand(n, 3, size, size, generator=g) > 0.97)).clamp(0, 1)

    def __len__(self):
        return len(self.clean)

    def __getitem__(self, i):
        return {"rainy": self.rainy[i], "clean": self.clean[i]}


def main() -> None:
    cfg = C.resolve_config("paper", {})
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "bf16": bf16_supported(dev)}
    for name, width in (("student", cfg["s_width"]), ("teacher", cfg["t_width"])):
        model = RestorationNet(width=width, depth=cfg["t_depth"], context=bool(cfg.get("context", False)))
        data = Crops(8 * cfg["f_batch"], cfg["f_patch"])
        steps = 60
        log = train(model, data, lambda m, b: F.l1_loss(m(b["rainy"]).float(), b["clean"]),
                    TrainConfig(steps=steps, batch=cfg["f_batch"], device="cuda", progress=False))
        torch.cuda.synchronize()
        assert all(map(lambda v: v == v, log["loss"])), "non-finite loss"
        t = time.time()
        log2 = train(model, data, lambda m, b: F.l1_loss(m(b["rainy"]).float(), b["clean"]),
                     TrainConfig(steps=steps, batch=cfg["f_batch"], device="cuda", progress=False))
        torch.cuda.synchronize()
        img = torch.rand(3, 2048, 2048)
        model = model.to(dev).eval()
        times = []
        for _ in range(4):
            torch.cuda.synchronize()
            t1 = time.time()
            y = derain_image(model, img, tile=512, overlap=128, device="cuda")
            torch.cuda.synchronize()
            times.append(time.time() - t1)
        out[name] = {"width": width, "params": sum(p.numel() for p in model.parameters()),
                     "train_ms_per_step": round(1000 * (time.time() - t - sum(times)) / steps, 2),
                     "loss_first_last": [round(log["loss"][0], 4), round(log2["loss"][-1], 4)],
                     "tiled_2048_s_median": round(statistics.median(times[1:]), 4), "out_shape": list(y.shape)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
