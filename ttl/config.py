"""Presets, run configuration and the run record every notebook writes.

A *preset* fixes every size of the study (images, steps, widths). ``smoke`` is for CI (seconds per
notebook), ``default`` is the main job (the whole study on 2 CPU cores), ``paper`` is for a GPU and real
datasets. Any size can be overridden, e.g. from papermill (``-p f_steps 5000``) or ``ttl study -p f_steps=5000``
(:func:`notebook_settings`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "photo_size": 64,  # short side (px) at which photographs are worked on (training crops, renders)
        # notebook 01: gap analysis
        "gap_size": 96,  # working resolution (short side, px) of every statistic
        "gap_n_rendered": 12,  # rendered images per domain
        "gap_n_real": 12,  # real photographs used at most (per calibration / held-out half)
        "bootstrap": 100,
        "c2st_permutations": 20,
        # notebook 01: the motivating experiment (C2)
        "c2_patch": 32,
        "c2_batch": 4,
        "c2_steps": 6,
        "c2_width": 8,
        "c2_n_test": 4,
        "c2_test_size": 64,
        "val_every": 3,
        # notebook 02: teachers
        "context": True,  # restoration networks (T2, student, baselines) see whole-image statistics (GlobalContext)
        "t_width": 4,
        "t_depth": 2,
        "t_patch": 32,
        "t_batch": 4,
        "t1_steps": 4,
        "t2_steps": 4,
        "t1_lr": 5e-4,  # T1's learning rate (2e-3 collapsed or spiked: docs/measurements/t1_stability)
        "t2_lr": 2e-3,
        "t_scenes": 16,
        "t_eval": 16,
        # notebook 03: distillation
        "s_width": 2,
        "d_steps": 4,
        "d_norm": "standardise",  # how distillation compares features (ttl.distill.FEATURE_LOSSES)
        # notebook 04: fine-tuning and baselines
        "f_pairs": 32,  # procedural fallback: paired training scenes (rendered once)
        "f_renders": 5,  # renders of each training photograph, fixed like a dataset
        # rain amount of render k of photo i: f_rain[(i + k) % len(f_rain)]; a fifth rain-free (README ledger)
        "f_rain": ["light", "heavy", "light", "heavy", "none"],
        # training streaks lean up to f_tilt degrees from vertical (ttl.rain.widened; validation/test keep the presets)
        "f_tilt": 45.0,
        "f_size": 48,  # validation crops (and procedural scenes) are f_size px
        "f_val": 4,  # procedural fallback: validation scenes per domain
        "f_patch": 32,  # training crops
        "f_patch_late": 48,  # larger crops for the last f_late of the steps
        "f_late": 0.25,
        "f_fraction": 0.25,  # the minority of the headline rows (of the training scenes)
        "f_sweep": [0.25, 0.5, 1.0],  # fractions of the sweep
        "f_draws": 3,  # minority draws (seeds) of ttl and sup-minority
        "f_seeds": 2,  # seeds of the other searched rows (sup-full, syn2real, the controls)
        "f_sweep_draws": 2,  # draws of the sweep's minority points
        "f_optional_rows": ["ttl-target-ms"],  # optional rows of notebook 04 that this preset runs (ttl.finetune.OPTIONAL_ROWS)
        "f_public_share": 0.1,  # share of each public training folder in notebook 04's pool (ttl.finetune.training_pool)
        "f_steps": 4,  # rows on all pairs
        "f_steps_minority": 3,  # rows on a minority (they peak early; checkpoints are chosen on validation)
        "f_val_every": 2,  # validation interval (steps) of fine-tuning: checkpoint selection
        "f_val_select": 4,  # validation crops per set that choose checkpoints and lr (at most half; the rest report)
        "f_lr_grid": [5e-4, 5e-3],  # the learning rates every searched row tries; default/paper: 3
        "f_search_draws": 2,  # draws (seeds 0..) each lr is tried on; the best mean score wins
        "f_dose": [0.5],  # pretraining budgets (x the preset's t1/t2/d steps) of the dose-response, besides x1
        "f_dose_draws": 1,  # ttl draws per dose-response budget (the draws of f_draws after the lr search's)
        "f_workers": 0,  # notebook 04's parallel training jobs: 0 auto (2 on a CPU, 1 on a GPU; ttl.parallel)
        "f_batch": 4,
        "f_loss": "l1",
        "f_lr": 2e-3,
        "f_gp_weight": 0.0015,  # Syn2Real's weight of the GP loss
        "f_reset_head": True,  # pretrained rows start from a zero (identity) output head, like scratch rows
        "f_rescale_start": True,  # pretrained rows start with each layer at a fresh network's output scale
        # notebook 05: real-world evaluation
        "e_n_test": 4,  # test crops of the bundled photographs (synthetic and realistic rain on the same crops)
        "e_test_size": 48,
        "e_test_photos": 8,  # test-split photographs of clean_dir scored at most (0: all; a cap for CI time only)
        "e_real_size": 200,  # real photographs are downscaled to this short side (0: native); NIQE needs 192
        "e_latency_size": 128,  # latency measured on a square image of this side
        "e_repeats": 1,
        "e_margin_db": 0.5,  # non-inferiority margin of claim C3a (PSNR-Y, dB)
        "e_real_n": 3,  # real photographs scored at most (0: all of the val and test splits)
        "e_rain_fit_n": 8,  # photographs per class fitting the rain classifier at most (0: the whole train splits)
        "e_judge_steps": 20,  # training steps of the rain-left network (ttl.realrain)
        "e_judge_renders": 4,  # realistic renders of train photographs setting the scene-kept floor
        "e_public_n": 2,  # public pairs per set at most (0: all)
        "e_public_size": 96,  # public pairs resized to this short side (0: native, as the field scores them)
        "calib_n": 4,  # public training pairs per preset in notebook 01's calibration check (0: all)
        "calib_size": 96,  # their working short side (the calibration's own is 256)
    },
    "default": {
        "photo_size": 320,
        "gap_size": 320,
        "gap_n_rendered": 46,
        "gap_n_real": 46,
        "bootstrap": 1000,
        "c2st_permutations": 200,
        "c2_patch": 64,
        "c2_batch": 8,
        "c2_steps": 1200,
        "c2_width": 16,
        "c2_n_test": 24,
        "c2_test_size": 192,
        "val_every": 200,
        "context": True,
        "t_width": 16,
        "t_depth": 3,
        "t_patch": 64,
        "t_batch": 8,
        "t1_steps": 1500,
        "t2_steps": 700,
        "t1_lr": 5e-4,  # T1's learning rate (2e-3 collapsed or spiked: docs/measurements/t1_stability)
        "t2_lr": 2e-3,
        "t_scenes": 1024,
        "t_eval": 128,
        "s_width": 8,
        "d_steps": 800,
        "d_norm": "standardise",  # how distillation compares features (ttl.distill.FEATURE_LOSSES)
        "f_pairs": 512,
        "f_size": 192,
        "f_renders": 5,
        "f_rain": ["light", "heavy", "light", "heavy", "none"],
        "f_tilt": 45.0,
        "f_val": 64,
        "f_patch": 64,
        "f_patch_late": 96,
        "f_late": 0.0,  # larger crops late did not pay within the budget (ttl benchmark --recipes)
        "f_fraction": 0.01,  # 3 of the 280 training photographs: the share at which a minority binds (README)
        "f_sweep": [0.01, 0.05, 0.1, 1.0],
        "f_draws": 5,
        "f_seeds": 2,  # 3 did not fit the study's time with the search (README ledger)
        "f_sweep_draws": 2,
        "f_optional_rows": ["ttl-target-ms"],  # [] saves about 75 s (README, presets)
        "f_public_share": 0.1,  # as ttl.ship.RECIPE: sup-full +0.6 dB on Rain13K (docs/measurements/study_public_pairs)
        "f_steps": 2000,
        "f_steps_minority": 1000,
        "f_val_every": 100,
        "f_val_select": 16,
        "f_lr_grid": [5e-4, 2e-3, 5e-3],
        "f_search_draws": 2,  # one draw chose ttl's worst lr on average (docs/measurements/lr_two_draws)
        "f_dose": [0.25, 0.5],
        "f_dose_draws": 2,  # 3 did not fit the hour beside the 2-draw lr search (README ledger)
        "f_workers": 0,  # notebook 04's parallel training jobs: 0 auto (2 on a CPU, 1 on a GPU; ttl.parallel)
        "f_batch": 16,
        "f_loss": "l1",
        "f_lr": 2e-3,
        "f_gp_weight": 0.0015,
        "f_reset_head": True,
        "f_rescale_start": True,
        "e_n_test": 48,
        "e_test_size": 192,
        "e_test_photos": 0,
        "e_real_size": 384,
        "e_latency_size": 1024,
        "e_repeats": 5,
        "e_margin_db": 0.5,
        "e_real_n": 0,
        "e_rain_fit_n": 0,
        "e_judge_steps": 1500,
        "e_judge_renders": 64,
        "e_public_n": 0,
        "e_public_size": 0,
        "calib_n": 0,
        "calib_size": 256,
    },
    "paper": {
        "photo_size": 512,
        "gap_size": 512,
        "gap_n_rendered": 200,
        "gap_n_real": 1000,
        "bootstrap": 5000,
        "c2st_permutations": 1000,
        "c2_patch": 128,
        "c2_batch": 16,
        "c2_steps": 30000,
        "c2_width": 32,
        "c2_n_test": 100,
        "c2_test_size": 384,
        "val_every": 2000,
        "context": True,
        "t_width": 48,
        "t_depth": 4,
        "t_patch": 128,
        "t_batch": 32,
        "t1_steps": 30000,
        "t2_steps": 60000,
        "t1_lr": 5e-4,  # T1's learning rate (2e-3 collapsed or spiked: docs/measurements/t1_stability)
        "t2_lr": 2e-3,
        "t_scenes": 20000,
        "t_eval": 1000,
        "s_width": 24,
        "d_steps": 60000,
        "d_norm": "standardise",  # how distillation compares features (ttl.distill.FEATURE_LOSSES)
        "f_pairs": 4000,
        "f_size": 256,
        "f_renders": 5,
        "f_rain": ["light", "heavy", "light", "heavy", "none"],
        "f_tilt": 45.0,
        "f_val": 200,
        "f_patch": 128,
        "f_patch_late": 192,
        "f_late": 0.25,
        "f_fraction": 0.1,
        "f_sweep": [0.01, 0.05, 0.1, 1.0],
        "f_draws": 5,
        "f_seeds": 3,
        "f_sweep_draws": 2,
        "f_optional_rows": ["ttl-target-ms"],
        "f_public_share": 0.1,
        "f_steps": 60000,
        "f_steps_minority": 20000,
        "f_val_every": 1000,
        "f_val_select": 64,
        "f_lr_grid": [5e-4, 2e-3, 5e-3],
        "f_search_draws": 2,
        "f_dose": [0.25, 0.5, 2.0],
        "f_dose_draws": 3,
        "f_workers": 0,  # notebook 04's parallel training jobs: 0 auto (2 on a CPU, 1 on a GPU; ttl.parallel)
        "f_batch": 16,
        "f_loss": "l1",
        "f_lr": 2e-3,
        "f_gp_weight": 0.0015,
        "f_reset_head": True,
        "f_rescale_start": True,
        "e_n_test": 200,
        "e_test_size": 384,
        "e_test_photos": 0,
        "e_real_size": 0,
        "e_latency_size": 2048,
        "e_repeats": 10,
        "e_margin_db": 0.5,
        "e_real_n": 0,
        "e_rain_fit_n": 0,
        "e_judge_steps": 3000,
        "e_judge_renders": 128,
        "e_public_n": 0,
        "e_public_size": 0,
        "calib_n": 0,
        "calib_size": 256,
    },
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which values are valid."""


def resolve_config(preset: str, overrides: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return the sizes of ``preset`` with ``overrides`` applied (``None`` values are ignored).

    Raises :class:`ConfigError` for an unknown preset or an unknown override name, listing the valid ones.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cfg = dict(PRESETS[preset])
    for key, value in {**(overrides or {}), **extra}.items():
        if value is None:
            continue
        if key not in cfg:
            raise ConfigError(f"unknown setting {key!r} for preset {preset!r}; valid settings: {', '.join(sorted(cfg))}")
        cfg[key] = type(cfg[key])(value) if isinstance(cfg[key], (int, float)) and not isinstance(value, bool) else value
    _check_draws(cfg)
    cfg["preset"] = preset
    return cfg


def notebook_settings(namespace: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The preset sizes a notebook was given: every name in ``namespace`` (the notebook's globals, read right after
    its parameters cell and papermill's injected one) that is a setting of ``preset`` and not ``None``. So
    ``papermill -p f_workers 1`` or ``ttl study -p f_workers=1`` overrides any size, also one that the parameters
    cell does not list; :func:`resolve_config` checks the values."""
    import types

    keys = PRESETS.get(preset, {})
    return {k: v for k, v in namespace.items()
            if k in keys and v is not None and not callable(v) and not isinstance(v, types.ModuleType)}


def _check_draws(cfg: dict[str, Any]) -> None:
    """The lr search runs ``f_search_draws`` draws of every searched row, and the dose-response the ``f_dose_draws``
    after them: refuse settings that would search rows on different numbers of draws or run out of draws."""
    n, seeds, draws = cfg["f_search_draws"], cfg["f_seeds"], cfg["f_draws"]
    if n < 1:
        raise ConfigError(f"f_search_draws={n}: the lr search needs at least 1 draw")
    if seeds < n or draws < n:
        raise ConfigError(f"f_search_draws={n} exceeds f_seeds={seeds} or f_draws={draws}: every searched row must "
                          "try each lr on the same number of draws; lower f_search_draws or raise the seeds")
    if cfg["f_dose"] and (cfg["f_dose_draws"] < 1 or draws < n + cfg["f_dose_draws"]):
        raise ConfigError(f"f_dose_draws={cfg['f_dose_draws']} needs 1 <= f_dose_draws <= f_draws - f_search_draws "
                          f"(= {draws - n}): the dose-response runs the draws after the lr search's; lower it, raise "
                          "f_draws, or set f_dose=[] to skip the dose-response")


def check_dir(path: str | os.PathLike | None, name: str) -> Path | None:
    """Return ``path`` as a Path if it is an existing folder, ``None`` if not given; fail clearly otherwise."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    if not p.is_dir():
        hint = "it does not exist" if not p.exists() else "it is a file, not a folder"
        raise FileNotFoundError(
            f"{name}={str(path)!r}: {hint}. Pass an existing folder of images, or None to use the embedded data."
        )
    return p


# the study's data folder (``ttl data fetch`` writes it; ``../shared/data`` has the same tree) and the notebook
# parameter each of its subfolders supplies
DATA_FOLDERS = {"clean_dir": "clean_scenes", "real_dir": "real_rainy", "public_dir": "paired_public"}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def find_data_dir(root: str | os.PathLike | None = None) -> Path | None:
    """The study's data folder: ``data/`` of the checkout when ``make data`` (``ttl data fetch``) has filled it, else
    ``../shared/data`` beside the checkout, else ``None`` (the study then runs on its embedded fallback: procedural
    scenes, bundled photographs, realistic rain standing in for real rain)."""
    root = Path(root) if root is not None else PROJECT_ROOT
    for cand in (root / "data", root.parent / "shared" / "data"):
        if any((cand / sub).is_dir() for sub in DATA_FOLDERS.values()):
            return cand
    return None


def data_parameters(data_dir: str | os.PathLike | None) -> dict[str, str]:
    """The notebook parameters (``clean_dir``, ``real_dir``, ``public_dir``) that a data folder supplies."""
    if data_dir is None:
        return {}
    d = Path(data_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"data folder {str(d)!r} does not exist: run `make data` (ttl data fetch), or pass "
                                "--data-dir none to run on the embedded data")
    return {param: str(d / sub) for param, sub in DATA_FOLDERS.items() if (d / sub).is_dir()}


def data_source(**folders: str | os.PathLike | None) -> dict[str, Any]:
    """Which data a run read, for its record: for every folder given (e.g. ``clean_dir=...``), its path, where it
    came from (``data/`` fetched by ``ttl data fetch``, the shared folder, or another folder), its number of image
    files and one SHA-256 over the sorted ``(relative path, file SHA-256)`` lines, so that two runs can be compared
    at a glance. Folders given as ``None`` are recorded as ``"embedded"`` (the fallback ran)."""
    from .io import list_images

    out: dict[str, Any] = {}
    for name, folder in folders.items():
        if folder is None:
            out[name] = "embedded"
            continue
        p = Path(folder).resolve()
        files = list_images(p, recursive=True)
        lines = "".join(f"{f.relative_to(p).as_posix()} {file_digest(f)}\n" for f in files)
        parts = p.parts
        origin = ("data/ (ttl data fetch)" if p.parent == (PROJECT_ROOT / "data").resolve() else
                  "../shared/data" if parts[-3:-1] == ("shared", "data") else "user folder")
        out[name] = {"path": str(folder), "origin": origin, "files": len(files),
                     "sha256": hashlib.sha256(lines.encode()).hexdigest()}
    return out


# what a study run writes into the checkout: its own outputs do not make the code that produced them dirty
STUDY_OUTPUTS = ("results", "figures", "weights", "notebooks/*.ipynb", "README.md")


def _bf16(device) -> bool | None:
    import torch

    from .engine import bf16_supported

    try:
        return bf16_supported(torch.device(device))
    except (RuntimeError, TypeError):  # e.g. a device name torch does not know
        return None


def git_revision(repo: str | os.PathLike | None = None) -> str:
    """The checkout's commit, with ``-dirty`` when anything but the study's own outputs (:data:`STUDY_OUTPUTS`: the
    executed notebooks, results, figures, shipped weights and the README's results block, which each notebook of a
    ``make study`` leaves behind for the next) differs from it; ``unknown`` outside a git checkout."""
    cwd = Path(repo) if repo else PROJECT_ROOT
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        exclude = [f":(exclude){p}" for p in STUDY_OUTPUTS]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def folder_manifest(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """File names (relative to ``root``) and SHA-256 digests: what a run read, so that it can be checked later."""
    out = []
    for p in paths:
        p = Path(p)
        name = str(p.relative_to(root)) if root else p.name
        out.append({"file": name, "sha256": file_digest(p)})
    return out


def _jsonable(obj: Any) -> Any:
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover
        np = torch = None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if np is not None and isinstance(obj, np.ndarray):
        return obj.tolist()
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:
        return None  # NaN is not JSON
    return obj


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write or rename (e.g. path is a folder): no stray file
    return path


def run_dirs(results_dir: str | os.PathLike, figures_dir: str | os.PathLike, notebook: str, preset: str) -> tuple[Path, Path]:
    """``{results_dir}/{notebook}/{preset}`` and ``{figures_dir}/{notebook}`` (figures of non-default presets
    go to ``{figures_dir}/{notebook}/{preset}`` so that a smoke run never overwrites the study's figures)."""
    res = Path(results_dir) / notebook / preset
    fig = Path(figures_dir) / notebook
    if preset != "default":
        fig = fig / preset
    res.mkdir(parents=True, exist_ok=True)
    fig.mkdir(parents=True, exist_ok=True)
    return res, fig


def run_record(notebook: str, config: Mapping[str, Any], seed: int, device: str, manifest: Any,
               metrics: Mapping[str, Any], started: float | None = None, revision: str | None = None) -> dict[str, Any]:
    """The ``metrics.json`` content: config, seed, git revision, environment, data manifest and metrics.

    Pass the ``revision`` read when the run started (:func:`git_revision`): it names the code that ran, even if the
    checkout changes while the run goes on."""
    import time

    import torch

    rec = {
        "notebook": notebook,
        "preset": config.get("preset"),
        "seed": seed,
        "config": dict(config),
        "git_revision": revision or git_revision(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "device": device,
            "threads": torch.get_num_threads(),
            # the engine's bf16 autocast runs where the device has native bf16 (numbers differ from an fp32 run)
            "bf16_autocast": _bf16(device),
        },
        "data_manifest": manifest,
    }
    if started is not None:
        rec["wall_time_s"] = round(time.time() - started, 1)
    rec.update(metrics)
    return rec
