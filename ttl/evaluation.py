"""Real-world evaluation (notebook 05; STUDY §7): every model of notebook 04 on held-out test data, the
no-reference scores on real photographs, the size/speed table and the verdicts on claims C1-C4.

The test sets (rendered rain on the test photographs, the public pairs, the real photographs; none of them reached
any training step) are built in :mod:`ttl.heldout`; the score summaries the verdicts read are :mod:`ttl.scores`'s.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Collection

import numpy as np
import torch
import torch.nn as nn

from .metrics import ALL_METRICS, Target, image_metrics
from .progress import progress_bar
from .scores import ci_text

__all__ = ["SCORED_EVERYWHERE", "finetuned_roles", "finetuned_fractions", "by_rain_amount", "amount_frame",
           "finetuned_checkpoints", "evaluate_checkpoints", "noref_table", "latency_per_mp", "size_speed", "verdicts",
           "dose_trend", "VERDICT_RULES", "score_table", "gallery_columns"]


def finetuned_checkpoints(finetuning_dir) -> dict[str, list[Path]]:
    """Every model of notebook 04 and its checkpoints (one per seed), in the notebook's order, from its
    ``metrics.json``; paths are resolved inside ``{finetuning_dir}/checkpoints``."""
    finetuning_dir = Path(finetuning_dir)
    rec = finetuning_dir / "metrics.json"
    if not rec.is_file():
        raise FileNotFoundError(f"{rec} not found: run notebook 04 first (make study, or ttl study --notebooks 04) "
                                "or pass finetuning_dir")
    models = json.loads(rec.read_text())["models"]
    out = {}
    for name, m in models.items():
        paths = [finetuning_dir / "checkpoints" / Path(p).name for p in m["checkpoints"]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"checkpoints of {name!r} missing: {', '.join(missing)}; run notebook 04 again")
        out[name] = paths
    return out


SCORED_EVERYWHERE = ("headline", "evidence")  # roles scored on the public pairs, bundled_ sets and real photos too


def _finetuned_models(finetuning_dir) -> dict[str, dict]:
    return json.loads((Path(finetuning_dir) / "metrics.json").read_text())["models"]


def finetuned_roles(finetuning_dir) -> dict[str, str]:
    """Each notebook-04 row's role (``ttl.finetune.ROLES``) as its record wrote it."""
    return {n: m.get("role", "headline") for n, m in _finetuned_models(finetuning_dir).items()}


def finetuned_fractions(finetuning_dir) -> dict[str, float | None]:
    """Each notebook-04 row's scene fraction as its record wrote it (for :func:`ttl.scores.shares_draws`)."""
    return {n: m.get("fraction") for n, m in _finetuned_models(finetuning_dir).items()}


def evaluate_checkpoints(checkpoints: dict[str, list[Path]], sets: dict[str, dict[str, list[torch.Tensor]]],
                         real: list[torch.Tensor] | None = None, device: str = "cpu", tile: int = 512,
                         overlap: int = 128, niqe_model=None, rain_classifier=None, progress: bool = True,
                         extended: Collection[str] | None = None, judge=None) -> dict[str, list[dict[str, Any]]]:
    """Score every checkpoint (and the rainy input itself, ``"input"``): PSNR/SSIM (Y and RGB, per image) on each
    full-reference set of ``sets`` (``{name: {"rainy": [...], "clean": [...]}}``, any image sizes; sets that share
    their rainy list, e.g. ``realistic`` and ``realistic_clean``, are derained once), and on the ``real``
    photographs NIQE, PIQE and the rain left (:mod:`ttl.rainleft`: P(rain) when ``rain_classifier`` is given, and
    the oriented streak energy along the rainy input's streak direction), and ``bias_y`` (the output's mean
    brightness error) on every set. With a ``judge`` (:class:`ttl.realrain.RainJudge`): its rain left, scene kept and
    credited rain left on the ``real`` photographs (in ``noref``) and on the ``realistic`` set (``val["realistic"]
    ["judge"]``, for the ranking check; ``extended`` models only). Inference is tiled (:func:`ttl.inference.
    derain_image`). ``extended``: the models scored on the public sets (``public/...``), the second test set
    (``bundled_...``) and the ``real`` photographs too (None: every model; the input always is); the others are
    scored on the remaining sets only, which saves most of the time for ablations. Returns ``{name: [per-seed results]}`` shaped like notebook 04's runs
    (``result["val"][set]["per_image"][metric]``)."""
    from .inference import derain_image
    from .models import load_model
    from .noref import noref_scores
    from .rainleft import streak_direction, streak_energy

    directions = [streak_direction(x) for x in real] if real else []  # each rainy input's streak direction
    judged = {}  # the judge's rain left of each rainy input, once
    if judge is not None:
        if real:
            judged["real"] = judge.rain_left(real)
        if "realistic" in sets:
            judged["realistic"] = judge.rain_left(sets["realistic"]["rainy"])
    jobs = [("input", None)] + [(n, p) for n, ps in checkpoints.items() for p in ps]
    out: dict[str, list[dict[str, Any]]] = {}
    targets: dict[tuple[str, int], Target] = {}  # each target's quantised pixels and SSIM terms, once for every model
    for name, path in progress_bar(jobs, desc="evaluating", disable=not progress):
        model = None if path is None else load_model(path)[0].to(device)

        def run(xs):
            return list(xs) if model is None else [derain_image(model, x, tile=tile, overlap=overlap, device=device)
                                                   for x in xs]

        derained: dict[int, list[torch.Tensor]] = {}
        res: dict[str, Any] = {}
        full = path is None or extended is None or name in extended
        for set_name, s in sets.items():
            if not full and set_name.startswith(("public/", "bundled_")):
                continue
            if id(s["rainy"]) not in derained:
                derained[id(s["rainy"])] = run(s["rainy"])
            vals: dict[str, list[float]] = {}
            # the field scores Y; bias_y: the output's mean brightness error (darkening shows as negative)
            which = ("psnr_y", "ssim_y", "bias_y") if set_name.startswith("public/") else ALL_METRICS + ("bias_y",)
            for i, (pred, target) in enumerate(zip(derained[id(s["rainy"])], s["clean"])):
                t = targets.setdefault((set_name, i), Target(target[None]))
                for k, v in image_metrics(pred[None], t, which=which).items():
                    vals.setdefault(k, []).append(float(v[0]))
            res[set_name] = {**{k: float(np.mean(v)) for k, v in vals.items()}, "per_image": vals}
            if set_name in judged and set_name != "real" and full:
                res[set_name]["judge"] = judge.measure(s["rainy"], derained[id(s["rainy"])], judged[set_name])
        entry = {"checkpoint": str(path) if path else None, "val": res}
        if real and full:
            outs = run(real)
            entry["noref"] = noref_scores(outs, niqe_model)
            entry["noref"]["streak_energy"] = [streak_energy(y, direction=d) for y, d in zip(outs, directions)]
            if rain_classifier is not None:
                entry["noref"]["p_rain"] = rain_classifier.probability(outs).tolist()
            if "real" in judged:
                m = judge.measure(real, outs, judged["real"])
                entry["noref"].update({k: m[k] for k in ("rain_left", "credited_rain_left", "scene_kept")})
        out.setdefault(name, []).append(entry)
    return out


# on real photographs; every one lower-is-better but the scene kept (ttl.realrain)
NOREF_MEASURES = ("credited_rain_left", "rain_left", "scene_kept", "p_rain", "streak_energy", "niqe", "piqe")


def noref_table(results: dict[str, list[dict]], names: list[str], n_boot: int = 1000, seed: int = 0) -> dict:
    """The measures on real photographs (:data:`NOREF_MEASURES`) per model: mean over seeds of
    the per-image values, 95 % CI over images, the paired difference ``ttl - model`` (bootstrap CI, Wilcoxon p;
    negative = ``ttl`` better, except for the scene kept) and, for the streak energy, the share of the input's energy
    removed (pooled over the photographs: ``1 - sum E(out) / sum E(input)``)."""
    from .rainleft import MIN_ENERGY
    from .stats import bootstrap_ci, paired_bootstrap

    per = {n: {k: np.mean([r["noref"][k] for r in results[n]], 0) for k in NOREF_MEASURES
               if k in results[n][0].get("noref", {})}
           for n in names + ["input"] if n in results and "noref" in results[n][0]}
    out: dict[str, Any] = {}
    for n, v in per.items():
        out[n] = {}
        for k, arr in v.items():
            est, lo, hi = bootstrap_ci(arr, n_boot=n_boot, seed=seed)
            out[n][k] = {"mean": est, "low": lo, "high": hi, "per_image": arr.tolist()}
            if "ttl" in per and n != "ttl":
                out[n][k]["ttl_minus"] = paired_bootstrap(per["ttl"][k], arr, n_boot, seed=seed)
            if k == "streak_energy" and "input" in per:  # undefined when the inputs hold no streak energy
                total = per["input"][k].sum()
                out[n][k]["removed_pooled"] = float(1 - arr.sum() / total) if total > MIN_ENERGY * len(arr) else None
    return out


RANKED_MEASURES = {"credited rain left": ("credited_rain_left", 1), "rain left": ("rain_left", 1),
                   "scene kept": ("scene_kept", -1)}  # name -> (key, +1 lower-is-better / -1 higher-is-better)


def judge_ranking(scores: dict[str, dict], results: dict[str, list], models: list[str], n_boot: int = 1000,
                  seed: int = 0) -> dict[str, dict[str, Any]]:
    """The ranking check of :func:`ttl.realrain.ranking_check` on the ``realistic`` test set (streak-free target
    known): the rainy input and ``models``, PSNR-Y against the target against each of :data:`RANKED_MEASURES`
    (seed-averaged per image). Empty when the set was scored without a judge."""
    from .realrain import ranking_check

    names = [m for m in ["input", *models] if m in results and "judge" in results[m][0]["val"].get("realistic", {})]
    if len(names) < 3:
        return {}
    ref = {m: scores[m]["realistic"]["psnr_y_per_image"] for m in names}
    per = {label: {m: (sign * np.mean([r["val"]["realistic"]["judge"][key] for r in results[m]], 0)).tolist()
                   for m in names} for label, (key, sign) in RANKED_MEASURES.items()}
    return ranking_check(ref, per, n_boot, seed)


def noref_frame(noref: dict):
    """:func:`noref_table` as a table: one line per model, ``mean [95 % CI]`` per measure and ``ttl - model``."""
    import pandas as pd

    labels = {"credited_rain_left": "credited rain left", "scene_kept": "scene kept", "p_rain": "P(rain), lines",
              "streak_energy": "streak energy (x1000)", "niqe": "NIQE", "piqe": "PIQE"}
    scale = {"streak_energy": 1000.0}
    lines = []
    for n, v in noref.items():
        line = {"model": n}
        for k, lab in labels.items():
            if k not in v:
                continue
            f, x = (".3f" if k in ("p_rain", "credited_rain_left", "scene_kept") else ".2f"), scale.get(k, 1.0)
            line[f"{lab} [95 % CI]"] = f"{v[k]['mean'] * x:{f}} [{v[k]['low'] * x:{f}}, {v[k]['high'] * x:{f}}]"
            d = v[k].get("ttl_minus")
            line[f"ttl - model, {lab}"] = (f"{d['mean_diff'] * x:+{f}} [{d['low'] * x:+{f}}, {d['high'] * x:+{f}}]"
                                           if d else "")
        if v.get("streak_energy", {}).get("removed_pooled") is not None:
            line["streak energy removed (pooled)"] = f"{v['streak_energy']['removed_pooled']:+.2f}"
        lines.append(line)
    return pd.DataFrame(lines)


def rain_left_measures(real_dir, clean_dir, public: dict, sets: dict, cfg: dict, seed: int = 0):
    """Fit the rain classifier of :mod:`ttl.rainleft` on the train splits of ``real_dir`` (rain) and ``clean_dir``
    (no rain) and validate both measures where the answer is known: the ``public`` pairs and the ``realistic``
    test set (clean < half-derained < rainy; blur must not pass for rain removal). Returns ``(classifier or None,
    record)``; without both folders there is no classifier (the streak energy is still computed)."""
    from .rainleft import WORK_SIZE, _working, fit_rain_classifier, validate_measures, validation_table

    if real_dir is None or clean_dir is None:
        return None, {}
    clf, report = fit_rain_classifier(real_dir, clean_dir, n_boot=cfg["bootstrap"], seed=seed,
                                      limit=cfg["e_rain_fit_n"] or None)
    pairs = {k: ([_working(x, WORK_SIZE, crop=False) for x in v["rainy"]],
                 [_working(x, WORK_SIZE, crop=False) for x in v["clean"]]) for k, v in public.items()}
    if "realistic_clean" in sets:
        pairs["realistic (test photographs)"] = ([_working(x, WORK_SIZE, crop=True) for x in sets["realistic"]["rainy"]],
                                                 [_working(x, WORK_SIZE, crop=True) for x in sets["realistic_clean"]["clean"]])
    res = validate_measures(pairs, clf, blur_sigmas=(2.0,), n_boot=cfg["bootstrap"], seed=seed)
    order, blur = validation_table(res)
    return clf, {"classifier": {**report, "model": clf.to_dict()}, "table": order.to_dict(orient="records"),
                 "blur": blur.to_dict(orient="records")}


def public_summary(scores: dict[str, dict], results: dict[str, list], set_names: list[str], n_boot: int = 1000,
                   seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{set: {model or "input": {"psnr_y", "ssim_y", "n", intervals, "gain_over_input"}}}`` for the public sets
    (``public/<set>`` in ``scores``): means over seeds, 95 % CIs over images, and each model minus the input
    (paired by image; bootstrap CI, Wilcoxon p)."""
    from .scores import compare

    out: dict[str, dict[str, Any]] = {}
    for name in set_names:
        key = f"public/{name}"
        out[name] = {}
        for model, s in scores.items():
            if key not in s:  # a model scored on the study's own test sets only
                continue
            v = s[key]
            entry = {"psnr_y": v["psnr_y"], "ssim_y": v["ssim_y"], "n": len(v["psnr_y_per_image"]),
                     "psnr_y_ci_images": v["psnr_y_ci_images"], "ssim_y_ci_images": v["ssim_y_ci_images"],
                     "seeds": len(v["psnr_y_per_seed"])}
            if model != "input":
                d = compare({model: s, "input": scores["input"]}, results, model, "input", n_boot, seed)[key]
                entry["gain_over_input"] = {m: {k: d[m][k] for k in ("mean_diff", "low", "high", "wilcoxon_p")}
                                            for m in ("psnr_y", "ssim_y")}
            out[name][model] = entry
    return out


def by_rain_amount(results: dict[str, list], set_names: list[str], models: list[str], n_boot: int = 1000,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Each model on each set of ``set_names`` (keys of the results' ``val``), split by rain amount (the rule of
    :func:`ttl.metrics.rain_amount` on the *input*: light when the rainy image is less than
    :data:`ttl.metrics.LIGHT_RAIN_MAX` grey levels brighter than its target), and over all its pairs when it holds more
    than one amount: the PSNR-Y gain over the rainy input and the output's mean brightness error ``bias_y`` (grey
    levels of Y, negative = darker than the target), each a mean of seed-averaged per-image values with a 95 %
    bootstrap interval over images. One record per (set, amount, model); the input's own ``bias_y`` is how much
    brighter the rain made it."""
    from .metrics import amount_of_bias
    from .stats import bootstrap_ci

    def per_image(model: str, set_name: str, metric: str) -> np.ndarray:
        return np.mean([r["val"][set_name]["per_image"][metric] for r in results[model]], 0)

    out = []
    for set_name in set_names:
        base_psnr, base_bias = per_image("input", set_name, "psnr_y"), per_image("input", set_name, "bias_y")
        labels = np.array([amount_of_bias(float(d)) for d in base_bias])
        groups = {a: labels == a for a in ("none", "light", "heavy") if (labels == a).any()}
        if len(groups) > 1:
            groups["all"] = np.ones(len(labels), bool)
        for amount, keep in groups.items():
            for model in ["input"] + [m for m in models if m in results]:
                gain = per_image(model, set_name, "psnr_y")[keep] - base_psnr[keep]
                bias = per_image(model, set_name, "bias_y")[keep]
                g, b = bootstrap_ci(gain, n_boot=n_boot, seed=seed), bootstrap_ci(bias, n_boot=n_boot, seed=seed)
                out.append({"set": set_name.removeprefix("public/"), "rain": amount, "n": int(keep.sum()), "model": model,
                            "psnr_y": float(per_image(model, set_name, "psnr_y")[keep].mean()),
                            "gain_psnr_y": g[0], "gain_psnr_y_ci": [g[1], g[2]],
                            "bias_y": b[0], "bias_y_ci": [b[1], b[2]]})
    return out


def amount_frame(records: list[dict[str, Any]], wide: bool = False):
    """:func:`by_rain_amount` as a table (metric conventions in the headers): one line per record with its intervals,
    or with ``wide`` one line per (set, rain amount) and one column per model, ``gain (ΔY)``: the PSNR-Y gain over
    the input in dB and, in brackets, the output's mean ΔY against the target in grey levels."""
    import pandas as pd

    if wide:
        lines: dict[tuple, dict[str, Any]] = {}
        for r in records:
            line = lines.setdefault((r["set"], r["rain"]), {"set": r["set"], "rain": r["rain"], "n": r["n"]})
            if r["model"] == "input":
                line["input PSNR-Y (dB)"] = f"{r['psnr_y']:.2f}"
                line["input ΔY"] = f"{r['bias_y']:+.1f}"
            else:
                line[f"{r['model']}: gain dB (ΔY)"] = f"{r['gain_psnr_y']:+.2f} ({r['bias_y']:+.1f})"
        return pd.DataFrame(list(lines.values()))
    return pd.DataFrame([{"set": r["set"], "rain": r["rain"], "n": r["n"], "model": r["model"],
                          "PSNR-Y (dB)": f"{r['psnr_y']:.2f}",
                          "PSNR-Y gain (dB) [95 % CI]": ("" if r["model"] == "input" else
                                                          f"{r['gain_psnr_y']:+.2f} [{r['gain_psnr_y_ci'][0]:+.2f}, "
                                                          f"{r['gain_psnr_y_ci'][1]:+.2f}]"),
                          "mean ΔY vs target (grey levels) [95 % CI]": f"{r['bias_y']:+.1f} [{r['bias_y_ci'][0]:+.1f}, "
                                                                       f"{r['bias_y_ci'][1]:+.1f}]"}
                         for r in records])


def public_table(public_scores: dict[str, dict], models: list[str]):
    """The public sets as a table: one line per (set, model), PSNR-Y and SSIM-Y ``mean [95 % CI]`` and the PSNR-Y
    gain over the rainy input ``[95 % CI]``."""
    import pandas as pd

    lines = []
    for name, per in public_scores.items():
        for model in ["input"] + [m for m in models if m in per]:
            v = per[model]
            g = v.get("gain_over_input", {}).get("psnr_y")
            lines.append({"set": name, "n": v["n"], "model": model,
                          "PSNR-Y (dB)": f"{v['psnr_y']:.2f} [{v['psnr_y_ci_images'][0]:.2f}, {v['psnr_y_ci_images'][1]:.2f}]",
                          "SSIM-Y": f"{v['ssim_y']:.3f} [{v['ssim_y_ci_images'][0]:.3f}, {v['ssim_y_ci_images'][1]:.3f}]",
                          "PSNR-Y gain over input (dB)": (f"{g['mean_diff']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}]"
                                                          if g else "")})
    return pd.DataFrame(lines)


def ship_weights(checkpoints: dict[str, list[Path]], names: tuple[str, ...], out_dir: str | Path, preset: str,
                 revision: str, finetuning_record: dict, scores: dict, public_scores: dict,
                 pretraining_s: float = 0.0) -> list[Path]:
    """Copy the first-seed checkpoint of each of ``names`` to ``out_dir/<name>.pt`` (atomically) with a JSON record
    beside it: preset, git revision, seed, parameters, the SHA-256 of the run's data manifest, how long it trained
    (CPU or GPU seconds of fine-tuning, plus the teachers and the distillation for pretrained rows) and its test
    metrics (photographs with rendered rain, public pairs). ``ttl derain --checkpoint <name>`` loads them by name
    (its default is the shipped model, ``weights/derain/derain.pt``)."""
    import hashlib
    import shutil

    from .config import write_json
    from .models import count_params, load_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = finetuning_record.get("data_manifest", {})
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    written = []
    for name in names:
        if name not in checkpoints:
            continue
        src = checkpoints[name][0]
        tmp = out_dir / f".{name}.pt.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(out_dir / f"{name}.pt")
        model, meta = load_model(out_dir / f"{name}.pt")
        m = finetuning_record["models"][name]
        train_s = float(finetuning_record["logs"][name][0].get("time_s", 0.0))
        rec = {"model": name, "file": f"{name}.pt", "preset": preset, "git_revision": revision, "seed": m["seeds"][0],
               "params": count_params(model), "spec": model.spec, "init": m.get("init"), "fraction": m.get("fraction"),
               "training_s": {"fine-tuning": round(train_s, 1),
                              "teachers + distillation": round(pretraining_s, 1) if m.get("init") == "student" else 0.0},
               "data_manifest_sha256": digest, "data_source": manifest.get("data_source"),
               "test_metrics": {"photographs": {d: {k: v[k] for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
                                                for d, v in scores[name].items() if not d.startswith("public/")},
                                "public": {s: {k: per[name][k] for k in ("psnr_y", "ssim_y", "n")}
                                           for s, per in public_scores.items() if name in per}}}
        write_json(out_dir / f"{name}.json", rec)
        written.append(out_dir / f"{name}.pt")
    return written


@torch.no_grad()
def latency_per_mp(model: nn.Module, size: int = 1024, repeats: int = 5, device: str = "cpu",
                   tile: int = 512) -> float:
    """Median seconds per megapixel of tiled inference (:func:`ttl.inference.derain_image`) on a
    ``size`` x ``size`` image, after one warm-up run."""
    from .inference import derain_image

    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    derain_image(model, x, tile=tile, device=device)
    ts = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        derain_image(model, x, tile=tile, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) / (size * size / 1e6)


def size_speed(checkpoints: dict[str, list[Path]], size: int = 1024, repeats: int = 5,
               devices: tuple[str, ...] = ("cpu",)):
    """Parameters, GFLOPs at 256x256 and median latency per megapixel on each device, one line per distinct
    architecture (models sharing an architecture are listed together)."""
    import pandas as pd

    from .models import count_flops, count_params, load_model

    groups: dict[str, list[str]] = {}
    models: dict[str, nn.Module] = {}  # one model per architecture
    for name, paths in checkpoints.items():
        model, _ = load_model(paths[0])
        key = json.dumps(model.spec, sort_keys=True)
        groups.setdefault(key, []).append(name)
        models.setdefault(key, model)
    lines = []
    for key, names in groups.items():
        model = models[key]
        line = {"models": ", ".join(names), "params (M)": round(count_params(model) / 1e6, 3),
                "GFLOPs @256x256": round(count_flops(model, 256) / 1e9, 2)}
        for dev in devices:
            line[f"{dev.split(':')[0].upper()} s/MP"] = round(latency_per_mp(model.to(dev), size, repeats, dev), 3)
        lines.append(line)
    return pd.DataFrame(lines)


# ------------------------------------------------------------------------------------------- verdicts
# the experiment's precondition: on the same test images, more data and a bigger network must help, or no method
# can be shown to close the gap between a minority and all pairs
BINDING_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("sup-full", "sup-minority", "more data: all training scenes vs the minority, same network from scratch"),
    ("sup-full-large", "sup-full", "more capacity: the teacher-sized vs the student-sized network, all scenes"),
)


def binding(scores: dict[str, dict], results: dict[str, list], n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Does the experiment bind? ``a`` minus ``b`` for each of :data:`BINDING_PAIRS` whose rows ran, per test set
    and metric, paired by image (:func:`ttl.scores.compare`): ``{"a minus b": {"what": ..., "diff": ...}}``."""
    from .scores import compare

    return {f"{a} minus {b}": {"what": what, "diff": compare(scores, results, a, b, n_boot, seed)}
            for a, b, what in BINDING_PAIRS if a in scores and b in scores}


from .realrain import NUISANCE_MAX_SHARE, TARGET_MIN_SHARE  # noqa: E402  (the judge's validity bounds, one place)

_C3_BASIS = ("; every full-reference C3 interval is the 95 % bootstrap interval that resamples minority draws and "
             "test images together (ttl.stats.draw_bootstrap; minority rows paired on their common draws), the "
             "real-photograph intervals resample photographs (seed-averaged), for the configurations each row chose on validation data (the same "
             "learning-rate grid for every searched row, best validation checkpoint)")

VERDICT_RULES = {
    "C1": "supported if synthetic rain is told apart from real photographs (C2ST AUC interval above 0.5) and the "
          "realistic renderer is closer to them on most statistics; no real photographs: not assessed",
    "C2": "supported if a model trained on synthetic pairs gains less PSNR-Y over the rainy input on realistic than "
          "on synthetic test rain, the same photographs, realistic rain scored against its streak-free target "
          "(paired 95 % interval of the difference of gains above 0); not supported if the interval is below or "
          "covers 0; the same scored against the clean scene is reported beside",
    "C3a": "supported if ttl is non-inferior to sup-full on the synthetic test set (interval of ttl - sup-full "
           "above -margin dB PSNR-Y), not supported if entirely below -margin, mixed otherwise" + _C3_BASIS,
    "C3b": "supported if ttl beats the semi-supervised baseline on the synthetic test set (interval of the "
           "PSNR-Y difference above 0), not supported if below 0, mixed if it covers 0" + _C3_BASIS,
    "C3c": "supported if ttl beats both sup-full and the semi-supervised baseline on realistic test rain scored "
           "against its streak-free target (paired PSNR-Y intervals above 0) and, on real photographs, leaves no more "
           "credited rain than either (ttl.realrain: rain left, counted as not removed wherever the scene was not "
           "kept; paired interval of ttl minus baseline not above 0); not supported if it is worse than either on "
           "realistic rain (interval below 0) or leaves more credited rain than either (interval above 0); mixed "
           "otherwise. The real-photograph part counts only if the judge is valid (no nuisance of "
           f"ttl.realrain.NUISANCES judged derained on more than {NUISANCE_MAX_SHARE * 100:g} % of the real photographs, "
           f"and the noise-kept streak-free target judged derained on at least {TARGET_MIN_SHARE * 100:g} % of the "
           "realistic test renders) and the ranking check "
           "supports it (on the realistic test renders, Kendall's tau between the models' credited rain left and "
           "their PSNR-Y against the streak-free target has a 95 % interval above 0); otherwise the verdict rests on "
           "realistic rain alone and says so. Clean-target PSNR-Y, P(rain) of the line statistics, streak energy and "
           "NIQE are reported beside" + _C3_BASIS + "; the evidence names the pretraining dose-response's trend "
           "(notebook 04, validation), which informs but does not decide",
    "C4": "supported if the student has at most 1/3 of the teachers' parameters and keeps their tasks (T2-task "
          "PSNR-Y within 1 dB of T2; linear-probe accuracy within 0.05 of T1's and above a randomly initialised "
          "student's by more than 0.05); mixed if only the size holds",
}


def _judge_failure(check: dict | None) -> str:
    """Why :func:`ttl.realrain.judge_validity` failed, in words."""
    if not check or not check.get("worst"):
        return "judge not validated"
    why = []
    if check["share"] > check.get("max_share", NUISANCE_MAX_SHARE):
        why.append(f"'{check['worst']}' judged derained on {check['share']:.0%} of the real photographs")
    ts = check.get("target_share")
    if ts is None:
        why.append("the noise-kept target not measured")
    elif ts < check.get("min_target_share", TARGET_MIN_SHARE):
        why.append(f"the noise-kept streak-free target judged derained on only {ts:.0%} of the test renders")
    return "judge not valid: " + ("; ".join(why) or "see judge_check")


def _interval(r: dict) -> str:
    return f"{r['mean_diff']:+.2f} dB [{r['low']:+.2f}, {r['high']:+.2f}]"


def dose_trend(dose: list[dict] | None, domain: str = "synthetic") -> str:
    """One sentence on the dose-response of notebook 04 (its record's ``dose`` lines): ``ttl - sup-minority`` on
    ``domain`` validation at each pretraining budget, and the least-squares slope per doubling of the budget. The
    difference is said to grow (shrink) only when the slope exceeds 0.1 dB per doubling *and* the largest budget's
    interval lies wholly above (below) the smallest budget's; otherwise no trend is claimed."""
    pts = sorted([p for p in dose or [] if p["set"] == domain], key=lambda p: p["budget (x preset)"])
    if len(pts) < 2:
        return "no dose-response"
    x = np.log2([p["budget (x preset)"] for p in pts])
    y = np.array([p["ttl minus sup-minority PSNR-Y (dB)"] for p in pts])
    slope = float(np.polyfit(x, y, 1)[0])
    lo, hi = pts[0], pts[-1]
    if slope > 0.1 and hi["low"] > lo["high"]:
        word = "grows"
    elif slope < -0.1 and hi["high"] < lo["low"]:
        word = "shrinks"
    elif abs(slope) <= 0.1:
        word = "stays flat"
    else:
        word = "shows no trend its intervals resolve"
    parts = ", ".join(f"x{p['budget (x preset)']:g} {p['ttl minus sup-minority PSNR-Y (dB)']:+.2f} "
                      f"[{p['low']:+.2f}, {p['high']:+.2f}]" for p in pts)
    return (f"dose-response ({domain} validation, ttl minus sup-minority by pretraining budget): {parts}; the "
            f"difference {word} with the budget ({slope:+.2f} dB per doubling)")


def verdicts(m01: dict | None, m03: dict | None, comparisons: dict[str, dict], noref: dict | None,
             margin_db: float = 0.5, ranking: dict | None = None,
             judge_check: dict | None = None, dose: list[dict] | None = None) -> list[dict[str, str]]:
    """The verdict on each claim from the run records: ``m01`` (notebook 01), ``m03`` (notebook 03),
    ``comparisons[baseline][set][metric]`` (``ttl - baseline`` on the test sets, see
    :func:`ttl.scores.compare`), ``noref`` (:func:`noref_table`), ``ranking`` (:func:`judge_ranking`),
    ``judge_check`` (:func:`ttl.realrain.judge_validity`) and ``dose`` (notebook 04's dose-response lines,
    :func:`dose_trend`). Rules: :data:`VERDICT_RULES`."""
    rows = []

    def add(claim: str, verdict: str, evidence: str) -> None:
        rows.append({"claim": claim, "verdict": verdict, "evidence": evidence, "rule": VERDICT_RULES[claim]})

    # C1: the gap
    if m01 and m01.get("reference") == "real" and "synthetic" in m01.get("c2st", {}):
        c = m01["c2st"]["synthetic"]
        closer = {}
        for r in m01["distances"]:
            closer.setdefault((r["statistic"], r["measure"]), {})[r["domain"]] = r["distance"]
        n_closer = sum(d.get("realistic", np.inf) < d.get("synthetic", -np.inf) for d in closer.values())
        ok = c["low"] > 0.5 and n_closer > len(closer) / 2
        add("C1", "supported" if ok else "not supported",
            f"C2ST AUC synthetic vs real {c['auc']:.3f} [{c['low']:.3f}, {c['high']:.3f}]; realistic rain closer to "
            f"real on {n_closer} of {len(closer)} distances")
    else:
        add("C1", "not assessed", "notebook 01 ran without real photographs")
    # C2: the failure
    if m01 and "c2_experiment" in m01:
        e = m01["c2_experiment"]
        r = e["gain_over_input_drop"]["psnr_y"]
        v = "supported" if r["low"] > 0 else "not supported"
        beside = e.get("gain_over_input_drop_clean_target", {}).get("psnr_y")
        add("C2", v, f"supervised U-Net, PSNR-Y gain over the input, synthetic minus realistic test rain (streak-free "
                     f"target) {_interval(r)} (Wilcoxon p = {r['wilcoxon_p']:.2g})"
                     + (f"; against the clean scene {_interval(beside)}" if beside else ""))
    else:
        add("C2", "not assessed", "notebook 01's record is missing")
    # C3: the method
    full = comparisons.get("sup-full", {})
    if "synthetic" in full:
        r = full["synthetic"]["psnr_y"]
        v = "supported" if r["low"] > -margin_db else ("not supported" if r["high"] < -margin_db else "mixed")
        add("C3a", v, f"ttl minus sup-full on synthetic test rain {_interval(r)}; margin {margin_db} dB")
    semi = next((comparisons[b] for b in comparisons if b not in ("sup-full", "sup-minority", "sup-full-large")
                 and b.startswith("syn2real")), {})
    if "synthetic" in semi:
        r = semi["synthetic"]["psnr_y"]
        v = "supported" if r["low"] > 0 else ("not supported" if r["high"] < 0 else "mixed")
        add("C3b", v, f"ttl minus syn2real on synthetic test rain {_interval(r)}")
    if "realistic" in full and "realistic" in semi:
        a, b = full["realistic"]["psnr_y"], semi["realistic"]["psnr_y"]
        real_txt, more_rain, less_rain = "no real photographs", False, True
        semi_name = next(n for n in comparisons if comparisons[n] is semi)
        key = "credited_rain_left"
        if noref and key in noref.get("sup-full", {}) and key in noref.get(semi_name, {}):
            d1, d2 = noref["sup-full"][key]["ttl_minus"], noref[semi_name][key]["ttl_minus"]
            txt = (f"real photographs, credited rain left ttl minus sup-full {d1['mean_diff']:+.3f} [{d1['low']:+.3f}, "
                   f"{d1['high']:+.3f}], minus {semi_name} {d2['mean_diff']:+.3f} [{d2['low']:+.3f}, {d2['high']:+.3f}]")
            check = (ranking or {}).get("credited rain left")
            tau = (f"ranking check tau {check['tau']:+.2f} [{check['low']:+.2f}, {check['high']:+.2f}]" if check
                   else "no ranking check")
            valid = bool(judge_check and judge_check.get("valid"))
            why = "judge valid" if valid else _judge_failure(judge_check)
            if valid and check and check["low"] > 0:
                more_rain = d1["low"] > 0 or d2["low"] > 0
                less_rain = d1["low"] <= 0 and d2["low"] <= 0
                real_txt = f"{txt} ({why}, {tau}: counted)"
            else:
                real_txt = f"{txt} (not counted: {why}, {tau}; realistic rain alone decides)"
        if a["low"] > 0 and b["low"] > 0 and less_rain:
            v = "supported"
        elif a["high"] < 0 or b["high"] < 0 or more_rain:
            v = "not supported"
        else:
            v = "mixed"
        beside = ""
        if "realistic_clean" in full:
            beside = f"; against the clean scene, minus sup-full {_interval(full['realistic_clean']['psnr_y'])}"
        add("C3c", v, f"realistic test rain (streak-free target), ttl minus sup-full {_interval(a)}, minus "
                      f"{semi_name} {_interval(b)}{beside}; {real_txt}; {dose_trend(dose)}")
    # C4: the size
    if m03:
        ratio = m03["size_ratio_teachers_over_student"]
        kept = {(r["task"].split(":")[0], r["who"]): r["mean"] for r in m03["kept"]}
        d2 = kept[("T2", "T2")] - kept[("T2", "student")]
        d1 = kept[("T1", "T1 encoder")] - kept[("T1", "student")]
        d0 = kept[("T1", "student")] - kept.get(("T1", "random student"), float("nan"))
        small, keeps = ratio >= 3, d2 <= 1.0 and d1 <= 0.05 and d0 > 0.05
        add("C4", "supported" if small and keeps else ("mixed" if small else "not supported"),
            f"student = 1/{ratio:.1f} of T1+T2; T2 task: T2 minus student {d2:+.2f} dB; T1 task: T1 probe minus "
            f"student probe {d1:+.3f}, student probe minus a random student's {d0:+.3f}")
    return rows


def score_table(scores: dict[str, dict], metrics: tuple[str, ...] = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")):
    """One line per (model, test set): ``mean [95 % CI over images]`` per metric, the metric convention in every
    header (``PSNR-Y (dB)``, ``SSIM-Y``, ...), and the number of seeds."""
    import pandas as pd

    from .metrics import METRIC_LABELS

    lines = []
    for name, s in scores.items():
        for dom, v in s.items():
            line = {"model": name, "test set": dom, "seeds": len(v["psnr_y_per_seed"])}
            for m in metrics:
                line[METRIC_LABELS[m]] = ci_text(v, m) if m in v else ""  # public sets: Y only
            lines.append(line)
    return pd.DataFrame(lines)


@torch.no_grad()
def gallery_columns(checkpoints: dict[str, Path], images: list[torch.Tensor], device: str = "cpu",
                    clean: list[torch.Tensor] | None = None, tile: int = 512,
                    target: str = "clean") -> dict[str, list[torch.Tensor]]:
    """Columns for :func:`ttl.plots.gallery`: the rainy inputs, each model's outputs (tiled inference from its
    saved checkpoint, any image size) and, when known, the targets ``clean``, labelled ``target``."""
    from .inference import derain_image
    from .models import load_model

    cols = {"rainy input": list(images)}
    for name, path in checkpoints.items():
        model = load_model(path)[0]
        cols[name] = [derain_image(model, x, tile=tile, device=device) for x in images]
    if clean is not None:
        cols[target] = list(clean)
    return cols
