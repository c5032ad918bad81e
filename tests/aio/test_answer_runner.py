"""``securephone answer``'s runner: each call summarised when it ends, a quiet wait between calls,
and a bounded list of summaries when answering until stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from securephone.aio import runner
from securephone.aio.phone import Phone
from securephone.aio.runner import CallOptions, KeptSummaries, answer_calls
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until, free_port, port_listening


def config(tmp_path: Path, name: str, udp_port: int, media: int) -> Any:
    return parse_config(
        {
            "data_dir": str(tmp_path / name),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp"], "udp_port": udp_port},
            "media": {"port_min": media, "port_max": media + 49, "srtp": "off"},
        }
    )


async def test_answering_calls_one_after_another_waits_quietly_and_summarises_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = 0
    wait = asyncio.wait

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal waits
        waits += 1
        return await wait(*args, **kwargs)

    monkeypatch.setattr(runner.asyncio, "wait", counted)
    port = free_port("udp")
    options = CallOptions(None, None, None, None)
    answering = asyncio.ensure_future(
        answer_calls(config(tmp_path, "bob", port, 49700), 3, options)
    )
    alice = Phone(config(tmp_path, "alice", 0, 49750))
    try:
        await await_until(lambda: port_listening(port, "udp"), 10, message="answer listens")
        await alice.start()
        for n in range(3):
            call = alice.dial(f"sip:bob@127.0.0.1:{port}")
            assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
            call.hangup()
            await call.wait_ended(5)
            if n == 0:
                # between calls, with one call's run finished: the runner wakes a few times a
                # second (its 0.2 s timeout), not at once again and again on the finished run
                await asyncio.sleep(0.3)
                before = waits
                await asyncio.sleep(1.0)
                assert waits - before <= 10, f"{waits - before} waits in one idle second"
        summaries = await asyncio.wait_for(answering, 15)
    finally:
        await alice.stop()
        if not answering.done():
            answering.cancel()
    assert len(summaries) == 3
    assert all(s["ok"] and s["answered"] and s["direction"] == "incoming" for s in summaries)
    assert all(s["reason"] == "the far end hung up" for s in summaries)
    assert len({s["call_id"] for s in summaries}) == 3


def test_kept_summaries_keep_the_newest_and_count_the_failures_let_go() -> None:
    kept = KeptSummaries(limit=2)
    for n, ok in enumerate([False, True, False, True, True]):
        kept.add({"n": n, "ok": ok})
    result = kept.result()
    assert result[0] == {
        "ok": False,
        "error": "2 earlier calls failed (their summaries were not kept)",
    }
    assert [s["n"] for s in result[1:]] == [3, 4]
    clean = KeptSummaries(limit=2)
    for n in range(5):
        clean.add({"n": n, "ok": True})
    assert [s["n"] for s in clean.result()] == [3, 4]  # nothing failed: no counting entry
