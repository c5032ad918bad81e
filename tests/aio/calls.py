"""What the two-phone call tests share: a phone's URI, its keying events, a connected, keyed pair."""

from __future__ import annotations

from typing import Any

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone
from securephone.media.keying import KeysAgreed
from securephone.sip.callstate import CallState

from ..helpers import await_until


def uri(phone: Phone, user: str = "bob") -> str:
    """A direct SIP URI reaching ``phone``'s UDP listener."""
    host, port = phone.status()["listen"]["udp"].split(":")
    return f"sip:{user}@{host}:{port}"


def keying_event(call: Call, kind: type[Any] = KeysAgreed) -> Any:
    """The first media-keying event of ``kind`` the call reported (KeysAgreed, KeyingFailed ...)."""
    for event in call.events:
        if isinstance(event, CallKeyingChanged) and isinstance(event.keying, kind):
            return event.keying
    return None


async def dial_and_take(alice: Phone, bob: Phone) -> tuple[Call, Call]:
    """alice calls bob (who auto-answers): both sides' calls once alice's is connected."""
    call = alice.dial(uri(bob))
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    await await_until(lambda: bool(bob.calls), 5, message="no call at bob")
    return call, next(c for c in bob.calls.values() if not c.ended)


async def connected_pair(alice: Phone, bob: Phone, keying: str) -> tuple[Call, Call]:
    """alice calls bob (who auto-answers); both calls once connected and ``keying`` agreed keys."""
    call, their = await dial_and_take(alice, bob)
    await await_until(
        lambda: keying_event(call) and keying_event(their),
        10,
        message=f"{keying} did not agree keys",
    )
    return call, their
