"""The cases both scripts of this folder score (train splits only): realistic renders of the first ``n`` train
photographs of clean_dir with both streak-free targets, the Rain13K sample's fit part, every nuisance of
ttl.realrain.NUISANCES and each given model on the first ``n`` train photographs of real_rainy (short side 384)."""
from pathlib import Path

from ttl import realrain as R
from ttl.finetune import _render_photos
from ttl.inference import derain_image
from ttl.io import list_images, read_image
from ttl.layouts import PairedFolderDataset
from ttl.models import load_model
from ttl.scenes import resize_short_side, split_files

ROOT = Path(__file__).resolve().parents[3]


def load_cases(data: Path, n: int, models: dict[str, Path], noise_off: bool = True, tag: str = "") -> dict:
    """``{case: [(input, output), ...]}``; ``tag`` is appended to the names of the cases on real photographs."""
    clean_train = split_files(list_images(data / "clean_scenes", recursive=True))["train"][:n]
    renders = _render_photos(clean_train, 320, 0, 23, realistic=True, noisy_target=True)
    real = [resize_short_side(read_image(p, min_size=16)[None], 384)[0]
            for p in split_files(list_images(data / "real_rainy", recursive=True))["train"][:n]]
    pub = PairedFolderDataset(data / "paired_public" / "rain13k_sample", role="fit")
    cases = {"target, noise kept (realistic renders)": list(zip(renders["rainy"], renders["streak_free_noisy"]))}
    if noise_off:
        cases["target, noise off (realistic renders)"] = list(zip(renders["rainy"], renders["streak_free"]))
    cases["target (rain13k fit part)"] = [(it["rainy"], it["clean"]) for it in (pub[i] for i in range(len(pub)))]
    for name, f in R.NUISANCES.items():
        cases[name + tag] = [(x, f(x.float().clamp(0, 1)).clamp(0, 1)) for x in real]
    for name, path in models.items():
        if path.is_file():
            model = load_model(path)[0].eval()
            cases[name + tag] = [(x, derain_image(model, x, device="cpu")) for x in real]
    return cases
