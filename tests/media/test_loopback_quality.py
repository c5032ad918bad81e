"""Objective quality of a loopback call per codec, with wideband PESQ (ITU-T P.862.2, through
the ``pesq`` package): on the same wideband sentence G.722 and Opus score above G.711 — the
ordering the standards guarantee (a 7 kHz or wider audio band against 3.4 kHz), not a number.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from securephone.audio.resample import resample
from securephone.audio.sources import load_wav
from securephone.media.codecs.opus import opus_available
from securephone.media.loopback import connected_pair, loopback_call

pesq = pytest.importorskip("pesq")


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken wideband sentence (espeak-ng at 16 kHz through sox)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    raw = tmp_path_factory.mktemp("speech") / "sentence.wav"
    text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    return raw


def score(codec: str, sentence: Path) -> float:
    """Wideband PESQ (MOS-LQO) of what the callee hears, against the sentence at 16 kHz."""
    rate = connected_pair(codec)[0].sample_rate
    sent, _ = load_wav(sentence, rate)
    heard, rate = loopback_call(codec, sent)
    reference, _ = load_wav(sentence, 16000)
    degraded = resample(heard, rate, 16000)[: reference.size + 16000 // 10]
    return float(pesq.pesq(16000, reference.astype(np.float64), degraded, "wb"))


def test_g722_and_opus_score_above_g711_on_a_wideband_sentence(sentence: Path) -> None:
    narrow = score("PCMU", sentence)
    assert score("G722", sentence) > narrow
    if opus_available():
        assert score("opus", sentence) > narrow


def test_a_g722_loopback_is_16khz_and_a_g711_one_8khz() -> None:
    tone = (3000 * np.sin(np.arange(3200) * 2 * np.pi * 1000 / 16000)).astype(np.int16)
    heard, rate = loopback_call("G722", tone)
    assert rate == 16000 and heard.size == 3200 + 3 * 320
    assert loopback_call("PCMU", tone[::2])[1] == 8000
