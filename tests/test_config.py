import json

import pytest

from ttl.config import PRESETS, ConfigError, check_dir, git_revision, resolve_config, write_json


def test_presets_share_every_setting():
    keys = set(PRESETS["default"])
    for name, p in PRESETS.items():
        assert set(p) == keys, name


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match="smoke, default, paper"):
        resolve_config("fast")


def test_overrides_apply_and_none_is_ignored():
    cfg = resolve_config("smoke", {"c2_steps": "17", "gap_size": None})
    assert cfg["c2_steps"] == 17 and cfg["gap_size"] == PRESETS["smoke"]["gap_size"] and cfg["preset"] == "smoke"


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="valid settings"):
        resolve_config("smoke", {"no_such_size": 3})


def test_check_dir(tmp_path):
    assert check_dir(None, "real_dir") is None
    assert check_dir(tmp_path, "real_dir") == tmp_path
    with pytest.raises(FileNotFoundError, match="real_dir=.*does not exist"):
        check_dir(tmp_path / "missing", "real_dir")
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(FileNotFoundError, match="file, not a folder"):
        check_dir(f, "clean_dir")


def test_write_json_is_atomic_and_handles_numpy(tmp_path):
    import numpy as np

    p = write_json(tmp_path / "a" / "m.json", {"x": np.float32(1.5), "nan": float("nan"), "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "nan": None, "arr": [0, 1, 2]}
    assert not list(tmp_path.glob("a/*.tmp"))


def test_git_revision_is_a_string():
    assert isinstance(git_revision(), str) and git_revision()


def test_the_study_finds_its_data_folder_and_records_where_data_came_from(tmp_path):
    from conftest import rand_img, write_png
    from ttl.config import data_parameters, data_source, find_data_dir

    root = tmp_path / "project"
    root.mkdir()
    assert find_data_dir(root) is None  # nothing anywhere: the embedded fallback
    shared = tmp_path / "shared" / "data"
    write_png(shared / "clean_scenes" / "a_1.png", rand_img())
    assert find_data_dir(root) == shared
    write_png(root / "data" / "clean_scenes" / "a_1.png", rand_img())
    write_png(root / "data" / "real_rainy" / "001.jpg", rand_img(seed=1))
    assert find_data_dir(root) == root / "data"  # `make data` output comes first
    params = data_parameters(root / "data")
    assert params == {"clean_dir": str(root / "data" / "clean_scenes"), "real_dir": str(root / "data" / "real_rainy")}
    rec = data_source(**params, public_dir=None)
    assert rec["public_dir"] == "embedded" and rec["clean_dir"]["files"] == 1
    again = data_source(clean_dir=shared / "clean_scenes")
    assert again["clean_dir"]["sha256"] == rec["clean_dir"]["sha256"]  # same files, same digest, wherever they are
    write_png(shared / "clean_scenes" / "a_2.png", rand_img(seed=2))
    assert data_source(clean_dir=shared / "clean_scenes")["clean_dir"]["sha256"] != rec["clean_dir"]["sha256"]
    with pytest.raises(FileNotFoundError, match="make data"):
        data_parameters(tmp_path / "missing")


def test_a_study_s_own_outputs_do_not_make_its_revision_dirty(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for f in ("ttl/a.py", "notebooks/01_x.py", "notebooks/01_x.ipynb", "results/m.json", "figures/f.png",
              "weights/default/ttl.json", "README.md"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("0")
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    assert not git_revision(tmp_path).endswith("-dirty")
    for f in ("notebooks/01_x.ipynb", "results/m.json", "figures/f.png", "weights/default/ttl.json", "README.md"):
        (tmp_path / f).write_text("1")  # what notebook 01 leaves behind for notebook 02
    assert not git_revision(tmp_path).endswith("-dirty")
    for f in ("notebooks/01_x.py", "ttl/a.py"):
        (tmp_path / f).write_text("1")
        assert git_revision(tmp_path).endswith("-dirty"), f
        (tmp_path / f).write_text("0")


def test_the_committed_records_come_from_a_clean_revision():
    from conftest import ROOT

    records = sorted((ROOT / "results").glob("*/default/metrics.json"))
    assert len(records) == 5
    for p in records:
        rev = json.loads(p.read_text())["git_revision"]
        assert len(rev) == 40 and not rev.endswith("-dirty"), (p, rev)


def test_draw_settings_that_would_break_equal_search_effort_or_the_dose_response_are_refused():
    for preset in PRESETS:  # every shipped preset is consistent
        cfg = resolve_config(preset)
        assert cfg["f_draws"] >= cfg["f_search_draws"] + cfg["f_dose_draws"] and cfg["f_seeds"] >= cfg["f_search_draws"]
    with pytest.raises(ConfigError, match="at least 1 draw"):
        resolve_config("smoke", {"f_search_draws": 0})
    with pytest.raises(ConfigError, match="same number of draws"):
        resolve_config("default", {"f_search_draws": 3})  # f_seeds is 2
    with pytest.raises(ConfigError, match="draws after the lr search"):
        resolve_config("default", {"f_draws": 3})  # 2 search draws + 2 dose draws
    assert resolve_config("default", {"f_draws": 3, "f_dose": []})["f_draws"] == 3


def test_write_json_leaves_no_temporary_file_when_it_fails(tmp_path):
    from ttl.config import write_json

    (tmp_path / "a_folder").mkdir()
    with pytest.raises(OSError):
        write_json(tmp_path / "a_folder", {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder"]


def test_notebook_settings_picks_every_preset_size_given_and_nothing_else():
    import math

    from ttl.config import notebook_settings, resolve_config

    ns = {"preset": "smoke", "seed": 3, "f_steps": None, "f_workers": 1, "f_optional_rows": [], "bootstrap": 50,
          "math": math, "context": print, "unrelated": 7}
    got = notebook_settings(ns, "smoke")
    assert got == {"f_workers": 1, "f_optional_rows": [], "bootstrap": 50}  # no None, module, function or other name
    cfg = resolve_config("smoke", got)
    assert cfg["f_workers"] == 1 and cfg["f_optional_rows"] == [] and cfg["bootstrap"] == 50


def test_ttl_study_refuses_an_unknown_parameter_before_running_anything(tmp_path):
    from ttl.study import run_study

    with pytest.raises(SystemExit, match=r"unknown parameter\(s\) \['f_stepz'\].*f_steps"):
        run_study("smoke", ["04"], tmp_path, {"f_stepz": 5, "f_workers": 1})
    assert not any(tmp_path.iterdir())
