"""Run a real Kamailio 5.6 on 127.0.0.1 as registrar + proxy for interop tests.

The harness writes a routing script into a work directory, checks it with
``kamailio -c``, then runs ``timeout -k 5 LIMIT kamailio -DD -E -f CFG`` in the
foreground (its own process group, log on stderr captured to a file).  It
remembers the PID of the ``timeout`` wrapper and of Kamailio itself and stops
them by PID, then removes any Kamailio child left in the wrapper's process
group.  Ports are allocated free on 127.0.0.1 (UDP and TCP on one number, TLS on
another) and the ctl socket and runtime dir are private, so instances can run in
parallel (pytest-xdist).

Behaviour of the generated script (the contract interop tests rely on):

* REGISTER (RFC 3261 §10.3): digest auth against ``users`` (RFC 2617 / RFC 7616
  §3.3): no credentials for the realm -> 401 with ``qop="auth"``; auth user not
  in the table, wrong password or auth user != To user -> 403; stale nonce ->
  401 with ``stale=true``.  Then ``save("location")``; contacts live in memory
  (usrloc ``db_mode 0``, AOR = user part only, ``use_domain 0``).
* TCP/TLS clients (and UDP clients whose Via disagrees with the source) get
  ``fix_nated_register()`` on REGISTER and ``set_contact_alias()`` on other
  requests and replies, so requests reach them over their own connection.
* OPTIONS whose R-URI has no user part and points at the proxy -> 200 (no auth).
* Initial requests (INVITE, OPTIONS, MESSAGE, ...) whose From user is in
  ``users`` -> 407 until ``Proxy-Authorization`` verifies (same 403 rules); the
  credentials are consumed before relaying.  From users not in the table may
  reach local users without auth when ``anonymous_inbound`` (the default).
* Requests to local users: ``lookup("location")`` (404 if none), then
  ``t_relay()``; INVITE/SUBSCRIBE/REFER are record-routed, in-dialog requests
  follow ``loose_route()``.
* ``role="outbound-registrar"`` (RFC 5626 §6): the same, plus ``outbound_mode`` 1 and
  ``use_path`` (bindings keep the edge's Path and the instance and reg-id of each flow) and
  serial forking over the flows of one instance: ``t_load_contacts``/``t_next_contacts``, and on a
  branch failure (430 Flow Failed, 408/477, no answer within ``fr_timer`` 3 s) the binding is
  removed and ``t_next_contact_flow`` tries the instance's next flow.
* ``role="edge"`` with ``registrar=(host, port)`` (RFC 5626 §5): an edge proxy with the
  ``outbound``, ``path`` and ``rr`` modules and no auth or location of its own. REGISTER gets
  ``add_path_received()`` (a Path with the flow token and ``;ob``) and goes to the registrar over
  UDP; other requests from clients go there too, record-routed; requests from the registrar follow
  the Path/Route (``loose_route`` decodes the flow token) over the client's own connection and never
  open a new one (``set_forward_no_connect``): a lost flow is answered ``430 Flow Failed``.
* Every request or reply with an SDP body is logged as
  ``HARNESS-SDP <request|reply> <first> <call-id> <<<body>>>`` (see
  :meth:`Kamailio.logged_sdp`); with TLS each request over TLS logs
  ``HARNESS-TLS`` with version, cipher and peer-verification state.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from ..helpers import LOOPBACK, PeerProcess, free_port, wait_until

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_USER_RE = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9!#%&'()*+,\-./:;<=>?@\[\]^_`{|}~]{1,128}")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9.-]{1,253}")
TLS_METHODS = frozenset(
    {"TLSv1", "TLSv1+", "TLSv1.1", "TLSv1.1+", "TLSv1.2", "TLSv1.2+", "TLSv1.3", "TLSv1.3+"}
)
_OLD_TLS_METHODS = frozenset({"TLSv1", "TLSv1+", "TLSv1.1", "TLSv1.1+"})
_BIND_ERRORS = ("Address already in use",)


class KamailioError(RuntimeError):
    """Kamailio could not be configured, started, queried or stopped."""


@dataclass(frozen=True)
class TlsConfig:
    """TLS listener settings (Kamailio ``tls.cfg`` ``[server:default]``).

    ``min_tls`` is a Kamailio method string (``TLSv1.2+`` by default; ``TLSv1``
    or ``TLSv1.1`` emulate an old server and lower OpenSSL's security level so
    those versions can actually be negotiated).
    """

    certificate: Path
    private_key: Path
    ca_list: Path | None = None
    require_client_cert: bool = False
    min_tls: str = "TLSv1.2+"
    cipher_list: str | None = None


class ContactInfo(TypedDict):
    """One registered contact as reported by ``ul.dump``."""

    aor: str
    contact: str
    expires: int
    received: str | None
    socket: str
    user_agent: str
    fields: dict[str, str]


@dataclass(frozen=True)
class LoggedSdp:
    """An SDP body that Kamailio saw, taken from its log (``HARNESS-SDP`` lines)."""

    kind: str  # "request" or "reply"
    first: str  # method for requests, "<status> <cseq-method>" for replies
    call_id: str
    body: str

    def connection_addresses(self) -> list[str]:
        """Addresses of every ``c=`` line (RFC 4566 §5.7), session and media level."""
        found: list[str] = []
        for line in self.body.splitlines():
            parts = line.strip().split()
            if line.startswith("c=") and len(parts) == 3:
                found.append(parts[2].split("/")[0])
        return found


def find_binary(name: str) -> str | None:
    """Locate a Kamailio tool on PATH or in the sbin directories (not on PATH for non-root)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    return shutil.which(name, path=search)


def missing_tools() -> list[str]:
    """Names of the tools the harness needs that are not installed."""
    return [name for name in ("kamailio", "kamcmd", "timeout") if find_binary(name) is None]


def _cfg_string(value: str) -> str:
    """Quote a value for the Kamailio config (callers validate the characters)."""
    return '"' + value + '"'


def _check_value(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} has characters the harness does not allow")
    return value


# --------------------------------------------------------------------------- config

# what the registrar and the edge proxy configurations share: core settings, UDP/TCP listeners
_CFG_GLOBALS = """debug=@@DEBUG@@
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
dns_try_ipv6=no
disable_sctp=yes
tcp_connection_lifetime=3605
"""
_CFG_LISTEN = """listen=udp:@@HOST@@:@@PORT@@
listen=tcp:@@HOST@@:@@PORT@@
"""

_CFG_HEAD = (
    """#!KAMAILIO
# Generated by tests/interop/kamailio.py: registrar + proxy with digest auth.
@@DEFINES@@
#!define FLT_NATS 5
#!define FLT_AUTHED 6
#!define FLB_NATB 6

"""
    + _CFG_GLOBALS
    + """memdbg=5
memlog=5
tcp_max_connections=256

"""
    + _CFG_LISTEN
    + """#!ifdef WITH_TLS
enable_tls=yes
listen=tls:@@HOST@@:@@TLS_PORT@@
#!endif
@@ALIASES@@

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ctl.so"
loadmodule "htable.so"
loadmodule "auth.so"
loadmodule "nathelper.so"
#!ifdef WITH_TLS
loadmodule "tls.so"
#!endif

modparam("ctl", "binrpc", "unix:@@CTL@@")
modparam("tm", "failure_reply_mode", 3)
modparam("tm", "fr_timer", @@FR_TIMER@@)
modparam("tm", "fr_inv_timer", 120000)
modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 0)
modparam("registrar", "method_filtering", 1)
modparam("registrar", "min_expires", @@MIN_EXPIRES@@)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "gruu_enabled", 0)
modparam("registrar", "received_avp", "$avp(RECEIVED)")
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 0)
modparam("usrloc", "timer_interval", 5)
modparam("htable", "htable", "users=>size=6;")
modparam("auth", "algorithm", "@@ALGORITHM@@")
modparam("auth", "nonce_expire", 300)
#!ifdef WITH_OUTBOUND
modparam("registrar", "outbound_mode", 1)
modparam("registrar", "use_path", 1)
modparam("registrar", "flow_timer", @@FLOW_TIMER@@)
modparam("tm", "contacts_avp", "tm_contacts")
modparam("tm", "contact_flows_avp", "tm_contact_flows")
modparam("tm", "restart_fr_on_each_reply", 0)
#!endif
#!ifdef WITH_TLS
modparam("tls", "config", "@@TLS_CFG@@")
#!endif
"""
)

_CFG_EDGE = (
    r"""#!KAMAILIO
# Generated by tests/interop/kamailio.py: RFC 5626 edge proxy (outbound, path, rr).
"""
    + _CFG_GLOBALS
    + """force_rport=yes

"""
    + _CFG_LISTEN
    + r"""@@ALIASES@@

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "outbound.so"
loadmodule "rr.so"
loadmodule "path.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ctl.so"

modparam("ctl", "binrpc", "unix:@@CTL@@")
modparam("tm", "failure_reply_mode", 3)
modparam("tm", "fr_timer", 5000)
modparam("rr", "append_fromtag", 0)
modparam("path", "use_received", 1)
modparam("outbound", "flow_token_secret", "@@SECRET@@")

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (is_method("OPTIONS") && uri==myself && $rU==$null) {
		sl_send_reply("200", "OK");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	route(WITHINDLG);
	t_check_trans();
	if (is_method("REGISTER")) {
		remove_hf("Route");
		if (!add_path_received()) {
			sl_send_reply("503", "Path Failed");
			exit;
		}
		xlog("L_NOTICE", "HARNESS-EDGE REGISTER from $si:$sp over $pr\n");
		$du = "sip:@@REGISTRAR@@";
		route(RELAY);
	}
	if (is_method("INVITE|SUBSCRIBE")) {
		record_route();
	}
	if (@via[2] == "") {
		xlog("L_NOTICE", "HARNESS-EDGE $rm $ci from the client\n");
		remove_hf("Route");
		$du = "sip:@@REGISTRAR@@";
		route(RELAY);
	}
	if (!loose_route()) {
		sl_send_reply("403", "Forbidden");
		exit;
	}
	xlog("L_NOTICE", "HARNESS-EDGE $rm $ci to the client via $du\n");
	set_forward_no_connect();
	t_on_failure("FLOW_FAILED");
	route(RELAY);
}

route[WITHINDLG] {
	if (!has_totag()) {
		return;
	}
	if (loose_route()) {
		route(RELAY);
	}
	if (is_method("ACK") && t_check_trans()) {
		route(RELAY);
	}
	sl_send_reply("404", "Not here");
	exit;
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

failure_route[FLOW_FAILED] {
	if (t_branch_timeout() || !t_branch_replied()) {
		send_reply("430", "Flow Failed");
	}
}
"""
)

_CFG_ROUTES = r"""
event_route[htable:mod-init] {
@@USERS@@
}

request_route {
	route(REQINIT);
	route(SDPLOG);
#!ifdef WITH_TLS
	route(TLSLOG);
#!endif
	route(NATDETECT);

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	if (!is_method("ACK")) {
		if (t_precheck_trans()) {
			t_check_trans();
			exit;
		}
		t_check_trans();
	}

	route(WITHINDLG);

	remove_hf("Route");
	if (is_method("INVITE|SUBSCRIBE|REFER")) {
		record_route();
	}

	if (is_method("REGISTER")) {
		route(REGISTRAR);
	}

	if (is_method("OPTIONS") && uri==myself && $rU==$null) {
		sl_send_reply("200", "OK");
		exit;
	}

	route(AUTH);

	if (uri!=myself) {
		if (!isflagset(FLT_AUTHED)) {
			sl_send_reply("403", "Relay Forbidden");
			exit;
		}
		route(RELAY);
	}
	if ($rU==$null) {
		sl_send_reply("484", "Address Incomplete");
		exit;
	}
	route(LOCATION);
	route(RELAY);
}

route[REQINIT] {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (!sanity_check("17895", "7")) {
		xlog("L_WARN", "HARNESS malformed request from $si:$sp\n");
		exit;
	}
}

route[SDPLOG] {
	if (!has_body("application/sdp")) {
		return;
	}
	if (is_request()) {
		xlog("L_NOTICE", "HARNESS-SDP request $rm $ci <<<$rb>>>\n");
	} else {
		xlog("L_NOTICE", "HARNESS-SDP reply $rs-$rm $ci <<<$rb>>>\n");
	}
}

#!ifdef WITH_TLS
route[TLSLOG] {
	if (proto != TLS) {
		return;
	}
	$var(cn) = "";
	if ($tls_peer_verified == 1) {
		$var(cn) = " cn=" + $tls_peer_subject_cn;
	}
	$var(tls) = "version=" + $tls_version + " cipher=" + $tls_cipher_info;
	xlog("L_NOTICE", "HARNESS-TLS $rm $ci $var(tls) verified=$tls_peer_verified$var(cn)\n");
}
#!endif

route[NATDETECT] {
	force_rport();
	if (proto==TCP || proto==TLS || nat_uac_test("18")) {
		if (is_method("REGISTER")) {
			fix_nated_register();
		} else if (is_present_hf("Contact") && is_first_hop()) {
			set_contact_alias();
		}
		setflag(FLT_NATS);
	}
}

route[WITHINDLG] {
	if (!has_totag()) {
		return;
	}
	if (loose_route()) {
		if (!isdsturiset()) {
			handle_ruri_alias();
		}
		route(RELAY);
		exit;
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	sl_send_reply("404", "Not here");
	exit;
}

# Digest auth for REGISTER (401, Authorization) and other requests (407,
# Proxy-Authorization): the auth user must be in the table and equal the To user
# (REGISTER) or the From user (other requests).
route[CHECKAUTH] {
	$var(f) = 1;
	if (!has_credentials("@@REALM@@")) {
		auth_challenge("@@REALM@@", "$var(f)");
		exit;
	}
	$var(pw) = $sht(users=>$au);
	if ($var(pw) == $null) {
		xlog("L_NOTICE", "HARNESS-AUTH $rm $ci user=$au result=unknown-user\n");
		sl_send_reply("403", "Forbidden");
		exit;
	}
	$var(flags) = 0;
	$var(checks) = 1;
	pv_auth_check("@@REALM@@", "$var(pw)", "$var(flags)", "$var(checks)");
	$var(rc) = $rc;
	xlog("L_NOTICE", "HARNESS-AUTH $rm $ci user=$au result=$var(rc)\n");
	if ($var(rc) > 0) {
		consume_credentials();
		setflag(FLT_AUTHED);
		return;
	}
	if ($var(rc) == -4) {
		$var(f) = 17;
		auth_challenge("@@REALM@@", "$var(f)");
		exit;
	}
	if ($var(rc) == -5) {
		auth_challenge("@@REALM@@", "$var(f)");
		exit;
	}
	sl_send_reply("403", "Forbidden");
	exit;
}

route[REGISTRAR] {
	route(CHECKAUTH);
	if (isflagset(FLT_NATS)) {
		setbflag(FLB_NATB);
	}
	if (!save("location")) {
		sl_reply_error();
	}
	exit;
}

route[AUTH] {
	if (is_method("ACK|CANCEL|PRACK")) {
		return;
	}
	if ($fU != $null && $sht(users=>$fU) != $null) {
		route(CHECKAUTH);
		return;
	}
#!ifdef ANONYMOUS_INBOUND
	return;
#!else
	sl_send_reply("403", "Forbidden");
	exit;
#!endif
}

route[LOCATION] {
	if (!lookup("location")) {
		$var(rc) = $rc;
		t_newtran();
		switch ($var(rc)) {
			case -2:
				send_reply("405", "Method Not Allowed");
				exit;
			default:
				send_reply("404", "Not Found");
				exit;
		}
	}
#!ifdef WITH_OUTBOUND
	if (!t_load_contacts()) {
		sl_reply_error();
		exit;
	}
	t_next_contacts();  # -2 (nothing loaded): a single contact stays in the R-URI
	t_on_failure("NEXT_CONTACTS");
	t_on_branch_failure("NEXT_FLOW");
#!endif
}

#!ifdef WITH_OUTBOUND
failure_route[NEXT_CONTACTS] {
	if (!t_check_status("6[0-9][0-9]") && t_next_contacts()) {
		t_relay();
		exit;
	}
	if (t_check_status("430")) {
		t_reply("480", "Temporarily Unavailable");
	}
}

event_route[tm:branch-failure:NEXT_FLOW] {
	xlog("L_NOTICE", "HARNESS-FLOW failed $T_reply_code $ru\n");
	if (t_check_status("403|408|430|477|503") || (t_branch_timeout() && !t_branch_replied())) {
		unregister("location", "$tu", "$T_reply_ruid");
		if (t_next_contact_flow()) {
			xlog("L_NOTICE", "HARNESS-FLOW next $ru\n");
			t_on_branch_failure("NEXT_FLOW");
			t_relay();
		}
	}
}
#!endif

route[RELAY] {
	if (!t_is_set("onreply_route")) {
		t_on_reply("MANAGE_REPLY");
	}
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

onreply_route[MANAGE_REPLY] {
	route(SDPLOG);
	if (isbflagset(FLB_NATB) && is_present_hf("Contact")) {
		set_contact_alias();
	}
}
"""


def _tls_cfg(tls: TlsConfig) -> str:
    """Kamailio ``tls.cfg`` text for the listener (and outgoing connections)."""
    lines = [
        "[server:default]",
        f"method = {tls.min_tls}",
        f"certificate = {tls.certificate}",
        f"private_key = {tls.private_key}",
        f"verify_certificate = {'yes' if tls.require_client_cert else 'no'}",
        f"require_certificate = {'yes' if tls.require_client_cert else 'no'}",
    ]
    if tls.ca_list is not None:
        lines.append(f"ca_list = {tls.ca_list}")
    cipher_list = tls.cipher_list
    if cipher_list is None and tls.min_tls in _OLD_TLS_METHODS:
        cipher_list = "DEFAULT:@SECLEVEL=0"
    if cipher_list is not None:
        lines.append(f"cipher_list = {cipher_list}")
    lines += ["", "[client:default]", "method = TLSv1.2+", "verify_certificate = no"]
    lines.append("require_certificate = no")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- ul.dump


def _parse_kamcmd_tree(text: str) -> list[object]:
    """Parse kamcmd's indented ``{ key: value }`` output into nested lists/dicts.

    Structures become lists of ``(key, value)`` pairs (keys repeat in ul.dump).
    """
    stack: list[list[object]] = [[]]
    pending: list[str | None] = [None]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("{"):
            key = line[:-1].rstrip().rstrip(":").strip() or None
            stack.append([])
            pending.append(key)
        elif line == "}":
            if len(stack) == 1:
                raise KamailioError(f"unbalanced kamcmd output: {text[:200]!r}")
            items = stack.pop()
            key = pending.pop()
            stack[-1].append((key, items) if key is not None else items)
        else:
            key, sep, value = line.partition(":")
            stack[-1].append((key.strip(), value.strip()) if sep else line)
    return stack[0]


def _pairs(node: object) -> list[tuple[str, object]]:
    if not isinstance(node, list):
        return []
    return [item for item in node if isinstance(item, tuple) and len(item) == 2]


def _walk_aors(node: object) -> list[tuple[str, list[tuple[str, object]]]]:
    """Find every ``Info`` struct holding an ``AoR`` and its ``Contacts``."""
    found: list[tuple[str, list[tuple[str, object]]]] = []
    pairs = _pairs(node)
    keys = {key for key, _ in pairs}
    if "AoR" in keys:
        found.append((str(dict(pairs)["AoR"]), pairs))
    for _, value in pairs:
        found += _walk_aors(value)
    if not pairs and isinstance(node, list):
        for item in node:
            found += _walk_aors(item)
    return found


def _contact_from_fields(aor: str, fields: dict[str, str]) -> ContactInfo:
    received = fields.get("Received", "")
    expires_text = fields.get("Expires", "0")
    try:
        expires = int(expires_text)
    except ValueError:
        expires = 0 if expires_text in ("expired", "deleted") else -1
    return ContactInfo(
        aor=aor,
        contact=fields.get("Address", ""),
        expires=expires,
        received=None if received in ("", "[not set]") else received,
        socket=fields.get("Socket", ""),
        user_agent=fields.get("User-Agent", ""),
        fields=fields,
    )


def parse_ul_dump(text: str) -> list[ContactInfo]:
    """Turn ``kamcmd ul.dump`` output into one :class:`ContactInfo` per contact."""
    contacts: list[ContactInfo] = []
    for aor, pairs in _walk_aors(_parse_kamcmd_tree(text)):
        for key, value in pairs:
            if key != "Contacts":
                continue
            for ckey, cvalue in _pairs(value):
                if ckey == "Contact":
                    fields = {k: str(v) for k, v in _pairs(cvalue) if isinstance(v, str)}
                    contacts.append(_contact_from_fields(aor, fields))
    return contacts


def _aor_user(aor: str) -> str:
    """Reduce ``sip:alice@host``, ``alice@host`` or ``alice`` to ``alice`` (use_domain 0)."""
    text = aor.split(":", 1)[1] if aor.lower().startswith(("sip:", "sips:")) else aor
    return text.split("@", 1)[0]


_SDP_RE = re.compile(r"HARNESS-SDP (request|reply) (\S+) (\S+) <<<(.*?)>>>", re.DOTALL)


class Kamailio:
    """One Kamailio instance on 127.0.0.1 or [::1] (use as a context manager or start()/stop())."""

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        *,
        domain: str = LOOPBACK,
        realm: str | None = None,
        tls: TlsConfig | None = None,
        algorithm: str = "MD5",
        anonymous_inbound: bool = True,
        min_expires: int = 1,
        debug: int = 2,
        time_limit: float = 600.0,
        role: str = "registrar",
        registrar: tuple[str, int] | None = None,
        ipv6: bool = False,
        flow_timer: int = 0,
    ) -> None:
        """``ipv6``: listen on ``[::1]`` (UDP, TCP, TLS) instead of 127.0.0.1. ``flow_timer``
        (outbound registrar): the Flow-Timer its 200s to outbound REGISTERs carry, 0 none."""
        self.workdir = Path(workdir)
        self.users = {
            _check_value("user", user, _USER_RE): _check_value("password", pw, _PASSWORD_RE)
            for user, pw in (users or {}).items()
        }
        self.domain = _check_value("domain", domain, _DOMAIN_RE)
        self.realm = _check_value("realm", realm or domain, _DOMAIN_RE)
        if tls is not None and tls.min_tls not in TLS_METHODS:
            raise ValueError(
                f"unknown TLS method {tls.min_tls!r}; use one of {sorted(TLS_METHODS)}"
            )
        if algorithm not in ("MD5", "SHA-256"):
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        if role not in ("registrar", "outbound-registrar", "edge"):
            raise ValueError(f"unknown role {role!r}")
        if (role == "edge") != (registrar is not None):
            raise ValueError("an edge (and only an edge) needs the registrar's (host, port)")
        self.role = role
        self.registrar = registrar
        self.flow_timer = int(flow_timer)
        self.tls = tls
        self.algorithm = algorithm
        self.anonymous_inbound = anonymous_inbound
        self.min_expires = min_expires
        self.debug = debug
        self.time_limit = time_limit
        self.host = "::1" if ipv6 else LOOPBACK
        self.port = 0
        self.tls_port: int | None = None
        self.config_path = self.workdir / "kamailio.cfg"
        self.tls_config_path = self.workdir / "tls.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self._rundir: Path | None = None
        self._peer: PeerProcess | None = None
        self._log_offset = 0
        self._secret = secrets.token_hex(16)  # the edge's flow-token key, kept over restarts

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the timeout wrapper (and so Kamailio) has not exited."""
        return self._peer is not None and self._peer.running

    @property
    def wrapper_pid(self) -> int | None:
        """PID of the ``timeout`` wrapper (also the process group id)."""
        return None if self._peer is None else self._peer.wrapper_pid

    @property
    def pid(self) -> int | None:
        """PID of Kamailio's main process (the wrapper's child)."""
        return None if self._peer is None else self._peer.pid

    @property
    def rundir(self) -> Path:
        """Private short runtime dir (``-Y``, ctl socket); made on demand, removed by stop()."""
        if self._rundir is None:
            self._rundir = Path(tempfile.mkdtemp(prefix="kam-"))
        return self._rundir

    @property
    def ctl_socket(self) -> Path:
        """The unix socket of this instance's ctl module (binrpc, for kamcmd)."""
        return self.rundir / "ctl.sock"

    def start(self, ready_timeout: float = 15.0, *, keep_ports: bool = False) -> None:
        """Write and check the config, start Kamailio and wait until it answers.

        ``keep_ports``: a restart on the ports of the previous run (one attempt, no port search).
        """
        if self._peer is not None:
            raise KamailioError("Kamailio already started")
        missing = missing_tools()
        if missing:
            raise KamailioError(f"not installed: {', '.join(missing)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if keep_ports and self.port else 4
        for attempt in range(attempts):
            if not (keep_ports and self.port):
                self.port = free_port("both", host=self.host)
                self.tls_port = None if self.tls is None else free_port("tcp", host=self.host)
            try:
                self.write_config()
                self.check_config()
                self._launch()
                self._wait_ready(ready_timeout)
                return
            except KamailioError:
                new_log = self.log_text()[self._log_offset :]
                self.stop()
                if attempt == attempts - 1 or not any(err in new_log for err in _BIND_ERRORS):
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop Kamailio by PID (SIGTERM, then SIGKILL) and reap every process it left."""
        peer, self._peer = self._peer, None
        try:
            if peer is not None:
                peer.stop(term_wait=10.0, linger=2.0)  # its children exit after the main one
        finally:
            if self._rundir is not None:
                shutil.rmtree(self._rundir, ignore_errors=True)
                self._rundir = None

    def _command(self) -> list[str]:
        return [
            str(find_binary("kamailio")),
            "-DD",
            "-E",
            "-f",
            str(self.config_path),
            "-Y",
            str(self.rundir),
            "-m",
            "64",
            "-M",
            "8",
        ]

    def _launch(self) -> None:
        self._log_offset = len(self.log_text())
        self._peer = PeerProcess(
            "kamailio",
            self._command(),
            log_path=self.log_path,
            time_limit=self.time_limit,
            child_name="kamailio",
        )
        self._peer.start()

    def _wait_ready(self, timeout: float) -> None:
        """Wait until kamcmd answers and OPTIONS over UDP and TCP get a 200."""
        last_error = ["no answer"]

        def answers() -> bool:
            try:
                self.kamcmd("core.version", timeout=2.0)
                status = [self.ping(transport, timeout=1.0) for transport in ("udp", "tcp")]
            except (KamailioError, OSError) as exc:
                last_error[0] = str(exc)
                return False
            last_error[0] = f"OPTIONS answered {status}"
            return all(line.startswith("SIP/2.0 200") for line in status)

        assert self._peer is not None
        self._peer.wait_ready(
            answers, timeout, lambda: f"not ready ({last_error[0]})", error=KamailioError
        )

    # ------------------------------------------------------------------ config

    def config_text(self) -> str:
        """The routing script for the current ports and settings."""
        defines = []
        if self.tls is not None:
            defines.append("#!define WITH_TLS")
        if self.anonymous_inbound:
            defines.append("#!define ANONYMOUS_INBOUND")
        if self.role == "outbound-registrar":
            defines.append("#!define WITH_OUTBOUND")
        ports = {5060, 5061, self.port, *([self.tls_port] if self.tls_port else [])}
        hosts = sorted({LOOPBACK, "localhost", self.domain, self.uri_host})
        aliases = [f"{host}:{port}" for host in hosts for port in sorted(ports)]
        users = "\n".join(
            f"\t$sht(users=>{user}) = {_cfg_string(pw)};" for user, pw in self.users.items()
        )
        replacements = {
            "@@DEFINES@@": "\n".join(defines),
            "@@DEBUG@@": str(self.debug),
            "@@HOST@@": self.uri_host,
            "@@PORT@@": str(self.port),
            "@@TLS_PORT@@": str(self.tls_port or 0),
            "@@ALIASES@@": "\n".join(f"alias={name}" for name in aliases),
            "@@CTL@@": str(self.ctl_socket),
            "@@MIN_EXPIRES@@": str(self.min_expires),
            "@@ALGORITHM@@": self.algorithm,
            "@@TLS_CFG@@": str(self.tls_config_path),
            "@@USERS@@": users or "\tnull;",
            "@@REALM@@": self.realm,
            "@@FR_TIMER@@": "3000" if self.role == "outbound-registrar" else "30000",
            "@@REGISTRAR@@": ":".join(map(str, self.registrar or ("", 0))),
            "@@SECRET@@": self._secret,
            "@@FLOW_TIMER@@": str(self.flow_timer),
        }
        text = _CFG_EDGE if self.role == "edge" else _CFG_HEAD + _CFG_ROUTES
        for key, value in replacements.items():
            text = text.replace(key, value)
        return text

    def write_config(self) -> None:
        """Write ``kamailio.cfg`` (and ``tls.cfg``) into the work directory."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        if self.tls is not None:
            self.tls_config_path.write_text(_tls_cfg(self.tls))

    def check_config(self) -> None:
        """Run ``kamailio -c``; raise :class:`KamailioError` with its output if invalid."""
        result = subprocess.run(
            [*self._command(), "-c"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise KamailioError(
                f"kamailio -c rejected {self.config_path}:\n{result.stdout}{result.stderr}"
            )

    # ------------------------------------------------------------------ queries

    def kamcmd(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``kamcmd -s unix:CTL ARGS`` against this instance; return its stdout."""
        command = [str(find_binary("kamcmd")), "-s", f"unix:{self.ctl_socket}", *args]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KamailioError(f"kamcmd {' '.join(args)} timed out") from exc
        if result.returncode != 0:
            raise KamailioError(f"kamcmd {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def ul_dump(self) -> list[ContactInfo]:
        """Registered contacts (AOR, contact URI, expires, received, ...) from usrloc."""
        return parse_ul_dump(self.kamcmd("ul.dump"))

    def contacts(self, aor: str) -> list[ContactInfo]:
        """Contacts registered for ``aor`` (``alice``, ``alice@host`` or ``sip:alice@host``)."""
        user = _aor_user(aor)
        return [c for c in self.ul_dump() if _aor_user(c["aor"]) == user and c["expires"] != 0]

    def wait_registered(self, aor: str, timeout: float = 5.0) -> list[ContactInfo]:
        """Wait until ``aor`` has a contact; return its contacts or raise TimeoutError."""
        return wait_until(lambda: self.contacts(aor), timeout, message=f"{aor} not registered")

    def wait_unregistered(self, aor: str, timeout: float = 5.0) -> None:
        """Wait until ``aor`` has no contact left, or raise TimeoutError."""
        wait_until(lambda: not self.contacts(aor), timeout, message=f"{aor} still registered")

    def log_text(self) -> str:
        """Everything Kamailio has logged so far (stderr, ``-E``)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logged_sdp(self) -> list[LoggedSdp]:
        """SDP bodies of requests and replies that passed the proxy, in log order."""
        return [
            LoggedSdp(kind=m[1], first=m[2].replace("-", " ", 1), call_id=m[3], body=m[4])
            for m in _SDP_RE.finditer(self.log_text())
        ]

    # ------------------------------------------------------------------ addresses

    @property
    def uri_host(self) -> str:
        """The listen address as written in a URI: ``[::1]`` or ``127.0.0.1``."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def uri(self, transport: str = "udp") -> str:
        """The proxy's SIP URI for ``transport`` (udp, tcp or tls)."""
        port = self.address(transport)[1]
        return f"sip:{self.uri_host}:{port};transport={transport}"

    def address(self, transport: str = "udp") -> tuple[str, int]:
        """``(host, port)`` Kamailio listens on for ``transport``."""
        if transport in ("udp", "tcp"):
            return (self.host, self.port)
        if transport == "tls" and self.tls_port is not None:
            return (self.host, self.tls_port)
        raise KamailioError(f"no {transport} listener")

    def ping(self, transport: str = "udp", timeout: float = 2.0) -> str:
        """Send OPTIONS to the proxy itself over udp or tcp; return the status line."""
        branch = "z9hG4bK" + secrets.token_hex(8)
        tag = secrets.token_hex(4)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        with socket.socket(family, kind) as sock:
            sock.settimeout(timeout)
            sock.bind((self.host, 0))
            sock.connect(self.address(transport))
            port = sock.getsockname()[1]
            via_host = self.uri_host
            request = (
                f"OPTIONS sip:{self.uri_host}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/{transport.upper()} {via_host}:{port};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:harness@{self.uri_host}>;tag={tag}\r\n"
                f"To: <sip:{self.uri_host}:{self.port}>\r\n"
                f"Call-ID: harness-ping-{secrets.token_hex(8)}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendall(request.encode())
            data = sock.recv(65535)
        return data.split(b"\r\n", 1)[0].decode(errors="replace")
