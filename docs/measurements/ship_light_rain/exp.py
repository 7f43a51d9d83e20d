"""Does a rain mixture that leans to light rain lift the shipped model on light public rain (issue 13's +3 dB)?

Trains `ttl.ship.train_derainer` with the shipped RECIPE except the keys given as JSON, into OUT (never
weights/derain), and prints its public-test summary by rain amount. Usage:
python docs/measurements/ship_light_rain/exp.py DATA_DIR OUT '{"rain": ["light", "light", "heavy", "none", "light"]}'
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ttl.ship import train_derainer  # noqa: E402

data, out, over = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
rec = train_derainer(out, clean_dir=data / "clean_scenes", public_dir=data / "paired_public", recipe=over,
                     device="cpu", resume=True, progress=True)
amounts = rec["public"]["by_rain_amount"]
print(json.dumps({"recipe_override": over, "train_s": rec["training"]["time_s"],
                  "speedup_vs_prenet_published": round(rec["speed"]["speedup_vs_prenet_published"], 1),
                  "summary": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()
                                  if not isinstance(vv, (list, dict))} for k, v in rec["public"]["summary"].items()},
                  "by_rain_amount": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in a.items()
                                      if not isinstance(v, (list, dict))} for a in amounts]}, indent=1))
