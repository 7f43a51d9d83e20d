"""The realistic renderer against real rainy photographs it was not calibrated on (skipped without them)."""
from ttl.rain import calibration_digests
from ttl.gap import STATISTICS, gap_distances, load_real, real_split, render_domains, statistics_frame
from ttl.io import list_images
from ttl.stats import c2st


def test_realistic_rain_is_closer_to_unseen_real_photographs(real_dir):
    cal, held = real_split(list_images(real_dir), calibration_digests())
    assert held, "every photograph was used for calibration: nothing is left to test on"
    real = load_real(held, 160, 30)
    doms = render_domains(30, 160, seed=123)
    frames, full = {}, {}
    frames["real"], full["real"] = statistics_frame(real, "real")
    for d in ("synthetic", "realistic"):
        frames[d], full[d] = statistics_frame(doms[d], d)
    dist = gap_distances(frames, full, n_boot=50)
    w = dist[dist["measure"] == "W1/sd"].pivot(index="statistic", columns="domain", values="distance")
    closer = int((w["realistic"] < w["synthetic"]).sum())
    assert closer > len(w) / 2, f"realistic rain closer on only {closer}/{len(w)} statistics:\n{w}"
    x = {d: f[STATISTICS].to_numpy() for d, f in frames.items()}
    syn = c2st(x["synthetic"], x["real"], n_boot=100, permutations=0, seed=0)
    rea = c2st(x["realistic"], x["real"], n_boot=100, permutations=0, seed=0)
    assert rea.auc < syn.auc, (rea, syn)


def test_calibration_never_used_the_held_out_half(real_dir):
    digests = calibration_digests()
    if digests is None:
        import pytest

        pytest.skip("no calibration saved (ttl/calibration.json)")
    cal, held = real_split(list_images(real_dir), digests)
    assert len(cal) > 0 and len(held) > 0
    assert not ({p.name for p in cal} & {p.name for p in held})


def test_calibration_used_the_train_split_only():
    """No photograph that scores a model (val and test splits) shaped the realistic renderer: the committed record's
    calibration files are exactly the train split of the photographs it lists, and it lists the others."""
    import json
    from pathlib import Path

    from ttl.rain import CALIBRATION_FILE
    from ttl.scenes import split_files

    rec = json.loads(CALIBRATION_FILE.read_text())
    cal = {f["file"] for f in rec["calibration_files"]}
    held = {f["file"] for f in rec["held_out_files"]}
    parts = split_files([Path(n) for n in cal | held])
    assert cal == {p.name for p in parts["train"]}, "calibration files outside the train split: run make calibrate"
    assert held == {p.name for p in parts["val"] + parts["test"]} and held
    assert "train split" in rec["procedure"]
