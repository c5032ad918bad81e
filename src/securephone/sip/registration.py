"""Registration of one account with its registrar (RFC 3261 §10), with retry back-off (RFC 5626 §4.5).

Sans-I/O: the object builds REGISTER requests and reads their responses; the user agent sends them through
its transaction layer and calls ``handle_timer(now)`` at ``get_timer()``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import Enum

from securephone.errors import RemoteProtocolError
from securephone.sip.auth import Challenge, DigestClient, challenges_of
from securephone.sip.headers import NameAddr, parse_delta_seconds
from securephone.sip.message import Headers, Request, Response
from securephone.sip.uri import SipUri

log = logging.getLogger(__name__)


class RegState(Enum):
    """What a user sees of an account's registration."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


R = RegState
TRANSITIONS: dict[RegState, frozenset[RegState]] = {
    R.UNREGISTERED: frozenset({R.REGISTERING}),
    R.REGISTERING: frozenset({R.REGISTERED, R.FAILED, R.UNREGISTERING, R.UNREGISTERED}),
    R.REGISTERED: frozenset({R.REGISTERING, R.FAILED, R.UNREGISTERING}),
    R.FAILED: frozenset({R.REGISTERING, R.UNREGISTERED, R.UNREGISTERING}),
    R.UNREGISTERING: frozenset({R.UNREGISTERED}),
}


@dataclass(frozen=True)
class RetryPolicy:
    """RFC 5626 §4.5 back-off: base doubles per failure, capped, randomised to 50–100 %.

    The base is ``base`` (30 s) when no flow of the account works and three times that (the
    RFC's 90 s) while another flow still carries the registration.
    """

    base: float = 30.0
    maximum: float = 1800.0

    def delay(self, failures: int, rng: random.Random, *, others_up: bool = False) -> float:
        base = self.base * 3 if others_up else self.base
        upper = min(self.maximum, base * 2 ** max(0, failures - 1))
        return float(upper * rng.uniform(0.5, 1.0))


@dataclass(frozen=True)
class StateChange:
    """One registration state change with the reason a person can read."""

    old: RegState
    new: RegState
    reason: str
    status: int | None


def refresh_delay(granted: int) -> float:
    """Refresh well before expiry: at the later of half-time and one minute before the end."""
    return max(granted * 0.5, granted - 60.0)


class Registration:
    """The REGISTER dialogue of one account: register, refresh, retry, unregister."""

    def __init__(
        self,
        *,
        aor: SipUri,
        registrar: SipUri,
        contact: NameAddr,
        auth: DigestClient,
        expires: int,
        call_id: str,
        from_tag: str,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        reg_id: int | None = None,
        proxy: SipUri | None = None,
    ) -> None:
        self.aor = aor
        self.registrar = registrar
        self.contact = contact
        self.auth = auth
        self.expires = expires
        self.call_id = call_id
        self.from_tag = from_tag
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self.state = RegState.UNREGISTERED
        self.reason = "not registered yet"
        self.status: int | None = None
        self.granted: int | None = None
        self.expires_at: float | None = None
        self.changes: list[StateChange] = []
        self._cseq = 0
        self._failures = 0
        self._auth_tries = 0
        self._challenges: list[Challenge] = []
        self._wake_at: float | None = None
        self._want_expires = expires
        self.supported: str | None = None  # a Supported header value (RFC 5626 §4.2.1)
        self.outbound_granted: bool | None = None  # the registrar answered Require: outbound
        # RFC 5626 §4.4.1: the registrar's Flow-Timer (seconds) in the last 2xx; keep-alives on
        # this flow must then come at least that often. None: none was given.
        self.flow_timer: int | None = None
        self.flow_timer_changed = False  # set by a 2xx that changed it; the user agent clears it
        # RFC 5626 §4.2: with several outbound proxies, one registration per flow: its reg-id,
        # the proxy it goes through (a pre-loaded Route ``;lr;ob``), whether another flow works.
        self.reg_id = reg_id
        self.proxy = proxy
        self.other_flows_up = False

    # -- state -----------------------------------------------------------------------------------
    def _set_state(self, new: RegState, reason: str, status: int | None = None) -> None:
        old = self.state
        if new is not old and new not in TRANSITIONS[old]:
            raise RuntimeError(f"registration {self.aor}: illegal {old.value} -> {new.value}")
        self.reason, self.status = reason, status
        if new is not old:
            log.info("registration %s: %s -> %s (%s)", self.aor, old.value, new.value, reason)
            self.state = new
            self.changes.append(StateChange(old, new, reason, status))

    def take_changes(self) -> list[StateChange]:
        """State changes since the last call."""
        out, self.changes = self.changes, []
        return out

    # -- requests --------------------------------------------------------------------------------
    def start(self) -> Request:
        """Begin (or refresh) the registration."""
        self._wake_at = None
        self._auth_tries = 0
        self._want_expires = self.expires
        self._set_state(RegState.REGISTERING, "sending REGISTER")
        return self._build(self.expires)

    def stop(self) -> Request | None:
        """Unregister (Expires: 0) when a binding may exist; None when there is nothing to remove."""
        self._wake_at = None
        if self.state in (RegState.UNREGISTERED, RegState.UNREGISTERING):
            return None
        if self.state is RegState.FAILED and self.granted is None:
            self._set_state(RegState.UNREGISTERED, "stopped")
            return None
        self._auth_tries = 0
        self._want_expires = 0
        self._set_state(RegState.UNREGISTERING, "removing the binding")
        return self._build(0)

    def _build(self, expires: int) -> Request:
        self._cseq += 1
        headers = Headers()
        headers.add("From", str(NameAddr(self.aor, params=(("tag", self.from_tag),))))
        headers.add("To", str(NameAddr(self.aor)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self._cseq} REGISTER")
        headers.add("Max-Forwards", "70")
        if self.proxy is not None:
            headers.add("Route", str(NameAddr(flow_route(self.proxy))))
        headers.add("Contact", str(self.contact))
        headers.add("Expires", str(expires))
        if self.supported:
            headers.add("Supported", self.supported)
        request = Request("REGISTER", self.registrar, headers)
        for challenge in self._challenges:
            name, value = self.auth.authorize(challenge, "REGISTER", str(self.registrar))
            request.headers.add(name, value)
        return request

    # -- responses -------------------------------------------------------------------------------
    def on_response(self, response: Response, now: float) -> Request | None:
        """Read a final response; returns the next REGISTER to send at once (an auth retry), if any."""
        status = response.status
        if status < 200:
            return None
        if status < 300:
            self._on_success(response, now)
            return None
        if status in (401, 407):
            return self._on_challenge(response, now)
        if status == 423:
            return self._on_too_brief(response, now)
        text = f"{status} {response.reason}"
        if status == 403:
            text += " (the server refused these credentials)"
        self._fail(text, status, now)
        return None

    def _on_success(self, response: Response, now: float) -> None:
        self._auth_tries = 0
        if self._want_expires == 0:
            self.granted = None
            self.expires_at = None
            self._set_state(RegState.UNREGISTERED, "unregistered", response.status)
            return
        granted = self._granted_expiry(response)
        if self.supported:
            require = (response.headers.get("Require") or "").lower()
            self.outbound_granted = "outbound" in [t.strip() for t in require.split(",")]
            self._read_flow_timer(response)
        self._failures = 0
        self.granted = granted
        self.expires_at = now + granted
        self._wake_at = now + refresh_delay(granted)
        self._set_state(RegState.REGISTERED, f"registered for {granted} s", response.status)

    def _read_flow_timer(self, response: Response) -> None:
        """RFC 5626 §4.4.1: ``Flow-Timer: delta-seconds`` of a 2xx to our outbound REGISTER.

        A value that is not a positive number of seconds is ignored (and logged): the configured
        keep-alive interval then applies, as when the registrar sends none.
        """
        value = response.headers.get("Flow-Timer")
        seconds = None if value is None else parse_delta_seconds(value)
        if value is not None and not seconds:
            log.warning("registration %s: ignoring Flow-Timer %r", self.aor, value[:40])
            seconds = None
        if seconds != self.flow_timer:
            self.flow_timer = seconds
            self.flow_timer_changed = True

    def _granted_expiry(self, response: Response) -> int:
        """RFC 3261 §10.2.4: our Contact's expires param, else the Expires header, else what we asked."""
        try:
            for contact in response.contacts:
                if _same_contact(contact, self.contact) and contact.expires is not None:
                    return contact.expires
        except RemoteProtocolError:
            pass
        value = response.headers.get("Expires")
        if value is not None and value.strip().isdigit():
            return int(value.strip())
        return self._want_expires

    def _on_challenge(self, response: Response, now: float) -> Request | None:
        challenges = challenges_of(response)
        stale = any(c.stale for c in challenges)
        if not challenges:
            self._fail(f"{response.status}: no digest challenge we support", response.status, now)
            return None
        if self._auth_tries >= 1 and not stale:
            reason = f"{response.status} {response.reason}: authentication failed (check user and password)"
            self._fail(reason, response.status, now)
            return None
        self._auth_tries += 1
        self._challenges = challenges
        return self._build(self._want_expires)

    def _on_too_brief(self, response: Response, now: float) -> Request | None:
        minimum = response.headers.get("Min-Expires", "") or ""
        if not minimum.strip().isdigit() or int(minimum) <= self._want_expires:
            self._fail("423 Interval Too Brief without a usable Min-Expires", 423, now)
            return None
        self.expires = self._want_expires = int(minimum)
        return self._build(self._want_expires)

    def new_server(self) -> None:
        """RFC 3263 §4.3 failover: the next server challenges anew, so forget this one's nonce."""
        self._auth_tries = 0
        self._challenges = []

    def flow_failed(self, reason: str, now: float) -> None:
        """The connection carrying a live registration broke (RFC 5626 §4.4): register again soon."""
        if self.state is not RegState.REGISTERED:
            return
        self._wake_at = now + self.rng.uniform(0.5, 1.5)
        self._set_state(RegState.FAILED, f"{reason}; registering again", None)

    def on_timeout(self, reason: str, now: float) -> None:
        """The REGISTER transaction timed out or could not be sent."""
        self._fail(reason, None, now)

    def _fail(self, reason: str, status: int | None, now: float) -> None:
        if self.state is RegState.UNREGISTERING:
            self.granted = None
            self._set_state(RegState.UNREGISTERED, f"unregister failed: {reason}", status)
            return
        self._failures += 1
        self._auth_tries = 0
        delay = self.retry.delay(self._failures, self.rng, others_up=self.other_flows_up)
        self._wake_at = now + delay
        self._set_state(RegState.FAILED, f"{reason}; retrying in {delay:.0f} s", status)

    # -- timers ----------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When to refresh or retry."""
        return self._wake_at

    def handle_timer(self, now: float) -> Request | None:
        """Refresh or retry when due; returns the REGISTER to send."""
        if self._wake_at is None or now < self._wake_at:
            return None
        if self.state not in (RegState.REGISTERED, RegState.FAILED):
            self._wake_at = None
            return None
        return self.start()


def flow_route(proxy: SipUri) -> SipUri:
    """The pre-loaded Route of a flow's REGISTER: its outbound proxy, ``lr`` and ``ob`` (RFC 5626 §4.2.1)."""
    return proxy.with_params(lr=None, ob=None)


def _same_contact(a: NameAddr, b: NameAddr) -> bool:
    """Loose RFC 3261 §19.1.4 comparison, good enough to find our binding in a 200 OK."""
    ua, ub = a.uri, b.uri
    if not isinstance(ua, SipUri) or not isinstance(ub, SipUri):
        return False
    same_port = (ua.port or 5060) == (ub.port or 5060)
    return ua.user == ub.user and ua.host.lower() == ub.host.lower() and same_port
