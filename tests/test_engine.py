"""The training engine: atomic checkpoints, resume after a kill, safe loading, DDP on CPU."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from ttl.engine import CheckpointError, TrainConfig, load_checkpoint, save_checkpoint, train

sys.path.insert(0, str(ROOT / "tests"))
import _engine_job as job  # noqa: E402


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_training_reduces_the_loss_and_writes_a_checkpoint(tmp_path):
    model, log = job.run(tmp_path, steps=40)
    assert sum(log["loss"][-5:]) < 0.5 * sum(log["loss"][:5])
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 40 and set(state) >= {"model", "optimizer", "scheduler", "rng", "step", "log"}
    assert json.loads((tmp_path / "log.json").read_text())["step"][-1] == 40
    assert not list(tmp_path.glob(".*tmp"))


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path):
    ref_model, ref_log = job.run(tmp_path / "ref")
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "_engine_job.py"), str(tmp_path / "killed"), "13"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 9, r.stderr  # killed at step 13: the last checkpoint is step 10
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["step"] == 10
    model, log = job.run(tmp_path / "killed")  # the same command again
    assert log["resumed_from"] == 10
    assert log["loss"] == ref_log["loss"]  # same numbers on CPU, the dropout masks included
    for a, b in zip(_params(model), _params(ref_model)):
        assert torch.equal(a, b)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model": {}, "extra": Payload()}, p)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(p)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    p = save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):
        save_checkpoint(p, {"step": 2, "w": lambda: 0})  # cannot be pickled
    assert load_checkpoint(p)["step"] == 1
    assert not list(tmp_path.glob(".*tmp"))  # the partial file is cleaned up


def test_a_checkpoint_of_another_model_is_reported(tmp_path):
    job.run(tmp_path, steps=5)
    other = torch.nn.Linear(5, 2)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train(other, job.Pairs(), job.step_fn, TrainConfig(steps=10, batch=8, progress=False, device="cpu"),
              run_dir=tmp_path)


def test_bad_batch_for_the_dataset():
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(job.make_model(), job.Pairs(), job.step_fn, TrainConfig(steps=2, batch=128, progress=False,
                                                                      device="cpu"))


@pytest.mark.slow
def test_two_process_gloo_ddp_trains_like_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TTL_TEST_DROPOUT": "0"}
    job_file = str(ROOT / "tests" / "_engine_job.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", job_file,
           str(tmp_path / "ddp"), "none"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    # the one-process reference runs under the same conditions (its own process, one thread)
    r = subprocess.run([sys.executable, job_file, str(tmp_path / "single"), "none"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{k}.json").read_text()) for k in (0, 1)]
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    assert ranks[0]["params"] == ranks[1]["params"]  # DDP keeps the replicas identical
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 20
    # each rank takes half of every global batch; DDP averages the two half-batch gradients, which is the
    # full batch's gradient: the same training as one process, up to floating-point summation order
    for a, b in zip(ranks[0]["params"], single["params"]):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    assert ranks[0]["loss"] == pytest.approx(single["loss"], rel=1e-4)


def test_a_fresh_run_removes_a_stale_checkpoint(tmp_path):
    job.run(tmp_path, steps=10)  # an old, finished run
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 10

    def crash(step):
        if step == 2:
            raise KeyboardInterrupt

    cfg = TrainConfig(steps=10, batch=8, ckpt_every=5, progress=False, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train(job.make_model(), job.Pairs(), job.step_fn, cfg, run_dir=tmp_path, resume=False, on_step=crash)
    # killed before its first checkpoint: nothing of the old run is left to be resumed by mistake
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "log.json").exists()


def test_the_fused_optimizer_trains_like_the_plain_one():
    """The fused AdamW kernel is the same update computed in one pass: it ends within rounding of the for-loop
    AdamW, and each is deterministic."""
    runs = {}
    for fused in (True, False, True):
        model = job.make_model(dropout=0.0)
        cfg = TrainConfig(steps=30, batch=8, lr=1e-2, progress=False, device="cpu", amp=False, fused=fused)
        train(model, job.Pairs(), job.step_fn, cfg)
        runs.setdefault(fused, []).append(_params(model))
    for a, b in zip(*runs[True]):
        assert torch.equal(a, b)
    for a, b in zip(runs[True][0], runs[False][0]):
        assert torch.allclose(a, b, atol=1e-5)


def _selection_run(run_dir, scores, resume=False, kill_at=None):
    """The engine job with validation every 2 of 8 steps returning ``scores`` in turn, selecting on them."""
    it = iter(scores)
    seen = {}

    def validate(m):
        v = next(it)
        seen[v] = [p.detach().clone() for p in m.parameters()]
        return {"score": v}

    def on_step(s):
        if kill_at is not None and s == kill_at:
            raise KeyboardInterrupt

    model = job.make_model(dropout=0.0)
    cfg = TrainConfig(steps=8, batch=8, lr=1e-2, val_every=2, ckpt_every=1, progress=False, device="cpu", amp=False,
                      select="score")
    log = train(model, job.Pairs(), job.step_fn, cfg, run_dir=run_dir, validate=validate, resume=resume,
                on_step=on_step)
    return model, log, seen


def test_selection_ends_with_the_best_validation_weights(tmp_path):
    model, log, seen = _selection_run(tmp_path / "a", [1.0, 5.0, 2.0, 0.5])
    assert log["best"] == {"step": 4, "value": 5.0}
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), seen[5.0]))
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), seen[0.5]))
    with pytest.raises(KeyError, match="score"):  # a key validation does not return is an error, not a silent no-op
        train(job.make_model(), job.Pairs(), job.step_fn,
              TrainConfig(steps=2, batch=8, val_every=1, progress=False, device="cpu", amp=False, select="score"),
              validate=lambda m: {"other": 0.0})


def test_a_resumed_run_selects_as_an_uninterrupted_one(tmp_path):
    ref, ref_log, _ = _selection_run(tmp_path / "ref", [1.0, 3.0, 2.0, 0.0])
    with pytest.raises(KeyboardInterrupt):
        _selection_run(tmp_path / "b", [1.0, 3.0, 2.0, 0.0], kill_at=5)  # after the step-4 best, before step 6
    model, log, _ = _selection_run(tmp_path / "b", [2.0, 0.0], resume=True)  # the validations after the kill
    assert log["resumed_from"] == 5 and log["best"] == ref_log["best"] == {"step": 4, "value": 3.0}
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))


def test_a_diverged_validation_is_never_selected(tmp_path):
    model, log, seen = _selection_run(tmp_path / "nan", [float("nan"), 1.0, float("nan"), 0.5])
    assert log["best"] == {"step": 4, "value": 1.0}  # NaN compares false both ways: it must not stick as "best"
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), seen[1.0]))


def test_a_resume_under_other_settings_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _selection_run(tmp_path / "r", [1.0, 3.0, 2.0, 0.0], kill_at=5)
    model = job.make_model(dropout=0.0)
    other = TrainConfig(steps=8, batch=8, lr=5e-3, val_every=2, progress=False, device="cpu", amp=False, select="score")
    with pytest.raises(CheckpointError, match="lr 0.01 -> 0.005"):  # names what changed and what to do
        train(model, job.Pairs(), job.step_fn, other, run_dir=tmp_path / "r", validate=lambda m: {"score": 0.0},
              resume=True)


def test_a_resume_from_other_starting_weights_or_identity_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _selection_run(tmp_path / "r", [1.0, 3.0, 2.0, 0.0], kill_at=5)
    cfg = TrainConfig(steps=8, batch=8, lr=1e-2, val_every=2, progress=False, device="cpu", amp=False, select="score")
    other = job.make_model(dropout=0.0)
    with torch.no_grad():
        other[0].weight.add_(0.1)  # e.g. a pretrained start that was trained again since the kill
    with pytest.raises(CheckpointError, match="other starting weights"):
        train(other, job.Pairs(), job.step_fn, cfg, run_dir=tmp_path / "r", validate=lambda m: {"score": 0.0},
              resume=True)
    cfg.identity = "teachers of another run"
    with pytest.raises(CheckpointError, match="identity '' -> 'teachers of another run'"):
        train(job.make_model(dropout=0.0), job.Pairs(), job.step_fn, cfg, run_dir=tmp_path / "r",
              validate=lambda m: {"score": 0.0}, resume=True)
    # the same start and settings resume (the kill was at step 5)
    cfg.identity = ""
    log = train(job.make_model(dropout=0.0), job.Pairs(), job.step_fn, cfg, run_dir=tmp_path / "r",
                validate=lambda m: {"score": 0.0}, resume=True)
    assert log["resumed_from"] == 5


def test_the_state_digest_tells_weights_apart():
    from ttl.engine import state_digest

    a, b = job.make_model(), job.make_model()
    assert state_digest(a) == state_digest(b) == state_digest(a.state_dict())
    with torch.no_grad():
        b[2].bias[0] += 1e-6
    assert state_digest(a) != state_digest(b)
