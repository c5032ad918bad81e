"""A real NAT: network namespaces built by the test, nftables masquerade, Kamailio and coturn outside.

    private 192.0.2.0/24                 router (masquerade)             public 198.51.100.0/24
    securephone (alice, outbound) --- 192.0.2.1 | 198.51.100.1 --- Kamailio, coturn (STUN), bob

securephone in the private namespace learns its public address from coturn (RFC 8489), registers
through the NAT with RFC 5626 outbound (+sip.instance, reg-id) and keeps the flow open with STUN
keep-alives to Kamailio (its ``stun`` module answers them). The router forgets idle UDP flows
after 3 s: the one-shot STUN flows to coturn expire while the SIP flow stays, and then a call from
bob (a second securephone in the public namespace) reaches alice through the NAT; her Contact and
SDP carry the public address she learnt. Everything is torn down in the fixture finalizer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

import securephone

from ..helpers import PeerProcess, wait_until
from .conftest import require_kamailio
from .kamailio import Kamailio, KamailioError

PRIVATE_IP, ROUTER_PRIVATE = "192.0.2.10", "192.0.2.1"
ROUTER_PUBLIC, PUBLIC_IP = "198.51.100.1", "198.51.100.10"
STUN_PORT = 3478
FLOW_TIMEOUT = 3  # seconds the router keeps an idle UDP mapping
USERS = {"alice": "alice-nat-pw", "bob": "bob-nat-pw"}
SRC = str(Path(securephone.__file__).resolve().parent.parent)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _in(ns: str, *command: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, *command],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout


class Network:
    """Three namespaces (private, router, public) named after this process, deleted by close()."""

    def __init__(self) -> None:
        tag = f"spnat{os.getpid()}"
        self.private, self.router, self.public = f"{tag}p", f"{tag}r", f"{tag}u"
        self.made: list[str] = []

    def build(self) -> None:
        for ns in (self.private, self.router, self.public):
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        r = self.router
        _ip(
            "-n",
            r,
            "link",
            "add",
            "r0",
            "type",
            "veth",
            "peer",
            "name",
            "p0",
            "netns",
            self.private,
        )
        _ip(
            "-n", r, "link", "add", "r1", "type", "veth", "peer", "name", "u0", "netns", self.public
        )
        for ns, dev, address in (
            (r, "r0", f"{ROUTER_PRIVATE}/24"),
            (r, "r1", f"{ROUTER_PUBLIC}/24"),
            (self.private, "p0", f"{PRIVATE_IP}/24"),
            (self.public, "u0", f"{PUBLIC_IP}/24"),
        ):
            _ip("-n", ns, "addr", "add", address, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", self.private, "route", "add", "default", "via", ROUTER_PRIVATE)
        _in(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _in(r, "nft", "-f", "-", stdin=_NFT)
        for name in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            _in(r, "sysctl", "-qw", f"net.netfilter.{name}={FLOW_TIMEOUT}")

    def conntrack(self) -> str:
        """The router's connection-tracking table (its NAT mappings)."""
        return _in(self.router, "cat", "/proc/net/nf_conntrack")

    def close(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
        self.made.clear()


_NFT = """table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "r1" masquerade
  }
}
"""


class NsKamailio(Kamailio):
    """The harness's Kamailio, run in a namespace on the public address, answering STUN too."""

    def __init__(self, workdir: Path, netns: str, outbound_flow_timer: int = 0, **kwargs: object):
        super().__init__(workdir, USERS, domain=PUBLIC_IP, **kwargs)  # type: ignore[arg-type]
        self.netns = netns
        self.outbound_flow_timer = outbound_flow_timer

    def config_text(self) -> str:
        text = super().config_text().replace("127.0.0.1", PUBLIC_IP)
        text = text.replace(
            'loadmodule "nathelper.so"', 'loadmodule "nathelper.so"\nloadmodule "stun.so"'
        )
        if self.outbound_flow_timer:  # RFC 5626 registrar: Require: outbound and a Flow-Timer
            anchor = 'modparam("registrar", "method_filtering", 1)'
            text = text.replace(
                anchor,
                f'{anchor}\nmodparam("registrar", "outbound_mode", 1)\n'
                f'modparam("registrar", "flow_timer", {self.outbound_flow_timer})',
            )
        return text

    def _command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super()._command()]

    def _wait_ready(self, timeout: float) -> None:  # its SIP ports are not reachable from here
        assert self._peer is not None
        self._peer.wait_ready(
            lambda: self._answers(), timeout, "kamcmd not answering", error=KamailioError
        )

    def _answers(self) -> bool:
        try:
            self.kamcmd("core.version", timeout=2.0)
        except KamailioError:
            return False
        return True


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None:
        pytest.skip("NAT test: needs root, ip (iproute2) and nft (nftables)")
    net = Network()
    try:
        net.build()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        net.close()
        pytest.skip(f"NAT test: network namespaces not permitted here ({exc})")
    yield net
    net.close()


@pytest.fixture
def processes() -> Iterator[list[PeerProcess]]:
    started: list[PeerProcess] = []
    yield started
    for peer in reversed(started):
        peer.stop(term_wait=5.0)


def _start(
    processes: list[PeerProcess], name: str, netns: str, command: list[str], log: Path, limit: float
) -> PeerProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    peer = PeerProcess(
        name, ["ip", "netns", "exec", netns, *command], log_path=log, time_limit=limit, env=env
    )
    processes.append(peer)
    peer.start()
    return peer


def _phone_config(path: Path, data: dict[str, object]) -> Path:
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


@pytest.mark.parametrize(
    ("keepalive", "flow_timer"),
    [
        pytest.param(1.0, 0, id="configured-keepalive"),
        # the configured 60 s would let the router forget the flow: only the registrar's
        # Flow-Timer of 2 s (RFC 5626 §4.4.1) keeps it
        pytest.param(60.0, 2, id="registrars-flow-timer"),
    ],
)
def test_register_keepalive_and_incoming_call_through_a_nat(
    network: Network,
    processes: list[PeerProcess],
    tmp_path: Path,
    keepalive: float,
    flow_timer: int,
) -> None:
    require_kamailio()
    if shutil.which("turnserver") is None:
        pytest.skip("coturn not installed (apt-get install -y coturn)")
    kamailio = NsKamailio(
        tmp_path / "kamailio", network.public, outbound_flow_timer=flow_timer, time_limit=120
    )
    try:
        kamailio.start()
        _start(processes, "coturn", network.public, _coturn(tmp_path), tmp_path / "coturn.log", 120)
        registrar = f"sip:{PUBLIC_IP}:{kamailio.port}"
        alice_dir = tmp_path / "alice"
        alice_cfg = _phone_config(
            tmp_path / "alice.toml",
            {
                "data_dir": str(alice_dir),
                "sip": {"listen_address": PRIVATE_IP, "udp_port": 5060, "transports": ["udp"],
                        "trace_file": str(tmp_path / "alice-trace.txt")},
                "media": {"port_min": 56000, "port_max": 56099, "srtp": "off"},
                "nat": {"stun_server": f"{PUBLIC_IP}:{STUN_PORT}",
                        "keepalive_interval": keepalive},
                "accounts": [{"name": "alice", "user": "alice", "domain": PUBLIC_IP,
                              "password": USERS["alice"], "registrar": registrar,
                              "outbound": True}],
            },
        )  # fmt: skip
        alice = _start(
            processes,
            "alice",
            network.private,
            [sys.executable, "-m", "securephone.cli", "answer", "-c", str(alice_cfg), "--calls", "1",
             "--duration", "1", "--json", "--log-level", "info"],
            tmp_path / "alice.log",
            90,
        )  # fmt: skip
        contacts = wait_until(
            lambda: kamailio.contacts("alice"), 20, message="alice not registered"
        )
        registered_at = time.monotonic()

        # registration through the NAT: the Contact carries the learnt public address
        contact = contacts[0]
        assert f"@{ROUTER_PUBLIC}:" in contact["contact"], contact
        assert contact["received"] is not None and ROUTER_PUBLIC in contact["received"]
        urn = (alice_dir / "instance-id").read_text().strip()
        assert urn in contact["fields"].get("Instance", ""), contact["fields"]
        assert contact["fields"].get("Reg-Id") == "1"
        trace = (tmp_path / "alice-trace.txt").read_text()
        learnt = re.search(
            rf"STUN {PUBLIC_IP}:{STUN_PORT}: public address ({ROUTER_PUBLIC}:\d+)", trace
        )
        assert learnt is not None, trace[-2000:]
        assert f"sip:alice@{learnt[1]}" in contact["contact"]
        if flow_timer:
            said = f"flow of alice: registrar's Flow-Timer {flow_timer} s"
            wait_until(lambda: said in (tmp_path / "alice-trace.txt").read_text(), 10)

        # the router forgets idle flows: the one-shot STUN flows to coturn go, the SIP flow stays
        def stun_flows_gone_sip_flow_kept() -> bool:
            table = network.conntrack()
            idle_long = time.monotonic() - registered_at > 2 * FLOW_TIMEOUT
            stun_gone = f"dport={STUN_PORT} " not in table
            return idle_long and stun_gone and f"dport={kamailio.port} " in table

        wait_until(stun_flows_gone_sip_flow_kept, 20, message=lambda: network.conntrack())

        # an incoming call from the public side reaches alice through the NAT
        bob_cfg = _phone_config(
            tmp_path / "bob.toml",
            {
                "data_dir": str(tmp_path / "bob"),
                "sip": {"listen_address": PUBLIC_IP, "udp_port": 5070, "transports": ["udp"]},
                "media": {"port_min": 56100, "port_max": 56199, "srtp": "off"},
                "accounts": [{"name": "bob", "user": "bob", "domain": PUBLIC_IP,
                              "password": USERS["bob"], "registrar": registrar, "register": False}],
            },
        )  # fmt: skip
        bob = subprocess.run(
            ["ip", "netns", "exec", network.public, sys.executable, "-m", "securephone.cli", "call",
             f"sip:alice@{PUBLIC_IP}:{kamailio.port}", "-c", str(bob_cfg), "--duration", "2",
             "--ring-timeout", "10", "--json"],
            env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert bob.returncode == 0, bob.stdout + bob.stderr
        assert json.loads(bob.stdout)["ok"] is True

        wait_until(lambda: not alice.running, 20, message=lambda: alice.log_tail())
        summary = _last_json(alice.log_text())
        assert summary["ok"] is True and summary["direction"] == "incoming"

        # alice's answer (it passed Kamailio) offers her RTP socket's public mapping
        answers = [s for s in kamailio.logged_sdp() if s.kind == "reply" and "INVITE" in s.first]
        assert answers and set(answers[-1].connection_addresses()) == {ROUTER_PUBLIC}
        trace = (tmp_path / "alice-trace.txt").read_text()
        media = re.search(rf"STUN RTP {PRIVATE_IP}:\d+ is {ROUTER_PUBLIC}:(\d+) outside", trace)
        assert media is not None
        assert f"m=audio {media[1]} " in answers[-1].body
    finally:
        kamailio.stop()


def _last_json(text: str) -> dict[str, object]:
    """The JSON summary a phone printed last (its log lines come before it)."""
    starts = [m.start() for m in re.finditer(r"^\{$", text, re.MULTILINE)]
    assert starts, text[-2000:]
    value, _ = json.JSONDecoder().raw_decode(text[starts[-1] :])
    assert isinstance(value, dict)
    return value


def _coturn(tmp_path: Path) -> list[str]:
    """coturn as a plain STUN server on the public address (no TURN, no auth, no TLS, no CLI)."""
    return [
        str(shutil.which("turnserver")), "-n", "--stun-only", "--no-auth", "--no-cli", "--no-tls",
        "--no-dtls", "-L", PUBLIC_IP, "--listening-port", str(STUN_PORT),
        "--pidfile", str(tmp_path / "turnserver.pid"), "-b", str(tmp_path / "turndb"),
        "--log-file", "stdout", "--simple-log",
    ]  # fmt: skip
