"""``ttl data fetch``: rebuild the shared data folder (clean_scenes/, paired_public/, real_rainy/) from its public
originals, pinned to commits and checked by SHA-256.

The manifest ``ttl/sources.tsv`` has one row per local file: where its original lives (GitHub ``repo``, pinned
``commit``, ``path``), the original's ``sha256`` and ``bytes``, the conversion that made the local file from it
(``convert`` = copy | jpeg, ``max_long_side``, ``jpeg_quality``, ``subsampling``, ``optimize``; ``width`` and
``height`` of the result) and the digest and size of the file as the study used it (``local_sha256``,
``local_bytes``). ``ttl/sources_terms.json`` records each collection's terms of use as its repository states them.

Every original is downloaded to ``DIR/.fetch/`` (resumable ``.part`` files, HTTP Range), checked for size and
SHA-256 before anything is written to the output tree, converted, then written atomically (temporary file in the
same folder + ``os.replace``). Files already present and verified are skipped without a request. Only the standard
library does the networking; Pillow converts, tqdm shows progress (both imported when needed, so ``ttl --help``
stays fast).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Sequence

MANIFEST = Path(__file__).with_name("sources.tsv")
TERMS = Path(__file__).with_name("sources_terms.json")
RAW_BASE = "https://raw.githubusercontent.com"
GROUPS = ("clean_scenes", "paired_public", "real_rainy")
DEFAULT_DIR = "data"
STATE_DIR = ".fetch"
USER_AGENT = "ttl-data-fetch/0.1 (+https://github.com; research data rebuild)"
_TMP_SUFFIX = ".fetch-tmp"
_CHUNK = 1 << 16
# The encoder that made the shared files (SOURCES.md); another Pillow or libjpeg may write other bytes (JPEG noise).
REFERENCE_ENCODER = "Pillow 13.0.0 with libjpeg-turbo 3.2.0"

COLUMNS = ("local_path", "collection", "group", "repo", "commit", "path", "sha256", "bytes", "convert",
           "max_long_side", "jpeg_quality", "subsampling", "optimize", "width", "height", "local_sha256",
           "local_bytes")
_INT_COLUMNS = {"bytes", "max_long_side", "jpeg_quality", "subsampling", "optimize", "width", "height",
                "local_bytes"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class ConversionDiffers(UserWarning):
    """Converted files are not byte-identical to the shared copies (another Pillow / libjpeg version)."""


@dataclass(frozen=True)
class Source:
    """One local file of the data folder and the public original it is made from.

    ``convert`` is ``copy`` (the local file is the original, byte for byte) or ``jpeg``: decode, convert to RGB,
    Lanczos-resize the long side to ``max_long_side`` when it is larger (short side rounded; 0 = never resize),
    save as JPEG with ``jpeg_quality``, ``subsampling`` (0 = 4:4:4, 2 = 4:2:0, -1 = Pillow's default, which is
    4:2:0) and ``optimize``. For ``copy`` rows the JPEG fields are None (empty in the TSV).
    """

    local_path: str
    collection: str
    group: str
    repo: str
    commit: str
    path: str
    sha256: str
    bytes: int
    convert: str
    max_long_side: int | None
    jpeg_quality: int | None
    subsampling: int | None
    optimize: int | None
    width: int
    height: int
    local_sha256: str
    local_bytes: int

    def url(self, mirror: str | None = None) -> str:
        """Download address of the original: raw.githubusercontent.com, or ``{mirror}/{repo}/{commit}/{path}``."""
        return source_url(self, mirror)


@dataclass(frozen=True)
class Collection:
    """A source set (e.g. ``urban``, ``rain13k_sample``) with its file count, sizes, origin and terms."""

    name: str
    group: str
    files: int
    bytes: int
    local_bytes: int
    repo: str
    origin: str
    terms: str
    short_terms: str
    source_of_terms: str


@dataclass(frozen=True)
class FetchError:
    """One file that could not be fetched: its local path, the URL tried and why."""

    local_path: str
    url: str
    reason: str

    def line(self) -> str:
        return f"error: {self.local_path}: {self.reason} ({self.url})"


@dataclass
class FetchReport:
    """What :func:`fetch` did. ``ok`` is True when nothing failed."""

    root: Path
    selected: int = 0
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[FetchError] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)  # written now, bytes differ from local_sha256
    downloaded_bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """Human-readable summary (what was fetched, skipped, failed, and how to retry)."""
        mib = self.downloaded_bytes / 2**20
        lines = [f"{self.root}: {len(self.fetched)} fetched ({mib:.1f} MiB downloaded in {self.seconds:.1f} s), "
                 f"{len(self.skipped)} already present and verified, {len(self.failed)} failed, "
                 f"of {self.selected} selected"]
        if self.failed:
            kinds: dict[str, int] = {}
            for e in self.failed:
                k = _reason_kind(e.reason)
                kinds[k] = kinds.get(k, 0) + 1
            lines.append("failed: " + ", ".join(f"{n} x {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])))
            lines.append("Files already fetched are kept. Run the same command again to retry only the missing ones "
                         "(partial downloads resume); if GitHub is unreachable from here, use --mirror URL (a server "
                         "with the layout URL/{repo}/{commit}/{path}); if a URL answers 404 the history may have been "
                         "rewritten: look the original up by its sha256 in ttl/sources.tsv.")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ manifest


def _parse_row(row: dict[str, str]) -> Source:
    kw: dict[str, object] = {}
    for f in fields(Source):
        raw = row[f.name]
        if f.name in _INT_COLUMNS:
            kw[f.name] = int(raw) if raw != "" else None
        else:
            kw[f.name] = raw
    return Source(**kw)  # type: ignore[arg-type]


def _check_source(s: Source) -> None:
    p = Path(s.local_path)
    if p.is_absolute() or ".." in p.parts or s.local_path.startswith(STATE_DIR) or "\\" in s.local_path:
        raise ValueError(f"unsafe local_path in manifest: {s.local_path!r}")
    if not (_HEX64.match(s.sha256) and _HEX64.match(s.local_sha256) and _HEX40.match(s.commit)):
        raise ValueError(f"bad digest or commit in manifest row {s.local_path!r}")
    if s.convert not in ("copy", "jpeg"):
        raise ValueError(f"unknown convert {s.convert!r} for {s.local_path!r} (copy | jpeg)")
    if s.convert == "jpeg" and None in (s.max_long_side, s.jpeg_quality, s.subsampling, s.optimize):
        raise ValueError(f"jpeg conversion of {s.local_path!r} lacks max_long_side/jpeg_quality/subsampling/optimize")
    if s.group not in GROUPS:
        raise ValueError(f"unknown group {s.group!r} for {s.local_path!r} (one of {', '.join(GROUPS)})")


def load_sources(manifest: str | os.PathLike | None = None) -> list[Source]:
    """Read a manifest TSV (default: the packaged ``ttl/sources.tsv``) into checked :class:`Source` rows."""
    path = Path(manifest) if manifest is not None else MANIFEST
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected columns {', '.join(COLUMNS)}; got {reader.fieldnames}")
        out = [_parse_row(r) for r in reader]
    seen: set[str] = set()
    for s in out:
        _check_source(s)
        if s.local_path in seen:
            raise ValueError(f"{path}: duplicate local_path {s.local_path!r}")
        seen.add(s.local_path)
    return out


def write_manifest(sources: Iterable[Source], path: str | os.PathLike) -> Path:
    """Write rows as a manifest TSV (the format :func:`load_sources` reads)."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for s in sources:
            d = asdict(s)
            w.writerow(["" if d[c] is None else d[c] for c in COLUMNS])
    return path


def load_terms(path: str | os.PathLike | None = None) -> dict[str, dict[str, str]]:
    """Each collection's origin, repository and terms of use (``ttl/sources_terms.json``)."""
    with open(Path(path) if path is not None else TERMS, encoding="utf-8") as fh:
        return json.load(fh)


def collections(sources: Sequence[Source] | None = None,
                terms: dict[str, dict[str, str]] | None = None) -> dict[str, Collection]:
    """The manifest's collections, in manifest order, with file counts, original/local sizes, origin and terms."""
    sources = load_sources() if sources is None else sources
    if terms is None:
        terms = load_terms() if TERMS.exists() else {}
    acc: dict[str, list[Source]] = {name: [] for name in terms}  # the terms file's order, then any others
    for s in sources:
        acc.setdefault(s.collection, []).append(s)
    acc = {k: v for k, v in acc.items() if v}
    out = {}
    for name, rows in acc.items():
        t = terms.get(name, {})
        repos = sorted({r.repo for r in rows})
        out[name] = Collection(name=name, group=rows[0].group, files=len(rows), bytes=sum(r.bytes for r in rows),
                               local_bytes=sum(r.local_bytes for r in rows), repo=t.get("repo", ", ".join(repos)),
                               origin=t.get("origin", ""), terms=t.get("terms", "not recorded"),
                               short_terms=t.get("short", t.get("terms", "not recorded")),
                               source_of_terms=t.get("source_of_terms", ""))
    return out


def select(sources: Sequence[Source], only: str | Iterable[str] | None) -> list[Source]:
    """Rows whose collection or group is named in ``only`` (names or a comma-separated string; None = all).
    Unknown names raise ValueError listing the valid ones."""
    if only is None:
        return list(sources)
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else
                                 [x for part in only for x in part.split(",")]) if n.strip()]
    if not names:
        return list(sources)
    groups = sorted({s.group for s in sources}, key=lambda g: (GROUPS.index(g) if g in GROUPS else 99, g))
    colls = list(dict.fromkeys(s.collection for s in sources))
    bad = [n for n in names if n not in groups and n not in colls]
    if bad:
        raise ValueError(f"unknown collection or group: {', '.join(bad)}. Valid groups: {', '.join(groups)}; "
                         f"valid collections: {', '.join(colls)}")
    want = set(names)
    return [s for s in sources if s.collection in want or s.group in want]


def source_url(src: Source, mirror: str | None = None) -> str:
    """``https://raw.githubusercontent.com/{repo}/{commit}/{path}`` (path URL-quoted) or the same under ``mirror``."""
    from urllib.parse import quote

    base = RAW_BASE if mirror is None else _check_mirror(mirror)
    return f"{base}/{src.repo}/{src.commit}/{quote(src.path, safe='/')}"


def _check_mirror(mirror: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(mirror)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"--mirror must be an http(s) URL such as https://example.org/originals, got {mirror!r}")
    if "@" in u.netloc:
        raise ValueError("--mirror must not contain credentials (user:password@); the fetcher sends none")
    return mirror.rstrip("/")


# ------------------------------------------------------------------------------------------------ conversion


def convert_original(data: bytes, src: Source) -> bytes:
    """Apply the recorded conversion to an original's bytes: ``copy`` returns them unchanged; ``jpeg`` converts to
    RGB, Lanczos-resizes the long side to ``max_long_side`` when larger (short side rounded) and saves a JPEG with
    the recorded quality, subsampling (-1 = Pillow default) and optimize flag."""
    if src.convert == "copy":
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")  # a copy that keeps im.info (e.g. a JPEG comment), exactly as when the files were made
        w, h = im.size
        cap = src.max_long_side or 0
        if cap and max(w, h) > cap:
            size = (cap, round(h * cap / w)) if w >= h else (round(w * cap / h), cap)
            im = im.resize(size, Image.Resampling.LANCZOS)
        if im.size != (src.width, src.height):
            raise ValueError(f"converted size {im.size[0]}x{im.size[1]}, expected {src.width}x{src.height}")
        opts: dict[str, object] = {"quality": src.jpeg_quality}
        if src.subsampling is not None and src.subsampling >= 0:
            opts["subsampling"] = src.subsampling
        if src.optimize:
            opts["optimize"] = True
        buf = io.BytesIO()
        im.save(buf, "JPEG", **opts)
    return buf.getvalue()


def encoder_version() -> str:
    """Pillow and libjpeg versions of this environment (to explain byte differences after conversion)."""
    try:
        import PIL
        from PIL import features

        jpeg = (f"libjpeg-turbo {features.version('libjpeg_turbo')}" if features.check_feature("libjpeg_turbo")
                else f"libjpeg {features.version('jpg') or '?'}")
        return f"Pillow {PIL.__version__} with {jpeg}"
    except Exception:  # pragma: no cover
        return "unknown Pillow"


# ------------------------------------------------------------------------------------------------ files


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: never a partial file under ``path``."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _load_state(state_file: Path) -> dict[str, dict[str, object]]:
    try:
        with open(state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        return dict(data.get("files", {}))
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _save_state(state_file: Path, files: dict[str, dict[str, object]]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1).encode()
    _write_atomic(state_file, payload)


def _is_verified(path: Path, src: Source, state: dict[str, dict[str, object]]) -> bool:
    if not path.is_file():
        return False
    digest = _sha256_file(path)
    if digest == src.local_sha256:
        return True
    rec = state.get(src.local_path)
    return bool(rec) and rec.get("source_sha256") == src.sha256 and rec.get("sha256") == digest


def verify_tree(root: str | os.PathLike, sources: Sequence[Source] | str | os.PathLike | None = None,
                only: str | Iterable[str] | None = None) -> dict[str, str]:
    """Status of every manifest file under ``root``: ``ok`` (matches ``local_sha256``), ``reencoded`` (what this
    fetcher wrote from the verified original, bytes differ from the shared copy), ``differs`` or ``missing``."""
    root = Path(root)
    rows = select(_as_sources(sources), only)
    state = _load_state(root / STATE_DIR / "state.json")
    out = {}
    for s in rows:
        p = root / s.local_path
        if not p.is_file():
            out[s.local_path] = "missing"
            continue
        d = _sha256_file(p)
        rec = state.get(s.local_path) or {}
        out[s.local_path] = ("ok" if d == s.local_sha256 else
                             "reencoded" if rec.get("source_sha256") == s.sha256 and rec.get("sha256") == d else
                             "differs")
    return out


def _as_sources(sources: Sequence[Source] | str | os.PathLike | None) -> list[Source]:
    if sources is None or isinstance(sources, (str, os.PathLike)):
        return load_sources(sources)
    return list(sources)


# ------------------------------------------------------------------------------------------------ download


class _Failure(Exception):
    """A per-file failure with a readable reason."""


class _Transient(_Failure):
    """A failure worth retrying (5xx, 429, timeout, dropped connection)."""


def _describe_oserror(e: BaseException, timeout: float) -> str:
    import socket

    r = getattr(e, "reason", e)
    if isinstance(r, ConnectionRefusedError):
        return "connection refused (no server at that address, or no network)"
    if isinstance(r, socket.gaierror):
        return f"DNS lookup failed ({r.strerror or r}; no network?)"
    if isinstance(r, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    if isinstance(r, ConnectionResetError):
        return "connection reset by the server"
    return f"network error: {r}"


def _download(url: str, part: Path, expected: int, timeout: float, progress: Callable[[int], None]) -> None:
    """Download ``url`` into ``part`` (resuming with a Range request when ``part`` already holds a prefix)."""
    import http.client
    import urllib.error
    import urllib.request

    have = part.stat().st_size if part.exists() else 0
    if have > expected:
        part.unlink()
        have = 0
    if have == expected:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # our prefix is not a prefix of theirs: start again
            part.unlink()
            return _download(url, part, expected, timeout, progress)
        msg = f"HTTP {e.code} {e.reason}"
        if e.code == 404:
            msg += " (not found at the pinned commit)"
        if e.code >= 500 or e.code == 429:
            raise _Transient(msg) from None
        raise _Failure(msg) from None
    except urllib.error.URLError as e:
        import socket

        r = e.reason
        transient = isinstance(r, (TimeoutError, socket.timeout, ConnectionResetError))
        raise (_Transient if transient else _Failure)(_describe_oserror(e, timeout)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _Transient(_describe_oserror(e, timeout) if isinstance(e, OSError) else
                         f"connection dropped ({type(e).__name__})") from None
    with resp:
        crange = resp.headers.get("Content-Range", "")
        if have and resp.status == 206 and crange.startswith(f"bytes {have}-"):
            mode = "ab"
        else:
            mode, have = "wb", 0
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(part, mode) as fh:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    have += len(chunk)
                    if have > expected:
                        raise _Failure(f"size mismatch: more than the expected {expected} bytes")
                    fh.write(chunk)
                    progress(len(chunk))
        except _Failure:
            part.unlink(missing_ok=True)
            raise
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
            raise _Transient(f"connection dropped after {have} of {expected} bytes ({type(e).__name__}); "
                             "the partial download is kept and resumes next time") from None
    if have != expected:  # the server closed the connection early: keep the prefix, a Range request resumes it
        raise _Transient(f"connection dropped after {have} of {expected} bytes; the partial download is kept and "
                         "resumes next time")


def _part_path(root: Path, src: Source) -> Path:
    """Where the original of ``src`` is downloaded (one per local file: some originals are byte-identical)."""
    return root / STATE_DIR / "partial" / (src.local_path.replace("/", "__") + ".part")


def _fetch_one(src: Source, root: Path, url: str, timeout: float, retries: int, backoff: float,
               progress: Callable[[int], None]) -> tuple[str, int]:
    """Download, verify, convert and write one file; returns (written sha256, bytes downloaded)."""
    part = _part_path(root, src)
    part.parent.mkdir(parents=True, exist_ok=True)
    got = [0]

    def count(n: int) -> None:
        got[0] += n
        progress(n)

    for attempt in range(retries + 1):
        try:
            _download(url, part, src.bytes, timeout, count)
            break
        except _Transient:
            if attempt == retries:
                raise
            time.sleep(backoff * 2**attempt)
    data = part.read_bytes()
    if len(data) != src.bytes:
        raise _Failure(f"size mismatch: got {len(data)} bytes, expected {src.bytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256:
        part.unlink(missing_ok=True)
        raise _Failure(f"SHA-256 mismatch: got {digest[:16]}..., expected {src.sha256[:16]}... (corrupted or changed "
                       "at the source; nothing was written)")
    try:
        out = convert_original(data, src)
    except Exception as e:  # a verified original that does not convert: Pillow too old, or a decoder missing
        raise _Failure(f"conversion failed: {type(e).__name__}: {e}") from None
    _write_atomic(root / src.local_path, out)
    part.unlink(missing_ok=True)
    return hashlib.sha256(out).hexdigest(), got[0]


_UNREACHABLE_STOP = 8
_NOT_TRIED = "not tried: the server could not be reached for the first files (no network, or a wrong --mirror?)"


def _clean_stale_temps(root: Path, rows: Sequence[Source]) -> None:
    for d in {(root / s.local_path).parent for s in rows}:
        if d.is_dir():
            for p in d.glob(f".*{_TMP_SUFFIX}"):
                p.unlink(missing_ok=True)


def _reason_kind(reason: str) -> str:
    for key in ("SHA-256 mismatch", "size mismatch", "connection refused", "DNS lookup failed", "timed out",
                "connection dropped", "conversion failed", "not tried"):
        if reason.startswith(key):
            return key
    m = re.match(r"HTTP (\d+)", reason)
    return f"HTTP {m.group(1)}" if m else reason.split(":")[0]


def fetch(to: str | os.PathLike = DEFAULT_DIR, only: str | Iterable[str] | None = None, mirror: str | None = None,
          jobs: int = 4, progress: bool = True, sources: Sequence[Source] | str | os.PathLike | None = None,
          timeout: float = 60.0, retries: int = 2, backoff: float = 1.0,
          log: Callable[[str], None] | None = None) -> FetchReport:
    """Rebuild the data folder ``to`` from the public originals.

    ``only``: collection or group names (None = everything); ``mirror``: base URL serving
    ``{mirror}/{repo}/{commit}/{path}`` instead of raw.githubusercontent.com; ``sources``: manifest rows or a
    manifest path (default: the packaged one). Files present and verified are skipped without a request. Per-file
    failures (HTTP error, no network, checksum mismatch) are logged, do not stop the others, and are listed in the
    returned report (``report.ok`` is False). Raises ValueError for unknown ``only`` names or a bad mirror URL.
    """
    t0 = time.monotonic()
    rows = select(_as_sources(sources), only)
    if mirror is not None:
        _check_mirror(mirror)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    root = Path(to)
    report = FetchReport(root=root, selected=len(rows))
    state_file = root / STATE_DIR / "state.json"
    state = _load_state(state_file)
    _clean_stale_temps(root, rows)

    todo = []
    for s in rows:
        if _is_verified(root / s.local_path, s, state):
            report.skipped.append(s.local_path)
        else:
            todo.append(s)
    if not todo:
        report.seconds = time.monotonic() - t0
        return report

    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from .progress import progress_bar

    partial = root / STATE_DIR / "partial"
    already = sum(min(_part_path(root, s).stat().st_size, s.bytes) for s in todo if _part_path(root, s).is_file())
    bar = progress_bar(total=sum(s.bytes for s in todo), initial=already, unit="B", unit_scale=True, unit_divisor=1024,
               desc="originals", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    bar.set_postfix_str(f"0/{len(todo)} files")
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            bar.update(n)

    def emit(msg: str) -> None:
        if progress and not bar.disable:
            bar.write(msg, file=sys.stderr)
        else:
            say(msg)

    done = unreachable = 0
    stopped = False
    queue = iter(todo)
    pending: dict = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ttl-fetch")

    def submit_more() -> None:  # a bounded window of work, so that a stop takes effect promptly
        while not stopped and len(pending) < 2 * jobs:
            s = next(queue, None)
            if s is None:
                return
            pending[pool.submit(_fetch_one, s, root, source_url(s, mirror), timeout, retries, backoff, tick)] = s

    try:
        submit_more()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                s = pending.pop(fut)
                done += 1
                try:
                    written, got = fut.result()
                except Exception as e:  # _Failure, or anything unexpected: it names the file, the others go on
                    reason = str(e) if isinstance(e, _Failure) else f"{type(e).__name__}: {e}"
                    err = FetchError(s.local_path, source_url(s, mirror), reason)
                    report.failed.append(err)
                    emit(err.line())
                    # No connection at all (nothing listening, no DNS) for the first downloads: stop rather than
                    # print one line per file; the files not tried are listed in the report, the next run fetches them.
                    if not report.fetched and reason.startswith(("connection refused", "DNS lookup failed")):
                        unreachable += 1
                        stopped = stopped or unreachable >= max(_UNREACHABLE_STOP, 2 * jobs)
                else:
                    report.fetched.append(s.local_path)
                    report.downloaded_bytes += got
                    if written != s.local_sha256:
                        report.differs.append(s.local_path)
                    state[s.local_path] = {"source_sha256": s.sha256, "sha256": written}
                    _save_state(state_file, state)
                bar.set_postfix_str(f"{done}/{len(todo)} files")
            submit_more()
        rest = list(queue)
        if rest:
            emit(f"error: the first {unreachable} downloads could not connect ({report.failed[-1].reason}); "
                 f"{len(rest)} more files not tried")
            report.failed.extend(FetchError(s.local_path, source_url(s, mirror), _NOT_TRIED) for s in rest)
    except BaseException:  # Ctrl-C: finished files are kept (and recorded), partial downloads resume next time
        pool.shutdown(wait=False, cancel_futures=True)
        _save_state(state_file, state)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    if report.differs:
        warnings.warn(f"{len(report.differs)} converted file(s) differ byte-wise from the copies the manifest "
                      f"records (made with {REFERENCE_ENCODER}; here {encoder_version()}): their pixels differ only "
                      "within JPEG re-encoding noise. They are recorded in .fetch/state.json and count as verified.",
                      ConversionDiffers, stacklevel=2)
    if not report.failed:
        try:
            partial.rmdir()
        except OSError:
            pass
    report.seconds = time.monotonic() - t0
    return report


# ------------------------------------------------------------------------------------------------ manifest generator


_TRANSFORM = re.compile(
    r"^(?:resize (?P<w0>\d+)x(?P<h0>\d+)->(?P<w>\d+)x(?P<h>\d+) \(long side (?P<cap>\d+)\) Lanczos"
    r"|no resize \((?P<nw>\d+)x(?P<nh>\d+)\)), "
    r"(?:(?:PNG|BMP)->JPEG|JPEG re-encode) q(?P<q>\d+) (?P<sub>4:4:4|4:2:0)(?P<opt> optimize)? \(Pillow\)$")
# SOURCES.md: clean_scenes are capped at 512 px, saved q95 4:4:4 optimize; real_rainy capped at 1600 px, saved q95
# with Pillow's defaults (4:2:0, no optimize), so their subsampling is recorded as -1 (= Pillow default).
_GROUP_CAP = {"clean_scenes": 512, "real_rainy": 1600}


def _collection_of(local_path: str) -> tuple[str, str]:
    parts = local_path.split("/")
    group = parts[0]
    if group == "clean_scenes":
        return parts[1].split("_")[0], group
    if group == "paired_public":
        return parts[1], group
    if group == "real_rainy":
        return "real_rainy", group
    raise ValueError(f"unknown group in {local_path!r}")


def parse_transform(transform: str, group: str) -> dict[str, int | str | None]:
    """Structured conversion columns from a SOURCES.tsv ``transform`` text (and the group's rules in SOURCES.md)."""
    if transform == "copy":
        return {"convert": "copy", "max_long_side": None, "jpeg_quality": None, "subsampling": None,
                "optimize": None, "width": None, "height": None}
    m = _TRANSFORM.match(transform)
    if not m:
        raise ValueError(f"unrecognised transform: {transform!r}")
    cap = _GROUP_CAP[group]
    if m["cap"]:
        if int(m["cap"]) != cap:
            raise ValueError(f"{transform!r}: long side {m['cap']} is not the {group} cap {cap}")
        w0, h0, w, h = (int(m[k]) for k in ("w0", "h0", "w", "h"))
        s = cap / max(w0, h0)
        if (w, h) != ((cap, round(h0 * s)) if w0 >= h0 else (round(w0 * s), cap)):
            raise ValueError(f"{transform!r}: target size is not the rounded Lanczos size")
    else:
        w, h = int(m["nw"]), int(m["nh"])
        if max(w, h) > cap:
            raise ValueError(f"{transform!r}: not resized but larger than the {group} cap {cap}")
    sub = {"4:4:4": 0, "4:2:0": 2}[m["sub"]]
    if group == "real_rainy":
        if sub != 2 or m["opt"]:
            raise ValueError(f"{transform!r}: real_rainy files use Pillow's defaults (4:2:0, no optimize)")
        sub = -1
    return {"convert": "jpeg", "max_long_side": cap, "jpeg_quality": int(m["q"]), "subsampling": sub,
            "optimize": 1 if m["opt"] else 0, "width": w, "height": h}


def manifest_from_shared(shared_dir: str | os.PathLike) -> list[Source]:
    """Regenerate the manifest rows from ``shared_dir/SOURCES.tsv`` and the files in ``shared_dir`` (digests,
    sizes and image sizes of the local files are measured now). ``python -m ttl.fetch regenerate DIR`` writes them
    to ``ttl/sources.tsv``."""
    from PIL import Image

    shared = Path(shared_dir)
    out = []
    with open(shared / "SOURCES.tsv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            coll, group = _collection_of(r["local_path"])
            conv = parse_transform(r["transform"], group)
            local = shared / r["local_path"]
            data = local.read_bytes()
            with Image.open(local) as im:
                size = im.size
            if conv["width"] is None:
                conv["width"], conv["height"] = size
            elif size != (conv["width"], conv["height"]):
                raise ValueError(f"{local}: size {size} differs from its transform {r['transform']!r}")
            if conv["convert"] == "copy" and hashlib.sha256(data).hexdigest() != r["sha256"]:
                raise ValueError(f"{local}: marked copy but its digest differs from the original's")
            out.append(Source(local_path=r["local_path"], collection=coll, group=group, repo=r["repo"],
                              commit=r["commit"], path=r["path"], sha256=r["sha256"], bytes=int(r["bytes"]),
                              local_sha256=hashlib.sha256(data).hexdigest(), local_bytes=len(data),
                              **conv))  # type: ignore[arg-type]
    for s in out:
        _check_source(s)
    return out


# ------------------------------------------------------------------------------------------------ CLI


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _cmd_list(a) -> int:
    try:
        colls = collections(load_sources(a.manifest))
    except (OSError, ValueError) as e:
        print(f"ttl data list: error: {e}", file=sys.stderr)
        return 2
    rows = [("collection", "group", "files", "originals", "origin repository", "terms")]
    for c in colls.values():
        rows.append((c.name, c.group, str(c.files), _fmt_bytes(c.bytes), c.repo, c.short_terms))
    tot_files = sum(c.files for c in colls.values())
    tot = sum(c.bytes for c in colls.values())
    rows.append(("total", "", str(tot_files), _fmt_bytes(tot), "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        if i == len(rows) - 1:
            print("  ".join("-" * w for w in widths))
        cells = [r[j].rjust(widths[j]) if j in (2, 3) else r[j].ljust(widths[j]) for j in range(5)]
        print("  ".join(cells + [r[5]]).rstrip())
    print(f"\n{tot:,} bytes of originals; `ttl data fetch --only NAME` takes collection or group names.")
    if a.verbose:
        print()
        for c in colls.values():
            print(f"{c.name}: {c.origin}\n  terms: {c.terms}\n  source of terms: {c.source_of_terms}")
    else:
        print("Full terms of use and where they are stated: ttl data list --verbose (ttl/sources_terms.json).")
    return 0


def _cmd_fetch(a) -> int:
    only = a.only
    try:
        sources = load_sources(a.manifest)
        select(sources, only)
        if a.mirror:
            _check_mirror(a.mirror)
    except (OSError, ValueError) as e:
        print(f"ttl data fetch: error: {e}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionDiffers)
        try:
            rep = fetch(a.to, only=only, mirror=a.mirror, jobs=a.jobs, progress=not a.no_progress, sources=sources,
                        timeout=a.timeout, retries=a.retries)
        except KeyboardInterrupt:
            print("\ninterrupted: files finished so far are kept; run the same command again to resume",
                  file=sys.stderr)
            return 130
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(rep.summary(), file=sys.stderr if rep.failed else sys.stdout)
    return 0 if rep.ok else 1


def add_cli(subparsers) -> None:
    """Add ``ttl data fetch`` and ``ttl data list`` to an argparse sub-parser collection."""
    d = subparsers.add_parser("data", help="rebuild the shared data folder from its public originals (fetch, list)",
                              description="The data folder (clean_scenes/, paired_public/, real_rainy/) rebuilt from "
                              "public GitHub originals pinned to commits, checked by SHA-256 (manifest: "
                              "ttl/sources.tsv).")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    f = dsub.add_parser("fetch", help="download, check and convert the originals into DIR",
                        description="Download every original (pinned commit), check its size and SHA-256, apply the "
                        "recorded conversion and write the file atomically. Files present and verified are skipped "
                        "without a request; an interrupted run resumes. Exit status 0: all files present; 1: some "
                        "failed (listed, the rest kept); 2: usage error.")
    f.add_argument("--to", default=DEFAULT_DIR, metavar="DIR", help="output folder (default: data)")
    f.add_argument("--only", action="append", metavar="NAME[,NAME...]",
                   help="collections or groups (clean_scenes, paired_public, real_rainy); default: all")
    f.add_argument("--mirror", metavar="URL", help="fetch URL/{repo}/{commit}/{path} instead of "
                   "https://raw.githubusercontent.com/{repo}/{commit}/{path}")
    f.add_argument("--jobs", type=int, default=4, metavar="N", help="downloads at once (default: 4)")
    f.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds without data before a download fails (default: 60)")
    f.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries after a timeout, dropped connection or HTTP 5xx (default: 2)")
    f.add_argument("--manifest", metavar="TSV", help="another manifest TSV (default: the packaged ttl/sources.tsv)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(fn=_cmd_fetch)
    li = dsub.add_parser("list", help="collections, file counts, sizes, origin repositories and terms of use")
    li.add_argument("--manifest", metavar="TSV", help="another manifest TSV (default: the packaged ttl/sources.tsv)")
    li.add_argument("--verbose", "-v", action="store_true", help="also print each collection's full terms")
    li.set_defaults(fn=_cmd_list)


def _main(argv: list[str] | None = None) -> int:
    """``python -m ttl.fetch regenerate SHARED_DIR [OUT]``: rewrite ttl/sources.tsv from SHARED_DIR/SOURCES.tsv."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0] != "regenerate":
        print(_main.__doc__, file=sys.stderr)
        return 2
    out = write_manifest(manifest_from_shared(argv[1]), argv[2] if len(argv) == 3 else MANIFEST)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
