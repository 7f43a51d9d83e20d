"""The ground-truth-free judge of real deraining (ttl.realrain): each part on cases whose answer is known."""
import numpy as np
import pytest
import torch

from ttl import realrain as RR
from ttl.imageops import gaussian_blur


def _scene(seed: int, size: int = 128) -> torch.Tensor:
    """A textured rain-free image: smooth colour blobs plus fine texture."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(size, size), mode="bicubic",
                                           align_corners=False)[0]
    return (0.5 * base + 0.6 * gaussian_blur(torch.rand(1, 3, size, size, generator=g), 0.7)[0]).clamp(0, 1)


def _rain(img: torch.Tensor, seed: int, n: int = 60) -> torch.Tensor:
    """Thin bright near-vertical streaks on ``img``."""
    g = torch.Generator().manual_seed(seed)
    out = img.clone()
    h, w = img.shape[-2:]
    for _ in range(n):
        x, y = int(torch.randint(0, w, (1,), generator=g)), int(torch.randint(0, h - 20, (1,), generator=g))
        out[:, y:y + 20, x:x + 2] = (out[:, y:y + 20, x:x + 2] + 0.35).clamp(0, 1)
    return out


def test_scene_kept_is_high_when_only_streaks_change_and_low_for_the_nuisances():
    clean = _scene(0)
    rainy = _rain(clean, 1)
    assert RR.scene_kept(rainy, rainy) == pytest.approx(1.0)
    target = RR.scene_kept(rainy, clean)
    assert target > 0.9
    for name, f in RR.NUISANCES.items():
        assert RR.scene_kept(rainy, f(rainy).clamp(0, 1)) < target, name
    assert RR.scene_kept(rainy, RR.NUISANCES["flat image (the mean colour)"](rainy)) < 0.7
    with pytest.raises(ValueError, match="differ"):
        RR.scene_kept(rainy, clean[:, :64])


def test_scene_kept_reuses_an_input_only_while_it_is_unchanged():
    clean = _scene(2)
    rainy = _rain(clean, 3)
    first = RR.scene_kept(rainy, clean)
    assert RR.scene_kept(rainy, clean) == first  # the cached input side gives the same value
    assert RR.scene_kept(rainy.clone(), clean) == first  # as a fresh tensor with the same pixels does
    rainy += 0.2  # changed in place: its input side is computed again, as for a new tensor with these pixels
    assert RR.scene_kept(rainy, clean) == RR.scene_kept(rainy.clone(), clean) != first


def test_the_rain_network_learns_streaks_and_the_judge_floors_its_log_odds():
    rainy = [_rain(_scene(s, 96), 100 + s) for s in range(6)]
    clean = [_scene(50 + s, 96) for s in range(6)]
    net = RR.fit_rain_net(rainy, clean, steps=60, batch=8, seed=0, progress=False)
    held_r = [_rain(_scene(s, 96), 200 + s) for s in range(10, 14)]
    held_c = [_scene(60 + s, 96) for s in range(4)]
    lr, lc = RR.rain_logits(net, held_r), RR.rain_logits(net, held_c)
    assert lr.min() > lc.max()  # separable toy: every rainy image above every clean one
    judge = RR.RainJudge(net, logit_floor=float(lr.max()) + 1.0, scene_floor=0.5)
    p = judge.rain_left(held_r + held_c)
    assert np.allclose(p, 1 / (1 + np.exp(-judge.logit_floor)))  # nothing scores below the rain-free level
    again = RR.fit_rain_net(rainy, clean, steps=60, batch=8, seed=0, progress=False)
    assert np.allclose(RR.rain_logits(again, held_r), lr)  # deterministic for a seed
    with pytest.raises(ValueError, match="rainy and rain-free"):
        RR.fit_rain_net([], clean, steps=1)


class _Constant(torch.nn.Module):
    """A stand-in network: log-odds = 5 x mean brightness - 2 (brighter looks rainier)."""

    def forward(self, x):
        return 5 * x.mean((1, 2, 3)) - 2


def test_a_destroyed_scene_gets_no_credit_for_the_rain_it_removed():
    judge = RR.RainJudge(_Constant(), logit_floor=-10.0, scene_floor=0.8)
    rainy = [_rain(_scene(3), 4)]
    flat = [RR.NUISANCES["flat image (the mean colour)"](rainy[0]) * 0.5]  # darker: "less rain" for this network
    m = judge.measure(rainy, flat)
    assert m["rain_left"][0] < judge.rain_left(rainy)[0]
    assert m["scene_kept"][0] < judge.scene_floor and m["derained"] == [False]
    assert m["credited_rain_left"][0] == pytest.approx(judge.rain_left(rainy)[0])
    rows = RR.validate_judge(judge, {"toy": (rainy, [_scene(3)])}, n_boot=50)
    cases = {r["case"] for r in rows}
    assert {"input", "target", "half the rain removed", *RR.NUISANCES} == cases
    assert len(RR.judge_table(rows)) == len(rows)


def test_sets_sharing_their_rainy_images_measure_the_nuisances_once():
    judge = RR.RainJudge(_Constant(), logit_floor=-10.0, scene_floor=0.8)
    rainy = [_rain(_scene(3), 4), _rain(_scene(5), 2)]
    targets = [_scene(3), _scene(5)]
    noisy = [t + 0.01 for t in targets]
    calls = []
    measure = judge.measure
    judge.measure = lambda r, o, left=None: calls.append(1) or measure(r, o, left)
    shared = RR.validate_judge(judge, {"a": (rainy, targets), "b": (rainy, noisy)}, n_boot=50)
    n_shared = len(calls)
    copies = RR.validate_judge(judge, {"a": (rainy, targets), "b": (list(rainy), noisy)}, n_boot=50)
    assert n_shared == 1 + len(RR.NUISANCES) + 2 * 2  # input and nuisances once, target and half per set
    assert len(calls) - n_shared == 2 * (1 + len(RR.NUISANCES) + 2)
    assert shared == copies  # the same rows as when each set is measured on its own


def test_ranking_check_reads_agreement_and_disagreement():
    rng = np.random.default_rng(0)
    ref = {m: list(k + 0.1 * rng.standard_normal(30)) for k, m in enumerate("abcd")}
    same = {m: [-v for v in vals] for m, vals in ref.items()}  # lower rain left where PSNR is higher
    opposite = {m: list(vals) for m, vals in ref.items()}
    out = RR.ranking_check(ref, {"same": same, "opposite": opposite}, n_boot=200)
    assert out["same"]["tau"] == pytest.approx(1.0) and out["same"]["low"] == pytest.approx(1.0)
    assert out["opposite"]["tau"] == pytest.approx(-1.0)
    assert out["same"]["models"] == list("abcd")


def test_a_judge_that_credits_a_nuisance_on_real_photographs_is_not_valid():
    real = "real photographs (no target)"
    rows = [{"set": real, "case": "input", "derained_share": 0.0},
            {"set": real, "case": "darkening (x 0.7)", "derained_share": 0.05},
            {"set": real, "case": "horizontal blur (sigma 2 px)", "derained_share": 0.3},
            {"set": "public/x", "case": "flat image (the mean colour)", "derained_share": 1.0}]
    target = {"set": RR.TARGET_SET, "case": "target", "derained_share": 0.8}
    v = RR.judge_validity(rows + [target])
    assert not v["valid"] and v["worst"] == "horizontal blur (sigma 2 px)" and v["share"] == 0.3
    assert RR.judge_validity(rows[:2] + [target])["valid"]
    assert not RR.judge_validity([])["valid"]


def test_a_judge_that_rejects_the_noise_kept_target_is_not_valid():
    """A floor no perfect deraining reaches would reject every model: the target must be credited too."""
    real = "real photographs (no target)"
    rows = [{"set": real, "case": "darkening (x 0.7)", "derained_share": 0.0}]
    assert not RR.judge_validity(rows)["valid"]  # the target was not measured
    low = RR.judge_validity(rows + [{"set": RR.TARGET_SET, "case": "target", "derained_share": 0.3}])
    assert not low["valid"] and low["target_share"] == 0.3
    # the nuisance rows of the target set do not count as the target
    assert not RR.judge_validity(rows + [{"set": RR.TARGET_SET, "case": "darkening (x 0.7)",
                                          "derained_share": 1.0}])["valid"]
    assert RR.judge_validity(rows + [{"set": RR.TARGET_SET, "case": "target", "derained_share": 0.5}])["valid"]


def test_fit_judge_sets_the_scene_floor_on_the_noise_kept_targets(tmp_path, monkeypatch):
    """The floor is the SCENE_FLOOR_QUANTILE of what the noise-kept targets keep (not the noise-free ones)."""
    import ttl.finetune as FT
    from conftest import rand_img, write_png

    for folder in ("rain", "clean"):
        for i in range(10):
            write_png(tmp_path / folder / f"{folder}{i}.png", rand_img(64, 64, seed=i + (0 if folder == "rain" else 50)))
    calls = {}

    def fake_render(paths, photo_size, seed, tag, realistic=False, noisy_target=False, **kw):
        calls.update(realistic=realistic, noisy_target=noisy_target)
        rainy = [_rain(_scene(s, 96), 300 + s) for s in range(len(paths))]
        return {"rainy": rainy, "streak_free": [torch.zeros_like(r) for r in rainy],  # flat: keeps nothing
                "streak_free_noisy": [r.clone() for r in rainy]}  # keeps everything

    monkeypatch.setattr(FT, "_render_photos", fake_render)
    cfg = {"e_judge_steps": 2, "e_judge_renders": 6, "photo_size": 96, "bootstrap": 20, "e_rain_fit_n": 0}
    judge = RR.fit_judge(tmp_path / "rain", tmp_path / "clean", cfg, progress=False)
    assert calls == {"realistic": True, "noisy_target": True}
    assert judge.scene_floor == pytest.approx(1.0) and judge.report["scene_floor_quantile"] == RR.SCENE_FLOOR_QUANTILE
    assert judge.report["scene_kept_noise_free_targets_median"] < 0.5
