"""Two Phones over real sockets on 127.0.0.1: each sees its call's events in the order they happened,
through the listener API and on the Call handle alike; endings and the summary say how calls ended."""

from __future__ import annotations

from typing import Any

from securephone.aio.phone import Phone, PhoneError
from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.events import (
    CallMediaUpdated,
    CallStateChanged,
    Event,
    HoldChanged,
    IncomingCall,
)
from securephone.store.config import parse_config

from ..helpers import await_until
from .calls import dial_and_take, uri

CALL_EVENTS = (CallStateChanged, CallMediaUpdated, HoldChanged, IncomingCall)


def config(**calls: Any) -> Any:
    return parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"port_min": 49000, "port_max": 49999, "srtp": "off"},
            "calls": calls,
        }
    )


def name(event: Event) -> str:
    if isinstance(event, CallStateChanged):
        return event.new.value
    return type(event).__name__


class Recorder:
    def __init__(self, phone: Phone) -> None:
        self.seen: list[str] = []
        phone.add_listener(self.record)

    def record(self, event: Event) -> None:
        if isinstance(event, CALL_EVENTS):
            self.seen.append(name(event))

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen


async def test_events_in_order_on_both_phones() -> None:
    alice, bob = Phone(config()), Phone(config(auto_answer=True))
    seen_a, seen_b = Recorder(alice), Recorder(bob)
    await alice.start()
    await bob.start()
    try:
        call, their = await dial_and_take(alice, bob)
        await await_until(
            lambda: "CallMediaUpdated" in seen_b.seen and "CallMediaUpdated" in seen_a.seen, 5.0
        )
        assert seen_a.take() == ["ringing", "connected", "CallMediaUpdated"]
        assert seen_b.take() == ["IncomingCall", "answering", "connected", "CallMediaUpdated"]
        assert [name(e) for e in their.events] == [
            "IncomingCall",
            "answering",
            "connected",
            "CallMediaUpdated",
        ]
        call.hold()
        await await_until(lambda: their.remote_hold, 5.0)
        call.resume()
        await await_until(lambda: not their.remote_hold and not call.local_hold, 5.0)
        await await_until(lambda: len(seen_b.seen) >= 4, 5.0)
        held = ["HoldChanged", "CallMediaUpdated"]
        assert seen_a.take() == held + held
        assert seen_b.take() == held + held
        their.hangup()
        await call.wait_ended(5)
        await their.wait_ended(5)
        assert seen_b.take() == ["terminating", "terminated"]
        assert seen_a.take() == ["terminated"]
        assert call.ending is CallEnding.HUNG_UP_THERE and their.ending is CallEnding.HUNG_UP_HERE
        summary = call.summary()
        assert summary["ending"] == "hung_up_there" and summary["answered"] is True
        assert call.history[-1] == ("terminated", "the far end hung up")
    finally:
        await alice.stop()
        await bob.stop()


async def test_commands_on_ended_calls_and_unanswered_ring_timeout() -> None:
    alice, bob = Phone(config()), Phone(config())  # bob does not answer
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(uri(bob), ring_timeout=1.0)
        assert await call.wait_for(CallState.TERMINATED, timeout=5) is CallState.TERMINATED
        assert call.ending is CallEnding.NO_ANSWER and not call.answered
        their = next(iter(bob.calls.values()))
        await their.wait_ended(5)
        assert their.ending is CallEnding.CANCELLED_THERE
        try:
            call.hold()
        except PhoneError as exc:
            assert "not connected" in str(exc)
        else:
            raise AssertionError("hold on an ended call must fail")
        call.hangup()  # nothing to do, and no error
    finally:
        await alice.stop()
        await bob.stop()


async def test_a_far_end_that_goes_silent_is_hung_up() -> None:
    """A caller that stops sending media after the ACK must not hold a call slot for ever."""
    alice, bob = Phone(config()), Phone(config(auto_answer=True, rtp_timeout=1.0))
    await alice.start()
    await bob.start()
    try:
        call, their = await dial_and_take(alice, bob)
        await await_until(lambda: their.summary()["media"]["packets_received"] > 5, 5.0)
        assert call.channel is not None
        call.channel.close()  # alice's media stops; her signalling stays up
        await their.wait_ended(5)
        assert their.ending is CallEnding.TIMED_OUT and "no media" in their.reason
        await call.wait_ended(5)
        assert call.ending is CallEnding.HUNG_UP_THERE
    finally:
        await alice.stop()
        await bob.stop()


async def test_a_reinvite_to_plain_rtp_is_refused_with_an_alarm() -> None:
    """A peer that re-INVITEs an SRTP call to plain RTP: 488, the call stays keyed, and the refusal
    reaches listeners and the call as a SecurityAlarm."""
    from securephone.media.negotiation import SrtpPolicy
    from securephone.sip.events import SecurityAlarm

    def keyed(**calls: Any) -> Any:
        return parse_config(
            {
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {
                    "port_min": 49000,
                    "port_max": 49999,
                    "srtp": "mandatory",
                    "keying": ["sdes"],
                    "allow_sdes_over_plaintext": True,
                },
                "calls": calls,
            }
        )

    alice, bob = Phone(keyed()), Phone(keyed(auto_answer=True))
    alarms: list[SecurityAlarm] = []
    bob.add_listener(lambda e: alarms.append(e) if isinstance(e, SecurityAlarm) else None)
    await alice.start()
    await bob.start()
    try:
        call, their = await dial_and_take(alice, bob)
        assert their.channel is not None and their.channel.stream.srtp is not None
        assert call.sdp is not None
        call.sdp.srtp = SrtpPolicy(mode="off")  # alice turns hostile: her next offer has no keys
        call.hold()
        await await_until(lambda: bool(alarms), 5.0)
        assert alarms[0].call_id == their.key and "downgrade refused" in alarms[0].text
        assert any(isinstance(e, SecurityAlarm) for e in their.events)
        assert their.state is CallState.CONNECTED and their.channel.stream.srtp is not None
        assert their.security["alarms"] and not their.remote_hold  # the hold was refused too
        before = their.summary()["media"]["srtp"]["packets_unprotected"]
        await await_until(
            lambda: their.summary()["media"]["srtp"]["packets_unprotected"] > before + 10, 5.0
        )
        call.hangup()
        await their.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


async def test_start_up_objects_are_frozen_once_per_process() -> None:
    """After a phone has started, what exists is out of the cyclic collector's view, so a full
    collection during calls walks only what calls create (aio.phone.freeze_startup_objects)."""
    import gc

    from securephone.aio import phone as phone_module

    phone = Phone(config())
    await phone.start()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        kept = [[i] for i in range(5000)]  # new tracked objects after the freeze
        phone_module.freeze_startup_objects()  # a second phone's start: no second freeze
        assert gc.get_freeze_count() == frozen
        assert len(kept) == 5000
    finally:
        await phone.stop()
