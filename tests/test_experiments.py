import numpy as np

from conftest import write_png
from ttl.config import resolve_config
from ttl.experiments import synthetic_to_real_gap
from ttl.rain import SyntheticRain
from ttl.scenes import dead_leaves
from ttl.utils import generator


def _tiny_cfg():
    return resolve_config("smoke", {"c2_steps": 3, "c2_n_test": 2, "c2_test_size": 48, "bootstrap": 20})


def _check(res):
    assert set(res["summary"]) == {"input/synthetic", "model/synthetic", "input/realistic", "model/realistic"}
    for v in res["summary"].values():
        assert np.isfinite(v["psnr_y"]["mean"]) and v["psnr_y"]["low"] <= v["psnr_y"]["high"]
    assert len(res["per_image"]["model/realistic"]["psnr_y"]) == 2
    assert res["drop_synthetic_minus_realistic"]["psnr_y"]["n"] == 2


def test_gap_experiment_on_procedural_scenes():
    res = synthetic_to_real_gap(_tiny_cfg(), seed=0, device="cpu", progress=False)
    _check(res)
    assert res["train_manifest"]["source"] == "procedural"


def test_gap_experiment_on_a_public_layout_folder(tmp_path):
    clean, _ = dead_leaves(12, 48, seed=5)
    rainy = SyntheticRain("light")(clean, generator(0)).rainy
    for i in range(12):
        write_png(tmp_path / "input" / f"{i}.png", (rainy[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        write_png(tmp_path / "target" / f"{i}.png", (clean[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    res = synthetic_to_real_gap(_tiny_cfg(), seed=0, device="cpu", synthetic_dir=tmp_path, progress=False)
    _check(res)
    assert res["train_manifest"]["layout"] == "rain13k"
