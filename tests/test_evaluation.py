"""Notebook 05's library: test data that no training saw, scoring saved checkpoints, speed, and the verdicts."""
import json

import numpy as np
import pytest
import torch

from ttl import evaluation as E
from ttl import heldout as H
from ttl import scores as S
from ttl.config import resolve_config
from ttl.models import RestorationNet, save_model


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
    sets = H.test_sets(resolve_config("smoke"), 0)
    assert set(sets) == {"synthetic", "realistic", "realistic_clean"}
    assert sets["realistic"]["rainy"] is sets["realistic_clean"]["rainy"]  # one rainy set, two targets
    real = [torch.rand(3, 200, 210, generator=torch.Generator().manual_seed(1))]
    sets["real-paired"] = {"rainy": [torch.rand(3, 30, 41)], "clean": [torch.rand(3, 30, 41)]}
    res = E.evaluate_checkpoints(ck, sets, real, "cpu", tile=32, overlap=8, progress=False)
    assert set(res) == {"input", "ttl", "sup-full", "sup-full-large"}
    r = res["ttl"][0]
    assert set(r["val"]) == {"synthetic", "realistic", "realistic_clean", "real-paired"}
    assert len(r["noref"]["niqe"]) == len(r["noref"]["streak_energy"]) == 1 and "p_rain" not in r["noref"]
    assert len(r["val"]["synthetic"]["per_image"]["psnr_y"]) == len(sets["synthetic"]["rainy"])
    assert r["val"]["realistic"]["psnr_y"] != r["val"]["realistic_clean"]["psnr_y"]
    nr = E.noref_table(res, list(ck), 50, 0)
    assert set(nr) == {"input", "ttl", "sup-full", "sup-full-large"} and "ttl_minus" in nr["sup-full"]["niqe"]
    assert nr["input"]["streak_energy"]["removed_pooled"] in (0, None)  # None: random images hold no streaks
    speed = E.size_speed(ck, size=64, repeats=1)
    assert len(speed) == 2 and (speed["CPU s/MP"] > 0).all()  # two architectures


def test_models_outside_extended_skip_the_public_sets_the_second_test_set_and_real_photos(tmp_path):
    ck = E.finetuned_checkpoints(_ckpt_dir(tmp_path))
    x = [torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    sets = {"synthetic": {"rainy": x, "clean": x[::-1]}, "public/a": {"rainy": x, "clean": x[::-1]},
            "bundled_synthetic": {"rainy": x[::-1], "clean": x}}
    real = [torch.rand(3, 200, 200, generator=torch.Generator().manual_seed(2))]
    res = E.evaluate_checkpoints(ck, sets, real, "cpu", tile=32, overlap=8, progress=False, extended=["ttl"])
    assert set(res["ttl"][0]["val"]) == set(res["input"][0]["val"]) == {"synthetic", "public/a", "bundled_synthetic"}
    assert set(res["sup-full"][0]["val"]) == {"synthetic"} and "noref" not in res["sup-full"][0]
    assert "noref" in res["ttl"][0] and "noref" in res["input"][0]
    scores = {n: S.model_scores(r, 20, 0) for n, r in res.items()}
    c = S.compare(scores, res, "ttl", "sup-full", 20, 0)
    assert set(c) == {"synthetic"}  # compared where both were scored
    pub = E.public_summary(scores, res, ["a"], 20, 0)
    assert set(pub["a"]) == {"input", "ttl"}
    assert set(E.noref_table(res, list(ck), 20, 0)) == {"input", "ttl"}


def _cmp(low, high, mean=None):
    return {"mean_diff": (low + high) / 2 if mean is None else mean, "low": low, "high": high, "wilcoxon_p": 0.01}


def _comparisons(syn_full, rea_full, syn_semi, rea_semi):
    return {"sup-full": {"synthetic": {"psnr_y": _cmp(*syn_full)}, "realistic": {"psnr_y": _cmp(*rea_full)},
                         "realistic_clean": {"psnr_y": _cmp(-1, 1)}},
            "syn2real": {"synthetic": {"psnr_y": _cmp(*syn_semi)}, "realistic": {"psnr_y": _cmp(*rea_semi)}}}


M03 = {"size_ratio_teachers_over_student": 7.0, "kept": [
    {"task": "T2: scattering", "who": "student", "mean": 24.7}, {"task": "T2: scattering", "who": "T2", "mean": 24.5},
    {"task": "T1: recognition", "who": "student", "mean": 0.96}, {"task": "T1: recognition", "who": "T1 encoder",
                                                                  "mean": 0.98},
    {"task": "T1: recognition", "who": "random student", "mean": 0.70}]}


def test_c4_needs_the_probe_above_a_random_student():
    """A probe a random network reaches as well shows nothing kept: C4 is then only mixed (the size holds)."""
    easy = {**M03, "kept": [r if r["who"] != "random student" else {**r, "mean": 0.95} for r in M03["kept"]]}
    c4 = {r["claim"]: r for r in E.verdicts(None, easy, {}, None)}["C4"]
    assert c4["verdict"] == "mixed" and "random student" in c4["evidence"]


def test_dose_trend_reads_the_slope_per_doubling():
    line = lambda b, d: {"budget (x preset)": b, "set": "synthetic",  # noqa: E731
                         "ttl minus sup-minority PSNR-Y (dB)": d, "low": d - 0.3, "high": d + 0.3}
    assert "grows" in E.dose_trend([line(0.25, -1.0), line(0.5, -0.5), line(1.0, 0.0)])
    assert "shrinks" in E.dose_trend([line(0.25, 0.4), line(0.5, 0.0), line(1.0, -0.4)])
    assert "flat" in E.dose_trend([line(0.25, 0.0), line(0.5, 0.05), line(1.0, 0.0)])
    # a slope whose end points' intervals overlap claims no trend
    assert "no trend" in E.dose_trend([line(0.25, -0.3), line(0.5, -0.1), line(1.0, 0.1)])
    assert E.dose_trend(None) == "no dose-response"


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
    comps = _comparisons((0, 1), (0.1, 0.5), (0, 1), (0.2, 0.4))
    key = "credited_rain_left"
    supports = {"credited rain left": {"tau": 0.8, "low": 0.4, "high": 1.0}}
    valid = {"valid": True, "worst": "darkening (x 0.7)", "share": 0.0}
    more_rain = {"sup-full": {key: {"ttl_minus": _cmp(0.02, 0.09)}}, "syn2real": {key: {"ttl_minus": _cmp(-0.1, 0.1)}}}
    assert {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, comps, more_rain, ranking=supports,
                                                        judge_check=valid)}["C3c"] \
        == "not supported"
    less_rain = {"sup-full": {key: {"ttl_minus": _cmp(-0.09, -0.02)}}, "syn2real": {key: {"ttl_minus": _cmp(-0.1, 0.1)}}}
    c3c = {r["claim"]: r for r in E.verdicts(None, M03, comps, less_rain, ranking=supports, judge_check=valid)}["C3c"]
    assert c3c["verdict"] == "supported" and "credited rain left" in c3c["evidence"] and "clean scene" in c3c["evidence"]
    # a measure that the ranking check does not support decides nothing: realistic rain alone
    weak = {"credited rain left": {"tau": 0.2, "low": -0.3, "high": 0.7}}
    c3c = {r["claim"]: r for r in E.verdicts(None, M03, comps, more_rain, ranking=weak, judge_check=valid)}["C3c"]
    assert c3c["verdict"] == "supported" and "not counted" in c3c["evidence"]
    # nor does a judge that credits a nuisance, however well it ranks
    fooled = {"valid": False, "worst": "horizontal blur (sigma 2 px)", "share": 0.3}
    c3c = {r["claim"]: r for r in E.verdicts(None, M03, comps, more_rain, ranking=supports, judge_check=fooled)}["C3c"]
    assert c3c["verdict"] == "supported" and "judge not valid: 'horizontal blur" in c3c["evidence"]
    # nor one whose scene floor rejects the noise-kept streak-free target
    strict = {"valid": False, "worst": "darkening (x 0.7)", "share": 0.0, "max_share": 0.1, "target_share": 0.2,
              "min_target_share": 0.5}
    c3c = {r["claim"]: r for r in E.verdicts(None, M03, comps, more_rain, ranking=supports, judge_check=strict)}["C3c"]
    assert c3c["verdict"] == "supported" and "target judged derained on only 20%" in c3c["evidence"]
    assert {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, comps, more_rain)}["C3c"] == "supported"
    worse_niqe = {"sup-full": {"niqe": {"ttl_minus": _cmp(0.2, 0.9)}}}  # NIQE is reported, not part of the rule
    assert {r["claim"]: r["verdict"] for r in E.verdicts(None, M03, comps, worse_niqe)}["C3c"] == "supported"
    big = dict(M03, size_ratio_teachers_over_student=2.0)
    assert {r["claim"]: r["verdict"] for r in E.verdicts(None, big, {}, None)}["C4"] == "not supported"


def test_verdicts_on_the_gap_claims():
    m01 = {"reference": "real", "c2st": {"synthetic": {"auc": 0.99, "low": 0.97, "high": 1.0}},
           "distances": [{"statistic": s, "measure": "W1/sd", "domain": d, "distance": x}
                         for s, a, b in (("a", 3, 1), ("b", 2, 1), ("c", 1, 2)) for d, x in (("synthetic", a), ("realistic", b))],
           "c2_experiment": {"drop_synthetic_minus_realistic": {"psnr_y": _cmp(-3.0, -1.0)},
                             "gain_over_input_drop": {"psnr_y": _cmp(1.0, 3.0)},
                             "gain_over_input_drop_clean_target": {"psnr_y": _cmp(0.5, 2.0)}}}
    v = {r["claim"]: r for r in E.verdicts(m01, None, {}, None)}
    assert v["C1"]["verdict"] == "supported" and "2 of 3" in v["C1"]["evidence"]
    assert v["C2"]["verdict"] == "supported" and "clean scene" in v["C2"]["evidence"]  # read on the gain
    m01["c2_experiment"]["gain_over_input_drop"]["psnr_y"] = _cmp(-0.5, 1.0)
    assert {r["claim"]: r["verdict"] for r in E.verdicts(m01, None, {}, None)}["C2"] == "not supported"


def test_latency_is_per_megapixel():
    m = RestorationNet(width=2, depth=1)
    small, large = E.latency_per_mp(m, 32, 1), E.latency_per_mp(m, 64, 1)
    assert small > 0 and large > 0 and np.isfinite(small)


def test_binding_measures_more_data_and_more_capacity_on_the_same_images():
    import numpy as np

    from ttl.evaluation import binding

    rng = np.random.default_rng(0)
    base = rng.normal(22.0, 2.0, 20)

    def row(shift: float) -> dict:
        vals = base + shift + rng.normal(0, 0.1, 20)
        dom = {"psnr_y_per_image": vals.tolist(), "ssim_y_per_image": (vals / 30).tolist(),
               "psnr_y_per_seed": [vals.mean()] * 3, "ssim_y_per_seed": [vals.mean() / 30] * 3,
               "psnr_y_per_draw_image": [vals.tolist()] * 3, "ssim_y_per_draw_image": [(vals / 30).tolist()] * 3}
        return {"synthetic": dom}

    scores = {"sup-minority": row(0.0), "sup-full": row(2.0), "ttl": row(-1.0)}
    runs = {n: [{}, {}, {}] for n in scores}
    b = binding(scores, runs, n_boot=200)
    assert list(b) == ["sup-full minus sup-minority"]  # the large row did not run: no capacity line
    r = b["sup-full minus sup-minority"]["diff"]["synthetic"]["psnr_y"]
    assert abs(r["mean_diff"] - 2.0) < 0.1 and r["low"] > 1.8 and r["n"] == 20
    scores["sup-full-large"] = row(1.9)
    runs["sup-full-large"] = [{}]
    r = binding(scores, runs, n_boot=200)["sup-full-large minus sup-full"]["diff"]["synthetic"]["psnr_y"]
    assert r["high"] < 0  # a bigger network that is worse is reported as worse, not hidden


def test_by_rain_amount_splits_by_the_inputs_brightening_and_reports_darkening():
    """Light pairs (input < 15 grey levels brighter than the target) and heavy pairs are reported apart; a model
    that darkens shows a negative ΔY; a set of one amount only has no 'all' line."""
    from ttl.evaluation import amount_frame, by_rain_amount

    def run(psnr, bias):
        return [{"val": {"public/a": {"per_image": {"psnr_y": psnr, "bias_y": bias}},
                         "public/b": {"per_image": {"psnr_y": psnr[:2], "bias_y": bias[:2]}}}}]

    results = {"input": run([25.0, 26.0, 14.0, 15.0], [5.0, 8.0, 40.0, 45.0]),
               "m": run([27.0, 27.0, 22.0, 24.0], [-6.0, -4.0, 1.0, 2.0])}
    recs = by_rain_amount(results, ["public/a", "public/b"], ["m"], n_boot=50)
    got = {(r["set"], r["rain"], r["model"]): r for r in recs}
    assert got["a", "light", "m"]["gain_psnr_y"] == pytest.approx(1.5) and got["a", "light", "m"]["bias_y"] == -5.0
    assert got["a", "heavy", "m"]["gain_psnr_y"] == pytest.approx(8.5) and got["a", "heavy", "input"]["n"] == 2
    assert ("a", "all", "m") in got and ("b", "all", "m") not in got and ("b", "light", "m") in got
    wide = amount_frame(recs, wide=True)
    assert list(wide["rain"]) == ["light", "heavy", "all", "light"] and "m: gain dB (ΔY)" in wide
