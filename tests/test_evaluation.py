"""Notebook 05's library: test data that no training saw, scoring saved checkpoints, speed, and the verdicts."""
import json

import numpy as np
import pytest
import torch

from conftest import rand_img, write_png
from ttl import evaluation as E
from ttl.config import resolve_config
from ttl.scenes import scene_split
from ttl.models import RestorationNet, save_model


def _names(split, n):
    out, k = [], 0
    while len(out) < n:
        if scene_split(f"img{k}") == split:
            out.append(f"img{k}")
        k += 1
    return out


def test_real_test_images_never_include_the_train_split_and_skip_tiny_ones(tmp_path):
    for name in _names("train", 3) + _names("test", 2):
        write_png(tmp_path / f"{name}.png", rand_img(200, 260, seed=len(name)))
    small = _names("val", 1)[0]
    write_png(tmp_path / f"{small}.png", rand_img(100, 120))
    imgs, names, manifest = E.real_test_images(tmp_path, short_side=0)
    assert sorted(names) == sorted(f"{n}.png" for n in _names("test", 2))
    assert manifest["skipped_too_small"] == [f"{small}.png"] and len(imgs) == 2
    imgs, _, _ = E.real_test_images(tmp_path, short_side=100)  # never below NIQE's minimum
    assert min(imgs[0].shape[-2:]) == 192


def test_missing_notebook_04_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 04 first"):
        E.finetuned_checkpoints(tmp_path)


def _ckpt_dir(tmp_path):
    d = tmp_path / "04"
    paths = {}
    for name, w in (("ttl", 4), ("sup-full", 4), ("sup-full-large", 8)):
        torch.manual_seed(w)
        m = RestorationNet(width=w, depth=2)
        torch.nn.init.normal_(m.head.weight, std=0.01)
        paths[name] = [str(save_model(d / "checkpoints" / f"{name}.pt", m, recipe=name))]
    (d / "metrics.json").write_text(json.dumps({"models": {n: {"checkpoints": p} for n, p in paths.items()}}))
    return d


def test_every_checkpoint_is_scored_on_every_set_and_real_photo(tmp_path):
    ck = E.finetuned_checkpoints(_ckpt_dir(tmp_path))
    assert list(ck) == ["ttl", "sup-full", "sup-full-large"]
    sets = E.test_sets(resolve_config("smoke"), 0)
    real = [torch.rand(3, 200, 210, generator=torch.Generator().manual_seed(1))]
    pairs = ([torch.rand(3, 30, 41)], [torch.rand(3, 30, 41)])
    res = E.evaluate_checkpoints(ck, sets, real, pairs, "cpu", tile=32, overlap=8, progress=False)
    assert set(res) == {"input", "ttl", "sup-full", "sup-full-large"}
    r = res["ttl"][0]
    assert set(r["val"]) == {"synthetic", "realistic", "real-paired"} and len(r["noref"]["niqe"]) == 1
    assert len(r["val"]["synthetic"]["per_image"]["psnr_y"]) == len(sets["synthetic"]["rainy"])
    nr = E.noref_table(res, list(ck), 50, 0)
    assert set(nr) == {"input", "ttl", "sup-full", "sup-full-large"} and "ttl_minus" in nr["sup-full"]["niqe"]
    speed = E.size_speed(ck, size=64, repeats=1)
    assert len(speed) == 2 and (speed["CPU s/MP"] > 0).all()  # two architectures


def _cmp(low, high, mean=None):
    return {"mean_diff": (low + high) / 2 if mean is None else mean, "low": low, "high": high, "wilcoxon_p": 0.01}


def _comparisons(syn_full, rea_full, syn_semi, rea_semi):
    return {"sup-full": {"synthetic": {"psnr_y": _cmp(*syn_full)}, "realistic": {"psnr_y": _cmp(*rea_full)}},
            "syn2real": {"synthetic": {"psnr_y": _cmp(*syn_semi)}, "realistic": {"psnr_y": _cmp(*rea_semi)}}}


M03 = {"size_ratio_teachers_over_student": 7.0, "kept": [
    {"task": "T2: scattering", "who": "student", "mean": 24.7}, {"task": "T2: scattering", "who": "T2", "mean": 24.5},
    {"task": "T1: recognition", "who": "student", "mean": 0.96}, {"task": "T1: recognition", "who": "T1 encoder",
                                                                  "mean": 0.98}]}


def test_verdicts_follow_their_rules():
    v = {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, _comparisons((-0.2, 0.3), (0.1, 0.5), (0.1, 0.2),
                                                                             (0.2, 0.4)), None)}
    assert v == {"C1": "not assessed", "C2": "not assessed", "C3a": "supported", "C3b": "supported",
                 "C3c": "supported", "C4": "supported"}
    v = {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, _comparisons((-2.0, -1.0), (-0.5, -0.1),
                                                                             (-0.3, 0.2), (0.1, 0.4)), None)}
    assert (v["C3a"], v["C3b"], v["C3c"]) == ("not supported", "mixed", "not supported")
    v = {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, _comparisons((-0.8, 0.1), (-0.1, 0.4),
                                                                             (-0.3, -0.1), (0.1, 0.4)), None)}
    assert (v["C3a"], v["C3b"], v["C3c"]) == ("mixed", "not supported", "mixed")
    worse_niqe = {"sup-full": {"niqe": {"ttl_minus": _cmp(0.2, 0.9)}}}
    v = {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, _comparisons((0, 1), (0.1, 0.5), (0, 1), (0.2, 0.4)),
                                                      worse_niqe)}
    assert v["C3c"] == "mixed"  # better on realistic rain but worse NIQE on real photographs
    big = dict(M03, size_ratio_teachers_over_student=2.0)
    assert {r["claim"]: r["verdict"] for r in E.verdicts(None, big, {}, None)}["C4"] == "not supported"


def test_verdicts_on_the_gap_claims():
    m01 = {"reference": "real", "c2st": {"synthetic": {"auc": 0.99, "low": 0.97, "high": 1.0}},
           "distances": [{"statistic": s, "measure": "W1/sd", "domain": d, "distance": x}
                         for s, a, b in (("a", 3, 1), ("b", 2, 1), ("c", 1, 2)) for d, x in (("synthetic", a), ("realistic", b))],
           "c2_experiment": {"drop_synthetic_minus_realistic": {"psnr_y": _cmp(1.0, 3.0)}}}
    v = {r["claim"]: r for r in E.verdicts(m01, None, {}, None)}
    assert v["C1"]["verdict"] == "supported" and "2 of 3" in v["C1"]["evidence"]
    assert v["C2"]["verdict"] == "supported"
    m01["c2_experiment"]["drop_synthetic_minus_realistic"]["psnr_y"] = _cmp(-0.5, 1.0)
    assert {r["claim"]: r["verdict"] for r in E.verdicts(m01, None, {}, None)}["C2"] == "not supported"


def test_latency_is_per_megapixel():
    m = RestorationNet(width=2, depth=1)
    small, large = E.latency_per_mp(m, 32, 1), E.latency_per_mp(m, 64, 1)
    assert small > 0 and large > 0 and np.isfinite(small)
