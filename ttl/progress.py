"""Progress bars that suit where they write (standard library and tqdm only: ``ttl data fetch`` imports it)."""
from __future__ import annotations

import sys

__all__ = ["progress_bar", "LOG_INTERVAL_S"]

LOG_INTERVAL_S = 30.0  # seconds between progress lines when the output is a log file, not a terminal


class _LineStream:
    """A text stream for tqdm writing to a log: every refresh becomes a line of its own (tqdm redraws a terminal line
    with carriage returns, which a log file keeps as one ever-growing line)."""

    def __init__(self, stream, interval: float = 0.0):
        self.stream, self.interval, self.last, self.pending = stream, interval, float("-inf"), ""

    def write(self, s: str) -> None:
        """Keep at most one line per ``interval`` seconds (a forced refresh, e.g. ``set_postfix``, included); the
        bar's final state (written with a newline when it closes) always goes out."""
        import time

        closing = s.endswith("\n") and s.strip("\r\n") == ""
        s = s.replace("\r", "").strip("\n")
        if s.strip():
            self.pending = s
        now = time.monotonic()
        if self.pending and (closing or now - self.last >= self.interval):
            self.stream.write(self.pending + "\n")
            self.pending, self.last = "", now

    def flush(self) -> None:
        self.stream.flush()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None and "IPKernelApp" in getattr(get_ipython(), "config", {})


def progress_bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)`` that suits where it writes: a terminal gets the usual redrawn bar, a notebook
    tqdm's widget, and a log file (output redirected, CI, nohup) one plain line per update at most every
    :data:`LOG_INTERVAL_S` seconds, with no carriage returns."""
    from tqdm.auto import tqdm

    stream = kwargs.pop("file", None) or sys.stderr
    isatty = getattr(stream, "isatty", lambda: False)()
    if not isatty and not _in_kernel():
        interval = max(kwargs.get("mininterval", 0.1), LOG_INTERVAL_S)
        kwargs.update(file=_LineStream(stream, interval), mininterval=interval, maxinterval=interval,
                      dynamic_ncols=False, ncols=kwargs.get("ncols", 100), ascii=True)
        from tqdm import tqdm as plain  # not the notebook widget outside a kernel

        return plain(iterable, **kwargs)
    return tqdm(iterable, file=stream, **kwargs)
