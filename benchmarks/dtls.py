"""CPU time of one DTLS-SRTP handshake (both sides), in memory, per profile.

Two endpoints (client and server, ECDSA P-256 certificates made beforehand) complete a
DTLS 1.2 handshake with ``use_srtp`` and export SRTP keys (RFC 5764); no sockets, so the
figure is the crypto and the engine, both sides added up. Printed, never asserted.

    PYTHONPATH=src python benchmarks/dtls.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import time

from securephone.media.dtls import (
    DtlsCertificate,
    DtlsConnected,
    DtlsEndpoint,
    DtlsRole,
    SrtpProfile,
)
from securephone.pki import create_media_certificate

CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 40002)


def handshake(alice: DtlsCertificate, bob: DtlsCertificate, profile: SrtpProfile) -> float:
    """CPU seconds for one handshake, both endpoints (setup of the OpenSSL objects included)."""
    start = time.process_time()
    client = DtlsEndpoint(
        DtlsRole.CLIENT,
        alice,
        remote=SERVER,
        remote_fingerprints=[bob.fingerprint()],
        profiles=[profile],
    )
    server = DtlsEndpoint(
        DtlsRole.SERVER, bob, remote_fingerprints=[alice.fingerprint()], profiles=[profile]
    )
    client.start(0.0)
    for _ in range(10):
        moved = False
        for src, dst, addr in ((client, server, CLIENT), (server, client, SERVER)):
            for data, _ in src.datagrams_to_send():
                dst.receive(data, addr, 0.0)
                moved = True
        if not moved:
            break
    elapsed = time.process_time() - start
    for endpoint in (client, server):
        if not isinstance(endpoint.next_event(), DtlsConnected):
            raise SystemExit("handshake failed")
    return elapsed


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    alice = DtlsCertificate.from_issued(create_media_certificate("bench alice"))
    bob = DtlsCertificate.from_issued(create_media_certificate("bench bob"))
    print(f"DTLS 1.2 handshake + SRTP key export, both sides, {rounds} rounds (CPU time)")
    print(f"{'profile':<26}{'median ms':>10}{'p90 ms':>10}{'min ms':>10}")
    for profile in (SrtpProfile.AEAD_AES_128_GCM, SrtpProfile.AES128_CM_SHA1_80):
        handshake(alice, bob, profile)  # warm-up
        times = sorted(handshake(alice, bob, profile) * 1000 for _ in range(rounds))
        p90 = times[int(0.9 * (len(times) - 1))]
        print(f"{profile.value:<26}{statistics.median(times):>10.2f}{p90:>10.2f}{times[0]:>10.2f}")


if __name__ == "__main__":
    main()
