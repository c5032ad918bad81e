"""ZRTP (RFC 6189): sans-I/O key agreement for SRTP in the media path, end to end.

See docs/zrtp.md. Modules: :mod:`.packet` (framing, CRC-32C, demultiplexing),
:mod:`.messages` (every §5 message), :mod:`.crypto` (hash chain, key agreements, KDF, SAS),
:mod:`.algorithms` (offers and agreement), :mod:`.cache` (retained secrets),
:mod:`.session` (the state machine) and :mod:`.events`.
"""

from __future__ import annotations

from .packet import ZrtpPacket, ZrtpParseError, is_zrtp

__all__ = ["ZrtpPacket", "ZrtpParseError", "is_zrtp"]
