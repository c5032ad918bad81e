"""Dialogs (RFC 3261 §12): identity, route set, CSeq spaces, remote target refresh."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

from securephone.errors import RemoteProtocolError
from securephone.sip.headers import NameAddr, parse_name_addr_list
from securephone.sip.message import Headers, Request, Response
from securephone.sip.uri import SipUri

log = logging.getLogger(__name__)


class DialogState(Enum):
    """RFC 3261 §12: a dialog is early (from a 1xx with a tag) or confirmed (from a 2xx)."""

    EARLY = "early"
    CONFIRMED = "confirmed"


DialogId = tuple[str, str, str]  # Call-ID, local tag, remote tag


def _record_routes(message: Request | Response) -> list[NameAddr]:
    routes: list[NameAddr] = []
    for value in message.headers.get_all("Record-Route"):
        routes.extend(parse_name_addr_list(value))
    return routes


def _contact_uri(message: Request | Response) -> SipUri:
    contacts = message.contacts
    if len(contacts) != 1 or not isinstance(contacts[0].uri, SipUri):
        raise RemoteProtocolError("a dialog needs exactly one SIP Contact (RFC 3261 §12.1)")
    return contacts[0].uri


@dataclass
class Dialog:
    """The state one user agent keeps for one dialog (RFC 3261 §12.1)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipUri
    local_seq: int
    remote_seq: int | None = None
    route_set: list[NameAddr] = field(default_factory=list)
    secure: bool = False
    state: DialogState = DialogState.EARLY

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """RFC 3261 §12.1.2: from our INVITE and a 1xx/2xx with a To tag."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if not remote_tag or not local_tag:
            raise RemoteProtocolError("a dialog-creating response needs a To tag")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=NameAddr(request.from_.uri, request.from_.display_name),
            remote_uri=NameAddr(request.to.uri, request.to.display_name),
            remote_target=_contact_uri(response),
            local_seq=request.cseq.seq,
            route_set=list(reversed(_record_routes(response))),
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.status < 300 else DialogState.EARLY,
        )

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, local_seq: int) -> Dialog:
        """RFC 3261 §12.1.1: from an INVITE we answer with our tag."""
        remote_tag = request.from_.tag
        if not remote_tag:
            raise RemoteProtocolError("the request has no From tag")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=NameAddr(request.to.uri, request.to.display_name),
            remote_uri=NameAddr(request.from_.uri, request.from_.display_name),
            remote_target=_contact_uri(request),
            local_seq=local_seq,
            remote_seq=request.cseq.seq,
            route_set=_record_routes(request),
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
        )

    def update_from_response(self, response: Response) -> None:
        """A 2xx confirms an early dialog and refreshes the target; the route set stays (§12.2.1.2)."""
        if response.status < 300 and self.state is DialogState.EARLY:
            self.route_set = list(reversed(_record_routes(response)))
            self.state = DialogState.CONFIRMED
        if response.contacts:
            self.remote_target = _contact_uri(response)

    def refresh_target(self, request: Request) -> None:
        """A target refresh request (re-INVITE, UPDATE) may move the remote target (§12.2.2)."""
        if request.contacts:
            self.remote_target = _contact_uri(request)

    def check_remote_cseq(self, request: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (answer 500). ACK/CANCEL don't count."""
        if request.method in ("ACK", "CANCEL"):
            return True
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes first: the first route, or the remote target."""
        if self.route_set and isinstance(self.route_set[0].uri, SipUri):
            return self.route_set[0].uri
        return self.remote_target

    def create_request(self, method: str, *, cseq: int | None = None) -> Request:
        """§12.2.1.1: a request inside the dialog (loose routing; strict routing per §12.2.1.1 too)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        headers = Headers()
        headers.add("From", str(self.local_uri.with_params(tag=self.local_tag)))
        headers.add("To", str(self.remote_uri.with_params(tag=self.remote_tag)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Max-Forwards", "70")
        uri = self._request_uri(headers)
        return Request(method, uri, headers)

    def _request_uri(self, headers: Headers) -> SipUri:
        routes = list(self.route_set)
        first = routes[0].uri if routes else None
        if isinstance(first, SipUri) and not first.has_param("lr"):
            for route in routes[1:]:  # strict routing: the first route becomes the Request-URI
                headers.add("Route", str(route))
            headers.add("Route", str(NameAddr(self.remote_target)))
            return first
        for route in routes:
            headers.add("Route", str(route))
        return self.remote_target
