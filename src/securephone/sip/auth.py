"""Sans-I/O SIP digest authentication, client side (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Works on header *values* only: the caller hands in each ``WWW-Authenticate`` /
``Proxy-Authenticate`` value of a 401/407 and gets back the name and value of the
``Authorization`` / ``Proxy-Authorization`` header to add to the retried request.

Typical use::

    challenges = parse_challenges(www_values, proxy=False)
    challenges += parse_challenges(proxy_values, proxy=True)
    for challenge in choose_per_realm(challenges):
        name, value = client.authorize(challenge, "REGISTER", "sip:example.com")

Every malformed challenge raises :class:`~securephone.errors.RemoteProtocolError`
(never another exception); a well-formed challenge this module cannot answer (another
scheme, an unknown algorithm or qop) raises its subclass :class:`UnsupportedChallenge`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes

from securephone.errors import LocalProtocolError, RemoteProtocolError
from securephone.sip.message import Request, Response

__all__ = [
    "ALGORITHMS_BY_STRENGTH",
    "SUPPORTED_ALGORITHMS",
    "Challenge",
    "DigestClient",
    "DigestCredentials",
    "UnsupportedChallenge",
    "choose_challenge",
    "choose_per_realm",
    "compute_response",
    "parse_auth_params",
    "parse_challenges",
]

#: Hash algorithms, strongest first (RFC 7616 §3.2, RFC 8760 §2.1). Each also has a "-sess" variant.
ALGORITHMS_BY_STRENGTH: tuple[str, ...] = ("SHA-512-256", "SHA-256", "MD5")

#: Lower-cased algorithm token -> canonical spelling (the IANA "HTTP Digest Hash Algorithms" names).
_CANONICAL: dict[str, str] = {
    name.lower() + suffix: name + suffix
    for name in ALGORITHMS_BY_STRENGTH
    for suffix in ("", "-sess")
}
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_CANONICAL.values())

_SESS = "-sess"
_QOP_PREFERENCE = ("auth", "auth-int")
_MAX_NONCES = 32  # nonce-count entries kept per client; the oldest is forgotten first

# RFC 7230 §3.2.6 tchar; a superset of the RFC 3261 §25.1 token characters.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WSP = " \t"


class UnsupportedChallenge(RemoteProtocolError):
    """A well-formed challenge this client cannot answer: not Digest, or unknown algorithm/qop.

    RFC 2617 §3.2.1: "If the algorithm is not understood, the challenge should be ignored
    (and a different one used, if there is more than one)." RFC 8760 §2.4: the client
    ignores any challenge it does not understand.
    """


# --------------------------------------------------------------------------- auth-param lists


class _Scanner:
    """Cursor over one header value for the RFC 7235 §2.1 / RFC 3261 §25.1 challenge grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> bool:
        """Skip LWS, folded lines included (CRLF + WSP, RFC 3261 §7.3.1); True if any skipped."""
        start = self.pos
        while True:
            if self.peek() and self.peek() in _WSP:
                self.pos += 1
            elif self.text.startswith(("\r\n ", "\r\n\t"), self.pos):
                self.pos += 3
            else:
                return self.pos > start

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise RemoteProtocolError(f"expected {char!r} at offset {self.pos} of auth header")
        self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TCHAR:
            self.pos += 1
        if self.pos == start:
            raise RemoteProtocolError(f"expected a token at offset {start} of auth header")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """A quoted-string with its quoted-pairs resolved (RFC 3261 §25.1, RFC 7230 §3.2.6)."""
        self.expect('"')
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise RemoteProtocolError("unterminated quoted-string in auth header")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if not char:
                    raise RemoteProtocolError("dangling backslash in auth header")
                self.pos += 1
            _check_text_char(char)
            out.append(char)

    def value(self) -> str:
        return self.quoted() if self.peek() == '"' else self.token()


def _check_text_char(char: str) -> None:
    """Reject control characters (HTAB excepted) and lone surrogates inside a quoted-string."""
    code = ord(char)
    if (code < 0x20 and char != "\t") or code == 0x7F or 0xD800 <= code <= 0xDFFF:
        raise RemoteProtocolError(f"control character {code:#x} in auth header")


def _parse_scheme(scanner: _Scanner) -> str:
    """The auth-scheme token; it must be followed by whitespace or end the value."""
    scanner.skip_ws()
    scheme = scanner.token()
    if not scanner.skip_ws() and not scanner.at_end():
        raise RemoteProtocolError("auth-scheme must be followed by whitespace")
    return scheme


def _parse_params(scanner: _Scanner) -> dict[str, str]:
    """``#auth-param`` (RFC 7235 §2.1): names lower-cased, values unquoted, duplicates rejected.

    Empty list elements (``a=1, , b=2``) are accepted as RFC 7230 §7 asks of recipients.
    """
    params: dict[str, str] = {}
    while True:
        scanner.skip_ws()
        if scanner.at_end():
            return params
        if scanner.peek() == ",":
            scanner.pos += 1
            continue
        name = scanner.token().lower()
        scanner.skip_ws()
        scanner.expect("=")
        scanner.skip_ws()
        if name in params:
            raise RemoteProtocolError(f"duplicate auth-param {name!r}")
        params[name] = scanner.value()
        scanner.skip_ws()
        if not scanner.at_end():
            scanner.expect(",")


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split one challenge or credentials value into (scheme, {lower-cased name: unquoted value}).

    Grammar of RFC 3261 §25.1 (``challenge`` / ``credentials``) and RFC 7235 §2.1. Raises
    RemoteProtocolError on malformed input. Token68 forms (``Basic QWxh...==``) are not accepted.
    """
    scanner = _Scanner(value)
    scheme = _parse_scheme(scanner)
    return scheme, _parse_params(scanner)


# --------------------------------------------------------------------------- challenges


def _normalise_algorithm(token: str) -> str:
    """Canonical algorithm name; RFC 2617 §3.2.1: absent means MD5, unknown means skip."""
    canonical = _CANONICAL.get(token.lower())
    if canonical is None:
        raise UnsupportedChallenge(f"unsupported digest algorithm {token!r}")
    return canonical


def _parse_qop(value: str | None) -> tuple[str, ...]:
    """qop-options: a quoted, comma-separated token list (RFC 7616 §3.3), lower-cased."""
    if value is None:
        return ()
    options = tuple(item.strip(_WSP).lower() for item in value.split(",") if item.strip(_WSP))
    if not options or any(not set(option) <= _TCHAR for option in options):
        raise RemoteProtocolError(f"malformed qop options {value!r}")
    if not set(options) & set(_QOP_PREFERENCE):
        raise UnsupportedChallenge(f"no supported qop among {value!r}")
    return options


def _flag(value: str | None) -> bool:
    """stale / userhash: "true" in any case is true, anything else false (RFC 7616 §3.3)."""
    return value is not None and value.lower() == "true"


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge from a WWW-Authenticate (401) or Proxy-Authenticate (407) value.

    RFC 3261 §22.1/§22.3, RFC 7616 §3.3. ``algorithm`` is canonical ("SHA-256", "MD5-sess"),
    ``qop`` the offered options lower-cased, ``proxy`` True for Proxy-Authenticate.
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False
    userhash: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise LocalProtocolError(f"unsupported digest algorithm {self.algorithm!r}")

    @classmethod
    def parse(cls, value: str, *, proxy: bool = False) -> Challenge:
        """Parse one header value (RFC 3261 §20.27/§20.44, §25.1 ``challenge``).

        Raises RemoteProtocolError (400) when malformed, UnsupportedChallenge when the scheme
        is not Digest, the algorithm is unknown, no offered qop is known, or a "-sess"
        algorithm comes without qop (it needs a cnonce, which only exists with qop).
        """
        scanner = _Scanner(value)
        scheme = _parse_scheme(scanner)
        if scheme.lower() != "digest":
            raise UnsupportedChallenge(f"unsupported auth-scheme {scheme!r}")
        return cls._from_params(_parse_params(scanner), proxy=proxy)

    @classmethod
    def _from_params(cls, params: dict[str, str], *, proxy: bool) -> Challenge:
        realm, nonce = params.get("realm"), params.get("nonce")
        if realm is None or not nonce:
            raise RemoteProtocolError("digest challenge without realm or nonce")
        algorithm = _normalise_algorithm(params.get("algorithm", "MD5"))
        qop = _parse_qop(params.get("qop"))
        if algorithm.endswith(_SESS) and not qop:
            raise UnsupportedChallenge(f"{algorithm} offered without qop")
        return cls(
            realm=realm,
            nonce=nonce,
            algorithm=algorithm,
            qop=qop,
            opaque=params.get("opaque"),
            stale=_flag(params.get("stale")),
            proxy=proxy,
            userhash=_flag(params.get("userhash")),
        )

    @property
    def hash_name(self) -> str:
        """The algorithm without its "-sess" suffix ("SHA-256" for "SHA-256-sess")."""
        return self.algorithm.removesuffix(_SESS)

    @property
    def answer_qop(self) -> str | None:
        """The qop we answer with: "auth" if offered, else "auth-int", None for RFC 2069 style."""
        return next((qop for qop in _QOP_PREFERENCE if qop in self.qop), None)


def parse_challenges(values: Iterable[str], *, proxy: bool) -> list[Challenge]:
    """Parse each header value, skipping UnsupportedChallenge ones (RFC 2617 §3.2.1).

    Malformed values still raise RemoteProtocolError. One challenge per value: RFC 3261 §7.3.1
    forbids combining WWW-/Proxy-Authenticate values with commas.
    """
    challenges = []
    for value in values:
        try:
            challenges.append(Challenge.parse(value, proxy=proxy))
        except UnsupportedChallenge:
            continue
    return challenges


def challenges_of(response: Response) -> list[Challenge]:
    """The challenges of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate), one per realm."""
    proxy = response.status == 407
    header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    return choose_per_realm(parse_challenges(response.headers.get_all(header), proxy=proxy))


def _rank(challenge: Challenge) -> tuple[int, int]:
    """Sort key: stronger hash first, then challenges offering qop (nc/cnonce replay protection)."""
    return ALGORITHMS_BY_STRENGTH.index(challenge.hash_name), 0 if challenge.answer_qop else 1


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The strongest challenge: SHA-512-256 > SHA-256 > MD5, then one offering qop; ties keep order.

    RFC 8760 §2.3 has a UAS list its challenges in its own order of preference and §2.4 has
    the UAC use the topmost one it supports "unless a local policy dictates otherwise". Our
    local policy is to pick by strength instead: challenges are not integrity protected, so an
    on-path attacker could move MD5 to the top (the downgrade RFC 8760 §3 warns about). Among
    equally strong challenges the server's order still decides. Challenges this module does
    not support never reach here (parse_challenges drops them).
    """
    return min(challenges, key=_rank, default=None)


def choose_per_realm(challenges: Iterable[Challenge]) -> list[Challenge]:
    """The strongest challenge for each (proxy, realm), in order of first appearance.

    A forking proxy aggregates the challenges of several downstream servers into one
    401/407 (RFC 3261 §16.7 step 7, §22.3); the UAC answers one per realm.
    """
    groups: dict[tuple[bool, str], list[Challenge]] = {}
    for challenge in challenges:
        groups.setdefault((challenge.proxy, challenge.realm), []).append(challenge)
    return [min(group, key=_rank) for group in groups.values()]


# --------------------------------------------------------------------------- hashing


def _sha512_256(data: bytes) -> str:
    """SHA-512/256 as in FIPS 180-4 §6.7 (own IV, not a truncated SHA-512)."""
    digest = hashes.Hash(hashes.SHA512_256())
    digest.update(data)
    return digest.finalize().hex()


_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": _sha512_256,
}


def _hasher(algorithm: str) -> Callable[[str], str]:
    """H(data) of RFC 7616 §3.4 over UTF-8 text, as lower-case hex."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}")
    raw = _HASHES[algorithm.removesuffix(_SESS)]
    return lambda text: raw(text.encode("utf-8"))


def compute_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1-§3.4.3; RFC 2617 §3.2.2.1 without qop).

    ``username`` is the plain user name even when userhash is in use (RFC 7616 §3.4.4).
    """
    hash_text = _hasher(algorithm)
    ha1 = hash_text(f"{username}:{realm}:{password}")
    if algorithm.endswith(_SESS):
        ha1 = hash_text(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 = f"{a2}:{_HASHES[algorithm.removesuffix(_SESS)](body)}"
    if qop is None:
        return hash_text(f"{ha1}:{nonce}:{hash_text(a2)}")
    return hash_text(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{hash_text(a2)}")


# --------------------------------------------------------------------------- client


@dataclass
class DigestCredentials:
    """A user name and password; the password never appears in repr() or str()."""

    username: str
    password: str = field(repr=False)


@dataclass
class _NonceState:
    """Per (realm, nonce): the last nonce-count used and, for "-sess", the session cnonce."""

    count: int = 0
    session_cnonce: str | None = None


def _quote(text: str) -> str:
    """A quoted-string with quoted-pairs for backslash and double quote (RFC 3261 §25.1)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_local(text: str, what: str, *, allow_space: bool = True) -> None:
    """Refuse text that cannot go into a quoted-string: CR/LF and other controls, lone surrogates.

    HTAB and SP are legal inside a quoted-string (RFC 3261 §25.1 qdtext); ``allow_space=False``
    refuses them too (a Request-URI has none).
    """
    for char in text:
        code = ord(char)
        bad = (code < 0x20 and char != "\t") or code == 0x7F or 0xD800 <= code <= 0xDFFF
        if bad or (char in _WSP and not allow_space):
            raise LocalProtocolError(f"{what} contains a forbidden character {code:#x}")


def _check_encodable(text: str, what: str) -> None:
    """Text that is only hashed (the password) must merely be valid UTF-8 material."""
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise LocalProtocolError(f"{what} is not encodable as UTF-8")


class DigestClient:
    """Keeps the nonce count per (realm, nonce); builds Authorization / Proxy-Authorization values.

    RFC 3261 §22.2/§22.3 with the digest computations of RFC 7616 §3.4 (RFC 8760 §2 for SIP).
    """

    def __init__(
        self, credentials: DigestCredentials, cnonce_factory: Callable[[], str] | None = None
    ) -> None:
        self._credentials = credentials
        self._new_cnonce = cnonce_factory or (lambda: secrets.token_hex(16))
        self._nonces: dict[tuple[str, str], _NonceState] = {}

    def __repr__(self) -> str:
        return f"DigestClient(username={self._credentials.username!r}, nonces={len(self._nonces)})"

    def retry(self, request: Request, response: Response) -> Request | None:
        """RFC 3261 §22.2/§22.3: ``request`` again with CSeq + 1 and credentials for each challenge.

        None when the 401/407 carries no challenge this client can answer.
        """
        challenges = challenges_of(response)
        if not challenges:
            return None
        again = request.next_in_sequence()
        for challenge in challenges:
            name, value = self.authorize(challenge, request.method, str(request.uri), request.body)
            again.headers.add(name, value)
        return again

    def authorize(
        self, challenge: Challenge, method: str, uri: str, body: bytes = b""
    ) -> tuple[str, str]:
        """Answer ``challenge`` for a request ``method uri`` carrying ``body``.

        Returns ("Authorization" | "Proxy-Authorization", value). qop=auth when offered,
        auth-int when only that is (hashing ``body``), RFC 2069 style when no qop is offered.
        The nonce count increments per (realm, nonce) (RFC 7616 §3.4: nc "00000001", ...).
        Raises LocalProtocolError when the method, uri or credentials cannot be sent.
        """
        self._check_request(challenge, method, uri)
        qop = challenge.answer_qop
        if challenge.qop and qop is None:
            raise LocalProtocolError(f"no supported qop among {challenge.qop!r}")
        nc, cnonce = self._next_count(challenge) if qop else ("", "")
        creds = self._credentials
        response = compute_response(
            challenge.algorithm,
            creds.username,
            challenge.realm,
            creds.password,
            method,
            uri,
            challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        value = self._header_value(challenge, uri, response, qop, nc, cnonce)
        return ("Proxy-Authorization" if challenge.proxy else "Authorization"), value

    def _check_request(self, challenge: Challenge, method: str, uri: str) -> None:
        if not method or not set(method) <= _TCHAR:
            raise LocalProtocolError(f"method {method!r} is not a token")
        if not uri:
            raise LocalProtocolError("empty digest-uri")
        _check_local(uri, "uri", allow_space=False)
        _check_local(self._credentials.username, "username")
        _check_encodable(self._credentials.password, "password")
        for text in (challenge.realm, challenge.nonce, challenge.opaque or ""):
            _check_local(text, "challenge")

    def _next_count(self, challenge: Challenge) -> tuple[str, str]:
        """Bump the nonce count for this (realm, nonce) and pick the cnonce to send."""
        key = (challenge.realm, challenge.nonce)
        state = self._nonces.pop(key, None) or _NonceState()
        self._nonces[key] = state  # re-inserted last: the dict is oldest-first
        while len(self._nonces) > _MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]
        state.count += 1
        if state.count > 0xFFFFFFFF:
            raise LocalProtocolError("nonce count exhausted; a new challenge is needed")
        cnonce = self._cnonce(challenge, state)
        return f"{state.count:08x}", cnonce

    def _cnonce(self, challenge: Challenge, state: _NonceState) -> str:
        """A fresh cnonce, except for "-sess" where the session key's cnonce is kept per nonce."""
        if challenge.algorithm.endswith(_SESS) and state.session_cnonce is not None:
            return state.session_cnonce
        cnonce = self._new_cnonce()
        if not cnonce:
            raise LocalProtocolError("empty cnonce")
        _check_local(cnonce, "cnonce")
        state.session_cnonce = cnonce
        return cnonce

    def _header_value(
        self, challenge: Challenge, uri: str, response: str, qop: str | None, nc: str, cnonce: str
    ) -> str:
        """The credentials; RFC 7616 §3.4: algorithm, qop and nc unquoted, the rest quoted."""
        username = self._credentials.username
        if challenge.userhash:
            username = _hasher(challenge.algorithm)(f"{username}:{challenge.realm}")
        params = [
            f"username={_quote(username)}",
            f"realm={_quote(challenge.realm)}",
            f"uri={_quote(uri)}",
            f"algorithm={challenge.algorithm}",
            f"nonce={_quote(challenge.nonce)}",
        ]
        if qop is not None:
            params += [f"nc={nc}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
        params.append(f"response={_quote(response)}")
        if challenge.opaque is not None:
            params.append(f"opaque={_quote(challenge.opaque)}")
        if challenge.userhash:
            params.append("userhash=true")
        return "Digest " + ", ".join(params)
