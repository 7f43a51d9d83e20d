"""The score summaries (:mod:`ttl.scores`): per-row scores over draws and images, and paired comparisons whose
intervals carry the draw-to-draw variance and pair minority rows on their common draws."""
import numpy as np

from ttl import scores as S


def _runs(means, n=16, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k, mu in enumerate(means):
        per = {m: (mu + rng.normal(0, 0.1, n)).tolist() for m in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
        out.append({"seed": k, "val": {"synthetic": {"per_image": per}, "realistic": {"per_image": per}}})
    return out


def test_scores_and_paired_comparisons():
    runs = {"ttl": _runs([30.0, 30.2, 30.1]), "sup-minority": _runs([29.0, 29.1, 28.9], seed=1)}
    scores = {n: S.model_scores(r, 200, 0) for n, r in runs.items()}
    s = scores["ttl"]["synthetic"]
    assert abs(s["psnr_y"] - 30.1) < 0.1 and s["psnr_y_ci_images"][0] < s["psnr_y"] < s["psnr_y_ci_images"][1]
    assert s["psnr_y_ci_seeds"][0] < s["psnr_y"] < s["psnr_y_ci_seeds"][1] and len(s["psnr_y_per_seed"]) == 3
    c = S.compare(scores, runs, "ttl", "sup-minority", 200, 0)["realistic"]["psnr_y"]
    assert 0.9 < c["mean_diff"] < 1.3 and c["low"] > 0 and len(c["per_seed_diff"]) == 3
    assert c["interval"] == "draws and images" and c["draws_a"] == c["draws_b"] == 3
    one = S.model_scores(_runs([1.0]), 50, 0)["synthetic"]
    assert all(np.isnan(one["psnr_y_ci_seeds"]))  # one seed: no interval over seeds


def test_draw_level_intervals_carry_the_draw_to_draw_variance():
    """Two rows whose images agree closely but whose draws scatter: the image-only interval is narrow and excludes
    0, the interval over draws and images is wide and covers it (the verdicts use the latter)."""
    runs = {"ttl": _runs([31.0, 29.0, 30.5, 28.6, 31.4]), "sup-minority": _runs([30.0, 29.9, 29.8, 30.2, 29.6], seed=1)}
    scores = {n: S.model_scores(r, 500, 0) for n, r in runs.items()}
    c = S.compare(scores, runs, "ttl", "sup-minority", 500, 0)["synthetic"]["psnr_y"]
    assert c["low_images"] > 0 or c["high_images"] < 0  # images alone: "significant"
    assert c["low"] < 0 < c["high"] and c["high"] - c["low"] > 3 * (c["high_images"] - c["low_images"])


def test_minority_rows_of_one_fraction_are_compared_on_their_common_draws():
    """ttl ran five draws, a control two: draw k of both shares its minority, so the difference uses draws 0 and 1 of
    each, paired; rows of other fractions (all scenes) are compared on every seed, unpaired."""
    runs = {"ttl": _runs([30.0, 30.0, 34.0, 34.0, 34.0]), "syn2real": _runs([29.0, 29.0], seed=1),
            "sup-full": _runs([29.0, 29.0], seed=2)}
    scores = {n: S.model_scores(r, 200, 0) for n, r in runs.items()}
    fractions = {"ttl": 0.01, "syn2real": 0.01, "sup-full": 1.0}
    assert S.shares_draws(fractions, "ttl", "syn2real") and not S.shares_draws(fractions, "ttl", "sup-full")
    c = S.compare(scores, runs, "ttl", "syn2real", 200, 0, fractions)["synthetic"]["psnr_y"]
    assert abs(c["mean_diff"] - 1.0) < 0.1 and c["draws_a"] == c["draws_b"] == 2 and c["draws_paired"]
    u = S.compare(scores, runs, "ttl", "sup-full", 200, 0, fractions)["synthetic"]["psnr_y"]
    assert abs(u["mean_diff"] - 3.4) < 0.1 and u["draws_a"] == 5 and not u["draws_paired"]
    # without the fractions the old rule holds: every seed, unpaired when the seeds differ
    assert abs(S.compare(scores, runs, "ttl", "syn2real", 200, 0)["synthetic"]["psnr_y"]["mean_diff"] - 3.4) < 0.1
