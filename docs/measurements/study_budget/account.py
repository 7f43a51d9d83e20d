"""Where the default study's time went, and what each cut of its design would save (docs/measurements/study_budget).

    python account.py collect RUNS_DIR          # run_times.json from a study's results/04_finetuning/default/runs
    python account.py                           # the tables of README.md, from run_times.json and study_times.json

Reads only the logs of the runs (their ``time_s``: one-thread worker seconds) and the notebooks' times of the same run
(study_times.json, a copy of its results/study_times_default.json); trains nothing. The projections keep notebook 04's time outside its runs and notebooks 01-03 and 05 as measured.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the rates the committed run's search chose (results/04_finetuning/default/search.csv)
CHOSEN = {"ttl": 2e-3, "sup-minority": 5e-4, "sup-full": 2e-3, "syn2real": 2e-3, "sup-minority-large": 5e-4,
          "ssl-minority": 5e-4}
SIDE_ROWS = ("sup-full-large", "sup-full-no-context", "sup-full-before", "t1-only", "t2-only", "no-distillation",
             "frozen-encoder", "distil-student-t1", "distil-student-t2")  # evidence rows, ablations, their starts


def collect(runs_dir: Path) -> None:
    out = {}
    for f in sorted(runs_dir.glob("**/log.json")):
        log = json.loads(f.read_text())
        out[str(f.parent.relative_to(runs_dir))] = {"time_s": round(log["time_s"], 1), "steps": len(log["step"])}
    (HERE / "run_times.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(out)} runs -> run_times.json")


def parse(p: str):
    m = re.match(r"([^/]+)/lr([0-9.e-]+)/seed(\d+)$", p)
    return (m.group(1), float(m.group(2)), int(m.group(3))) if m else (p, None, None)


def part(p: str) -> str:
    row, lr, k = parse(p)
    if p.startswith(("distil-", "ssl-pretraining")):
        return "pretrained starts (3 distillation variants, ssl)"
    if p.startswith("dose-"):
        return "dose-response x0.25 and x0.5 (teachers, distillation, 2 ttl draws each)"
    if row in CHOSEN:
        if k >= 2:
            return "draws 2-4 of ttl and sup-minority"
        return ("search: trials at the chosen rate (kept as draws 0-1)" if abs(lr - CHOSEN[row]) < 1e-12
                else "search: trials at the two other rates (discarded)")
    if "@" in row:
        return "fraction sweep (5 %, 10 %: 2 draws x 2 rows; ttl@100pct)"
    if row in SIDE_ROWS:
        return ("evidence rows on all pairs (sup-full-large, -no-context, -before)" if row.startswith("sup-full")
                else "ablations (t1-only, t2-only, no-distillation, frozen-encoder, ttl-target-ms)")
    return "ablations (t1-only, t2-only, no-distillation, frozen-encoder, ttl-target-ms)"


CUTS = {  # each cut: the runs it removes
    "one-draw search (f_search_draws 1)": lambda p: (lambda r, lr, k: r in CHOSEN and k == 1
                                                     and abs(lr - CHOSEN[r]) > 1e-12)(*parse(p)),
    "no ttl-target-ms (f_optional_rows [])": lambda p: p.startswith(("ttl-target-ms/", "distil-student-target-ms")),
    "one dose-response draw (f_dose_draws 1)": lambda p: p.startswith("dose-") and p.endswith("seed3"),
    "no evidence rows or ablations": lambda p: p.split("/")[0] in SIDE_ROWS,
}


def main() -> None:
    runs = {p: v["time_s"] for p, v in json.loads((HERE / "run_times.json").read_text()).items()}
    times = json.loads((HERE / "study_times.json").read_text())["seconds"]
    total = sum(runs.values())
    nb04 = times["04_finetuning"]
    outside = nb04 - total / 2  # notebook 04 outside its runs at two workers: data, scoring, plots, uneven ends
    others = sum(v for k, v in times.items() if not k.startswith("04"))
    parts: dict[str, list[float]] = {}
    for p, t in runs.items():
        parts.setdefault(part(p), []).append(t)
    print("| part of notebook 04 | runs | one-thread worker-seconds | share |\n|---|---|---|---|")
    for name, ts in sorted(parts.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {name} | {len(ts)} | {sum(ts):.0f} | {sum(ts) / total:.0%} |")
    print(f"| all | {len(runs)} | {total:.0f} | |\n")
    print(f"notebook 04: {nb04:.0f} s, of which {outside:.0f} s outside the runs; notebooks 01-03 and 05: {others:.0f} s\n")
    print("| design (cuts add up) | runs | worker-seconds | notebook 04 (s) | study (min) |\n|---|---|---|---|---|")
    rows, drops = [], []
    for name in ["the committed run (measured)", *CUTS]:
        if name in CUTS:
            drops.append(CUTS[name])
        keep = [t for p, t in runs.items() if not any(d(p) for d in drops)]
        t04 = nb04 if not drops else sum(keep) / 2 + outside
        rows.append({"design": name, "runs": len(keep), "worker_s": round(sum(keep)), "notebook_04_s": round(t04),
                     "study_min": round((t04 + others) / 60, 1)})
        print(f"| {'+ ' if drops and len(drops) > 1 else ''}{name} | {len(keep)} | {sum(keep):.0f} | {t04:.0f} | "
              f"{(t04 + others) / 60:.1f} |")
    (HERE / "study_budget.json").write_text(json.dumps(
        {"parts": {k: {"runs": len(v), "worker_s": round(sum(v), 1)} for k, v in parts.items()},
         "worker_s": round(total, 1), "notebook_04_s": nb04, "notebook_04_outside_runs_s": round(outside, 1),
         "other_notebooks_s": round(others, 1), "designs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    collect(Path(sys.argv[2])) if sys.argv[1:2] == ["collect"] else main()
