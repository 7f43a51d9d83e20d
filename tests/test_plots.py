import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from ttl import plots  # noqa: E402


def test_an_estimate_outside_its_bootstrap_interval_still_plots(tmp_path):
    """A bootstrap interval of a distance can lie above its point estimate (the refitted `light` preset's W1 did, and
    notebook 01 stopped on matplotlib's negative error bar); the bar is clipped at the estimate instead."""
    rows = [{"preset": "light", "statistic": s, "recipe": r, "distance": d, "low": lo, "high": hi,
             "target": "rain13k_sample"}
            for s in ("coherence", "streak_width")
            for r, d, lo, hi in (("hand-set", 1.0, 0.8, 1.2), ("calibrated", 0.05, 0.07, 0.3))]
    plots.plot_calibration(pd.DataFrame(rows), tmp_path / "calibration.png")
    assert (tmp_path / "calibration.png").stat().st_size > 1000
    below, above = plots._bars([0.05, 1.0], [0.07, 0.8], [0.3, 0.9])
    assert [round(v, 6) for v in below] == [0.0, 0.2] and [round(v, 6) for v in above] == [0.25, 0.0]
