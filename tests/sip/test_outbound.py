"""RFC 5626 outbound header content and the STUN-learnt Contact address (Router, Registration)."""

from __future__ import annotations

from securephone.sip.auth import DigestClient, DigestCredentials
from securephone.sip.message import Headers, Response
from securephone.sip.registration import Registration
from securephone.sip.router import AccountSpec, Router
from securephone.sip.uri import SipUri

URN = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"


def spec(outbound: bool) -> AccountSpec:
    aor = SipUri("sip", "example.test", "alice")
    return AccountSpec("a", aor, SipUri("sip", "example.test"), "alice", "pw", outbound=outbound)


def router() -> Router:
    r = Router({"udp": ("192.0.2.10", 5060)})
    r.instance = URN
    return r


def test_register_contact_has_instance_and_reg_id_rfc5626_4_2_1() -> None:
    contact = router().contact_for(spec(True), register=True)
    assert contact.param("+sip.instance") == f"<{URN}>"
    assert contact.param("reg-id") == "1"
    assert isinstance(contact.uri, SipUri) and contact.uri.param("ob") is None
    assert f'+sip.instance="<{URN}>"' in str(contact)


def test_dialog_contact_has_ob_and_no_instance_rfc5626_4_3() -> None:
    contact = router().contact_for(spec(True))
    assert isinstance(contact.uri, SipUri) and contact.uri.param("ob") == ""
    assert contact.param("+sip.instance") is None and contact.param("reg-id") is None
    assert str(contact) == "<sip:alice@192.0.2.10:5060;ob>"


def test_without_outbound_nothing_is_added() -> None:
    r = router()
    assert str(r.contact_for(spec(False), register=True)) == "<sip:alice@192.0.2.10:5060>"
    assert str(r.contact_for(spec(False))) == "<sip:alice@192.0.2.10:5060>"


def test_public_address_replaces_the_listener_in_contact() -> None:
    r = router()
    r.public["udp"] = ("198.51.100.1", 40000)
    assert str(r.contact_for(spec(False))) == "<sip:alice@198.51.100.1:40000>"
    assert r.contact_for(spec(False), "tcp").uri.host == "192.0.2.10"  # type: ignore[union-attr]


def _registration() -> Registration:
    s = spec(True)
    reg = Registration(
        aor=s.aor,
        registrar=s.registrar,
        contact=router().contact_for(s, register=True),
        auth=DigestClient(DigestCredentials("alice", "pw")),
        expires=600,
        call_id="c1",
        from_tag="t1",
    )
    reg.supported = "outbound, path"
    return reg


def _ok(request_headers: Headers, require: str | None, flow_timer: str | None = None) -> Response:
    headers = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        headers.add(name, str(request_headers.get(name) or "x"))
    headers.add("To", "<sip:alice@example.test>;tag=r")
    headers.add("Contact", f"{request_headers.get('Contact')};expires=600")
    if require:
        headers.add("Require", require)
    if flow_timer is not None:
        headers.add("Flow-Timer", flow_timer)
    return Response(200, "OK", headers)


def test_register_says_supported_outbound_and_reads_require() -> None:
    reg = _registration()
    request = reg.start()
    assert request.headers.get("Supported") == "outbound, path"
    reg.on_response(_ok(request.headers, None), 0.0)
    assert reg.outbound_granted is False
    request = reg.start()
    reg.on_response(_ok(request.headers, "outbound"), 1.0)
    assert reg.outbound_granted is True


def test_flow_timer_of_the_registrar_is_read_rfc5626_4_4_1() -> None:
    reg = _registration()
    request = reg.start()
    reg.on_response(_ok(request.headers, "outbound", "20"), 0.0)
    assert (reg.flow_timer, reg.flow_timer_changed) == (20, True)
    reg.flow_timer_changed = False
    request = reg.start()
    reg.on_response(_ok(request.headers, "outbound", " 20 "), 1.0)  # a refresh, the same value
    assert (reg.flow_timer, reg.flow_timer_changed) == (20, False)
    request = reg.start()
    reg.on_response(_ok(request.headers, "outbound", "15"), 2.0)
    assert (reg.flow_timer, reg.flow_timer_changed) == (15, True)
    for bad in ("0", "soon", "-5", ""):  # not a positive number of seconds: ignored
        request = reg.start()
        reg.on_response(_ok(request.headers, "outbound", bad), 3.0)
        assert reg.flow_timer is None, bad
    request = reg.start()
    reg.on_response(_ok(request.headers, "outbound"), 4.0)  # none given any more
    assert reg.flow_timer is None


def test_flow_timer_is_read_only_when_we_asked_for_outbound() -> None:
    reg = _registration()
    reg.supported = None
    request = reg.start()
    reg.on_response(_ok(request.headers, None, "20"), 0.0)
    assert (reg.flow_timer, reg.flow_timer_changed) == (None, False)
