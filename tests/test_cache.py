"""ttl.cache: a cached render is the render, a changed key or broken file renders again, 'off' disables it."""
import torch

from ttl import cache


def _build(calls):
    def build():
        calls.append(1)
        return {"rainy": [torch.arange(6, dtype=torch.uint8).view(1, 2, 3)], "scenes": ["a"], "amounts": ("light",)}
    return build


def test_cached_returns_the_build_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TTL_CACHE_DIR", str(tmp_path))
    calls = []
    a = cache.cached("t", {"seed": 0}, _build(calls))
    b = cache.cached("t", {"seed": 0}, _build(calls))
    assert len(calls) == 1 and torch.equal(a["rainy"][0], b["rainy"][0]) and b["scenes"] == ["a"]
    cache.cached("t", {"seed": 1}, _build(calls))  # another key renders again
    assert len(calls) == 2


def test_broken_file_is_rebuilt_and_off_disables(tmp_path, monkeypatch):
    monkeypatch.setenv("TTL_CACHE_DIR", str(tmp_path))
    calls = []
    cache.cached("t", {"seed": 0}, _build(calls))
    (f,) = tmp_path.glob("*.pt")
    f.write_bytes(b"truncated")
    with __import__("pytest").warns(UserWarning, match="could not read"):
        out = cache.cached("t", {"seed": 0}, _build(calls))
    assert len(calls) == 2 and out["scenes"] == ["a"]
    monkeypatch.setenv("TTL_CACHE_DIR", "off")
    cache.cached("t", {"seed": 0}, _build(calls))
    assert len(calls) == 3 and cache.cache_dir() is None


def test_the_key_includes_the_code(tmp_path, monkeypatch):
    monkeypatch.setenv("TTL_CACHE_DIR", str(tmp_path))
    calls = []
    cache.cached("t", {"seed": 0}, _build(calls))
    monkeypatch.setattr(cache, "code_digest", lambda: "other code")
    cache.cached("t", {"seed": 0}, _build(calls))
    assert len(calls) == 2


def test_only_the_most_recent_entries_stay_and_other_files_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TTL_CACHE_DIR", str(tmp_path))
    mine = tmp_path / "my-checkpoint.pt"
    mine.write_bytes(b"a user's file")
    for k in range(cache.KEEP + 2):
        cache.cached("t", {"seed": k}, _build([]))
    assert len([p for p in tmp_path.glob("*.pt") if p != mine]) == cache.KEEP
    assert mine.read_bytes() == b"a user's file"
