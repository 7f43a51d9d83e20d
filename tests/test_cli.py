import subprocess
import sys

from conftest import ROOT


def test_unknown_preset_exits_with_the_valid_names():
    r = subprocess.run([sys.executable, "-m", "ttl", "study", "--preset", "fast"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode != 0 and "valid presets: smoke, default, paper" in r.stderr


def test_help_lists_the_commands():
    r = subprocess.run([sys.executable, "-m", "ttl", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "study" in r.stdout and "calibrate" in r.stdout


def test_benchmark_runs(tmp_path):
    from ttl.bench import benchmark_renderers

    res = benchmark_renderers(size=32, batch=2, repeats=1)
    assert all(v["median_patches_per_s"] > 0 for v in res.values())
