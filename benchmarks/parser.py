"""The SIP parser against sipmessage on 20,000 distinct messages.

Every message is different (Call-ID, branch, tags, URIs, CSeq numbers, Contact), so no
per-value cache of either parser can hit. Two workloads, each timed as the best of a few
rounds over all messages:

- ``parse``: bytes to a message object. securephone validates every header here (RFC 3261
  §8.2.2, RFC 4475: a bad message is rejected at parse time); sipmessage only splits lines.
- ``parse + read``: the same, then the header values a user agent reads for every message
  (top Via branch, From and To tags, Call-ID, CSeq number and method, Contact URIs,
  Max-Forwards).

``BENCH_BASELINE=<git revision>`` adds that revision's parser (same run, same messages).
Numbers are printed, never asserted. Needs ``sipmessage`` (the ``test`` extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import print_table, source_trees

COUNT = int(os.environ.get("BENCH_PARSER_MESSAGES", "20000"))
ROUNDS = 5


def messages(count: int = COUNT) -> list[bytes]:
    """Distinct INVITEs, 200 OKs, REGISTERs and BYEs, as a SIP phone meets them."""
    out = []
    for i in range(count):
        user, host = f"user{i % 977}", f"10.{i % 200}.{i // 200 % 250}.{i % 97 + 1}"
        branch, tag, ftag = f"z9hG4bK{i:08x}a{i * 7919:x}", f"t{i * 31:x}", f"f{i * 17:x}"
        call_id = f"{i:06d}-{i * 104729:x}@{host}"
        body = (
            f"v=0\r\no=- {i} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {10000 + i % 5000 * 2} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        ).encode()
        kind = i % 4
        if kind == 0:
            head = f"INVITE sip:{user}@{host}:5060;transport=udp SIP/2.0"
            method, extra, payload = "INVITE", "Content-Type: application/sdp\r\n", body
        elif kind == 1:
            head = "SIP/2.0 200 OK"
            method, extra, payload = "INVITE", "Content-Type: application/sdp\r\n", body
        elif kind == 2:
            head = f"REGISTER sip:{host} SIP/2.0"
            method, extra, payload = "REGISTER", "Expires: 3600\r\n", b""
        else:
            head = f"BYE sip:{user}@{host}:5062 SIP/2.0"
            method, extra, payload = "BYE", "", b""
        to_tag = f";tag={tag}" if kind in (1, 3) else ""
        text = (
            f"{head}\r\n"
            f"Via: SIP/2.0/UDP {host}:5060;branch={branch};rport\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.{i % 250 + 1}:5070;branch=z9hG4bKp{i:x}\r\n"
            f"Max-Forwards: {70 - i % 5}\r\n"
            f'From: "Caller {i % 311}" <sip:{user}@{host}>;tag={ftag}\r\n'
            f"To: <sip:callee{i % 733}@example{i % 13}.org>{to_tag}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {i % 9000 + 1} {method}\r\n"
            f"Contact: <sip:{user}@{host}:{5060 + i % 100};transport=udp>;expires=600\r\n"
            f"Record-Route: <sip:proxy{i % 7}.example.net;lr>\r\n"
            f"User-Agent: bench/{i % 5}\r\n"
            f"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
            f"{extra}"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        out.append(text.encode() + payload)
    return out


def _best(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure_securephone(data: list[bytes]) -> dict[str, float]:
    from securephone.sip.message import parse_message

    def parse() -> None:
        for raw in data:
            parse_message(raw)

    def parse_read() -> None:
        for raw in data:
            m = parse_message(raw)
            _ = (m.top_via.branch, m.from_.tag, m.to.tag, m.call_id, m.cseq.seq, m.cseq.method)
            _ = ([c.uri for c in m.contacts], m.max_forwards)

    return {"parse": _best(parse), "parse + read": _best(parse_read)}


def measure_sipmessage(data: list[bytes]) -> dict[str, float]:
    from sipmessage import Message

    def parse() -> None:
        for raw in data:
            Message.parse(raw)

    def parse_read() -> None:
        for raw in data:
            m = Message.parse(raw)
            _ = (m.via[0].parameters.get("branch"), m.from_address.parameters.get("tag"))
            _ = (m.to_address.parameters.get("tag"), m.call_id, m.cseq.sequence, m.cseq.method)
            _ = ([c.uri for c in m.contact], m.max_forwards)

    return {"parse": _best(parse), "parse + read": _best(parse_read)}


def _run_tree(src: Path) -> dict[str, float]:
    """Measure one source tree in a fresh interpreter (its own imports, its own caches)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, __file__, "--one"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out))


def main() -> None:
    results: list[tuple[str, dict[str, float]]] = []
    for name, src in source_trees():
        results.append((f"securephone {name}", _run_tree(src)))
    try:
        results.append(("sipmessage", measure_sipmessage(messages())))
    except ImportError:
        print("sipmessage is not installed (pip install -e '.[test]'); its row is missing")
    reference = results[-1][1] if results[-1][0] == "sipmessage" else None
    rows = []
    for name, res in results:
        for work, seconds in res.items():
            ratio = reference[work] / seconds if reference else float("nan")
            rows.append([name, work, round(COUNT / seconds), seconds * 1e6 / COUNT, ratio])
    print_table(
        f"SIP parser, {COUNT} distinct messages (best of {ROUNDS})",
        ["parser", "work", "messages/s", "µs/message", "× sipmessage"],
        rows,
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--one"]:
        print(json.dumps(measure_securephone(messages())))
    else:
        main()
