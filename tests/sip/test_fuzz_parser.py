"""Fuzzing the message layer: any input either parses or raises RemoteProtocolError.

DESIGN.md "Testing": no IndexError, ValueError, UnicodeDecodeError... may escape. Inputs are
arbitrary bytes and mutations (byte flips, truncation, insertion of SIP-special octets,
deletion) of the RFC 4475 messages. What parses must also serialize and parse back equal.
Example counts are kept modest so the suite stays fast; longer runs: raise max_examples.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securephone.errors import RemoteProtocolError
from securephone.sip.message import Request, Response, StreamParser, parse_message

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc4475"
SAMPLES = [path.read_bytes() for path in sorted(VECTORS.glob("*.dat"))]
SPECIAL = [
    b",", b";", b'"', b"<", b">", b"%", b"\\", b":", b"@", b"=", b"?", b"[", b"]", b"/", b"*",
    b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ", b"\r\n\r\n", b"\x00", b"\xff", b"\xc3\xa9",
    b"\xc3", b"0", b"9" * 12, b"-1", b"sip:", b"tel:", b"SIP/2.0", b"Content-Length: 5\r\n",
]  # fmt: skip
ACCESSORS = (
    "call_id", "cseq", "vias", "top_via", "from_", "to", "contacts", "routes",
    "record_routes", "max_forwards", "content_type", "expires",
)  # fmt: skip
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A vector with one to four random edits."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "special", "delete", "truncate"]))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "special":
            data[at:at] = draw(st.sampled_from(SPECIAL))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


def exercise(message: Request | Response) -> None:
    """Every accessor raises at most RemoteProtocolError; the message round-trips."""
    for name in ACCESSORS:
        with contextlib.suppress(RemoteProtocolError):
            getattr(message, name)
    for name, _ in message.headers:
        message.headers.get_all(name)
    assert parse_message(bytes(message)) == message


def parse_or_reject(data: bytes) -> None:
    try:
        message = parse_message(data)
    except RemoteProtocolError:
        return
    exercise(message)


def stream_or_reject(data: bytes, chunk: int) -> None:
    parser = StreamParser()
    for start in range(0, len(data), chunk):
        for item in parser.feed_items(data[start : start + chunk]):
            if not isinstance(item, RemoteProtocolError):
                exercise(item)
    with contextlib.suppress(RemoteProtocolError):
        parser.feed(b"")


@SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_reject(data)
    stream_or_reject(data, 64)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_behind_a_start_line(tail: bytes) -> None:
    parse_or_reject(b"INVITE sip:a@b SIP/2.0\r\n" + tail)
    parse_or_reject(b"SIP/2.0 200 OK\r\nVia: " + tail)


@SETTINGS
@given(mutated())
def test_mutated_vectors_datagram(data: bytes) -> None:
    parse_or_reject(data)


@SETTINGS
@given(mutated(), st.integers(1, 97))
def test_mutated_vectors_stream(data: bytes, chunk: int) -> None:
    stream_or_reject(data + data, chunk)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=4), st.integers(1, 300))
def test_concatenated_vectors_stream(parts: list[bytes], chunk: int) -> None:
    stream_or_reject(b"\r\n\r\n".join(parts), chunk)
