"""Distillation: frozen teachers, adapters that fit, losses that fall, a student a third of the teachers or less."""
import pytest
import torch

from ttl.datasets import RealDomainUnlabeled
from ttl.distill import Distiller, distillation_losses, linear_probe, run_distillation
from ttl.engine import TrainConfig, train
from ttl.models import RecognitionNet, RestorationNet, count_params, save_model


def _distiller(use_t1=True, use_t2=True):
    torch.manual_seed(0)
    return Distiller(RestorationNet(4, 2), RecognitionNet(8, 2), RestorationNet(8, 2), use_t1, use_t2)


def test_teachers_are_frozen_and_not_part_of_the_student_state():
    d = _distiller()
    trainable = {n for n, p in d.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("student.", "to_t1.", "to_t2_enc.", "to_t2_dec.")) for n in trainable)
    assert all(not p.requires_grad for t in d.teachers for p in t.parameters())
    assert not any(k.startswith("teachers") for k in d.state_dict())


def test_losses_and_ablations():
    x = torch.rand(2, 3, 32, 32)
    assert set(distillation_losses(_distiller(), x)) == {"t1_enc", "t2_enc", "t2_dec", "t2_out", "total"}
    assert set(distillation_losses(_distiller(use_t2=False), x)) == {"t1_enc", "total"}
    assert set(distillation_losses(_distiller(use_t1=False), x)) == {"t2_enc", "t2_dec", "t2_out", "total"}


def test_distillation_reduces_the_matching_loss():
    d = _distiller()
    data = RealDomainUnlabeled(size=32, n=16, seed=0)
    x = torch.stack([it["rainy"] for it in data.__getitems__(list(range(8)))])
    before = float(distillation_losses(d, x)["total"])
    train(d, data, lambda m, b: m(b["rainy"])["total"], TrainConfig(steps=30, batch=4, lr=3e-3, progress=False,
                                                                      device="cpu"))
    assert float(distillation_losses(d, x)["total"]) < 0.7 * before
    t1, t2 = d.teachers
    assert count_params(d.student) <= (count_params(t1) + count_params(t2)) / 3


def test_linear_probe_finds_a_linearly_separable_signal():
    enc = RecognitionNet(4, 1)
    imgs = torch.rand(40, 3, 16, 16)
    labels = torch.tensor([0.0, 1.0] * 20)
    imgs[labels == 1] += 0.5  # brighter class: visible in pooled features
    r = linear_probe(enc, {"image": imgs[:20], "label": labels[:20]}, {"image": imgs[20:], "label": labels[20:]})
    assert r["accuracy"] >= 0.9 and len(r["per_item_correct"]) == 20


def test_run_distillation_needs_the_teachers(tmp_path):
    from ttl.config import resolve_config

    cfg = resolve_config("smoke")
    with pytest.raises(FileNotFoundError, match="run notebook 02 first"):
        run_distillation(cfg, 0, "cpu", tmp_path / "none", tmp_path / "run", progress=False)
    save_model(tmp_path / "t" / "t1.pt", RecognitionNet(cfg["t_width"], cfg["t_depth"]))
    save_model(tmp_path / "t" / "t2.pt", RestorationNet(cfg["t_width"], cfg["t_depth"]))
    out = run_distillation(cfg, 0, "cpu", tmp_path / "t", tmp_path / "run", progress=False)
    assert set(out["held_out_losses"]) >= {"t1_enc", "t2_out", "total"}
    assert 0 <= out["t1_task"]["student_probe"]["accuracy"] <= 1
