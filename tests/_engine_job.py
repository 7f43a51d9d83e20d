"""A tiny training job for the engine tests, run as a script (killed part-way, or under torchrun)."""
import json
import os
import sys

import torch

from ttl.engine import TrainConfig, train


class Pairs(torch.utils.data.Dataset):
    """y = x @ W + noise: 64 fixed items."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 5, generator=g)
        self.y = self.x @ torch.randn(5, 2, generator=g) + 0.01 * torch.randn(64, 2, generator=g)

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def make_model(dropout=0.1):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Dropout(dropout), torch.nn.Linear(16, 2))


def step_fn(model, b):
    return torch.nn.functional.mse_loss(model(b["x"]), b["y"])


def run(run_dir, steps=20, kill_at=None, ckpt_every=5, dropout=0.1):
    # fp32 (no bf16 autocast): the DDP test compares two processes with one to 1e-5, which bf16 rounding would not allow
    cfg = TrainConfig(steps=steps, batch=8, lr=1e-2, ckpt_every=ckpt_every, progress=False, device="cpu", amp=False)

    def on_step(s):
        if kill_at is not None and s == kill_at:
            os._exit(9)  # abrupt: no cleanup, no final checkpoint

    model = make_model(dropout)
    log = train(model, Pairs(), step_fn, cfg, run_dir=run_dir, on_step=on_step)
    return model, log


if __name__ == "__main__":
    out = sys.argv[1]
    kill = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "none" else None
    model, log = run(out, kill_at=kill, dropout=float(os.environ.get("TTL_TEST_DROPOUT", "0.1")))
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"params": [p.detach().flatten().tolist() for p in model.parameters()], "loss": log["loss"]}, f)
