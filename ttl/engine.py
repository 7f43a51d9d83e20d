"""The training engine: one readable loop for every stage (teachers, distillation, fine-tuning, baselines).

* ``step_fn(model, batch) -> loss`` says what a stage optimises; the engine does the rest: AdamW, a
  warm-up + cosine learning-rate schedule (``LambdaLR``), gradient clipping, validation every ``val_every``
  steps, a JSON log of the curves, a tqdm progress bar.
* **Speed**: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX; :func:`bf16_supported`), with
  fp32 master weights and optimiser state, and the channels-last memory format, which oneDNN's convolutions
  prefer, and the fused AdamW kernel on CPU and CUDA. Together with the study's batch of 16 they double training
  throughput on a 2-core CPU (``ttl benchmark --training``); ``TrainConfig(amp=False, channels_last=False,
  fused=False)`` is the plain fp32 loop.
* **Checkpoints** (``{run_dir}/last.pt``) are written atomically (temporary file, then ``os.replace``) and hold
  the model, optimiser, scheduler, every RNG state, the step and the log. A killed run started again with the
  same arguments resumes from its last checkpoint and ends where an uninterrupted run ends: the data order is a
  function of (seed, epoch) and the position in the epoch, not of history. A checkpoint is resumed only by the
  run that wrote it: the run-defining settings (:data:`RUN_DEFINING`, including ``identity``, what defines the run
  besides its own weights, e.g. a distillation's teachers) and the digest of the starting weights
  (:func:`state_digest`) must match, else the engine refuses and says why.
* **Checkpoint selection**: with ``select`` naming a key of ``validate``'s result, the engine keeps the weights of
  the validation that scored highest on it (with a ``run_dir``, inside ``last.pt`` too, so a resumed run selects
  exactly as an uninterrupted one) and ends with them in the model; the log records ``best`` (step and value).
  Without it the model ends at its last step. Under DDP only rank 0 validates, so only rank 0 (which writes every
  checkpoint) ends with the selected weights.
* Every load goes through :func:`load_checkpoint`, i.e. ``torch.load(..., weights_only=True)``: a file that
  carries a pickled object is refused, never executed.
* **Several GPUs**: launched with ``torchrun --nproc_per_node N``, the same call trains with DDP (NCCL on GPU,
  gloo on CPU). The global batch is ``batch``; each rank takes its share of every step's batch, and only rank 0
  writes checkpoints and logs.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Dataset, default_collate

from .progress import progress_bar
from .utils import error_brief, resolve_device

__all__ = ["TrainConfig", "train", "lr_factor", "save_checkpoint", "load_checkpoint", "CheckpointError",
           "distributed_context", "is_main", "bf16_supported", "to_device", "state_digest"]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded safely or does not fit; the message names the file."""


@dataclass
class TrainConfig:
    """Everything the loop needs besides the model, the data and the loss."""

    steps: int
    batch: int = 8  # global batch (split across ranks under DDP)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int | None = None  # steps of linear warm-up (default: steps // 20)
    lr_floor: float = 0.02  # the cosine ends at lr * lr_floor
    clip: float = 1.0
    val_every: int = 0  # 0: validate only at the end
    ckpt_every: int = 0  # 0: checkpoint only at the end
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast where the hardware supports bf16 natively (CUDA; CPUs with AVX512-BF16/AMX)
    channels_last: bool = True  # NHWC memory format for 4-D tensors (faster convolutions with oneDNN and cuDNN)
    fused: bool = True  # the fused AdamW kernel on CPU and CUDA (one kernel for all parameters; ~8 % per step here)
    progress: bool = True
    desc: str = "train"
    select: str | None = None  # a key of validate()'s result: end with the weights that maximised it
    identity: str = ""  # what else defines the run (e.g. the teachers' digests and the feature loss of a distillation)


# the settings that define what a run computes: a checkpoint written under other values is not resumed
RUN_DEFINING = ("steps", "batch", "lr", "weight_decay", "warmup", "lr_floor", "clip", "seed", "select", "identity")


def state_digest(state: nn.Module | dict[str, torch.Tensor]) -> str:
    """A short SHA-256 of a module's (or a state dict's) tensors, in key order: equal weights, equal digest."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted((state.state_dict() if isinstance(state, nn.Module) else state).items()):
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(v.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast pays on ``device``: CUDA, or a CPU whose oneDNN has native bf16 kernels (on other CPUs
    bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    """Move a batch's tensors to ``device`` (4-D tensors in the channels-last format when asked)."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------ checkpoints
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:]))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(x):
    return x.item() if hasattr(x, "item") else x


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, then an atomic rename: a crash never leaves a
    half-written checkpoint under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for pickled objects, RuntimeError/EOFError for broken files
        detail = error_brief(e, empty="empty or truncated file")  # an empty file raises EOFError('')
        raise CheckpointError(f"{path}: refused or unreadable ({detail}). "
                              "Checkpoints are loaded with weights_only=True and may hold only tensors and plain "
                              "containers; re-save it with ttl, or do not load files from untrusted sources.") from None


# ------------------------------------------------------------------------------------------ distribution
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def distributed_context(device: torch.device) -> _Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """True on the process that writes files: the only one, or rank 0 under ``torchrun``."""
    return not dist.is_initialized() or dist.get_rank() == 0


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _batches(data: Dataset, batch: int, seed: int, start_step: int, ctx: _Dist) -> Iterator[dict]:
    """Batches from ``start_step`` on. Step ``s`` always gets the same global batch, whatever happened before;
    under DDP each rank takes every ``world``-th item of it."""
    n = len(data)
    per_epoch = n // batch
    if per_epoch == 0:
        raise ValueError(f"dataset has {n} items, fewer than one batch of {batch}")
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        order = _epoch_order(n, seed, epoch)
        for k in range(offset, per_epoch):
            idx = order[k * batch:(k + 1) * batch].tolist()[ctx.rank::ctx.world]
            items = data.__getitems__(idx) if hasattr(data, "__getitems__") else [data[i] for i in idx]
            yield default_collate(items)
            step += 1


# ---------------------------------------------------------------------------------------------- the loop
def lr_factor(step: int, total: int, warmup: int, floor: float = 0.02) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then a cosine from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def train(model: nn.Module, data: Dataset, step_fn: Callable[[nn.Module, dict], torch.Tensor], cfg: TrainConfig,
          run_dir: str | os.PathLike | None = None, validate: Callable[[nn.Module], dict[str, float]] | None = None,
          parameters: list[nn.Parameter] | None = None, resume: bool = True,
          on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train ``model`` for ``cfg.steps`` steps minimising ``step_fn(model, batch)``.

    ``run_dir``: where ``last.pt`` and ``log.json`` go (``None``: no checkpoints). With ``resume=True`` an
    existing ``last.pt`` is loaded and training continues from its step; with ``resume=False`` an existing one
    is deleted and training starts afresh. ``parameters``: what to optimise
    (default: every parameter that requires grad). ``validate(model)`` runs every ``cfg.val_every`` steps and
    at the end, on rank 0. ``on_step(step)`` is called after each step (tests use it to simulate a kill).
    With ``cfg.select`` the model ends with the weights of its best validation on that key.
    Returns the log: ``step``, ``loss``, ``lr`` lists, ``val`` records, ``time_s``, ``resumed_from`` and, with
    ``cfg.select``, ``best`` (``{"step", "value"}``)."""
    dev = resolve_device(cfg.device)
    ctx = distributed_context(dev)
    if dev.type == "cuda" and ctx.world > 1:
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    if cfg.batch % ctx.world:
        raise ValueError(f"batch={cfg.batch} is not divisible by the {ctx.world} processes; use a multiple")
    torch.manual_seed(cfg.seed)
    init_digest = state_digest(model)  # the starting weights: a checkpoint of another start is not resumed
    model.to(dev).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=True if cfg.fused and dev.type in ("cpu", "cuda") else None)
    warmup = cfg.warmup if cfg.warmup is not None else max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, warmup, cfg.lr_floor))
    log: dict[str, Any] = {"step": [], "loss": [], "lr": [], "val": [], "time_s": 0.0, "resumed_from": None}
    if cfg.select and validate is None:
        raise ValueError(f"select={cfg.select!r} needs a validate function")
    start = 0
    ckpt = Path(run_dir) / "last.pt" if run_dir is not None else None
    best_state: dict[str, torch.Tensor] | None = None
    if ckpt is not None and not resume and ctx.main:  # start afresh: a stale run must not be resumed later
        for stale in (ckpt, Path(run_dir) / "log.json"):
            stale.unlink(missing_ok=True)
    if ckpt is not None and resume and ckpt.is_file():
        state = load_checkpoint(ckpt, map_location=dev)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{ckpt}: does not fit this model ({str(e).splitlines()[0]}); delete it or use "
                                  "another run_dir") from None
        saved = json.loads(state.get("config", "{}"))
        changed = {k: (saved[k], v) for k, v in asdict(cfg).items()
                   if k in RUN_DEFINING and k in saved and saved[k] != v}
        if changed:
            raise CheckpointError(f"{ckpt}: was trained with other settings ("
                                  + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
                                  + "); resuming would mix two runs: delete that folder or train without resume")
        if state.get("init_digest", init_digest) != init_digest:
            raise CheckpointError(f"{ckpt}: was trained from other starting weights (digest {state['init_digest']}, "
                                  f"this run's {init_digest}: e.g. a retrained pretrained start); resuming would mix "
                                  "two runs: delete that folder or train without resume")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start = int(state["step"])
        log = json.loads(state["log"])
        log["resumed_from"] = start
        best_state = state.get("best_model")
    net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None) \
        if ctx.world > 1 else model
    amp = cfg.amp and bf16_supported(dev)

    def checkpoint(step: int) -> None:
        if ckpt is None or not ctx.main:
            return
        save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "rng": _rng_state(), "step": step,
                               "log": json.dumps(log), "config": json.dumps(asdict(cfg)), "init_digest": init_digest,
                               **({"best_model": best_state} if best_state is not None else {})})
        (Path(run_dir) / "log.json").write_text(json.dumps(log))

    t0 = time.time() - float(log.get("time_s", 0.0))
    batches = _batches(data, cfg.batch, cfg.seed, start, ctx)
    bar = progress_bar(range(start, cfg.steps), desc=cfg.desc, disable=not (cfg.progress and ctx.main), mininterval=2,
               initial=start, total=cfg.steps)
    for step in bar:
        b = to_device(next(batches), dev, cfg.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = step_fn(net, b)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        if cfg.clip:
            nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        sched.step()
        value = loss.detach().float()
        if ctx.world > 1:
            dist.all_reduce(value)
            value /= ctx.world
        log["step"].append(step + 1)
        log["loss"].append(value.item())
        log["lr"].append(opt.param_groups[0]["lr"])
        if step % 10 == 0:
            bar.set_postfix(loss=f"{log['loss'][-1]:.4g}")
        last = step + 1 == cfg.steps
        if validate is not None and ctx.main and ((cfg.val_every and (step + 1) % cfg.val_every == 0) or last):
            model.eval()
            with torch.no_grad():
                log["val"].append({"step": step + 1, **validate(model)})
            model.train()
            score = log["val"][-1].get(cfg.select) if cfg.select else None
            if cfg.select and score is None:
                raise KeyError(f"select={cfg.select!r} is not among the validation keys {sorted(log['val'][-1])}")
            if score is not None:
                score = float(score) if math.isfinite(score) else -math.inf  # a diverged validation never wins
                if not log.get("best") or score > log["best"]["value"]:
                    log["best"] = {"step": step + 1, "value": score}
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        log["time_s"] = time.time() - t0
        if last or (cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0):
            checkpoint(step + 1)
        if on_step is not None:
            on_step(step + 1)
    model.eval()
    if best_state is not None:
        model.load_state_dict(best_state)
    if cfg.channels_last:
        model.to(memory_format=torch.contiguous_format)
    if ctx.world > 1:
        dist.barrier()
    return log
