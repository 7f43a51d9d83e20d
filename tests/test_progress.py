"""Progress bars in a log: one update a line, no carriage returns (``make data`` and the study write to logs)."""
import io
import time

from ttl import progress as P


def test_a_log_gets_plain_lines_at_most_every_interval(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(P, "LOG_INTERVAL_S", 0.05)
    bar = P.progress_bar(total=30, desc="fetch", file=log)
    assert bar.mininterval >= 0.05
    for k in range(30):
        bar.update(1)
        bar.set_postfix(loss=f"{k:.4f}")  # forces a refresh in tqdm: still at most a line per interval
        time.sleep(0.01)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 12, lines  # a line per interval, not one per update
    assert lines[-1].startswith("fetch") and "30/30" in lines[-1]
    assert all(len(line) <= 100 for line in lines)


def test_messages_written_through_the_bar_are_not_delayed(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(P, "LOG_INTERVAL_S", 60.0)
    bar = P.progress_bar(total=3, desc="derain", file=log)
    bar.update(1)
    bar.write("error: a.png is truncated", file=bar.fp)
    assert "error: a.png is truncated\n" in log.getvalue()
    bar.close()
    assert log.getvalue().splitlines()[-1].startswith("derain")


def test_a_disabled_bar_writes_nothing():
    log = io.StringIO()
    for _ in P.progress_bar(range(5), file=log, disable=True):
        pass
    assert log.getvalue() == ""
