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
