"""The held-out data (:mod:`ttl.heldout`): validation crops that share their scenes and split into selection and
report crops, and real test photographs that never come from the train split."""
import pytest
import torch

from conftest import rand_img, write_png
from ttl import heldout as H
from ttl.config import resolve_config
from ttl.io import list_images
from ttl.scenes import split_files


@pytest.fixture(scope="module")
def cfg():
    return resolve_config("smoke", f_steps=4)


def test_validation_sets_share_scenes_and_the_realistic_set_differs(cfg):
    val = H.validation_sets(cfg, 0)
    assert val["synthetic"]["rainy"].shape == val["realistic"]["rainy"].shape
    assert not torch.equal(val["synthetic"]["rainy"], val["realistic"]["rainy"])


def test_selection_and_reported_validation_crops_are_disjoint(cfg):
    """No reported validation number is scored on the crops that chose the checkpoint or the learning rate."""
    val = H.validation_sets(cfg, 0)
    select, report = H.split_validation(val, 3)
    n = len(val["synthetic"]["rainy"])
    k = len(select["synthetic"]["rainy"])
    assert 1 <= k <= n // 2 and len(report["synthetic"]["rainy"]) == n - k
    for d in val:
        assert torch.equal(torch.cat([select[d]["rainy"], report[d]["rainy"]]), val[d]["rainy"])
        assert torch.equal(torch.cat([select[d]["clean"], report[d]["clean"]]), val[d]["clean"])
    one = {d: {kk: vv[:1] for kk, vv in v.items()} for d, v in val.items()}
    with pytest.raises(ValueError, match="f_val >= 2"):
        H.split_validation(one, 3)


def test_real_test_images_never_include_the_train_split_and_skip_tiny_ones(tmp_path):
    for k in range(20):
        write_png(tmp_path / f"img{k:02d}.png", rand_img(200, 260, seed=k))
    parts = split_files(list_images(tmp_path))
    small = parts["val"][0]
    write_png(small, rand_img(100, 120))
    imgs, names, manifest = H.real_test_images(tmp_path, short_side=0)
    held = sorted(p.name for p in parts["val"] + parts["test"] if p != small)
    assert sorted(names) == held and not set(names) & {p.name for p in parts["train"]}
    assert manifest["skipped_too_small"] == [small.name] and len(imgs) == len(held)
    imgs, _, _ = H.real_test_images(tmp_path, short_side=100)  # never below NIQE's minimum
    assert min(imgs[0].shape[-2:]) == 192


def test_public_sets_score_test_folders_and_skip_training_folders_unless_named(tmp_path):
    for name in ("toy_test", "toy_train"):
        for k in range(2):
            write_png(tmp_path / name / "input" / f"{k}.png", rand_img(seed=k))
            write_png(tmp_path / name / "target" / f"{k}.png", rand_img(seed=k + 10))
    sets = H.public_sets(tmp_path)
    assert set(sets) == {"toy_test"} and len(sets["toy_test"]["rainy"]) == 2  # training pairs are never a test set
    assert set(H.public_sets(tmp_path, only="toy_train")) == {"toy_train"}  # asked for by name (a measurement)
