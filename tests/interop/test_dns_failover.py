"""RFC 3263 with real servers: dnsmasq publishes NAPTR/SRV/A/AAAA records for a test domain and two
Kamailio instances are its SRV targets. securephone registers to the higher-priority one and,
once that one is stopped, fails over to the other, and returns to the first once it is back
(OPTIONS probes every [dns] failback_interval); a sips: domain offering only UDP is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.dns import SipResolver
from securephone.aio.phone import Phone
from securephone.pki.certs import issue_certificate
from securephone.sip.locate import LocateError
from securephone.sip.registration import RegState
from securephone.sip.uri import SipUri
from securephone.store.config import DnsSettings, parse_config

from .conftest import KamailioFactory
from .dnsmasq import Dnsmasq, DnsRecords, find_dnsmasq
from .kamailio import Kamailio
from .pki_tools import _write_pair, kam_tls, make_pki

DOMAIN = "example.test"
USERS = {"alice": "alice-pw-1"}


def records(primary: Kamailio, backup: Kamailio) -> DnsRecords:
    srv = f"_sip._tcp.{DOMAIN}"
    return DnsRecords(
        naptr=[
            (DOMAIN, 10, 10, "S", "SIP+D2T", srv),
            (DOMAIN, 20, 10, "S", "SIP+D2U", f"_sip._udp.{DOMAIN}"),
            (f"udponly.{DOMAIN}", 10, 10, "S", "SIP+D2U", f"_sip._udp.udponly.{DOMAIN}"),
        ],
        srv=[
            (srv, f"b.{DOMAIN}", backup.port, 20, 0),
            (srv, f"a.{DOMAIN}", primary.port, 10, 0),
            (f"_sip._udp.udponly.{DOMAIN}", f"a.{DOMAIN}", primary.port, 10, 0),
        ],
        hosts=[(f"a.{DOMAIN}", "127.0.0.1"), (f"b.{DOMAIN}", "127.0.0.1"), (f"v6.{DOMAIN}", "::1")],
    )


@pytest.fixture
def dnsmasq_factory(tmp_path: Path) -> Iterator[Any]:
    if find_dnsmasq() is None:
        pytest.skip("dnsmasq not installed (apt-get install -y dnsmasq-base)")
    started: list[Dnsmasq] = []

    def make(recs: DnsRecords) -> Dnsmasq:
        server = Dnsmasq(tmp_path / f"dnsmasq{len(started)}", recs)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


def phone_config(dns_port: int, trace: Path) -> Any:
    return parse_config(
        {
            "sip": {
                "listen_address": "127.0.0.1",
                "transports": ["tcp"],
                "tcp_port": 0,
                "trace_file": str(trace),
            },
            "dns": {"servers": ["127.0.0.1"], "port": dns_port, "failback_interval": 1.0},
            "accounts": [
                {
                    "name": "alice",
                    "user": "alice",
                    "domain": DOMAIN,
                    "password": USERS["alice"],
                    "transport": "tcp",
                    "expires": 120,
                    "retry_base": 60,
                }
            ],
        }
    )


async def test_register_to_srv_priority_fail_over_and_return(
    kamailio_factory: KamailioFactory, dnsmasq_factory: Any, tmp_path: Path
) -> None:
    primary = kamailio_factory(users=USERS, domain=DOMAIN)
    backup = kamailio_factory(users=USERS, domain=DOMAIN)
    dns_server = dnsmasq_factory(records(primary, backup))
    trace = tmp_path / "sip.trace"
    phone = Phone(phone_config(dns_server.port, trace))
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        assert state is RegState.REGISTERED, phone.status()
        await asyncio.to_thread(primary.wait_registered, "alice")
        assert backup.contacts("alice") == []
        servers = phone.status()["servers"]
        assert servers["located"][DOMAIN]["in_use"] == f"tcp:127.0.0.1:{primary.port}"
        assert servers["located"][DOMAIN]["targets"][1].startswith(f"tcp:127.0.0.1:{backup.port}")
        assert servers["failovers"] == []

        await asyncio.to_thread(primary.stop)  # the connection drops: register again, elsewhere
        await asyncio.to_thread(backup.wait_registered, "alice", 15.0)
        state = await phone.wait_registration("alice", (RegState.REGISTERED,), 10)
        assert state is RegState.REGISTERED
        status = phone.status()
        assert status["accounts"][0]["server"] == f"tcp:127.0.0.1:{backup.port}"
        (failover,) = status["servers"]["failovers"]
        assert failover["from"] == f"tcp:127.0.0.1:{primary.port}"
        assert failover["to"] == f"tcp:127.0.0.1:{backup.port}"

        # While the primary is down the probes fail and the phone stays on the backup.
        await asyncio.to_thread(primary.start, keep_ports=True)  # back, with an empty location
        await asyncio.to_thread(primary.wait_registered, "alice", 15.0)
        state = await phone.wait_registration("alice", (RegState.REGISTERED,), 10)
        assert state is RegState.REGISTERED
        status = phone.status()
        assert status["accounts"][0]["server"] == f"tcp:127.0.0.1:{primary.port}"
        back = status["servers"]["failovers"][-1]
        assert (back["from"], back["to"]) == (failover["to"], failover["from"])
        assert back["why"].startswith("back: answered OPTIONS with ")
        assert status["servers"]["located"][DOMAIN]["in_use"] == f"tcp:127.0.0.1:{primary.port}"
    finally:
        await phone.stop()
    text = trace.read_text()
    naptr = next(line for line in text.splitlines() if f"## DNS NAPTR {DOMAIN}:" in line)
    assert f"10 10 SIP+D2T _sip._tcp.{DOMAIN}" in naptr
    assert f"## DNS SRV _sip._tcp.{DOMAIN}: " in text
    assert f"## DNS sip:{DOMAIN}: tcp:127.0.0.1:{primary.port} (from naptr" in text


async def test_resolver_reads_real_records_and_refuses_udp_only_sips(
    kamailio_factory: KamailioFactory, dnsmasq_factory: Any
) -> None:
    primary = kamailio_factory(users=USERS, domain=DOMAIN)
    dns_server = dnsmasq_factory(records(primary, primary))
    resolver = SipResolver(DnsSettings(servers=["127.0.0.1"], port=dns_server.port))
    found = await resolver.locate(SipUri("sip", DOMAIN, "bob"))
    assert [str(t.peer) for t in found.targets][:1] == [f"tcp:127.0.0.1:{primary.port}"]
    assert {t.peer.server_name for t in found.targets} == {DOMAIN}
    assert all(0 < t.ttl <= 60 for t in found.targets)
    v6 = await resolver.locate(SipUri("sip", f"v6.{DOMAIN}", "bob", port=5062))
    assert [str(t.peer) for t in v6.targets] == ["udp:[::1]:5062"]  # AAAA
    with pytest.raises(LocateError, match="no TLS server"):
        await resolver.locate(SipUri("sips", f"udponly.{DOMAIN}", "bob"))


@pytest.mark.parametrize("names", ["the SIP domain", "only the SRV target"])
async def test_tls_through_srv_checks_the_sip_domain_rfc5922(
    kamailio_factory: KamailioFactory, dnsmasq_factory: Any, tmp_path: Path, names: str
) -> None:
    """RFC 5922 §4: after NAPTR/SRV the certificate must name the SIP domain, not the target host."""
    pki = make_pki(tmp_path)
    host = DOMAIN if names == "the SIP domain" else f"a.{DOMAIN}"
    cert, key = _write_pair(
        pki.dir, "srv", issue_certificate(pki.ca, host, kind="server", dns=[host])
    )
    kam = kamailio_factory(users=USERS, domain=DOMAIN, tls=kam_tls(pki, cert, key))
    tls_port = kam.address("tls")[1]
    srv = f"_sips._tcp.{DOMAIN}"
    dns_server = dnsmasq_factory(
        DnsRecords(
            naptr=[(DOMAIN, 10, 10, "S", "SIPS+D2T", srv)],
            srv=[(srv, f"a.{DOMAIN}", tls_port, 10, 0)],
            hosts=[(f"a.{DOMAIN}", "127.0.0.1")],
        )
    )
    config = parse_config(
        {
            "data_dir": str(pki.dir),
            "sip": {"listen_address": "127.0.0.1", "transports": ["tcp"], "tcp_port": 0},
            "tls": {"ca_file": str(pki.sips), "use_system_cas": False},
            "dns": {"servers": ["127.0.0.1"], "port": dns_server.port},
            "accounts": [
                {
                    "name": "alice", "user": "alice", "domain": DOMAIN, "registrar": f"sips:{DOMAIN}",
                    "password": USERS["alice"], "transport": "tls", "expires": 120, "retry_base": 300,
                }
            ],
        }
    )  # fmt: skip
    phone = Phone(config)
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 15)
        account = phone.status()["accounts"][0]
    finally:
        await phone.stop()
    assert account["server"] == f"tls:127.0.0.1:{tls_port}"
    if names == "the SIP domain":
        assert state is RegState.REGISTERED, account["reason"]
        assert account["tls"]["peer_subject"].endswith(f"CN={DOMAIN}")
    else:
        assert state is RegState.FAILED
        assert f"the certificate names a.{DOMAIN}, not {DOMAIN}" in account["reason"]
        assert kam.contacts("alice") == []
