"""The SIP trace stamps each message from one clock read (seconds and milliseconds agree)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from securephone.aio.phone import SipTrace
from securephone.sip.transport import Peer

OPTIONS = b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"


def _clock(values: list[float]) -> Iterator[float]:
    yield from values


def test_stamp_comes_from_one_clock_read(tmp_path: Path) -> None:
    # The second read would cross into the next second; only the first may be used.
    reads = _clock([1_700_000_000.9996, 1_700_000_001.0004])
    trace = SipTrace(tmp_path / "trace.txt", clock=lambda: next(reads))
    trace("out", Peer("udp", "127.0.0.1", 5060), OPTIONS)
    trace.close()
    first = (tmp_path / "trace.txt").read_text().splitlines()[0]
    assert first.startswith("2023-11-14T22:13:20.999Z >> out ")
    assert next(reads) == 1_700_000_001.0004  # exactly one read per line


def test_milliseconds_are_zero_padded(tmp_path: Path) -> None:
    trace = SipTrace(tmp_path / "trace.txt", clock=lambda: 1_700_000_000.007)
    trace("in", Peer("udp", "127.0.0.1", 5060), OPTIONS)
    trace.close()
    assert (tmp_path / "trace.txt").read_text().startswith("2023-11-14T22:13:20.007Z << in ")


def test_a_full_trace_moves_to_dot_one_and_starts_again(tmp_path: Path) -> None:
    """Whatever reaches the SIP ports is traced: the file and its one older part stay bounded."""
    path = tmp_path / "trace.txt"
    path.write_text("from an earlier run\n")
    trace = SipTrace(path, clock=lambda: 1_700_000_000.0, max_bytes=4000)
    peer = Peer("udp", "127.0.0.1", 5060)
    for _ in range(200):  # about 28 KB in all
        trace("in", peer, OPTIONS)
    trace.note("the last line")
    trace.close()
    older = path.with_name("trace.txt.1")
    entry = len(path.read_text()) // max(1, path.read_text().count("<< in"))
    assert path.stat().st_size <= 4000 + entry and older.stat().st_size <= 4000 + entry
    assert path.read_text().endswith("## the last line\n")
    assert older.read_text().startswith("2023-11-14T22:13:20.000Z << in ")
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
