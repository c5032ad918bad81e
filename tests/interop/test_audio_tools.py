"""The audio comparison used by the interop tests: it passes a copy with a jitter-buffer slip and
fails unrelated audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .audio_tools import assert_audio_matches, make_signal_wav, read_wav


@pytest.fixture
def signals(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    a = read_wav(make_signal_wav(tmp_path / "a.wav", seed=1, seconds=3.0))[0]
    b = read_wav(make_signal_wav(tmp_path / "b.wav", seed=2, seconds=3.0))[0]
    return a, b


def test_copy_with_a_slip_in_the_middle_matches(signals: tuple[np.ndarray, np.ndarray]) -> None:
    sent, _ = signals
    half = len(sent) // 2
    slip = np.zeros(480, dtype=sent.dtype)  # 60 ms of concealment, then the rest arrives late
    received = np.concatenate([np.zeros(800, dtype=sent.dtype), sent[:half], slip, sent[half:]])
    assert_audio_matches(sent, received)


def test_unrelated_audio_does_not_match(signals: tuple[np.ndarray, np.ndarray]) -> None:
    sent, other = signals
    with pytest.raises(AssertionError, match="does not match"):
        assert_audio_matches(sent, other)
    noise = np.random.default_rng(3).integers(-3000, 3000, len(sent)).astype(np.int16)
    with pytest.raises(AssertionError, match="does not match"):
        assert_audio_matches(sent, noise)
