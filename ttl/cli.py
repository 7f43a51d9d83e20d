"""The ``ttl`` command line: ``ttl study``, ``ttl data``, ``ttl stage``, ``ttl report``, ``ttl calibrate``,
``ttl benchmark``, ``ttl weights``, ``ttl derain``, ``ttl evaluate``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _param(kv: str) -> tuple[str, object]:
    key, sep, raw = kv.partition("=")
    if not sep or not key:
        raise SystemExit(f"--param expects NAME=VALUE, got {kv!r}")
    try:
        return key, json.loads(raw)  # numbers, true/false/null, lists, dicts
    except json.JSONDecodeError:
        return key, raw  # a plain string


def _study(a: argparse.Namespace) -> int:
    import os
    import platform

    from .config import data_parameters, find_data_dir, write_json
    from .report import update_readme
    from .study import run_study

    data_dir = find_data_dir() if a.data_dir == "auto" else (None if a.data_dir in ("none", "") else a.data_dir)
    try:
        extra: dict = data_parameters(data_dir)
    except FileNotFoundError as e:
        print(f"ttl study: {e}", file=sys.stderr)
        return 2
    extra = {k: os.path.relpath(v) for k, v in extra.items()}  # recorded as given, e.g. ../shared/data/...
    print(f"[ttl study] data: {data_dir or 'embedded fallback (no data folder found)'} -> {extra or '{}'}", flush=True)
    extra.update({k: v for k, v in (("real_dir", a.real_dir), ("results_dir", a.results_dir),
                                    ("figures_dir", a.figures_dir), ("device", a.device)) if v})
    extra.update(_param(kv) for kv in a.param or [])
    times = run_study(a.preset, a.notebooks, a.output_dir, extra)
    if a.times:
        seconds = dict(times)
        if a.notebooks and Path(a.times).is_file():  # a partial run updates its notebooks' entries, keeps the others
            before = json.loads(Path(a.times).read_text())
            if before.get("preset") == a.preset:
                seconds = {**before.get("seconds", {}), **times}
        write_json(a.times, {"preset": a.preset, "seconds": dict(sorted(seconds.items())),
                             "total_s": round(sum(seconds.values()), 1),
                             "machine": f"{platform.machine()}, {os.cpu_count()} cores"})
    if a.preset == "default" and not a.output_dir and "results_dir" not in extra:
        update_readme()
    return 0


def _calibrate(a: argparse.Namespace) -> int:
    from .calibrate import calibrate, calibrate_synthetic

    if a.what in ("realistic", "both"):
        if not a.real_dir:
            print("ttl calibrate needs --real-dir (a folder of real rainy photographs)", file=sys.stderr)
            return 2
        r = calibrate(a.real_dir, size=a.size, n=a.n, iterations=a.iterations, seed=a.seed)
        print(f"realistic: objective {r['objective_start']:.3f} -> {r['objective']:.3f}; written to ttl/calibration.json")
    if a.what in ("synthetic", "both"):
        if not a.public_dir:
            print("ttl calibrate --what synthetic needs --public-dir (the public paired sets)", file=sys.stderr)
            return 2
        rec = calibrate_synthetic(a.public_dir, presets=tuple(a.presets), size=a.size, seed=a.seed,
                                  restarts=a.restarts)
        for name, r in rec.items():
            print(f"synthetic {name} (on {r['target']}): objective {r['objective_start']:.3f} -> {r['objective']:.3f}")
        print("written to ttl/calibration_synthetic.json")
    return 0


def _benchmark(a: argparse.Namespace) -> int:
    from .bench import benchmark_renderers, benchmark_training

    if a.recipes:
        from .bench import compare_recipes
        from .config import data_parameters, find_data_dir, resolve_config, write_json

        clean = data_parameters(find_data_dir()).get("clean_dir")
        res = compare_recipes(resolve_config(a.preset), clean, progress=True)
        for name, r in res.items():
            print(f"{name:<52} {r['synthetic']['psnr_y']:6.2f} dB synthetic, {r['realistic']['psnr_y']:6.2f} dB "
                  f"realistic validation PSNR-Y ({r['train_s']:.0f} s)")
        if a.out:
            write_json(a.out, {"preset": a.preset, "clean_dir": clean, "results": res})
        return 0
    if a.training:
        import platform

        from .config import write_json

        res = benchmark_training(steps=a.steps, repeats=a.repeats, threads=a.threads or None)
        for r in res.values():
            lo, hi = r["speedup_range"]
            print(f"{r['network']:>8} | {r['setting']:<52} {r['median_patches_per_s']:7.1f} patches/s "
                  f"(x{r['speedup_vs_before']:.2f}, rounds x{lo:.2f}-x{hi:.2f}; {r['patch']} px, median of {a.repeats})")
        if a.out:
            import torch

            write_json(a.out, {"steps": a.steps, "repeats": a.repeats, "threads": torch.get_num_threads(),
                               "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
                               "results": res})
        return 0
    res = benchmark_renderers(size=a.size, batch=a.batch, repeats=a.repeats, threads=a.threads)
    if a.out:
        import platform

        from .config import write_json

        write_json(a.out, {"size": a.size, "batch": a.batch, "repeats": a.repeats, "threads": a.threads,
                           "machine": platform.processor() or platform.machine(), "results": res})
    for k, v in res.items():
        print(f"{k:>12}: {v['median_patches_per_s']:8.1f} patches/s ({a.size}x{a.size}, {a.threads} thread(s), "
              f"median of {a.repeats})")
    return 0


def _report(a: argparse.Namespace) -> int:
    from .report import update_readme

    changed = update_readme(a.readme, a.results_dir)
    print(f"{a.readme}: results section {'updated' if changed else 'already current'}")
    return 0


def _derain(a: argparse.Namespace) -> int:
    from .engine import CheckpointError
    from .inference import derain_paths, resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(a.checkpoint)
    except FileNotFoundError as e:
        print(f"ttl derain: error: {e}", file=sys.stderr)
        return 2
    if a.tile < 0 or a.overlap < 0 or (a.tile and a.overlap >= a.tile):
        print(f"ttl derain: need --tile >= 0 and 0 <= --overlap < --tile (got {a.tile}, {a.overlap})", file=sys.stderr)
        return 2
    try:
        rep = derain_paths(a.input, a.output, checkpoint, device=a.device, tile=a.tile, overlap=a.overlap,
                           max_pixels=int(a.max_megapixels * 1e6))
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"ttl derain: error: {e}", file=sys.stderr)
        return 2
    print(f"derained {len(rep.ok)} of {len(rep.ok) + len(rep.failed)} images into {a.output} with {checkpoint}")
    if a.checkpoint is None:
        print("(the shipped deraining model, weights/derain/derain.pt from `make weights`; the study's models by name: "
              "--checkpoint ttl, sup-full, ...; see the README)")
    if rep.failed:
        print(f"{len(rep.failed)} failed (errors above): {', '.join(str(p) for p, _ in rep.failed)}", file=sys.stderr)
    return 0 if rep.all_ok else 1


def _evaluate(a: argparse.Namespace) -> int:
    from .inference import evaluate_folders, evaluation_table, save_evaluation

    if a.crop_border < 0:
        print(f"ttl evaluate: error: --crop-border must be >= 0 (got {a.crop_border})", file=sys.stderr)
        return 2
    if a.json and Path(a.json).is_dir():
        print(f"ttl evaluate: error: --json {a.json} is a folder; name a file, e.g. {Path(a.json) / 'evaluation.json'}",
              file=sys.stderr)
        return 2
    try:
        res = evaluate_folders(a.outputs, a.targets, crop_border=a.crop_border)
    except FileNotFoundError as e:
        print(f"ttl evaluate: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # unmatched names, different sizes, unreadable files
        print(f"ttl evaluate: error: {e}", file=sys.stderr)
        return 1
    print(evaluation_table(res))
    if res["outputs_are_rainy_inputs"]:
        print(f"note: {res['outputs_are_rainy_inputs']} of the {res['n']} outputs are the dataset's own rainy files: "
              "these are the rainy input's scores, not a model's", file=sys.stderr)
    if a.json:
        try:
            print(f"written to {save_evaluation(res, a.json)}")
        except OSError as e:
            print(f"ttl evaluate: error: could not write {a.json} ({e}); pass --json with a writable file path, or "
                  "--json '' to skip it", file=sys.stderr)
            return 2
    return 0


def _weights(a: argparse.Namespace) -> int:
    """Train the shipped deraining model (``make weights``)."""
    from .config import check_dir, data_parameters, find_data_dir
    from .ship import RECIPE, train_derainer

    data_dir = find_data_dir() if a.data_dir == "auto" else (None if a.data_dir in ("none", "") else a.data_dir)
    try:
        folders = data_parameters(data_dir)
        clean, public, real = (check_dir(a.clean_dir or folders.get("clean_dir"), "clean_dir"),
                               check_dir(a.public_dir or folders.get("public_dir"), "public_dir"),
                               check_dir(a.real_dir or folders.get("real_dir"), "real_dir"))
    except FileNotFoundError as e:
        print(f"ttl weights: {e}", file=sys.stderr)
        return 2
    recipe = dict(_param(kv) for kv in a.param or [])
    unknown = set(recipe) - set(RECIPE)
    if unknown:
        print(f"ttl weights: unknown recipe settings {sorted(unknown)}; valid: {', '.join(RECIPE)}", file=sys.stderr)
        return 2
    if clean is None and public is None:
        print("ttl weights: no training data: run `make data` (or put ../shared/data beside the checkout), or pass "
              "--clean-dir and/or --public-dir", file=sys.stderr)
        return 2
    from .engine import CheckpointError

    try:
        rec = train_derainer(a.out_dir, clean, public, real, recipe, device=a.device, resume=not a.fresh,
                             figures_dir=a.figures_dir, latency_size=a.latency_size, repeats=a.repeats)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"ttl weights: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.out_dir}/derain.pt and derain.json: {rec['params'] / 1e6:.3f} M parameters, trained "
          f"{rec['training']['time_s']:.0f} s; {rec['speed']['ours_s_per_mp']:.3f} s/MP on this CPU "
          f"({rec['speed']['speedup_vs_prenet']:.0f}x PReNet's architecture)")
    for r in rec["public"].get("by_rain_amount", []):
        if r["model"] != "input":
            print(f"  {r['set']:<22} {r['rain']:<6} n={r['n']:<3} PSNR-Y {r['psnr_y']:.2f} dB "
                  f"(gain {r['gain_psnr_y']:+.2f} [{r['gain_psnr_y_ci'][0]:+.2f}, {r['gain_psnr_y_ci'][1]:+.2f}]), "
                  f"mean dY {r['bias_y']:+.1f}")
    return 0


def _stage(a: argparse.Namespace) -> int:
    """One training stage of the method, outside the notebooks: what ``torchrun`` launches on several GPUs."""
    from pathlib import Path

    from .config import check_dir, git_revision, resolve_config
    from .engine import is_main
    from .models import save_model
    from .utils import resolve_device

    cfg = resolve_config(a.preset, dict(_param(kv) for kv in a.param or []))
    dev = str(resolve_device(a.device))
    real, clean, syn = (check_dir(a.real_dir, "real_dir"), check_dir(a.clean_dir, "clean_dir"),
                        check_dir(a.synthetic_dir, "synthetic_dir"))
    root = Path(a.results_dir)
    out_dir = root / {"teachers": "02_teacher_pretraining", "distill": "03_distillation",
                      "finetune": "04_finetuning"}[a.name] / a.preset
    teachers = root / "02_teacher_pretraining" / a.preset / "checkpoints"
    meta = {"preset": a.preset, "seed": a.seed, "revision": git_revision()}
    if a.name == "teachers":
        from .teachers import train_teachers

        out = train_teachers(cfg, a.seed, dev, out_dir / "runs", real, clean, resume=a.resume)
        saved = {k: out[k] for k in ("t1", "t2")}
    elif a.name == "distill":
        from .distill import run_distillation

        out = run_distillation(cfg, a.seed, dev, teachers, out_dir / "runs" / "student", real, resume=a.resume,
                               clean_dir=clean)
        saved = {"student": out["student"]}
    else:
        from .finetune import run_finetuning

        run_finetuning(cfg, a.seed, dev, root / "03_distillation" / a.preset / "checkpoints" / "student.pt", teachers,
                       out_dir, real, clean, syn, resume=a.resume, public_dir=check_dir(a.public_dir, "public_dir"))
        saved = {}
    if is_main():
        for name, model in saved.items():
            save_model(out_dir / "checkpoints" / f"{name}.pt", model, **meta)
        print(f"ttl stage {a.name}: trained; run the notebook with -p resume=true to evaluate and record it")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ttl", description="Task transfer learning for image deraining")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("study", help="run the notebooks in order with papermill")
    s.add_argument("--preset", default="default", help="smoke | default | paper")
    s.add_argument("--notebooks", nargs="*", help="only notebooks whose name starts with these (e.g. 01 02)")
    s.add_argument("--output-dir", help="where executed notebooks go (default: notebooks/, in place)")
    s.add_argument("--data-dir", default="auto",
                   help="the data folder (clean_scenes/, real_rainy/, paired_public/): auto = data/ when `make data` "
                   "has fetched it, else ../shared/data, else the embedded fallback; none = the fallback")
    s.add_argument("--real-dir", help="folder of real rainy photographs (overrides the data folder's)")
    s.add_argument("--results-dir")
    s.add_argument("--figures-dir")
    s.add_argument("--device")
    s.add_argument("--param", "-p", action="append", help="any notebook parameter, NAME=VALUE (JSON values)")
    s.add_argument("--times", help="write the notebooks' wall times to this JSON file (with --notebooks: update "
                   "their entries in it, keeping the others)")
    s.set_defaults(fn=_study)
    c = sub.add_parser("calibrate", help="calibrate the realistic rain renderer on real photographs")
    c.add_argument("--what", choices=("realistic", "synthetic", "both"), default="both",
                   help="the realistic renderer (on real photographs), the synthetic presets (on public training "
                   "pairs), or both")
    c.add_argument("--real-dir", required=False)
    c.add_argument("--public-dir", help="folder of public paired sets (rain13k_sample/, rain200_sample_train/)")
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--n", type=int, default=24)
    c.add_argument("--iterations", type=int, default=30)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--presets", nargs="+", choices=("light", "heavy"), default=["light", "heavy"],
                   help="synthetic presets to refit (the others keep their record)")
    c.add_argument("--restarts", type=int, default=3, help="synthetic fits: best of this many searches")
    c.set_defaults(fn=_calibrate)
    b = sub.add_parser("benchmark", help="rendering throughput, or training throughput with --training (patches/s)")
    b.add_argument("--training", action="store_true",
                   help="training patches per second of the student and the large network, before/after the engine's "
                   "bf16 + channels-last settings (threads: all cores unless --threads)")
    b.add_argument("--steps", type=int, default=30, help="timed training steps per repeat (--training)")
    b.add_argument("--recipes", action="store_true",
                   help="notebook 04's short-schedule choices (loss, larger crops late, steps), each trained once and "
                   "scored on the validation sets")
    b.add_argument("--preset", default="default", help="the preset whose sizes --recipes uses")
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--out", help="also write the numbers to this JSON file")
    b.set_defaults(fn=_benchmark)
    r = sub.add_parser("report", help="regenerate the README's results section from results/*/default and "
                       "weights/derain/derain.json")
    r.add_argument("--readme", default="README.md")
    r.add_argument("--results-dir", default="results")
    r.set_defaults(fn=_report)
    d = sub.add_parser("derain", help="derain an image or a folder of images with a trained checkpoint",
                       description="Derain INPUT (an image, or a folder searched recursively) into OUTPUT (a .png "
                       "path or a folder; folders keep the inputs' relative paths, files become <stem>.png). "
                       "Inputs are never overwritten. Exit code 0: all images done; 1: some failed (listed); "
                       "2: usage error.")
    d.add_argument("input", help="an image file or a folder of images")
    d.add_argument("output", help="a .png file (single input) or a folder")
    d.add_argument("--checkpoint", help="a model file saved by ttl.models.save_model, or the name of a shipped model: "
                   "derain (weights/derain/derain.pt, from `make weights`; the default) or one of the study's rows "
                   "ttl, sup-minority, sup-full, syn2real (weights/default/<name>.pt)")
    d.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    d.add_argument("--tile", type=int, default=512, help="tile size in px, 0 = whole image at once (default: 512)")
    d.add_argument("--overlap", type=int, default=128,
                   help="overlap between tiles in px; its outer quarter is discarded, so it should be about 4x the "
                   "network's receptive-field radius (default: 128)")
    d.add_argument("--max-megapixels", type=float, default=100.0,
                   help="images above this size are refused, each named, the others still done (default: 100)")
    d.set_defaults(fn=_derain)
    e = sub.add_parser("evaluate", help="PSNR/SSIM (and mean ΔY) of a folder of results against ground truth",
                       description="Score OUTPUTS against TARGETS: a folder of ground truths (matched by file stem; "
                       "rain-001.png matches norain-001.png) or a dataset root such as input/ + target/. Prints a "
                       "table (one row per image, then the mean) and writes JSON. Identical images have an "
                       "infinite PSNR: 'inf' in the table, null in the JSON.")
    e.add_argument("outputs", help="folder of derained images")
    e.add_argument("targets", help="folder of ground truths, or a public dataset root")
    e.add_argument("--json", default="evaluation.json",
                   help="where to write per-image and mean values (default: evaluation.json in the current "
                   "folder; '' to skip)")
    e.add_argument("--crop-border", type=int, default=0, help="pixels removed on each side first (default: 0)")
    e.set_defaults(fn=_evaluate)
    w = sub.add_parser("weights", help="train the shipped deraining model (weights/derain/derain.pt; make weights)",
                       description="Train the project's deraining model for real use (ttl.ship.RECIPE) on the train "
                       "split of the clean photographs with synthetic rain (rain-free, light, heavy) and the public "
                       "training pairs (folders *_train), score it once on the public test pairs, time it beside "
                       "PReNet's architecture, and write weights/derain/derain.pt with its record derain.json. "
                       "A killed run started again continues from its last checkpoint (--fresh starts over).")
    w.add_argument("--data-dir", default="auto",
                   help="the data folder (auto: data/, else ../shared/data; none: only --clean-dir/--public-dir)")
    w.add_argument("--clean-dir")
    w.add_argument("--public-dir")
    w.add_argument("--real-dir", help="real rainy photographs: the first of the test split is shown before/after")
    w.add_argument("--out-dir", default=str(Path(__file__).resolve().parent.parent / "weights" / "derain"))
    w.add_argument("--figures-dir", default=str(Path(__file__).resolve().parent.parent / "figures" / "derain"))
    w.add_argument("--device", default="auto")
    w.add_argument("--fresh", action="store_true", help="start over instead of resuming a killed run")
    w.add_argument("--latency-size", type=int, default=1024, help="side of the square image timed (px)")
    w.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    w.add_argument("--param", "-p", action="append", help="a recipe setting, NAME=VALUE (JSON values; ttl.ship.RECIPE)")
    w.set_defaults(fn=_weights)
    st = sub.add_parser("stage", help="train one stage of the method (teachers, distill, finetune); launch with "
                        "torchrun for several GPUs", description="Train one stage outside the notebooks, e.g. on 4 GPUs: "
                        "torchrun --standalone --nproc_per_node 4 -m ttl stage teachers --preset paper. Runs and "
                        "checkpoints go where the notebook looks for them; then run the notebook with -p resume=true: "
                        "it finds the finished runs, evaluates and records them.")
    st.add_argument("name", choices=("teachers", "distill", "finetune"))
    st.add_argument("--preset", default="default")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--device", default="auto")
    st.add_argument("--results-dir", default="results")
    st.add_argument("--real-dir")
    st.add_argument("--clean-dir")
    st.add_argument("--synthetic-dir")
    st.add_argument("--public-dir", help="public paired sets: finetune adds their training pairs to the pool")
    st.add_argument("--resume", action="store_true", help="continue killed runs from their last checkpoints")
    st.add_argument("--param", "-p", action="append", help="any preset size, NAME=VALUE (JSON values)")
    st.set_defaults(fn=_stage)
    from .fetch import add_cli as add_data_cli  # ttl data fetch | list (stdlib-only at import: --help stays fast)

    add_data_cli(sub)
    a = p.parse_args(argv)
    from .config import ConfigError

    try:
        return a.fn(a)
    except ConfigError as e:  # unknown presets, invalid parameter values
        print(f"ttl {a.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
