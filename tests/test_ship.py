"""The shipped deraining model (``make weights``): its data, its training (resumable), its record, and ``ttl derain``
using it when no checkpoint is given."""
import json

import numpy as np
import pytest
import torch
from conftest import rand_img, write_png

from ttl import ship
from ttl.cli import main
from ttl.models import count_params, load_model


def _pairs(folder, n, seed, rain=30):
    for i in range(n):
        clean = rand_img(64, 72, seed=seed + i)
        rainy = np.clip(clean.astype(int) + rain, 0, 255).astype(np.uint8)
        write_png(folder / "norain" / f"norain-{i + 1}.png", clean)
        write_png(folder / "rain" / f"norain-{i + 1}.png", rainy)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for i in range(20):
        write_png(root / "clean_scenes" / f"a_{i:02d}.png", rand_img(70, 90, seed=i))
    _pairs(root / "paired_public" / "set_train", 4, 100)
    _pairs(root / "paired_public" / "set_test", 3, 200)
    for i in range(8):  # a folder of two roles (ttl.layouts.SHARED_PUBLIC), in the Rain13K layout
        clean = rand_img(64, 72, seed=400 + i)
        write_png(root / "paired_public" / "rain13k_sample" / "target" / f"{i}.png", clean)
        write_png(root / "paired_public" / "rain13k_sample" / "input" / f"{i}.png",
                  np.clip(clean.astype(int) + 20, 0, 255).astype(np.uint8))
    (root / "paired_public" / "notes").mkdir()  # a folder in no known layout is skipped
    for i in range(12):
        write_png(root / "real_rainy" / f"{i:03d}.png", rand_img(80, 96, seed=300 + i))
    return root


TINY = {"width": 4, "depth": 2, "steps": 6, "batch": 2, "patch": 32, "photo_size": 48, "renders": 2,
        "public_share": 0.1}


def test_public_folders_ending_in_train_train_and_the_others_only_score(data):
    from ttl.layouts import public_role

    train, test = ship.public_split(data / "paired_public")
    assert [p.name for p in train] == ["rain13k_sample", "set_train"]
    assert [p.name for p in test] == ["rain13k_sample", "set_test"]
    pairs = ship.training_pairs({**ship.RECIPE, **TINY}, data / "clean_scenes", train)
    fit = sorted(f"{i}.png" for i in range(8) if public_role(f"{i}.png") == "fit")
    assert 0 < len(fit) < 8  # both roles are represented
    # 16 training photographs x 2 renders; each public folder repeated to about 10 % of the items
    reps = ship.public_repeats(32, {"rain13k_sample": len(fit), "set_train": 4}, 0.1)
    assert reps == {"rain13k_sample": round(0.1 * 40 / len(fit)), "set_train": 1}
    assert len(pairs) == 32 + len(fit) * reps["rain13k_sample"] + 4
    assert not any("set_test" in s for s in pairs.scenes)
    trained = {s.split("/", 1)[1] for s in pairs.scenes if s.startswith("rain13k_sample/")}
    assert trained == {f.removesuffix(".png") for f in fit}  # the "test" part never trains
    assert [f["file"] for f in pairs.manifest()["rain13k_sample"]["files"]] == fit
    with pytest.raises(FileNotFoundError, match="no training data"):
        ship.training_pairs(ship.RECIPE, None, [])


def test_prenet_architecture_has_its_published_size():
    net = ship.PReNetArch()
    assert abs(count_params(net) - 0.17e6) < 0.005e6
    x = torch.rand(1, 3, 20, 24)
    assert net(x).shape == x.shape


def test_public_repeats_give_each_folder_its_share():
    reps = ship.public_repeats(1390, {"a": 24, "b": 18}, 0.1)
    total = 1390 + sum(reps[k] * n for k, n in {"a": 24, "b": 18}.items())
    assert all(abs(reps[k] * n / total - 0.1) < 0.01 for k, n in {"a": 24, "b": 18}.items())
    assert ship.public_repeats(0, {"a": 3}, 0.1) == {"a": 1}
    with pytest.raises(ValueError, match="smaller share"):
        ship.public_repeats(100, {"a": 3, "b": 3}, 0.5)


def test_train_write_resume_and_score(data, tmp_path):
    from ttl.layouts import public_role

    out = tmp_path / "derain"
    rec = ship.train_derainer(out, data / "clean_scenes", data / "paired_public", data / "real_rainy", TINY,
                              device="cpu", progress=False, latency_size=64, repeats=1, figures_dir=tmp_path / "fig",
                              bootstrap=50)
    model, meta = load_model(out / "derain.pt")
    assert model.spec["context"] and meta["recipe"]["steps"] == 6
    saved = json.loads((out / "derain.json").read_text())
    assert saved["public_test_sets"] == ["rain13k_sample", "set_test"] and saved["training"]["steps"] == 6
    rows = {(r["set"], r["model"]) for r in saved["public"]["by_rain_amount"]}
    assert rows == {(s, m) for s in ("rain13k_sample", "set_test") for m in ("input", "derain")}
    scored = sum(r["n"] for r in saved["public"]["by_rain_amount"] if r["model"] == "input"
                 and r["set"] == "rain13k_sample" and r["rain"] != "all")
    assert scored == sum(public_role(f"{i}.png") == "test" for i in range(8))  # its "fit" part is never scored
    assert saved["speed"]["speedup_vs_prenet"] > 0 and (tmp_path / "fig" / "real_before_after.png").is_file()
    sp = saved["speed"]  # whole image (the published PReNet time's protocol) and tiled (ttl derain's default)
    assert sp["ours_s_per_mp"] > 0 and sp["ours_tiled_s_per_mp"] > 0 and sp["tile"] == ship.TILE
    assert saved["figure"]["photograph"].endswith(".png")
    # started again, a finished run is resumed, not retrained: same weights
    again = ship.train_derainer(out, data / "clean_scenes", data / "paired_public", None, TINY, device="cpu",
                                progress=False, latency_size=64, repeats=1, bootstrap=50)
    assert again["training"]["time_s"] == rec["training"]["time_s"]
    same, _ = load_model(out / "derain.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))


def test_ttl_weights_cli_and_derain_uses_the_shipped_model_by_default(data, tmp_path, monkeypatch, capsys):
    import ttl.inference as I

    weights = tmp_path / "weights"
    args = ["weights", "--data-dir", str(data), "--out-dir", str(weights / "derain"), "--figures-dir",
            str(tmp_path / "fig"), "--device", "cpu", "--latency-size", "64", "--repeats", "1"]
    assert main(args + [f"-p{k}={v}" for k, v in TINY.items()] + ["-pbogus=1"]) == 2
    assert "unknown recipe settings ['bogus']" in capsys.readouterr().err
    assert main(args + [f"-p{k}={v}" for k, v in TINY.items()]) == 0
    assert "derain.pt" in capsys.readouterr().out
    monkeypatch.setattr(I, "WEIGHTS_DIR", weights)
    assert I.resolve_checkpoint(None) == weights / "derain" / "derain.pt"
    src = data / "real_rainy" / "000.png"
    assert main(["derain", str(src), str(tmp_path / "out.png"), "--device", "cpu"]) == 0
    assert f"with {weights / 'derain' / 'derain.pt'}" in capsys.readouterr().out
    # a run of another recipe is not resumed silently
    assert main(args + [f"-p{k}={v}" for k, v in {**TINY, "steps": 7}.items()]) == 2
    assert "--fresh" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no shipped model 'sup-full'.*run `make study`"):
        I.resolve_checkpoint("sup-full")
