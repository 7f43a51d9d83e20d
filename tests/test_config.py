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
