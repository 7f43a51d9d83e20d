"""Fine-tuning and the baselines (notebook 04): fixed pairs, nested minorities, the unlabeled stream, Syn2Real's
Gaussian-process loss, frozen encoders, resuming, checkpoint selection and scoring."""
import math

import numpy as np
import pytest
import torch

from ttl import finetune as FT
from ttl import heldout as H
from ttl.config import ConfigError, resolve_config
from ttl.datasets import RealDomainUnlabeled
from ttl.models import RestorationNet


@pytest.fixture(scope="module")
def cfg():
    return resolve_config("smoke", f_steps=4)


@pytest.fixture(scope="module")
def pairs(cfg):
    return FT.synthetic_pairs(cfg, 0, "train")


def test_pairs_are_fixed_and_crops_change_with_the_epoch(cfg, pairs):
    again = FT.synthetic_pairs(cfg, 0, "train")
    assert all(torch.equal(a, b) for a, b in zip(pairs.rainy, again.rainy)) and len(pairs) == cfg["f_pairs"]
    assert pairs.rainy[0].dtype == torch.uint8  # kept as 8-bit images, like a dataset on disk
    a = pairs[3]
    assert a["rainy"].shape[-1] == cfg["f_patch"] and not torch.equal(a["rainy"], a["clean"])
    assert torch.equal(a["rainy"], pairs[3]["rainy"])
    pairs.set_epoch(1)
    b = pairs[3]
    pairs.set_epoch(0)
    assert not torch.equal(a["rainy"], b["rainy"])  # a new crop of the same pair


def test_pairs_from_photographs_keep_their_scenes_and_minorities_are_of_scenes(tmp_path):
    from conftest import rand_img, write_png

    for i in range(20):
        write_png(tmp_path / f"a_{i:02d}.png", rand_img(70, 90, seed=i))
    cfg = resolve_config("smoke", f_renders=3)
    pairs = FT.synthetic_pairs(cfg, 0, "train", clean_dir=tmp_path)
    assert len(pairs) == 16 * 3 and len(set(pairs.scenes)) == 16  # 16 train photographs, 3 renders each
    assert pairs.rainy[0].shape[-2:] == (cfg["photo_size"], round(90 * cfg["photo_size"] / 70))  # working scale
    m = FT.Minority(pairs, 0.25, seed=0)
    assert len(m.scenes) == 4 and len(m.indices) == 12  # a minority of scenes, with all their renders
    val = H.validation_sets(cfg, 0, clean_dir=tmp_path)
    assert set(val) == {"synthetic", "realistic", "realistic_clean"}
    assert val["realistic"]["rainy"] is val["realistic_clean"]["rainy"]
    assert not torch.equal(val["realistic"]["clean"], val["realistic_clean"]["clean"])  # streak-free vs clean
    assert val["synthetic"]["rainy"].shape[-1] == cfg["f_size"]


def test_minorities_are_nested_for_a_seed_and_differ_between_seeds(pairs):
    small, large = FT.Minority(pairs, 0.25, seed=0), FT.Minority(pairs, 0.5, seed=0)
    assert len(small.indices) == math.ceil(0.25 * len(pairs)) and set(small.indices) <= set(large.indices)
    assert FT.Minority(pairs, 0.25, seed=1).indices != small.indices
    whole = pairs.subset(list(range(len(pairs))))
    whole.patch = None  # whole images: every item of a one-scene minority is the same pair
    tiny = FT.Minority(whole, 0.01, seed=0, min_len=4)
    assert len(tiny.indices) == 1 and len(tiny) == 4
    assert all(torch.equal(it["clean"], tiny[0]["clean"]) for it in tiny.__getitems__([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="fraction"):
        FT.Minority(pairs, 0.0, seed=0)


def test_the_pool_adds_public_training_pairs_only_and_minorities_keep_each_source_share(tmp_path):
    """notebook 04's pool (training_pool): the rendered photographs plus the public *training* pairs (folders
    *_train, the fit part of rain13k_sample), never a test pair; a minority draws every source in proportion."""
    from conftest import rand_img, write_png

    from ttl.layouts import public_role

    for i in range(20):
        write_png(tmp_path / "clean" / f"a_{i:02d}.png", rand_img(70, 90, seed=i))
    public = tmp_path / "public"
    for name, n in (("set_train", 10), ("set_test", 3)):
        for i in range(n):
            clean = rand_img(64, 72, seed=100 + i)
            write_png(public / name / "norain" / f"norain-{i + 1}.png", clean)
            write_png(public / name / "rain" / f"norain-{i + 1}.png", np.clip(clean.astype(int) + 60, 0, 255)
                      .astype(np.uint8))
    for i in range(12):
        clean = rand_img(64, 72, seed=200 + i)
        write_png(public / "rain13k_sample" / "target" / f"{i}.png", clean)
        write_png(public / "rain13k_sample" / "input" / f"{i}.png", np.clip(clean.astype(int) + 8, 0, 255)
                  .astype(np.uint8))
    cfg = resolve_config("smoke", f_renders=3)
    own = FT.synthetic_pairs(cfg, 0, "train", clean_dir=tmp_path / "clean")
    pool = FT.training_pool(cfg, 0, tmp_path / "clean", public_dir=public)
    assert all(torch.equal(a, b) for a, b in zip(own.rainy, pool.rainy)) and pool.scenes[:len(own)] == own.scenes
    fit = {f"rain13k_sample/{i}" for i in range(12) if public_role(f"{i}.png") == "fit"}
    assert {s for s in pool.scenes if s.startswith("rain13k_sample/")} == fit  # its test part never trains
    assert not any(s.startswith("set_test/") for s in pool.scenes)
    assert set(pool.info["public"]) == {"rain13k_sample", "set_train"}
    for name, rec in pool.info["public"].items():  # each folder about f_public_share of the items
        assert rec["share"] == pytest.approx(cfg["f_public_share"], abs=0.06)
        assert pool.sources.count(name) == rec["n"] * rec["repeats"]
    assert len(pool.amounts) == len(pool) and set(pool.amounts[len(own):]) <= {"none", "light", "heavy"}
    assert pool.amounts[pool.sources.index("set_train")] == "heavy"  # measured: +60 grey levels
    # a small minority holds the rendered photographs only, as before; a larger one every source in proportion
    assert FT.Minority(pool, 0.04, seed=0).scenes == FT.Minority(own, 0.04, seed=0).scenes
    half, whole = FT.Minority(pool, 0.5, seed=0), FT.Minority(pool, 1.0, seed=0)
    assert sum(s.startswith("set_train/") for s in half.scenes) == 5 and set(half.indices) <= set(whole.indices)
    assert sorted(whole.indices) == list(range(len(pool)))
    # a pool of given pairs (synthetic_dir), or a zero share, adds nothing
    assert len(FT.training_pool(dict(cfg, f_public_share=0.0), 0, tmp_path / "clean", public_dir=public)) == len(own)


class _Leaky(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitems__(self, idx):
        return [{"rainy": torch.zeros(3, 8, 8), "clean": torch.zeros(3, 8, 8)} for _ in idx]


def test_unlabeled_stream_carries_rainy_images_only(cfg, pairs):
    unl = RealDomainUnlabeled(cfg["t_patch"], n=8, seed=0)
    items = FT.WithUnlabeled(FT.Minority(pairs, 0.25, 0), unl).__getitems__([0, 1])
    assert set(items[0]) == {"rainy", "clean", "real"}
    with pytest.raises(RuntimeError, match="ground truth"):
        FT.WithUnlabeled(FT.Minority(pairs, 0.25, 0), _Leaky()).__getitems__([0])


def test_unlabeled_pool_holds_the_rainy_images_and_nothing_else(cfg):
    src = RealDomainUnlabeled(cfg["t_patch"], n=6, seed=0)
    pool = FT.UnlabeledPool(src, batch=4)
    assert len(pool) == 6 and set(pool[0]) == {"rainy"}
    assert torch.equal(pool.__getitems__([5])[0]["rainy"], src.__getitems__([4, 5])[1]["rainy"])  # rendered in batches
    tensors = [k for k, v in vars(pool).items() if torch.is_tensor(v)]
    assert tensors == ["images"]


def test_gp_pseudo_label_of_a_labeled_latent_is_itself_with_small_variance():
    gp = FT.GPPseudoLabels(torch.zeros(1), k=4, sigma=0.01)
    gp.bank = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    z = gp.bank[:2].clone().requires_grad_(True)
    loss = gp.loss(z)
    loss.backward()
    assert torch.isfinite(loss) and z.grad is not None
    # far from every labeled latent (negated): a larger loss
    assert gp.loss(-gp.bank[:2]) > loss.detach()
    gp.k = 50  # more neighbours than labeled latents: uses them all
    assert torch.isfinite(gp.loss(gp.bank[:2]))


def test_frozen_encoder_keeps_its_weights_and_the_decoder_learns(cfg, pairs):
    torch.manual_seed(0)
    m = RestorationNet(width=4, depth=2)
    enc0 = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    head0 = m.head.weight.clone()
    FT.finetune(m, pairs, FT.Recipe("frozen", "student", 0.5, freeze_encoder=True), cfg, 0, "cpu", progress=False)
    assert all(torch.equal(enc0[k], v) for k, v in m.encoder.state_dict().items())
    assert not torch.equal(head0, m.head.weight)


def test_syn2real_run_resumes_where_an_uninterrupted_run_ends(cfg, pairs, tmp_path, monkeypatch):
    unl = RealDomainUnlabeled(cfg["t_patch"], n=8, seed=0)
    c = dict(cfg, f_steps=6)
    recipe = FT.Recipe("syn2real", "scratch", 0.5, semi=True)

    def run(run_dir, resume=False):
        torch.manual_seed(0)
        m = RestorationNet(width=4, depth=2)
        FT.finetune(m, pairs, recipe, c, 0, "cpu", run_dir=run_dir, unlabeled=unl, resume=resume, progress=False)
        return m

    ref = run(tmp_path / "a")
    original = FT.GPPseudoLabels.on_step

    def killed(self, step):
        original(self, step)
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(FT.GPPseudoLabels, "on_step", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    monkeypatch.setattr(FT.GPPseudoLabels, "on_step", original)
    resumed = run(tmp_path / "b", resume=True)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_semi_supervised_recipe_needs_unlabeled_images(cfg, pairs):
    with pytest.raises(ValueError, match="unlabeled"):
        FT.finetune(RestorationNet(4, 2), pairs, FT.Recipe("s", "scratch", 0.5, semi=True), cfg, 0, "cpu",
                    progress=False)


def test_recipes_hold_every_row_of_the_study():
    cfg = resolve_config("default")
    rows = {r.name: r for r in FT.recipes(cfg)}
    assert {"ttl", "sup-minority", "sup-full", "sup-full-large", "syn2real", "sup-minority-large", "ssl-minority",
            "t1-only", "t2-only", "no-distillation", "frozen-encoder", "ttl-target-ms", "ttl@5pct", "ttl@10pct",
            "ttl@100pct", "sup-minority@5pct", "sup-minority@10pct", "sup-full-no-context",
            "sup-full-before"} == set(rows)
    # the before/after of the darkening fix: sup-full without the context path, and also without rain-free renders
    assert rows["sup-full-before"].rain == ("light", "heavy") and rows["sup-full-before"].context is False
    assert rows["sup-full-no-context"].rain is None and rows["sup-full-no-context"].context is False
    assert "none" in cfg["f_rain"] and cfg["context"]
    # equal effort: every headline row and control searches the same grid; >= 5 draws for the C3 pair
    searched = {n for n, r in rows.items() if r.tune}
    assert searched == {n for n, r in rows.items() if r.role in ("headline", "control")}
    assert {"ttl", "sup-minority", "sup-full", "syn2real", "sup-minority-large", "ssl-minority"} <= searched
    grid = cfg["f_lr_grid"]
    assert len(grid) >= 3 and max(grid) / min(grid) >= 10 and min(grid) < cfg["f_lr"] < max(grid)
    assert rows["ttl"].seeds >= 5 and rows["sup-minority"].seeds >= 5
    assert all(rows[n].seeds >= 2 for n in ("sup-full", "syn2real"))  # compared on common draws (shares_draws)
    assert all(rows[f"{b}@{p}"].seeds >= 2 for b in ("ttl", "sup-minority") for p in ("5pct", "10pct"))
    # rows that do not search name a parent that does, and it comes first (its choice exists when they train)
    order = list(rows)
    for n, r in rows.items():
        if not r.tune:
            assert r.parent is not None and rows[r.parent].tune and order.index(r.parent) < order.index(n), n
    # a from-scratch row takes a rate chosen for its own network size (a rate does not carry across a capacity change)
    for n, r in rows.items():
        if r.parent is not None and r.init.startswith("scratch"):
            assert rows[r.parent].init == r.init, n
    assert rows["sup-full-large"].parent == "sup-minority-large"
    assert rows["sup-full"].fraction == 1.0 and rows["ttl"].fraction == 0.01 and rows["syn2real"].semi
    assert FT.recipe_steps(rows["ttl"], cfg) == FT.recipe_steps(rows["t1-only"], cfg) == cfg["f_steps_minority"]
    assert FT.recipe_steps(rows["sup-full"], cfg) == FT.recipe_steps(rows["ttl@100pct"], cfg) == cfg["f_steps"]
    with pytest.raises(ValueError, match="role"):
        FT.Recipe("x", "scratch", role="favourite", tune=True)
    with pytest.raises(ValueError, match="parent"):
        FT.Recipe("x", "scratch", tune=True, parent="ttl")


def test_every_run_ends_at_its_best_validation_checkpoint(cfg, pairs):
    """Selection is real: the model ends with the weights of the validation that scored highest, whatever came
    after it, and the log says which step that was."""
    scores = iter([1.0, 5.0, 2.0, 0.5, 0.1, 0.0, -1.0, -2.0])
    seen = {}

    def validate(m):
        v = next(scores)
        seen[v] = {k: t.clone() for k, t in m.state_dict().items()}
        return {FT.SELECT_KEY: v}

    torch.manual_seed(0)
    m = RestorationNet(width=4, depth=2)
    c = dict(cfg, f_steps_minority=8, f_val_every=2)
    log = FT.finetune(m, pairs, FT.Recipe("r", "scratch", 0.5, tune=True), c, 0, "cpu", validate=validate,
                      progress=False, lr=1e-2)
    assert log["best"] == {"step": 4, "value": 5.0}
    assert all(torch.equal(seen[5.0][k], v) for k, v in m.state_dict().items())
    assert not all(torch.equal(seen[0.5][k], v) for k, v in m.state_dict().items())


def test_selection_survives_a_kill(cfg, pairs, tmp_path, monkeypatch):
    """A resumed run selects exactly as an uninterrupted one (the best weights travel inside last.pt)."""
    import ttl.engine as engine

    c = dict(cfg, f_steps_minority=8, f_val_every=2)  # validations at steps 2, 4, 6, 8; a checkpoint every step
    recipe = FT.Recipe("r", "scratch", 0.5, tune=True)
    original = engine.train

    def run(run_dir, vals, resume=False, kill_at=None):
        it = iter(vals)

        def train(*a, **k):
            if kill_at:
                def on_step(step):
                    if step == kill_at:
                        raise KeyboardInterrupt
                k["on_step"] = on_step
            return original(*a, **k)

        monkeypatch.setattr(engine, "train", train)
        torch.manual_seed(0)
        m = RestorationNet(width=4, depth=2)
        log = FT.finetune(m, pairs, recipe, c, 0, "cpu", run_dir=run_dir, validate=lambda _: {FT.SELECT_KEY: next(it)},
                          resume=resume, progress=False)
        return m, log

    ref, ref_log = run(tmp_path / "a", [1.0, 3.0, 2.0, 0.0])
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", [1.0, 3.0, 2.0, 0.0], kill_at=5)
    resumed, log = run(tmp_path / "b", [2.0, 0.0], resume=True)  # the validations after the kill
    assert log["best"] == ref_log["best"] == {"step": 4, "value": 3.0}
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_masked_denoising_learns_from_the_image_alone():
    """The ssl-minority pretext task: its loss falls on unlabeled (smooth) images and never needs a clean target."""
    torch.manual_seed(0)
    m = RestorationNet(width=4, depth=2)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    x = torch.stack([torch.stack([yy, xx, (yy + xx) / 2]) * a for a in (0.3, 0.6, 0.9, 1.0)])
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    losses = []
    for _ in range(150):
        loss = FT.masked_denoising_step(m, {"rainy": x})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])


def test_the_training_mixture_spans_rain_free_light_and_heavy_rain(tmp_path):
    """Render k of photo i has amount f_rain[(i + k) % len]: every photograph is seen rain-free, with light and with
    heavy rain; rain-free pairs are exact identities, and heavy rain brightens more than light rain."""
    from conftest import rand_img, write_png

    from ttl.metrics import bias_y

    for i in range(20):
        write_png(tmp_path / f"a_{i:02d}.png", rand_img(70, 90, seed=i))
    cfg = resolve_config("smoke", f_renders=3, f_rain=["light", "heavy", "none"])
    pairs = FT.synthetic_pairs(cfg, 0, "train", clean_dir=tmp_path)
    assert pairs.manifest()["amounts"] == {"light": 16, "heavy": 16, "none": 16}
    assert pairs.manifest()["tilt_deg"] == cfg["f_tilt"] > 0  # training rain leans wider than the presets ...
    assert FT.synthetic_pairs(cfg, 0, "val", clean_dir=tmp_path).manifest()["tilt_deg"] == 0.0  # ... validation not
    by = {"light": [], "heavy": [], "none": []}
    for j, (r, c) in enumerate(zip(pairs.rainy, pairs.clean)):
        i, k = divmod(j, 3)
        by[cfg["f_rain"][(i + k) % 3]].append(float(bias_y(r.float() / 255, c.float() / 255)))
    assert all(v == 0.0 for v in by["none"])
    assert 0 < np.mean(by["light"]) < np.mean(by["heavy"])
    rainy_only = FT.Minority(pairs, 1.0, 0, amounts=("light", "heavy"))  # the "before" rows' training set
    assert len(rainy_only.indices) == 32 and all(pairs.amounts[i] != "none" for i in rainy_only.indices)
    with pytest.raises(ValueError, match="unknown rain amounts"):
        FT._render_photos([], 64, 0, 0, amounts=("drizzle",))
    procedural = FT.synthetic_pairs(resolve_config("smoke", f_rain=["none", "light"]), 0, "train")
    assert torch.equal(procedural.rainy[0], procedural.clean[0]) and not torch.equal(procedural.rainy[1],
                                                                                       procedural.clean[1])


def test_a_runs_folder_names_its_learning_rate(tmp_path):
    """Two learning rates of one row and draw never share a run folder (a resumed study cannot mix them)."""
    a, b = FT.run_path(tmp_path, "ttl", 5e-4, 1), FT.run_path(tmp_path, "ttl", 2e-3, 1)
    assert a != b and a.name == b.name == "seed1" and "lr0.0005" in a.parts and "lr0.002" in b.parts


def test_scoring_runs_a_model_once_per_distinct_input_and_scores_as_before(cfg):
    """realistic and realistic_clean share their rainy crops: one forward pass serves both, with the numbers that
    scoring each set on its own gives."""
    from ttl.train import evaluate_pairs

    val = H.validation_sets(cfg, 0)
    torch.manual_seed(0)
    m = RestorationNet(width=4, depth=2)
    torch.nn.init.normal_(m.head.weight, std=0.05)  # not the identity
    calls = []
    h = m.register_forward_hook(lambda *_: calls.append(1))
    got = FT.evaluate_model(m, val)
    h.remove()
    assert len(calls) == 2  # synthetic, and the realistic crops once (at most 16 crops a batch at smoke)
    for d in val:
        ref = evaluate_pairs(m, val[d]["rainy"], val[d]["clean"], "cpu", batch=16)
        assert got[d]["psnr_y"] == pytest.approx(float(ref["psnr_y"].mean()), abs=1e-5)


def test_optional_rows_run_only_where_the_preset_names_them():
    assert "ttl-target-ms" in {r.name for r in FT.recipes(resolve_config("default"))}
    off = resolve_config("default", {"f_optional_rows": []})
    assert "ttl-target-ms" not in {r.name for r in FT.recipes(off)}
    with pytest.raises(ConfigError, match="optional rows"):
        FT.recipes(resolve_config("default", {"f_optional_rows": ["no-such-row"]}))
