"""RFC 4475 "SIP Torture Test Messages": every message of the RFC's archive (section 4).

The 49 files in tests/vectors/rfc4475/ are the RFC's own messages (see tests/vectors/README.md).
Expectation per file, from the RFC text of its section ("parse" = the parser must accept it;
a number = parse_message raises RemoteProtocolError with that status_hint; "+req" = the error
is an InvalidRequestError carrying the request so that a UAS can answer it):

| file       | RFC 4475 § | title (abridged)                               | expect      |
|------------|------------|------------------------------------------------|-------------|
| wsinv      | 3.1.1.1    | A short tortuous INVITE                        | parse       |
| intmeth    | 3.1.1.2    | Wide range of valid characters                 | parse       |
| esc01      | 3.1.1.3    | Valid use of the % escaping mechanism          | parse       |
| escnull    | 3.1.1.4    | Escaped nulls in URIs                          | parse       |
| esc02      | 3.1.1.5    | Use of % when it is not an escape              | parse       |
| lwsdisp    | 3.1.1.6    | No LWS between display name and <              | parse       |
| longreq    | 3.1.1.7    | Long values in header fields                   | parse       |
| dblreq     | 3.1.1.8    | Extra trailing octets in a UDP datagram        | parse       |
| semiuri    | 3.1.1.9    | Semicolon-separated parameters in URI user part| parse       |
| transports | 3.1.1.10   | Varied and unknown transport types             | parse       |
| mpart01    | 3.1.1.11   | Multipart MIME message                         | parse       |
| unreason   | 3.1.1.12   | Unusual reason phrase                          | parse       |
| noreason   | 3.1.1.13   | Empty reason phrase                            | parse       |
| badinv01   | 3.1.2.1    | Extraneous header field separators             | 400 +req    |
| clerr      | 3.1.2.2    | Content-Length larger than message             | 400 +req    |
| ncl        | 3.1.2.3    | Negative Content-Length                        | 400 +req    |
| scalar02   | 3.1.2.4    | Request scalar fields with overlarge values    | 400 +req    |
| scalarlg   | 3.1.2.5    | Response scalar fields with overlarge values   | 400 (resp.) |
| quotbal    | 3.1.2.6    | Unterminated quoted string in display name     | 400 +req    |
| ltgtruri   | 3.1.2.7    | <> enclosing Request-URI                       | 400 +req    |
| lwsruri    | 3.1.2.8    | Malformed SIP Request-URI (embedded LWS)       | 400         |
| lwsstart   | 3.1.2.9    | Multiple SP separating Request-Line elements   | 400         |
| trws       | 3.1.2.10   | SP characters at end of Request-Line           | 400         |
| escruri    | 3.1.2.11   | Escaped headers in SIP Request-URI             | 400 +req    |
| baddate    | 3.1.2.12   | Invalid time zone in Date header field         | 400 +req    |
| regbadct   | 3.1.2.13   | Failure to enclose name-addr URI in <>         | 400 +req    |
| badaspec   | 3.1.2.14   | Spaces within addr-spec                        | 400 +req    |
| baddn      | 3.1.2.15   | Non-token characters in display name           | 400 +req    |
| badvers    | 3.1.2.16   | Unknown protocol version                       | 505 +req    |
| mismatch01 | 3.1.2.17   | Start line and CSeq method mismatch            | 400 +req    |
| mismatch02 | 3.1.2.18   | Unknown method with CSeq method mismatch       | 400 +req    |
| bigcode    | 3.1.2.19   | Overlarge response code                        | 400 (resp.) |
| badbranch  | 3.2.1      | Missing transaction identifier                 | parse       |
| insuf      | 3.3.1      | Missing required header fields                 | 400 +req    |
| unkscm     | 3.3.2      | Request-URI with unknown scheme                | 416 +req    |
| novelsc    | 3.3.3      | Request-URI with known but atypical scheme     | 416 +req    |
| unksm2     | 3.3.4      | Unknown URI schemes in header fields           | parse       |
| bext01     | 3.3.5      | Proxy-Require and Require                      | parse       |
| invut      | 3.3.6      | Unknown Content-Type                           | parse       |
| regaut01   | 3.3.7      | Unknown authorization scheme                   | parse       |
| multi01    | 3.3.8      | Multiple values in single-value required fields| 400 +req    |
| mcl01      | 3.3.9      | Multiple Content-Length values                 | 400 +req    |
| bcast      | 3.3.10     | 200 OK response with broadcast Via sent-by     | parse       |
| zeromf     | 3.3.11     | Max-Forwards of zero                           | parse       |
| cparam01   | 3.3.12     | REGISTER with a Contact header parameter       | parse       |
| cparam02   | 3.3.13     | REGISTER with a url-parameter                  | parse       |
| regescrt   | 3.3.14     | REGISTER with a URL escaped header             | parse       |
| sdp01      | 3.3.15     | Unacceptable Accept offering                   | parse       |
| inv2543    | 3.4.1      | INVITE with RFC 2543 syntax                    | parse       |

Why the non-obvious rows are what they are:
- §3.1.2 messages are malformed: the RFC asks the parser to reject them (a UAS answers 400,
  505 for badvers). lwsruri/lwsstart/trws break the Request-Line itself, so no request object
  can be built (plain RemoteProtocolError). scalarlg and bigcode are responses: the RFC says
  they are discarded; there is nothing to answer, so plain RemoteProtocolError.
- baddate: SIP-date allows only "GMT" (RFC 3261 §20.17); it sits in §3.1.2, so it is rejected.
- mismatch01/02 and insuf/multi01/mcl01 are "application layer" in the RFC (a UAS answers 400);
  this parser does these essential-header checks itself, so they fail at parse time with 400.
- unkscm/novelsc: the RFC says the message is well formed and a UAS answers 416 (novelsc: when
  it will never accept that scheme, which holds for a phone: only sip/sips/tel are accepted).
  parse_message raises 416 *with the parsed request attached*, which proves it was well formed.
- badbranch (§3.2), bext01 (420 is decided above the parser), invut (415), regaut01 (401/403),
  sdp01 (406), zeromf (483 for non-OPTIONS), regescrt, inv2543: well formed, so they parse and
  the layers above decide what to answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from securephone.errors import RemoteProtocolError
from securephone.sip.headers import Via
from securephone.sip.message import (
    InvalidRequestError,
    Request,
    Response,
    StreamParser,
    make_response,
    parse_message,
)
from securephone.sip.uri import AbsoluteUri, SipUri, unescape

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc4475"


@dataclass(frozen=True)
class Case:
    section: str
    status: int | None  # None: must parse
    attached: bool = False  # error carries the request (InvalidRequestError)


PARSE = None
CASES: dict[str, Case] = {
    "wsinv": Case("3.1.1.1", PARSE),
    "intmeth": Case("3.1.1.2", PARSE),
    "esc01": Case("3.1.1.3", PARSE),
    "escnull": Case("3.1.1.4", PARSE),
    "esc02": Case("3.1.1.5", PARSE),
    "lwsdisp": Case("3.1.1.6", PARSE),
    "longreq": Case("3.1.1.7", PARSE),
    "dblreq": Case("3.1.1.8", PARSE),
    "semiuri": Case("3.1.1.9", PARSE),
    "transports": Case("3.1.1.10", PARSE),
    "mpart01": Case("3.1.1.11", PARSE),
    "unreason": Case("3.1.1.12", PARSE),
    "noreason": Case("3.1.1.13", PARSE),
    "badinv01": Case("3.1.2.1", 400, True),
    "clerr": Case("3.1.2.2", 400, True),
    "ncl": Case("3.1.2.3", 400, True),
    "scalar02": Case("3.1.2.4", 400, True),
    "scalarlg": Case("3.1.2.5", 400),
    "quotbal": Case("3.1.2.6", 400, True),
    "ltgtruri": Case("3.1.2.7", 400, True),
    "lwsruri": Case("3.1.2.8", 400),
    "lwsstart": Case("3.1.2.9", 400),
    "trws": Case("3.1.2.10", 400),
    "escruri": Case("3.1.2.11", 400, True),
    "baddate": Case("3.1.2.12", 400, True),
    "regbadct": Case("3.1.2.13", 400, True),
    "badaspec": Case("3.1.2.14", 400, True),
    "baddn": Case("3.1.2.15", 400, True),
    "badvers": Case("3.1.2.16", 505, True),
    "mismatch01": Case("3.1.2.17", 400, True),
    "mismatch02": Case("3.1.2.18", 400, True),
    "bigcode": Case("3.1.2.19", 400),
    "badbranch": Case("3.2.1", PARSE),
    "insuf": Case("3.3.1", 400, True),
    "unkscm": Case("3.3.2", 416, True),
    "novelsc": Case("3.3.3", 416, True),
    "unksm2": Case("3.3.4", PARSE),
    "bext01": Case("3.3.5", PARSE),
    "invut": Case("3.3.6", PARSE),
    "regaut01": Case("3.3.7", PARSE),
    "multi01": Case("3.3.8", 400, True),
    "mcl01": Case("3.3.9", 400, True),
    "bcast": Case("3.3.10", PARSE),
    "zeromf": Case("3.3.11", PARSE),
    "cparam01": Case("3.3.12", PARSE),
    "cparam02": Case("3.3.13", PARSE),
    "regescrt": Case("3.3.14", PARSE),
    "sdp01": Case("3.3.15", PARSE),
    "inv2543": Case("3.4.1", PARSE),
}


def load(name: str) -> bytes:
    return (VECTORS / f"{name}.dat").read_bytes()


def req(name: str) -> Request:
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


def resp(name: str) -> Response:
    message = parse_message(load(name))
    assert isinstance(message, Response)
    return message


def sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


# --- per-file details of the messages that must parse -------------------------------------


def check_wsinv(m: Request) -> None:
    # §3.1.1.1: odd case, LWS around ':' '/' '=' ';', folding, escaped quotes, empty Subject.
    assert m.method == "INVITE" and sip(m.uri).has_param("unknownparam")
    assert m.to.tag == "1918181833n" and sip(m.to.uri).user == "vivekg"
    assert m.from_.display_name == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68 and (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == "" and "s" in m.headers
    assert m.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    (route,) = m.routes
    assert sip(route.uri).has_param("lr") and sip(route.uri).param("unknownwith") == "value"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


def check_intmeth(m: Request) -> None:
    # §3.1.1.2: every token character in the method, user/password full of reserved chars.
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq.method == method and m.cseq.seq == 139122385
    uri = sip(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == ()
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert sip(m.to.uri).user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~" and m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def check_esc01(m: Request) -> None:
    # §3.1.1.3: escapes stay escaped on the wire form; unescape() gives the meaning.
    uri = sip(m.uri)
    assert uri.user == "sips%3Auser%40example.com" and uri.host == "example.net"
    assert unescape(uri.user) == "sips:user@example.com"
    assert unescape(sip(m.to.uri).user or "") == "user"
    assert unescape(sip(m.from_.uri).user or "") == "I have spaces"
    contact = sip(m.contacts[0].uri)
    assert unescape(contact.user or "") == "caller" and contact.has_param("lr")
    assert contact.param("name") == "v%61lue%25%34%31"
    assert unescape(contact.param("name") or "") == "value%41"
    assert m.content_type == "application/sdp" and len(m.body) == 150


def check_escnull(m: Request) -> None:
    # §3.1.1.4: %00 in the user part is legal.
    assert sip(m.to.uri).user == "null-%00-null"
    assert unescape(sip(m.from_.uri).user or "") == "null-\x00-null"
    assert [sip(c.uri).user for c in m.contacts] == ["%00", "%00%00"]


def check_esc02(m: Request) -> None:
    # §3.1.1.5: '%' is a token char: RE%47IST%45R is NOT REGISTER, C%6Fntact is NOT Contact.
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45" and m.from_.display_name == "%Z%45"
    assert [sip(c.uri).host for c in m.contacts] == ["host1.example.com", "host3.example.com"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234" and m.top_via.transport == "TCP"


def check_lwsdisp(m: Request) -> None:
    assert m.from_.display_name == "caller" and m.from_.tag == "323"  # §3.1.1.6


def check_longreq(m: Request) -> None:
    # §3.1.1.7: long values; 34 Via values written with every case/spacing of the name.
    vias = m.vias
    assert len(vias) == 34 and vias[0].host == "sip33.example.com"
    assert vias[-1].received == "192.0.2.5" and (vias[-1].branch or "").startswith("verylong")
    assert sip(m.to.uri).port == 6000 and len(m.to.display_name or "") > 90
    assert sip(m.to.uri).has_param(
        "verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglong"
        "longlonglonglonglonglongparameternamewithnovalue"
    )
    assert len(m.from_.tag or "") > 150 and len(m.call_id) > 100
    assert len(m.body) == 150


def check_dblreq(m: Request) -> None:
    # §3.1.1.8: only the first message of the datagram counts; the rest is ignored.
    assert m.method == "REGISTER" and m.body == b"" and m.call_id.startswith("dblreq.0ha0")


def check_semiuri(m: Request) -> None:
    # §3.1.1.9: ';' inside the user part does not start URI parameters.
    uri = sip(m.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", ())
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def check_transports(m: Request) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]  # §3.1.1.10
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(m: Request) -> None:
    # §3.1.1.11: binary multipart body is carried as bytes, untouched.
    assert m.method == "MESSAGE" and m.content_type == "multipart/mixed"
    assert m.top_via.has_rport and m.top_via.rport is None and m.top_via.port == 5070
    assert len(m.body) == 553 and m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert b"\x00" in m.body
    assert m.headers.get("Date") == "Sat, 15 Oct 2005 04:44:56 GMT"


def check_unreason(m: Response) -> None:
    assert m.status == 200 and m.reason.startswith("= 2**3 * 5**2 но сто")  # §3.1.1.12
    assert m.reason.endswith("простое") and len(m.body) == 154


def check_noreason(m: Response) -> None:
    assert (m.status, m.reason) == (100, "") and m.to.tag == "902jndnke3"  # §3.1.1.13


def check_badbranch(m: Request) -> None:
    assert m.top_via.branch == "z9hG4bK"  # §3.2.1: only the magic cookie; parse, not ours


def check_unksm2(m: Request) -> None:
    # §3.3.4: unknown schemes are fine outside the Request-URI.
    assert m.to.uri == AbsoluteUri("isbn", "isbn:2983792873")
    assert m.from_.uri == AbsoluteUri("http", "http://www.example.com")
    assert m.from_.tag == "3234233"
    assert [c.uri for c in m.contacts] == [AbsoluteUri("name", "name:John_Smith")]


def check_bext01(m: Request) -> None:
    # §3.3.5: 420 Bad Extension is decided above the parser; we expose the option tags.
    assert m.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def check_invut(m: Request) -> None:
    assert m.content_type == "application/unknownformat" and len(m.body) == 40  # §3.3.6


def check_regaut01(m: Request) -> None:
    # §3.3.7: Authorization is never split on commas and kept verbatim.
    assert m.headers.get_all("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def check_bcast(m: Response) -> None:
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]  # §3.3.10
    assert m.cseq.method == "INVITE" and m.status == 200


def check_zeromf(m: Request) -> None:
    assert m.max_forwards == 0  # §3.3.11: the UAS/proxy decides (483 unless OPTIONS to it)


def check_cparam01(m: Request) -> None:
    # §3.3.12: without <>, ;unknownparam belongs to the Contact header, not the URI.
    (contact,) = m.contacts
    assert contact.has_param("unknownparam") and sip(contact.uri).params == ()


def check_cparam02(m: Request) -> None:
    # §3.3.13: inside <>, ;unknownparam is a URI parameter.
    (contact,) = m.contacts
    assert contact.params == () and sip(contact.uri).has_param("unknownparam")


def check_regescrt(m: Request) -> None:
    (contact,) = m.contacts  # §3.3.14: the escaped Route header stays in the URI
    assert sip(contact.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)


def check_sdp01(m: Request) -> None:
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]  # §3.3.15: 406 above us
    assert m.content_type == "application/sdp"


def check_inv2543(m: Request) -> None:
    # §3.4.1: RFC 2543 style: no branch, no Max-Forwards, no tags, no Content-Length (UDP).
    assert m.top_via.branch is None and m.max_forwards is None
    assert m.from_.tag is None and m.to.tag is None
    # Without <>, ";user=phone" is a To header parameter, not a URI one (RFC 3261 §20.10).
    assert m.to.param("user") == "phone" and sip(m.to.uri).params == ()
    assert sip(m.from_.uri).param("user") == "phone"
    assert m.record_routes[0].uri == SipUri.parse("sip:UserB@example.com;maddr=ss1.example.com")
    assert "Content-Length" not in m.headers and m.body.startswith(b"v=0\r\n")


CHECKS: dict[str, Callable[[Request], None] | Callable[[Response], None]] = {
    "wsinv": check_wsinv,
    "intmeth": check_intmeth,
    "esc01": check_esc01,
    "escnull": check_escnull,
    "esc02": check_esc02,
    "lwsdisp": check_lwsdisp,
    "longreq": check_longreq,
    "dblreq": check_dblreq,
    "semiuri": check_semiuri,
    "transports": check_transports,
    "mpart01": check_mpart01,
    "unreason": check_unreason,
    "noreason": check_noreason,
    "badbranch": check_badbranch,
    "unksm2": check_unksm2,
    "bext01": check_bext01,
    "invut": check_invut,
    "regaut01": check_regaut01,
    "bcast": check_bcast,
    "zeromf": check_zeromf,
    "cparam01": check_cparam01,
    "cparam02": check_cparam02,
    "regescrt": check_regescrt,
    "sdp01": check_sdp01,
    "inv2543": check_inv2543,
}


def test_every_archive_file_has_an_expectation() -> None:
    files = {path.stem for path in VECTORS.glob("*.dat")}
    assert len(files) == 49
    assert files == set(CASES)
    assert {name for name, case in CASES.items() if case.status is None} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vector(name: str) -> None:
    case = CASES[name]
    data = load(name)
    if case.status is None:
        message = parse_message(data)
        CHECKS[name](message)  # type: ignore[arg-type]
        assert parse_message(bytes(message)) == message
        return
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert info.value.status_hint == case.status
    assert isinstance(info.value, InvalidRequestError) == case.attached
    if isinstance(info.value, InvalidRequestError):
        answer = make_response(info.value.request, info.value.status_hint)
        assert answer.status == case.status
        assert answer.headers.get_lines("Via") == info.value.request.headers.get_lines("Via")


@pytest.mark.parametrize("name", ["badinv01", "scalar02", "baddn", "quotbal", "mismatch01"])
def test_rejected_requests_can_still_be_answered(name: str) -> None:
    """RFC 4475 §3.1.2: "respond with 400": the request's core headers are echoed."""
    with pytest.raises(InvalidRequestError) as info:
        parse_message(load(name))
    request = info.value.request
    answer = make_response(request, 400)
    assert bytes(answer).startswith(b"SIP/2.0 400 Bad Request\r\n")
    assert answer.headers.get("Call-ID") == request.headers.get("Call-ID")
    assert answer.headers.get("CSeq") == request.headers.get("CSeq")


def test_unknown_scheme_request_is_otherwise_well_formed() -> None:
    """§3.3.2/§3.3.3: the 416 error carries a fully readable request."""
    for name, scheme in (("unkscm", "nobodyknowsthisscheme"), ("novelsc", "soap.beep")):
        with pytest.raises(InvalidRequestError) as info:
            parse_message(load(name))
        request = info.value.request
        assert isinstance(request.uri, AbsoluteUri) and request.uri.scheme == scheme
        assert request.method == "OPTIONS" and request.cseq.method == "OPTIONS"
        assert request.top_via == Via.parse(request.headers.get("Via") or "")


def test_badvers_is_answered_505() -> None:
    """§3.1.2.16: SIP/7.0 gets 505 Version Not Supported."""
    with pytest.raises(InvalidRequestError) as info:
        parse_message(load("badvers"))
    answer = make_response(info.value.request, info.value.status_hint)
    assert (answer.status, answer.reason) == (505, "Version Not Supported")


def _has_length(name: str) -> bool:
    return "Content-Length" in parse_message(load(name)).headers


# dblreq is a UDP case: its second message has more body octets than its Content-Length.
STREAMABLE = sorted(
    n for n, c in CASES.items() if c.status is None and _has_length(n) and n != "dblreq"
)


@pytest.mark.parametrize("name", STREAMABLE)
def test_valid_vectors_frame_identically_on_a_stream(name: str) -> None:
    """RFC 3261 §18.3: the same bytes fed one octet at a time give the same first message."""
    parser = StreamParser()
    data = load(name)
    messages = [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]
    assert messages[0] == parse_message(data)


def test_dblreq_on_a_stream() -> None:
    """§3.1.1.8 over TCP: the trailing octets are a second INVITE whose body is 5 octets longer
    than its Content-Length (150), so what follows it ("C" CRLF CRLF) breaks the framing."""
    items = StreamParser().feed_items(load("dblreq"))
    first, second, error = items
    assert isinstance(first, Request) and first.method == "REGISTER"
    assert isinstance(second, Request) and second.method == "INVITE"
    assert len(second.body) == 150 and second.body.endswith(b"a=rtpmap:31 LP")
    assert isinstance(error, RemoteProtocolError) and error.status_hint == 400


def test_inv2543_without_content_length_is_refused_on_a_stream() -> None:
    """RFC 3261 §18.3: Content-Length is mandatory on stream transports."""
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(load("inv2543"))
    assert info.value.status_hint == 400 and parser.broken
