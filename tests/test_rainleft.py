"""Ground-truth-free measures of the rain left (ttl.rainleft): behaviour where the answer is known."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ttl import rainleft as RL
from ttl.rain import SYNTHETIC_DEFAULTS, SyntheticRain
from ttl.scenes import dead_leaves
from ttl.utils import generator

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="module")
def synth() -> tuple[torch.Tensor, torch.Tensor]:
    """Six 256-px dead-leaves scenes and the same with light synthetic streaks (the hand-set recipe, so that a refitted
    calibration does not move these tests): ``(rainy, clean)``."""
    x, _ = dead_leaves(6, RL.WORK_SIZE, seed=0, split="test")
    s = SyntheticRain(SYNTHETIC_DEFAULTS["light"])(x, generator(0))
    return s.rainy, s.clean


@pytest.fixture(scope="module")
def clf(synth) -> RL.RainClassifier:
    rainy, clean = synth
    more, _ = dead_leaves(6, RL.WORK_SIZE, seed=1, split="test")
    return RL.RainClassifier.fit(list(rainy), list(clean) + list(more), folds=2)


def test_energy_is_higher_for_rainy_than_clean(synth):
    rainy, clean = synth
    e_r = [RL.streak_energy(r) for r in rainy]
    e_c = [RL.streak_energy(c, RL.streak_direction(r)) for r, c in zip(rainy, clean)]
    assert all(a > b for a, b in zip(e_r, e_c)), (e_r, e_c)
    assert np.mean(e_r) > 5 * np.max(np.abs(e_c))
    # any size is accepted (resized to the working size); size=None measures as is
    assert RL.streak_energy(rainy[0][:, :200, :230]) > 0
    assert np.isfinite(RL.streak_energy(clean[0], size=None))


def test_energy_removed_where_the_answer_is_known(synth):
    rainy, clean = synth
    full = [RL.streak_energy_removed(r, c) for r, c in zip(rainy, clean)]
    half = [RL.streak_energy_removed(r, c + 0.5 * (r - c)) for r, c in zip(rainy, clean)]
    assert abs(np.median(full) - 1) < 0.2 and all(0.7 < v < 1.4 for v in full), full
    assert all(0.3 < v < 0.85 for v in half), half
    assert all(h < f for h, f in zip(half, full))
    assert RL.streak_energy_removed(rainy[0], rainy[0]) == 0.0
    total = RL.streak_energy_removed_total(list(rainy), list(clean))
    assert 0.8 < total < 1.3 and RL.streak_energy_removed_total(list(rainy[:2]), list(rainy[:2])) == 0.0
    assert np.isnan(RL.streak_energy_removed(torch.zeros(3, 64, 64), clean[0][:, :64, :64]))  # no streaks in


def test_classifier_round_trips_exactly(clf, synth):
    rainy, clean = synth
    d = clf.to_dict()
    back = RL.RainClassifier.from_dict(json.loads(json.dumps(d)))
    assert back.to_dict() == d
    ims = [rainy[0], clean[1], rainy[2][:, :180, :]]
    assert np.array_equal(back.probability(ims), clf.probability(ims))
    assert d["features"] == RL.DEFAULT_FEATURES and len(d["weights"]) == len(d["mean"]) == len(d["sd"]) == 3
    p = clf.probability(list(rainy) + list(clean))
    assert p[:6].mean() > p[6:].mean() and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match="missing"):
        RL.RainClassifier.from_dict({"features": ["vertical_excess"]})


def test_bad_input_gets_a_clear_error(synth, clf):
    rainy, _ = synth
    nan = rainy[0].clone()
    nan[0, 5, 5] = float("nan")
    for bad, msg in [(torch.rand(4, 32, 32), "shape"), (torch.rand(32, 32), "shape"), (rainy[:1], "shape"),
                     (nan, "NaN"), (torch.rand(3, 4, 40), "8x8"), ("image.png", "Tensor")]:
        with pytest.raises(ValueError, match=msg):
            RL.streak_energy(bad)
    with pytest.raises(ValueError, match="NaN"):
        clf.probability([rainy[1], nan])
    with pytest.raises(ValueError, match="same shape"):
        RL.streak_energy_removed(rainy[0], rainy[1][:, :100])
    with pytest.raises(ValueError, match="unknown features"):
        RL.rain_features([rainy[0]], ["sharpness"])


def test_validate_measures_reports_ordering_and_blur(synth, clf):
    rainy, clean = synth
    res = RL.validate_measures({"synthetic": (list(rainy[:4]), list(clean[:4]))}, clf, rain_free=list(clean[4:]),
                               blur_sigmas=(1.0,), n_boot=50)
    rows = {r["measure"]: r for r in res["ordering"]}
    assert set(rows) == {"p_rain", "energy", "removed"}
    assert rows["energy"]["clean"] < rows["energy"]["oracle"] < rows["energy"]["rainy"]
    assert rows["removed"]["rainy"] == 0 and 0 < rows["removed"]["oracle"] < rows["removed"]["clean"]
    assert rows["energy"]["n_ordered"] == 4 and rows["energy"]["rainy_minus_oracle"]["low"] > 0
    checks = [b for b in res["blur"] if b["target"] == "clean"]
    assert {b["dataset"] for b in checks} == {"synthetic", "rain_free"} and all(b["passes"] is not None for b in checks)
    order, blur = RL.validation_table(res)
    assert len(order) == 3 and len(blur) == len(res["blur"]) and len(res["per_image"]) == 4


@pytest.fixture(scope="module")
def shared() -> Path:
    if not (DATA / "real_rainy").is_dir() or not (DATA / "paired_public").is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


def test_p_rain_orders_public_pairs(shared):
    clf, rep = RL.fit_rain_classifier(shared / "real_rainy", shared / "clean_scenes", limit=20, n_boot=50)
    assert rep["n_train_rainy"] == rep["n_train_clean"] == 20 and 0.5 < rep["cv_auc"] <= 1
    pairs = RL.load_public_pairs(shared / "paired_public", datasets=("rain200_sample_test", "ddn_sample"))
    rainy = [r for rs, _ in pairs.values() for r in rs]
    clean = [c for _, cs in pairs.values() for c in cs]
    assert len(rainy) == 8
    oracle = [c + 0.5 * (r - c) for r, c in zip(rainy, clean)]
    pc, po, pr = (clf.probability(x) for x in (clean, oracle, rainy))
    print(np.round(np.c_[pc, po, pr], 3))
    assert pc.mean() < po.mean() < pr.mean()
    assert np.sum((pc < po) & (po < pr)) >= 6
