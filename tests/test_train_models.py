import torch
import pytest

from ttl.datasets import PairedRainDataset, SceneBank
from ttl.models import UNet, count_flops, count_params
from ttl.rain import SyntheticRain
from ttl.engine import lr_factor
from ttl.train import evaluate_pairs, fit_restorer


def test_unet_any_size_and_counts():
    m = UNet(width=4, depth=2)
    for h, w in ((1, 1), (7, 13), (33, 20)):
        assert m(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)
    assert count_params(m) > 0
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1))
    assert count_flops(conv_only, 16) == 2 * 8 * 16 * 16 * 3 * 9


def test_unknown_loss_is_refused():
    import pytest

    with pytest.raises(ValueError, match="valid: mse, l1, charbonnier"):
        fit_restorer(UNet(4, 1), [], steps=1, loss="ssim", progress=False)


def test_cosine_schedule():
    assert lr_factor(0, 100, warmup=10) == 0.1
    assert lr_factor(10, 100, warmup=10) == 1.0
    assert abs(lr_factor(100, 100, warmup=10) - 0.02) < 1e-9


def _train(seed):
    bank = SceneBank("procedural", "train", 32, n=32, seed=0)
    ds = PairedRainDataset(bank, SyntheticRain("heavy"), seed=0)
    torch.manual_seed(seed)
    m = UNet(width=8, depth=2)
    log = fit_restorer(m, ds, steps=120, batch=4, lr=3e-3, device="cpu", seed=seed, progress=False)
    return m, log, ds


def test_training_learns_and_is_reproducible():
    m1, log1, ds = _train(0)
    m2, log2, _ = _train(0)
    assert log1["loss"] == log2["loss"]  # same seed, same numbers on CPU
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    batch = ds.__getitems__(list(range(16)))
    rainy = torch.stack([b["rainy"] for b in batch])
    clean = torch.stack([b["clean"] for b in batch])
    before = evaluate_pairs(None, rainy, clean, "cpu")
    after = evaluate_pairs(m1, rainy, clean, "cpu")
    assert set(after) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
    assert after["psnr_y"].mean() > before["psnr_y"].mean() + 1.0  # it removes rain, not only copies the input


def test_method_networks_any_size_features_and_identity_start():
    import pytest

    from ttl.models import Adapters, RecognitionNet, RestorationNet, build_model

    t1, t2, st = RecognitionNet(8, depth=3), RestorationNet(8, depth=3), RestorationNet(4, depth=3)
    for h, w in ((1, 1), (7, 13), (33, 20)):
        x = torch.rand(2, 3, h, w)
        assert torch.equal(t2(x), x)  # zero-initialised residual head: the identity before training
        assert st(x).shape == x.shape
    x = torch.rand(2, 3, 32, 48)
    f1, f2, fs = t1.features(x), t2.features(x), st.features(x)
    assert f1["logit"].shape == (2,)
    assert [f.shape[1] for f in f2["enc"]] == [8, 16, 32, 64] and [f.shape[1] for f in fs["enc"]] == [4, 8, 16, 32]
    assert [f.shape[-2:] for f in fs["dec"]] == [f.shape[-2:] for f in f2["dec"]]
    mapped = Adapters(st.encoder.channels, t1.encoder.channels)(fs["enc"])
    assert [m.shape for m in mapped] == [f.shape for f in f1["enc"]]
    with pytest.raises(ValueError, match="cannot match"):
        Adapters([4, 8], [8, 16, 32])
    again = build_model(st.spec)
    assert type(again) is RestorationNet and count_params(again) == count_params(st)
    with pytest.raises(ValueError, match="valid: restoration, recognition, unet"):
        build_model({"kind": "transformer"})


def test_student_is_at_most_a_third_of_the_teachers():
    from ttl.models import RecognitionNet, RestorationNet

    for w in (8, 16, 32):
        teachers = count_params(RecognitionNet(w)) + count_params(RestorationNet(w))
        assert count_params(RestorationNet(w // 2)) <= teachers / 3


def test_the_context_path_starts_as_the_identity_and_sees_the_whole_image():
    from ttl.models import RestorationNet, build_model

    torch.manual_seed(0)
    plain, ctx = RestorationNet(width=4, depth=2), RestorationNet(width=4, depth=2, context=True)
    ctx.load_state_dict({**plain.state_dict(), **{k: v for k, v in ctx.state_dict().items() if k.startswith("context")}})
    x = torch.rand(2, 3, 96, 88)
    for m in (plain, ctx):  # the head starts at zero: both are the identity
        assert torch.equal(m(x), x)
        torch.nn.init.normal_(m.head.weight)
    torch.nn.init.normal_(ctx.context.mlp[-1].weight)
    y = ctx(x)
    assert y.shape == x.shape
    # a change far away changes the output everywhere (whole-image statistics); beyond its receptive field, the
    # plain network's output does not move
    x2 = x.clone()
    x2[:, :, :8, :8] = 1.0
    assert torch.equal(plain(x2)[:, :, -4:, -4:], plain(x)[:, :, -4:, -4:])
    assert not torch.allclose(ctx(x2)[:, :, -4:, -4:], y[:, :, -4:, -4:])
    assert ctx.spec["context"] is True and "context" not in plain.spec  # old checkpoints keep loading
    again = build_model(ctx.spec)
    again.load_state_dict(ctx.state_dict())
    assert torch.equal(again(x), y)


def test_load_model_refuses_bad_files_naming_them(tmp_path):
    import json

    from ttl.engine import CheckpointError
    from ttl.models import RestorationNet, load_model, save_model

    good = save_model(tmp_path / "good.pt", RestorationNet(width=4, depth=2))
    state = torch.load(good, weights_only=True)
    (tmp_path / "empty.pt").write_bytes(b"")
    cases = {"empty.pt": "empty or truncated", "int.pt": 5, "tensor.pt": torch.zeros(2),
             "kind.pt": {**state, "spec": json.dumps({"kind": "nosuch"})},
             "arg.pt": {**state, "spec": json.dumps({**json.loads(state["spec"]), "bogus": 1})},
             "json.pt": {**state, "spec": "{not json"}, "specint.pt": {**state, "spec": 5},
             "missing.pt": {**state, "model": {k: v for k, v in state["model"].items() if "stem" not in k}}}
    for name, payload in cases.items():
        if not isinstance(payload, str):
            torch.save(payload, tmp_path / name)
        with pytest.raises(CheckpointError, match=f"{name}: .*(ttl|truncated)"):
            load_model(tmp_path / name)
    assert load_model(good)[0].spec == json.loads(state["spec"])
