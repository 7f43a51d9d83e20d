import math

import numpy as np
import pytest
import torch

from ttl.gap import image_statistics
from ttl.imageops import luminance
from ttl.rain import (RealisticRain, RealisticRainConfig, ScatteringConfig, SyntheticRain, rain_scattering,
                      render_streaks, synthetic_preset, widened)
from ttl.scenes import dead_leaves
from ttl.utils import generator


@pytest.fixture(scope="module")
def scenes():
    return dead_leaves(4, 96, seed=0)


@pytest.mark.parametrize("make", [lambda: SyntheticRain("light"), lambda: SyntheticRain("heavy"), lambda: RealisticRain()])
def test_renderers_shapes_ranges_determinism(scenes, make):
    clean, depth = scenes
    r = make()
    call = (lambda g: r(clean, g, depth)) if isinstance(r, RealisticRain) else (lambda g: r(clean, g))
    a, b, c = call(generator(1)), call(generator(1)), call(generator(2))
    assert a.rainy.shape == clean.shape and a.clean is clean
    assert a.rainy.min() >= 0 and a.rainy.max() <= 1
    assert torch.equal(a.rainy, b.rainy)
    assert not torch.equal(a.rainy, c.rainy)
    assert torch.allclose(a.rain_layer, a.rainy - a.clean)
    assert all(v.shape[0] == 4 for v in a.params.values())
    assert (a.rainy - clean).abs().mean() > 0.005


def test_unknown_synthetic_preset():
    with pytest.raises(ValueError, match="valid: light, heavy"):
        SyntheticRain("medium")


def test_heavy_has_more_rain_than_light(scenes):
    clean, _ = scenes
    light = SyntheticRain("light")(clean, generator(0)).rain_layer.mean()
    heavy = SyntheticRain("heavy")(clean, generator(0)).rain_layer.mean()
    assert heavy > 1.5 * light


def test_streaks_follow_the_requested_direction():
    b, h, w, m = 1, 128, 128, 20
    seeds = torch.zeros(b, 1, h + 2 * m, w + 2 * m)
    g = torch.Generator().manual_seed(0)
    seeds[torch.rand(seeds.shape, generator=g) < 0.004] = 1.0
    for deg in (0.0, 30.0, -45.0):
        s = render_streaks(seeds, torch.tensor([math.radians(deg)]), torch.tensor([25.0]), torch.tensor([0.8]), m)
        st = image_statistics(s[0].expand(3, h, w).clamp(0, 1), rain_layer=s[0].expand(3, h, w))
        assert abs(st.scalars["orientation_tilt"] - abs(deg)) < 6, deg
        assert st.scalars["orientation_spread"] < 8
        assert st.scalars["streak_length"] > 3 * st.scalars["streak_width"]


def test_widened_training_rain_leans_further_than_the_presets(scenes):
    """``widened`` sets the direction range to at least +-tilt (never narrows it, never edits the preset) and the
    rendered streaks, measured on the rain layer, do lean further."""
    light = synthetic_preset("light")
    lo, hi = light.angle
    wide = widened(light, 45.0)
    assert wide.angle == (-45.0, 45.0) and tuple(light.angle) == (lo, hi)
    assert widened(light, 1.0).angle == (float(lo), float(hi))
    with pytest.raises(ValueError, match="tilt"):
        widened(light, -5.0)
    clean = scenes[0].repeat(6, 1, 1, 1)  # 24 images
    tilts = {}
    for name, cfg in (("preset", light), ("wide", wide)):
        r = SyntheticRain(cfg)(clean, generator(3))
        assert r.params["angle"].abs().max() <= max(abs(lo), abs(hi), 45.0) + 1e-6
        tilts[name] = np.mean([image_statistics(x.clamp(0, 1), rain_layer=layer).scalars["orientation_tilt"]
                               for x, layer in zip(r.rainy, r.rain_layer)])
        if name == "preset":
            assert r.params["angle"].abs().max() <= max(abs(lo), abs(hi)) + 1e-6
    assert tilts["wide"] > tilts["preset"] + 8, tilts


@pytest.mark.parametrize("make", [lambda: SyntheticRain("light"), lambda: SyntheticRain("heavy"), lambda: RealisticRain()])
def test_rain_strength_does_not_depend_on_the_render_size(make):
    """The renderers are calibrated at 256 px; on a 2x larger image (scale 2) streaks are 2x longer and wider and must
    be 4x sparser, so that the share of the image under rain (the mean rain layer) stays the same."""
    rain = make()
    strength = {}
    for side, scale in ((128, 1.0), (256, 2.0)):
        grey = torch.full((8, 3, side, side), 0.3)
        extra = (torch.full((8, 1, side, side), 0.5),) if isinstance(rain, RealisticRain) else ()
        strength[scale] = float(rain(grey, generator(5), *extra, scale=scale).rain_layer.abs().mean())
    assert 0.75 < strength[2.0] / strength[1.0] < 1.33, strength


def test_streak_body_has_seed_brightness():
    m = 10
    seeds = torch.zeros(1, 1, 64 + 2 * m, 64 + 2 * m)
    seeds[0, 0, 32 + m, 32 + m] = 0.7
    s = render_streaks(seeds, torch.tensor([0.0]), torch.tensor([15.0]), torch.tensor([0.8]), m)
    assert abs(float(s.max()) - 0.7) < 0.1
    col = s[0, 0, :, 32]
    assert int((col > 0.35).sum()) in range(12, 19)  # about the requested length


def test_veiling_grows_with_depth():
    clean = torch.full((1, 3, 64, 64), 0.2)
    depth = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 64, 64).contiguous()
    cfg = ScatteringConfig(beta=1.0, airlight=0.9, airlight_tint=0.0, forward_blur=0.5, glow=0.0, crf_gamma=2.2)
    out = rain_scattering(clean, depth, generator(0), cfg).rainy
    profile = out[0].mean((0, 1))
    assert torch.all(profile[1:] >= profile[:-1] - 1e-5)  # monotone towards the airlight
    assert profile[0] < 0.22 and profile[-1] > 0.5


def test_scattering_reduces_contrast_and_has_no_streaks(scenes):
    clean, depth = scenes
    out = rain_scattering(clean, depth, generator(0)).rainy
    assert luminance(out).std() < luminance(clean).std()
    assert out.min() > clean.min()  # airlight lifts the blacks


def test_far_layers_hidden_behind_near_surfaces():
    clean = torch.full((1, 3, 96, 96), 0.3)
    near = torch.full((1, 1, 96, 96), 0.01)  # a wall right at the camera: no drop is in front of it
    cfg = RealisticRainConfig(jpeg_quality=None, noise_poisson=1e-9, noise_gauss=1e-9,
                              scattering=ScatteringConfig(beta=0.0, glow=0.0, forward_blur=0.3))
    hidden = RealisticRain(cfg)(clean, generator(0), near).rain_layer.abs().mean()
    open_ = RealisticRain(cfg)(clean, generator(0), torch.ones(1, 1, 96, 96)).rain_layer.abs().mean()
    assert hidden < 0.1 * open_


def test_realistic_noise_and_jpeg_are_measurable(scenes):
    clean, depth = scenes
    base = dict(density=1e-6, scattering=ScatteringConfig(beta=0.0, glow=0.0, forward_blur=0.3))
    quiet = RealisticRain(RealisticRainConfig(noise_poisson=1e-9, noise_gauss=1e-9, jpeg_quality=None, **base))
    noisy = RealisticRain(RealisticRainConfig(noise_poisson=1e-9, noise_gauss=0.03, jpeg_quality=None, **base))
    jpeg = RealisticRain(RealisticRainConfig(noise_poisson=1e-9, noise_gauss=1e-9, jpeg_quality=30, **base))
    s = {k: np.median([image_statistics(x).scalars["noise_sigma"] for x in r(clean, generator(0), depth).rainy])
         for k, r in (("quiet", quiet), ("noisy", noisy))}
    assert s["noisy"] > 2 * s["quiet"]
    blk = [image_statistics(x).scalars["blockiness"] for x in jpeg(clean, generator(0), depth).rainy]
    blk0 = [image_statistics(x).scalars["blockiness"] for x in quiet(clean, generator(0), depth).rainy]
    assert np.median(blk) > np.median(blk0) + 0.1


def test_perspective_near_streaks_longer_wider_sparser_than_far():
    from ttl.rain import layer_geometry

    c = RealisticRainConfig(layer_depth=(0.1, 0.3, 0.7))
    one = torch.ones(2)
    geo = [layer_geometry(c, d, 40 * one, 2 * one, 1.5 * one, 1e-3 * one, 0.2 * one, 0.4 * one) for d in c.layer_depth]
    lengths, widths, dens = ([float(g[i][0]) for g in geo] for i in range(3))
    assert lengths[0] > lengths[1] > lengths[2]
    assert widths[0] > widths[1] > widths[2]
    assert dens[0] < dens[1] < dens[2]
    # rendered: one near layer gives longer streaks than one far layer with the same base values
    common = dict(jpeg_quality=None, noise_poisson=1e-9, noise_gauss=1e-9, wind_variation=0.0, wind_angle=0.0,
                  density=(2e-3, 2e-3), length=(40.0, 40.0), width=(1.0, 1.0), defocus=(0.0, 0.0),
                  opacity=(0.9, 0.9), far_opacity=(0.9, 0.9),
                  scattering=ScatteringConfig(beta=0.0, glow=0.0, forward_blur=0.3))
    clean, deep = torch.zeros(1, 3, 160, 160), torch.ones(1, 1, 160, 160)
    near_only = RealisticRain(RealisticRainConfig(layer_depth=(0.1, 0.7), **common))
    r = near_only(clean, generator(3), deep)
    assert r.rainy.max() > 0.3


def test_config_round_trip():
    cfg = RealisticRainConfig(opacity=(0.1, 0.2))
    again = RealisticRainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match="unknown realistic-rain settings"):
        RealisticRainConfig.from_dict({"bogus": 1})


def test_the_streak_free_target_is_the_rainy_rendering_without_its_streaks():
    import copy

    from ttl.scenes import dead_leaves

    clean, depth = dead_leaves(4, 96, seed=3)
    out = RealisticRain()(clean, generator(0), depth)
    assert out.streak_free is not None and out.streak_free.shape == clean.shape
    rainy_vs_free = (out.rainy - out.streak_free).abs().mean()
    assert 0.005 < rainy_vs_free < (out.rainy - clean).abs().mean()  # streaks (and noise) only: closer than clean
    assert (out.streak_free - clean).abs().mean() > 0.01  # the veil, glow and tone curve are kept
    # no streaks and no noise: the rainy image is its streak-free target, up to the JPEG round trip
    cfg = copy.deepcopy(RealisticRain().config)
    cfg.density, cfg.noise_poisson, cfg.noise_gauss = 1e-12, 1e-12, 1e-12
    calm = RealisticRain(cfg)(clean, generator(0), depth)
    assert (calm.rainy - calm.streak_free).abs().mean() < 0.002  # JPEG turns 1-LSB changes into block noise
    assert SyntheticRain("light")(clean, generator(0)).streak_free is None  # synthetic pairs have one target


def test_the_noisy_target_keeps_the_rainy_renders_noise_and_changes_nothing_else():
    """noisy_target: the streak-free rendering through the same noise draw; the rainy image is unchanged by asking."""
    import copy

    from ttl.realrain import scene_kept

    clean, depth = dead_leaves(2, 192, seed=4)
    plain = RealisticRain()(clean, generator(0), depth)
    out = RealisticRain()(clean, generator(0), depth, noisy_target=True)
    assert plain.streak_free_noisy is None
    assert torch.equal(plain.rainy, out.rainy) and torch.equal(plain.streak_free, out.streak_free)
    assert out.streak_free_noisy.shape == clean.shape
    # the perfect deraining that keeps the sensor noise keeps the scene outside the streaks better than the noise-free
    # target does (ttl.realrain sets its scene-kept floor with it)
    for k in range(2):
        assert scene_kept(out.rainy[k], out.streak_free_noisy[k]) > scene_kept(out.rainy[k], out.streak_free[k]) + 0.02
    # without streaks (and JPEG), the noisy target is the rainy image itself
    cfg = copy.deepcopy(RealisticRain().config)
    cfg.density, cfg.jpeg_quality = 1e-12, None
    calm = RealisticRain(cfg)(clean, generator(0), depth, noisy_target=True)
    assert (calm.rainy - calm.streak_free_noisy).abs().max() < 1e-6
    assert (calm.rainy - calm.streak_free).abs().mean() > 0.005  # the noise-free target differs by the noise


def test_synthetic_presets_are_calibrated_on_public_training_rain(tmp_path):
    """ttl calibrate --what synthetic: the search runs on exact rain layers and writes a record the presets read."""
    from conftest import write_png
    from ttl.calibrate import SYNTHETIC_TARGETS, calibrate_synthetic
    from ttl.rain import SYNTHETIC_DEFAULTS, synthetic_preset

    clean, _ = dead_leaves(3, 64, seed=1)
    rainy = SyntheticRain(SYNTHETIC_DEFAULTS["heavy"])(clean, generator(0)).rainy
    for k in range(3):
        for sub, img in (("rain", rainy[k]), ("norain", clean[k])):
            write_png(tmp_path / SYNTHETIC_TARGETS["heavy"] / sub / f"norain-{k}.png",
                      (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    rec = calibrate_synthetic(tmp_path, presets=("heavy",), size=64, iterations=1, offspring=2, out=tmp_path / "c.json",
                              progress=False)["heavy"]
    assert rec["target"] == "rain200_sample_train" and len(rec["files"]) == 3
    assert rec["objective"] <= rec["objective_start"] and set(rec["per_statistic"]) >= {"streak_length", "rain_intensity"}
    assert synthetic_preset("heavy", calibrated=False) == SYNTHETIC_DEFAULTS["heavy"]
    assert synthetic_preset("light").intensity != SYNTHETIC_DEFAULTS["light"].intensity  # the shipped calibration
    with pytest.raises(ValueError, match="light, heavy"):
        synthetic_preset("medium")


def test_no_scored_public_pair_calibrated_a_synthetic_preset():
    """The committed synthetic calibration saw training pairs only: every file it lists is of a ``*_train`` folder or
    of the "fit" part of a two-role folder, and on the shared public samples none of them is among the pairs that
    notebook 05 and ``make weights`` score (:func:`ttl.heldout.public_sets`)."""
    import json

    from conftest import PUBLIC_DIR
    from ttl.layouts import SHARED_PUBLIC, PairedFolderDataset, public_role
    from ttl.rain import SYNTHETIC_CALIBRATION_FILE

    rec = json.loads(SYNTHETIC_CALIBRATION_FILE.read_text())
    for name, r in rec.items():
        files = [f["file"] for f in r["files"]]
        assert files, name
        if r["target"] in SHARED_PUBLIC:
            assert {public_role(f) for f in files} == {"fit"}, f"{name}: calibrated on scored pairs"
        else:
            assert r["target"].endswith("_train"), f"{name}: calibrated on {r['target']}, a test set"
        folder = PUBLIC_DIR / r["target"]
        if folder.is_dir():
            scored = {it.rainy.name for it in PairedFolderDataset(folder, role="test").items}
            if r["target"] in SHARED_PUBLIC:
                assert scored and not scored & set(files)
                assert scored | set(files) == {it.rainy.name for it in PairedFolderDataset(folder).items}


def test_a_two_role_folder_splits_for_good_and_other_folders_stay_whole(tmp_path):
    from conftest import rand_img, write_png
    from ttl.layouts import PairedFolderDataset, public_role

    for name in ("rain13k_sample", "other_set"):
        for i in range(10):
            write_png(tmp_path / name / "input" / f"{i}.png", rand_img(seed=i))
            write_png(tmp_path / name / "target" / f"{i}.png", rand_img(seed=i + 50))
    fit = PairedFolderDataset(tmp_path / "rain13k_sample", role="fit")
    test = PairedFolderDataset(tmp_path / "rain13k_sample", role="test")
    assert len(fit) + len(test) == 10 and not {it.rainy for it in fit.items} & {it.rainy for it in test.items}
    assert all(public_role(it.rainy.name) == "fit" for it in fit.items) and fit.manifest()["role"] == "fit"
    assert public_role("3.png") == public_role("3.png")  # a hash of the name: the same in every run
    assert len(PairedFolderDataset(tmp_path / "other_set", role="test")) == 10
    with pytest.raises(ValueError, match="role"):
        PairedFolderDataset(tmp_path / "other_set", role="train")
