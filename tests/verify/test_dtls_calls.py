"""verify on a captured DTLS-SRTP call between two securephones: each SRTP stream is reported
as DTLS-keyed (DTLS records on its own port pair before the SRTP), and the phone's key export,
written when DTLS-SRTP agreed the keys, decrypts the capture (``verify --keys``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from securephone.cli import app
from securephone.verify.keys import load_key_file
from securephone.verify.media import MediaClass
from securephone.verify.report import Verdict, analyze, write_outputs

from ..interop.audio_tools import assert_audio_matches, read_wav
from ..interop.baresip import PortRange
from .test_calls import call_between, item_from, media_block, media_items, our_phone, pki  # noqa: F401

pytestmark = pytest.mark.interop


async def test_dtls_srtp_call_is_dtls_keyed_and_its_exported_keys_decrypt_it(
    tmp_path: Path,
    pki: dict[str, Path],  # noqa: F811
    speech: tuple[Path, Path],
    media_block: PortRange,  # noqa: F811
) -> None:
    keys = tmp_path / "keys.json"
    # G.711: the decrypted export is compared with the 8 kHz sentence
    common = {"srtp": "mandatory", "keying": ["dtls"], "codecs": ["PCMU"]}
    alice = our_phone(
        tmp_path, pki, "alice", speech[0], media_block, srtp_key_export=str(keys), **common
    )
    bob = our_phone(tmp_path, pki, "bob", speech[1], media_block, **common)
    call = await call_between(
        alice, bob, "sips:bob@127.0.0.1:{tls}", tmp_path / "dtls.pcap", media_block
    )
    assert call.summary()["security"]["keying"] == "dtls-srtp"
    assert call.summary()["security"]["fingerprint_integrity"] is True  # the SDP crossed TLS
    report = analyze(tmp_path / "dtls.pcap")
    assert report.overall is Verdict.ENCRYPTED, [(i.name, i.summary) for i in report.items]
    media = media_items(report)
    assert len(media) == 2
    for item in media:
        assert item.stream is not None and item.stream.media_class is MediaClass.SRTP
        assert item.stream.dtls_records > 0 and "DTLS-keyed" in item.summary
    alice_port = int(call.summary()["media"]["local_rtp"].rsplit(":", 1)[1])
    keyed = analyze(tmp_path / "dtls.pcap", load_key_file(keys))
    write_outputs(keyed, tmp_path / "keyed")
    for item in media_items(keyed):
        result = item.stream.decryption if item.stream else None
        assert result is not None and result.confirmed and result.auth_failed == 0
    decrypted = item_from(keyed, alice_port).export
    assert decrypted is not None and decrypted.decrypted_wav is not None
    assert_audio_matches(read_wav(speech[0])[0], read_wav(decrypted.decrypted_wav)[0])
    # the same through the command line, as a user would run it
    out = tmp_path / "cli-report"
    result = CliRunner().invoke(
        app,
        ["verify", str(tmp_path / "dtls.pcap"), "--keys", str(keys), "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    streams = [i["media"] for i in json.loads(result.output)["items"] if i["kind"] == "media"]
    assert {s["keying"] for s in streams} == {"dtls-srtp"}
    assert len(streams) == 2 and all(s["decryption"]["confirmed"] for s in streams)
