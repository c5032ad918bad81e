"""A call in memory: two ``MediaStream``s negotiated with each other, one talking to the other.

What one side hears of the other through a codec, without sockets or a clock — for codec
quality measurements (``make bench``) and tests. The offer/answer is the real one
(``create_offer`` / ``create_answer`` / ``process_answer``, RFC 3264), so the codec, its
payload type, fmtp and frame size are what a call would use. Packets go straight from the
sender's ``next_packet`` to the receiver's ``receive`` once per packet time; ``drop`` names
packet indices to lose on the way.
"""

from __future__ import annotations

import random
from collections.abc import Collection

import numpy as np

from securephone.media.codecs.base import Pcm
from securephone.media.session import MediaStream
from securephone.sdp.offer_answer import (
    MediaCapabilities,
    create_answer,
    create_offer,
    process_answer,
)

__all__ = ["connected_pair", "loopback_call"]

_CALLER, _CALLEE = ("127.0.0.1", 40000), ("127.0.0.1", 42000)


def connected_pair(codec: str) -> tuple[MediaStream, MediaStream]:
    """Caller and callee streams after an offer/answer that agreed on ``codec`` only."""
    caps = MediaCapabilities(codecs=(codec,))
    offer = create_offer(caps, _CALLER[1], 1, 0)
    answer, at_callee = create_answer(offer, caps, _CALLEE[1], 2, 0)
    at_caller = process_answer(offer, answer, caps)
    caller = MediaStream("caller@127.0.0.1", rng=random.Random(1))
    callee = MediaStream("callee@127.0.0.1", rng=random.Random(2))
    caller.configure(at_caller)
    callee.configure(at_callee)
    return caller, callee


def loopback_call(codec: str, pcm: Pcm, drop: Collection[int] = ()) -> tuple[Pcm, int]:
    """``pcm`` (mono int16 at the codec's audio rate) sent by the caller; what the callee
    plays out, and its rate. The playout runs three frames longer than the input, so the
    jitter buffer's prefetch delay does not cut off the end."""
    caller, callee = connected_pair(codec)
    size, period = caller.samples, caller.ptime / 1000
    frames = -(-pcm.size // size)
    padded = np.zeros((frames + 3) * size, dtype=np.int16)
    padded[: pcm.size] = pcm
    heard = []
    for n in range(frames + 3):
        packet = caller.next_packet(padded[n * size : (n + 1) * size])
        if packet is not None and n not in drop:
            callee.receive(packet, _CALLER, n * period)
        heard.append(callee.playout(n * period))
    return np.concatenate(heard).astype(np.int16), callee.sample_rate
