"""RFC 4028 session timers (basic): who refreshes a call, how often, and when it expires.

A call whose far end vanished without a BYE must not hold a call slot for ever. Both sides agree a
session interval and a refresher in the INVITE/2xx (``Session-Expires: N;refresher=uac|uas``); the
refresher sends a re-INVITE at half the interval, and a session that is not refreshed in time is
ended with BYE. UPDATE is not used (re-INVITE only). Pure functions: the call manager keeps the
deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass

from securephone.sip.message import Request, Response

SESSION_EXPIRES = 1800  # what we ask for (RFC 4028 §4 recommends 1800 s)
MIN_SE = 90  # the smallest interval we accept (RFC 4028 §5: the minimum is 90 s)
TIMER = "timer"  # the option tag


@dataclass(frozen=True)
class SessionTimer:
    """An agreed session timer, seen from our side of the call."""

    interval: int
    we_refresh: bool

    def refresh_at(self, now: float) -> float | None:
        """RFC 4028 §10: the refresher sends its refresh at half the interval."""
        return now + self.interval / 2 if self.we_refresh else None

    def expires_at(self, now: float) -> float:
        """RFC 4028 §10: BYE before the expiry, by the lesser of 32 s and a third of the interval."""
        return now + self.interval - min(32.0, self.interval / 3)

    def header(self, we_are_uac: bool) -> str:
        """``Session-Expires`` for a request or 2xx we send (``we_are_uac``: our request)."""
        refresher = "uac" if self.we_refresh == we_are_uac else "uas"
        return f"{self.interval};refresher={refresher}"


@dataclass(frozen=True)
class TooSmall:
    """RFC 4028 §8.1: the request asked for less than we accept: answer 422 with Min-SE."""

    min_se: int


def _parse(value: str | None) -> tuple[int, str | None] | None:
    """``delta-seconds *(;param)`` -> (seconds, refresher) or None when absent or malformed."""
    if value is None:
        return None
    head, *params = (part.strip() for part in value.split(";"))
    if not head.isdigit():
        return None
    refresher = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = val.strip().lower()
    return int(head), refresher


def supports_timer(message: Request | Response) -> bool:
    """The message lists ``timer`` in Supported or Require."""
    tags = [
        tag.strip().lower()
        for name in ("Supported", "Require")
        for value in message.headers.get_all(name)
        for tag in value.split(",")
    ]
    return TIMER in tags


def for_request(request: Request, min_se: int = MIN_SE) -> SessionTimer | TooSmall | None:
    """RFC 4028 §9: a UAS's view of an INVITE (or re-INVITE): the timer, a 422, or none.

    Without a refresher in the request the UAS picks: the UAC when it supports timers, else itself.
    """
    asked = _parse(request.headers.get("Session-Expires"))
    if asked is None:
        return None
    interval, refresher = asked
    uac_supports = supports_timer(request)
    if interval < min_se:
        if uac_supports:
            return TooSmall(min_se)
        interval = min_se  # §8.1: a UAC without the extension cannot handle a 422
    if refresher is None:
        refresher = "uac" if uac_supports else "uas"
    return SessionTimer(interval, we_refresh=refresher == "uas")


def for_response(response: Response) -> SessionTimer | None:
    """RFC 4028 §7.2: a UAC's view of the 2xx: no Session-Expires, no session timer."""
    agreed = _parse(response.headers.get("Session-Expires"))
    if agreed is None:
        return None
    interval, refresher = agreed
    return SessionTimer(interval, we_refresh=refresher != "uas")  # §7.2: absent means uac
