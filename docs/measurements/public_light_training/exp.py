"""Does training on public light-rain pairs lift the shipped recipe on *other* public light-rain pairs (issue 13)?

The Rain13K sample is split by file as in ../calibration_split (half A; half B, on which the study scores light rain,
is never read here), and A again into A1 (training) and A2 (held out, the only pairs scored). Two runs of
`ttl.ship.train_derainer` with the shipped RECIPE at STEPS steps: the shipped data (training photographs with the
rain mixture, rain200_sample_train) with or without A1's pairs as a further public training set (repeated like the
others). Both are scored on A2. The synthetic `light` preset is the committed one, fitted on all 38 pairs (A2 too):
the same for both runs, so the comparison isolates the training pairs. Usage:
python docs/measurements/public_light_training/exp.py DATA_DIR WORK_DIR OUT_JSON [STEPS] [RECIPE_JSON]
(RECIPE_JSON: further RECIPE keys for both runs, e.g. '{"public_repeats": 20}')
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl.ship import train_derainer  # noqa: E402

data, work, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), Path(sys.argv[3])
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 8000
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
src = data / "paired_public" / "rain13k_sample"
names = sorted(p.name for p in (src / "input").iterdir())


def h(salt: str, n: str) -> int:
    return int(hashlib.sha1(f"{salt}:{n}".encode()).hexdigest(), 16) % 2


A = [n for n in names if h("ttl-calib", n) == 0]  # the calibration_split measurement's half A
A1 = [n for n in A if h("ttl-a1", n) == 0]
A2 = [n for n in A if h("ttl-a1", n) == 1]


def folder(root: Path, name: str, files: list[str]) -> None:
    for sub in ("input", "target"):
        (root / name / sub).mkdir(parents=True, exist_ok=True)
        for f in files:
            link = root / name / sub / f
            if not link.exists():
                os.symlink(src / sub / f, link)


res = {"steps": steps, "recipe_override": over, "A1": A1, "A2": A2, "runs": {}}
for run, with_a1 in (("shipped data", False), ("shipped data + A1", True)):
    pub = work / run.replace(" ", "_").replace("+", "plus") / "public"
    folder(pub, "rain13k_a2", A2)  # not *_train: scored only
    if with_a1:
        folder(pub, "rain13k_a1_train", A1)
    if not (pub / "rain200_sample_train").exists():
        os.symlink(data / "paired_public" / "rain200_sample_train", pub / "rain200_sample_train")
    rec = train_derainer(pub.parent / "model", clean_dir=data / "clean_scenes", public_dir=pub,
                         recipe={"steps": steps, **over}, device="cpu", resume=True, progress=True, latency_size=256,
                         repeats=1)
    res["runs"][run] = {"train_s": rec["training"]["time_s"], "by_rain_amount": rec["public"]["by_rain_amount"],
                        "summary": rec["public"]["summary"]}
    print(json.dumps({run: [{k: v for k, v in a.items() if not isinstance(v, (list, dict))}
                            for a in rec["public"]["by_rain_amount"]]}, default=float), flush=True)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(res, indent=1, default=float))
