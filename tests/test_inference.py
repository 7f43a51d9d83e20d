"""ttl derain / ttl evaluate: tiled inference, folders of odd files, never overwriting inputs, scoring."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from pathlib import Path

from conftest import ROOT, rand_img, write_png
from ttl.cli import main
from ttl.inference import derain_image, derain_paths, evaluate_folders
from ttl.io import read_image, save_image
from ttl.metrics import image_metrics
from ttl.models import RestorationNet, save_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # many small tile calls: with 2 intra-op threads on a busy machine each call waits on the other thread
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_net(depth: int = 2, width: int = 4, context: bool = False) -> RestorationNet:
    """A tiny restoration net whose (random, non-zero) head makes the output differ from the input."""
    torch.manual_seed(0)
    m = RestorationNet(width=width, depth=depth, context=context)
    torch.nn.init.normal_(m.head.weight, std=0.1)
    torch.nn.init.normal_(m.head.bias, std=0.01)
    if context:
        torch.nn.init.normal_(m.context.mlp[-1].weight, std=0.1)
    return m.eval()


@pytest.fixture
def ckpt(tmp_path):
    return save_model(tmp_path / "model" / "net.pt", tiny_net())


def test_huge_image_runs_in_bounded_memory():
    # a fresh process, so that ru_maxrss (the peak) measures this call alone; untiled, it grows by ~2 GB
    code = textwrap.dedent("""
        import json, resource, time, torch
        from test_inference import tiny_net
        from ttl.inference import derain_image
        torch.set_num_threads(1)  # after conftest's choice
        m, img = tiny_net(depth=1, width=2), torch.rand(3, 3000, 4000)
        derain_image(m, img[:, :64, :64], device="cpu")
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        out = derain_image(m, img, device="cpu")  # default tile 512, overlap 128
        dt = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ok = out.shape == img.shape and 0 <= float(out.min()) and float(out.max()) <= 1
        print(json.dumps({"growth_mb": (r1 - r0) / 1024, "seconds": dt, "ok": ok}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                       cwd=ROOT / "tests", timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"4000x3000, tile 512, overlap 128: {res['seconds']:.1f} s, peak RSS growth {res['growth_mb']:.0f} MB")
    assert res["ok"] and res["growth_mb"] < 1024  # the output itself is 144 MB


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (33, 2000), (2, 50)])
@pytest.mark.parametrize("tile", [0, 32, 512])
@pytest.mark.parametrize("context", [False, True])
def test_odd_sizes_keep_their_size(size, tile, context):
    img = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))
    out = derain_image(tiny_net(depth=3, context=context), img, tile=tile, overlap=8, device="cpu")
    assert torch.isfinite(out).all()  # a 1x1 bottleneck has no spread, not a NaN one
    assert out.shape == img.shape and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    if min(size) > 1:
        assert (out - img).abs().max() > 0.01  # the net does something


@pytest.mark.parametrize("depth", [2, 3])
def test_tiled_matches_untiled(depth):
    # Tile origins lie on the network's multiple, so the only difference is the zero padding at a tile's inner
    # borders; its effect decays to < 1/255 within ~3 px for these nets, and the blending weight is 0 over the
    # outer quarter of the overlap (4 px here), so the tiled result agrees with the whole-image one.
    m = tiny_net(depth)
    img = torch.rand(3, 100, 130, generator=torch.Generator().manual_seed(1))
    whole = derain_image(m, img, tile=0, device="cpu")
    with torch.no_grad():
        assert torch.allclose(whole, m(img[None])[0].clamp(0, 1), atol=1e-6)
    diff = (derain_image(m, img, tile=32, overlap=16, device="cpu") - whole).abs().max().item()
    print(f"depth {depth}: tiled (32/16) vs untiled max |diff| = {diff * 255:.3f}/255")
    assert diff < 1 / 255
    assert (derain_image(m, img, tile=512, device="cpu") - whole).abs().max() == 0  # one tile


def test_grayscale_rgba_and_16bit_inputs(tmp_path, ckpt):
    src = tmp_path / "in"
    write_png(src / "gray.png", rand_img(20, 24)[..., 0])
    write_png(src / "rgba.png", np.dstack([rand_img(20, 24), np.full((20, 24), 128, np.uint8)]))
    g16 = (np.arange(20 * 24).reshape(20, 24) * 97 % 65536).astype(np.uint16)
    Image.fromarray(g16).save(src / "g16.png")
    write_png(src / "photo.jpg", rand_img(20, 24))  # -> photo.png
    rep = derain_paths(src, tmp_path / "out", ckpt, device="cpu", progress=False)
    assert rep.all_ok and len(rep.ok) == 4
    net = tiny_net()
    for name in ("gray", "rgba", "g16", "photo"):
        out = tmp_path / "out" / f"{name}.png"
        exp = derain_image(net, read_image(next(src.glob(f"{name}.*"))), device="cpu")
        assert (read_image(out) - exp).abs().max() <= 1 / 255
    assert (tmp_path / "out" / "g16.png").read_bytes()[24] == 16  # 16-bit in, 16-bit PNG out
    assert (tmp_path / "out" / "gray.png").read_bytes()[24] == 8


def test_folder_with_corrupt_file_and_subfolder(tmp_path, ckpt, capsys):
    src = tmp_path / "photos"
    write_png(src / "a.png", rand_img())
    write_png(src / "sub" / "deeper" / "b.png", rand_img(seed=1))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    (src / "sub" / "fake.png").write_text("a text file named like an image")
    (src / "notes.txt").write_text("not an image, skipped")
    code = main(["derain", str(src), str(tmp_path / "out"), "--checkpoint", str(ckpt), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "sub" / "deeper" / "b.png").is_file()
    assert not (tmp_path / "out" / "broken.png").exists()
    assert "broken.jpg: corrupt or truncated image data" in err and "fake.png: not a readable image" in err
    assert "remove it from the folder" in err and "2 failed (errors above)" in err
    assert read_image(tmp_path / "out" / "a.png").shape == (3, 40, 48)


def test_never_overwrites_an_input(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    a = write_png(src / "a.png", rand_img())
    before = a.read_bytes()
    for inp, out in ((src, src), (a, a)):  # the same folder (a.png -> a.png), the same file
        assert main(["derain", str(inp), str(out), "--checkpoint", str(ckpt)]) == 2
        assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="refusing to overwrite"):
        derain_paths(a, src / ".." / "in" / "a.png", ckpt, progress=False)
    assert a.read_bytes() == before and sorted(p.name for p in src.iterdir()) == ["a.png"]
    # a JPEG written next to itself as PNG overwrites nothing: allowed
    j = write_png(tmp_path / "j" / "b.jpg", rand_img())
    assert derain_paths(j.parent, j.parent, ckpt, progress=False).all_ok and (j.parent / "b.png").is_file()
    # two inputs that would land on one output name
    write_png(tmp_path / "j" / "c.jpg", rand_img())
    write_png(tmp_path / "j" / "c.bmp", rand_img())
    write_png(tmp_path / "j" / "d.jpg", rand_img())
    write_png(tmp_path / "j" / "d.bmp", rand_img())
    with pytest.raises(ValueError, match=r"3 output name\(s\) would be written twice: .*b\.png.*c\.png.*d\.png"):
        derain_paths(j.parent, tmp_path / "o2", ckpt, progress=False)  # every clash at once (b.png: the result above), not one per run


def test_single_file_output_forms(tmp_path, ckpt):
    a = write_png(tmp_path / "x.jpg", rand_img())
    assert derain_paths(a, tmp_path / "o" / "y.png", ckpt, progress=False).ok[0][1] == tmp_path / "o" / "y.png"
    assert derain_paths(a, str(tmp_path / "d") + "/", ckpt, progress=False).ok[0][1] == tmp_path / "d" / "x.png"
    with pytest.raises(ValueError, match="PNG"):
        derain_paths(a, tmp_path / "y.jpg", ckpt, progress=False)


def test_python_m_ttl_derain(tmp_path, ckpt):
    a = write_png(tmp_path / "rainy.png", rand_img())
    cmd = [sys.executable, "-m", "ttl", "derain", str(a), str(tmp_path / "clean.png"), "--checkpoint", str(ckpt),
           "--tile", "32", "--overlap", "16"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "derained 1 of 1" in r.stdout and read_image(tmp_path / "clean.png").shape == (3, 40, 48)
    r = subprocess.run([sys.executable, "-m", "ttl", "derain", str(a), str(tmp_path / "c2.png"), "--checkpoint",
                        "no-such-model"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert r.returncode == 2 and "no shipped model 'no-such-model'" in r.stderr and "sup-full" in r.stderr


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file if the checkpoint were unpickled unsafely


def test_checkpoint_with_pickled_object_is_refused(tmp_path, capsys):
    bad = tmp_path / "evil.pt"
    torch.save({"spec": "{}", "model": _Evil(str(tmp_path / "pwned"))}, bad)
    a = write_png(tmp_path / "in" / "a.png", rand_img())
    assert main(["derain", str(a.parent), str(tmp_path / "out"), "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "weights_only=True" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()
    assert main(["derain", str(a), str(tmp_path / "o.png"), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt' does not exist" in capsys.readouterr().err


def test_a_shipped_name_is_not_shadowed_by_a_folder_of_that_name(tmp_path, monkeypatch):
    """From the repository root the package folder `ttl/` exists: `--checkpoint ttl` (and no --checkpoint) must
    still mean the shipped model, while a real file of that name is taken as a path."""
    import ttl.inference as I

    weights = tmp_path / "weights"
    (weights / "default").mkdir(parents=True)
    (weights / "default" / "ttl.pt").write_bytes(b"x")
    monkeypatch.setattr(I, "WEIGHTS_DIR", weights)
    work = tmp_path / "work"
    (work / "ttl").mkdir(parents=True)
    (work / "derain").mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(FileNotFoundError, match="no shipped model 'derain'.*run `make weights`"):
        I.resolve_checkpoint(None)
    (weights / "derain").mkdir()
    (weights / "derain" / "derain.pt").write_bytes(b"z")
    assert I.resolve_checkpoint(None) == I.resolve_checkpoint("derain") == weights / "derain" / "derain.pt"
    assert I.resolve_checkpoint("ttl") == weights / "default" / "ttl.pt"
    with pytest.raises(FileNotFoundError, match="no shipped model 'sup-full'.*found there: ttl"):
        I.resolve_checkpoint("sup-full")
    (work / "mine").write_bytes(b"y")
    assert I.resolve_checkpoint("mine") == Path("mine")


def test_the_shipped_model_derains_a_photograph_with_no_checkpoint_given(tmp_path, capsys):
    """weights/derain/derain.pt (make weights) is what `ttl derain IN OUT` uses; the study's rows stay available by
    name. On a photograph none of them saw, with light and with heavy synthetic rain, the shipped model gains, and it
    does not darken light rain (the defect it was built to fix)."""
    from ttl.inference import DEFAULT_MODEL, SHIPPED, WEIGHTS_DIR
    from ttl.metrics import bias_y
    from ttl.rain import SyntheticRain
    from ttl.scenes import bundled_photos, resize_short_side
    from ttl.utils import generator

    for name in SHIPPED:
        assert (WEIGHTS_DIR / "default" / f"{name}.pt").stat().st_size <= 1_000_000, name
        r = json.loads((WEIGHTS_DIR / "default" / f"{name}.json").read_text())
        assert r["preset"] == "default" and not r["git_revision"].endswith("-dirty")
        assert r["data_manifest_sha256"] and "public" in r["test_metrics"]
    if not (WEIGHTS_DIR / DEFAULT_MODEL / f"{DEFAULT_MODEL}.json").is_file():
        pytest.skip("weights/derain/derain.pt has not been trained in this checkout: run `make weights`")
    rec = json.loads((WEIGHTS_DIR / DEFAULT_MODEL / f"{DEFAULT_MODEL}.json").read_text())
    from ttl.ship import BUDGET, budget_minutes

    assert not rec["git_revision"].endswith("-dirty")
    # the 30-minute budget, on the machine it is defined on (scaled by the PReNet timing the record made on its own)
    assert budget_minutes(rec) <= BUDGET["train_minutes"]
    assert rec["training"]["time_s"] <= 2 * 60 * BUDGET["train_minutes"]
    assert rec["speed"]["speedup_vs_prenet_published"] >= 20
    photo = next(p for p in bundled_photos() if p.name == "chelsea")
    clean = resize_short_side(read_image(photo.path), 256)[None]

    def run(preset: str, *checkpoint: str) -> tuple[float, float]:
        """PSNR-Y gain of `ttl derain`'s output over its input and the output's mean ΔY against the clean photo."""
        src = tmp_path / f"rainy-{preset}.png"
        save_image(SyntheticRain(preset)(clean, generator(0)).rainy[0], src)
        out = tmp_path / f"out-{preset}-{len(checkpoint)}.png"
        assert main(["derain", str(src), str(out), "--device", "cpu", *checkpoint]) == 0
        before, after = (float(image_metrics(read_image(x)[None], clean)["psnr_y"][0]) for x in (src, out))
        return after - before, float(bias_y(read_image(out), clean[0]))

    for preset in ("light", "heavy"):
        gain, dy = run(preset)
        assert gain > 3.0 and dy > -2.0, (preset, gain, dy)
    assert f"with {WEIGHTS_DIR / DEFAULT_MODEL / DEFAULT_MODEL}.pt" in capsys.readouterr().out
    assert run("heavy", "--checkpoint", "sup-full")[0] > 3.0
    assert f"with {WEIGHTS_DIR / 'default' / 'sup-full.pt'}" in capsys.readouterr().out


def _noisy(arr: np.ndarray, seed: int) -> np.ndarray:
    n = np.random.default_rng(seed).integers(-12, 13, arr.shape)
    return np.clip(arr.astype(int) + n, 0, 255).astype(np.uint8)


def test_evaluate_folder_pair(tmp_path, capsys):
    gt1, gt2 = rand_img(32, 36, seed=1), rand_img(32, 36, seed=2)
    write_png(tmp_path / "gt" / "norain-001.png", gt1)
    write_png(tmp_path / "gt" / "norain-002.png", gt2)
    write_png(tmp_path / "res" / "rain-001.png", gt1)  # identical: PSNR inf
    write_png(tmp_path / "res" / "rain-002.png", _noisy(gt2, 0))
    js = tmp_path / "ev.json"
    assert main(["evaluate", str(tmp_path / "res"), str(tmp_path / "gt"), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    for col in ("PSNR-Y (dB)", "SSIM-Y", "PSNR-RGB (dB)", "SSIM-RGB", "rain-001.png", "mean (2 images)", "inf"):
        assert col in out
    data = json.loads(js.read_text())  # strict JSON: no Infinity
    rows = {r["name"]: r for r in data["images"]}
    assert rows["rain-001.png"]["psnr_y"] is None and rows["rain-001.png"]["ssim_y"] == pytest.approx(1.0)
    assert data["mean"]["psnr_y"] is None and data["psnr_inf_is_null"] is True
    ref = image_metrics(read_image(tmp_path / "res" / "rain-002.png")[None],
                        read_image(tmp_path / "gt" / "norain-002.png")[None])
    for k, v in ref.items():
        assert rows["rain-002.png"][k] == pytest.approx(float(v), abs=1e-9)
    res = evaluate_folders(tmp_path / "res", tmp_path / "gt", crop_border=4)
    assert math.isinf(res["images"][0]["psnr_rgb"]) and res["crop_border"] == 4


def test_evaluate_dataset_root_and_errors(tmp_path, capsys):
    root = tmp_path / "Rain100L"
    for i in range(3):
        write_png(root / "input" / f"{i}.png", _noisy(rand_img(24, 24, seed=i), 9))
        write_png(root / "target" / f"{i}.png", rand_img(24, 24, seed=i))
        write_png(tmp_path / "res" / f"{i}.png", _noisy(rand_img(24, 24, seed=i), i))
    res = evaluate_folders(tmp_path / "res", root)
    assert res["layout"] == "rain13k" and res["n"] == 3
    assert all(r["target"].endswith(f"target{os.sep}{r['name']}") for r in res["images"])
    assert res["mean"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in res["images"]]))
    # unmatched names are listed, in both directions
    write_png(tmp_path / "res" / "extra.png", rand_img(24, 24))
    (tmp_path / "res" / "2.png").unlink()
    assert main(["evaluate", str(tmp_path / "res"), str(root), "--json", ""]) == 1
    err = capsys.readouterr().err
    assert "1 outputs have no ground truth: extra.png" in err and "1 ground truths have no output: input/2.png" in err
    # different sizes name both files
    (tmp_path / "res" / "extra.png").unlink()
    write_png(tmp_path / "res" / "2.png", rand_img(20, 24))
    with pytest.raises(ValueError, match=r"2\.png is 24x20 px but its ground truth .*target.2\.png is 24x24"):
        evaluate_folders(tmp_path / "res", root)
    assert main(["evaluate", str(tmp_path / "nope"), str(root)]) == 2


def test_evaluate_refuses_what_would_score_nothing_and_warns_on_rainy_inputs(tmp_path, capsys):
    root = tmp_path / "Rain100L"
    for i in range(2):
        write_png(root / "input" / f"{i}.png", _noisy(rand_img(24, 24, seed=i), 9))
        write_png(root / "target" / f"{i}.png", rand_img(24, 24, seed=i))
    with pytest.raises(ValueError, match="same folder"):
        evaluate_folders(root / "target", root / "target")
    with pytest.raises(ValueError, match="crop_border must be >= 0"):
        evaluate_folders(root / "input", root / "target", crop_border=-3)
    assert evaluate_folders(root / "input", root)["outputs_are_rainy_inputs"] == 2
    assert main(["evaluate", str(root / "input"), str(root), "--json", ""]) == 0
    assert "2 of the 2 outputs are the dataset's own rainy files" in capsys.readouterr().err
    assert main(["evaluate", str(root / "input"), str(root / "target"), "--crop-border", "-1"]) == 2
    (tmp_path / "folder").mkdir()
    assert main(["evaluate", str(root / "input"), str(root / "target"), "--json", str(tmp_path / "folder")]) == 2
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(root / "input"), str(root / "target"), "--json", str(tmp_path / "file" / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "is a folder; name a file" in err and "could not write" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Rain100L", "file", "folder"]


def test_an_output_that_is_an_input_under_another_name_is_refused(tmp_path, ckpt, capsys):
    # a hard link stands in for PHOTO.png naming PHOTO.PNG on a case-insensitive disk (macOS, Windows)
    a = write_png(tmp_path / "in" / "PHOTO.PNG", rand_img())
    os.link(a, tmp_path / "in" / "PHOTO.png")
    before = a.read_bytes()
    with pytest.raises(ValueError, match="refusing to overwrite"):
        derain_paths(a, tmp_path / "in" / "PHOTO.png", ckpt, progress=False)
    assert a.read_bytes() == before


def test_images_above_the_pixel_limit_fail_alone(tmp_path, ckpt, capsys):
    write_png(tmp_path / "in" / "small.png", rand_img(20, 20))
    write_png(tmp_path / "in" / "large.png", rand_img(40, 48))
    assert main(["derain", str(tmp_path / "in"), str(tmp_path / "out"), "--checkpoint", str(ckpt),
                 "--max-megapixels", "0.001"]) == 1
    err = capsys.readouterr().err
    assert "large.png: image is 48x40" in err and "above the limit" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.png"]
