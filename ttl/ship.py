"""The project's deraining model for real use: ``make weights`` (``ttl weights``).

The study's rows are trained under the study's constraints (a CPU-minute budget per row, a minority of pairs).
This module trains one model for people's photographs instead, with what the study found works (notebooks 04/05:
a rain mixture that spans rain-free, light and heavy rain, and a whole-image context path that lets the network
measure how much rain there is): the architecture and recipe of :data:`RECIPE`, on every *training* scene of
``clean_dir`` with that synthetic rain mixture, plus the public *training* pairs (public folders whose name ends in
``_train``, and the "fit" part of :data:`ttl.layouts.SHARED_PUBLIC`), each folder weighted to about
``RECIPE["public_share"]`` of the items. The public test pairs (every other folder under ``public_dir``, and the "test"
part of the shared ones) only score it, once, at the end; no real photograph reaches training. It writes
``weights/derain/derain.pt`` and ``derain.json`` (what it was trained on, for how long, its scores with 95 %
intervals, split by rain amount, and its speed beside PReNet's), and a before/after figure of a real photograph from
the test split of ``real_dir``. ``ttl derain IN OUT`` uses it by default.

Training goes through the engine (:func:`ttl.engine.train`): a progress bar, atomic checkpoints in
``weights/derain/run/`` and ``resume=True`` continues a killed run where it stopped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["RECIPE", "SHIP_DIR", "SHIP_NAME", "PRENET", "public_split", "public_repeats", "add_public_pairs", "BUDGET",
           "budget_minutes", "training_pairs", "train_derainer", "PReNetArch"]

SHIP_DIR = Path(__file__).resolve().parent.parent / "weights" / "derain"
TILE = 512  # `ttl derain`'s default tile (px), timed beside the whole-image speed
SHIP_NAME = "derain"

# the shipped model's architecture and recipe (one place; recorded in derain.json)
RECIPE: dict[str, Any] = {
    "width": 12,  # between the study's student (8) and teacher (16) widths: 20x PReNet's CPU speed with room to spare
    "depth": 3,
    "blocks": 1,
    "context": True,
    "steps": 32000,  # about 18 minutes on 2 CPU cores (make weights about 23): 8000 left 25 of its 30 minutes unused
    "batch": 16,
    "patch": 64,
    "lr": 2e-3,
    "loss": "l1",
    "photo_size": 320,  # short side at which the training photographs are rendered (the study's default)
    "renders": 5,
    "rain": ["light", "heavy", "light", "heavy", "none"],
    "tilt": 45.0,  # rendered streaks lean up to 45 degrees from vertical, as single public images do (ttl.rain.widened)
    # each public training folder is repeated so that it makes about this share of the training items: chosen on
    # held-out public light pairs of the fit part (docs/measurements/public_light_training: ten pairs at ~10 % of the
    # items lifted eleven others by 1.2 dB PSNR-Y, at ~3 % by 0.2 dB)
    "public_share": 0.1,
    "seed": 0,
}


# make weights' budget: 30 minutes of training on 2 CPU cores of the machine where PReNet's architecture runs a 1024²
# image at this speed (2 threads; the machine of the weights before 9b79b31's). A wall-clock budget depends on the
# machine: the record times PReNet's architecture on its own machine, and the budget scales with that time.
BUDGET: dict[str, float] = {"train_minutes": 30.0, "prenet_arch_s_per_mp": 22.8}


def budget_minutes(record: dict) -> float:
    """The training time of a ``derain.json`` record in minutes of the :data:`BUDGET` machine (its own training time
    scaled by how fast its machine ran PReNet's architecture against that machine)."""
    return record["training"]["time_s"] / 60 * BUDGET["prenet_arch_s_per_mp"] / record["speed"]["prenet_arch_s_per_mp"]


# PReNet (Ren et al., CVPR 2019) with its official Rain100L weights, as measured for the study's design (docs/design.md,
# anchors): PSNR-Y / SSIM-Y on the Rain100L test set, and the time per 480x320 image on 2 CPU cores
PRENET: dict[str, float] = {"params_m": 0.17, "rain100l_psnr_y": 37.6, "rain100l_ssim_y": 0.979,
                            "rain100l_input_psnr_y": 26.9, "s_per_480x320_2cpu": 2.2,
                            "s_per_mp_2cpu": 2.2 / (480 * 320 / 1e6)}


def public_split(public_dir) -> tuple[list[Path], list[Path]]:
    """The paired folders under ``public_dir`` in a known layout, as ``(training, test)``: a folder whose name ends in
    ``_train`` trains, every other one is a test set, and a folder of :data:`ttl.layouts.SHARED_PUBLIC` is in both
    (its ``"fit"`` part trains, its ``"test"`` part scores)."""
    from .layouts import SHARED_PUBLIC, LayoutError, detect_layout, training_only

    train, test = [], []
    for d in sorted(p for p in Path(public_dir).iterdir() if p.is_dir()):
        try:
            detect_layout(d)
        except LayoutError:
            continue
        if training_only(d.name) or d.name in SHARED_PUBLIC:
            train.append(d)
        if not training_only(d.name):
            test.append(d)
    return train, test


def public_repeats(n_rendered: int, sizes: dict[str, int], share: float) -> dict[str, int]:
    """How many times each public training folder (``{name: pairs}``) is repeated so that each makes about
    ``share`` of all training items, beside ``n_rendered`` rendered pairs (at least once each)."""
    if not 0 <= share * len(sizes) < 1:
        raise ValueError(f"public_share={share} for {len(sizes)} public folders leaves no room for the rendered "
                         "pairs: use a smaller share")
    total = n_rendered / (1 - share * len(sizes)) if n_rendered else 0
    return {k: max(1, round(share * total / n)) for k, n in sizes.items()}


def add_public_pairs(rainy: list, clean: list, scenes: list, public_train: list[Path], share: float,
                     min_size: int = 1) -> dict[str, Any]:
    """Append the pairs of each ``public_train`` folder (its ``"fit"`` part, :data:`ttl.layouts.SHARED_PUBLIC`) to
    ``rainy``, ``clean`` and ``scenes`` (``<folder>/<scene>``), each folder repeated to make about ``share`` of the
    items beside the ``len(rainy)`` already there (:func:`public_repeats`). Returns each folder's manifest with its
    ``n``, ``repeats`` and final ``share``."""
    from .layouts import PairedFolderDataset, load_pair

    sets = {folder.name: PairedFolderDataset(folder, role="fit") for folder in public_train}
    repeats = public_repeats(len(rainy), {k: len(ds.items) for k, ds in sets.items()}, share)
    for name, ds in sets.items():
        for it in ds.items:
            x, y = load_pair(it, min_size=min_size)
            rainy += [x] * repeats[name]
            clean += [y] * repeats[name]
            scenes += [f"{name}/{it.scene}"] * repeats[name]
    return {name: {**ds.manifest(), "n": len(ds.items), "repeats": repeats[name],
                   "share": round(len(ds.items) * repeats[name] / len(rainy), 4)} for name, ds in sets.items()}


def training_pairs(recipe: dict, clean_dir=None, public_train: list[Path] = ()) -> Any:
    """:class:`ttl.datasets.FixedPairs` of the shipped model: the train split of ``clean_dir`` rendered
    ``recipe["renders"]`` times with the rain mixture ``recipe["rain"]``, and the pairs of each ``public_train``
    folder (its ``"fit"`` part, :data:`ttl.layouts.SHARED_PUBLIC`) repeated to make about ``recipe["public_share"]``
    of the items (:func:`public_repeats`); random ``recipe["patch"]`` crops."""
    from .config import folder_manifest
    from .datasets import FixedPairs, split_paths
    from .finetune import _render_photos

    rainy, clean, scenes = [], [], []
    manifest: dict[str, Any] = {}
    if clean_dir is not None:
        paths = split_paths(clean_dir, "train", "clean_dir")
        r = _render_photos(paths, recipe["photo_size"], recipe["seed"], 71, renders=recipe["renders"],
                           amounts=tuple(recipe["rain"]), tilt=recipe.get("tilt", 0.0))
        rainy, clean, scenes = r["rainy"], r["clean"], r["scenes"]
        manifest["clean_dir"] = {"folder": str(clean_dir), "split": "train", "renders": recipe["renders"],
                                 "amounts": {a: r["amounts"].count(a) for a in recipe["rain"]},
                                 "files": folder_manifest(paths)}
    manifest.update(add_public_pairs(rainy, clean, scenes, public_train, recipe["public_share"], recipe["patch"]))
    if not rainy:
        raise FileNotFoundError("no training data: give clean_dir (rain-free photographs) and/or public training pairs "
                                "(public_dir with folders named *_train)")
    return FixedPairs(rainy, clean, scenes, recipe["patch"], recipe["seed"], manifest)


class PReNetArch(torch.nn.Module):
    """PReNet's published architecture (Ren et al., "Progressive Image Deraining Networks: A Better and Simpler
    Baseline", CVPR 2019): ``T = 6`` stages, each taking the rainy image and the last estimate (6 channels), a 3x3
    convolution to 32 channels, a convolutional LSTM, five residual blocks and a 3x3 convolution back to the image;
    0.17 M parameters. Untrained: here only to time it on the same CPU as ours (the paper reports GPU times)."""

    multiple = 1

    def __init__(self, channels: int = 32, stages: int = 6, blocks: int = 5):
        super().__init__()
        nn = torch.nn
        c = channels
        self.stages = stages
        self.conv0 = nn.Sequential(nn.Conv2d(6, c, 3, padding=1), nn.ReLU())
        self.gates = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), act) for act in
                                   (nn.Sigmoid(), nn.Sigmoid(), nn.Tanh(), nn.Sigmoid()))
        self.res = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                                               nn.ReLU()) for _ in range(blocks))
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        est = x
        hid = torch.zeros(b, self.out.in_channels, h, w, dtype=x.dtype, device=x.device)
        cell = torch.zeros_like(hid)
        for _ in range(self.stages):
            f = torch.cat([self.conv0(torch.cat([x, est], 1)), hid], 1)
            i, fg, g, o = (gate(f) for gate in self.gates)
            cell = fg * cell + i * g
            hid = o * torch.tanh(cell)
            y = hid
            for blk in self.res:
                y = torch.relu(blk(y) + y)
            est = x + self.out(y)
        return est


def train_derainer(out_dir: str | Path = SHIP_DIR, clean_dir=None, public_dir=None, real_dir=None,
                   recipe: dict | None = None, device: str = "auto", resume: bool = True, progress: bool = True,
                   latency_size: int = 1024, repeats: int = 5, figures_dir: str | Path | None = None,
                   bootstrap: int = 1000) -> dict[str, Any]:
    """Train the shipped deraining model (:data:`RECIPE`, any key overridable through ``recipe``), score it on the
    public test pairs, time it on 2 threads (whole image, like PReNet's published time and PReNet's architecture
    timed here, and tiled like ``ttl derain``'s default) and write
    ``{out_dir}/derain.pt`` and ``{out_dir}/derain.json``; a before/after figure of the first test-split photograph
    of ``real_dir`` goes to ``{figures_dir}/real_before_after.png``. Returns the record."""
    from . import evaluation as E
    from .heldout import public_sets
    from .scores import model_scores
    from .calibrate import SYNTHETIC_TARGETS
    from .config import data_source, git_revision, write_json
    from .engine import TrainConfig, train
    from .models import RestorationNet, count_flops, count_params, load_model, save_model
    from .train import LOSSES
    from .utils import resolve_device

    started, revision = time.time(), git_revision()
    rc = {**RECIPE, **(recipe or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir, recipe_file = out_dir / "run", out_dir / "run" / "recipe.json"
    if resume and (run_dir / "last.pt").is_file():
        before = json.loads(recipe_file.read_text()) if recipe_file.is_file() else None
        if before != json.loads(json.dumps(rc)):
            raise ValueError(f"{run_dir} holds a run of another recipe ({recipe_file}); start over with `ttl weights "
                             "--fresh` (or pass the same settings) instead of resuming it")
    run_dir.mkdir(parents=True, exist_ok=True)  # a fresh run's stale checkpoints are cleared by the engine
    write_json(recipe_file, rc)
    dev = str(resolve_device(device))
    public_train, public_test = public_split(public_dir) if public_dir else ([], [])
    pairs = training_pairs(rc, clean_dir, public_train)
    torch.manual_seed(rc["seed"])
    model = RestorationNet(width=rc["width"], depth=rc["depth"], blocks=rc["blocks"], context=rc["context"])
    loss_fn = LOSSES[rc["loss"]]
    tc = TrainConfig(steps=rc["steps"], batch=rc["batch"], lr=rc["lr"], seed=rc["seed"], device=dev,
                     ckpt_every=max(1, rc["steps"] // 20), progress=progress, desc="derain model")
    log = train(model, pairs, lambda m, b: loss_fn(m(b["rainy"]).float(), b["clean"]), tc, run_dir=run_dir,
                resume=resume)
    model = model.cpu().eval()
    path = save_model(out_dir / f"{SHIP_NAME}.pt", model, recipe=rc, revision=revision)

    # scored once, on the public test pairs (never trained on)
    public: dict[str, Any] = {}
    sets = {}
    for d in public_test:
        one = public_sets(d.parent, only=d.name)[d.name]
        sets[f"public/{d.name}"] = {"rainy": one["rainy"], "clean": one["clean"]}
    if sets:
        results = E.evaluate_checkpoints({SHIP_NAME: [Path(path)]}, sets, device=dev, progress=progress)
        scores = {n: model_scores(r, bootstrap, rc["seed"]) for n, r in results.items()}
        summary = E.public_summary(scores, results, [d.name for d in public_test], bootstrap, rc["seed"])
        public = {"summary": summary, "by_rain_amount": E.by_rain_amount(results, list(sets), [SHIP_NAME], bootstrap,
                                                                          rc["seed"])}
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))  # PReNet's published CPU time is on 2 cores: time ours the same way
    try:  # whole image, as PReNet's published time is; and tiled, as `ttl derain` runs by default
        speed = {"ours_s_per_mp": E.latency_per_mp(model, latency_size, repeats, tile=0),
                 "prenet_arch_s_per_mp": E.latency_per_mp(PReNetArch().eval(), latency_size, repeats, tile=0),
                 "ours_tiled_s_per_mp": E.latency_per_mp(model, latency_size, repeats, tile=TILE),
                 "tile": TILE, "size": latency_size, "repeats": repeats, "threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(threads)
    speed["speedup_vs_prenet"] = speed["prenet_arch_s_per_mp"] / speed["ours_s_per_mp"]
    speed["prenet_published_s_per_mp"] = PRENET["s_per_mp_2cpu"]
    speed["speedup_vs_prenet_published"] = PRENET["s_per_mp_2cpu"] / speed["ours_s_per_mp"]
    figure = None
    if real_dir is not None and figures_dir is not None:
        from . import plots
        from .datasets import split_paths
        from .io import read_image

        photo = sorted(split_paths(real_dir, "test", "real_dir"))[0]  # a fixed rule, not a choice by eye
        cols = E.gallery_columns({f"{SHIP_NAME} (ttl derain)": Path(path)}, [read_image(photo)], dev)
        fig_dir = Path(figures_dir)
        fig_dir.mkdir(parents=True, exist_ok=True)
        plots.gallery(cols, fig_dir / "real_before_after.png", crop_px=160, size=3.2)
        figure = {"file": str(fig_dir / "real_before_after.png"), "photograph": photo.name}
    record = {"model": SHIP_NAME, "file": f"{SHIP_NAME}.pt", "git_revision": revision, "recipe": rc,
              "spec": model.spec, "params": count_params(model), "gflops_256": count_flops(model, 256) / 1e9,
              "training": {"steps": rc["steps"], "time_s": round(float(log.get("time_s", 0.0)), 1),
                           "device": dev, "threads": torch.get_num_threads(), "pairs": len(pairs),
                           "final_loss": log["loss"][-1] if log.get("loss") else None},
              "data": pairs.manifest(), "public_test_sets": [d.name for d in public_test],
              # test sets whose other part calibrated a synthetic preset and trains (the scored part never did)
              "calibration_sets": sorted(set(SYNTHETIC_TARGETS.values()) & {d.name for d in public_test}),
              "data_source": data_source(clean_dir=clean_dir, public_dir=public_dir, real_dir=real_dir),
              "public": public, "speed": speed, "figure": figure,
              "wall_time_s": round(time.time() - started, 1)}
    write_json(out_dir / f"{SHIP_NAME}.json", record)
    load_model(path)  # the file loads alone
    return record
