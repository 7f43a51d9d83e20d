"""The transfer diagnosis (ttl.transfer): each measure on cases whose answer is known."""
import math

import pytest
import torch

from ttl.finetune import prepare_start
from ttl.models import RestorationNet, layer_rms, match_layer_scale, save_model
from ttl.transfer import (activation_rms, diagnose, feature_cka, linear_cka, rain_probe, starts, summary,
                          weight_report)


def test_linear_cka_is_one_for_a_rotated_scaled_copy_and_small_for_unrelated_features():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    assert linear_cka(a, 3.0 * a @ q + 5.0) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(a, torch.randn(2000, 8, generator=g, dtype=torch.float64)) < 0.05
    with pytest.raises(ValueError, match="same items"):
        linear_cka(a, a[:10])


def test_weight_report_measures_the_change_of_the_layer_that_changed_only():
    torch.manual_seed(0)
    a = RestorationNet(width=4, depth=2, context=True)
    b = RestorationNet(width=4, depth=2, context=True)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.encoder.stem.weight.mul_(1.5)
    rep = weight_report(a, b)
    assert rep["encoder.stem"]["rel_change"] == pytest.approx(0.5, rel=1e-6)
    assert max(v["rel_change"] for k, v in rep.items() if k != "encoder.stem") == 0.0  # the zero head included
    with torch.no_grad():
        b.head.weight.fill_(0.1)
    assert math.isinf(weight_report(a, b)["head"]["rel_change"])  # a zero start that moved
    assert "rel_change" not in weight_report(a)["encoder.stem"]


def test_rain_probe_finds_a_linear_rain_layer_and_not_an_independent_one():
    g = torch.Generator().manual_seed(1)
    rainy = torch.rand(6, 3, 32, 32, generator=g)
    # the rain layer is the input itself (clean = 0): its luminance is linear in the pixel's RGB
    assert rain_probe(None, rainy, torch.zeros_like(rainy), pixels=2000)["input"] > 0.999
    # the rain layer is independent noise: nothing in the input predicts it
    noise = torch.rand(6, 3, 32, 32, generator=g)
    assert abs(rain_probe(None, rainy, rainy - noise, pixels=2000)["input"]) < 0.02
    with pytest.raises(ValueError, match="at least 2"):
        rain_probe(None, rainy[:1], rainy[:1])


def test_a_network_is_fully_similar_to_itself_and_its_stages_are_all_measured():
    torch.manual_seed(0)
    m = RestorationNet(width=4, depth=2, context=True)
    x = torch.rand(2, 3, 32, 32)
    cka = feature_cka(m, m, x, positions=256)
    assert set(cka) == {"enc0", "enc1", "enc2", "dec0", "dec1"}
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in cka.values())
    assert set(activation_rms(m, x)) == set(cka)


def test_starts_rebuild_the_scratch_initialisation_and_the_reset_distilled_student(tmp_path):
    torch.manual_seed(7)
    student = RestorationNet(width=4, depth=2, context=True)
    torch.nn.init.normal_(student.head.weight)
    save_model(tmp_path / "student.pt", student)
    cfg = {"s_width": 4, "f_reset_head": True, "f_rescale_start": False}
    calib = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    s = starts(cfg, 3, tmp_path / "student.pt", context=True, calib=calib)
    torch.manual_seed(3)  # what ttl.finetune.run_finetuning does for a scratch row of seed 3
    scratch = RestorationNet(width=4, depth=2, context=True)
    for k, v in scratch.state_dict().items():
        assert torch.equal(v, s["random"].state_dict()[k]), k
    assert float(s["distilled"].head.weight.detach().abs().sum()) == 0.0
    assert torch.equal(s["distilled"].encoder.stem.weight, student.encoder.stem.weight)
    assert "distilled-raw" not in s


def test_starts_rescale_the_distilled_student_to_the_random_starts_scale_and_keep_the_raw_one(tmp_path):
    torch.manual_seed(7)
    student = RestorationNet(width=4, depth=2, context=True)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(5.0)  # activations far above a fresh network's, like a distilled student's
    save_model(tmp_path / "student.pt", student)
    cfg = {"s_width": 4, "f_reset_head": True, "f_rescale_start": True}
    calib = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    s = starts(cfg, 3, tmp_path / "student.pt", context=True, calib=calib)
    assert torch.equal(s["distilled-raw"].encoder.stem.weight, student.encoder.stem.weight)
    raw, ref, got = (layer_rms(s[k], calib) for k in ("distilled-raw", "random", "distilled"))
    assert raw["encoder.stem"] > 2 * ref["encoder.stem"]
    for name, v in got.items():
        if name != "head":
            assert v == pytest.approx(ref[name], rel=1e-4), name


def test_diagnose_compares_ttl_with_the_distilled_start_and_scratch_rows_with_the_random_one(tmp_path):
    torch.manual_seed(0)
    save_model(tmp_path / "student.pt", RestorationNet(width=4, depth=2, context=True))
    cfg = {"s_width": 4, "f_reset_head": True, "f_rescale_start": True}
    calib = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    st = starts(cfg, 0, tmp_path / "student.pt", context=True, calib=calib)
    save_model(tmp_path / "ttl.pt", st["distilled"])       # "fine-tuned" without change
    save_model(tmp_path / "sup.pt", st["random"])
    g = torch.Generator().manual_seed(2)
    clean = torch.rand(4, 3, 32, 32, generator=g)
    sets = {"synthetic": {"rainy": (clean + 0.3 * torch.rand(4, 3, 32, 32, generator=g)).clamp(0, 1), "clean": clean}}
    res = diagnose(cfg, 0, tmp_path / "student.pt", {"ttl": tmp_path / "ttl.pt", "sup-minority": tmp_path / "sup.pt"},
                   sets, context=True, calib=calib)
    assert res["start_of"] == {"ttl": "distilled", "sup-minority": "random"}
    assert all(v == pytest.approx(1.0, abs=1e-9) for r in res["cka_start_end"].values() for v in r.values())
    assert all(v["rel_change"] == 0.0 for r in res["weights"].values() for v in r.values())
    assert set(res["probe_r2"]["synthetic"]) == {"input", "distilled", "distilled-raw", "random", "ttl", "sup-minority"}
    assert "rain-layer probe" in summary(res)


def test_prepare_start_zeroes_the_head_keeps_filter_directions_and_leaves_the_random_state_alone():
    torch.manual_seed(5)
    net = RestorationNet(width=4, depth=2)
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    calib = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    factors = prepare_start(net, {"f_reset_head": True, "f_rescale_start": True}, calib, seed=2)
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is untouched
    assert float(net.head.weight.detach().abs().sum()) == 0.0 and "head" not in factors
    assert factors and all(f > 0 for f in factors.values())
    for n, w in before.items():
        if n in factors:
            assert torch.allclose(net.get_submodule(n).weight, w * factors[n], rtol=1e-5, atol=1e-7), n
    assert prepare_start(net, {"f_reset_head": True, "f_rescale_start": False}, calib, seed=2) == {}


def test_match_layer_scale_matches_every_layer_of_a_reference():
    torch.manual_seed(0)
    a, ref = RestorationNet(width=4, depth=2, context=True), RestorationNet(width=4, depth=2, context=True)
    with torch.no_grad():
        a.encoder.stem.weight.mul_(40.0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    match_layer_scale(a, ref, x)
    got, want = layer_rms(a, x), layer_rms(ref, x)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-4), k
