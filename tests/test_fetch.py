"""``ttl data fetch`` against a local HTTP mirror (127.0.0.1 only; nothing leaves the machine)."""
from __future__ import annotations

import csv
import hashlib
import io
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from ttl import fetch as F

SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Every connection a test opens must go to 127.0.0.1."""
    real = socket.create_connection

    def guarded(address, *a, **k):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to leave the machine: {address}"
        return real(address, *a, **k)

    monkeypatch.setattr(socket, "create_connection", guarded)


# ------------------------------------------------------------------------------------------------ local mirror


class Mirror:
    """Serves ``files`` ({"repo/commit/path": Path}) at ``url``/{repo}/{commit}/{path}, with Range support, and
    can answer 404, corrupt a file, cut a response short, or fail with 503 after ``fail_after`` files."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.missing: set[str] = set()
        self.corrupt: set[str] = set()
        self.truncate: dict[str, int] = {}
        self.fail_after: int | None = None
        self.served = 0
        self.lock = threading.Lock()
        self.url = ""

    def reset(self) -> None:
        self.requests.clear()
        self.missing.clear()
        self.corrupt.clear()
        self.truncate.clear()
        self.fail_after = None
        self.served = 0


def _handler(m: Mirror):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def do_GET(self):
            key = unquote(urlsplit(self.path).path).lstrip("/")
            rng = self.headers.get("Range")
            with m.lock:
                m.requests.append((key, rng))
                over = m.fail_after is not None and m.served >= m.fail_after
            if over:
                return self._plain(503, b"unavailable")
            if key in m.missing or key not in m.files:
                return self._plain(404, b"not found")
            data = m.files[key].read_bytes()
            if key in m.corrupt:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            start, status = 0, 200
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start, status = int(rng[6:-1]), 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if key in m.truncate:
                self.wfile.write(body[:m.truncate[key]])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
            with m.lock:
                m.served += 1

        def _plain(self, code: int, body: bytes):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return H


@pytest.fixture
def serve():
    """serve(files) -> a started Mirror; stopped after the test."""
    servers = []

    def start(files: dict[str, Path]) -> Mirror:
        m = Mirror(files)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(m))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(srv)
        m.url = f"http://127.0.0.1:{srv.server_address[1]}/mirror"
        m.files = {f"mirror/{k}": v for k, v in files.items()}
        return m

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


# ------------------------------------------------------------------------------------------------ a toy manifest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _img(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return Image.fromarray(np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))


def _expected_jpeg(orig: Path, size: tuple[int, int] | None, **save) -> bytes:
    """The conversion written out independently of ttl.fetch."""
    im = Image.open(orig).convert("RGB")
    if size:
        im = im.resize(size, Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", **save)
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def toy(tmp_path, serve):
    """Six originals (3 PNG copies, one with a space in its path; PNG and BMP resized to JPEG; a JPEG re-encoded
    with Pillow's default subsampling) served by a local mirror. Returns (sources, mirror, expected bytes)."""
    origin = tmp_path / "origin"
    specs = []  # (local_path, collection, group, repo, path, make, conversion)
    for i, (local, path) in enumerate([("paired_public/toy_pairs/rain/1.png", "data/rain/1.png"),
                                       ("paired_public/toy_pairs/norain/1.png", "data/norain/1.png"),
                                       ("paired_public/toy_pairs/rain/2.png", "data/rain/with space 2.png")]):
        specs.append((local, "toy_pairs", "paired_public", "octo/pairs", path, ("PNG", 20, 24, i), None))
    specs.append(("clean_scenes/toy_001.jpg", "toy", "clean_scenes", "octo/scenes", "hr/a.png", ("PNG", 60, 80, 7),
                  dict(cap=32, size=(32, 24), q=95, sub=0, opt=1)))
    specs.append(("clean_scenes/toy_002.jpg", "toy", "clean_scenes", "octo/scenes", "hr/b.bmp", ("BMP", 50, 30, 8),
                  dict(cap=32, size=(19, 32), q=95, sub=0, opt=1)))
    specs.append(("real_rainy/001.jpg", "toy_real", "real_rainy", "octo/real", "real_input/1.jpg",
                  ("JPEG", 30, 40, 9), dict(cap=1600, size=None, q=95, sub=-1, opt=0)))
    rows, files, expected = [], {}, {}
    for local, coll, group, repo, path, (fmt, h, w, seed), conv in specs:
        f = origin / repo / COMMIT / path
        f.parent.mkdir(parents=True, exist_ok=True)
        _img(h, w, seed).save(f, fmt, **({"quality": 75} if fmt == "JPEG" else {}))
        data = f.read_bytes()
        if conv is None:
            out = data
            extra = dict(convert="copy", max_long_side=None, jpeg_quality=None, subsampling=None, optimize=None,
                         width=w, height=h)
        else:
            save = {"quality": conv["q"], **({"subsampling": conv["sub"]} if conv["sub"] >= 0 else {}),
                    **({"optimize": True} if conv["opt"] else {})}
            out = _expected_jpeg(f, conv["size"], **save)
            ow, oh = conv["size"] or (w, h)
            extra = dict(convert="jpeg", max_long_side=conv["cap"], jpeg_quality=conv["q"], subsampling=conv["sub"],
                         optimize=conv["opt"], width=ow, height=oh)
        rows.append(F.Source(local_path=local, collection=coll, group=group, repo=repo, commit=COMMIT, path=path,
                             sha256=_sha(data), bytes=len(data), local_sha256=_sha(out), local_bytes=len(out),
                             **extra))
        files[f"{repo}/{COMMIT}/{path}"] = f
        expected[local] = out
    return rows, serve(files), expected


def _key(s: F.Source) -> str:
    return f"mirror/{s.repo}/{s.commit}/{s.path}"


def _run(rows, mirror, to, **kw):
    lines: list[str] = []
    kw = {"progress": False, "retries": 0, "timeout": 5, "log": lines.append, **kw}
    rep = F.fetch(to, sources=rows, mirror=mirror.url if isinstance(mirror, Mirror) else mirror, **kw)
    return rep, lines


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            and not p.relative_to(root).as_posix().startswith(".fetch/")}


# ------------------------------------------------------------------------------------------------ tests


def test_urls_are_pinned_quoted_and_mirrorable(toy):
    rows, _, _ = toy
    s = rows[2]
    assert s.url() == f"https://raw.githubusercontent.com/octo/pairs/{COMMIT}/data/rain/with%20space%202.png"
    assert s.url("http://127.0.0.1:9/m/") == f"http://127.0.0.1:9/m/octo/pairs/{COMMIT}/data/rain/with%20space%202.png"
    for bad in ("ftp://example.org/x", "file:///tmp/x", "https://user:pw@example.org/x"):
        with pytest.raises(ValueError):
            F.source_url(s, bad)


def test_manifest_round_trip_and_selection(toy, tmp_path):
    rows, _, _ = toy
    p = F.write_manifest(rows, tmp_path / "m.tsv")
    assert F.load_sources(p) == rows
    assert [s.local_path for s in F.select(rows, "clean_scenes")] == ["clean_scenes/toy_001.jpg",
                                                                       "clean_scenes/toy_002.jpg"]
    assert len(F.select(rows, ["toy_pairs,toy_real"])) == 4
    with pytest.raises(ValueError, match=r"unknown collection or group: nope.*paired_public.*toy_pairs"):
        F.select(rows, "nope")
    bad = replace(rows[0], local_path="../escape.png")
    F.write_manifest([bad], tmp_path / "bad.tsv")
    with pytest.raises(ValueError, match="unsafe local_path"):
        F.load_sources(tmp_path / "bad.tsv")


def test_happy_path_then_second_run_makes_no_request(toy, tmp_path):
    rows, mirror, expected = toy
    dup = replace(rows[0], local_path="paired_public/toy_pairs/rain/dup.png")  # the same original twice (as in PCNet)
    rows, expected = rows + [dup], {**expected, dup.local_path: expected[rows[0].local_path]}
    out = tmp_path / "data"
    rep, lines = _run(rows, mirror, out, jobs=3)
    assert rep.ok and not lines and sorted(rep.fetched) == sorted(expected) and not rep.differs
    assert _tree(out) == set(expected)
    for local, data in expected.items():  # byte-identical copies; conversions equal the conversion done here
        assert (out / local).read_bytes() == data
    assert Image.open(out / "clean_scenes/toy_002.jpg").size == (19, 32)
    assert rep.downloaded_bytes == sum(s.bytes for s in rows)
    assert any("%20" not in k and " " in k for k, _ in mirror.requests)  # the quoted path reached the server
    assert set(F.verify_tree(out, rows).values()) == {"ok"}
    mirror.reset()
    rep2, _ = _run(rows, mirror, out)
    assert mirror.requests == [] and rep2.ok and len(rep2.skipped) == len(rows) and not rep2.fetched


def test_resume_after_an_interrupted_run(toy, tmp_path):
    rows, mirror, expected = toy
    out = tmp_path / "data"
    mirror.fail_after = 2  # the server goes away after two files
    rep, lines = _run(rows, mirror, out, jobs=1)
    assert len(rep.fetched) == 2 and len(rep.failed) == len(rows) - 2 and not rep.ok
    assert all("HTTP 503" in e.reason for e in rep.failed) and len(lines) == len(rows) - 2
    assert _tree(out) == set(rep.fetched)
    done = set(rep.fetched)
    mirror.reset()
    rep2, _ = _run(rows, mirror, out, jobs=2)
    assert rep2.ok and set(rep2.skipped) == done and len(mirror.requests) == len(rows) - 2
    assert {k for k, _ in mirror.requests}.isdisjoint({_key(s) for s in rows if s.local_path in done})
    assert set(F.verify_tree(out, rows).values()) == {"ok"}


def test_a_cut_download_resumes_with_a_range_request(toy, tmp_path):
    rows, mirror, expected = toy
    out = tmp_path / "data"
    s = rows[3]
    mirror.truncate[_key(s)] = 1000
    rep, lines = _run(rows, mirror, out)
    assert [e.local_path for e in rep.failed] == [s.local_path] and "connection dropped" in rep.failed[0].reason
    assert not (out / s.local_path).exists()
    assert (out / ".fetch" / "partial" / "clean_scenes__toy_001.jpg.part").stat().st_size == 1000
    mirror.reset()
    rep2, _ = _run(rows, mirror, out)
    assert rep2.ok and rep2.fetched == [s.local_path] and mirror.requests == [(_key(s), "bytes=1000-")]
    assert rep2.downloaded_bytes == s.bytes - 1000
    assert (out / s.local_path).read_bytes() == expected[s.local_path]
    assert not (out / ".fetch" / "partial").exists()


def test_corrupted_original_is_never_written(toy, tmp_path):
    rows, mirror, expected = toy
    out = tmp_path / "data"
    bad = rows[4]
    mirror.corrupt.add(_key(bad))
    rep, lines = _run(rows, mirror, out)
    assert not rep.ok and [e.local_path for e in rep.failed] == [bad.local_path]
    assert "SHA-256 mismatch" in lines[0] and bad.local_path in lines[0] and bad.url(mirror.url) in lines[0]
    assert _tree(out) == set(expected) - {bad.local_path}  # nothing under the final name, no temporary file left
    assert not list((out / "clean_scenes").glob(".*")) and not any((out / ".fetch" / "partial").iterdir())
    for local in set(expected) - {bad.local_path}:
        assert (out / local).read_bytes() == expected[local]
    assert "failed: 1 x SHA-256 mismatch" in rep.summary() and "again" in rep.summary()


def test_http_404_and_refused_connection(toy, tmp_path):
    rows, mirror, expected = toy
    mirror.missing.add(_key(rows[0]))
    rep, lines = _run(rows, mirror, tmp_path / "a")
    assert [e.local_path for e in rep.failed] == [rows[0].local_path] and "HTTP 404" in lines[0]
    assert len(rep.fetched) == len(rows) - 1
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rep, lines = _run(rows, f"http://127.0.0.1:{port}", tmp_path / "b", jobs=2)
    assert len(rep.failed) == len(rows) and all("connection refused" in e.reason for e in rep.failed)
    assert all(f"127.0.0.1:{port}" in ln for ln in lines) and _tree(tmp_path / "b") == set()
    many = [replace(rows[0], local_path=f"paired_public/toy_pairs/rain/{i}.png") for i in range(40)]
    rep, lines = _run(many, f"http://127.0.0.1:{port}", tmp_path / "c", jobs=1)  # no network: stop early
    refused = sum("connection refused" in e.reason for e in rep.failed)
    assert len(rep.failed) == 40 and 8 <= refused <= 9 and len(lines) == refused + 1  # + the one "not tried" line
    assert any("more files not tried" in ln for ln in lines) and f"{40 - refused} x not tried" in rep.summary()


def test_cli_exit_status_and_messages(toy, tmp_path, capsys):
    from ttl.cli import main

    rows, mirror, expected = toy
    tsv = F.write_manifest(rows, tmp_path / "m.tsv")
    args = ["data", "fetch", "--to", str(tmp_path / "d"), "--mirror", mirror.url, "--manifest", str(tsv),
            "--no-progress", "--retries", "0", "--jobs", "2"]
    mirror.missing.add(_key(rows[5]))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"error: {rows[5].local_path}: HTTP 404" in err and rows[5].url(mirror.url) in err
    assert "1 failed" in err and "run the same command again" in err.lower()
    mirror.reset()
    assert main(args) == 0 and mirror.requests == [(_key(rows[5]), None)]
    assert main(args + ["--only", "nope"]) == 2
    assert "valid collections: toy_pairs, toy, toy_real" in capsys.readouterr().err
    assert main(["data", "list", "--manifest", str(tsv)]) == 0
    listing = capsys.readouterr().out
    assert "toy_pairs" in listing and "paired_public" in listing and "octo/pairs" in listing


def test_other_encoder_warns_once_and_is_remembered(toy, tmp_path):
    rows, mirror, expected = toy
    rows = [replace(s, local_sha256="0" * 64) if s.convert == "jpeg" else s for s in rows]  # as if another libjpeg
    out = tmp_path / "data"
    with pytest.warns(F.ConversionDiffers) as rec:
        rep, _ = _run(rows, mirror, out)
    assert len(rec) == 1 and rep.ok and len(rep.differs) == 3
    mirror.reset()
    rep2, _ = _run(rows, mirror, out)
    assert mirror.requests == [] and len(rep2.skipped) == len(rows)
    status = F.verify_tree(out, rows)
    assert sorted(status.values()) == ["ok"] * 3 + ["reencoded"] * 3
    (out / rows[0].local_path).write_bytes(b"tampered")
    (out / rows[1].local_path).unlink()
    status = F.verify_tree(out, rows)
    assert status[rows[0].local_path] == "differs" and status[rows[1].local_path] == "missing"


def test_a_failed_write_leaves_no_file(toy, tmp_path, monkeypatch):
    rows, mirror, _ = toy
    out = tmp_path / "data"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(F.os, "replace", boom)
    rep, _ = _run(rows[:1], mirror, out)
    assert not rep.ok and "disk full" in rep.failed[0].reason
    assert not [p for p in (out / "paired_public").rglob("*") if p.is_file()]


# ------------------------------------------------------------------------------------------------ the real manifest


def test_packaged_manifest_has_terms_for_every_collection():
    rows = F.load_sources()
    assert len(rows) == 578 and sum(s.bytes for s in rows) == 211_903_492
    colls = F.collections(rows)
    terms = F.load_terms()
    assert set(colls) == set(terms) and all(terms[c]["terms"] and terms[c]["source_of_terms"] for c in terms)
    assert {c: colls[c].files for c in colls} == {
        "sunhays": 80, "urban": 100, "kodak": 24, "live1": 29, "imagenet": 117, "rain13k_sample": 76,
        "rain200_sample_train": 36, "rain200_sample_test": 10, "heavyrain_sample": 8, "ddn_sample": 6,
        "real_rainy": 92}
    assert sum(c.bytes for c in colls.values() if c.group == "clean_scenes") == 178_541_249
    assert sum(c.bytes for c in colls.values() if c.group == "paired_public") == 24_698_373
    assert all(s.convert == "copy" for s in rows if s.group == "paired_public")
    assert all(s.sha256 == s.local_sha256 for s in rows if s.convert == "copy")


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "SOURCES.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


def test_manifest_matches_sources_tsv_and_the_shared_files(shared):
    with open(shared / "SOURCES.tsv", newline="") as fh:
        src = list(csv.DictReader(fh, delimiter="\t"))
    rows = F.load_sources()
    assert [s.local_path for s in rows] == [r["local_path"] for r in src]
    for s, r in zip(rows, src):
        assert (s.repo, s.commit, s.path, s.sha256, s.bytes) == (r["repo"], r["commit"], r["path"], r["sha256"],
                                                                 int(r["bytes"]))
    # regenerating from SOURCES.tsv + the files re-derives every conversion column and local digest
    assert F.manifest_from_shared(shared) == rows


def test_paired_public_is_rebuilt_byte_for_byte(shared, serve, tmp_path):
    rows = F.select(F.load_sources(), "paired_public")
    assert len(rows) == 136
    mirror = serve({f"{s.repo}/{s.commit}/{s.path}": shared / s.local_path for s in rows})
    out = tmp_path / "data"
    rep = F.fetch(out, only="paired_public", mirror=mirror.url, progress=False, retries=0, timeout=10)
    assert rep.ok and len(rep.fetched) == 136 and len(mirror.requests) == 136
    for s in rows:
        assert (out / s.local_path).read_bytes() == (shared / s.local_path).read_bytes()
    assert set(F.verify_tree(out, only="paired_public").values()) == {"ok"}
    assert _tree(out) == {s.local_path for s in rows}
