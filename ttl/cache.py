"""A disk cache for rendered training sets, so that notebooks 01 and 04 render the same pairs once.

Rendering the default synthetic training set (280 photographs x 5 renders) takes one to two CPU-minutes, and two
notebooks need the same set. :func:`cached` keeps what a builder returns (tensors, lists, strings, dicts) in a
``torch.save`` file named by a SHA-256 of

* the caller's key (the config values, seed, split and the SHA-256 of every input file), and
* the source code of every module of the ``ttl`` package,

so that a change to the data, the settings or any of the code renders afresh: a cached set is always the one the
current code would render. Files are written atomically and read with ``torch.load(weights_only=True)``; an
unreadable file is rebuilt. The folder is ``$TTL_CACHE_DIR`` (default ``~/.cache/ttl``; ``off`` disables the
cache); it keeps the :data:`KEEP` most recently used entries.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["cache_dir", "cached", "code_digest", "KEEP"]

KEEP = 4  # entries kept in the cache folder (the most recently used)
_PACKAGE = Path(__file__).resolve().parent
_ENTRY = re.compile(r"[a-z_]+-[0-9a-f]{32}\.pt")


def cache_dir() -> Path | None:
    """The cache folder: ``$TTL_CACHE_DIR`` or ``~/.cache/ttl``; ``None`` when ``TTL_CACHE_DIR`` is ``off``."""
    d = os.environ.get("TTL_CACHE_DIR", "").strip()
    if d.lower() in ("off", "0", "none", "false"):
        return None
    return Path(d).expanduser() if d else Path.home() / ".cache" / "ttl"


def code_digest() -> str:
    """SHA-256 over the source of every module of the ``ttl`` package (file names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(_PACKAGE.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _entry(kind: str, key: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "key": key, "code": code_digest()}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}.pt"


def cached(kind: str, key: dict[str, Any], build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``build()``, or what it returned last time for the same ``kind``, ``key`` and ``ttl`` source code."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / _entry(kind, key)
    if path.exists():
        try:
            out = torch.load(path, map_location="cpu", weights_only=True)
            os.utime(path)  # most recently used
            return out
        except Exception as e:  # a truncated or foreign file: rebuild it
            warnings.warn(f"ttl cache: could not read {path} ({e}); rendering again")
    out = build()
    try:
        from .engine import save_checkpoint

        save_checkpoint(path, out)
        # only this module's entries (<kind>-<32 hex>.pt): a user's own files in the folder are never touched
        entries = sorted((p for p in folder.glob("*-*.pt") if _ENTRY.fullmatch(p.name)),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as e:  # a full or read-only disk costs time, never the result
        warnings.warn(f"ttl cache: could not write {path} ({e}); set TTL_CACHE_DIR to a writable folder or 'off'")
    return out
