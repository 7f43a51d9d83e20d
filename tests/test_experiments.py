import numpy as np

from conftest import write_png
from ttl.config import resolve_config
from ttl.experiments import synthetic_to_real_gap
from ttl.rain import SyntheticRain
from ttl.scenes import dead_leaves
from ttl.utils import generator


def _tiny_cfg():
    return resolve_config("smoke", {"c2_steps": 3, "c2_n_test": 2, "c2_test_size": 48, "bootstrap": 20})


def _check(res, n=2):
    assert set(res["summary"]) == {f"{w}/{d}" for w in ("input", "model")
                                   for d in ("synthetic", "realistic", "realistic_clean")}
    for v in res["summary"].values():
        assert np.isfinite(v["psnr_y"]["mean"]) and v["psnr_y"]["low"] <= v["psnr_y"]["high"]
    assert len(res["per_image"]["model/realistic"]["psnr_y"]) == n
    # the same rainy inputs, scored against the streak-free target and against the clean scene
    assert res["per_image"]["input/realistic"]["psnr_y"] != res["per_image"]["input/realistic_clean"]["psnr_y"]
    assert res["drop_synthetic_minus_realistic"]["psnr_y"]["n"] == res["gain_over_input_drop"]["psnr_y"]["n"] == n


def test_gap_experiment_on_procedural_scenes():
    res = synthetic_to_real_gap(_tiny_cfg(), seed=0, device="cpu", progress=False)
    _check(res)
    assert res["train_manifest"]["source"] == "procedural" and res["test"].startswith("bundled")


def test_gap_experiment_on_photographs(tmp_path):
    from conftest import rand_img

    for i in range(20):
        write_png(tmp_path / f"scene_{i:02d}.png", rand_img(60, 80, seed=i))
    res = synthetic_to_real_gap(_tiny_cfg(), seed=0, device="cpu", clean_dir=tmp_path, progress=False)
    _check(res, n=2)  # the test split of 20 files
    assert res["train_manifest"]["source"] == "clean_dir" and res["train_manifest"]["scenes"] == 16


def test_gap_experiment_on_a_public_layout_folder(tmp_path):
    clean, _ = dead_leaves(12, 48, seed=5)
    rainy = SyntheticRain("light")(clean, generator(0)).rainy
    for i in range(12):
        write_png(tmp_path / "input" / f"{i}.png", (rainy[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        write_png(tmp_path / "target" / f"{i}.png", (clean[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    res = synthetic_to_real_gap(_tiny_cfg(), seed=0, device="cpu", synthetic_dir=tmp_path, progress=False)
    _check(res)
    assert res["train_manifest"]["layout"] == "rain13k" and res["train_manifest"]["source"] == "synthetic_dir"
