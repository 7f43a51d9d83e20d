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


def test_stages_train_where_the_notebooks_resume_them(tmp_path):
    """`ttl stage` (what torchrun launches on several GPUs) leaves finished runs and checkpoints where the
    notebook finds them: notebook 03 with resume=true then trains nothing and only evaluates."""
    import json

    from ttl.models import load_model
    from ttl.study import run_notebook

    res = tmp_path / "results"
    for stage in ("teachers", "distill"):
        r = subprocess.run([sys.executable, "-m", "ttl", "stage", stage, "--preset", "smoke", "--results-dir", str(res),
                            "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    assert load_model(res / "02_teacher_pretraining" / "smoke" / "checkpoints" / "t2.pt")[1]["preset"] == "smoke"
    assert (res / "03_distillation" / "smoke" / "checkpoints" / "student.pt").is_file()
    run_notebook(ROOT / "notebooks" / "03_distillation.py", tmp_path / "03.ipynb",
                 {"preset": "smoke", "results_dir": str(res), "figures_dir": str(tmp_path / "f"), "resume": True},
                 cwd=ROOT)
    log = json.loads((res / "03_distillation" / "smoke" / "metrics.json").read_text())["log"]
    assert log["resumed_from"] == log["step"][-1]  # the stage's finished run, not a new one


def test_a_partial_study_updates_its_notebooks_wall_times_and_keeps_the_others(tmp_path, monkeypatch):
    import json

    import ttl.study
    from ttl.cli import main

    times = tmp_path / "times.json"
    times.write_text(json.dumps({"preset": "smoke", "seconds": {"01_a": 10.0, "05_b": 99.0}, "total_s": 109.0}))
    monkeypatch.setattr(ttl.study, "run_study", lambda preset, notebooks, output_dir, extra: {"05_b": 5.0})
    assert main(["study", "--preset", "smoke", "--data-dir", "none", "--notebooks", "05", "--times", str(times),
                 "--results-dir", str(tmp_path / "r")]) == 0
    t = json.loads(times.read_text())
    assert t["seconds"] == {"01_a": 10.0, "05_b": 5.0} and t["total_s"] == 15.0
    assert main(["study", "--preset", "smoke", "--data-dir", "none", "--times", str(times),
                 "--results-dir", str(tmp_path / "r")]) == 0  # a whole run replaces the file
    assert json.loads(times.read_text())["seconds"] == {"05_b": 5.0}


def test_unknown_preset_in_any_command_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    from ttl.cli import main

    assert main(["stage", "teachers", "--preset", "nosuch", "--results-dir", str(tmp_path)]) == 2
    assert main(["benchmark", "--recipes", "--preset", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "ttl stage: error: unknown preset 'nosuch'" in err and "ttl benchmark: error" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())
