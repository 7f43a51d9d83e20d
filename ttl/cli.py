"""The ``ttl`` command line: ``ttl study``, ``ttl report``, ``ttl calibrate``, ``ttl benchmark``."""
from __future__ import annotations

import argparse
import json
import sys


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

    from .config import write_json
    from .report import update_readme
    from .study import run_study

    extra = {k: v for k, v in (("real_dir", a.real_dir), ("results_dir", a.results_dir),
                                ("figures_dir", a.figures_dir), ("device", a.device)) if v}
    extra.update(_param(kv) for kv in a.param or [])
    times = run_study(a.preset, a.notebooks, a.output_dir, extra)
    if a.times:
        write_json(a.times, {"preset": a.preset, "seconds": times, "total_s": sum(times.values()),
                             "machine": f"{platform.machine()}, {os.cpu_count()} cores"})
    if a.preset == "default" and not a.output_dir and "results_dir" not in extra:
        update_readme()
    return 0


def _calibrate(a: argparse.Namespace) -> int:
    from .calibrate import calibrate

    if not a.real_dir:
        print("ttl calibrate needs --real-dir (a folder of real rainy photographs)", file=sys.stderr)
        return 2
    r = calibrate(a.real_dir, size=a.size, n=a.n, iterations=a.iterations, seed=a.seed)
    print(f"objective {r['objective_start']:.3f} -> {r['objective']:.3f}; written to ttl/calibration.json")
    return 0


def _benchmark(a: argparse.Namespace) -> int:
    from .bench import benchmark_renderers

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ttl", description="Task transfer learning for image deraining")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("study", help="run the notebooks in order with papermill")
    s.add_argument("--preset", default="default", help="smoke | default | paper")
    s.add_argument("--notebooks", nargs="*", help="only notebooks whose name starts with these (e.g. 01 02)")
    s.add_argument("--output-dir", help="where executed notebooks go (default: notebooks/, in place)")
    s.add_argument("--real-dir", help="folder of real rainy photographs (never committed)")
    s.add_argument("--results-dir")
    s.add_argument("--figures-dir")
    s.add_argument("--device")
    s.add_argument("--param", "-p", action="append", help="any notebook parameter, NAME=VALUE (JSON values)")
    s.add_argument("--times", help="write the notebooks' wall times to this JSON file")
    s.set_defaults(fn=_study)
    c = sub.add_parser("calibrate", help="calibrate the realistic rain renderer on real photographs")
    c.add_argument("--real-dir", required=False)
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--n", type=int, default=24)
    c.add_argument("--iterations", type=int, default=30)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(fn=_calibrate)
    b = sub.add_parser("benchmark", help="rendering throughput (patches per second)")
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--out", help="also write the numbers to this JSON file")
    b.set_defaults(fn=_benchmark)
    r = sub.add_parser("report", help="regenerate the README's results section from results/*/default")
    r.add_argument("--readme", default="README.md")
    r.add_argument("--results-dir", default="results")
    r.set_defaults(fn=_report)
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    raise SystemExit(main())
